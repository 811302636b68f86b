//! Rotating the identity key with the recovery code (pre-rotation, see `key_event`): the thief of
//! a device that held the old key can neither rotate nor sign anything a peer that learned of the
//! rotation takes, while the grants made before it keep verifying.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use vault_core::{
    DeviceKey, DeviceRoster, Identity, KdfParams, KeyEvent, NewGrant, Passphrase, RecoveryError,
    RemovedDevice, Signed, Vault,
};

const T0: i64 = 1_800_000_000;

fn clock() -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(T0))
}

fn first(dir: &std::path::Path, now: &Arc<AtomicI64>) -> Vault {
    let now = now.clone();
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(Arc::new(move || now.load(Ordering::SeqCst)))
        .create(&Passphrase::new("pw"))
        .unwrap()
}

fn join(dir: &std::path::Path, from: &mut Vault, name: &str, now: &Arc<AtomicI64>) -> Vault {
    let device = DeviceKey::generate();
    let package = from.devices_mut().invite(device.public(), name).unwrap();
    let now = now.clone();
    Vault::at(dir)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(Arc::new(move || now.load(Ordering::SeqCst)))
        .join(&Passphrase::new("other"), device, package)
        .unwrap()
}

fn email_grant(v: &mut Vault, audience: vault_core::IdentityId, purpose: &str) -> vault_core::SignedGrant {
    v.grants_mut()
        .issue(NewGrant {
            audience,
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: purpose.into(),
            expires_at: None,
            prices: true,
        })
        .unwrap()
}

/// What the shop holds from the customer, by purpose.
fn held(shop: &mut Vault) -> Vec<String> {
    let mut purposes: Vec<String> =
        shop.held_mut().list().unwrap().iter().map(|s| s.grant.statement().purpose.clone()).collect();
    purposes.sort();
    purposes
}

#[test]
fn a_rotation_voids_what_the_old_key_signs_after_it() {
    let now = clock();
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path(), &now);
    let mut phone = join(d2.path(), &mut laptop, "phone", &now);
    let mut shop = first(d3.path(), &now);
    let ada = laptop.identity();
    laptop.records_mut().set_profile("email", "ada@example.org").unwrap();

    // Before the theft: a grant, and the customer's key state and roster reach the shop.
    let before = email_grant(&mut laptop, shop.identity(), "before");
    shop.keys_mut().accept_key_events(ada, &laptop.keys().own_key_events().unwrap()).unwrap();
    shop.devices_mut().accept_roster(ada, &laptop.devices().roster().unwrap().unwrap()).unwrap();
    shop.held_mut().accept(ada, None, std::slice::from_ref(&before), &[], true).unwrap();
    assert_eq!(held(&mut shop), ["before"]);
    let code = laptop.keys_mut().recovery_code().unwrap();
    assert!(matches!(laptop.keys_mut().recovery_code(), Err(RecoveryError::Shown)), "shown once");

    // The laptop is stolen with its passphrase. The thief holds the current key only: it cannot
    // rotate (no key it holds hashes to the commitment), not even with the key itself as a code.
    let events = laptop.keys().own_key_events().unwrap();
    assert_eq!(events.len(), 1);
    let thief_key = laptop.identity_key().unwrap();
    let by_thief = KeyEvent::rotation(&events[0], thief_key, &Identity::generate().public(), T0 + 10);
    assert!(!shop.keys_mut().accept_key_events(ada, &[events[0].clone(), by_thief]).unwrap());

    // The customer rotates on the phone (which learned the key events from the laptop).
    now.store(T0 + 100, Ordering::SeqCst);
    assert!(phone.keys_mut().accept_key_events(ada, &events).unwrap());
    let new_code = phone.keys_mut().restore_identity_key(&code).unwrap().expect("the next key rotates");
    assert_ne!(new_code.as_str(), code.as_str());
    assert!(phone.identity_key().is_some());
    assert_eq!(phone.identity(), ada, "the identity id stays");
    // The old code is used up.
    assert!(matches!(phone.keys_mut().restore_identity_key(&code), Err(RecoveryError::RotatedAway)));
    // The rotation reaches the shop, with a roster the new key signed.
    assert!(shop.keys_mut().accept_key_events(ada, &phone.keys().own_key_events().unwrap()).unwrap());
    let roster = phone.devices().roster().unwrap().unwrap();
    shop.devices_mut().accept_roster(ada, &roster).unwrap();
    // A device the thief certifies with the old key is refused a connection: no roster signed
    // since the rotation lists it. The customer's devices are listed.
    let thief_device = DeviceKey::generate().public();
    assert!(shop.devices().is_refused_device(&ada, &thief_device).unwrap());
    assert!(!shop.devices().is_refused_device(&ada, &phone.device_key().public()).unwrap());
    assert!(
        !shop.devices().is_refused_device(&ada, &laptop.device_key().public()).unwrap(),
        "not removed here"
    );

    // The thief, later, signs a grant and a roster that removes the phone, with the old key.
    now.store(T0 + 200, Ordering::SeqCst);
    let stolen = email_grant(&mut laptop, shop.identity(), "theft");
    shop.held_mut().accept(ada, None, &[before.clone(), stolen], &[], true).unwrap();
    assert_eq!(held(&mut shop), ["before"], "the old key's later grant is refused, the old grant kept");
    let lockout = DeviceRoster {
        identity: ada,
        issued_at: T0 + 200,
        active: Vec::new(),
        removed: vec![RemovedDevice {
            device: phone.device_key().public(),
            removed_at: T0 + 200,
            name: None,
        }],
    };
    let lockout = Signed::sign(lockout, laptop.identity_key().unwrap()).unwrap();
    shop.devices_mut().accept_roster(ada, &lockout).unwrap();
    assert!(
        !shop.devices().is_removed_device(&ada, &phone.device_key().public()).unwrap(),
        "the old key's roster is refused"
    );

    // The phone, with the new key, still grants.
    let after = email_grant(&mut phone, shop.identity(), "after");
    shop.held_mut().accept(ada, None, &[before, after], &[], true).unwrap();
    assert_eq!(held(&mut shop), ["after", "before"]);

    // The laptop learns of the rotation (an honest device): it drops the old key.
    assert!(laptop.keys_mut().accept_key_events(ada, &phone.keys().own_key_events().unwrap()).unwrap());
    assert!(laptop.identity_key().is_none(), "a device whose key was rotated away drops it");
    // And what the old key signed after the rotation is void on the customer's devices too.
    let status = |purpose: &str| {
        laptop
            .grants()
            .list()
            .unwrap()
            .into_iter()
            .find(|g| g.grant.statement().purpose == purpose)
            .unwrap()
            .status
    };
    assert_eq!(status("theft"), vault_core::GrantStatus::Void);
    assert_eq!(status("before"), vault_core::GrantStatus::Active);
}

/// Statements signed by the identity id's own key encode as before key events existed, and the
/// statement a rotated key signs names that key.
#[test]
fn only_a_rotated_key_is_named_in_the_signed_form() {
    let now = clock();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path(), &now);
    let shop = first(d2.path(), &now);
    let g = email_grant(&mut laptop, shop.identity(), "x");
    assert_eq!(g.to_bytes().len(), 4 + g.body().len() + 64);
    let code = laptop.keys_mut().recovery_code().unwrap();
    laptop.keys_mut().restore_identity_key(&code).unwrap().unwrap();
    let g = email_grant(&mut laptop, shop.identity(), "y");
    assert_eq!(g.to_bytes().len(), 4 + g.body().len() + 64 + 32);
    let back = vault_core::SignedGrant::from_bytes(&g.to_bytes()).unwrap();
    assert_eq!(back, g);
}

/// Finding: device certificates never expired, so a peer that only ever met a stolen device
/// took its statements as the customer's for ever. A device's statements are taken only while
/// the peer holds a roster of the identity, signed less than `MAX_ROSTER_AGE` ago (by the
/// peer's clock), that lists the device: the roster re-certifies devices at every session with
/// a device that holds the identity key, which a stolen linked device cannot sign.
#[test]
fn a_device_not_recertified_within_the_bound_is_refused_for_new_statements() {
    let now = clock();
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop = first(d1.path(), &now);
    let mut phone = join(d2.path(), &mut laptop, "phone", &now);
    let mut shop = first(d3.path(), &now);
    let ada = laptop.identity();
    laptop.records_mut().set_profile("email", "ada@example.org").unwrap();
    phone.keys_mut().accept_key_events(ada, &laptop.keys().own_key_events().unwrap()).unwrap();
    for roster in laptop.devices().rosters_for_devices().unwrap() {
        phone.devices_mut().keep_own_roster(&roster).unwrap();
    }

    // No roster of the customer yet: the phone's grant is not taken.
    let early = email_grant(&mut phone, shop.identity(), "early");
    assert!(early.signed_by().is_some(), "a linked device signs as itself");
    shop.held_mut().accept(ada, None, std::slice::from_ref(&early), &[], true).unwrap();
    assert!(held(&mut shop).is_empty(), "a device no roster vouches for");
    // The phone hands over the roster it was given (as its sessions do): taken.
    shop.devices_mut().accept_roster(ada, &phone.devices().roster().unwrap().unwrap()).unwrap();
    shop.held_mut().accept(ada, None, std::slice::from_ref(&early), &[], true).unwrap();
    assert_eq!(held(&mut shop), ["early"]);

    // The phone is stolen; the thief cannot sign rosters, only hand over the one it holds.
    now.store(T0 + vault_core::MAX_ROSTER_AGE + 1, Ordering::SeqCst);
    let late = email_grant(&mut phone, shop.identity(), "late");
    shop.devices_mut().accept_roster(ada, &phone.devices().roster().unwrap().unwrap()).unwrap();
    shop.held_mut().accept(ada, None, &[early.clone(), late.clone()], &[], true).unwrap();
    assert_eq!(held(&mut shop), ["early"], "a device not re-certified for the bound is refused");

    // A fresh roster from the identity key (any session with the laptop) renews it.
    shop.devices_mut().accept_roster(ada, &laptop.devices().roster().unwrap().unwrap()).unwrap();
    shop.held_mut().accept(ada, None, &[early, late], &[], true).unwrap();
    assert_eq!(held(&mut shop), ["early", "late"]);
}

/// A seller's second node (a linked device) asks a customer who does not know the seller yet:
/// the roster it hands over on the connection is kept with the request (a stranger's roster is
/// otherwise not stored), so the device-signed request is judged by it and accepted.
#[test]
fn a_strangers_device_signed_request_is_judged_by_the_roster_it_brought() {
    use vault_core::{Frame, GranteeAction, GranteeSession, IssuerSession, NewRequest};
    let now = clock();
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut seller = first(d1.path(), &now);
    let mut node2 = join(d2.path(), &mut seller, "node2", &now);
    let mut customer = first(d3.path(), &now);
    node2.keys_mut().accept_key_events(seller.identity(), &seller.keys().own_key_events().unwrap()).unwrap();
    for roster in seller.devices().rosters_for_devices().unwrap() {
        node2.devices_mut().keep_own_roster(&roster).unwrap();
    }
    let request = node2
        .outbox_mut()
        .make(NewRequest {
            holder: customer.identity(),
            ticket: None,
            fields: vec!["profile.name".parse().unwrap()],
            filter: None,
            purpose: "loyalty card".into(),
            duration: None,
            prices: false,
            name: None,
            reply_to: None,
        })
        .unwrap();
    assert!(request.signed_by().is_some());
    let mut grantee = GranteeSession::new(customer.identity(), None, false);
    let mut issuer =
        IssuerSession::new(seller.identity(), node2.device_key().public(), std::time::Instant::now());
    let mut acks = Vec::new();
    for action in grantee.start(&mut node2).unwrap() {
        let GranteeAction::Send(frame) = action else { continue };
        for answer in issuer.on_frame(&mut customer, *frame, std::time::Instant::now()).unwrap() {
            if let vault_core::IssuerAction::Send(Frame::RequestAck { accepted, .. }) = answer {
                acks.push(accepted);
            }
        }
    }
    assert_eq!(acks, [true], "the request is accepted, judged by the roster it brought");
    assert_eq!(customer.inbox().list().unwrap().len(), 1);
}
