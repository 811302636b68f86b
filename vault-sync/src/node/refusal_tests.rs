//! Refusals cost the node little and tell a blocked peer nothing.

use std::time::{Duration, Instant};

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use vault_core::{
    ALPN, AuditFilter, AuditKind, DeviceKey, Frame, Identity, KdfParams, Passphrase, Ticket, Vault,
};

use crate::endpoint::NodeConfig;
use crate::endpoint::{bind_endpoint, ticket_addrs};
use crate::error::SyncError;
use crate::frame::write_frame;
use crate::limits::HANDSHAKE_TIMEOUT;
use crate::node::Node;

fn create(dir: &std::path::Path) -> Vault {
    Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap()
}

fn local() -> NodeConfig {
    NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, ..NodeConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_refused_connections_write_a_bounded_number_of_audit_rows() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(create(dir.path()), local()).await.unwrap();
    let ticket = node.ticket();
    let before = node.inspect(|v| v.access_log().list(&AuditFilter::default()).unwrap().len());
    let device = DeviceKey::generate();
    let endpoint = bind_endpoint(&device, &local(), Vec::new()).await.unwrap();
    for _ in 0..200 {
        // A certificate for another device: refused before anything is proven.
        let forged = Identity::generate().certify(DeviceKey::generate().public());
        let conn = crate::client::connect(&endpoint, ticket.device(), ticket.addrs()).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &Frame::Hello(forged)).await.unwrap();
        conn.closed().await;
    }
    let refused: Vec<_> = node.inspect(|v| {
        v.access_log()
            .list(&AuditFilter::default())
            .unwrap()
            .into_iter()
            .skip(before)
            .filter(|e| e.kind == AuditKind::PeerRefused)
            .collect()
    });
    assert!(!refused.is_empty(), "refusals are still logged");
    assert!(refused.len() <= 2, "{} audit rows for 200 refusals", refused.len());
    endpoint.close().await;
    node.shutdown().await;
}

/// A node that accepts connections and never answers.
#[derive(Debug, Clone)]
struct Silent;

impl ProtocolHandler for Silent {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        conn.closed().await;
        Ok(())
    }
}

async fn outcome(requester: Vault, ticket: &Ticket) -> (String, Duration) {
    let start = Instant::now();
    let (_, result) = crate::client::sync_once(requester, ticket, &local()).await;
    let error = result.expect_err("no answer");
    assert!(matches!(error, SyncError::Timeout), "{error:?}");
    (error.to_string(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_requester_sees_what_a_silent_node_shows() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut holder = create(dirs[0].path());
    let (blocked, other) = (create(dirs[1].path()), create(dirs[2].path()));
    holder.contacts_mut().add("pushy", &blocked.ticket(Vec::new())).unwrap();
    holder.contacts_mut().block("pushy").unwrap();
    let holder = Node::spawn(holder, local()).await.unwrap();

    let silent_key = DeviceKey::generate();
    let silent_endpoint = bind_endpoint(&silent_key, &local(), vec![ALPN.to_vec()]).await.unwrap();
    let silent_ticket =
        Ticket::new(Identity::generate().certify(silent_key.public()), ticket_addrs(&silent_endpoint));
    let silent = Router::builder(silent_endpoint).accept(ALPN, Silent).spawn();

    let holder_ticket = holder.ticket();
    let ((blocked_error, blocked_took), (silent_error, silent_took)) =
        tokio::join!(outcome(blocked, &holder_ticket), outcome(other, &silent_ticket));
    assert_eq!(blocked_error, silent_error);
    assert!(blocked_took >= HANDSHAKE_TIMEOUT && silent_took >= HANDSHAKE_TIMEOUT);
    let _ = silent.shutdown().await;
    holder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_is_dialed_back_only_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(create(dir.path()), local()).await.unwrap();
    let ticket = node.ticket();
    let stranger = Identity::generate();
    let device = DeviceKey::generate();
    let endpoint = bind_endpoint(&device, &local(), Vec::new()).await.unwrap();
    let conn = crate::client::connect(&endpoint, ticket.device(), ticket.addrs()).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let cert = stranger.certify(device.public());
    write_frame(&mut send, &Frame::Hello(cert)).await.unwrap();
    assert!(matches!(crate::frame::read_frame(&mut recv, 64 * 1024).await, Ok(Some(Frame::Hello(_)))));
    // The offer names a third party's address (and a local port) as the way back.
    let elsewhere: Vec<std::net::SocketAddr> =
        vec!["192.0.2.7:4433".parse().unwrap(), "127.0.0.1:22".parse().unwrap()];
    write_frame(&mut send, &Frame::Offer(Ticket::new(cert, elsewhere.clone()))).await.unwrap();
    assert!(matches!(crate::frame::read_frame(&mut recv, 64 * 1024).await, Ok(Some(Frame::OfferAck))));
    let offers = node.shared.book().offers();
    let (_, kept) = offers.iter().find(|(i, _)| *i == stranger.public()).expect("the offer is kept");
    let ours = ticket_addrs(&endpoint);
    assert!(!kept.addrs().is_empty());
    assert!(kept.addrs().iter().all(|a| !elsewhere.contains(a)), "{:?}", kept.addrs());
    assert!(kept.addrs().iter().all(|a| a.port() == ours[0].port()), "{:?} vs {ours:?}", kept.addrs());
    endpoint.close().await;
    node.shutdown().await;
}
