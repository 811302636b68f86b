//! The dialing side: connect to an issuer, learn what it shares with this vault, sync each
//! share on its own stream, erase what ended and send the receipts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use vault_core::{ALPN, Frame, GrantId, IdentityId, SignedGrant, Ticket, Vault};

use crate::endpoint::{NodeConfig, Shared, bind_endpoint};
use crate::frame::{CONTROL_LIMIT, SHARES_LIMIT, read_frame, read_frame_within, write_frame};
use crate::{
    HANDSHAKE_TIMEOUT, ISSUER_BYTE_BUDGET, MAX_SHARES_PER_ISSUER, SyncError, device_id, endpoint_id,
};

/// How long a one-shot sync waits for the issuer when it is not yet known to be in sync.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the node looks for new peers to keep a session with, at the latest.
const PICK_UP: Duration = Duration::from_secs(2);

/// What a sync exchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Live shares from the peer.
    pub live: usize,
    /// Shares whose copy changed.
    pub updated: usize,
    /// Shares erased because they ended.
    pub erased: usize,
    /// Consent requests delivered and accepted by the peer.
    pub delivered: usize,
    /// Consent requests the peer did not accept (too many, or refused).
    pub not_accepted: usize,
}

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
    let (changes, _) = watch::channel(0u64);
    let shared = Arc::new(Shared { vault: Mutex::new(vault), changes, book: Default::default() });
    let result = session(shared.clone(), &endpoint, ticket, false).await;
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

pub(crate) async fn connect(endpoint: &Endpoint, ticket: &Ticket) -> Result<Connection, SyncError> {
    let mut addr = EndpointAddr::new(endpoint_id(ticket.device()));
    for sock in ticket.addrs() {
        addr = addr.with_ip_addr(*sock);
    }
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, endpoint.connect(addr, ALPN))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(|e| SyncError::Connect(Box::new(e)))?;
    if device_id(conn.remote_id()) != Some(ticket.device()) {
        return Err(SyncError::WrongPeer);
    }
    Ok(conn)
}

/// Dials `ticket` (at the addresses set by hand on its contact, when there are any) and
/// exchanges hellos: the connection, its control stream, and the peer's identity (checked
/// against the ticket).
pub(crate) async fn dial(
    shared: &Shared,
    endpoint: &Endpoint,
    ticket: &Ticket,
) -> Result<(Connection, SendStream, RecvStream, IdentityId), SyncError> {
    let ticket = &shared.vault().dial_ticket(ticket).map_err(SyncError::vault)?;
    let conn = connect(endpoint, ticket).await?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(SyncError::io)?;
    let cert = shared.vault().device_certificate();
    write_frame(&mut send, &Frame::Hello(cert)).await.map_err(SyncError::io)?;
    let peer: IdentityId = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut recv, CONTROL_LIMIT))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?
    {
        Some(Frame::Hello(their)) => {
            let remote = device_id(conn.remote_id()).ok_or(SyncError::WrongPeer)?;
            their.verify(remote).map_err(|_| SyncError::WrongPeer)?;
            if their.identity() != ticket.identity() {
                return Err(SyncError::WrongPeer);
            }
            their.identity()
        }
        _ => return Err(SyncError::Protocol("expected hello".into())),
    };
    Ok((conn, send, recv, peer))
}

/// One session with an issuer. With `live`, stays connected until the connection drops;
/// otherwise returns once everything is exchanged.
pub(crate) async fn session(
    shared: Arc<Shared>,
    endpoint: &Endpoint,
    ticket: &Ticket,
    live: bool,
) -> Result<SyncReport, SyncError> {
    let (conn, mut send, mut recv, issuer) = dial(&shared, endpoint, ticket).await?;
    // A session given up on (dropped) closes its connection and stops its reader.
    let _closing = CloseOnDrop(conn.clone());
    // Deliver queued consent requests first: each is acknowledged before the share list.
    let queued = shared.vault().undelivered_requests(&issuer).map_err(SyncError::vault)?;
    for request in queued {
        write_frame(&mut send, &Frame::Request(request)).await.map_err(SyncError::io)?;
    }
    write_frame(&mut send, &Frame::ListShares).await.map_err(SyncError::io)?;

    // Control frames can be large (a Shares list): one waits at most, so an issuer can make
    // this session hold at most two of them at once.
    let (tx, mut frames) = mpsc::channel::<Frame>(1);
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut recv, SHARES_LIMIT).await {
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    // What this issuer's frames may hold in memory at once, over all its streams.
    let budget = Arc::new(Semaphore::new(ISSUER_BYTE_BUDGET));
    let mut report = SyncReport::default();
    let mut streaming: HashSet<GrantId> = HashSet::new();
    let mut streams: JoinSet<(GrantId, Result<bool, SyncError>)> = JoinSet::new();
    let mut got_shares = false;
    let outcome: Result<(), SyncError> = async {
        loop {
            tokio::select! {
                frame = frames.recv() => {
                    let frame = match frame {
                        Some(f) => f,
                        None if live => return Err(SyncError::Protocol("connection closed".into())),
                        None => return Ok(()),
                    };
                    let (live_grants, ended) = match frame {
                        Frame::Shares { live, ended } => (live, ended),
                        Frame::Ended(e) => (Vec::new(), vec![e]),
                        Frame::RequestAck { request, accepted } => {
                            shared
                                .vault()
                                .request_delivered(&issuer, &request, accepted)
                                .map_err(SyncError::vault)?;
                            if accepted { report.delivered += 1 } else { report.not_accepted += 1 }
                            shared.changes.send_modify(|n| *n += 1);
                            continue;
                        }
                        Frame::Denied(denial) => {
                            shared.vault().accept_denials(&issuer, &[denial]).map_err(SyncError::vault)?;
                            shared.changes.send_modify(|n| *n += 1);
                            continue;
                        }
                        _ => return Err(SyncError::Protocol("unexpected frame".into())),
                    };
                    got_shares = true;
                    shared.book().offer_done(&issuer);
                    let held = shared.vault().live_shares_from(&issuer).map_err(SyncError::vault)?;
                    let before = held.len();
                    let live_grants = within_share_cap(&held, live_grants);
                    let receipts = shared
                        .vault()
                        .accept_shares(issuer, Some(ticket), &live_grants, &ended)
                        .map_err(SyncError::vault)?;
                    let now_live = shared.vault().live_shares_from(&issuer).map_err(SyncError::vault)?;
                    report.erased += before.saturating_sub(now_live.len()).max(receipts.len().min(ended.len()));
                    report.live = now_live.len();
                    for receipt in receipts {
                        write_frame(&mut send, &Frame::Erased(receipt)).await.map_err(SyncError::io)?;
                    }
                    for id in now_live {
                        if streaming.insert(id) {
                            let (shared, conn) = (shared.clone(), conn.clone());
                            let budget = budget.clone();
                            streams.spawn(async move { (id, grant_stream(shared, conn, issuer, id, live, budget).await) });
                        }
                    }
                    if !live && streams.is_empty() {
                        return Ok(());
                    }
                }
                done = streams.join_next(), if !streams.is_empty() => {
                    let ended_id = match done {
                        Some(Ok((id, Ok(changed)))) => {
                            report.updated += usize::from(changed);
                            Some(id)
                        }
                        Some(Ok((id, Err(e)))) => {
                            tracing::debug!(error = %e, "a share stream ended");
                            Some(id)
                        }
                        Some(Err(_)) | None => None,
                    };
                    // In a live session, a share stream that ended while its grant is still
                    // live is reopened after a pause, so a passing error never leaves it stale.
                    if live && let Some(id) = ended_id {
                        streaming.remove(&id);
                        let still_live =
                            shared.vault().live_shares_from(&issuer).map_err(SyncError::vault)?.contains(&id);
                        if still_live && streaming.insert(id) {
                            let (shared, conn, budget) = (shared.clone(), conn.clone(), budget.clone());
                            streams.spawn(async move {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                (id, grant_stream(shared, conn, issuer, id, live, budget).await)
                            });
                        }
                    }
                    if !live && got_shares && streams.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
    }
    .await;
    reader.abort();
    streams.abort_all();
    while streams.join_next().await.is_some() {}
    let _ = send.finish();
    if !live {
        // Let the last frames (receipts) reach the peer before closing.
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.close(0u32.into(), b"done");
    }
    outcome.map(|()| report)
}

/// Closes a connection when dropped, so that a session abandoned mid-way leaves nothing open.
struct CloseOnDrop(Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(0u32.into(), b"done");
    }
}

/// Syncs one share on its own stream. Returns whether the local copy changed.
async fn grant_stream(
    shared: Arc<Shared>,
    conn: Connection,
    issuer: IdentityId,
    id: GrantId,
    live: bool,
    budget: Arc<Semaphore>,
) -> Result<bool, SyncError> {
    shared.vault().share_sync_open(&issuer, &id).map_err(SyncError::vault)?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(SyncError::io)?;
    write_frame(&mut send, &Frame::Open(id)).await.map_err(SyncError::io)?;
    // One frame waits at most, and what waits counts against the issuer's byte budget.
    let (tx, mut incoming) = mpsc::channel::<(Frame, OwnedSemaphorePermit)>(1);
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame_within(&mut recv, vault_core::MAX_FRAME, &budget).await {
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    let mut changed = false;
    let result = async {
        loop {
            let message = crate::isolated("answering an issuer", || {
                shared.vault().share_sync_generate(&issuer, &id).map_err(SyncError::vault)
            })?;
            if let Some(m) = message {
                write_frame(&mut send, &Frame::Sync(m)).await.map_err(SyncError::io)?;
            }
            // A grantee never has changes of its own: once it holds what the issuer last
            // advertised and has said so, a one-shot sync is done.
            if !live && shared.vault().share_in_sync(&issuer, &id).map_err(SyncError::vault)? {
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
            // The permit is held while the frame is handled.
            let (frame, _permit) = frame.map_or((None, None), |(f, p)| (Some(f), Some(p)));
            match frame {
                Some(Frame::Sync(m)) => {
                    let applied = crate::isolated("applying an issuer's sync message", || {
                        shared.vault().share_sync_receive(&issuer, &id, &m).map_err(SyncError::vault)
                    })?;
                    if applied {
                        changed = true;
                        shared.changes.send_modify(|n| *n += 1);
                    }
                }
                Some(Frame::Refused) | None => return Ok(()),
                Some(_) => return Err(SyncError::Protocol("unexpected frame on a share stream".into())),
            }
        }
    }
    .await;
    reader.abort();
    let _ = send.finish();
    result.map(|()| changed)
}

/// Returns when `issuer` made a new offer, or at `deadline`.
async fn new_offer(
    shared: &Shared,
    issuer: &IdentityId,
    changes: &mut watch::Receiver<u64>,
    deadline: Option<tokio::time::Instant>,
) {
    loop {
        if shared.book().take_fresh_offer(issuer) {
            return;
        }
        match deadline {
            Some(at) => match tokio::time::timeout_at(at, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return,
            },
            None => {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Keeps the grants already held and new ones up to [`MAX_SHARES_PER_ISSUER`] live shares: an
/// issuer cannot make this vault hold any number of unsolicited grants.
fn within_share_cap(held: &[GrantId], offered: Vec<SignedGrant>) -> Vec<SignedGrant> {
    let mut room = MAX_SHARES_PER_ISSUER.saturating_sub(held.len());
    offered
        .into_iter()
        .filter(|g| {
            let id = g.statement().id;
            if held.contains(&id) {
                return true;
            }
            if room == 0 {
                tracing::debug!(grant = %id, "ignoring a grant beyond the per-issuer limit");
                return false;
            }
            room -= 1;
            true
        })
        .collect()
}

/// The peers this vault keeps a session with: issuers of live shares (or of erasure receipts
/// not yet confirmed), and holders of requests queued or waiting for an answer.
fn wanted_peers(shared: &Shared) -> Vec<(IdentityId, Option<Ticket>)> {
    let offers = shared.book().offers();
    let vault = shared.vault();
    let mut peers = vault.share_issuers().unwrap_or_default();
    // An offer's ticket is the freshest way to reach its issuer.
    for (issuer, ticket) in offers {
        match peers.iter_mut().find(|(p, _)| *p == issuer) {
            Some((_, known)) => *known = Some(ticket),
            None => peers.push((issuer, Some(ticket))),
        }
    }
    for (holder, ticket) in vault.request_holders().unwrap_or_default() {
        match peers.iter_mut().find(|(p, _)| *p == holder) {
            Some((_, known)) if known.is_none() => *known = ticket,
            Some(_) => {}
            None => peers.push((holder, ticket)),
        }
    }
    // A blocked peer is not dialed either: blocking means no contact, both ways.
    peers.retain(|(p, _)| !vault.is_blocked(p).unwrap_or(false));
    peers
}

/// Keeps a live session to every wanted peer with a known ticket (see [`wanted_peers`]),
/// reconnecting with exponential backoff; this is also how queued consent requests get
/// delivered. New peers are picked up within [`PICK_UP`]; a peer no longer wanted is let go
/// at its next reconnection.
pub(crate) async fn subscribe_all(shared: Arc<Shared>, endpoint: Endpoint, config: NodeConfig) {
    let _ = config;
    let mut running: HashSet<IdentityId> = HashSet::new();
    let mut tasks: JoinSet<IdentityId> = JoinSet::new();
    let mut changes = shared.changes.subscribe();
    loop {
        while let Some(done) = tasks.try_join_next() {
            if let Ok(peer) = done {
                running.remove(&peer);
            }
        }
        let peers = wanted_peers(&shared);
        for (peer, ticket) in peers {
            let Some(ticket) = ticket else { continue };
            if running.insert(peer) {
                let (shared, endpoint) = (shared.clone(), endpoint.clone());
                tasks.spawn(async move {
                    let mut backoff = Duration::from_millis(250);
                    let mut ticket = ticket;
                    loop {
                        // This attempt answers every offer made so far.
                        shared.book().take_fresh_offer(&peer);
                        let mut changes = shared.changes.subscribe();
                        let started = Instant::now();
                        tokio::select! {
                            result = session(shared.clone(), &endpoint, &ticket, true) => {
                                if let Err(e) = result {
                                    tracing::debug!(error = %e, %peer, "session ended");
                                }
                            }
                            // The issuer offers only to an audience with no session on its side:
                            // this one is dead there (it restarted, or the path changed).
                            () = new_offer(&shared, &peer, &mut changes, None) => {
                                tracing::debug!(%peer, "the issuer offered again; reconnecting");
                            }
                        }
                        if started.elapsed() > Duration::from_secs(10) {
                            backoff = Duration::from_millis(250);
                        }
                        // Wait out the backoff, cut short by a new offer from this peer: it just
                        // showed it is reachable (possibly at new addresses).
                        let deadline = tokio::time::Instant::now() + backoff;
                        new_offer(&shared, &peer, &mut changes, Some(deadline)).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        match wanted_peers(&shared).into_iter().find(|(p, _)| *p == peer) {
                            Some((_, Some(t))) => ticket = t,
                            _ => return peer,
                        }
                    }
                });
            }
        }
        // Wake on a change (a new request or share) or every few seconds.
        let _ = tokio::time::timeout(PICK_UP, changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use vault_core::{Grant, GrantId, Identity, Signed, SignedGrant};

    use super::{MAX_SHARES_PER_ISSUER, within_share_cap};

    fn grant(issuer: &Identity, n: u16) -> SignedGrant {
        let mut id = [0u8; 10];
        id[..2].copy_from_slice(&n.to_be_bytes());
        let grant = Grant {
            id: GrantId::from_raw(&id).unwrap(),
            issuer: issuer.public(),
            audience: Identity::from_secret_bytes(&[2; 32]).public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "flood".into(),
            issued_at: 1_800_000_000,
            expires_at: None,
            prices: true,
            request: None,
        };
        Signed::sign(grant, issuer).unwrap()
    }

    #[test]
    fn an_issuer_cannot_make_a_grantee_hold_any_number_of_shares() {
        let issuer = Identity::from_secret_bytes(&[1; 32]);
        let offered: Vec<SignedGrant> = (0..200).map(|n| grant(&issuer, n)).collect();
        assert_eq!(within_share_cap(&[], offered.clone()).len(), MAX_SHARES_PER_ISSUER);
        // Shares already held stay; new ones fill what room is left.
        let held: Vec<GrantId> = offered[..60].iter().map(|g| g.statement().id).collect();
        let kept = within_share_cap(&held, offered.clone());
        assert_eq!(kept.len(), MAX_SHARES_PER_ISSUER);
        assert!(held.iter().all(|id| kept.iter().any(|g| g.statement().id == *id)));
    }
}
