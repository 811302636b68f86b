//! The sharing protocol's logic without sockets: two vaults exchange frames by hand.

use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use serde_json::json;
#[path = "support/pair.rs"]
mod pair;
use pair::{share_email, sync, vault};
use vault_core::{AuditFilter, AuditKind, NewGrant, Passphrase, ServeError, ShareStatus, Vault};

#[test]
fn grant_sync_live_update_refused_write_revoke_erase() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.set_profile("email", "ada@example.org").unwrap();
    customer.set_profile("phone", "+33 6 12 34 56 78").unwrap();
    customer.set_profile("address.city", "Lyon").unwrap();
    let grant = customer
        .issue_grant(NewGrant {
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
    let (live, ended) = customer.shares_for(&stranger.identity()).unwrap();
    assert!(live.is_empty() && ended.is_empty());
    assert!(matches!(customer.serve_open(&stranger.identity(), &id), Err(ServeError::Refused)));
    assert!(matches!(customer.serve_generate(&stranger.identity(), &id), Err(ServeError::Refused)));

    // The shop asks what is shared with it, and syncs.
    let (live, ended) = customer.shares_for(&shop.identity()).unwrap();
    assert_eq!(live.len(), 1);
    assert!(shop.accept_shares(customer.identity(), None, &live, &ended).unwrap().is_empty());
    customer.serve_open(&shop.identity(), &id).unwrap();
    sync(&mut customer, &mut shop, &id);
    let shares = shop.shares().unwrap();
    assert_eq!(
        shares[0].values,
        Some(json!({"profile": {"email": "ada@example.org", "address": {"city": "Lyon"}}}))
    );

    // A live update.
    customer.set_profile("address.city", "Paris").unwrap();
    customer.update_projections(None).unwrap();
    sync(&mut customer, &mut shop, &id);
    assert_eq!(shop.shares().unwrap()[0].values.as_ref().unwrap()["profile"]["address"]["city"], "Paris");

    // A grantee that edits its copy and syncs is refused, and nothing is applied.
    let mut replica = AutoCommit::new();
    let mut state = State::new();
    // Build the replica from the customer's projection through the protocol, then edit it.
    let mut customer_doc_msgs = 0;
    loop {
        let m = replica.sync().generate_sync_message(&mut state);
        if let Some(m) = m {
            let _ = customer.serve_receive(&shop.identity(), &id, &m.encode());
        }
        let reply = customer.serve_generate(&shop.identity(), &id).unwrap();
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
                    customer.serve_receive(&shop.identity(), &id, &m.encode()),
                    Err(ServeError::Refused)
                );
                break;
            }
            let _ = customer.serve_receive(&shop.identity(), &id, &m.encode());
            if let Some(r) = customer.serve_generate(&shop.identity(), &id).unwrap() {
                replica.sync().receive_sync_message(&mut forced, Message::decode(&r).unwrap()).unwrap();
            }
        }
    }
    assert!(refused, "the write to a read-only copy is refused");
    assert_eq!(customer.profile()["email"], "ada@example.org", "main document untouched");
    assert_eq!(customer.projection_values(&id).unwrap().unwrap()["profile"]["email"], "ada@example.org");
    assert!(
        customer.audit(&AuditFilter::default()).unwrap().iter().any(|e| e.kind == AuditKind::ChangeRefused)
    );

    // Revocation: nothing more is served, the shop erases and signs a receipt.
    customer.revoke(&id).unwrap();
    assert!(matches!(customer.serve_generate(&shop.identity(), &id), Err(ServeError::Refused)));
    customer.set_profile("email", "ada@after-revocation.example").unwrap();
    let (live, ended) = customer.shares_for(&shop.identity()).unwrap();
    assert!(live.is_empty());
    assert_eq!(ended.len(), 1);
    let receipts = shop.accept_shares(customer.identity(), None, &live, &ended).unwrap();
    assert_eq!(receipts.len(), 1);
    let share = &shop.shares().unwrap()[0];
    assert_eq!(share.status, ShareStatus::Revoked);
    assert!(share.values.is_none(), "the copy is erased");
    customer.record_erasure(&receipts[0]).unwrap();
    assert!(customer.grant_info(&id).unwrap().unwrap().erasure.is_some());
    let (_, ended) = customer.shares_for(&shop.identity()).unwrap();
    assert!(ended.is_empty(), "confirmed erasures are not repeated");
}

#[test]
fn a_resumed_session_does_not_resend_what_the_grantee_has() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut customer = vault(d1.path());
    let mut shop = vault(d2.path());
    customer.set_profile("email", "ada@example.org").unwrap();
    let id = share_email(&mut customer, &mut shop);
    // Both sides restart.
    drop(customer);
    drop(shop);
    let mut customer = Vault::at(d1.path()).unlock(&Passphrase::new("pw")).unwrap();
    let mut shop = Vault::at(d2.path()).unlock(&Passphrase::new("pw")).unwrap();
    customer.serve_open(&shop.identity(), &id).unwrap();
    let mut carried = 0;
    for _ in 0..10 {
        let from_customer = customer.serve_generate(&shop.identity(), &id).unwrap();
        if let Some(m) = &from_customer {
            carried += Message::decode(m).unwrap().changes.len();
            shop.share_sync_receive(&customer.identity(), &id, m).unwrap();
        }
        let from_shop = shop.share_sync_generate(&customer.identity(), &id).unwrap();
        if let Some(m) = &from_shop {
            customer.serve_receive(&shop.identity(), &id, m).unwrap();
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
    customer.set_profile("email", "ada@example.org").unwrap();
    let id = share_email(&mut customer, &mut shop);

    // In sync: an overwrite is sent as a delta (the grantee saw the old value).
    customer.set_profile("email", "ada@second.example").unwrap();
    customer.update_projections(None).unwrap();
    let m = customer.serve_generate(&shop.identity(), &id).unwrap().unwrap();
    assert_eq!(epoch_of(&m), 0, "no rebuild for a grantee in sync");
    shop.share_sync_receive(&customer.identity(), &id, &m).unwrap();
    sync(&mut customer, &mut shop, &id);

    // Offline: the value set and overwritten in between never reaches the grantee.
    customer.set_profile("email", "ada@never-seen.example").unwrap();
    customer.update_projections(None).unwrap();
    customer.set_profile("email", "ada@third.example").unwrap();
    customer.update_projections(None).unwrap();
    customer.serve_open(&shop.identity(), &id).unwrap();
    shop.share_sync_open(&customer.identity(), &id).unwrap();
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let from_shop = shop.share_sync_generate(&customer.identity(), &id).unwrap();
        if let Some(m) = &from_shop {
            customer.serve_receive(&shop.identity(), &id, m).unwrap();
        }
        let from_customer = customer.serve_generate(&shop.identity(), &id).unwrap();
        if let Some(m) = &from_customer {
            bodies.push(m.clone());
            shop.share_sync_receive(&customer.identity(), &id, m).unwrap();
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
    assert_eq!(shop.shares().unwrap()[0].values, Some(json!({"profile": {"email": "ada@third.example"}})));
    // And the replaced copy survives a restart.
    drop(shop);
    let mut shop = Vault::at(d2.path()).unlock(&Passphrase::new("pw")).unwrap();
    customer.set_profile("email", "ada@fourth.example").unwrap();
    customer.update_projections(None).unwrap();
    customer.serve_open(&shop.identity(), &id).unwrap();
    shop.share_sync_open(&customer.identity(), &id).unwrap();
    sync(&mut customer, &mut shop, &id);
    assert_eq!(shop.shares().unwrap()[0].values, Some(json!({"profile": {"email": "ada@fourth.example"}})));
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
    alice.set_profile("email", "alice@example.org").unwrap();
    let real = alice
        .issue_grant(NewGrant {
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
    let forged = vault_core::Signed::sign(forged, mallory.identity_key()).unwrap();
    bob.accept_shares(mallory.identity(), None, &[forged], &[]).unwrap();
    assert_eq!(bob.live_shares_from(&mallory.identity()).unwrap(), vec![id]);

    // Alice's grant is still accepted, kept apart, and syncs.
    let (live, ended) = alice.shares_for(&bob.identity()).unwrap();
    bob.accept_shares(alice.identity(), None, &live, &ended).unwrap();
    assert_eq!(bob.live_shares_from(&alice.identity()).unwrap(), vec![id]);
    alice.serve_open(&bob.identity(), &id).unwrap();
    sync(&mut alice, &mut bob, &id);
    let shares = bob.shares().unwrap();
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
        mallory.identity_key(),
    )
    .unwrap();
    bob.accept_shares(mallory.identity(), None, &[], &[vault_core::Ended::Revoked(revocation)]).unwrap();
    assert_eq!(bob.live_shares_from(&alice.identity()).unwrap(), vec![id]);
    assert!(bob.live_shares_from(&mallory.identity()).unwrap().is_empty());
    assert_eq!(
        bob.shares().unwrap().iter().find(|s| s.grant.statement().issuer == alice.identity()).unwrap().values,
        Some(json!({"profile": {"email": "alice@example.org"}}))
    );
}
