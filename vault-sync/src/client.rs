//! The dialing side: connect to an issuer, learn what it shares with this vault, sync each
//! share on its own stream, erase what ended and send the receipts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use vault_core::framing::{CONTROL_LIMIT, ISSUER_BYTE_BUDGET, SHARES_LIMIT};
use vault_core::{
    ALPN, DeviceId, DialCandidate, Frame, GrantId, GranteeAction, GranteeSession, IdentityId, ShareEvent,
    ShareStream, SyncReport, Ticket, Vault,
};

use crate::endpoint::{NodeConfig, NodeTasks, bind_endpoint, device_id, endpoint_id};
use crate::error::SyncError;
use crate::frame::{Permits, read_frame, read_frame_within, write_frame};
use crate::limits::HANDSHAKE_TIMEOUT;

/// How long a one-shot sync waits for the issuer when it is not yet known to be in sync.
const SETTLE: Duration = Duration::from_secs(2);
/// How long a one-off session waits for the peer to acknowledge its last frames.
const LAST_FRAMES: Duration = Duration::from_millis(250);
/// How long a device of several, dialed in rendezvous order, has to answer before the next is
/// tried (a seller node that stopped costs its customers this much).
const SPREAD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a live session waits, quiet, for the issuer to answer what it sent at the start
/// (the share list, acknowledgements of requests and notices) before giving up on the session.
const ANSWER_WAIT: Duration = HANDSHAKE_TIMEOUT;

/// Dials `ticket`, exchanges everything once, and hands the vault back with the outcome.
pub async fn sync_once(
    vault: Vault,
    ticket: &Ticket,
    config: &NodeConfig,
) -> (Vault, Result<SyncReport, SyncError>) {
    let endpoint = match bind_endpoint(vault.device_key(), config, Vec::new()).await {
        Ok(e) => e,
        Err(e) => return (vault, Err(e)),
    };
    let shared = Arc::new(NodeTasks::new(vault));
    let result = session(shared.clone(), &endpoint, ticket, Mode::Once).await.map(|ended| ended.report);
    endpoint.close().await;
    // The session drained its tasks; wait out any last reference rather than assume.
    let mut shared = shared;
    let shared = loop {
        match Arc::try_unwrap(shared) {
            Ok(s) => break s,
            Err(still_shared) => {
                shared = still_shared;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    (shared.vault.into_inner().unwrap_or_else(|p| p.into_inner()), result)
}

#[cfg(test)]
pub(crate) async fn connect(
    endpoint: &Endpoint,
    device: DeviceId,
    addrs: &[SocketAddr],
) -> Result<Connection, SyncError> {
    connect_within(endpoint, device, addrs, HANDSHAKE_TIMEOUT).await
}

/// [`connect`], giving up after `within`.
async fn connect_within(
    endpoint: &Endpoint,
    device: DeviceId,
    addrs: &[SocketAddr],
    within: Duration,
) -> Result<Connection, SyncError> {
    let mut addr = EndpointAddr::new(endpoint_id(device));
    for sock in addrs {
        addr = addr.with_ip_addr(*sock);
    }
    let conn = tokio::time::timeout(within, endpoint.connect(addr, ALPN))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(|e| SyncError::Connect(Box::new(e)))?;
    if device_id(conn.remote_id()) != Some(device) {
        return Err(SyncError::WrongPeer);
    }
    Ok(conn)
}

/// A dialed peer: the connection, its control stream after the hellos, and a ticket for the
/// device that answered (its verified certificate, the addresses it was reached at).
pub(crate) type Dialed = (Connection, SendStream, RecvStream, Ticket);

/// Dials the identity `ticket` names: the ticket's device first (at the addresses set by hand
/// on its contact, when there are any), then the identity's other devices its roster named,
/// never one its identity key removed. Exchanges hellos with the first that answers.
///
/// With `spread`, in this vault's rendezvous order over the peer's devices (see
/// [`vault_core::dial_candidates`]), each but the last given [`SPREAD_TIMEOUT`] to answer.
pub(crate) async fn dial(
    shared: &NodeTasks,
    endpoint: &Endpoint,
    ticket: &Ticket,
    spread: bool,
) -> Result<Dialed, SyncError> {
    let (identity, candidates) = vault_core::dial_candidates(&shared.vault(), ticket, spread)?;
    let mut last = None;
    // The last device to be dialed gets the whole handshake time.
    let last_dialed = candidates.iter().rposition(|c| matches!(c, DialCandidate::Dial { .. }));
    for (i, candidate) in candidates.into_iter().enumerate() {
        let within = if spread && Some(i) != last_dialed { SPREAD_TIMEOUT } else { HANDSHAKE_TIMEOUT };
        let (device, addrs) = match candidate {
            DialCandidate::Dial { device, addrs } => (device, addrs),
            DialCandidate::Removed(_) => {
                // Asked for a removed device: that is the answer, whatever the others say.
                last.get_or_insert(SyncError::RemovedDevice);
                continue;
            }
        };
        if !vault_core::may_dial(&shared.vault(), &identity, &device) {
            last.get_or_insert(SyncError::RemovedDevice);
            continue;
        }
        match dial_device(shared, endpoint, identity, device, &addrs, within).await {
            Ok(dialed) => return Ok(dialed),
            Err(e) => {
                tracing::debug!(error = %e, %device, "a device of the peer did not answer");
                last.get_or_insert(e);
            }
        }
    }
    Err(last.unwrap_or(SyncError::Timeout))
}

async fn dial_device(
    shared: &NodeTasks,
    endpoint: &Endpoint,
    identity: IdentityId,
    device: DeviceId,
    addrs: &[SocketAddr],
    within: Duration,
) -> Result<Dialed, SyncError> {
    let conn = connect_within(endpoint, device, addrs, within).await?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(SyncError::io)?;
    let cert = shared.vault().device_certificate();
    write_frame(&mut send, &Frame::Hello(cert)).await.map_err(SyncError::io)?;
    let answered = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut recv, CONTROL_LIMIT))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?
    {
        Some(Frame::Hello(their)) => {
            vault_core::check_answer(&their, device, identity).map_err(|_| SyncError::WrongPeer)?;
            Ticket::new(their, addrs.to_vec())
        }
        _ => return Err(SyncError::Protocol("expected hello".into())),
    };
    Ok((conn, send, recv, answered))
}

/// How a session with an issuer runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Exchange everything once, then close.
    Once,
    /// Stay connected, following changes, until the connection drops or, with `idle_close`,
    /// until no frame went either way for that long.
    Live { idle_close: Option<Duration> },
}

/// How a session ended without an error.
pub(crate) struct Ended {
    pub(crate) report: SyncReport,
    /// A live session closed for being idle: nothing is lost, the issuer calls back with news.
    pub(crate) idle: bool,
}

/// One session with an issuer, driven by a [`GranteeSession`] (see [`Mode`]).
pub(crate) async fn session(
    shared: Arc<NodeTasks>,
    endpoint: &Endpoint,
    ticket: &Ticket,
    mode: Mode,
) -> Result<Ended, SyncError> {
    let (live, idle_close) = match mode {
        Mode::Once => (false, None),
        Mode::Live { idle_close } => (true, idle_close),
    };
    // Frames in either direction, on any stream: a live session with none for `idle_close` ends.
    let activity = Arc::new(AtomicU64::new(0));
    let mut idle_check = idle_close.map(|every| {
        // A zero period would make the interval panic; a tenth of a second is as good as none.
        let every = every.max(Duration::from_millis(100));
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A loop held up past a period must not see two ticks back to back (the second would
        // find no frame since the first and close a session that was just active).
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut seen_activity = 0;
    let mut went_idle = false;
    let (conn, mut send, mut recv, answered) = dial(&shared, endpoint, ticket, false).await?;
    let issuer = answered.identity();
    let _open = crate::reach::Open::new(&shared.reach, issuer);
    // A session given up on (dropped) closes its connection and stops its reader.
    let _closing = CloseOnDrop(conn.clone());
    let mut machine = GranteeSession::new(issuer, Some(answered), live);
    // What this issuer's frames may hold in memory at once, over all its streams, the control
    // stream included; and what the whole node may.
    let budget = Arc::new(Semaphore::new(ISSUER_BYTE_BUDGET));
    let node_budget = shared.in_flight.clone();
    // Control frames can be large (a Shares list): one waits at most, so an issuer can make
    // this session hold at most two of them at once, within its budget.
    let (tx, mut frames) = mpsc::channel::<(Frame, Permits)>(1);
    let reader = {
        let (budget, node_budget, activity) = (budget.clone(), node_budget.clone(), activity.clone());
        tokio::spawn(async move {
            while let Ok(Some(frame)) =
                read_frame_within(&mut recv, SHARES_LIMIT, &[&budget, &node_budget]).await
            {
                activity.fetch_add(1, Ordering::Relaxed);
                if tx.send(frame).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut streams: JoinSet<Result<bool, SyncError>> = JoinSet::new();
    let mut stream_grants: HashMap<tokio::task::Id, GrantId> = HashMap::new();
    let mut receipts = shared.receipts.subscribe();
    let outcome: Result<(), SyncError> = async {
        let mut actions = machine.start(&mut *shared.vault())?;
        let asked = tokio::time::Instant::now();
        loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    GranteeAction::Send(frame) => {
                        activity.fetch_add(1, Ordering::Relaxed);
                        write_frame(&mut send, &frame).await.map_err(SyncError::io)?;
                    }
                    GranteeAction::OpenStream { grant, after } => {
                        let (shared, conn, budgets) =
                            (shared.clone(), conn.clone(), [budget.clone(), node_budget.clone()]);
                        let activity = activity.clone();
                        let task = streams.spawn(async move {
                            tokio::time::sleep(after).await;
                            grant_stream(shared, conn, issuer, grant, live, budgets, activity).await
                        });
                        stream_grants.insert(task.id(), grant);
                    }
                    GranteeAction::OfferAnswered => shared.book().offer_done(&issuer),
                    GranteeAction::Changed => shared.held_changed(),
                    GranteeAction::Done => return Ok(()),
                }
            }
            actions = tokio::select! {
                frame = frames.recv() => match frame {
                    // The permits are held while the frame is handled.
                    Some((frame, _permits)) => machine.on_frame(&mut *shared.vault(), frame)?,
                    None => machine.on_closed()?,
                },
                Ok(()) = receipts.changed() => machine.on_receipts_signed(&mut *shared.vault())?,
                _ = tick(&mut idle_check), if idle_check.is_some() => {
                    let now = activity.load(Ordering::Relaxed);
                    if now == seen_activity {
                        // Quiet, but an answer is still owed (a busy peer's acknowledgement):
                        // not idle until it comes, or until the peer counts as not answering
                        // (an error: what it owes is sent again next session).
                        if !machine.awaits_answer() {
                            went_idle = true;
                            return Ok(());
                        }
                        if asked.elapsed() > ANSWER_WAIT {
                            return Err(SyncError::NoAnswer { owed: machine.owes_acknowledgement() });
                        }
                    }
                    seen_activity = now;
                    Vec::new()
                }
                done = streams.join_next_with_id(), if !streams.is_empty() => {
                    let (id, changed) = match done {
                        Some(Ok((id, Ok(changed)))) => (id, Some(changed)),
                        Some(Ok((id, Err(e)))) => {
                            tracing::debug!(error = %e, "a share stream ended");
                            (id, None)
                        }
                        Some(Err(e)) => (e.id(), None),
                        None => continue,
                    };
                    match stream_grants.remove(&id) {
                        Some(grant) => machine.on_stream_end(&mut *shared.vault(), grant, changed)?,
                        None => Vec::new(),
                    }
                }
            };
        }
    }
    .await;
    reader.abort();
    streams.abort_all();
    while streams.join_next().await.is_some() {}
    let _ = send.finish();
    if !live {
        // Let the last frames (receipts) reach the peer before closing: until it acknowledged
        // all of this stream's data, or a short while.
        let _ = tokio::time::timeout(LAST_FRAMES, send.stopped()).await;
        conn.close(0u32.into(), b"done");
    }
    outcome.map(|()| Ended { report: machine.report().clone(), idle: went_idle })
}

/// The next tick of an idle check (never, without one).
async fn tick(check: &mut Option<tokio::time::Interval>) {
    match check {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Closes a connection when dropped, so that a session abandoned mid-way leaves nothing open.
struct CloseOnDrop(Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(0u32.into(), b"done");
    }
}

/// Syncs one share on its own stream, driven by a [`ShareStream`]. Returns whether the local
/// copy changed.
async fn grant_stream(
    shared: Arc<NodeTasks>,
    conn: Connection,
    issuer: IdentityId,
    id: GrantId,
    live: bool,
    budgets: [Arc<Semaphore>; 2],
    activity: Arc<AtomicU64>,
) -> Result<bool, SyncError> {
    let from = device_id(conn.remote_id())
        .ok_or_else(|| SyncError::Protocol("the peer's endpoint id is not a key".into()))?;
    let (mut stream, open) = ShareStream::open(&mut shared.vault(), issuer, from, id, live)?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(SyncError::io)?;
    activity.fetch_add(1, Ordering::Relaxed);
    write_frame(&mut send, &open).await.map_err(SyncError::io)?;
    // One frame waits at most, and what waits counts against the issuer's and the node's budgets.
    let (tx, mut incoming) = mpsc::channel::<(Frame, Permits)>(1);
    let heard = activity.clone();
    let reader = tokio::spawn(async move {
        let [budget, node_budget] = budgets;
        while let Ok(Some(frame)) =
            read_frame_within(&mut recv, vault_core::MAX_FRAME, &[&budget, &node_budget]).await
        {
            heard.fetch_add(1, Ordering::Relaxed);
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    let result = async {
        loop {
            let next = stream.next(&mut shared.vault())?;
            if let Some(frame) = next.send {
                activity.fetch_add(1, Ordering::Relaxed);
                write_frame(&mut send, &frame).await.map_err(SyncError::io)?;
            }
            if next.done {
                return Ok(());
            }
            let frame = if live {
                incoming.recv().await
            } else {
                match tokio::time::timeout(SETTLE, incoming.recv()).await {
                    Ok(f) => f,
                    Err(_) => return Ok(()),
                }
            };
            // The permits are held while the frame is handled.
            let Some((frame, _permits)) = frame else { return Ok(()) };
            match stream.on_frame(&mut shared.vault(), &frame)? {
                ShareEvent::Applied { changed: true } => shared.held_changed(),
                ShareEvent::Applied { changed: false } => {}
                ShareEvent::Finished => return Ok(()),
            }
        }
    }
    .await;
    reader.abort();
    let _ = send.finish();
    result.map(|()| stream.changed())
}
