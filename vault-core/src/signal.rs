//! Topics and signals: the public side of the market (see `docs/intentions.md`). A topic is a
//! category and an optional coarse place (`coffee/FR`); a signal is a coarse word about one
//! purchase (item, seller, rating, a price band, a place, a month), published to a topic under
//! the publisher's pseudonym for that topic. Nothing in a signal names the identity or a device;
//! an exact price or date goes only when the customer chose it.

use serde::{Deserialize, Serialize};

use crate::intent::{Budget, Pseudonym, PseudonymKey, valid_place, valid_tag};

/// The label a signal's pseudonym signs under.
const LABEL: &[u8] = b"vault/signal/1";
/// Longest wire form of a signed signal.
pub const MAX_SIGNAL_BYTES: usize = 2048;
/// Longest item or seller name in a signal.
pub const MAX_SIGNAL_TEXT: usize = 120;

/// A topic's name: `CATEGORY` or `CATEGORY/PLACE` (`coffee`, `coffee/FR`, `books/FR-IDF`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

/// A topic name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a topic is a category (lowercase letters, digits, - and _), optionally with a place: coffee, \
     coffee/FR, books/FR-IDF"
)]
pub struct TopicError;

impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        let (category, place) = match s.split_once('/') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        if !valid_tag(category) || place.is_some_and(|p| !valid_place(p)) {
            return Err(TopicError);
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Topic {
    type Error = TopicError;
    fn try_from(s: String) -> Result<Self, TopicError> {
        s.parse()
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> String {
        t.0
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Topic {
    /// The 32-byte id the broadcast layer knows the topic by.
    pub fn id(&self) -> [u8; 32] {
        blake3::derive_key("vault topic id v1", self.0.as_bytes())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category (the part before `/`).
    pub fn category(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The place (the part after `/`), if any.
    pub fn place(&self) -> Option<&str> {
        self.0.split_once('/').map(|(_, p)| p)
    }
}

/// One purchase, as a topic hears of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// The publisher's pseudonym for this topic.
    pub pseudonym: Pseudonym,
    /// The topic.
    pub topic: Topic,
    /// What was bought.
    pub item: String,
    /// Who sold it.
    pub seller: String,
    /// 1 to 5 stars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    /// The price, as a band (one figure only when the customer chose it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Budget>,
    /// A coarse place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// When: a month (`YYYY-MM`), or a day (`YYYY-MM-DD`) only when the customer chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// A signal that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Its content breaks a rule.
    #[error("a signal's {0} is not what a signal may carry")]
    Content(&'static str),
    /// The signature does not verify, or the bytes do not decode.
    #[error("a signal that does not verify")]
    Forged,
}

fn fit_text(text: &str) -> bool {
    !text.trim().is_empty() && text.chars().count() <= MAX_SIGNAL_TEXT && !text.chars().any(char::is_control)
}

impl Signal {
    /// Checks what a signal may carry.
    pub fn check(&self) -> Result<(), SignalError> {
        if !fit_text(&self.item) {
            return Err(SignalError::Content("item"));
        }
        if !fit_text(&self.seller) {
            return Err(SignalError::Content("seller"));
        }
        if self.rating.is_some_and(|r| !(1..=5).contains(&r)) {
            return Err(SignalError::Content("rating"));
        }
        if self.price.as_ref().is_some_and(|b| !b.is_band() || !crate::schema::is_known_currency(&b.currency))
        {
            return Err(SignalError::Content("price"));
        }
        if self.place.as_deref().is_some_and(|p| !valid_place(p)) {
            return Err(SignalError::Content("place"));
        }
        let month =
            |w: &str| w.len() == 7 && jiff::civil::Date::strptime("%Y-%m-%d", format!("{w}-01")).is_ok();
        let day = |w: &str| w.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", w).is_ok();
        if self.when.as_deref().is_some_and(|w| !month(w) && !day(w)) {
            return Err(SignalError::Content("date"));
        }
        Ok(())
    }

    /// Signs it with the topic pseudonym's key (which must be the one it names).
    pub fn sign(self, key: &PseudonymKey) -> Result<SignedSignal, SignalError> {
        self.check()?;
        if key.public() != self.pseudonym {
            return Err(SignalError::Forged);
        }
        let body = serde_json::to_vec(&self).expect("serializes");
        let signature = data_encoding::HEXLOWER.encode(&key.sign(LABEL, &body));
        Ok(SignedSignal { signal: self, signature })
    }

    /// The item's name as counted: trimmed, lowercase.
    pub fn item_key(&self) -> String {
        self.item.trim().to_lowercase()
    }
}

/// A signal with its pseudonym's signature: what goes on a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSignal {
    /// The signal.
    pub signal: Signal,
    /// Its pseudonym's signature over the signal's JSON, in hex.
    pub signature: String,
}

impl SignedSignal {
    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    /// Reads a signal this vault verified before sealing it, without verifying it again.
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Reads and verifies a signed signal.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignalError> {
        if bytes.len() > MAX_SIGNAL_BYTES {
            return Err(SignalError::Forged);
        }
        let signed: Self = serde_json::from_slice(bytes).map_err(|_| SignalError::Forged)?;
        // Verified over its re-encoded JSON, so only that encoding is taken: one wire form each.
        if signed.to_bytes() != bytes {
            return Err(SignalError::Forged);
        }
        signed.signal.check()?;
        let raw =
            data_encoding::HEXLOWER.decode(signed.signature.as_bytes()).map_err(|_| SignalError::Forged)?;
        let signature: [u8; 64] = raw.try_into().map_err(|_| SignalError::Forged)?;
        let body = serde_json::to_vec(&signed.signal).expect("serializes");
        if !signed.signal.pseudonym.verify(LABEL, &body, &signature) {
            return Err(SignalError::Forged);
        }
        Ok(signed)
    }
}
