//! The node: an iroh endpoint serving this vault's grants, watching the vault file for changes,
//! and keeping live sessions to the issuers of received shares.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::Endpoint;
use iroh::endpoint::{Connection, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use vault_core::{ALPN, AuditEvent, AuditKind, Frame, GrantId, IdentityId, RequestId, Ticket, Vault};

#[cfg(test)]
mod isolation_tests;
#[cfg(test)]
mod refusal_tests;
mod watcher;

use crate::endpoint::{NodeConfig, Shared, bind_endpoint, ticket_addrs};
use crate::frame::{CONTROL_LIMIT, GRANTEE_SYNC_LIMIT, read_frame, write_frame};
use crate::peers::share_set;
use crate::{
    HANDSHAKE_TIMEOUT, MAX_REQUESTS_PER_MINUTE, MAX_STREAMS_PER_CONNECTION, SYNC_BURST,
    SYNC_MESSAGES_PER_SECOND, SyncError, TokenBucket, device_id,
};

/// A running node.
#[derive(Debug)]
pub struct Node {
    router: Router,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Starts the node on `vault`.
    pub async fn spawn(mut vault: Vault, config: NodeConfig) -> Result<Node, SyncError> {
        let endpoint = bind_endpoint(vault.device_key(), &config, vec![ALPN.to_vec()]).await?;
        // Take the file's version first, so that a commit by another process from here on is
        // seen by the watcher; then bring projections up to date before serving anyone.
        let _ = vault.changed_elsewhere();
        vault.refresh().map_err(SyncError::vault)?;
        vault.update_projections(None).map_err(SyncError::vault)?;
        vault.expire_grants().map_err(SyncError::vault)?;
        let (changes, _) = watch::channel(0u64);
        let shared = Arc::new(Shared { vault: Mutex::new(vault), changes, book: Default::default() });
        let addrs = ticket_addrs(&endpoint);
        shared.vault().set_node_addrs(&addrs).map_err(SyncError::vault)?;
        let router =
            Router::builder(endpoint.clone()).accept(ALPN, Listener { shared: shared.clone() }).spawn();
        let mut tasks = JoinSet::new();
        tasks.spawn(watcher::watch_vault(shared.clone(), config.poll));
        tasks.spawn(crate::notify::notify_audiences(shared.clone(), endpoint.clone()));
        if config.subscribe {
            tasks.spawn(crate::client::subscribe_all(shared.clone(), endpoint.clone(), config.clone()));
        }
        Ok(Node { router, shared, tasks })
    }

    /// This vault's ticket, with the addresses the node is bound to.
    pub fn ticket(&self) -> Ticket {
        self.shared.vault().ticket(ticket_addrs(self.router.endpoint()))
    }

    /// The iroh endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    /// Runs `f` on the vault (for in-process callers such as tests and the demo); wakes the
    /// sessions afterwards, as an edit may have happened.
    pub fn with_vault<T>(&self, f: impl FnOnce(&mut Vault) -> T) -> T {
        let out = f(&mut self.shared.vault());
        {
            let mut vault = self.shared.vault();
            if let Err(e) = vault.update_projections(None) {
                tracing::warn!(error = %e, "updating projections failed");
            }
        }
        self.shared.changes.send_modify(|n| *n += 1);
        out
    }

    /// Reads the vault without waking anyone (for checks in tests and benchmarks).
    pub fn inspect<T>(&self, f: impl FnOnce(&mut Vault) -> T) -> T {
        f(&mut self.shared.vault())
    }

    /// A receiver that wakes whenever the vault changed: an edit here or in another process,
    /// or an update received for a share.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Stops the node: closes every connection and the endpoint.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        let _ = self.router.shutdown().await;
        // Leave nothing on the addresses for `vault id`.
        let _ = self.shared.vault().set_node_addrs(&[]);
    }
}

/// Accepts connections for ALPN `vault/sync/1`.
#[derive(Debug, Clone)]
struct Listener {
    shared: Arc<Shared>,
}

impl ProtocolHandler for Listener {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        match serve_connection(self.shared.clone(), conn.clone()).await {
            Ok(()) => Ok(()),
            // Looks like a node that did not answer (see serve_connection).
            Err(SyncError::Timeout) => {
                conn.close(VarInt::from_u32(0), b"");
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "closing a connection");
                conn.close(VarInt::from_u32(1), b"protocol error");
                Ok(())
            }
        }
    }
}

/// Logs a refused peer, at most one audit row per [`crate::REFUSAL_LOG_INTERVAL`]: connections and
/// device keys are free, so refusals are counted and the next row says how many were not
/// written one by one.
fn log_refused(shared: &Shared, peer: Option<IdentityId>, detail: &str) {
    let Some(unlogged) = shared.book().refusal_due(Instant::now()) else { return };
    let mut vault = shared.vault();
    let mut event = AuditEvent::new(vault.now(), AuditKind::PeerRefused);
    event.peer = peer;
    event.detail = Some(if unlogged == 0 {
        detail.to_owned()
    } else {
        format!("{detail} (and {unlogged} more refused since the last entry)")
    });
    let _ = vault.log(&event);
}

async fn serve_connection(shared: Arc<Shared>, conn: Connection) -> Result<(), SyncError> {
    let remote = device_id(conn.remote_id()).ok_or_else(|| SyncError::Protocol("bad device key".into()))?;
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?;
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut recv, CONTROL_LIMIT))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?;
    let peer = match hello {
        Some(Frame::Hello(cert)) => {
            if let Err(e) = cert.verify(remote) {
                // The claimed identity is unproven: log the device that actually connected.
                log_refused(
                    &shared,
                    None,
                    &format!("device {remote}: its certificate does not verify for it"),
                );
                return Err(SyncError::Protocol(e.to_string()));
            }
            cert.identity()
        }
        _ => return Err(SyncError::Protocol("expected hello".into())),
    };
    if shared.vault().is_blocked(&peer).unwrap_or(true) {
        log_refused(&shared, Some(peer), "blocked contact");
        // Never answer: to the blocked peer this looks exactly like a node that does not answer
        // (it gives up after its handshake timeout), not like a refusal.
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, conn.closed()).await;
        return Err(SyncError::Timeout);
    }
    let cert = shared.vault().device_certificate();
    write_frame(&mut send, &Frame::Hello(cert)).await.map_err(SyncError::io)?;

    // Control frames arrive through a reader task so that waiting for them can be cancelled.
    let (frames_tx, mut frames) = mpsc::channel::<Frame>(16);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut recv, CONTROL_LIMIT).await {
            if frames_tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    // Grant streams.
    {
        let (shared, conn) = (shared.clone(), conn.clone());
        tasks.spawn(async move {
            let mut opened = 0u32;
            let mut streams = JoinSet::new();
            while let Ok((send, recv)) = conn.accept_bi().await {
                opened += 1;
                if opened > MAX_STREAMS_PER_CONNECTION {
                    conn.close(VarInt::from_u32(2), b"too many streams");
                    break;
                }
                streams.spawn(serve_grant_stream(shared.clone(), peer, send, recv));
            }
        });
    }

    let mut changes = shared.changes.subscribe();
    let mut told: Option<(BTreeSet<GrantId>, BTreeSet<GrantId>)> = None;
    let mut denials_told: BTreeSet<RequestId> = BTreeSet::new();
    let mut subscribed = false;
    let mut listening: Option<ListeningGuard> = None;
    let mut window = (Instant::now(), 0u32);
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                if window.0.elapsed() > Duration::from_secs(60) {
                    window = (Instant::now(), 0);
                }
                window.1 += 1;
                if window.1 > MAX_REQUESTS_PER_MINUTE {
                    log_refused(&shared, Some(peer), "too many requests");
                    return Err(SyncError::Protocol("rate limit".into()));
                }
                match frame {
                    Frame::ListShares => {
                        if !subscribed {
                            shared.book().start_listening(peer);
                            listening = Some(ListeningGuard { shared: shared.clone(), peer });
                        }
                        subscribed = true;
                        told = None;
                    }
                    Frame::Offer(ticket) => {
                        // A way back to the identity and device that dialed, nothing more.
                        if ticket.identity() != peer || ticket.device() != remote {
                            return Err(SyncError::Protocol("an offer for another device".into()));
                        }
                        // Dial back only where this connection came from (an address QUIC has
                        // validated), never addresses the offerer merely wrote down: a stranger
                        // must not make this node dial third parties or probe local ports.
                        let ticket = vault_core::Ticket::new(*ticket.certificate(), seen_addrs(&conn));
                        if shared.book().note_offer(peer, ticket) {
                            write_frame(&mut send, &Frame::OfferAck).await.map_err(SyncError::io)?;
                            shared.changes.send_modify(|n| *n += 1);
                        }
                        continue;
                    }
                    Frame::Request(request) => {
                        let id = request.statement().id;
                        let accepted = shared.vault().receive_request(&peer, &request).map_err(SyncError::vault)?;
                        if let Err(why) = accepted {
                            tracing::debug!(?why, %peer, "request not accepted");
                        }
                        write_frame(&mut send, &Frame::RequestAck { request: id, accepted: accepted.is_ok() })
                            .await
                            .map_err(SyncError::io)?;
                        continue;
                    }
                    Frame::Erased(receipt) => {
                        if receipt.statement().grantee != peer {
                            return Err(SyncError::Protocol("receipt from another identity".into()));
                        }
                        let mut vault = shared.vault();
                        if let Err(e) = vault.record_erasure(&receipt) {
                            tracing::debug!(error = %e, "ignoring an erasure receipt");
                        }
                        told = None;
                    }
                    _ => return Err(SyncError::Protocol("unexpected frame on the control stream".into())),
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        if !subscribed {
            continue;
        }
        // Tell the peer the answers to its requests: denials here, approvals as grants below.
        let denials = shared.vault().denials_for(&peer).map_err(SyncError::vault)?;
        for denial in denials {
            if denials_told.insert(denial.statement().request) {
                write_frame(&mut send, &Frame::Denied(denial)).await.map_err(SyncError::io)?;
            }
        }
        // Tell the peer what is shared with it whenever that changed.
        let (live, ended) = shared.vault().shares_for(&peer).map_err(SyncError::vault)?;
        let now = share_set(&live, &ended);
        if told.as_ref() != Some(&now) {
            write_frame(&mut send, &Frame::Shares { live, ended }).await.map_err(SyncError::io)?;
            shared.book().told(peer, now.clone());
            told = Some(now);
        }
    }
    drop(listening);
    tasks.abort_all();
    Ok(())
}

/// Marks a session that listens for shares, until it ends (however it ends).
struct ListeningGuard {
    shared: Arc<Shared>,
    peer: IdentityId,
}

impl Drop for ListeningGuard {
    fn drop(&mut self) {
        self.shared.book().stop_listening(&self.peer);
    }
}

/// Serves one grant stream: `Open(grant)`, then sync messages both ways until the peer goes
/// away or the grant ends.
async fn serve_grant_stream(
    shared: Arc<Shared>,
    peer: IdentityId,
    mut send: iroh::endpoint::SendStream,
    mut recv: iroh::endpoint::RecvStream,
) {
    let grant = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut recv, CONTROL_LIMIT)).await {
        Ok(Ok(Some(Frame::Open(id)))) => id,
        _ => return,
    };
    if shared.vault().serve_open(&peer, &grant).is_err() {
        let _ = write_frame(&mut send, &Frame::Refused).await;
        let _ = send.finish();
        return;
    }
    let (tx, mut incoming) = mpsc::channel::<Frame>(1);
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut recv, GRANTEE_SYNC_LIMIT).await {
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    let mut changes = shared.changes.subscribe();
    // The grantee speaks first on a grant stream (with its heads); answering before hearing it
    // would send everything it already has, or everything twice.
    let mut heard = false;
    let mut bucket = TokenBucket::new(SYNC_MESSAGES_PER_SECOND, SYNC_BURST);
    // An honest grantee answers each message it is sent with about one of its own: those
    // answers are free; only what goes beyond them draws on the bucket. So a live grantee is
    // never slowed down by its acknowledgements, and a flood is bounded all the same.
    let mut answers_due: u32 = 0;
    let result: Result<(), SyncError> = async {
        loop {
            if heard {
                let message = crate::isolated("answering a grantee", || {
                    shared.vault().serve_generate(&peer, &grant).map_err(SyncError::from)
                })?;
                if let Some(m) = message {
                    if write_frame(&mut send, &Frame::Sync(m)).await.is_err() {
                        return Ok(());
                    }
                    answers_due = answers_due.saturating_add(1).min(SYNC_BURST);
                }
            }
            tokio::select! {
                frame = incoming.recv() => match frame {
                    Some(Frame::Sync(m)) => {
                        if answers_due > 0 {
                            answers_due -= 1;
                        } else {
                            bucket.take().await;
                        }
                        crate::isolated("serving a grantee's sync message", || {
                            let mut vault = shared.vault();
                            #[cfg(test)]
                            isolation_tests::maybe_panic(&peer);
                            vault.serve_receive(&peer, &grant, &m).map_err(SyncError::from)
                        })?;
                        heard = true;
                    }
                    _ => return Ok(()),
                },
                changed = changes.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
    .await;
    if result.is_err() {
        let _ = write_frame(&mut send, &Frame::Refused).await;
    }
    let _ = send.finish();
    reader.abort();
}

/// The IP addresses a connection's peer was seen at (its open paths).
fn seen_addrs(conn: &Connection) -> Vec<std::net::SocketAddr> {
    conn.paths()
        .iter()
        .filter_map(|p| match p.remote_addr() {
            iroh::TransportAddr::Ip(addr) => Some(*addr),
            _ => None,
        })
        .collect()
}
