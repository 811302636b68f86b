//! Signed statements: the machinery shared by grants, revocations, erasure receipts, consent
//! requests and denials, and the ids that name them.
//!
//! A statement is serialized once to JSON (its *body*) and signed by its author's identity
//! under a versioned domain-separation label. The signature covers the exact body bytes, which
//! travel and are stored as they are; verification parses the body, checks the author's
//! signature strictly (`verify_strict`: no malleable signatures, no small-order keys) and the
//! statement's own rules. A statement that does not check out is refused wherever it arrives.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::{DeviceCertificate, DeviceId, IdentityId};
use crate::signer::{self, By, Signer};

/// Largest statement body, in bytes.
const MAX_BODY_LEN: usize = 16 * 1024;

macro_rules! serde_via_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Defines an 80-bit random id, printed as 16 lowercase base32 characters.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 10]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self($crate::primitives::random_array())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 10] {
                &self.0
            }

            /// Wraps raw bytes; `None` unless exactly 10.
            pub fn from_raw(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&::data_encoding::BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::statement::StatementError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || $crate::statement::StatementError::BadId { kind: $kind, value: s.chars().take(40).collect() };
                let bytes =
                    ::data_encoding::BASE32_NOPAD.decode(s.trim().to_ascii_uppercase().as_bytes()).map_err(|_| bad())?;
                Ok(Self(bytes.try_into().map_err(|_| bad())?))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// The id of a grant: 80 random bits, printed as 16 lowercase base32 characters.
    GrantId,
    "grant"
);

random_id!(
    /// The id of a consent request: 80 random bits, printed as 16 lowercase base32 characters.
    RequestId,
    "request"
);

random_id!(
    /// The id of a breach notice: 80 random bits, printed as 16 lowercase base32 characters.
    NoticeId,
    "notice"
);

serde_via_string!(IdentityId);
serde_via_string!(crate::identity::DeviceId);

/// A statement could not be made or did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The bytes are not a statement of this kind.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not verify for the stated author.
    #[error("the {0}'s signature does not verify")]
    BadSignature(&'static str),
    /// The statement breaks one of its rules.
    #[error("invalid {kind}: {rule}")]
    Invalid {
        /// The kind of statement.
        kind: &'static str,
        /// The rule it breaks.
        rule: Rule,
    },
    /// The signing key is not the statement's author.
    #[error("the {0} must be signed by its author")]
    WrongSigner(&'static str),
    /// Not an id of this kind.
    #[error("invalid {kind} id \"{value}\"")]
    BadId {
        /// What the id names.
        kind: &'static str,
        /// The text given.
        value: String,
    },
}

/// True for characters that can steer a terminal or reorder what it shows: control characters
/// (C0, DEL, C1: newline, escape, ...), the bidirectional overrides and isolates, and the line
/// and paragraph separators. Text another person wrote must hold none of them where a single
/// line is meant, and printers show them as visible escapes.
pub fn is_steering_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// A rule of a statement that a statement broke. Messages never echo the statement's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rule {
    /// It names no field.
    #[error("it {verb} no field")]
    NoField {
        /// What the statement does with its fields ("covers", "asks for").
        verb: &'static str,
    },
    /// It names more than [`crate::MAX_FIELDS`] fields.
    #[error("it {verb} more than {max} fields")]
    TooManyFields {
        /// What the statement does with its fields.
        verb: &'static str,
        /// The limit.
        max: usize,
    },
    /// The purpose is empty.
    #[error("the purpose is required")]
    NoPurpose,
    /// A text is longer than its limit.
    #[error("the {what} is longer than {max} bytes")]
    TooLong {
        /// Which text ("purpose", "reason").
        what: &'static str,
        /// The limit, in bytes.
        max: usize,
    },
    /// A single-line text holds a [steering](is_steering_char) character.
    #[error("the {what} contains a control character (U+{code_point:04X})")]
    SteeringCharacter {
        /// Which text ("purpose", "reason", "record filter").
        what: &'static str,
        /// The first such character.
        code_point: u32,
    },
    /// A price band without prices (a band is a price).
    #[error("a price band is a price: it needs prices included (no --no-prices)")]
    BandWithoutPrices,
    /// Too many answers about one field (dates: `year` and `over(N)`; prices: bands): together
    /// they would narrow the value down.
    #[error("it names {what}")]
    TooRevealing {
        /// What there are too many of, in words.
        what: &'static str,
    },
    /// A record filter without a purchases field to apply to.
    #[error("a record filter needs a purchases field")]
    FilterWithoutPurchases,
    /// Both parties are one identity.
    #[error("{0} are the same identity")]
    SameIdentity(&'static str),
    /// A grant that expires before it is issued.
    #[error("it expires before it is issued")]
    ExpiresBeforeIssued,
    /// A requested duration out of range.
    #[error("the duration must be between one second and ten years")]
    DurationOutOfRange,
    /// A receipt dated before the grant it answers.
    #[error("it is dated before the grant was issued")]
    DatedBeforeGrant,
    /// A statement dated too far in the future.
    #[error("it is dated in the future")]
    DatedInFuture,
    /// A window that ends before it starts, or ends in the future.
    #[error("its window ends before it starts, or after it was made")]
    BadWindow,
    /// A required text is empty.
    #[error("the {0} is required")]
    NoText(&'static str),
    /// A list that names one item twice, or more items than its limit.
    #[error("it lists {what} twice or more than {max} of them")]
    BadList {
        /// What is listed.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

/// Refuses a single-line text that holds a [steering](is_steering_char) character, naming the
/// first one by its code point.
pub(crate) fn check_single_line(what: &'static str, text: &str) -> Result<(), Rule> {
    match text.chars().find(|c| is_steering_char(*c)) {
        Some(c) => Err(Rule::SteeringCharacter { what, code_point: u32::from(c) }),
        None => Ok(()),
    }
}

/// A kind of signed statement.
pub trait Statement: Serialize + DeserializeOwned + Clone {
    /// Domain-separation label, versioned.
    const LABEL: &'static [u8];
    /// Name used in messages.
    const KIND: &'static str;
    /// Whose signature the statement must carry.
    fn author(&self) -> IdentityId;
    /// When its author made it (unix seconds): the time the key-state rule judges the signing
    /// key by (see `key_event`).
    fn made_at(&self) -> i64;
    /// The statement's own rules, checked on signing and on verification.
    fn check(&self) -> Result<(), Rule>;
}

/// A stored or received statement's parts: body, signature, and what follows it (nothing, the
/// signing key, or the signing device's certificate).
type Parts<'a> = (&'a [u8], [u8; 64], &'a [u8]);

/// A statement with its author's signature over its exact body bytes: the identity's own, or one
/// of its devices' with the identity's certificate for that device (see `signer`).
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: Vec<u8>,
    signature: [u8; 64],
    by: By,
    statement: T,
}

impl<T: Statement + fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signed").field(&self.statement).finish()
    }
}

impl<T: Statement> Signed<T> {
    /// Signs `statement` as its author: with the identity key, or with a device of it.
    pub fn sign<'a>(statement: T, signer: impl Into<Signer<'a>>) -> Result<Self, StatementError> {
        let signer = signer.into();
        if statement.author() != signer.identity() {
            return Err(StatementError::WrongSigner(T::KIND));
        }
        statement.check().map_err(|rule| StatementError::Invalid { kind: T::KIND, rule })?;
        let body = serde_json::to_vec(&statement).map_err(|_| StatementError::Malformed(T::KIND))?;
        let (signature, by) = signer.sign(T::LABEL, &body);
        Ok(Self { body, signature, by, statement })
    }

    /// Verifies a body and the author's own signature, received from anywhere.
    pub fn verify(body: &[u8], signature: &[u8; 64]) -> Result<Self, StatementError> {
        Self::verify_by(body, signature, By::Identity)
    }

    /// Verifies a body and a signature by what `by` says signed: its author's own key, another
    /// key (of its key state, which the accepting vault checks), or a device `by` certifies for
    /// its author.
    pub fn verify_by(body: &[u8], signature: &[u8; 64], by: By) -> Result<Self, StatementError> {
        if body.len() > MAX_BODY_LEN {
            return Err(StatementError::Malformed(T::KIND));
        }
        let statement: T = serde_json::from_slice(body).map_err(|_| StatementError::Malformed(T::KIND))?;
        if !signer::verify(&statement.author(), T::LABEL, body, signature, &by) {
            return Err(StatementError::BadSignature(T::KIND));
        }
        statement.check().map_err(|rule| StatementError::Invalid { kind: T::KIND, rule })?;
        Ok(Self { body: body.to_vec(), signature: *signature, by, statement })
    }

    /// The device that signed, when it was not an identity key. Whoever accepts the
    /// statement checks that this device was not removed.
    pub fn signed_by(&self) -> Option<DeviceId> {
        match &self.by {
            By::Device(cert) => Some(cert.device()),
            _ => None,
        }
    }

    /// What signed it: the identity's own key, a rotated key of it, or a device.
    pub fn by(&self) -> &By {
        &self.by
    }

    /// The statement.
    pub fn statement(&self) -> &T {
        &self.statement
    }

    /// The exact signed bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Self-delimiting encoding for storage and the wire: body length (u32 BE), body, signature,
    /// then what signed when it was not the identity id's own key: the signing key (32 bytes)
    /// after a rotation, or the signing device's certificate (128 bytes). A statement signed by
    /// the identity id's key encodes exactly as before rotations existed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.body.len() + 64 + 128);
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        match &self.by {
            By::Identity => {}
            By::Key(key) => out.extend_from_slice(key.as_bytes()),
            By::Device(cert) => out.extend_from_slice(&cert.to_bytes()),
        }
        out
    }

    /// Splits the encoding of [`Signed::to_bytes`] into body, signature and certificate bytes.
    fn split(bytes: &[u8]) -> Option<Parts<'_>> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        if len > MAX_BODY_LEN {
            return None;
        }
        let rest = bytes.get(4..)?;
        match rest.len().checked_sub(len + 64)? {
            0 | 32 | 128 => {}
            _ => return None,
        }
        Some((&rest[..len], rest[len..len + 64].try_into().ok()?, &rest[len + 64..]))
    }

    /// Reads what follows the signature (see [`Signed::to_bytes`]).
    fn read_by(bytes: &[u8]) -> Option<By> {
        Some(match bytes.len() {
            0 => By::Identity,
            32 => By::Key(IdentityId::from_bytes(bytes.try_into().ok()?).ok()?),
            128 => By::Device(Box::new(DeviceCertificate::from_bytes(bytes).ok()?)),
            _ => return None,
        })
    }

    /// Reads the encoding of [`Signed::to_bytes`] *without* verifying the signature. Only for
    /// statements this vault verified before storing them, read back from sealed storage.
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Self> {
        let (body, signature, by) = Self::split(bytes)?;
        let by = Self::read_by(by)?;
        let statement: T = serde_json::from_slice(body).ok()?;
        Some(Self { body: body.to_vec(), signature, by, statement })
    }

    /// Reads and verifies the encoding of [`Signed::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StatementError> {
        let malformed = || StatementError::Malformed(T::KIND);
        let (body, signature, by) = Self::split(bytes).ok_or_else(malformed)?;
        let by = Self::read_by(by).ok_or_else(malformed)?;
        Self::verify_by(body, &signature, by)
    }
}
