//! Origins of the shared log, and what happens when one forks.
//!
//! An [`Origin`] is the device that wrote an entry and its *incarnation*: a device starts with
//! incarnation 0 (the only one vaults made before incarnations knew) and draws a fresh random
//! one when it finds that its own log forked. A fork happens when one device's file goes on
//! from two copies: a vault restored from last week's backup reuses the numbers its other
//! devices already hold under that origin, and so does a file copied to a second machine.
//!
//! Forks are found by chaining: each entry's signature covers the digest of the previous
//! entry of its origin ([`entry_digest`], the digest of that entry's signature), so one digest
//! at a number vouches for the whole history up to it. Devices compare digests in their
//! [`SharedHave`](super::SharedHave) and check the chain of every entry they take; two entries
//! under one (origin, number), or an entry whose chain does not match, mean the origin forked.
//!
//! A fork is repaired without trusting either branch: the origin is marked forked, its own
//! device (when it holds the proof) continues under a fresh incarnation, and every device that
//! holds the proof logs its whole current sharing state again under its own origin; entries of
//! a forked origin that follow the chain a device holds are still taken there, and logged again
//! under that device's origin, so that they reach the devices on the other branch. Merging is
//! idempotent and monotone (a revocation once known stays), so the devices converge on the
//! union of both branches: a grant revoked on either branch is revoked everywhere, never
//! half-revoked.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::DeviceId;

/// Most forked origins a device remembers (and takes from another device's `Have`).
pub(super) const MAX_FORKED: usize = 256;

/// Who wrote a shared-log entry: a device of this identity, in one incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Origin {
    /// The device that signs the entries.
    pub(crate) device: DeviceId,
    /// 0 for a device's first run of the log; random after a fork.
    pub(crate) incarnation: u64,
}

impl Origin {
    /// The key of its group in the `shared_log` table: the device (incarnation 0, as vaults
    /// made before incarnations stored it), or the device and the incarnation.
    pub(super) fn group(&self) -> Vec<u8> {
        let mut out = self.device.as_bytes().to_vec();
        if self.incarnation != 0 {
            out.extend_from_slice(&self.incarnation.to_be_bytes());
        }
        out
    }

    /// Reads a group key back; `None` when it is neither form.
    pub(super) fn from_group(bytes: &[u8]) -> Option<Self> {
        let device = DeviceId::from_bytes(bytes.get(..32)?.try_into().ok()?).ok()?;
        let incarnation = match bytes.len() {
            32 => 0,
            40 => u64::from_be_bytes(bytes[32..].try_into().ok()?),
            _ => return None,
        };
        Some(Self { device, incarnation })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.incarnation {
            0 => write!(f, "{}", self.device),
            n => write!(f, "{}.{n:016x}", self.device),
        }
    }
}

impl FromStr for Origin {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (device, incarnation) = match s.split_once('.') {
            None => (s, 0),
            Some((d, n)) if n.len() == 16 => (d, u64::from_str_radix(n, 16).map_err(|_| ())?),
            Some(_) => return Err(()),
        };
        Ok(Self { device: device.parse().map_err(|_| ())?, incarnation })
    }
}

// As a string: the device alone for incarnation 0, so that a `Have` of a vault that never
// forked reads exactly as before incarnations existed.
impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|()| serde::de::Error::custom("not an origin"))
    }
}

/// The digest that chains an entry to the next one of its origin: of its signature (which
/// covers its origin, number, body and, for chained entries, the previous digest).
pub(super) fn entry_digest(sig: &[u8; 64]) -> [u8; 32] {
    *blake3::keyed_hash(&digest_key(), sig).as_bytes()
}

fn digest_key() -> [u8; 32] {
    *blake3::hash(b"vault/v1/shared-entry-chain").as_bytes()
}

/// A fresh random incarnation (never 0).
pub(super) fn fresh_incarnation() -> u64 {
    loop {
        let mut bytes = [0u8; 8];
        crate::primitives::fill_random(&mut bytes);
        let n = u64::from_be_bytes(bytes);
        if n != 0 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn origins_roundtrip_as_text_and_as_group_keys(seed in any::<[u8; 32]>(), incarnation in any::<u64>()) {
            let o = Origin { device: DeviceKey::from_secret_bytes(&seed).public(), incarnation };
            prop_assert_eq!(o.to_string().parse::<Origin>(), Ok(o));
            prop_assert_eq!(Origin::from_group(&o.group()), Some(o));
            let json = serde_json::to_string(&o).unwrap();
            prop_assert_eq!(serde_json::from_str::<Origin>(&json).unwrap(), o);
        }

        #[test]
        fn odd_origin_text_is_refused_without_panicking(s in ".{0,80}") {
            let _ = s.parse::<Origin>();
        }
    }

    /// Known answer: a chained entry as stored and sent (origin, number, previous digest,
    /// body, signature), kept stable; devices of one customer on two versions must agree.
    #[test]
    fn chained_entry_known_answer() {
        let key = DeviceKey::from_secret_bytes(&[5; 32]);
        let origin = Origin { device: key.public(), incarnation: 0x0102_0304_0506_0708 };
        let body = br#"{"kind":"notice","signed":[1,2,3],"received_at":1800000000}"#;
        let message = super::super::chained_message(&origin, 3, &[9; 32], body);
        let sig = key.sign(super::super::LABEL_CHAINED, &message);
        let row = super::super::LogRow { sig, prev: Some([9; 32]), body }.row();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(origin.to_string(), format!("{}.0102030405060708", key.public()));
        assert_eq!(hex(&entry_digest(&sig)), EXPECTED_DIGEST, "row {}", hex(&row));
        assert_eq!(hex(&row[..64]), EXPECTED_SIG);
        assert_eq!(row[64], 0x02);
    }

    const EXPECTED_DIGEST: &str = "e661507b30474bc61864132b2eedb8dc492388898c7163eedbc7dce6b1e0d5a5";
    const EXPECTED_SIG: &str = "4c8c8e0b7634003eeee79d2bfb49711ab30e0afd771c4c9d43fe1a2877c59fb0849039f9ad0411ed282244edb2ebdb7bba0e4518c91dffef60871b5cd5735307";

    #[test]
    fn the_first_incarnation_reads_as_the_device_alone() {
        let device = DeviceKey::generate().public();
        let first = Origin { device, incarnation: 0 };
        assert_eq!(first.to_string(), device.to_string());
        assert_eq!(first.group(), device.as_bytes().to_vec());
    }
}
