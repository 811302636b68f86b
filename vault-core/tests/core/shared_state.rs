//! One sharing state across the devices of an identity: whatever grants, revocations and
//! contact changes each device makes while apart, and in whatever order they exchange their
//! sharing state pairwise, they end with one state; a grant revoked anywhere is revoked
//! everywhere; concurrent answers to one request settle the same way on every device; and
//! what does not check out is skipped.

use proptest::prelude::*;
use vault_core::{
    Approval, AuditFilter, ConsentRequest, DeviceKey, GrantStatus, Identity, RequestId, RequestStatus,
    Signed, Vault,
};

use crate::support::devices::{exchange, first, grant_to, join, pair_mut, state};

#[derive(Debug, Clone)]
enum Step {
    Grant { device: usize, audience: usize },
    Revoke { device: usize, nth: usize },
    AddContact { device: usize, name: u8, who: usize },
    Block { device: usize, name: u8, blocked: bool },
    RemoveContact { device: usize, name: u8 },
    Exchange { a: usize, b: usize },
}

fn step(devices: usize) -> impl Strategy<Value = Step> {
    let d = 0..devices;
    prop_oneof![
        (d.clone(), 0..2usize).prop_map(|(device, audience)| Step::Grant { device, audience }),
        (d.clone(), 0..4usize).prop_map(|(device, nth)| Step::Revoke { device, nth }),
        (d.clone(), 0..3u8, 0..2usize).prop_map(|(device, name, who)| Step::AddContact { device, name, who }),
        (d.clone(), 0..3u8, any::<bool>()).prop_map(|(device, name, blocked)| Step::Block {
            device,
            name,
            blocked
        }),
        (d.clone(), 0..3u8).prop_map(|(device, name)| Step::RemoveContact { device, name }),
        (d.clone(), d).prop_map(|(a, b)| Step::Exchange { a, b }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn devices_that_exchanged_everything_hold_one_sharing_state(
        devices in 2..4usize,
        steps in proptest::collection::vec(step(3), 1..24),
    ) {
        let dirs: Vec<_> = (0..devices).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut v = vec![first(dirs[0].path())];
        for (i, dir) in dirs.iter().enumerate().skip(1) {
            let joined = join(dir.path(), &mut v[0], &format!("device{i}"));
            v.push(joined);
        }
        let people = [Identity::generate(), Identity::generate()];
        let tickets: Vec<_> = people
            .iter()
            .map(|p| vault_core::Ticket::new(p.certify(DeviceKey::generate().public()), Vec::new()))
            .collect();
        let mut revoked_anywhere = Vec::new();
        for step in steps {
            match step {
                Step::Grant { device, audience } if device < devices => {
                    v[device].grants_mut().issue(grant_to(&people[audience])).unwrap();
                }
                Step::Revoke { device, nth } if device < devices => {
                    let live: Vec<_> = v[device].grants().list().unwrap().into_iter().filter(|g| g.is_live()).collect();
                    if let Some(g) = live.get(nth) {
                        let id = g.grant.statement().id;
                        v[device].grants_mut().revoke(&id).unwrap();
                        revoked_anywhere.push(id);
                    }
                }
                Step::AddContact { device, name, who } if device < devices => {
                    let _ = v[device].contacts_mut().add(&format!("c{name}"), &tickets[who]);
                }
                Step::Block { device, name, blocked } if device < devices => {
                    let c = &mut v[device];
                    let name = format!("c{name}");
                    if blocked { c.contacts_mut().block(&name).unwrap(); } else { c.contacts_mut().unblock(&name).unwrap(); }
                }
                Step::RemoveContact { device, name } if device < devices => {
                    let _ = v[device].contacts_mut().remove(&format!("c{name}"));
                }
                Step::Exchange { a, b } if a < devices && b < devices && a != b => {
                    let (x, y) = pair_mut(&mut v, a, b);
                    exchange(x, y);
                }
                _ => {}
            }
        }
        // Everyone meets everyone, twice (entries relay through a third device too).
        for _ in 0..2 {
            for a in 0..devices {
                for b in a + 1..devices {
                    let (x, y) = pair_mut(&mut v, a, b);
                    exchange(x, y);
                }
            }
        }
        let expected = state(&v[0]);
        for other in &v[1..] {
            prop_assert_eq!(&state(other), &expected);
        }
        for id in revoked_anywhere {
            for device in &v {
                prop_assert_eq!(device.grants().get(&id).unwrap().unwrap().status, GrantStatus::Revoked);
            }
        }
        // Every device serves exactly the live grants, to their audience unless it is blocked.
        for device in &mut v {
            for person in &people {
                let mut live: Vec<_> =
                    device.grants().live_for(&person.public()).unwrap().iter().map(|g| g.statement().id).collect();
                if device.contacts().is_blocked(&person.public()).unwrap() {
                    live.clear();
                }
                let (mut served, _) = device.grants_mut().shares_for(&person.public()).unwrap();
                live.sort();
                let mut served: Vec<_> = served.drain(..).map(|g| g.statement().id).collect();
                served.sort();
                prop_assert_eq!(served, live);
            }
        }
    }
}

fn request(from: &Identity, to: &Vault) -> Signed<ConsentRequest> {
    Signed::sign(
        ConsentRequest {
            id: RequestId::random(),
            requester: from.public(),
            holder: to.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "support".into(),
            duration: Some(86_400),
            prices: false,
            made_at: to.now(),
            name: None,
            reply_to: None,
        },
        from,
    )
    .unwrap()
}

#[test]
fn a_request_taken_by_one_device_is_answered_on_another_and_an_approval_wins_over_a_denial() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let shop = Identity::generate();

    // Taken by the box, seen and approved on the laptop; the box learns the answer.
    let asked = request(&shop, &home);
    let id = asked.statement().id;
    home.inbox_mut().receive(&shop.public(), &asked).unwrap().unwrap();
    exchange(&mut laptop, &mut home);
    assert_eq!(laptop.inbox().get(&id).unwrap().unwrap().status, RequestStatus::Pending);
    let grant = laptop.inbox_mut().approve(&id, Approval::default()).unwrap();
    exchange(&mut laptop, &mut home);
    let seen = home.inbox().get(&id).unwrap().unwrap();
    assert_eq!((seen.status, seen.grant), (RequestStatus::Approved, Some(grant.statement().id)));
    assert!(home.grants().get(&grant.statement().id).unwrap().unwrap().is_live(), "the box serves it too");

    // Answered on both while apart: the approval stands on both (the grant exists, signed).
    let asked = request(&shop, &home);
    let id = asked.statement().id;
    home.inbox_mut().receive(&shop.public(), &asked).unwrap().unwrap();
    exchange(&mut laptop, &mut home);
    home.inbox_mut().deny(&id, None).unwrap();
    laptop.inbox_mut().approve(&id, Approval::default()).unwrap();
    exchange(&mut laptop, &mut home);
    assert_eq!(home.inbox().get(&id).unwrap().unwrap().status, RequestStatus::Approved);
    assert_eq!(laptop.inbox().get(&id).unwrap().unwrap().status, RequestStatus::Approved);

    // The access log on each names the other device for its events.
    let on_box = laptop.access_log().list(&AuditFilter::default()).unwrap();
    assert!(on_box.iter().any(|e| e.device == Some(home.device_key().public())), "{on_box:?}");
    assert!(home.access_log().list(&AuditFilter::default()).unwrap().iter().any(|e| e.device.is_some()));
}

#[test]
fn a_batch_that_does_not_check_out_changes_nothing() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    // A vault of another identity: its grants are not this identity's.
    let mut stranger = first(d3.path());
    stranger.grants_mut().issue(grant_to(&Identity::generate())).unwrap();
    let mut theirs = home.replication().have(&stranger.device_key().public()).unwrap();
    let batch = stranger.replication().batch(&mut theirs).unwrap().expect("a batch");
    let before = home.grants().list().unwrap().len();
    let mut believed = Default::default();
    home.replication_mut().receive(&stranger.device_key().public(), &mut believed, &batch).unwrap();
    assert_eq!(home.grants().list().unwrap().len(), before, "another identity's grant is skipped");
    assert!(
        home.replication_mut()
            .receive(&laptop.device_key().public(), &mut believed, b"{not a batch")
            .is_err()
    );
    exchange(&mut laptop, &mut home);
}

#[test]
fn a_grant_issued_by_a_device_since_removed_is_void_on_the_others() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let thief = Identity::generate();
    // The box, stolen, grants the thief the email; the grant reaches the laptop.
    let grant = home.grants_mut().issue(grant_to(&thief)).unwrap();
    let id = grant.statement().id;
    exchange(&mut laptop, &mut home);
    assert!(laptop.grants().get(&id).unwrap().unwrap().is_live());
    // Removed on the laptop: the grant is void there, not served, and told as ended.
    laptop.devices_mut().remove("box").unwrap();
    assert_eq!(laptop.grants().get(&id).unwrap().unwrap().status, GrantStatus::Void);
    let (live, ended) = laptop.grants_mut().shares_for(&thief.public()).unwrap();
    assert!(live.is_empty());
    assert_eq!(ended.len(), 1);
    // Revoked on the laptop all the same (the entry must not stall the laptop's log): a
    // third device learns both the grant and its revocation.
    laptop.grants_mut().revoke(&id).unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let mut phone = join(d3.path(), &mut laptop, "phone");
    exchange(&mut laptop, &mut phone);
    assert_eq!(phone.grants().get(&id).unwrap().unwrap().status, GrantStatus::Revoked);
    laptop
        .contacts_mut()
        .add("late", &vault_core::Ticket::new(thief.certify(DeviceKey::generate().public()), Vec::new()))
        .unwrap();
    exchange(&mut laptop, &mut phone);
    assert!(phone.contacts().list().unwrap().iter().any(|c| c.name == "late"), "later entries still apply");
}

#[test]
fn an_entry_altered_by_a_relaying_device_is_refused() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path());
    let mut home = join(d2.path(), &mut laptop, "box");
    let mut phone = join(d3.path(), &mut laptop, "phone");
    let shop = Identity::generate();
    let grant = laptop.grants_mut().issue(grant_to(&shop)).unwrap();
    laptop.grants_mut().revoke(&grant.statement().id).unwrap();
    // The box relays the laptop's entries to the phone, with the revocation taken out.
    let mut theirs = phone.replication().have(&home.device_key().public()).unwrap();
    exchange(&mut laptop, &mut home);
    let batch = home.replication().batch(&mut theirs).unwrap().unwrap();
    let text = String::from_utf8(batch).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for e in value["entries"].as_array_mut().unwrap() {
        let body = data_encoding::BASE64.decode(e["body"].as_str().unwrap().as_bytes()).unwrap();
        let mut entry: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if entry["kind"] == "grant" {
            entry["revocation"] = serde_json::Value::Null;
        }
        e["body"] = data_encoding::BASE64.encode(&serde_json::to_vec(&entry).unwrap()).into();
    }
    let mut believed = Default::default();
    phone
        .replication_mut()
        .receive(&home.device_key().public(), &mut believed, &serde_json::to_vec(&value).unwrap())
        .unwrap();
    assert!(phone.grants().get(&grant.statement().id).unwrap().is_none(), "the altered entry is not taken");
    // The laptop's own entries, when they arrive, apply.
    exchange(&mut laptop, &mut phone);
    assert_eq!(phone.grants().get(&grant.statement().id).unwrap().unwrap().status, GrantStatus::Revoked);
}
