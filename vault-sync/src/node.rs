//! The node: an iroh endpoint serving this vault's grants, watching the vault file for changes,
//! and keeping live sessions to the issuers of received shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use iroh::Endpoint;
use iroh::endpoint::{Connection, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use vault_core::framing::{CONTROL_LIMIT, GRANTEE_SYNC_LIMIT};
use vault_core::{
    ALPN, DEVICE_ALPN, DeviceId, Frame, IdentityId, IssuerAction, IssuerSession, MARKET_ALPN, RefusedWhy,
    ServeStep, ServeStream, Ticket, Vault,
};

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod isolation_tests;
#[cfg(test)]
mod refusal_tests;
mod watcher;

use crate::devices::DeviceListener;
use crate::endpoint::{NodeConfig, NodeTasks, bind_endpoint, device_id, ticket_addrs};
use crate::error::SyncError;
use crate::frame::{Permits, read_frame_within, write_frame};
use crate::limits::{HANDSHAKE_TIMEOUT, MAX_STREAMS_PER_CONNECTION};
use crate::market::MarketListener;

/// A running node.
#[derive(Debug)]
pub struct Node {
    router: Router,
    shared: Arc<NodeTasks>,
    tasks: JoinSet<()>,
    moved_from: Option<u16>,
}

impl Node {
    /// Starts the node on `vault`.
    pub async fn spawn(mut vault: Vault, config: NodeConfig) -> Result<Node, SyncError> {
        let alpns = vec![ALPN.to_vec(), DEVICE_ALPN.to_vec(), MARKET_ALPN.to_vec()];
        // No address asked for: the port it served on last, so that the tickets its peers
        // saved still reach it; another when that one is taken (and it says so).
        let last = vault.serving().node_port();
        let (endpoint, moved_from) = match (config.bind, last) {
            (None, Some(port)) => {
                let again =
                    NodeConfig { bind: Some(SocketAddr::from(([0, 0, 0, 0], port))), ..config.clone() };
                match bind_endpoint(vault.device_key(), &again, alpns.clone()).await {
                    Ok(endpoint) => (endpoint, None),
                    Err(e) => {
                        tracing::debug!(error = %e, port, "the port served on last is taken");
                        (bind_endpoint(vault.device_key(), &config, alpns).await?, Some(port))
                    }
                }
            }
            _ => (bind_endpoint(vault.device_key(), &config, alpns).await?, None),
        };
        // Take the file's version first, so that a commit by another process from here on is
        // seen by the watcher; then bring projections up to date before serving anyone.
        let _ = vault.changed_elsewhere();
        vault.refresh()?;
        vault.projections_mut().update(None)?;
        vault.grants_mut().expire()?;
        // What is served is logged in group commits (served.rs).
        vault.serving_mut().defer_served_log(true);
        let shared = Arc::new(NodeTasks::new(vault));
        let addrs = ticket_addrs(&endpoint);
        // The port to bind again next time, unless this one was asked for.
        let port =
            config.bind.is_none().then(|| addrs.iter().find(|a| a.is_ipv4()).map(SocketAddr::port)).flatten();
        shared.vault().serving_mut().set_node_addrs(&addrs, port)?;
        // Gossip on the node's own endpoint serves a seller (a topic joined to take intentions,
        // before or after the node started), where customers enter by its ticket; a customer's
        // topics each have an endpoint of their own (topics.rs).
        let swarm = crate::topics::Swarm::new(&endpoint)?;
        let gossip = crate::topics::CappedGossip::sellers_only(swarm.gossip.clone(), shared.clone());
        let router = Router::builder(endpoint.clone())
            .accept(iroh_gossip::ALPN, gossip)
            .accept(ALPN, Listener { shared: shared.clone() })
            .accept(DEVICE_ALPN, DeviceListener { shared: shared.clone() })
            .accept(MARKET_ALPN, MarketListener::new(shared.clone()))
            .spawn();
        let mut tasks = JoinSet::new();
        tasks.spawn(watcher::watch_vault(shared.clone(), config.poll));
        tasks.spawn(crate::served::commit_served(shared.clone()));
        tasks.spawn(crate::market::expire_intentions(shared.clone()));
        tasks.spawn(crate::topics::run_topics(shared.clone(), swarm, config.clone()));
        tasks.spawn(crate::notify::notify_audiences(shared.clone(), endpoint.clone()));
        if config.subscribe {
            tasks.spawn(crate::keep::subscribe_all(shared.clone(), endpoint.clone(), config.clone()));
            tasks.spawn(crate::devices::keep_devices(shared.clone(), endpoint.clone()));
        }
        Ok(Node { router, shared, tasks, moved_from })
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
            if let Err(e) = vault.projections_mut().update(None) {
                tracing::warn!(error = %e, "updating projections failed");
            }
        }
        self.shared.changed();
        out
    }

    /// A handle on the vault for a task running beside the node (the database mirror).
    pub fn vault_handle(&self) -> VaultHandle {
        VaultHandle { shared: self.shared.clone() }
    }

    /// Whom the node reaches: per peer, sessions open now, when last reached, the last error.
    pub fn reach(&self) -> Vec<crate::reach::PeerReach> {
        self.shared.reach().snapshot()
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

    /// How many peers' sessions are idle: closed for having nothing to say, waiting for news.
    pub fn idle_sessions(&self) -> usize {
        self.shared.book().idle_count()
    }

    /// The port this node served on last, when it is taken now and the node serves on another:
    /// peers holding the old ticket reach it again once it offers to them (their sessions
    /// learn the new address), or with its new ticket.
    pub fn moved_from(&self) -> Option<u16> {
        self.moved_from
    }

    /// Stops the node: closes every connection and the endpoint. The addresses it served on
    /// stay recorded: it binds them again when it starts, and `vault id` prints them.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        let _ = self.router.shutdown().await;
    }
}

/// A running node's vault, for a task beside the node: the lock every session takes, and the
/// signals that wake them.
#[derive(Debug, Clone)]
pub struct VaultHandle {
    shared: Arc<NodeTasks>,
}

impl VaultHandle {
    /// Whom the node reaches (see [`Node::reach`]).
    pub fn reach(&self) -> Vec<crate::reach::PeerReach> {
        self.shared.reach().snapshot()
    }

    /// Runs `f` on the vault, holding its lock: keep `f` short and synchronous.
    pub fn with_vault<T>(&self, f: impl FnOnce(&mut Vault) -> T) -> T {
        f(&mut self.shared.vault())
    }

    /// A receiver that wakes whenever the vault changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Erasure receipts were signed: sessions send them to their issuers, and issuers with
    /// nothing live but a receipt to take are called.
    pub fn receipts_signed(&self) {
        self.shared.receipts.send_modify(|n| *n += 1);
        self.shared.held_changed();
    }

    /// The database this node writes to (shared by the identity's nodes) heard from these
    /// nodes lately: each serves the customers that come first to it (see
    /// [`vault_core::first_for`]). Devices the identity removed are left out. Returns the nodes
    /// taken.
    pub fn set_live_nodes(&self, nodes: Vec<vault_core::DeviceId>) -> Vec<vault_core::DeviceId> {
        // Only devices this identity lists as active: a row in the database (written by
        // anyone with access to it) does not make a node.
        let nodes: Vec<vault_core::DeviceId> = {
            let vault = self.shared.vault();
            let active: std::collections::HashSet<vault_core::DeviceId> = vault
                .devices()
                .list()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d.removed_at.is_none())
                .map(|d| d.id)
                .collect();
            nodes.into_iter().filter(|d| active.contains(d)).collect()
        };
        if self.shared.placement().set_live(nodes.clone()) {
            // Whom this node keeps a session with is asked again at once: customers of a node
            // that stopped are called now, not at the next full look.
            self.shared.offers.send_modify(|n| *n += 1);
            self.shared.placement_moved.send_modify(|n| *n += 1);
        }
        nodes
    }

    /// Customers the shared database lists with a live consent, and how each was last reached:
    /// this node calls those it now serves and does not hold (a stopped node's). Returns how
    /// many it will call.
    pub fn adopt(&self, customers: Vec<(vault_core::IdentityId, vault_core::Ticket)>) -> usize {
        if customers.is_empty() {
            return 0;
        }
        let held: std::collections::HashSet<vault_core::IdentityId> = {
            let vault = self.shared.vault();
            vault.held().issuers().unwrap_or_default().into_iter().map(|(i, _)| i).collect()
        };
        let n = self.shared.placement().adopt(self.shared.me, customers, |c| held.contains(c));
        if n > 0 {
            self.shared.offers.send_modify(|n| *n += 1);
        }
        n
    }
}

/// Accepts connections for ALPN `vault/sync/1`.
#[derive(Debug, Clone)]
struct Listener {
    shared: Arc<NodeTasks>,
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

async fn serve_connection(shared: Arc<NodeTasks>, conn: Connection) -> Result<(), SyncError> {
    let remote = device_id(conn.remote_id()).ok_or_else(|| SyncError::Protocol("bad device key".into()))?;
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?;
    let node_budget = shared.in_flight.clone();
    let hello = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_frame_within(&mut recv, CONTROL_LIMIT, &[&shared.handshakes]),
    )
    .await
    .map_err(|_| SyncError::Timeout)?
    .map_err(SyncError::io)?;
    let Some((Frame::Hello(cert), _)) = hello else {
        return Err(SyncError::Protocol("expected hello".into()));
    };
    let admitted = vault_core::admit_peer(&*shared.vault(), remote, &cert);
    let peer = match admitted {
        Ok(peer) => peer,
        Err(refused) => {
            shared.log_refused(&refused);
            if refused.answer_nothing() {
                // Never answer: to the refused peer this looks exactly like a node that does
                // not answer (it gives up after its handshake timeout), not like a refusal.
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, conn.closed()).await;
                return Err(SyncError::Timeout);
            }
            return Err(match refused.why {
                RefusedWhy::Certificate(e) => SyncError::Certificate(e),
                RefusedWhy::RemovedDevice => SyncError::RemovedDevice,
                other => SyncError::Protocol(format!("refused: {other:?}")),
            });
        }
    };
    let ours = shared.vault().device_certificate();
    write_frame(&mut send, &Frame::Hello(ours)).await.map_err(SyncError::io)?;

    // Control frames arrive through a reader task so that waiting for them can be cancelled;
    // what waits in the channel counts against the node's budget.
    let (frames_tx, mut frames) = mpsc::channel::<(Frame, Permits)>(16);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Ok(Some(frame)) = read_frame_within(&mut recv, CONTROL_LIMIT, &[&node_budget]).await {
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
                streams.spawn(serve_grant_stream(shared.clone(), peer, remote, send, recv));
            }
        });
    }

    let _open = crate::reach::Open::new(&shared.reach, peer);
    let mut changes = shared.served.subscribe();
    let mut session =
        IssuerSession::new(peer, remote, Instant::now()).with_reply_to(Ticket::new(cert, seen_addrs(&conn)));
    let mut listening: Option<ListeningGuard> = None;
    'session: loop {
        let actions = tokio::select! {
            frame = frames.recv() => {
                let Some((frame, _permits)) = frame else { break };
                let step = session.on_frame(&mut *shared.vault(), frame, Instant::now());
                if let Err(e) = &step
                    && let Some(refused) = e.refused(peer)
                {
                    shared.log_refused(&refused);
                }
                step?
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                session.on_change(&mut *shared.vault())?
            }
        };
        for action in actions {
            match action {
                IssuerAction::Send(frame) => {
                    write_frame(&mut send, &frame).await.map_err(SyncError::io)?;
                }
                IssuerAction::Listening => {
                    shared.book().start_listening(peer);
                    listening = Some(ListeningGuard { shared: shared.clone(), peer });
                }
                IssuerAction::Told(set) => shared.book().told(peer, set),
                IssuerAction::DialBack(cert) => {
                    // Dial back only where this connection came from (an address QUIC has
                    // validated), never addresses the offerer merely wrote down: a stranger
                    // must not make this node dial third parties or probe local ports.
                    let ticket = Ticket::new(cert, seen_addrs(&conn));
                    let follows = shared.vault().held().issuer_ticket(&peer).is_ok_and(|t| t.is_some());
                    let (taken, woken) = shared.book().note_offer(peer, ticket, follows);
                    if taken {
                        write_frame(&mut send, &Frame::OfferAck).await.map_err(SyncError::io)?;
                        // The task keeping this issuer's session was woken by the offer; only
                        // an issuer without one makes the node look at whom to keep (a walk
                        // over every peer).
                        if !woken {
                            shared.offers.send_modify(|n| *n += 1);
                        }
                    } else {
                        // No room: close at once, so that the offerer backs off now instead of
                        // waiting for an answer with a connection open (10,000 customers
                        // offering at once kept 10,000 connections here).
                        conn.close(VarInt::from_u32(0), b"busy");
                        break 'session;
                    }
                }
            }
        }
    }
    drop(listening);
    tasks.abort_all();
    Ok(())
}

/// Marks a session that listens for shares, until it ends (however it ends).
struct ListeningGuard {
    shared: Arc<NodeTasks>,
    peer: IdentityId,
}

impl Drop for ListeningGuard {
    fn drop(&mut self) {
        self.shared.book().stop_listening(&self.peer);
        self.shared.listening_ended.send_modify(|n| *n += 1);
    }
}

/// Serves one grant stream: `Open(grant)`, then sync messages both ways until the peer goes
/// away or the grant ends. The stream's state lives in its [`ServeStream`].
async fn serve_grant_stream(
    shared: Arc<NodeTasks>,
    peer: IdentityId,
    device: DeviceId,
    mut send: iroh::endpoint::SendStream,
    mut recv: iroh::endpoint::RecvStream,
) {
    let node_budget = shared.in_flight.clone();
    let first = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_frame_within(&mut recv, CONTROL_LIMIT, &[&node_budget]),
    )
    .await
    {
        Ok(Ok(Some((frame, _)))) => frame,
        _ => return,
    };
    let opened = ServeStream::open(&mut shared.vault(), peer, device, &first, Instant::now());
    let Ok(mut stream) = opened else {
        let _ = write_frame(&mut send, &Frame::Refused).await;
        let _ = send.finish();
        return;
    };
    let (tx, mut incoming) = mpsc::channel::<(Frame, Permits)>(1);
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame_within(&mut recv, GRANTEE_SYNC_LIMIT, &[&node_budget]).await {
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    let mut changes = shared.served.subscribe();
    let result: Result<(), SyncError> = async {
        loop {
            let step = tokio::select! {
                frame = incoming.recv() => match frame {
                    Some((frame @ Frame::Sync(_), _permits)) => loop {
                        let step = {
                            let mut vault = shared.vault();
                            #[cfg(test)]
                            isolation_tests::maybe_panic(&peer);
                            let before = vault.serving().served_unlogged();
                            // A change not yet seen here goes out with this answer.
                            if changes.has_changed().unwrap_or(false) {
                                changes.borrow_and_update();
                                stream.note_change();
                            }
                            let step = stream.on_frame(&mut vault, &frame, Instant::now())?;
                            (step, crate::served::queued_by(&vault, before))
                        };
                        // Faster than its rate: read nothing more until the frame is taken.
                        match step {
                            (ServeStep::WaitUntil(at), _) => tokio::time::sleep_until(at.into()).await,
                            step => break step,
                        }
                    },
                    _ => return Ok(()),
                },
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let mut vault = shared.vault();
                    let before = vault.serving().served_unlogged();
                    let step = stream.on_change(&mut vault)?;
                    (step, crate::served::queued_by(&vault, before))
                }
            };
            if let (ServeStep::Send(message), record) = step {
                // Nothing leaves before its access-log record is durable.
                if let Some(seq) = record {
                    if !crate::served::logged(&shared, seq).await {
                        return Err(SyncError::Protocol("the access log could not be written".into()));
                    }
                    // Revoked, or retracted into a new epoch, while it waited: it stays here.
                    if !stream.still_current(&mut shared.vault()) {
                        return Ok(());
                    }
                }
                if write_frame(&mut send, &Frame::Sync(message)).await.is_err() {
                    return Ok(());
                }
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
