//! Devices restored from a backup or copied, and what devices must agree on once they meet:
//! the fork in the sharing-state log is found and repaired, grants wait for the document they
//! were issued at, derived limits hold across devices, and breach notices reach every device.

use proptest::prelude::*;
use vault_core::{
    AuditFilter, DeviceKey, GrantStatus, Identity, KdfParams, NewGrant, Passphrase, Signed, Vault,
};

use crate::support::devices::{exchange, first, grant_to, join, pair_mut, state};

/// Copies every file of a vault directory (the database and its write-ahead log) into `to`,
/// as a backup or a copy to another machine would.
fn copy_files(from: &std::path::Path, to: &std::path::Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn reopen(dir: &std::path::Path, passphrase: &str) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).unlock(&Passphrase::new(passphrase)).unwrap()
}

#[derive(Debug, Clone)]
enum Life {
    Grant {
        device: usize,
    },
    Revoke {
        device: usize,
        nth: usize,
    },
    AddContact {
        device: usize,
        name: u8,
    },
    RemoveContact {
        device: usize,
        name: u8,
    },
    Exchange {
        a: usize,
        b: usize,
    },
    /// The device's file is backed up (kept aside as it is now).
    Backup {
        device: usize,
    },
    /// The device's file is replaced by its last backup.
    Restore {
        device: usize,
    },
    /// The device's file is copied to a second machine, which goes on as the same device.
    Duplicate {
        device: usize,
    },
}

fn life() -> impl Strategy<Value = Life> {
    let d = 0..4usize;
    prop_oneof![
        3 => d.clone().prop_map(|device| Life::Grant { device }),
        3 => (d.clone(), 0..4usize).prop_map(|(device, nth)| Life::Revoke { device, nth }),
        2 => (d.clone(), 0..3u8).prop_map(|(device, name)| Life::AddContact { device, name }),
        1 => (d.clone(), 0..3u8).prop_map(|(device, name)| Life::RemoveContact { device, name }),
        4 => (d.clone(), d.clone()).prop_map(|(a, b)| Life::Exchange { a, b }),
        2 => d.clone().prop_map(|device| Life::Backup { device }),
        2 => d.clone().prop_map(|device| Life::Restore { device }),
        1 => d.prop_map(|device| Life::Duplicate { device }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Devices restored from older backups, and files copied to a second machine that goes on
    /// as the same device, among random edits and exchanges: once everyone has met everyone,
    /// all hold one sharing state, and every revocation that reached a surviving copy is
    /// revoked on every device (never half-revoked).
    #[test]
    fn restored_and_copied_devices_still_converge(steps in proptest::collection::vec(life(), 1..28)) {
        let root = tempfile::tempdir().unwrap();
        let dir = |i: usize| root.path().join(format!("dev{i}"));
        let pass = |i: usize| if i == 0 { "pw" } else { "other" };
        let mut v = vec![first(&dir(0))];
        for i in 1..3 {
            let joined = join(&dir(i), &mut v[0], &format!("device{i}"));
            v.push(joined);
        }
        // Which file each entry of `v` is (a duplicate is a copy of another device's file).
        let mut files: Vec<usize> = (0..3).collect();
        let mut backups: Vec<Option<std::path::PathBuf>> = vec![None; 3];
        // The revoked grants each copy holds, and each backup: what must survive is the union
        // over the copies alive at the end.
        let mut knows: Vec<Vec<vault_core::GrantId>> = vec![Vec::new(); 3];
        let mut backup_knows: Vec<Vec<vault_core::GrantId>> = vec![Vec::new(); 3];
        let audience = Identity::generate();
        let ticket = vault_core::Ticket::new(audience.certify(DeviceKey::generate().public()), Vec::new());
        let mut scratch = 0;
        let same_device = |v: &[Vault], a: usize, b: usize| v[a].device_key().public() == v[b].device_key().public();
        for step in steps {
            let n = v.len();
            match step {
                Life::Grant { device } if device < n => {
                    v[device].grants_mut().issue(grant_to(&audience)).unwrap();
                }
                Life::Revoke { device, nth } if device < n => {
                    let live: Vec<_> = v[device].grants().list().unwrap().into_iter().filter(|g| g.is_live()).collect();
                    if let Some(g) = live.get(nth) {
                        let id = g.grant.statement().id;
                        v[device].grants_mut().revoke(&id).unwrap();
                        knows[device].push(id);
                    }
                }
                Life::AddContact { device, name } if device < n => {
                    let _ = v[device].contacts_mut().add(&format!("c{name}"), &ticket);
                }
                Life::RemoveContact { device, name } if device < n => {
                    let _ = v[device].contacts_mut().remove(&format!("c{name}"));
                }
                Life::Exchange { a, b } if a < n && b < n && a != b && !same_device(&v, a, b) => {
                    let (x, y) = pair_mut(&mut v, a, b);
                    exchange(x, y);
                    let union: Vec<_> = knows[a].iter().chain(&knows[b]).copied().collect();
                    knows[a] = union.clone();
                    knows[b] = union;
                }
                Life::Backup { device } if device < 3 => {
                    let to = root.path().join(format!("backup{device}"));
                    copy_files(&dir(files[device]), &to);
                    backups[device] = Some(to);
                    backup_knows[device] = knows[device].clone();
                }
                Life::Restore { device } if device < 3 && backups[device].is_some() => {
                    scratch += 1;
                    let placeholder = first(&root.path().join(format!("scratch{scratch}")));
                    drop(std::mem::replace(&mut v[device], placeholder));
                    copy_files(backups[device].as_ref().unwrap(), &dir(files[device]));
                    v[device] = reopen(&dir(files[device]), pass(device));
                    knows[device] = backup_knows[device].clone();
                }
                Life::Duplicate { device } if device < 3 && v.len() < 5 => {
                    let copy = v.len();
                    copy_files(&dir(files[device]), &dir(copy));
                    v.push(reopen(&dir(copy), pass(device)));
                    files.push(copy);
                    knows.push(knows[device].clone());
                }
                _ => {}
            }
        }
        // Everyone meets everyone, three times (a fork takes a round to be known everywhere).
        let n = v.len();
        for _ in 0..3 {
            for a in 0..n {
                for b in a + 1..n {
                    if !same_device(&v, a, b) {
                        let (x, y) = pair_mut(&mut v, a, b);
                        exchange(x, y);
                    }
                }
            }
        }
        let expected = state(&v[0]);
        for other in &v[1..] {
            prop_assert_eq!(&state(other), &expected);
        }
        for id in knows.iter().flatten() {
            for device in &v {
                let held = device.grants().get(id).unwrap();
                prop_assert_eq!(held.map(|g| g.status), Some(GrantStatus::Revoked), "grant {}", id);
            }
        }
    }
}

/// The finding, as a user met it: the box is backed up, makes changes, is restored, then
/// revokes a grant. Its other device used to drop the revocation as "held already" and keep
/// the grant active forever; now the fork is found, and the revocation arrives.
#[test]
fn a_revocation_made_after_a_restore_reaches_the_other_device() {
    let root = tempfile::tempdir().unwrap();
    let (laptop_dir, box_dir, backup) =
        (root.path().join("laptop"), root.path().join("box"), root.path().join("bk"));
    let mut laptop = first(&laptop_dir);
    let mut home = join(&box_dir, &mut laptop, "box");
    let shop = Identity::generate();
    let g1 = home.grants_mut().issue(grant_to(&shop)).unwrap().statement().id;
    exchange(&mut laptop, &mut home);
    copy_files(&box_dir, &backup);
    // Two changes on the box, which reach the laptop.
    home.grants_mut().issue(grant_to(&shop)).unwrap();
    home.grants_mut().issue(grant_to(&shop)).unwrap();
    exchange(&mut laptop, &mut home);
    // Restored from the backup, the box revokes G1.
    drop(home);
    copy_files(&backup, &box_dir);
    let mut home = reopen(&box_dir, "other");
    home.grants_mut().revoke(&g1).unwrap();
    exchange(&mut laptop, &mut home);
    assert_eq!(laptop.grants().get(&g1).unwrap().unwrap().status, GrantStatus::Revoked, "never half-revoked");
    // And the box gets back the two grants it made before the restore.
    assert_eq!(state(&home), state(&laptop));
    assert_eq!(home.grants().list().unwrap().len(), 3);
    // Both were told, in the access log.
    for v in [&laptop, &home] {
        let log = v.access_log().list(&AuditFilter::default()).unwrap();
        assert!(log.iter().any(|e| e.kind == vault_core::AuditKind::SharingForked), "{log:?}");
    }
}

/// Finding: the sharing state (a grant) can arrive before the document changes it was issued
/// after; the receiving device built its projection from a document that still held a value
/// overwritten before the grant, and could serve it. Now it waits for the issuing document's
/// heads, and builds from them.
#[test]
fn a_grant_is_served_by_another_device_only_once_it_holds_the_document_it_was_issued_at() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    laptop.records_mut().set_profile("email", "old@example.org").unwrap();
    let mut home = join(d2.path(), &mut laptop, "box");
    laptop.records_mut().set_profile("email", "new@example.org").unwrap();
    let shop = Identity::generate();
    let id = laptop.grants_mut().issue(grant_to(&shop)).unwrap().statement().id;
    // The grant arrives first: the box knows it, and serves nothing yet.
    exchange(&mut laptop, &mut home);
    assert!(home.grants().get(&id).unwrap().unwrap().is_live());
    assert_eq!(home.projections_mut().values(&id).unwrap(), None, "built from a stale document");
    // Then the document: the projection is built, with the value the grant was issued over.
    let (mut sa, mut sb) = (vault_core::DeviceSync::default(), vault_core::DeviceSync::default());
    for _ in 0..50 {
        let to_home = laptop.devices_mut().sync_generate(&mut sa).unwrap();
        if let Some(m) = &to_home {
            home.devices_mut().sync_receive(&mut sb, m).unwrap();
        }
        let to_laptop = home.devices_mut().sync_generate(&mut sb).unwrap();
        if let Some(m) = &to_laptop {
            laptop.devices_mut().sync_receive(&mut sa, m).unwrap();
        }
        if to_home.is_none() && to_laptop.is_none() {
            break;
        }
    }
    home.projections_mut().update(None).unwrap();
    let values = home.projections_mut().values(&id).unwrap().expect("built once the document arrived");
    assert_eq!(values["profile"]["email"], "new@example.org");
}

fn derived_grant(audience: &Identity, field: &str) -> NewGrant {
    NewGrant { fields: vec![field.parse().unwrap()], ..grant_to(audience) }
}

/// Finding: the limit on derived answers about one field (two about a date) was checked on
/// the device that issued a grant only; two devices out of touch could each stay under it and
/// together go past it. Now the excess is revoked when the grants meet, the same grant on both
/// devices, and the access log says why.
#[test]
fn derived_grants_issued_apart_that_tell_too_much_together_lose_the_excess_on_every_device() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let shop = Identity::generate();
    let a =
        laptop.grants_mut().issue(derived_grant(&shop, "profile.birthday:over(18)")).unwrap().statement().id;
    let b =
        laptop.grants_mut().issue(derived_grant(&shop, "profile.birthday:over(21)")).unwrap().statement().id;
    // A third answer about the birthday is refused on the laptop...
    assert!(laptop.grants_mut().issue(derived_grant(&shop, "profile.birthday:over(30)")).is_err());
    // ...but the box, out of touch, issues it.
    let c =
        home.grants_mut().issue(derived_grant(&shop, "profile.birthday:over(30)")).unwrap().statement().id;
    exchange(&mut laptop, &mut home);
    exchange(&mut laptop, &mut home);
    let statuses = |v: &Vault| -> Vec<GrantStatus> {
        [a, b, c].iter().map(|id| v.grants().get(id).unwrap().unwrap().status).collect()
    };
    assert_eq!(statuses(&laptop), statuses(&home), "the same grant is the excess on both");
    let revoked = statuses(&laptop).iter().filter(|s| **s == GrantStatus::Revoked).count();
    assert_eq!(revoked, 1, "{:?}", statuses(&laptop));
    let (live, _) = laptop.grants_mut().shares_for(&shop.public()).unwrap();
    assert_eq!(live.len(), 2, "two answers about the birthday are served, not three");
    let log = laptop.access_log().list(&AuditFilter::default()).unwrap();
    assert!(
        log.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.contains("more than derived fields allow")))
    );
}

/// A seller's breach notice says what it held: only its claim. The customer is shown what their
/// own grants gave that seller, told when the claim differs, and the notice reaches the
/// customer's other devices.
#[test]
fn a_breach_notice_shows_what_the_grants_gave_and_reaches_the_other_devices() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let shop = Identity::generate();
    let both = NewGrant {
        fields: vec!["profile.email".parse().unwrap(), "profile.name".parse().unwrap()],
        ..grant_to(&shop)
    };
    let grant = laptop.grants_mut().issue(both).unwrap().statement().id;
    // The seller plays down what it held: the email only.
    let notice = vault_core::BreachNotice {
        id: vault_core::NoticeId::random(),
        seller: shop.public(),
        customer: laptop.identity(),
        since: laptop.now() - 86_400,
        until: laptop.now(),
        fields: vec!["profile.email".parse().unwrap()],
        grants: vec![grant],
        text: "a copy of our order database was taken".into(),
        issued_at: laptop.now(),
    };
    let signed = Signed::sign(notice, &shop).unwrap();
    assert!(laptop.notices_mut().receive(&shop.public(), &signed).unwrap());
    let seen = &laptop.notices().list().unwrap()[0];
    let granted: Vec<String> = seen.granted.iter().map(ToString::to_string).collect();
    assert_eq!(granted, ["profile.email", "profile.name"]);
    assert!(seen.claim_differs());
    // The box, which never met the seller, holds it too.
    exchange(&mut laptop, &mut home);
    let on_box = home.notices().list().unwrap();
    assert_eq!(on_box.len(), 1);
    assert_eq!(on_box[0].notice, signed);
    assert!(on_box[0].claim_differs());
}
