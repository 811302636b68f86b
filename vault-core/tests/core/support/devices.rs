//! Devices of one customer, exchanging their sharing state by hand as a device session does:
//! what the sharing-state tests start from.

use vault_core::{DeviceKey, GrantStatus, Identity, KdfParams, NewGrant, Passphrase, Vault};

pub(crate) fn first(dir: &std::path::Path) -> Vault {
    let mut v = Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
    v.records_mut().set_profile("email", "ada@example.org").unwrap();
    v
}

/// A new device of `from`'s identity, as `vault init --join` makes it.
pub(crate) fn join(dir: &std::path::Path, from: &mut Vault, name: &str) -> Vault {
    let device = DeviceKey::generate();
    let package = from.devices_mut().invite(device.public(), name).unwrap();
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .join(&Passphrase::new("other"), device, package)
        .unwrap()
}

/// Exchanges the roster and the sharing state between two devices, as one device session
/// does, until neither has anything to send.
pub(crate) fn exchange(a: &mut Vault, b: &mut Vault) {
    let (ida, idb) = (a.device_key().public(), b.device_key().public());
    // As a device session does first: the newest identity-signed roster (which devices exist).
    if let Some(roster) = a.devices().roster().unwrap() {
        b.devices_mut().keep_own_roster(&roster).unwrap();
    }
    if let Some(roster) = b.devices().roster().unwrap() {
        a.devices_mut().keep_own_roster(&roster).unwrap();
    }
    a.replication_mut().seed().unwrap();
    b.replication_mut().seed().unwrap();
    // As a device session does on each side's `Have`: a fork shows and is repaired first (and
    // the side that repaired says again what it holds).
    let mut a_thinks_b = b.replication().have(&ida).unwrap();
    let mut b_thinks_a = a.replication().have(&idb).unwrap();
    for _ in 0..4 {
        let repaired_a = a.replication_mut().take_have(&a_thinks_b).unwrap();
        let repaired_b = b.replication_mut().take_have(&b_thinks_a).unwrap();
        if !repaired_a && !repaired_b {
            break;
        }
        a_thinks_b = b.replication().have(&ida).unwrap();
        b_thinks_a = a.replication().have(&idb).unwrap();
    }
    for _ in 0..100 {
        let to_b = a.replication().batch(&mut a_thinks_b).unwrap();
        if let Some(m) = &to_b {
            b.replication_mut().receive(&ida, &mut b_thinks_a, m).unwrap();
        }
        let to_a = b.replication().batch(&mut b_thinks_a).unwrap();
        if let Some(m) = &to_a {
            a.replication_mut().receive(&idb, &mut a_thinks_b, m).unwrap();
        }
        if to_b.is_none() && to_a.is_none() {
            return;
        }
    }
    panic!("the exchange did not settle");
}

/// Each grant (id, status, when revoked), and each contact (name, identity, blocked).
pub(crate) type State = (Vec<(String, GrantStatus, Option<i64>)>, Vec<(String, String, bool)>);

/// What must be equal on every device: each grant with its status and revocation, and the
/// contacts.
pub(crate) fn state(v: &Vault) -> State {
    let mut grants: Vec<_> = v
        .grants()
        .list()
        .unwrap()
        .into_iter()
        .map(|g| {
            let id = g.grant.statement().id.to_string();
            (id, g.status, g.revocation.map(|r| r.statement().revoked_at))
        })
        .collect();
    grants.sort_by(|a, b| a.0.cmp(&b.0));
    let mut contacts: Vec<_> = v
        .contacts()
        .list()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.identity.to_string(), c.blocked))
        .collect();
    contacts.sort();
    (grants, contacts)
}

pub(crate) fn grant_to(audience: &Identity) -> NewGrant {
    NewGrant {
        audience: audience.public(),
        fields: vec!["profile.email".parse().unwrap()],
        filter: None,
        purpose: "delivery".into(),
        expires_at: None,
        prices: false,
    }
}

pub(crate) fn pair_mut(v: &mut [Vault], a: usize, b: usize) -> (&mut Vault, &mut Vault) {
    assert_ne!(a, b);
    if a < b {
        let (left, right) = v.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = v.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}
