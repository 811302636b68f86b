//! Several devices of one identity: whatever each edits while apart, and in whatever order
//! they sync pairwise, they end with one document; and the device list merges with removals
//! winning.

use proptest::prelude::*;
use vault_core::{DeviceKey, DeviceRecord, DeviceSync, KdfParams, Passphrase, Price, PurchaseRecord, Vault};

fn first(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

/// A new device of `from`'s identity, as `vault init --join` makes it.
fn join(dir: &std::path::Path, from: &mut Vault, name: &str) -> Vault {
    let device = DeviceKey::generate();
    let package = from.devices_mut().invite(device.public(), name).unwrap();
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .join(&Passphrase::new("other"), device, package)
        .unwrap()
}

/// Runs the document's sync protocol between two devices until neither has anything to send.
fn sync(a: &mut Vault, b: &mut Vault) {
    let (mut sa, mut sb) = (DeviceSync::default(), DeviceSync::default());
    for _ in 0..100 {
        let to_b = a.devices_mut().sync_generate(&mut sa).unwrap();
        if let Some(m) = &to_b {
            b.devices_mut().sync_receive(&mut sb, m).unwrap();
        }
        let to_a = b.devices_mut().sync_generate(&mut sb).unwrap();
        if let Some(m) = &to_a {
            a.devices_mut().sync_receive(&mut sa, m).unwrap();
        }
        if to_b.is_none() && to_a.is_none() {
            return;
        }
    }
    panic!("sync did not settle");
}

#[derive(Debug, Clone)]
enum Edit {
    Email(u8),
    Pref(u8, u8),
    UnsetPref(u8),
    Purchase(u8),
    RemoveOldest,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<u8>().prop_map(Edit::Email),
        (0..3u8, any::<u8>()).prop_map(|(k, v)| Edit::Pref(k, v)),
        (0..3u8).prop_map(Edit::UnsetPref),
        any::<u8>().prop_map(Edit::Purchase),
        Just(Edit::RemoveOldest),
    ]
}

fn apply(v: &mut Vault, edit: &Edit) {
    match edit {
        Edit::Email(n) => v.records_mut().set_profile("email", &format!("ada{n}@example.org")).unwrap(),
        Edit::Pref(k, n) => {
            v.records_mut().set_preference(&format!("key{k}"), &format!("value {n}")).unwrap()
        }
        Edit::UnsetPref(k) => {
            v.records_mut().unset_preference(&format!("key{k}")).unwrap();
        }
        Edit::Purchase(n) => {
            v.records_mut()
                .add_purchase(&PurchaseRecord::new(
                    format!("item {n}"),
                    "Shop".into(),
                    Price { amount_minor: i64::from(*n) * 10, currency: "EUR".into() },
                    "2026-01-02".into(),
                ))
                .unwrap();
        }
        Edit::RemoveOldest => {
            if let Some(p) = v.records().purchases().first() {
                v.records_mut().remove_purchase(&p.id).unwrap();
            }
        }
    }
}

/// One step of a history: device `who` edits, or devices `who` and `with` sync.
#[derive(Debug, Clone)]
enum Step {
    Edit(usize, Edit),
    Sync(usize, usize),
}

fn step(devices: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..devices, edit()).prop_map(|(w, e)| Step::Edit(w, e)),
        1 => (0..devices, 0..devices).prop_map(|(a, b)| Step::Sync(a, b)),
    ]
}

fn pair_mut(v: &mut [Vault], a: usize, b: usize) -> (&mut Vault, &mut Vault) {
    assert!(a < b);
    let (left, right) = v.split_at_mut(b);
    (&mut left[a], &mut right[0])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn devices_converge_whatever_they_edit_apart(
        devices in 2..=3usize,
        history in prop::collection::vec(step(3), 1..30),
    ) {
        let dirs: Vec<_> = (0..devices).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut vaults = vec![first(dirs[0].path())];
        for (i, dir) in dirs.iter().enumerate().skip(1) {
            let joined = join(dir.path(), &mut vaults[0], &format!("device-{i}"));
            vaults.push(joined);
        }
        for s in &history {
            match s {
                Step::Edit(w, e) => apply(&mut vaults[w % devices], e),
                Step::Sync(a, b) => {
                    let (a, b) = (a % devices, b % devices);
                    if a != b {
                        let (x, y) = pair_mut(&mut vaults, a.min(b), a.max(b));
                        sync(x, y);
                    }
                }
            }
        }
        // Everyone meets everyone once (a chain is enough for a CRDT), then all agree.
        for i in 1..devices {
            let (x, y) = pair_mut(&mut vaults, i - 1, i);
            sync(x, y);
        }
        for i in (1..devices).rev() {
            let (x, y) = pair_mut(&mut vaults, i - 1, i);
            sync(x, y);
        }
        let first = vaults[0].records().export_json();
        for (i, v) in vaults.iter_mut().enumerate().skip(1) {
            prop_assert_eq!(&v.records().export_json(), &first, "device {} differs", i);
        }
        // What was synced is durable: reopened, the last device holds the same.
        let last = devices - 1;
        drop(vaults);
        let reopened = Vault::at(dirs[last].path()).kdf(KdfParams::INSECURE_FOR_TESTS).unlock(&Passphrase::new("other")).unwrap();
        prop_assert_eq!(reopened.records().export_json(), first);
    }
}

#[test]
fn a_removal_wins_over_every_later_list_and_a_device_learns_its_own() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let stale: Vec<DeviceRecord> = home.devices_mut().for_peer(&[]).unwrap();
    let removed = laptop.devices_mut().remove("box").unwrap();
    // The box's old list (where it is active) does not bring it back.
    let laptop_id = laptop.device_key().public();
    laptop.devices_mut().merge(&removed.id, &stale).unwrap();
    assert!(!laptop.devices().is_active(&removed.id).unwrap());
    // A list is not the identity key's word: the box, given the laptop's list, changes nothing;
    // given the laptop's roster, it learns it was removed and stops syncing.
    let news = laptop.devices_mut().for_peer(&[]).unwrap();
    assert!(!home.devices_mut().merge(&laptop_id, &news).unwrap().removed_here);
    assert!(home.devices().may_sync_with(&laptop_id).unwrap());
    home.devices_mut().keep_own_roster(&laptop.devices().roster().unwrap().unwrap()).unwrap();
    assert!(!home.devices().may_sync_with(&laptop_id).unwrap(), "the box learns it is removed");
    // The laptop cannot remove itself, nor an unknown name.
    assert!(laptop.devices_mut().remove("first").is_err());
    assert!(laptop.devices_mut().remove("nobody").is_err());
}

#[test]
fn a_malformed_sync_message_from_a_device_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut v = first(d.path());
    v.records_mut().set_profile("email", "ada@example.org").unwrap();
    let before = v.records().export_json();
    let mut state = DeviceSync::default();
    assert!(v.devices_mut().sync_receive(&mut state, b"not a sync message").is_err());
    assert_eq!(v.records().export_json(), before);
}

#[test]
fn a_device_cannot_slip_in_a_look_alike_nor_crowd_out_a_removal() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let mut phone = join(d3.path(), &mut laptop, "phone");
    let home_id = home.device_key().public();
    // The box, compromised, sends a look-alike of the laptop and a flood of made-up devices.
    let mut list = home.devices_mut().for_peer(&[]).unwrap();
    let template = list[0].clone();
    list.push(DeviceRecord {
        id: DeviceKey::generate().public(),
        name: "first".into(),
        added_at: 0,
        ..template.clone()
    });
    for i in 0..200 {
        list.push(DeviceRecord {
            id: DeviceKey::generate().public(),
            name: format!("fake-{i}"),
            added_at: 1,
            ..template.clone()
        });
    }
    phone.devices_mut().merge(&home_id, &list).unwrap();
    let names: Vec<String> = phone.devices().list().unwrap().into_iter().map(|d| d.name).collect();
    assert_eq!(names.iter().filter(|n| *n == "first").count(), 1, "no look-alike: {names:?}");
    assert!(names.len() <= vault_core::MAX_DEVICES);
    assert_eq!(names.len(), 3, "a list from a device adds no device: {names:?}");
    // Nor can it remove one: only the identity key's roster does.
    let mut removal = phone.devices_mut().for_peer(&[]).unwrap();
    removal.iter_mut().for_each(|d| d.removed_at = Some(1));
    phone.devices_mut().merge(&home_id, &removal).unwrap();
    assert!(phone.devices().is_active(&laptop.device_key().public()).unwrap());
    // A removal made on the laptop reaches the phone through the roster.
    laptop.devices_mut().remove("box").unwrap();
    phone.devices_mut().keep_own_roster(&laptop.devices().roster().unwrap().unwrap()).unwrap();
    assert!(!phone.devices().is_active(&home_id).unwrap(), "the removal got through");
    // And a removed device is never listed again by `add`.
    assert!(laptop.devices_mut().add(home_id, "box-again").is_err());
}

/// A grantee learns from the customer's roster that a device was removed, and from then on
/// refuses it; a device without the identity key cannot sign a roster anyone takes.
#[test]
fn a_roster_tells_a_grantee_which_device_was_removed() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let home = join(d2.path(), &mut laptop, "box");
    let mut shop = first(d3.path());
    let box_id = home.device_key().public();
    assert!(home.identity_key().is_none(), "a linked device never holds the identity key");
    assert!(home.devices().roster().unwrap().is_none(), "and cannot sign a roster");
    laptop.devices_mut().remove("box").unwrap();
    let roster = laptop.devices().roster().unwrap().expect("the first device signs one");
    assert!(roster.statement().removed.iter().any(|r| r.device == box_id), "{roster:?}");
    assert!(!shop.devices().is_removed_device(&laptop.identity(), &box_id).unwrap());
    // Another identity's roster, even naming the customer, is not taken.
    let shop_id = shop.identity();
    shop.devices_mut().accept_roster(shop_id, &roster).unwrap();
    assert!(!shop.devices().is_removed_device(&laptop.identity(), &box_id).unwrap());
    shop.devices_mut().accept_roster(laptop.identity(), &roster).unwrap();
    assert!(shop.devices().is_removed_device(&laptop.identity(), &box_id).unwrap());
    assert!(!shop.devices().is_removed_device(&laptop.identity(), &laptop.device_key().public()).unwrap());
    // A roster dated a day ahead would hold back every later one: refused.
    let laptop_id = laptop.device_key().public();
    let ahead = vault_core::DeviceRoster {
        identity: laptop.identity(),
        issued_at: laptop.now() + 86_400,
        active: Vec::new(),
        removed: vec![vault_core::RemovedDevice { device: laptop_id, removed_at: laptop.now(), name: None }],
    };
    let ahead = vault_core::Signed::sign(ahead, laptop.identity_key().unwrap()).unwrap();
    shop.devices_mut().accept_roster(laptop.identity(), &ahead).unwrap();
    assert!(!shop.devices().is_removed_device(&laptop.identity(), &laptop_id).unwrap());
}

/// Two devices hold the identity key (the box recovered it): a removal made on either reaches
/// the other through the roster, and the names the customer gave travel with it.
#[test]
fn a_removal_reaches_another_key_holder_with_the_names_the_customer_gave() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let phone = join(d3.path(), &mut laptop, "phone");
    let phone_id = phone.device_key().public();
    // The box learns of the phone from the laptop's rosters, by the name the laptop gave it.
    for roster in laptop.devices().rosters_for_devices().unwrap() {
        home.devices_mut().keep_own_roster(&roster).unwrap();
    }
    let named = |v: &Vault| v.devices().list().unwrap().into_iter().find(|d| d.id == phone_id).unwrap();
    assert_eq!(named(&home).name, "phone");
    // The peers' roster names no device.
    assert!(!laptop.devices().roster().unwrap().unwrap().statement().has_names());

    let code = laptop.keys_mut().recovery_code().unwrap();
    // The device session hands the key events over first (a device without them cannot check
    // a recovery code), and the rotation comes back the same way.
    home.keys_mut().accept_key_events(laptop.identity(), &laptop.keys().own_key_events().unwrap()).unwrap();
    home.keys_mut().restore_identity_key(&code).unwrap();
    home.devices_mut().remove("phone").unwrap();
    laptop.keys_mut().accept_key_events(home.identity(), &home.keys().own_key_events().unwrap()).unwrap();
    for roster in home.devices().rosters_for_devices().unwrap() {
        laptop.devices_mut().keep_own_roster(&roster).unwrap();
    }
    assert!(!laptop.devices().is_active(&phone_id).unwrap(), "the laptop took the box's removal");
    // Neither key holder's older roster brings the phone back.
    let stale = home.devices().rosters_for_devices().unwrap();
    for roster in stale {
        laptop.devices_mut().keep_own_roster(&roster).unwrap();
    }
    assert!(named(&laptop).removed_at.is_some());
}

/// The word a removed device is handed when it calls (`removal_notice`) is the identity key's
/// roster naming it, and only that makes it take its removal: a roster naming it removed that
/// another device of the identity signed changes nothing there.
#[test]
fn only_the_identity_keys_roster_tells_a_device_it_was_removed() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let phone = join(d3.path(), &mut laptop, "phone");
    let home_id = home.device_key().public();
    assert!(laptop.devices().removal_notice(&home_id).unwrap().is_none(), "nothing for an active device");

    // The phone (no identity key) signs a roster naming the box removed: not taken.
    let mut forged = laptop.devices().roster().unwrap().unwrap().statement().clone();
    forged.active.retain(|d| d.device != home_id);
    forged.removed.push(vault_core::RemovedDevice {
        device: home_id,
        removed_at: forged.issued_at,
        name: None,
    });
    let forged = vault_core::Signed::sign(forged, phone.signer()).unwrap();
    assert!(!home.devices_mut().keep_own_roster(&forged).unwrap());
    assert_eq!(home.devices().removed_here().unwrap(), None);

    // Removed on the laptop: the notice names it, and the box believes it.
    laptop.devices_mut().remove("box").unwrap();
    let notice = laptop.devices().removal_notice(&home_id).unwrap().expect("a notice for a removed device");
    assert!(home.devices_mut().keep_own_roster(&notice).unwrap());
    assert!(home.devices().removed_here().unwrap().is_some());
    assert!(laptop.devices().removal_notice(&laptop.device_key().public()).unwrap().is_none());
}
