//! The ids that name statements (grants, consent requests, breach notices), and the string form
//! in which statements carry identity and device keys.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::IdentityId;

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
    /// The id of an offer answering an intention: 80 random bits, printed as 16 lowercase base32
    /// characters.
    OfferId,
    "offer"
);

random_id!(
    /// The id of a breach notice: 80 random bits, printed as 16 lowercase base32 characters.
    NoticeId,
    "notice"
);

serde_via_string!(IdentityId);
serde_via_string!(crate::identity::DeviceId);
