//! Intentions: what a customer wants, told to sellers under a pseudonym made for that intention
//! alone (see `docs/intentions.md`). This module holds the statement, the key that signs it
//! and what it may carry: a budget as a band, never one figure unless the customer chose it; a
//! day, never a time; a coarse place; nothing of the identity or its devices.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::identity::{Pseudonym, PseudonymKey};
use crate::money::minor_digits;

/// The domain-separation label an intention's signature is made under: no other statement's
/// signature (each under a label of its own) can pass for an intention's, nor the other way.
const LABEL: &[u8] = b"vault/intention/1";
/// Longest text of what is wanted.
pub const MAX_WHAT: usize = 200;
/// Most tags on one intention.
pub const MAX_INTENT_TAGS: usize = 8;
/// Longest wire form of a signed intention accepted.
pub const MAX_INTENTION_BYTES: usize = 4096;

/// A budget: a band in the currency's major unit, `low` included, `high` not; one figure
/// (`low == high`) only when the customer chose to give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Lowest, in major units.
    pub low: u64,
    /// Highest, in major units.
    pub high: u64,
    /// ISO 4217 code.
    pub currency: String,
}

/// The bounds budgets are rounded to: 1, 2, 5, 10, 20, 50... in major units.
fn bounds() -> impl Iterator<Item = u64> {
    (0..16u32).flat_map(|e| [1u64, 2, 5].map(|m| m * 10u64.pow(e)))
}

impl Budget {
    /// The band an amount (in minor units) falls in, on the 1-2-5 scale: 150.00 EUR is
    /// `100 to 200 EUR`. The amount itself is not kept.
    pub fn band(amount_minor: i64, currency: &str) -> Self {
        let major = u64::try_from(amount_minor.max(0)).unwrap_or(0) / 10u64.pow(minor_digits(currency));
        let low = bounds().take_while(|b| *b <= major).last().unwrap_or(0);
        let high = bounds().find(|b| *b > major).unwrap_or(u64::MAX);
        Self { low, high, currency: currency.to_owned() }
    }

    /// A band as [`Budget::band`] makes them: two neighbouring bounds of the 1-2-5 scale (or
    /// from 0 to 1), or one figure.
    pub fn is_band(&self) -> bool {
        if self.low == self.high {
            return true;
        }
        let next = bounds().find(|b| *b > self.low);
        (self.low == 0 || bounds().any(|b| b == self.low)) && next == Some(self.high)
    }

    /// One figure, when the customer chose to give it.
    pub fn exact(major: u64, currency: &str) -> Self {
        Self { low: major, high: major, currency: currency.to_owned() }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{} {}", self.low, self.currency)
        } else {
            write!(f, "{} to {} {}", self.low, self.high, self.currency)
        }
    }
}

/// What a customer wants, as sent: signed by its pseudonym.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intention {
    /// The pseudonym that signs it (its only name).
    pub pseudonym: Pseudonym,
    /// The item or category wanted.
    pub what: String,
    /// Tags (lowercase), at most [`MAX_INTENT_TAGS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// A coarse place: a two-letter country code, or `CC-REGION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// The last day it holds (`YYYY-MM-DD`): a day, never a time.
    pub until: String,
}

/// What the customer typed, before it becomes an intention: [`IntentionDraft::make`] keeps of
/// it only what an intention may carry.
#[derive(Clone, Debug, Default)]
pub struct IntentionDraft {
    /// The item or category wanted.
    pub what: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The most the customer would pay; sent as the band it falls in.
    pub budget: Option<crate::money::Price>,
    /// Send the budget as this one figure instead (the customer chose to).
    pub exact_budget: bool,
    /// A coarse place.
    pub place: Option<String>,
    /// Until when (unix seconds): sent as the day it falls in (UTC).
    pub until: i64,
}

impl IntentionDraft {
    /// A fresh pseudonym and the intention it signs.
    pub fn make(&self) -> Result<(PseudonymKey, SignedIntention), IntentError> {
        let key = PseudonymKey::generate();
        let budget = self.budget.as_ref().map(|p| {
            if self.exact_budget {
                let major =
                    u64::try_from(p.amount_minor.max(0)).unwrap_or(0) / 10u64.pow(minor_digits(&p.currency));
                Budget::exact(major, &p.currency)
            } else {
                Budget::band(p.amount_minor, &p.currency)
            }
        });
        let until = jiff::Timestamp::from_second(self.until).map_err(|_| IntentError::Until)?;
        let intention = Intention {
            pseudonym: key.public(),
            what: self.what.trim().to_owned(),
            tags: self.tags.clone(),
            budget,
            place: self.place.clone(),
            until: until.to_zoned(jiff::tz::TimeZone::UTC).date().to_string(),
        };
        let signed = intention.sign(&key)?;
        Ok((key, signed))
    }
}

/// An intention could not be made or taken; the messages name the problem, never the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentError {
    /// What is wanted is empty, too long, or holds control characters.
    #[error("what you want must be 1-{MAX_WHAT} characters of text")]
    What,
    /// A tag is not lowercase letters, digits, - and _.
    #[error(
        "tags use lowercase letters, digits, - and _ (at most 40), and at most {MAX_INTENT_TAGS} of them"
    )]
    Tags,
    /// A budget band upside down, or its currency unknown.
    #[error("a budget is a band from low to high in a known currency")]
    Budget,
    /// Not a country code, nor `CC-REGION`.
    #[error("a place is a two-letter country code (FR), or a country and a region (FR-IDF)")]
    Place,
    /// Not a day.
    #[error("until is a day, YYYY-MM-DD")]
    Until,
    /// The signature does not verify for its pseudonym, or the bytes do not decode.
    #[error("an intention that does not verify")]
    Forged,
}

pub(crate) fn valid_tag(tag: &str) -> bool {
    (1..=40).contains(&tag.len())
        && tag.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(crate) fn valid_place(place: &str) -> bool {
    let (country, region) = match place.split_once('-') {
        Some((c, r)) => (c, Some(r)),
        None => (place, None),
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && region.is_none_or(|r| (1..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Intention {
    /// Checks what an intention may carry (made here or received).
    pub fn check(&self) -> Result<(), IntentError> {
        let what = self.what.trim();
        if what.is_empty() || self.what.chars().count() > MAX_WHAT || self.what.chars().any(char::is_control)
        {
            return Err(IntentError::What);
        }
        if self.tags.len() > MAX_INTENT_TAGS || !self.tags.iter().all(|t| valid_tag(t)) {
            return Err(IntentError::Tags);
        }
        if let Some(b) = &self.budget
            && (b.low > b.high || !crate::schema::is_known_currency(&b.currency))
        {
            return Err(IntentError::Budget);
        }
        if self.place.as_deref().is_some_and(|p| !valid_place(p)) {
            return Err(IntentError::Place);
        }
        if jiff::civil::Date::strptime("%Y-%m-%d", &self.until).is_err() || self.until.len() != 10 {
            return Err(IntentError::Until);
        }
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    /// Signs it with its pseudonym's key (which must be the one it names).
    pub fn sign(self, key: &PseudonymKey) -> Result<SignedIntention, IntentError> {
        self.check()?;
        if key.public() != self.pseudonym {
            return Err(IntentError::Forged);
        }
        let signature = key.sign(LABEL, &self.body());
        Ok(SignedIntention { intention: self, signature: data_encoding::HEXLOWER.encode(&signature) })
    }
}

/// An intention with its pseudonym's signature: what goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedIntention {
    /// The intention.
    pub intention: Intention,
    /// Its pseudonym's signature over the intention's JSON under the label `vault/intention/1`, in hex.
    pub signature: String,
}

impl SignedIntention {
    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    /// Reads and verifies a signed intention: it decodes, its content is what an intention
    /// may carry, and its pseudonym signed it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IntentError> {
        if bytes.len() > MAX_INTENTION_BYTES {
            return Err(IntentError::Forged);
        }
        let signed: Self = serde_json::from_slice(bytes).map_err(|_| IntentError::Forged)?;
        // Verified over its re-encoded body, so only that encoding is taken: one wire form each.
        if signed.to_bytes() != bytes {
            return Err(IntentError::Forged);
        }
        signed.intention.check()?;
        let raw =
            data_encoding::HEXLOWER.decode(signed.signature.as_bytes()).map_err(|_| IntentError::Forged)?;
        let signature: [u8; 64] = raw.try_into().map_err(|_| IntentError::Forged)?;
        if !signed.intention.pseudonym.verify(LABEL, &signed.intention.body(), &signature) {
            return Err(IntentError::Forged);
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests;

/// The label under which an intention's pseudonym signs an acceptance's body.
const ACCEPT_LABEL: &[u8] = b"vault/intention/accept/1";
/// The label under which an intention's pseudonym signs its withdrawal.
const WITHDRAW_LABEL: &[u8] = b"vault/intention/withdraw/1";

/// The pseudonym's signature over an acceptance's body (`Signed::<Acceptance>::body`): with the
/// identity's own, it proves to the seller that the customer holds the intention's key.
pub fn cosign_acceptance(key: &PseudonymKey, acceptance_body: &[u8]) -> [u8; 64] {
    key.sign(ACCEPT_LABEL, acceptance_body)
}

/// Checks [`cosign_acceptance`]'s signature.
pub fn verify_acceptance_cosign(pseudonym: &Pseudonym, acceptance_body: &[u8], signature: &[u8; 64]) -> bool {
    pseudonym.verify(ACCEPT_LABEL, acceptance_body, signature)
}

/// The label under which an intention's pseudonym asks a topic for the offers made to it.
const POLL_LABEL: &[u8] = b"vault/intention/poll/1";

/// Length of a stamp's wire form (a [`Withdrawal`], a [`Poll`]): pseudonym, time, signature.
pub const STAMP_LEN: usize = 32 + 8 + 64;

/// A pseudonym's signed word at a time, under a label of its kind.
macro_rules! stamp_type {
    ($(#[$doc:meta])* $name:ident, $label:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            /// The intention's pseudonym.
            pub pseudonym: Pseudonym,
            /// When (unix seconds).
            pub at: i64,
            signature: [u8; 64],
        }

        impl $name {
            fn signed_bytes(pseudonym: &Pseudonym, at: i64) -> [u8; 40] {
                let mut out = [0u8; 40];
                out[..32].copy_from_slice(pseudonym.as_bytes());
                out[32..].copy_from_slice(&at.to_be_bytes());
                out
            }

            /// Made by `key`'s pseudonym at `at`.
            pub fn sign(key: &PseudonymKey, at: i64) -> Self {
                let pseudonym = key.public();
                let signature = key.sign($label, &Self::signed_bytes(&pseudonym, at));
                Self { pseudonym, at, signature }
            }

            /// The wire form ([`STAMP_LEN`] bytes).
            pub fn to_bytes(&self) -> Vec<u8> {
                [&Self::signed_bytes(&self.pseudonym, self.at)[..], &self.signature[..]].concat()
            }

            /// Reads and verifies one.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IntentError> {
                if bytes.len() != STAMP_LEN {
                    return Err(IntentError::Forged);
                }
                let pseudonym = Pseudonym::from_bytes(bytes[..32].try_into().expect("32 bytes"))
                    .map_err(|_| IntentError::Forged)?;
                let at = i64::from_be_bytes(bytes[32..40].try_into().expect("8 bytes"));
                let signature: [u8; 64] = bytes[40..].try_into().expect("64 bytes");
                if !pseudonym.verify($label, &bytes[..40], &signature) {
                    return Err(IntentError::Forged);
                }
                Ok(Self { pseudonym, at, signature })
            }
        }
    };
}

stamp_type!(
    /// An intention withdrawn, signed by its pseudonym: whoever holds the intention drops it.
    Withdrawal,
    WITHDRAW_LABEL
);

stamp_type!(
    /// An intention's pseudonym asking a public topic for the offers made to it: sellers that
    /// made one answer on the topic (the customer has no address to be called at).
    Poll,
    POLL_LABEL
);
