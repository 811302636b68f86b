//! Grants that end: the grantee's erasure receipt closes them, whatever the order in which
//! things happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::support::pair::{email_grant, open, share_email_linked, sync, vault};
use vault_core::{
    AuditFilter, AuditKind, ErasureReceipt, Identity, KdfParams, NewGrant, Passphrase, Signed, Vault,
};

/// A grant revoked (or expired) before its grantee ever received it: the grantee holds nothing
/// of it, and must say so, or the issuer shows the erasure as pending forever.
#[test]
fn a_grant_ended_before_it_was_received_gets_an_erasure_receipt() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut customer, mut shop) = (vault(d1.path()), vault(d2.path()));
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let grant = customer.grants_mut().issue(email_grant(shop.identity(), "delivery")).unwrap();
    let id = grant.statement().id;
    // Revoked before the shop ever connected.
    customer.grants_mut().revoke(&id).unwrap();
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert!(live.is_empty() && ended.len() == 1);

    let receipts = shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap();
    assert_eq!(receipts.len(), 1, "the shop says it holds nothing of the grant");
    assert_eq!(receipts[0].statement().grant, id);
    assert!(shop.held_mut().list().unwrap().is_empty(), "and keeps nothing of it");
    customer.grants_mut().record_erasure(&receipts[0]).unwrap();
    assert!(customer.grants().get(&id).unwrap().unwrap().erasure.is_some(), "erasure confirmed");
    let (_, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert!(ended.is_empty(), "nothing left to tell the shop");

    // A revocation signed by someone else, for a grant the shop never held, gets nothing.
    let (d3, _d4) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut stranger = vault(d3.path());
    stranger.records_mut().set_profile("email", "x@example.org").unwrap();
    let g = stranger.grants_mut().issue(email_grant(shop.identity(), "spam")).unwrap();
    stranger.grants_mut().revoke(&g.statement().id).unwrap();
    let (_, foreign) = stranger.grants_mut().shares_for(&shop.identity()).unwrap();
    let receipts = shop.held_mut().accept(customer.identity(), None, &[], &foreign, true).unwrap();
    assert!(receipts.is_empty(), "a revocation by another issuer is not this issuer's to ask about");
    // Nor a bare "expired" naming any grant id: it carries no issuer's signature.
    let expired = [vault_core::Ended::Expired(g.statement().id)];
    let receipts = shop.held_mut().accept(customer.identity(), None, &[], &expired, true).unwrap();
    assert!(receipts.is_empty(), "no receipt for an unsigned end of a grant never held");
}

/// The grantee's receipt can arrive before the issuer's node notices the expiry (its watcher
/// runs on a timer): the access log still shows the expiry, and first.
#[test]
fn an_erasure_receipt_that_beats_the_watcher_logs_the_expiry_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_800_000_000));
    let c = clock.clone();
    let mut customer = Vault::at(dir.path())
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(Arc::new(move || c.load(Ordering::SeqCst)))
        .create(&Passphrase::new("pw"))
        .unwrap();
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let shop = Identity::generate();
    let in_an_hour = customer.now() + 3600;
    let id = customer
        .grants_mut()
        .issue(NewGrant { expires_at: Some(in_an_hour), ..email_grant(shop.public(), "a one-hour trial") })
        .unwrap()
        .statement()
        .id;
    clock.fetch_add(3600, Ordering::SeqCst);
    let receipt = Signed::sign(
        ErasureReceipt {
            grant: id,
            issuer: customer.identity(),
            grantee: shop.public(),
            erased_at: customer.now(),
            device: None,
        },
        &shop,
    )
    .unwrap();
    customer.grants_mut().record_erasure(&receipt).unwrap();
    let kinds: Vec<AuditKind> = customer
        .access_log()
        .list(&AuditFilter::default())
        .unwrap()
        .iter()
        .filter(|e| e.grant == Some(id))
        .map(|e| e.kind)
        .collect();
    let expired = kinds.iter().position(|k| *k == AuditKind::GrantExpired).expect("the expiry is logged");
    let erased = kinds.iter().position(|k| *k == AuditKind::ErasureReceipt).expect("the receipt is logged");
    assert!(expired < erased, "{kinds:?}");
    assert!(customer.grants_mut().expire().unwrap().is_empty(), "logged once");
}

/// Finding: erasure was confirmed per identity. A seller with two devices both served the
/// customer's grant; one confirmed its erasure and the grant read "erasure confirmed" while the
/// other still held the copy (and, never told again, kept it). Now each device served confirms
/// for itself, and the grant is told as ended until every one has.
#[test]
fn erasure_is_confirmed_by_every_device_of_the_grantee_it_was_served_to() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let mut shop = vault(d2.path());
    let device = vault_core::DeviceKey::generate();
    let package = shop.devices_mut().invite(device.public(), "node2").unwrap();
    let mut shop2 = Vault::at(d3.path())
        .kdf(vault_core::KdfParams::INSECURE_FOR_TESTS)
        .join(&vault_core::Passphrase::new("pw"), device, package)
        .unwrap();
    // Both of the shop's devices hold a copy.
    let (id, _link) = share_email_linked(&mut customer, &mut shop);
    let (live, ended) = customer.grants_mut().shares_for(&shop2.identity()).unwrap();
    shop2.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap();
    let mut link2 = open(&mut customer, &mut shop2, &id);
    sync(&mut customer, &mut shop2, &mut link2);
    assert_eq!(shop2.held().live_from(&customer.identity()).unwrap(), vec![id]);

    customer.grants_mut().revoke(&id).unwrap();
    assert_eq!(customer.grants().get(&id).unwrap().unwrap().served.len(), 2);
    // The first device erases and confirms: the grant is still told as ended, to the other.
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    for receipt in shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap() {
        customer.grants_mut().record_erasure(&receipt).unwrap();
    }
    let info = customer.grants().get(&id).unwrap().unwrap();
    assert!(!info.erasure_complete(), "one device of two confirmed");
    let (_, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert_eq!(ended.len(), 1, "the other device must still learn of the end");
    // The second device learns, erases and confirms: now complete, and no longer told.
    for receipt in shop2.held_mut().accept(customer.identity(), None, &[], &ended, true).unwrap() {
        customer.grants_mut().record_erasure(&receipt).unwrap();
    }
    assert!(shop2.held().live_from(&customer.identity()).unwrap().is_empty());
    let info = customer.grants().get(&id).unwrap().unwrap();
    assert!(info.erasure_complete());
    assert_eq!(info.erased_on().len(), 2);
    let (_, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert!(ended.is_empty());
}
