//! The sharing protocol's logic without sockets: two vaults exchange frames by hand.

use std::time::Instant;

use crate::support::pair::{open, round, share_email, share_email_linked, sync, vault};
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use serde_json::json;
use vault_core::{
    AuditFilter, AuditKind, Frame, NewGrant, Passphrase, ServeError, ServeStep, ServeStream, SessionError,
    ShareEvent, ShareStatus, Vault,
};

/// A serving stream for `shop`'s device, opened by hand.
fn serve(customer: &mut Vault, shop: &Vault, id: vault_core::GrantId) -> Result<ServeStream, SessionError> {
    ServeStream::open(customer, shop.identity(), shop.device_key().public(), &Frame::Open(id), Instant::now())
}

/// Hands a grantee's sync message to a serving stream; its answer, if any.
fn answer(
    stream: &mut ServeStream,
    customer: &mut Vault,
    m: Vec<u8>,
) -> Result<Option<Vec<u8>>, SessionError> {
    match stream.on_frame(customer, &Frame::Sync(m), Instant::now())? {
        ServeStep::Send(r) => Ok(Some(r)),
        _ => Ok(None),
    }
}

#[test]
fn grant_sync_live_update_refused_write_revoke_erase() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    customer.records_mut().set_profile("phone", "+33 6 12 34 56 78").unwrap();
    customer.records_mut().set_profile("address.city", "Lyon").unwrap();
    let grant = customer
        .grants_mut()
        .issue(NewGrant {
            audience: shop.identity(),
            fields: vec!["profile.email".parse().unwrap(), "profile.address".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap();
    let id = grant.statement().id;

    // A stranger learns nothing.
    let stranger = vault(tempfile::tempdir().unwrap().path());
    let (live, ended) = customer.grants_mut().shares_for(&stranger.identity()).unwrap();
    assert!(live.is_empty() && ended.is_empty());
    assert!(matches!(serve(&mut customer, &stranger, id), Err(SessionError::Serve(ServeError::Refused))));

    // The shop asks what is shared with it, and syncs.
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert_eq!(live.len(), 1);
    assert!(shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap().is_empty());
    let mut link = open(&mut customer, &mut shop, &id);
    sync(&mut customer, &mut shop, &mut link);
    let shares = shop.held_mut().list().unwrap();
    assert_eq!(
        shares[0].values,
        Some(json!({"profile": {"email": "ada@example.org", "address": {"city": "Lyon"}}}))
    );

    // A live update.
    customer.records_mut().set_profile("address.city", "Paris").unwrap();
    customer.projections_mut().update(None).unwrap();
    sync(&mut customer, &mut shop, &mut link);
    assert_eq!(
        shop.held_mut().list().unwrap()[0].values.as_ref().unwrap()["profile"]["address"]["city"],
        "Paris"
    );

    // A grantee that edits its copy and syncs is refused, and nothing is applied.
    let mut replica = AutoCommit::new();
    let mut state = State::new();
    // Build the replica from the customer's projection through the protocol, then edit it.
    let mut hand = serve(&mut customer, &shop, id).unwrap();
    let mut customer_doc_msgs = 0;
    loop {
        let reply = match replica.sync().generate_sync_message(&mut state) {
            Some(m) => answer(&mut hand, &mut customer, m.encode()).unwrap(),
            None => match hand.on_change(&mut customer).unwrap() {
                ServeStep::Send(r) => Some(r),
                _ => None,
            },
        };
        match reply {
            Some(r) => {
                replica.sync().receive_sync_message(&mut state, Message::decode(&r).unwrap()).unwrap();
                customer_doc_msgs += 1;
            }
            None => break,
        }
        if customer_doc_msgs > 10 {
            break;
        }
    }
    let profile = match replica.get(ROOT, "profile").unwrap() {
        Some((_, obj)) => obj,
        None => replica.put_object(ROOT, "profile", automerge::ObjType::Map).unwrap(),
    };
    replica.put(&profile, "email", "mallory@example.org").unwrap();
    replica.commit();
    let mut forced = State::new();
    let mut refused = false;
    for _ in 0..5 {
        let generated = replica.sync().generate_sync_message(&mut forced);
        if let Some(m) = generated {
            if !m.changes.is_empty() {
                refused = matches!(
                    answer(&mut hand, &mut customer, m.encode()),
                    Err(SessionError::Serve(ServeError::Refused))
                );
                break;
            }
            if let Ok(Some(r)) = answer(&mut hand, &mut customer, m.encode()) {
                replica.sync().receive_sync_message(&mut forced, Message::decode(&r).unwrap()).unwrap();
            }
        }
    }
    assert!(refused, "the write to a read-only copy is refused");
    assert_eq!(customer.records().profile()["email"], "ada@example.org", "main document untouched");
    assert_eq!(
        customer.projections_mut().values(&id).unwrap().unwrap()["profile"]["email"],
        "ada@example.org"
    );
    assert!(
        customer
            .access_log()
            .list(&AuditFilter::default())
            .unwrap()
            .iter()
            .any(|e| e.kind == AuditKind::ChangeRefused)
    );

    // Revocation: nothing more is served, the shop erases and signs a receipt.
    customer.grants_mut().revoke(&id).unwrap();
    assert!(matches!(link.serve.on_change(&mut customer), Err(SessionError::Serve(ServeError::Refused))));
    customer.records_mut().set_profile("email", "ada@after-revocation.example").unwrap();
    let (live, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert!(live.is_empty());
    assert_eq!(ended.len(), 1);
    let receipts = shop.held_mut().accept(customer.identity(), None, &live, &ended, true).unwrap();
    assert_eq!(receipts.len(), 1);
    let share = &shop.held_mut().list().unwrap()[0];
    assert_eq!(share.status, ShareStatus::Revoked);
    assert!(share.values.is_none(), "the copy is erased");
    customer.grants_mut().record_erasure(&receipts[0]).unwrap();
    assert!(customer.grants().get(&id).unwrap().unwrap().erasure.is_some());
    let (_, ended) = customer.grants_mut().shares_for(&shop.identity()).unwrap();
    assert!(ended.is_empty(), "confirmed erasures are not repeated");
}

#[test]
fn a_resumed_session_does_not_resend_what_the_grantee_has() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let id = share_email(&mut customer, &mut shop);
    // Both sides restart.
    drop(customer);
    drop(shop);
    let mut customer = Vault::at(d1.path()).unlock(&Passphrase::new("pw")).unwrap();
    let mut shop = Vault::at(d2.path()).unlock(&Passphrase::new("pw")).unwrap();
    let mut link = open(&mut customer, &mut shop, &id);
    let mut carried = 0;
    for _ in 0..10 {
        let (from_shop, from_customer) = round(&mut customer, &mut shop, &mut link);
        if let Some(m) = &from_customer {
            carried += Message::decode(m).unwrap().changes.len();
        }
        if from_shop.is_none() && from_customer.is_none() {
            break;
        }
    }
    assert_eq!(carried, 0, "nothing resent after a restart");
}

/// The first byte of a sync body of a new epoch (see `vault_core::encode_sync_body`).
fn epoch_of(body: &[u8]) -> u64 {
    vault_core::decode_sync_body(body).unwrap().0
}

#[test]
fn a_connected_grantee_stays_incremental_and_a_late_one_gets_a_fresh_epoch() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let (id, mut link) = share_email_linked(&mut customer, &mut shop);

    // In sync: an overwrite is sent as a delta (the grantee saw the old value).
    customer.records_mut().set_profile("email", "ada@second.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    let ServeStep::Send(m) = link.serve.on_change(&mut customer).unwrap() else { panic!("no delta") };
    assert_eq!(epoch_of(&m), 0, "no rebuild for a grantee in sync");
    assert_eq!(
        link.share.on_frame(&mut shop, &Frame::Sync(m)).unwrap(),
        ShareEvent::Applied { changed: true }
    );
    sync(&mut customer, &mut shop, &mut link);

    // Offline: the value set and overwritten in between never reaches the grantee.
    customer.records_mut().set_profile("email", "ada@never-seen.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    customer.records_mut().set_profile("email", "ada@third.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    let mut link = open(&mut customer, &mut shop, &id);
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let (from_shop, from_customer) = round(&mut customer, &mut shop, &mut link);
        if let Some(m) = &from_customer {
            bodies.push(m.clone());
        }
        if from_shop.is_none() && from_customer.is_none() {
            break;
        }
    }
    assert!(bodies.iter().all(|b| epoch_of(b) == 1), "a new epoch");
    assert!(
        !bodies.iter().any(|b| b.windows(10).any(|w| w == b"never-seen")),
        "the retracted value is not sent"
    );
    assert_eq!(
        shop.held_mut().list().unwrap()[0].values,
        Some(json!({"profile": {"email": "ada@third.example"}}))
    );
    // And the replaced copy survives a restart.
    drop(shop);
    let mut shop = Vault::at(d2.path()).unlock(&Passphrase::new("pw")).unwrap();
    customer.records_mut().set_profile("email", "ada@fourth.example").unwrap();
    customer.projections_mut().update(None).unwrap();
    let mut link = open(&mut customer, &mut shop, &id);
    sync(&mut customer, &mut shop, &mut link);
    assert_eq!(
        shop.held_mut().list().unwrap()[0].values,
        Some(json!({"profile": {"email": "ada@fourth.example"}}))
    );
}

/// An issuer who learned another issuer's grant id cannot occupy it: shares are kept by
/// (issuer, grant id), so the honest grant is still accepted and synced, whichever came first.
#[test]
fn an_issuer_cannot_occupy_another_issuers_grant_id() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = vault(d1.path());
    let mut bob = vault(d2.path());
    let mallory = vault(d3.path());
    alice.records_mut().set_profile("email", "alice@example.org").unwrap();
    let real = alice
        .grants_mut()
        .issue(NewGrant {
            audience: bob.identity(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "newsletter".into(),
            expires_at: None,
            prices: true,
        })
        .unwrap();
    let id = real.statement().id;
    // Mallory signs a grant with Alice's grant id and delivers it first.
    let mut forged = real.statement().clone();
    forged.issuer = mallory.identity();
    forged.purpose = "mallory".into();
    let forged = vault_core::Signed::sign(forged, mallory.signer()).unwrap();
    bob.held_mut().accept(mallory.identity(), None, &[forged], &[], true).unwrap();
    assert_eq!(bob.held().live_from(&mallory.identity()).unwrap(), vec![id]);

    // Alice's grant is still accepted, kept apart, and syncs.
    let (live, ended) = alice.grants_mut().shares_for(&bob.identity()).unwrap();
    bob.held_mut().accept(alice.identity(), None, &live, &ended, true).unwrap();
    assert_eq!(bob.held().live_from(&alice.identity()).unwrap(), vec![id]);
    let mut link = open(&mut alice, &mut bob, &id);
    sync(&mut alice, &mut bob, &mut link);
    let shares = bob.held_mut().list().unwrap();
    assert_eq!(shares.len(), 2);
    let from_alice = shares.iter().find(|s| s.grant.statement().issuer == alice.identity()).unwrap();
    assert_eq!(from_alice.grant.statement().purpose, "newsletter");
    assert_eq!(from_alice.values, Some(json!({"profile": {"email": "alice@example.org"}})));
    let from_mallory = shares.iter().find(|s| s.grant.statement().issuer == mallory.identity()).unwrap();
    assert_eq!(from_mallory.grant.statement().purpose, "mallory");
    assert_ne!(from_mallory.values, from_alice.values, "mallory's share is not alice's copy");

    // Mallory ending "its" grant erases its own share only.
    let revocation = vault_core::Signed::sign(
        vault_core::Revocation { grant: id, issuer: mallory.identity(), revoked_at: mallory.now() },
        mallory.signer(),
    )
    .unwrap();
    bob.held_mut()
        .accept(mallory.identity(), None, &[], &[vault_core::Ended::Revoked(revocation)], true)
        .unwrap();
    assert_eq!(bob.held().live_from(&alice.identity()).unwrap(), vec![id]);
    assert!(bob.held().live_from(&mallory.identity()).unwrap().is_empty());
    assert_eq!(
        bob.held_mut()
            .list()
            .unwrap()
            .iter()
            .find(|s| s.grant.statement().issuer == alice.identity())
            .unwrap()
            .values,
        Some(json!({"profile": {"email": "alice@example.org"}}))
    );
}
