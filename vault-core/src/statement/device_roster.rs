//! The device roster: the identity's own signed word on which devices act for it, so that
//! the people it shares with reach any of them and refuse the ones it removed.
//!
//! Only the identity key signs a roster (a device signature is not accepted for one): a stolen
//! device, even before its removal, cannot make anyone refuse the customer's other devices.
//! What a roster removes stays removed wherever it arrived (removal wins, like the device
//! list the devices share): a later roster that omits the removal does not undo it.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::{DeviceId, IdentityId};
use crate::statement::{Rule, Signed, Statement};

/// Most devices (active and removed) a roster lists.
pub const MAX_ROSTER_DEVICES: usize = 64;
/// Most addresses a roster gives for one device.
pub const MAX_ROSTER_ADDRS: usize = 4;

/// An active device, and where it was last reachable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterDevice {
    /// The device key.
    pub device: DeviceId,
    /// Its direct addresses, at most [`MAX_ROSTER_ADDRS`].
    #[serde(default)]
    pub addrs: Vec<SocketAddr>,
    /// The name the customer gave it: only in the roster the identity's own devices exchange
    /// (see [`DeviceRoster`]), never in the one peers get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A removed device, and when it was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedDevice {
    /// The device key.
    pub device: DeviceId,
    /// When it was removed (unix seconds).
    pub removed_at: i64,
    /// The name the customer gave it (own devices' roster only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The devices of an identity, as its identity key signed them at `issued_at`.
///
/// Two forms are signed: the one peers get names no device (a customer's names for their
/// devices are nobody else's business), and the one the identity's own devices exchange
/// carries each device's name, so that `vault device rm phone` works on every device that
/// holds the identity key, whichever device linked the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRoster {
    /// The identity.
    pub identity: IdentityId,
    /// When it was signed (unix seconds).
    pub issued_at: i64,
    /// The devices acting for the identity.
    pub active: Vec<RosterDevice>,
    /// The devices removed from it.
    pub removed: Vec<RemovedDevice>,
}

impl Statement for DeviceRoster {
    const LABEL: &'static [u8] = b"vault/v1/device-roster";
    const KIND: &'static str = "device roster";

    fn made_at(&self) -> i64 {
        self.issued_at
    }

    fn author(&self) -> IdentityId {
        self.identity
    }

    fn check(&self) -> Result<(), Rule> {
        let bad = Rule::BadList { what: "devices", max: MAX_ROSTER_DEVICES };
        if self.active.len() + self.removed.len() > MAX_ROSTER_DEVICES {
            return Err(bad);
        }
        let mut seen = BTreeSet::new();
        let ids = self.active.iter().map(|d| d.device).chain(self.removed.iter().map(|d| d.device));
        for id in ids {
            if !seen.insert(id) {
                return Err(bad);
            }
        }
        if self.active.iter().any(|d| d.addrs.len() > MAX_ROSTER_ADDRS) {
            return Err(Rule::BadList { what: "addresses", max: MAX_ROSTER_ADDRS });
        }
        let names = self.active.iter().filter_map(|d| d.name.as_deref());
        if names.chain(self.removed.iter().filter_map(|d| d.name.as_deref())).any(|n| !valid_device_name(n)) {
            return Err(Rule::BadList { what: "device names", max: MAX_ROSTER_DEVICES });
        }
        Ok(())
    }
}

/// A device name: 1-64 letters, digits, `-`, `_` or `.`.
pub(crate) fn valid_device_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl DeviceRoster {
    /// True when it names devices (the form only the identity's own devices get).
    pub fn has_names(&self) -> bool {
        self.active.iter().any(|d| d.name.is_some()) || self.removed.iter().any(|d| d.name.is_some())
    }
}

/// A roster that may be the identity's own word: signed by an identity key (the inception key
/// or a rotated one), not a device. Whether that key may sign it at its date is the key state's
/// question (`Vault::refused_signer`).
pub(crate) fn by_identity_key(roster: &Signed<DeviceRoster>) -> bool {
    roster.signed_by().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKey, Identity};
    use crate::statement::StatementError;

    fn roster(identity: &Identity, active: Vec<DeviceId>, removed: Vec<DeviceId>) -> DeviceRoster {
        DeviceRoster {
            identity: identity.public(),
            issued_at: 1_000,
            active: active
                .into_iter()
                .map(|device| RosterDevice { device, addrs: Vec::new(), name: None })
                .collect(),
            removed: removed
                .into_iter()
                .map(|device| RemovedDevice { device, removed_at: 900, name: None })
                .collect(),
        }
    }

    #[test]
    fn only_the_identity_key_makes_a_roster_its_word() {
        let alice = Identity::generate();
        let (laptop, box_) = (DeviceKey::generate(), DeviceKey::generate());
        let r = roster(&alice, vec![laptop.public()], vec![box_.public()]);
        let signed = Signed::sign(r.clone(), &alice).unwrap();
        let back = Signed::<DeviceRoster>::from_bytes(&signed.to_bytes()).unwrap();
        assert!(by_identity_key(&back));
        // A device of alice can sign one (a valid statement), but it is not her word.
        let cert = alice.certify(laptop.public());
        let by_device =
            Signed::sign(r.clone(), crate::signer::Signer::Device { key: &laptop, certificate: &cert })
                .unwrap();
        let back = Signed::<DeviceRoster>::from_bytes(&by_device.to_bytes()).unwrap();
        assert!(!by_identity_key(&back));
        // Mallory's key, or a device certified by mallory, cannot sign for alice.
        let mallory = Identity::generate();
        assert!(matches!(Signed::sign(r.clone(), &mallory), Err(StatementError::WrongSigner(_))));
        let forged_cert =
            crate::identity::DeviceCertificate::from_parts(alice.public(), laptop.public(), [7; 64]);
        let mut bytes = by_device.to_bytes();
        let n = bytes.len();
        bytes[n - 128..].copy_from_slice(&forged_cert.to_bytes());
        assert!(Signed::<DeviceRoster>::from_bytes(&bytes).is_err());
    }

    #[test]
    fn a_device_listed_twice_is_refused() {
        let alice = Identity::generate();
        let d = DeviceKey::generate().public();
        assert!(Signed::sign(roster(&alice, vec![d], vec![d]), &alice).is_err());
        assert!(Signed::sign(roster(&alice, vec![d, d], vec![]), &alice).is_err());
    }
}
