//! A live session waits for what its peer owes it: a busy peer's acknowledgement that comes
//! after the session's idle time is still taken, and the request it answers counts delivered;
//! one that never comes makes the node call again and deliver it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use vault_core::{
    ALPN, DeviceKey, Frame, Identity, KdfParams, NewRequest, Passphrase, RequestStatus, Ticket, Vault,
};

use crate::endpoint::{NodeConfig, bind_endpoint, ticket_addrs};
use crate::frame::{read_frame, write_frame};
use crate::node::Node;

/// How long the busy peer takes to answer each frame: longer than the session's idle time.
const SLOW: Duration = Duration::from_millis(2500);

/// A customer's node so busy that each answer takes `answer_after`; it counts the requests it
/// got, and with `drop_first` never acknowledges those of the first connection.
#[derive(Debug, Clone)]
struct Busy {
    cert: vault_core::DeviceCertificate,
    answer_after: Duration,
    drop_first: bool,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl ProtocolHandler for Busy {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let first = self.connections.fetch_add(1, Ordering::SeqCst) == 0;
        let Ok((mut send, mut recv)) = conn.accept_bi().await else { return Ok(()) };
        if !matches!(read_frame(&mut recv, 64 * 1024).await, Ok(Some(Frame::Hello(_)))) {
            return Ok(());
        }
        let _ = write_frame(&mut send, &Frame::Hello(self.cert)).await;
        while let Ok(Some(frame)) = read_frame(&mut recv, 1024 * 1024).await {
            let answer = match frame {
                Frame::Request(r) => {
                    self.requests.fetch_add(1, Ordering::SeqCst);
                    if first && self.drop_first {
                        continue;
                    }
                    Frame::RequestAck { request: r.statement().id, accepted: true }
                }
                Frame::ListShares => Frame::Shares { live: Vec::new(), ended: Vec::new() },
                _ => continue,
            };
            tokio::time::sleep(self.answer_after).await;
            if write_frame(&mut send, &answer).await.is_err() {
                break;
            }
        }
        conn.closed().await;
        Ok(())
    }
}

/// A seller node with a request queued for a [`Busy`] customer; returns the request's status
/// once it is no longer queued (or after 60 s), the requests the customer got and the
/// connections it took.
async fn deliver(answer_after: Duration, drop_first: bool) -> (RequestStatus, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut seller =
        Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();

    let key = DeviceKey::generate();
    let customer = Identity::generate();
    let cert = customer.certify(key.public());
    let local =
        NodeConfig { bind: Some("127.0.0.1:0".parse().unwrap()), relay: false, ..NodeConfig::default() };
    let endpoint = bind_endpoint(&key, &local, vec![ALPN.to_vec()]).await.unwrap();
    let ticket = Ticket::new(cert, ticket_addrs(&endpoint));
    let (requests, connections) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler =
        Busy { cert, answer_after, drop_first, requests: requests.clone(), connections: connections.clone() };
    let busy = Router::builder(endpoint).accept(ALPN, handler).spawn();

    seller.contacts_mut().add("customer", &ticket).unwrap();
    seller
        .outbox_mut()
        .make(NewRequest {
            holder: customer.public(),
            ticket: Some(ticket),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "orders".into(),
            duration: None,
            prices: false,
            name: None,
            reply_to: None,
        })
        .unwrap();
    // A session quiet for a second closes; no new reason to call comes for a long while.
    let config = NodeConfig { idle_close: Some(Duration::from_secs(1)), ..local };
    let node = Node::spawn(seller, config).await.unwrap();

    let started = Instant::now();
    let status = || node.inspect(|v| v.outbox().list().unwrap()[0].status);
    while status() == RequestStatus::Queued && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status();
    node.shutdown().await;
    let _ = busy.shutdown().await;
    (status, requests.load(Ordering::SeqCst), connections.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_acknowledged_after_the_idle_time_counts_delivered() {
    let (status, requests, connections) = deliver(SLOW, false).await;
    assert_eq!(status, RequestStatus::Pending, "the late acknowledgement was taken");
    assert_eq!((requests, connections), (1, 1), "delivered once, on one connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_acknowledged_is_delivered_again() {
    let (status, requests, connections) = deliver(Duration::from_millis(10), true).await;
    assert_eq!(status, RequestStatus::Pending, "the second delivery's acknowledgement was taken");
    assert_eq!((requests, connections), (2, 2), "delivered again on a second connection");
}
