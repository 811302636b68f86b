//! Prices: decimal amounts in major units (`12.50`) stored as integer minor units with an
//! ISO 4217 currency, so that no float ever touches money.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::is_known_currency;

/// A price in minor units of a currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// The amount in the currency's minor unit (cents for EUR, yen for JPY).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// A price could not be read. The message describes the problem without repeating the amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// Not a decimal number.
    #[error("invalid price: expected an amount such as 12.50")]
    NotANumber,
    /// Below zero.
    #[error("invalid price: it must not be negative")]
    Negative,
    /// More decimals than the currency has.
    #[error("invalid price: {currency} has {digits} decimal places at most")]
    TooPrecise {
        /// The currency.
        currency: String,
        /// Its number of minor-unit digits.
        digits: u32,
    },
    /// Too large to store.
    #[error("invalid price: the amount is too large")]
    TooLarge,
    /// Not an ISO 4217 code we know.
    #[error("unknown currency \"{0}\": expected an ISO 4217 code such as EUR or USD")]
    UnknownCurrency(String),
}

/// Number of digits after the decimal point for `currency` (ISO 4217 minor unit).
pub(crate) fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

const MAX_MINOR: i64 = 1_000_000_000_000_000;

impl Price {
    /// Reads a decimal amount in major units (`12.5`, `12.50`, `1200`) for `currency`
    /// (case-insensitive ISO 4217 code).
    pub fn parse(amount: &str, currency: &str) -> Result<Self, PriceError> {
        let currency = currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !is_known_currency(&currency) {
            return Err(PriceError::UnknownCurrency(currency.chars().take(8).collect()));
        }
        let amount = amount.trim();
        if amount.starts_with('-') {
            return Err(PriceError::Negative);
        }
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() && frac.is_empty()
            || !digits_only(whole)
            || !digits_only(frac)
            || (amount.contains('.') && frac.is_empty())
        {
            return Err(PriceError::NotANumber);
        }
        let digits = minor_digits(&currency);
        if frac.len() as u32 > digits {
            return Err(PriceError::TooPrecise { currency, digits });
        }
        let scale = 10i64.pow(digits);
        let whole: i64 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| PriceError::TooLarge)? };
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i64>().map_err(|_| PriceError::NotANumber)? * 10i64.pow(digits - frac.len() as u32)
        };
        let amount_minor = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_value))
            .filter(|v| *v <= MAX_MINOR)
            .ok_or(PriceError::TooLarge)?;
        Ok(Self { amount_minor, currency })
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = minor_digits(&self.currency);
        if digits == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10i64.pow(digits);
        write!(
            f,
            "{}.{:0width$} {}",
            self.amount_minor / scale,
            self.amount_minor % scale,
            self.currency,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_major_units() {
        assert_eq!(
            Price::parse("12.50", "eur").unwrap(),
            Price { amount_minor: 1250, currency: "EUR".into() }
        );
        assert_eq!(Price::parse("12.5", "EUR").unwrap().amount_minor, 1250);
        assert_eq!(Price::parse("12", "EUR").unwrap().amount_minor, 1200);
        assert_eq!(Price::parse("1200", "JPY").unwrap().amount_minor, 1200);
        assert_eq!(Price::parse("1.234", "KWD").unwrap().amount_minor, 1234);
        assert_eq!(Price::parse(".5", "EUR").unwrap().amount_minor, 50);
    }

    #[test]
    fn refuses_bad_amounts() {
        assert_eq!(Price::parse("abc", "EUR"), Err(PriceError::NotANumber));
        assert_eq!(Price::parse("", "EUR"), Err(PriceError::NotANumber));
        assert_eq!(Price::parse("1.", "EUR"), Err(PriceError::NotANumber));
        assert_eq!(Price::parse("1e3", "EUR"), Err(PriceError::NotANumber));
        assert_eq!(Price::parse("-1", "EUR"), Err(PriceError::Negative));
        assert!(matches!(Price::parse("1.5", "JPY"), Err(PriceError::TooPrecise { .. })));
        assert!(matches!(Price::parse("1.505", "EUR"), Err(PriceError::TooPrecise { .. })));
        assert_eq!(Price::parse("99999999999999999999", "EUR"), Err(PriceError::TooLarge));
        assert_eq!(Price::parse("1", "XYZ"), Err(PriceError::UnknownCurrency("XYZ".into())));
    }

    #[test]
    fn displays_major_units() {
        assert_eq!(Price::parse("12.05", "EUR").unwrap().to_string(), "12.05 EUR");
        assert_eq!(Price::parse("500", "JPY").unwrap().to_string(), "500 JPY");
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(minor in 0i64..MAX_MINOR, cur in prop_oneof![Just("EUR"), Just("JPY"), Just("KWD")]) {
            let price = Price { amount_minor: minor, currency: cur.to_owned() };
            let text = price.to_string();
            let (amount, currency) = text.split_once(' ').unwrap();
            prop_assert_eq!(Price::parse(amount, currency).unwrap(), price);
        }

        #[test]
        fn never_panics(amount in ".{0,24}", currency in ".{0,5}") {
            let _ = Price::parse(&amount, &currency);
        }
    }
}
