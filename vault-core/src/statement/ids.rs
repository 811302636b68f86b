//! The ids that name statements (grants, consent requests, breach notices), and the string form
//! in which statements carry identity and device keys.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::IdentityId;

/// Reads a key or an id from a statement, a frame or a stored row: only in the form it prints
/// as (lowercase, nothing around it), so that what is signed or sent has one spelling. What a
/// person types (`FromStr`) may differ in case and spaces.
fn printed_form<T, E>(s: &str) -> Result<T, E>
where
    T: std::str::FromStr + std::fmt::Display,
    T::Err: std::fmt::Display,
    E: serde::de::Error,
{
    let value: T = s.parse().map_err(E::custom)?;
    if value.to_string() != s {
        return Err(E::custom("not in its printed form (lowercase base32, nothing around it)"));
    }
    Ok(value)
}

macro_rules! serde_via_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                printed_form(&String::deserialize(d)?)
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
                $crate::statement::ids::printed_form(&<String as ::serde::Deserialize>::deserialize(d)?)
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
serde_via_string!(crate::identity::Pseudonym);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKey, Identity, Pseudonym, PseudonymKey};

    /// Each key or id has one spelling in what is signed, sent or stored; what a person types
    /// may differ in case and spaces.
    #[test]
    fn keys_and_ids_are_read_from_json_in_their_printed_form_only() {
        fn check<T>(value: T)
        where
            T: Serialize
                + for<'de> Deserialize<'de>
                + std::str::FromStr
                + std::fmt::Display
                + PartialEq
                + std::fmt::Debug,
            T::Err: std::fmt::Debug,
        {
            let printed = value.to_string();
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
            for other in [printed.to_ascii_uppercase(), format!(" {printed}"), format!("{printed}\n")] {
                let json = serde_json::to_string(&other).unwrap();
                assert!(serde_json::from_str::<T>(&json).is_err(), "{other:?} read from JSON");
                assert_eq!(other.parse::<T>().unwrap(), value, "{other:?} typed");
            }
        }
        check(Identity::from_secret_bytes(&[1; 32]).public());
        check(DeviceKey::from_secret_bytes(&[2; 32]).public());
        check::<Pseudonym>(PseudonymKey::from_secret_bytes(&[3; 32]).public());
        check(GrantId::from_raw(&[4; 10]).unwrap());
        check(OfferId::from_raw(&[5; 10]).unwrap());
    }
}
