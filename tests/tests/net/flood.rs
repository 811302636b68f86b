//! A grantee with a valid grant floods its grant stream with sync messages: the node slows it
//! down without stalling anyone else, and another grantee keeps receiving updates.

use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{State as SyncState, SyncDoc};
use iroh::EndpointAddr;
use vault_core::{ALPN, DeviceKey, Frame, Identity, Ticket, encode_with_length};
use vault_sync::{Node, sync_once};
use vault_tests::peer::{create, local, raw_endpoint};

/// Floods grant `grant` of `ticket` with harmless sync messages as `identity`, until aborted.
async fn flood(identity: Identity, ticket: Ticket, grant: vault_core::GrantId) {
    let device = DeviceKey::generate();
    let ep = raw_endpoint(&device).await;
    let mut addr = EndpointAddr::new(iroh::PublicKey::from_bytes(ticket.device().as_bytes()).unwrap());
    for a in ticket.addrs() {
        addr = addr.with_ip_addr(*a);
    }
    let conn = ep.connect(addr, ALPN).await.unwrap();
    let (mut control, _control_rx) = conn.open_bi().await.unwrap();
    control.write_all(&encode_with_length(&Frame::Hello(identity.certify(device.public())))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut s, _r) = conn.open_bi().await.unwrap();
    s.write_all(&encode_with_length(&Frame::Open(grant))).await.unwrap();
    let message = AutoCommit::new().sync().generate_sync_message(&mut SyncState::new()).unwrap().encode();
    let frame = encode_with_length(&Frame::Sync(message));
    while s.write_all(&frame).await.is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_grantee_does_not_hold_up_the_others() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut customer = create(dirs[0].path());
    let shop = create(dirs[1].path());
    let mallory = Identity::generate();
    customer.set_profile("email", "ada@example.org").unwrap();
    let grant = |audience| vault_tests::new_grant(audience, &["profile.email"], "delivery");
    customer.issue_grant(grant(shop.identity())).unwrap();
    // Mallory's grant covers a field the edits below leave alone: an edit that overwrites a
    // field a grantee does not hold up to date starts a new epoch of that grantee's projection
    // and ends its streams (see `grantee_holds`), which would end the flood for a reason that
    // is not the one under test.
    customer.set_profile("name", "Ada").unwrap();
    let name = vault_tests::new_grant(mallory.public(), &["profile.name"], "delivery");
    let flooded = customer.issue_grant(name).unwrap().statement().id;
    let customer = Node::spawn(customer, local()).await.unwrap();
    let ticket = customer.ticket();
    let (shop, _) = sync_once(shop, &ticket, &local()).await;
    let shop = Node::spawn(shop, local()).await.unwrap();
    let flooding = tokio::spawn(flood(mallory, ticket.clone(), flooded));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut slowest = Duration::ZERO;
    for n in 0..5 {
        let email = format!("ada{n}@example.org");
        let e = email.clone();
        customer.with_vault(move |v| v.set_profile("email", &e)).unwrap();
        let start = Instant::now();
        loop {
            let now = shop.inspect(|v| v.shares().unwrap()[0].values.clone().unwrap());
            if now["profile"]["email"] == email.as_str() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "the flood held up another grantee");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("updates reached the other grantee during the flood; slowest {slowest:?}");
    assert!(!flooding.is_finished(), "the flooding grantee is slowed down, not cut off");
    flooding.abort();
    shop.shutdown().await;
    customer.shutdown().await;
}
