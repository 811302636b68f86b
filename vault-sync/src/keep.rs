//! Keeping sessions with the peers this vault follows: whom to dial (vault-core's
//! [`vault_core::wanted_peers`]), reconnecting with backoff, and letting a quiet session go.
//!
//! A live session with no frame either way for [`NodeConfig::idle_close`] ends; its task then
//! waits for news instead of dialing again: an offer from the issuer (it offers when its values
//! changed and none of this vault's devices holds them, see [`crate::notify`]), something of
//! this vault's own to carry (a request or notice queued for the peer, an erasure receipt to
//! deliver), or [`NodeConfig::idle_refresh`] passing. So a seller holds a connection to each
//! customer who is active, not to every customer it ever received a share from.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::Endpoint;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use vault_core::{IdentityId, Ticket};

use crate::client::{Mode, session};
use crate::endpoint::{NodeConfig, NodeTasks};
use crate::error::SyncError;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the node looks for new peers to keep a session with, at the latest.
const PICK_UP: Duration = Duration::from_secs(2);
/// Whom to keep a session with is asked again at least this often, whatever the marks say
/// (asking walks every share: on a seller, every customer).
const FULL_ASK: Duration = Duration::from_secs(30);
/// The least time between two askings of whom to keep a session with, unless forced.
const MIN_ASK: Duration = Duration::from_millis(200);

/// Returns when `issuer` made a new offer or was woken ([`crate::peers::PeerBook::wake`]), or at
/// `deadline`; true for news.
async fn news(
    shared: &NodeTasks,
    issuer: &IdentityId,
    waiter: &Notify,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    loop {
        {
            let mut book = shared.book();
            // Both are taken: one session answers both.
            let offered = book.take_fresh_offer(issuer);
            if book.take_woken(issuer) || offered {
                return true;
            }
        }
        match deadline {
            Some(at) => {
                if tokio::time::timeout_at(at, waiter.notified()).await.is_err() {
                    return false;
                }
            }
            None => waiter.notified().await,
        }
    }
}

/// The peers this vault keeps a session with (vault-core's [`vault_core::wanted_peers`]).
fn wanted_peers(shared: &NodeTasks) -> Vec<(IdentityId, Option<Ticket>)> {
    let offers = shared.book().offers();
    vault_core::wanted_peers(&shared.vault(), offers)
}

/// The peers with a request or notice of this vault's queued for them.
fn queued_for(shared: &NodeTasks) -> HashSet<IdentityId> {
    let vault = shared.vault();
    let mut peers = vault.outbox().queued_holders().unwrap_or_default();
    peers.extend(vault.notices().customers().unwrap_or_default().into_iter().map(|(c, _)| c));
    peers
}

/// Wakes the sessions of peers with something newly queued for them: queued items go out at a
/// session's start, so an idle one dials again and a live one starts again (once per peer newly
/// queued, not once per delivery).
fn wake_for_queued(shared: &NodeTasks, before: &HashSet<IdentityId>, now: &HashSet<IdentityId>) {
    let mut book = shared.book();
    for peer in now.difference(before) {
        book.wake(*peer);
    }
}

/// Whether `issuer` has an erasure receipt of this vault's to take.
fn receipt_for(shared: &NodeTasks, issuer: &IdentityId) -> bool {
    shared.vault().held().unconfirmed_receipts(Some(*issuer)).is_ok_and(|r| !r.is_empty())
}

/// What this node has to carry to peers whatever node serves them: offers to answer, requests
/// and notices queued here, erasure receipts signed here.
struct Carried(HashSet<IdentityId>);

impl Carried {
    fn now(shared: &NodeTasks) -> Carried {
        let mut peers: HashSet<IdentityId> = shared.book().offers().into_iter().map(|(p, _)| p).collect();
        peers.extend(queued_for(shared));
        let receipts = shared.vault().held().unconfirmed_receipts(None).unwrap_or_default();
        peers.extend(receipts.iter().map(|r| r.statement().issuer));
        Carried(peers)
    }

    fn has(&self, peer: &IdentityId) -> bool {
        self.0.contains(peer)
    }
}

/// Whether this node keeps `peer` (see [`crate::placement`]): it serves it, or has something to
/// carry to it.
fn ours(shared: &NodeTasks, peer: &IdentityId) -> bool {
    if !shared.placement().shared() || shared.placement().serves(shared.me, peer) {
        return true;
    }
    if shared.book().offer_of(peer).is_some() || receipt_for(shared, peer) {
        return true;
    }
    queued_for(shared).contains(peer)
}

/// Lets go of the shares of `peer`, a customer another node serves, once the database holds
/// them (vault-core's `Held::let_go`): what this node keeps follows its share of the customers.
fn let_go(shared: &NodeTasks, peer: &IdentityId) {
    if !shared.placement().settled() {
        return;
    }
    match shared.vault().held_mut().let_go(peer) {
        Ok(0) => {}
        Ok(shares) => tracing::debug!(%peer, shares, "let go of a customer another node serves"),
        Err(e) => tracing::warn!(error = %e, %peer, "letting go of a customer another node serves"),
    }
}

/// Wakes the idle sessions whose issuer has an erasure receipt to take (a live session sends
/// its receipts itself).
fn wake_for_receipts(shared: &NodeTasks) {
    let unconfirmed = shared.vault().held().unconfirmed_receipts(None).unwrap_or_default();
    let issuers: HashSet<IdentityId> = unconfirmed.iter().map(|r| r.statement().issuer).collect();
    let mut book = shared.book();
    for issuer in issuers {
        if book.is_idle(&issuer) {
            book.wake(issuer);
        }
    }
}

/// Keeps a session to every wanted peer with a known ticket (see [`wanted_peers`]),
/// reconnecting with exponential backoff; this is also how queued consent requests get
/// delivered. New peers are picked up within [`PICK_UP`]; a peer no longer wanted is let go
/// at its next reconnection. Quiet sessions end and wait for news (see the module docs).
pub(crate) async fn subscribe_all(shared: Arc<NodeTasks>, endpoint: Endpoint, config: NodeConfig) {
    let mut running: HashSet<IdentityId> = HashSet::new();
    let mut tasks: JoinSet<IdentityId> = JoinSet::new();
    let mut task_peers: std::collections::HashMap<tokio::task::Id, IdentityId> = Default::default();
    let mut changes = shared.changes.subscribe();
    let mut offers = shared.offers.subscribe();
    let mut receipts = shared.receipts.subscribe();
    // Who to keep a session with is asked again when it may have changed (or a task ended, or
    // an offer came, or at least every few seconds), not on every change: a seller's customers
    // edit all day, and asking walks every share.
    let mut asked: Option<(vault_core::PeersMark, u64)> = None;
    let mut forced = true;
    // Asked again at least this often, however busy the node (a wait restarted by every change
    // would never run out).
    let mut next_full = Instant::now() + FULL_ASK;
    let mut last_ask = None;
    let mut outgoing_mark = None;
    let mut queued: Option<HashSet<IdentityId>> = None;
    loop {
        if Instant::now() >= next_full {
            forced = true;
        }
        if forced {
            next_full = Instant::now() + FULL_ASK;
        }
        while let Some(done) = tasks.try_join_next_with_id() {
            // A task that panicked is let go like one that ended: its peer is picked up again.
            let id = match done {
                Ok((id, _)) => id,
                Err(e) => e.id(),
            };
            if let Some(peer) = task_peers.remove(&id) {
                running.remove(&peer);
                shared.book().forget(&peer);
                shared.placement().called(&peer);
                forced = true;
            }
        }
        let mark = vault_core::peers_mark(&shared.vault()).map(|m| (m, *offers.borrow_and_update()));
        if !forced && mark.is_some() && mark == asked {
            tokio::select! {
                _ = tokio::time::sleep(PICK_UP) => {}
                Ok(()) = changes.changed() => {}
                Ok(()) = offers.changed() => {}
                Ok(()) = receipts.changed() => wake_for_receipts(&shared),
            }
            continue;
        }
        // Asking walks every share: while shares keep arriving or sessions end (a seller's
        // customers coming in), at most once per MIN_ASK, however many.
        if let Some(wait) = last_ask.map(|at: Instant| MIN_ASK.saturating_sub(at.elapsed()))
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
        asked = mark;
        // Customers another node serves are looked at for letting go on full asks only: a
        // share that cannot go yet (a revision not written) is not asked about every change.
        let full = forced;
        forced = false;
        last_ask = Some(Instant::now());
        let mut peers = wanted_peers(&shared);
        // Several nodes of this identity share the work: a customer another node serves is
        // called only to answer its offer, or to carry something of this node's.
        let others = shared.placement().shared().then(|| Carried::now(&shared));
        peers.extend(shared.placement().adopted().into_iter().map(|(c, t)| (c, Some(t))));
        for (peer, ticket) in peers {
            let Some(ticket) = ticket else { continue };
            if running.contains(&peer) {
                continue;
            }
            if let Some(carried) = &others
                && !shared.placement().serves(shared.me, &peer)
                && !carried.has(&peer)
            {
                if full {
                    let_go(&shared, &peer);
                }
                continue;
            }
            if running.insert(peer) {
                let waiter = shared.book().waiter(peer);
                let (shared, endpoint, config) = (shared.clone(), endpoint.clone(), config.clone());
                let task = tasks.spawn(keep_session(shared, endpoint, config, peer, ticket, waiter));
                task_peers.insert(task.id(), peer);
            }
        }
        // Requests or notices queued since last asked: their peers' idle sessions dial again.
        let outgoing = vault_core::outgoing_mark(&shared.vault());
        if outgoing.is_some() && outgoing != outgoing_mark {
            let now = queued_for(&shared);
            if let Some(before) = &queued {
                wake_for_queued(&shared, before, &now);
            }
            queued = Some(now);
            outgoing_mark = outgoing;
        }
        // Wake on a change (a new request or share), an offer, or every few seconds.
        tokio::select! {
            _ = tokio::time::sleep(PICK_UP) => {}
            Ok(()) = changes.changed() => {}
            Ok(()) = offers.changed() => {}
            Ok(()) = receipts.changed() => wake_for_receipts(&shared),
        }
    }
}

/// Keeps one peer's session: live while it has something to say, idle while it has not,
/// until the peer is no longer wanted. Returns the peer.
async fn keep_session(
    shared: Arc<NodeTasks>,
    endpoint: Endpoint,
    config: NodeConfig,
    peer: IdentityId,
    mut ticket: Ticket,
    waiter: Arc<Notify>,
) -> IdentityId {
    let mut backoff = Duration::from_millis(250);
    let mode = Mode::Live { idle_close: config.idle_close };
    // Dialing on a refresh (no news): a failure waits for news or the next refresh, not the
    // backoff (a customer's phone that is off is not called every half minute).
    let mut refreshing = false;
    loop {
        // This attempt answers every offer and wake so far.
        {
            let mut book = shared.book();
            book.take_fresh_offer(&peer);
            book.take_woken(&peer);
        }
        let started = Instant::now();
        let mut idle = false;
        // A session that ran long resets the backoff, unless it ran long waiting for answers.
        let mut answered = true;
        tracing::debug!(%peer, "calling");
        tokio::select! {
            // Boxed: the session's state is large, and a task waiting idle (most of a seller's
            // customers) would otherwise keep room for it.
            result = Box::pin(session(shared.clone(), &endpoint, &ticket, mode)) => match result {
                Ok(ended) => {
                    tracing::debug!(%peer, idle = ended.idle, "session over");
                    idle = ended.idle;
                }
                Err(SyncError::NoAnswer { owed }) => {
                    tracing::debug!(%peer, owed, "the peer did not answer");
                    shared.reach().failed(peer, &SyncError::NoAnswer { owed }.to_string());
                    answered = false;
                    // Something of this node's went unacknowledged: called again, backing off
                    // (it is sent again). Otherwise, as for a peer that is not there: at the
                    // refresh, or with news.
                    idle = !owed;
                }
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "session ended");
                    shared.reach().failed(peer, &e.to_string());
                    idle = refreshing;
                }
            },
            // The issuer offers only to an audience with no session on its side: this one is
            // dead there (it restarted, or the path changed). Or something queued here must go
            // out at a session's start.
            _ = news(&shared, &peer, &waiter, None) => {
                tracing::debug!(%peer, "the issuer offered again, or something is queued; reconnecting");
            }
        }
        refreshing = false;
        // Watched from before the check below: a change between them is not missed.
        let moves = shared.placement_moved.subscribe();
        if idle && !ours(&shared, &peer) {
            // Another node serves this customer now: let it go (it is called again if it
            // offers here, or this node serves it again).
            let_go(&shared, &peer);
            return peer;
        }
        if idle {
            // Nothing to say either way: wait for news, or the refresh. A receipt signed as the
            // session closed (before it was marked idle) is news already.
            shared.book().set_idle(peer, true);
            let mut moved = false;
            if !receipt_for(&shared, &peer) {
                let deadline = tokio::time::Instant::now() + spread(config.idle_refresh);
                tokio::select! {
                    got = news(&shared, &peer, &waiter, Some(deadline)) => refreshing = !got,
                    () = moved_away(&shared, &peer, moves) => moved = true,
                }
            }
            shared.book().set_idle(peer, false);
            if moved {
                let_go(&shared, &peer);
                return peer;
            }
            backoff = Duration::from_millis(250);
        } else {
            if answered && started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(250);
            }
            // Wait out the backoff, cut short by a new offer from this peer: it just showed it
            // is reachable (possibly at new addresses).
            let deadline = tokio::time::Instant::now() + backoff;
            news(&shared, &peer, &waiter, Some(deadline)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let offer = shared.book().offer_of(&peer);
        match vault_core::wanted_peer(&shared.vault(), &peer, offer) {
            Some(Some(t)) => ticket = t,
            _ => return peer,
        }
    }
}

/// Returns once another node of this identity serves `peer` and this node has nothing to carry
/// to it: the nodes up changed while its session was idle (a node came back, or joined).
async fn moved_away(shared: &NodeTasks, peer: &IdentityId, mut moves: tokio::sync::watch::Receiver<u64>) {
    loop {
        if moves.changed().await.is_err() {
            return std::future::pending().await;
        }
        // Cheap first: most idle sessions' customers did not move.
        let serves = shared.placement().serves(shared.me, peer);
        if !serves && !ours(shared, peer) {
            return;
        }
    }
}

/// `d` spread by up to a quarter either way, so that sessions gone idle together are not all
/// called again together.
fn spread(d: Duration) -> Duration {
    let quarter = d / 4;
    d - quarter + random_below(quarter * 2)
}

/// A random time below `d` (none when `d` is none), for spreading timers.
pub(crate) fn random_below(d: Duration) -> Duration {
    Duration::from_nanos(rand_below(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

fn rand_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // The spread needs no secrecy; a failed read leaves no spread.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % n.max(1)
}
