//! Telling an audience that what this vault shares with it changed, so that a new grant (or a
//! revocation) reaches a running grantee without the grantee asking.
//!
//! The issuer's node watches, for each contact with a ticket, the set of grants it would list
//! in `Shares` (live and ended). When that set gains something the audience was not told, and
//! the audience has no session listening for shares, the node dials it and sends
//! `Offer(its own ticket)`; the audience's node answers `OfferAck`, dials back and syncs as
//! usual (`ListShares`, one stream per grant). An unreachable audience is retried with
//! exponential backoff; the offer stops once acknowledged or once a session of the audience
//! was told the shares.
//!
//! An audience is also offered when the values of a grant changed and none of its devices is
//! known to hold them, with no session of it listening: a grantee's node lets a session go
//! idle (see [`crate::keep`]) and is called back this way when there is news.
//!
//! On the audience's side an offer only names a way back to the identity and device that
//! dialed; it carries no grant and is trusted for nothing else. At most [`crate::peers::MAX_OFFERS`] offers
//! wait at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::Endpoint;
use tokio::task::JoinSet;
use vault_core::framing::CONTROL_LIMIT;
use vault_core::{AudienceNews, Frame, IdentityId, Ticket};

use crate::client::dial;
use crate::endpoint::{NodeTasks, ticket_addrs};
use crate::error::SyncError;
use crate::frame::{read_frame, write_frame};
use crate::limits::HANDSHAKE_TIMEOUT;
use crate::peers::ShareSet;

/// Longest wait between two offers to an unreachable audience.
const MAX_OFFER_BACKOFF: Duration = Duration::from_secs(60);
/// First wait after a failed offer.
const FIRST_OFFER_BACKOFF: Duration = Duration::from_millis(250);
/// How often the notifier looks again when nothing wakes it (for what no signal follows: a
/// grant voided by a device removal or a key event). Each look reads every contact and, for
/// each, its grants' projections: on a phone, not something to do every second or two.
const RECHECK: Duration = Duration::from_secs(15);
/// The least time between two looks at every audience.
const MIN_SCAN: Duration = Duration::from_millis(100);

/// An audience not reached yet: when to try again, and what to offer it, as last seen.
struct Pending {
    next: Instant,
    backoff: Duration,
    news: AudienceNews,
}

/// Tells every contact whose shares changed, retrying with backoff (see the module docs).
pub(crate) async fn notify_audiences(shared: Arc<NodeTasks>, endpoint: Endpoint) {
    let mut changes = shared.served.subscribe();
    let mut ended = shared.listening_ended.subscribe();
    let mut pending: HashMap<IdentityId, Pending> = HashMap::new();
    let mut in_flight: HashSet<IdentityId> = HashSet::new();
    let mut flights: HashMap<tokio::task::Id, IdentityId> = HashMap::new();
    let mut tasks: JoinSet<(IdentityId, ShareSet, Option<u64>, bool)> = JoinSet::new();
    // The audiences are asked again when grants or contacts changed, an offer ended, or a wait
    // ran out (a grant may have expired), not on every change: asking reads every contact.
    let mut asked = None;
    let mut forced = true;
    // Asked again at least this often, however busy the node (what the mark does not follow:
    // grants voided by a device removal, a listening session that ended, the clock).
    let mut next_full = Instant::now() + RECHECK;
    let mut last_scan = None;
    loop {
        if Instant::now() >= next_full {
            forced = true;
        }
        if forced {
            next_full = Instant::now() + RECHECK;
        }
        let mark = vault_core::offers_mark(&shared.vault());
        let fresh = forced || mark.is_none() || mark != asked;
        // However often sessions end or edits land (a peer can connect, listen and leave in a
        // loop), a look at every audience at most every MIN_SCAN.
        if fresh && let Some(wait) = last_scan.map(|at: Instant| MIN_SCAN.saturating_sub(at.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        if fresh {
            last_scan = Some(Instant::now());
        }
        let mark = if fresh { vault_core::offers_mark(&shared.vault()) } else { mark };
        asked = mark;
        forced = false;
        let candidates = if fresh {
            let all = audiences(&shared);
            // A contact gone (or blocked) since is not retried.
            let seen: HashSet<IdentityId> = all.iter().map(|n| n.audience).collect();
            // (Nothing read, which may be a read that failed: the retries stay.)
            if !all.is_empty() {
                pending.retain(|audience, _| seen.contains(audience));
            }
            all
        } else {
            // Only the offers whose retry is due, as last seen: a retry reads nothing.
            let now = Instant::now();
            let due = pending.iter().filter(|(a, p)| p.next <= now && !in_flight.contains(*a));
            due.map(|(_, p)| p.news.clone()).collect()
        };
        for news in candidates {
            let AudienceNews { audience, ticket, shares: now, behind, values_behind } = news.clone();
            if !shared.book().needs_offer(&audience, &now, behind, values_behind) {
                pending.remove(&audience);
                continue;
            }
            if in_flight.contains(&audience) {
                continue;
            }
            let p = pending.entry(audience).or_insert_with(|| Pending {
                next: Instant::now(),
                backoff: FIRST_OFFER_BACKOFF,
                news: news.clone(),
            });
            p.news = news;
            if p.next <= Instant::now() {
                in_flight.insert(audience);
                let (shared, endpoint) = (shared.clone(), endpoint.clone());
                let task = tasks.spawn(async move {
                    let acked = match offer(&shared, &endpoint, &ticket).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(error = %e, %audience, "offer not delivered");
                            false
                        }
                    };
                    (audience, now, behind, acked)
                });
                flights.insert(task.id(), audience);
            }
        }
        // The next retry of an offer not in flight (one in flight wakes the loop when it ends),
        // or the next full look.
        let soonest = pending.iter().filter(|(a, _)| !in_flight.contains(*a)).map(|(_, p)| p.next).min();
        let wait = soonest.unwrap_or(next_full).min(next_full).saturating_duration_since(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
            Ok(()) = changes.changed() => {}
            Ok(()) = ended.changed() => forced = true,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match &done {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                let Some(audience) = flights.remove(&id) else { continue };
                in_flight.remove(&audience);
                // An offer that panicked is tried again, like one that failed (or by the next
                // full look, when nothing waits for it any more).
                let (peer, set, behind, acked) = match done {
                    Ok((_, outcome)) => outcome,
                    Err(_) => match pending.get(&audience) {
                        Some(p) => (audience, p.news.shares.clone(), p.news.behind, false),
                        None => continue,
                    },
                };
                if acked {
                    pending.remove(&peer);
                    shared.book().offer_acked(peer, set, behind);
                } else if let Some(p) = pending.get_mut(&peer) {
                    p.next = Instant::now() + p.backoff;
                    p.backoff = (p.backoff * 2).min(MAX_OFFER_BACKOFF);
                }
            }
        }
    }
}

/// Contacts with a ticket, not blocked, with what they may learn now (vault-core's
/// [`vault_core::offer_audiences`]).
fn audiences(shared: &NodeTasks) -> Vec<AudienceNews> {
    vault_core::offer_audiences(&mut shared.vault())
}

/// Dials `ticket` and offers this vault's shares; Ok once acknowledged.
async fn offer(shared: &Arc<NodeTasks>, endpoint: &Endpoint, ticket: &Ticket) -> Result<(), SyncError> {
    // To the grantee's device that serves this vault (a seller running several nodes).
    let (conn, mut send, mut recv, _) = dial(shared, endpoint, ticket, true).await?;
    let mine = shared.vault().ticket(ticket_addrs(endpoint));
    write_frame(&mut send, &Frame::Offer(mine)).await.map_err(SyncError::io)?;
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut recv, CONTROL_LIMIT))
        .await
        .map_err(|_| SyncError::Timeout)?
        .map_err(SyncError::io)?;
    let _ = send.finish();
    conn.close(0u32.into(), b"done");
    match answer {
        Some(Frame::OfferAck) => Ok(()),
        _ => Err(SyncError::Protocol("the offer was not acknowledged".into())),
    }
}
