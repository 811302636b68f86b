//! A grantee with a valid grant floods its grant stream with sync messages: the node slows it
//! down without cutting it off, and another grantee keeps receiving updates meanwhile.
//!
//! Nothing here measures speed: every wait is for a condition, bounded only against a hang
//! ([`vault_tests::HANG`]), so that the test holds on a busy machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use automerge::AutoCommit;
use automerge::sync::{State as SyncState, SyncDoc};
use vault_core::{DeviceKey, Frame, Identity, Ticket, encode_with_length};
use vault_sync::{Node, sync_once};
use vault_tests::HANG;
use vault_tests::peer::{create, dial, local, raw_endpoint, recv, send};

/// A grantee flooding one of its grant streams, with its connection's control stream at hand.
struct Flooder {
    _ep: iroh::Endpoint,
    _conn: iroh::endpoint::Connection,
    control: iroh::endpoint::SendStream,
    control_rx: iroh::endpoint::RecvStream,
    /// Sync answers the node sent on the flooded stream.
    answers: Arc<AtomicU64>,
    /// Writes sync messages until the stream fails; says why it stopped if it does.
    writing: tokio::task::JoinHandle<String>,
}

/// Connects as `identity` and floods grant `grant` of `ticket` with harmless sync messages.
async fn flood(identity: Identity, ticket: Ticket, grant: vault_core::GrantId) -> Flooder {
    let device = DeviceKey::generate();
    let ep = raw_endpoint(&device).await;
    let conn = dial(&ep, &ticket).await;
    let (mut control, mut control_rx) = conn.open_bi().await.unwrap();
    send(&mut control, &Frame::Hello(identity.certify(device.public()))).await;
    // The node's hello back: the session is up before the grant stream opens.
    assert!(matches!(recv(&mut control_rx).await, Some(Frame::Hello(_))), "the node said hello");
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    send(&mut s, &Frame::Open(grant)).await;
    // The answers are read (and counted) as they come.
    let answers = Arc::new(AtomicU64::new(0));
    let counted = answers.clone();
    tokio::spawn(async move {
        while let Some(frame) = recv(&mut r).await {
            if matches!(frame, Frame::Sync(_)) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let message = AutoCommit::new().sync().generate_sync_message(&mut SyncState::new()).unwrap().encode();
    let frame = encode_with_length(&Frame::Sync(message));
    let writing = tokio::spawn(async move {
        let mut written = 0u64;
        loop {
            if let Err(e) = s.write_all(&frame).await {
                return format!("its stream failed after {written} messages: {e}");
            }
            written += 1;
        }
    });
    Flooder { _ep: ep, _conn: conn, control, control_rx, answers, writing }
}

/// Waits until `check` holds, polling; panics with `what` only after [`HANG`].
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < HANG, "timed out after {HANG:?} waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_grantee_does_not_hold_up_the_others() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut customer = create(dirs[0].path());
    let shop = create(dirs[1].path());
    let mallory = Identity::generate();
    customer.records_mut().set_profile("email", "ada@example.org").unwrap();
    let grant = |audience| vault_tests::new_grant(audience, &["profile.email"], "delivery");
    customer.grants_mut().issue(grant(shop.identity())).unwrap();
    // Mallory's grant covers a field the edits below leave alone: an edit that overwrites a
    // field a grantee does not hold up to date starts a new epoch of that grantee's projection
    // and ends its streams (see `grantee_holds`), which would end the flood for a reason that
    // is not the one under test.
    customer.records_mut().set_profile("name", "Ada").unwrap();
    let name = vault_tests::new_grant(mallory.public(), &["profile.name"], "delivery");
    let flooded = customer.grants_mut().issue(name).unwrap().statement().id;
    let customer = Node::spawn(customer, local()).await.unwrap();
    let ticket = customer.ticket();
    let (shop, _) = sync_once(shop, &ticket, &local()).await;
    let shop = Node::spawn(shop, local()).await.unwrap();
    let mut flooder = flood(mallory, ticket.clone(), flooded).await;
    // The flooder is served: its first message is answered.
    until("the flooder's first answer", || {
        flooder.answers.load(Ordering::SeqCst) > 0 || flooder.writing.is_finished()
    })
    .await;

    // Every edit reaches the other grantee while the flood goes on.
    for n in 0..5 {
        let email = format!("ada{n}@example.org");
        let e = email.clone();
        customer.with_vault(move |v| v.records_mut().set_profile("email", &e)).unwrap();
        until("the edit at the other grantee", || {
            shop.inspect(|v| v.held_mut().list().unwrap()[0].values.clone().unwrap())["profile"]["email"]
                == email.as_str()
        })
        .await;
    }
    // The flooder is slowed down, not cut off: its flood still goes on, and its connection
    // still answers a request.
    if flooder.writing.is_finished() {
        let why = flooder.writing.await.unwrap();
        panic!("the flooding grantee is slowed down, not cut off: {why}");
    }
    send(&mut flooder.control, &Frame::ListShares).await;
    loop {
        match recv(&mut flooder.control_rx).await {
            Some(Frame::Shares { .. }) => break,
            Some(_) => continue,
            None => panic!("the flooding grantee's connection no longer answers"),
        }
    }
    flooder.writing.abort();
    shop.shutdown().await;
    customer.shutdown().await;
}
