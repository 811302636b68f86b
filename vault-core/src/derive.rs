//! Derived fields: a value computed from a field, shared instead of the field.
//!
//! A grant or a request may name `SOURCE:DERIVATION` where it would name a field path:
//! `profile.birthday:over(18)`. The issuer computes the value from its current document and
//! ships only that; the source never leaves the device, in the projection's values or its
//! history. The set is small and typed by the document schema (the source's type must be the
//! derivation's input):
//!
//! | derivation | input | output | example |
//! |---|---|---|---|
//! | `over(N)`, N in 1..=150 | a date | true/false: at least N years ago today (an age of N or more) | `profile.birthday:over(18)` |
//! | `year` | a date | the year, a whole number | `profile.birthday:year` |
//! | `country` | an address | its two-letter country code | `profile.address:country` |
//! | `prefix(N)`, N in 1..=4 | text | the first N characters | `profile.address.postcode:prefix(2)` |
//! | `band(B1,...,Bk)`, 1 to 8 whole bounds in major units, increasing, each 1..=10^9 | a price | `under 10 EUR`, `10 to 50 EUR`, `100 EUR or more` | `purchases.*.price:band(10,50,100)` |
//!
//! Rules that keep the source at home:
//! - **Missing or unreadable source**: no value at all (the key is absent), never a guess such
//!   as `false`.
//! - **`prefix(N)` of a text of N characters or fewer** would be the whole text: no value.
//! - **`over(N)` is computed against the issuer's clock** (its UTC date) each time the
//!   projection is brought up to date, and the serving node re-checks it when the date
//!   changes, so the answer turns true on the birthday without any edit. A live answer that
//!   changes tells the grantee the day it changed; that is the nature of a kept-live answer.
//! - **Age thresholds are few**: at most [`MAX_AGE_THRESHOLDS`] distinct `over(N)` of one
//!   date field in one statement, and (checked when granting) among the live grants to one
//!   audience; asking `over(18)`, `over(19)`, ... `over(100)` would otherwise pin the age down.
//!   `year` beside `over(N)` narrows the age too; that is allowed and said on the consent screen.
//! - **Prices**: a band is a price; a grant without prices (`--no-prices`) ships no band.
//!
//! In a projection the value sits where the source would, under the key
//! `LAST_SEGMENT:DERIVATION` (`profile["birthday:over(18)"]`,
//! `purchases[ID]["price:band(10,50,100)"]`), so its dotted path is the grant's path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::money::minor_digits;
use crate::path::FieldPath;
use crate::schema::document_schema;

/// Most distinct `over(N)` thresholds of one date field, in one statement or among the live
/// grants to one audience.
pub const MAX_AGE_THRESHOLDS: usize = 2;
/// Largest N of `over(N)`, in years.
pub const MAX_AGE: u16 = 150;
/// Largest N of `prefix(N)`, in characters.
pub const MAX_PREFIX: u8 = 4;
/// Most bounds of `band(...)`.
pub const MAX_BAND_BOUNDS: usize = 8;
/// Largest bound of `band(...)`, in major units of the price's currency.
pub const MAX_BAND_BOUND: u64 = 1_000_000_000;

/// The derivations, as `vault` names them in messages.
pub const KNOWN_DERIVATIONS: &str = "over(N), year, country, prefix(N) and band(B1,B2,...)";

/// A value computed from a field, named after the field's path and a colon
/// (`profile.birthday:over(18)`); only the value is shared, never the field.
///
/// - `over(N)`, N from 1 to 150, of a date: whether it is at least N whole years before the
///   issuer's current UTC date (an age of N or more); recomputed as the date changes.
/// - `year` of a date: its year.
/// - `country` of an address: its two-letter country code.
/// - `prefix(N)`, N from 1 to 4, of text: its first N characters (nothing when the text has N
///   characters or fewer).
/// - `band(B1,...,Bk)`, 1 to 8 increasing whole bounds from 1 to 10^9 in the currency's major
///   unit, of a price: `under B1 CUR`, `Bi to Bi+1 CUR` (lower bound included) or `Bk CUR or
///   more`; shared only by a grant that includes prices.
///
/// A missing or unreadable source gives no value at all. The input type is checked against the
/// document schema when the path is read ([`crate::FieldPath`]'s parser).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Derivation {
    /// Whether a date is at least N years before the issuer's current date.
    Over(u16),
    /// The year of a date.
    Year,
    /// The country code of an address.
    Country,
    /// The first N characters of a text.
    Prefix(u8),
    /// Which band a price falls in; the bounds in major units, increasing.
    Band(Vec<u64>),
}

/// The type a derivation reads, from the document schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    Date,
    Address,
    Text,
    Price,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Date => "a date",
            Input::Address => "an address",
            Input::Text => "text",
            Input::Price => "a price",
        }
    }
}

/// Why a derivation could not be read or does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeriveError {
    /// No derivation by that name.
    Unknown(String),
    /// A known derivation with bad arguments; the text says which rule.
    Bad(&'static str),
    /// The source is not of the derivation's input type.
    WrongType { needs: &'static str, found: &'static str },
}

impl Derivation {
    /// Reads a derivation as written after the colon (`over(18)`, `band(10,50)`).
    pub(crate) fn parse(s: &str) -> Result<Self, DeriveError> {
        let s = s.trim();
        let (name, args) = match s.split_once('(') {
            Some((name, rest)) => {
                let Some(args) = rest.strip_suffix(')') else {
                    return Err(DeriveError::Bad(
                        "a derivation's arguments are written in parentheses: over(18)",
                    ));
                };
                (name.trim(), Some(args))
            }
            None => (s, None),
        };
        let numbers = |args: &str| -> Option<Vec<u64>> {
            args.split(',')
                .map(|a| {
                    let a = a.trim();
                    (!a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| a.parse().ok())
                        .flatten()
                })
                .collect()
        };
        match (name, args) {
            ("over", Some(args)) => match numbers(args).as_deref() {
                Some(&[n]) if (1..=u64::from(MAX_AGE)).contains(&n) => Ok(Derivation::Over(n as u16)),
                _ => Err(DeriveError::Bad("over(N) takes one whole number of years from 1 to 150")),
            },
            ("prefix", Some(args)) => match numbers(args).as_deref() {
                Some(&[n]) if (1..=u64::from(MAX_PREFIX)).contains(&n) => Ok(Derivation::Prefix(n as u8)),
                _ => Err(DeriveError::Bad("prefix(N) takes one whole number of characters from 1 to 4")),
            },
            ("band", Some(args)) => match numbers(args) {
                Some(bounds)
                    if (1..=MAX_BAND_BOUNDS).contains(&bounds.len())
                        && bounds.iter().all(|b| (1..=MAX_BAND_BOUND).contains(b))
                        && bounds.windows(2).all(|w| w[0] < w[1]) =>
                {
                    Ok(Derivation::Band(bounds))
                }
                _ => Err(DeriveError::Bad(
                    "band(B1,B2,...) takes 1 to 8 increasing whole amounts in major units, each from 1 to 1000000000",
                )),
            },
            ("year", None) => Ok(Derivation::Year),
            ("country", None) => Ok(Derivation::Country),
            ("year" | "country", Some(_)) => Err(DeriveError::Bad("year and country take no arguments")),
            ("over" | "prefix" | "band", None) => Err(DeriveError::Bad(
                "over, prefix and band need their numbers: over(18), prefix(2), band(10,50)",
            )),
            (other, _) => Err(DeriveError::Unknown(other.chars().take(40).collect())),
        }
    }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Derivation::Over(n) => write!(f, "over({n})"),
            Derivation::Year => f.write_str("year"),
            Derivation::Country => f.write_str("country"),
            Derivation::Prefix(n) => write!(f, "prefix({n})"),
            Derivation::Band(bounds) => {
                let list: Vec<String> = bounds.iter().map(u64::to_string).collect();
                write!(f, "band({})", list.join(","))
            }
        }
    }
}

impl Derivation {
    fn input(&self) -> Input {
        match self {
            Derivation::Over(_) | Derivation::Year => Input::Date,
            Derivation::Country => Input::Address,
            Derivation::Prefix(_) => Input::Text,
            Derivation::Band(_) => Input::Price,
        }
    }

    /// True when the value depends on the date as well as on the source (`over(N)`).
    pub fn is_dated(&self) -> bool {
        matches!(self, Derivation::Over(_))
    }

    /// Checks that `source` (a plain path) has this derivation's input type.
    pub(crate) fn check_source(&self, source: &FieldPath) -> Result<(), DeriveError> {
        let needs = self.input();
        match source_type(source) {
            Ok(found) if found == needs => Ok(()),
            Ok(found) => Err(DeriveError::WrongType { needs: needs.name(), found: found.name() }),
            Err(found) => Err(DeriveError::WrongType { needs: needs.name(), found }),
        }
    }

    /// The value derived from `source` on `today` (the issuer's UTC date); `None` when the
    /// source is missing, unreadable, or would be shipped whole.
    pub(crate) fn compute(&self, source: &Value, today: jiff::civil::Date) -> Option<Value> {
        match self {
            Derivation::Over(n) => {
                let born: jiff::civil::Date = source.as_str()?.parse().ok()?;
                Some(Value::Bool(age(born, today) >= i32::from(*n)))
            }
            Derivation::Year => {
                let date: jiff::civil::Date = source.as_str()?.parse().ok()?;
                Some(Value::from(date.year()))
            }
            Derivation::Country => {
                let country = source.as_object()?.get("country")?.as_str()?;
                let well_formed = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
                well_formed.then(|| Value::String(country.to_owned()))
            }
            Derivation::Prefix(n) => {
                let text = source.as_str()?.trim();
                let n = usize::from(*n);
                (text.chars().count() > n).then(|| Value::String(text.chars().take(n).collect()))
            }
            Derivation::Band(bounds) => {
                let amount = source.get("amount_minor")?.as_i64()?;
                let currency = source.get("currency")?.as_str()?;
                if amount < 0 || currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                    return None;
                }
                let scale = 10i128.pow(minor_digits(currency));
                let band =
                    bounds.iter().take_while(|b| i128::from(**b) * scale <= i128::from(amount)).count();
                let label = match (band.checked_sub(1).map(|i| bounds[i]), bounds.get(band)) {
                    (None, Some(hi)) => format!("under {hi} {currency}"),
                    (Some(lo), Some(hi)) => format!("{lo} to {hi} {currency}"),
                    (Some(lo), None) => format!("{lo} {currency} or more"),
                    (None, None) => return None,
                };
                Some(Value::String(label))
            }
        }
    }

    /// What the derived value says, in plain words, for the consent screen: what is shared
    /// and what is not (`whether you are over 18 (not your birthday)`).
    pub(crate) fn plain_words(&self, source: &FieldPath) -> String {
        let noun = noun(source);
        let birthday = matches!(source, FieldPath::Profile(s) if s == &["birthday"]);
        match self {
            Derivation::Over(n) if birthday => format!("whether you are over {n} (not your birthday)"),
            Derivation::Over(n) => format!("whether {noun} is at least {n} years ago (not the date)"),
            Derivation::Year if birthday => "your birth year (not the full date)".to_owned(),
            Derivation::Year => format!("the year of {noun} (not the full date)"),
            Derivation::Country => "your country (not your address)".to_owned(),
            Derivation::Prefix(1) => format!("the first character of {noun} (not all of it)"),
            Derivation::Prefix(n) => format!("the first {n} characters of {noun} (not all of it)"),
            Derivation::Band(bounds) => match (bounds.first(), bounds.last()) {
                (Some(first), Some(last)) => {
                    let mut bands = vec![format!("under {first}")];
                    bands.extend(bounds.windows(2).map(|w| format!("{} to {}", w[0], w[1])));
                    bands.push(format!("{last} or more"));
                    format!("the price band of each purchase: {} (not the exact price)", bands.join(", "))
                }
                _ => "the price band of each purchase (not the exact price)".to_owned(),
            },
        }
    }
}

/// Whole years from `born` to `today` (a birthday on 29 February counts from 1 March in other
/// years).
fn age(born: jiff::civil::Date, today: jiff::civil::Date) -> i32 {
    let years = i32::from(today.year()) - i32::from(born.year());
    if (today.month(), today.day()) < (born.month(), born.day()) { years - 1 } else { years }
}

/// The issuer's current date (UTC) at `now` (unix seconds).
pub(crate) fn today(now: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_second(now)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// How a field is named on the consent screen.
fn noun(source: &FieldPath) -> String {
    match source {
        FieldPath::Profile(s) => match s.last() {
            Some(last) => format!("your {last}"),
            None => "your profile".to_owned(),
        },
        FieldPath::Preferences(Some(key)) => format!("your preference {key}"),
        FieldPath::Purchases(Some(field)) => format!("the {field} of each purchase"),
        _ => "it".to_owned(),
    }
}

/// The schema type of a plain path: a derivation input, or what it is instead.
fn source_type(source: &FieldPath) -> Result<Input, &'static str> {
    let defs = &document_schema()["$defs"];
    let node = match source {
        FieldPath::Profile(segments) if !segments.is_empty() => {
            let mut node = &defs["profile"];
            for s in segments {
                node = &resolve(node, defs)["properties"][s.as_str()];
            }
            node.clone()
        }
        FieldPath::Preferences(Some(_)) => defs["preferences"]["additionalProperties"].clone(),
        FieldPath::Purchases(Some(field)) => defs["purchase"]["properties"][field.as_str()].clone(),
        _ => return Err("a group of fields"),
    };
    match node.get("$ref").and_then(Value::as_str) {
        Some("#/$defs/address") => return Ok(Input::Address),
        Some("#/$defs/price") => return Ok(Input::Price),
        _ => {}
    }
    let node = resolve(&node, defs);
    match (node["type"].as_str(), node["format"].as_str()) {
        (Some("string"), Some("date")) => Ok(Input::Date),
        (Some("string"), _) => Ok(Input::Text),
        (Some("integer" | "number"), _) => Err("a number"),
        (Some("array"), _) => Err("a list"),
        _ => Err("a group of fields"),
    }
}

/// Follows a local `$ref` once.
fn resolve<'a>(node: &'a Value, defs: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(def) => &defs[def],
        None => node,
    }
}

/// The distinct `over(N)` thresholds of each date field among `fields`.
pub(crate) fn age_thresholds<'a>(
    fields: impl IntoIterator<Item = &'a FieldPath>,
) -> BTreeMap<&'a FieldPath, BTreeSet<u16>> {
    let mut out: BTreeMap<&FieldPath, BTreeSet<u16>> = BTreeMap::new();
    for field in fields {
        if let Some((source, Derivation::Over(n))) = field.derived() {
            out.entry(source).or_default().insert(*n);
        }
    }
    out
}

/// The first date field with more than [`MAX_AGE_THRESHOLDS`] distinct thresholds.
pub(crate) fn too_many_thresholds<'a>(fields: impl IntoIterator<Item = &'a FieldPath>) -> Option<String> {
    age_thresholds(fields).into_iter().find(|(_, n)| n.len() > MAX_AGE_THRESHOLDS).map(|(s, _)| s.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn date(s: &str) -> jiff::civil::Date {
        s.parse().unwrap()
    }

    #[test]
    fn derivations_parse_and_print_back() {
        for d in ["over(18)", "year", "country", "prefix(2)", "band(10,50,100)", "over(150)", "band(1)"] {
            assert_eq!(Derivation::parse(d).unwrap().to_string(), d);
        }
        assert_eq!(Derivation::parse("band(10, 50 ,100)").unwrap().to_string(), "band(10,50,100)");
    }

    #[test]
    fn bad_derivations_are_refused_with_the_rule() {
        assert_eq!(Derivation::parse("age"), Err(DeriveError::Unknown("age".into())));
        assert_eq!(Derivation::parse("over18"), Err(DeriveError::Unknown("over18".into())));
        for bad in [
            "over(0)",
            "over(151)",
            "over(+18)",
            "over(18,19)",
            "over(1.5)",
            "over()",
            "over",
            "over(18",
            "prefix(0)",
            "prefix(5)",
            "band()",
            "band(50,10)",
            "band(10,10)",
            "band(0,10)",
            "band(1,2,3,4,5,6,7,8,9)",
            "band(99999999999)",
            "year(2)",
            "country()",
        ] {
            assert!(matches!(Derivation::parse(bad), Err(DeriveError::Bad(_))), "{bad}");
        }
    }

    #[test]
    fn over_counts_whole_years_on_the_issuers_date() {
        let over18 = Derivation::Over(18);
        let b = json!("2008-06-15");
        assert_eq!(over18.compute(&b, date("2026-06-14")), Some(json!(false)));
        assert_eq!(over18.compute(&b, date("2026-06-15")), Some(json!(true)), "on the birthday");
        let leap = json!("2008-02-29");
        assert_eq!(over18.compute(&leap, date("2026-02-28")), Some(json!(false)));
        assert_eq!(over18.compute(&leap, date("2026-03-01")), Some(json!(true)));
        assert_eq!(over18.compute(&json!("2030-01-01"), date("2026-01-01")), Some(json!(false)), "future");
        assert_eq!(over18.compute(&json!("31/12/1990"), date("2026-01-01")), None, "unreadable: absent");
        assert_eq!(over18.compute(&Value::Null, date("2026-01-01")), None, "missing: absent");
        assert_eq!(Derivation::Year.compute(&b, date("2026-01-01")), Some(json!(2008)));
    }

    #[test]
    fn country_prefix_and_band() {
        let today = date("2026-01-01");
        let address = json!({"street": "1 rue", "city": "Lyon", "postcode": "69001", "country": "FR"});
        assert_eq!(Derivation::Country.compute(&address, today), Some(json!("FR")));
        assert_eq!(Derivation::Country.compute(&json!({"city": "Lyon"}), today), None);
        assert_eq!(Derivation::Prefix(2).compute(&json!("69001"), today), Some(json!("69")));
        assert_eq!(Derivation::Prefix(2).compute(&json!("69"), today), None, "never the whole value");
        assert_eq!(Derivation::Prefix(1).compute(&json!("Ölm"), today), Some(json!("Ö")), "characters");
        let band = Derivation::Band(vec![10, 50, 100]);
        let price = |amount: i64, currency: &str| json!({"amount_minor": amount, "currency": currency});
        assert_eq!(band.compute(&price(999, "EUR"), today), Some(json!("under 10 EUR")));
        assert_eq!(band.compute(&price(1000, "EUR"), today), Some(json!("10 to 50 EUR")));
        assert_eq!(band.compute(&price(4999, "EUR"), today), Some(json!("10 to 50 EUR")));
        assert_eq!(band.compute(&price(10_000, "EUR"), today), Some(json!("100 EUR or more")));
        assert_eq!(band.compute(&price(60, "JPY"), today), Some(json!("50 to 100 JPY")), "no minor unit");
        assert_eq!(band.compute(&price(i64::MAX, "KWD"), today), Some(json!("100 KWD or more")));
        assert_eq!(band.compute(&json!("12.50"), today), None);
    }

    #[test]
    fn sources_are_typed_by_the_schema() {
        let p = |s: &str| s.parse::<FieldPath>().unwrap();
        let over = Derivation::Over(18);
        assert_eq!(over.check_source(&p("profile.birthday")), Ok(()));
        assert_eq!(over.check_source(&p("purchases.*.date")), Ok(()));
        assert_eq!(
            over.check_source(&p("profile.email")),
            Err(DeriveError::WrongType { needs: "a date", found: "text" })
        );
        assert_eq!(Derivation::Country.check_source(&p("profile.address")), Ok(()));
        assert_eq!(
            Derivation::Country.check_source(&p("profile")),
            Err(DeriveError::WrongType { needs: "an address", found: "a group of fields" })
        );
        assert_eq!(Derivation::Prefix(2).check_source(&p("profile.address.postcode")), Ok(()));
        assert_eq!(Derivation::Prefix(2).check_source(&p("preferences.diet")), Ok(()));
        assert!(Derivation::Prefix(2).check_source(&p("profile.birthday")).is_err(), "a date is not text");
        assert_eq!(Derivation::Band(vec![10]).check_source(&p("purchases.*.price")), Ok(()));
        assert_eq!(
            Derivation::Band(vec![10]).check_source(&p("purchases.*.rating")),
            Err(DeriveError::WrongType { needs: "a price", found: "a number" })
        );
        assert!(Derivation::Year.check_source(&p("purchases.*.tags")).is_err());
    }

    #[test]
    fn plain_words_say_what_is_not_shared() {
        let p = |s: &str| s.parse::<FieldPath>().unwrap();
        assert_eq!(
            Derivation::Over(18).plain_words(&p("profile.birthday")),
            "whether you are over 18 (not your birthday)"
        );
        assert_eq!(
            Derivation::Year.plain_words(&p("profile.birthday")),
            "your birth year (not the full date)"
        );
        assert_eq!(Derivation::Country.plain_words(&p("profile.address")), "your country (not your address)");
        assert_eq!(
            Derivation::Prefix(2).plain_words(&p("profile.address.postcode")),
            "the first 2 characters of your postcode (not all of it)"
        );
        assert_eq!(
            Derivation::Band(vec![10, 50]).plain_words(&p("purchases.*.price")),
            "the price band of each purchase: under 10, 10 to 50, 50 or more (not the exact price)"
        );
    }

    #[test]
    fn today_is_the_utc_date() {
        assert_eq!(today(0), date("1970-01-01"));
        assert_eq!(today(1_800_000_000), date("2027-01-15"));
        assert_eq!(today(i64::MAX), date("1970-01-01"), "out of range: no panic");
    }
}
