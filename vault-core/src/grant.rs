//! Signed statements: grants, revocations and erasure receipts.
//!
//! A statement is serialized once to JSON (its *body*) and signed by its author's identity
//! under a versioned domain-separation label. The signature covers the exact body bytes, which
//! travel and are stored as they are; verification parses the body, checks the author's
//! signature strictly (`verify_strict`: no malleable signatures, no small-order keys) and the
//! statement's own rules. A statement that does not check out is refused wherever it arrives.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::{Identity, IdentityId};
use crate::path::{FieldPath, RecordFilter};

/// Longest purpose text, in bytes.
pub const MAX_PURPOSE_LEN: usize = 500;
/// Most field paths in one grant.
pub const MAX_FIELDS: usize = 64;
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
            type Err = $crate::grant::StatementError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || $crate::grant::StatementError::BadId { kind: $kind, value: s.chars().take(40).collect() };
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

serde_via_string!(IdentityId);

pub(crate) use random_id;

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
    #[error("invalid {kind}: {problem}")]
    Invalid {
        /// The kind of statement.
        kind: &'static str,
        /// The rule it breaks.
        problem: String,
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

/// Refuses a single-line text that holds a [steering](is_steering_char) character. The message names
/// the first such character by its code point and never echoes the text.
pub(crate) fn check_single_line(what: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| is_steering_char(*c)) {
        Some(c) => Err(format!("the {what} contains a control character (U+{:04X})", u32::from(c))),
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
    /// The statement's own rules, checked on signing and on verification.
    fn check(&self) -> Result<(), String>;
}

/// A statement with its author's signature over its exact body bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: Vec<u8>,
    signature: [u8; 64],
    statement: T,
}

impl<T: Statement + fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signed").field(&self.statement).finish()
    }
}

impl<T: Statement> Signed<T> {
    /// Signs `statement` with `identity`, which must be its author.
    pub fn sign(statement: T, identity: &Identity) -> Result<Self, StatementError> {
        if statement.author() != identity.public() {
            return Err(StatementError::WrongSigner(T::KIND));
        }
        statement.check().map_err(|problem| StatementError::Invalid { kind: T::KIND, problem })?;
        let body = serde_json::to_vec(&statement).map_err(|_| StatementError::Malformed(T::KIND))?;
        let signature = identity.sign(T::LABEL, &body);
        Ok(Self { body, signature, statement })
    }

    /// Verifies a body and signature received from anywhere.
    pub fn verify(body: &[u8], signature: &[u8; 64]) -> Result<Self, StatementError> {
        if body.len() > MAX_BODY_LEN {
            return Err(StatementError::Malformed(T::KIND));
        }
        let statement: T = serde_json::from_slice(body).map_err(|_| StatementError::Malformed(T::KIND))?;
        if !statement.author().verify(T::LABEL, body, signature) {
            return Err(StatementError::BadSignature(T::KIND));
        }
        statement.check().map_err(|problem| StatementError::Invalid { kind: T::KIND, problem })?;
        Ok(Self { body: body.to_vec(), signature: *signature, statement })
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

    /// Self-delimiting encoding for storage and the wire: body length (u32 BE), body, signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.body.len() + 64);
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Reads the encoding of [`Signed::to_bytes`] *without* verifying the signature. Only for
    /// statements this vault verified before storing them, read back from sealed storage.
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Self> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        if bytes.len() != 4 + len + 64 {
            return None;
        }
        let body = &bytes[4..4 + len];
        let statement: T = serde_json::from_slice(body).ok()?;
        Some(Self { body: body.to_vec(), signature: bytes[4 + len..].try_into().ok()?, statement })
    }

    /// Reads and verifies the encoding of [`Signed::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StatementError> {
        let malformed = || StatementError::Malformed(T::KIND);
        let len_bytes: [u8; 4] = bytes.get(..4).ok_or_else(malformed)?.try_into().map_err(|_| malformed())?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > MAX_BODY_LEN || bytes.len() != 4 + len + 64 {
            return Err(malformed());
        }
        let signature: [u8; 64] = bytes[4 + len..].try_into().map_err(|_| malformed())?;
        Self::verify(&bytes[4..4 + len], &signature)
    }
}

/// Permission, signed by the issuer, for the audience to receive the listed fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The grant's id.
    pub id: GrantId,
    /// Who grants (the data's owner).
    pub issuer: IdentityId,
    /// Who receives.
    pub audience: IdentityId,
    /// What is covered.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    pub filter: Option<RecordFilter>,
    /// Why (stated by the issuer, required).
    pub purpose: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; none for no expiry.
    pub expires_at: Option<i64>,
    /// Whether purchase prices are included.
    pub prices: bool,
    /// The consent request this grant answers, when it answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::request::RequestId>,
}

impl Statement for Grant {
    const LABEL: &'static [u8] = b"vault/v1/grant";
    const KIND: &'static str = "grant";

    fn author(&self) -> IdentityId {
        self.issuer
    }

    fn check(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("it covers no field".into());
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(format!("it covers more than {MAX_FIELDS} fields"));
        }
        if self.purpose.trim().is_empty() {
            return Err("the purpose is required".into());
        }
        if self.purpose.len() > MAX_PURPOSE_LEN {
            return Err(format!("the purpose is longer than {MAX_PURPOSE_LEN} bytes"));
        }
        check_single_line("purpose", &self.purpose)?;
        if let Some(filter) = &self.filter {
            check_single_line("record filter", &filter.to_string())?;
        }
        if self.issuer == self.audience {
            return Err("issuer and audience are the same identity".into());
        }
        if self.expires_at.is_some_and(|e| e <= self.issued_at) {
            return Err("it expires before it is issued".into());
        }
        if self.filter.is_some() && !self.fields.iter().any(|f| matches!(f, FieldPath::Purchases(_))) {
            return Err("a record filter needs a purchases field".into());
        }
        Ok(())
    }
}

impl Grant {
    /// True when the grant is neither expired at `now` (unix seconds) nor revoked.
    pub fn is_live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// True when some path of this grant shares values with `path`.
    pub fn touches(&self, path: &FieldPath) -> bool {
        self.fields.iter().any(|f| f.overlaps(path))
    }
}

/// The issuer's signed statement that a grant no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked grant.
    pub grant: GrantId,
    /// Its issuer.
    pub issuer: IdentityId,
    /// Unix seconds.
    pub revoked_at: i64,
}

impl Statement for Revocation {
    const LABEL: &'static [u8] = b"vault/v1/revocation";
    const KIND: &'static str = "revocation";

    fn author(&self) -> IdentityId {
        self.issuer
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The grantee's signed statement that it erased its copy of a grant's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureReceipt {
    /// The grant whose data was erased.
    pub grant: GrantId,
    /// The grant's issuer (to whom the receipt is addressed).
    pub issuer: IdentityId,
    /// Who erased (the grant's audience).
    pub grantee: IdentityId,
    /// Unix seconds.
    pub erased_at: i64,
}

impl Statement for ErasureReceipt {
    const LABEL: &'static [u8] = b"vault/v1/erasure-receipt";
    const KIND: &'static str = "erasure receipt";

    fn author(&self) -> IdentityId {
        self.grantee
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// How far ahead of the recording vault's clock a grantee may date its erasure receipt, in
/// seconds (clocks of two machines differ).
pub(crate) const MAX_RECEIPT_CLOCK_SKEW: i64 = 600;

impl ErasureReceipt {
    /// Checks the receipt's date against the grant it answers and the recording vault's clock
    /// (`now`, unix seconds): a receipt dated before the grant was issued, or in the future by
    /// more than ten minutes of clock skew, is refused. (The statement alone cannot know either
    /// bound, so [`Statement::check`] does not do this; the vault that records it does.)
    pub fn check_dated(&self, grant: &Grant, now: i64) -> Result<(), StatementError> {
        // Both bounds allow for the skew between the grantee's clock and ours.
        let problem = if self.erased_at < grant.issued_at.saturating_sub(MAX_RECEIPT_CLOCK_SKEW) {
            "it is dated before the grant was issued"
        } else if self.erased_at > now.saturating_add(MAX_RECEIPT_CLOCK_SKEW) {
            "it is dated in the future"
        } else {
            return Ok(());
        };
        Err(StatementError::Invalid { kind: Self::KIND, problem: problem.into() })
    }
}

/// A signed grant.
pub type SignedGrant = Signed<Grant>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grant(issuer: &Identity, audience: &Identity) -> Grant {
        Grant {
            id: GrantId::random(),
            issuer: issuer.public(),
            audience: audience.public(),
            fields: vec!["profile.email".parse().unwrap(), "profile.address".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            issued_at: 1_800_000_000,
            expires_at: Some(1_800_000_000 + 90 * 86_400),
            prices: true,
            request: None,
        }
    }

    #[test]
    fn signed_grants_verify_and_roundtrip() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let signed = Signed::sign(grant(&alice, &shop), &alice).unwrap();
        let back = SignedGrant::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back, signed);
    }

    #[test]
    fn forged_grants_are_refused() {
        let (alice, shop, mallory) = (Identity::generate(), Identity::generate(), Identity::generate());
        // Mallory cannot sign a grant in Alice's name.
        assert_eq!(Signed::sign(grant(&alice, &shop), &mallory), Err(StatementError::WrongSigner("grant")));
        let signed = Signed::sign(grant(&alice, &shop), &alice).unwrap();
        // Changing any byte of the body (wider fields, other audience) breaks the signature.
        let body = String::from_utf8(signed.body().to_vec()).unwrap();
        let widened = body.replace("profile.email", "profile.phone");
        assert!(SignedGrant::verify(widened.as_bytes(), signed.signature()).is_err());
        let redirected = body.replace(&shop.public().to_string(), &mallory.public().to_string());
        assert_eq!(
            SignedGrant::verify(redirected.as_bytes(), signed.signature()),
            Err(StatementError::BadSignature("grant"))
        );
        // A signature from another statement kind does not transfer (domain separation).
        let rev = Signed::sign(
            Revocation { grant: grant(&alice, &shop).id, issuer: alice.public(), revoked_at: 1 },
            &alice,
        )
        .unwrap();
        assert!(SignedGrant::verify(rev.body(), rev.signature()).is_err());
    }

    #[test]
    fn grant_rules() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let mut g = grant(&alice, &shop);
        g.purpose = "  ".into();
        assert!(matches!(Signed::sign(g, &alice), Err(StatementError::Invalid { .. })));
        let mut g = grant(&alice, &shop);
        g.fields.clear();
        assert!(Signed::sign(g, &alice).is_err());
        let mut g = grant(&alice, &shop);
        g.audience = alice.public();
        assert!(Signed::sign(g, &alice).is_err());
        let mut g = grant(&alice, &shop);
        g.filter = Some("tag=books".parse().unwrap());
        assert!(Signed::sign(g, &alice).is_err(), "a filter needs purchases");
    }

    #[test]
    fn control_characters_in_a_grant_are_refused_at_decode() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let mut g = grant(&alice, &shop);
        g.purpose = "delivery\n    fields:  profile.email\x1b[8m".into();
        // Signed by hand, as a hostile issuer would, skipping the rules.
        let body = serde_json::to_vec(&g).unwrap();
        let signature = alice.sign(Grant::LABEL, &body);
        assert!(matches!(SignedGrant::verify(&body, &signature), Err(StatementError::Invalid { .. })));
        assert_eq!(
            Signed::sign(g, &alice).unwrap_err().to_string(),
            "invalid grant: the purpose contains a control character (U+000A)"
        );
        let mut g = grant(&alice, &shop);
        g.fields = vec!["purchases".parse().unwrap()];
        g.filter = Some("seller=Ac\u{202e}me".parse().unwrap());
        assert_eq!(
            Signed::sign(g, &alice).unwrap_err().to_string(),
            "invalid grant: the record filter contains a control character (U+202E)"
        );
        for c in ['\0', '\t', '\x1b', '\u{7f}', '\u{9b}', '\u{202a}', '\u{2069}', '\u{2028}', '\u{2029}'] {
            assert!(is_steering_char(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '配', '📦', '\u{200d}'] {
            assert!(!is_steering_char(c), "{c:?}");
        }
    }

    #[test]
    fn erasure_receipts_are_dated_between_the_grant_and_now() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let g = grant(&alice, &shop);
        let now = g.issued_at + 86_400;
        let receipt = |erased_at| ErasureReceipt {
            grant: g.id,
            issuer: alice.public(),
            grantee: shop.public(),
            erased_at,
        };
        assert_eq!(receipt(now).check_dated(&g, now), Ok(()));
        assert_eq!(receipt(g.issued_at).check_dated(&g, now), Ok(()));
        assert_eq!(receipt(now + MAX_RECEIPT_CLOCK_SKEW).check_dated(&g, now), Ok(()), "clock skew");
        let future = receipt(now + MAX_RECEIPT_CLOCK_SKEW + 1).check_dated(&g, now).unwrap_err();
        assert_eq!(future.to_string(), "invalid erasure receipt: it is dated in the future");
        assert!(receipt(i64::MAX).check_dated(&g, now).is_err());
        assert!(receipt(i64::MAX).check_dated(&g, i64::MAX).is_ok(), "no overflow");
        assert!(receipt(g.issued_at - MAX_RECEIPT_CLOCK_SKEW).check_dated(&g, now).is_ok(), "clock skew");
        let early = receipt(g.issued_at - MAX_RECEIPT_CLOCK_SKEW - 1).check_dated(&g, now).unwrap_err();
        assert_eq!(early.to_string(), "invalid erasure receipt: it is dated before the grant was issued");
    }

    #[test]
    fn expiry() {
        let (alice, shop) = (Identity::generate(), Identity::generate());
        let g = grant(&alice, &shop);
        assert!(g.is_live_at(g.issued_at));
        assert!(!g.is_live_at(g.expires_at.unwrap()));
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SignedGrant::from_bytes(&bytes);
        }
    }
}
