//! The mirror's loop beside the node: on every change of the vault (and every few seconds
//! regardless), write what changed; after a withdrawn share's rows are committed
//! gone, have the vault sign its erasure receipt. A failure drops the connection, records the
//! problem for `vault shared`, and retries with backoff; the node keeps serving meanwhile.
//!
//! Several nodes of one seller may write into the same tables: each says it is up every
//! [`HEARTBEAT`], learns which nodes are (the node then serves its own customers, see
//! `vault_sync`'s placement), and calls the customers it takes over from a node that stopped.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use vault_core::{MirrorEntry, ShareStatus, Vault};
use vault_sync::VaultHandle;

use crate::db::{Db, Outcome, Theirs, Written};
use crate::{MirrorError, MirrorUrl};

/// How long the loop waits for a change before looking again anyway (a change made by another
/// process that the node's watcher has not reported yet, the next heartbeat).
const TICK: Duration = Duration::from_secs(2);
/// How often a node tells the database it is up.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a node looks for customers left by a node that stopped, apart from when the nodes
/// up changed (a customer unreachable then is called again).
const READOPT: Duration = Duration::from_secs(30);
/// How often a node erases the values of consents past their expiry.
const SWEEP: Duration = Duration::from_secs(10);
/// The longest wait between attempts to reach the database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Shares written per transaction.
const BATCH: usize = 256;

/// A running mirror.
#[derive(Debug)]
pub struct Mirror {
    task: JoinHandle<()>,
    /// The loop's current attempt (restarted after a panic), and whether the mirror was
    /// stopped: aborting the outer task alone would leave the attempt running.
    attempt: std::sync::Arc<std::sync::Mutex<(Option<tokio::task::AbortHandle>, bool)>>,
}

impl Mirror {
    /// Starts mirroring the vault behind `handle` into `url`. A panic in the loop is recorded
    /// as the mirror's status and the loop restarts: it never takes the node down, and never
    /// dies silently with erasures pending.
    pub fn spawn(handle: VaultHandle, url: MirrorUrl) -> Mirror {
        let slot: std::sync::Arc<std::sync::Mutex<(Option<tokio::task::AbortHandle>, bool)>> =
            Default::default();
        let attempts = slot.clone();
        let task = tokio::spawn(async move {
            loop {
                let attempt = tokio::spawn(run(handle.clone(), url.clone()));
                {
                    let mut held = attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if held.1 {
                        attempt.abort();
                        return;
                    }
                    held.0 = Some(attempt.abort_handle());
                }
                match attempt.await {
                    Ok(()) => return,
                    Err(e) if e.is_panic() => {
                        tracing::error!("the mirror failed unexpectedly; restarting it");
                        let _ = handle.with_vault(|v| {
                            v.mirror_mut().set_status(false, "failed unexpectedly; restarting")
                        });
                        tokio::time::sleep(MAX_BACKOFF).await;
                    }
                    Err(_) => return,
                }
            }
        });
        Mirror { task, attempt: slot }
    }

    /// Stops it (a write in flight is rolled back by the server: nothing half-written stays).
    /// Dropping it does the same.
    pub fn shutdown(self) {}

    /// True once the mirror stopped by itself (detached, or pointed elsewhere).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let mut held = self.attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.1 = true;
        if let Some(attempt) = held.0.take() {
            attempt.abort();
        }
        self.task.abort();
    }
}

/// The owner the mirror's tables record: this vault's identity (every node of a seller writes
/// into the same tables, each with its own customers).
pub fn owner(vault: &Vault) -> String {
    vault.identity().to_string()
}

/// This node, as the tables name it: its device.
pub fn node(vault: &Vault) -> String {
    vault.device_key().public().to_string()
}

/// Connects, prepares the tables for the identity `owner` (see [`owner`]) as node `node` (see
/// [`node`]) and says how many consents they
/// hold: what `vault mirror set` checks before attaching. Fails while this device's node
/// writes there.
pub async fn check(url: &MirrorUrl, owner: &str, node: &str) -> Result<u64, MirrorError> {
    let db = Db::connect(url, owner, node, true).await?;
    db.count().await.map_err(|e| e.scrubbed(url))
}

/// Every consent the database at `url` records for the seller `owner` (live or ended), for a
/// breach notice sent from any of the seller's nodes ([`vault_core::Notices::notify_with`]).
pub async fn recorded_consents(
    url: &MirrorUrl,
    owner: &str,
) -> Result<Vec<vault_core::RecordedConsent>, MirrorError> {
    let db = Db::connect_watcher(url, owner).await?;
    db.recorded_consents().await.map_err(|e| e.scrubbed(url))
}

/// Removes every row the mirror wrote and marks the tables detached (every node still writing
/// stops), so that the vault can detach the mirror with nothing left behind. Returns how many
/// consents were removed.
pub async fn detach(url: &MirrorUrl, owner: &str, node: &str) -> Result<u64, MirrorError> {
    let mut db = Db::connect(url, owner, node, true).await?;
    db.remove_all().await.map_err(|e| e.scrubbed(url))
}

/// What a connected loop keeps: the connection, what this node wrote, where the values of
/// the rows other nodes wrote came from (until the first round after connecting has looked),
/// and when it last erased what expired.
struct Conn {
    db: Db,
    written: Written,
    theirs: Option<Theirs>,
    swept: Option<Instant>,
    /// Shares (at a revision) the database does not hold as this node does: values it
    /// refused, or a row another source wrote that this node did not overwrite. Not let go.
    doubtful: std::collections::HashMap<(String, String), u64>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(handle: VaultHandle, url: MirrorUrl) {
    let mut changes = handle.changes();
    let (owner, node) = handle.with_vault(|v| (owner(v), node(v)));
    // Whether this node holds its writer connection: it says it is up only then (a node that
    // cannot write lets the others take its customers).
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _watcher = AbortOnDrop(tokio::spawn(watch_nodes(
        handle.clone(),
        url.clone(),
        (owner.clone(), node.clone()),
        writing.clone(),
    )));
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        // Detached or pointed elsewhere by another process: this loop's job is over (a read
        // that fails says nothing either way: the round below reports it).
        if let Ok(now) = handle.with_vault(|v| v.mirror().url())
            && now.as_deref() != Some(url.expose())
        {
            tracing::info!("mirror detached; stopping");
            return;
        }
        let result = round(&handle, &url, (&owner, &node), &mut conn).await;
        writing.store(conn.is_some(), std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                let _ = tokio::time::timeout(TICK, changes.changed()).await;
            }
            Err(e) => {
                conn = None;
                let text = url.scrub(&e.to_string());
                tracing::warn!(error = %text, "mirror");
                let _ = handle.with_vault(|v| v.mirror_mut().set_status(false, &text));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One pass: (re)connect if needed, then write every share whose revision the database does
/// not hold, erase what was asked of grants never held and what expired, and confirm the
/// erasures committed.
async fn round(
    handle: &VaultHandle,
    url: &MirrorUrl,
    (owner, node): (&str, &str),
    conn: &mut Option<Conn>,
) -> Result<(), MirrorError> {
    if conn.as_ref().is_some_and(|c| c.db.is_closed()) {
        *conn = None;
    }
    // Only what changed since the last round, unless (re)connecting: then every share, to
    // compare with what the database holds. A round that fails drops the connection, so what
    // it was given is looked at again on the next one.
    let entries = handle.with_vault(|v| v.mirror().changes(conn.is_none()))?;
    if conn.is_none() {
        let db = Db::connect(url, owner, node, false).await?;
        let (written, theirs) = db.written(node).await?;
        handle.with_vault(|v| v.mirror_mut().set_status(true, &format!("writing to {}", url.target())))?;
        *conn = Some(Conn { db, written, theirs: Some(theirs), swept: None, doubtful: Default::default() });
    }
    let c = conn.as_mut().expect("connected above");
    // Grants never held here that ended: their rows go (for good) before their receipts.
    // A bare expiry only once the database shows the consent expired.
    let unheld = handle.with_vault(|v| v.mirror().unheld_pending());
    for (customer, grant, expiry) in &unheld {
        if c.db.erase_unheld(node, &customer.to_string(), &grant.to_string(), *expiry).await? {
            handle.with_vault(|v| v.mirror_mut().unheld_erased(customer, grant));
        } else {
            tracing::warn!(%customer, %grant, "a customer said a consent expired that the database holds unexpired: nothing erased, no receipt");
            handle.with_vault(|v| v.mirror_mut().unheld_refused(customer, grant));
        }
    }
    if !unheld.is_empty() {
        tracing::info!(count = unheld.len(), "mirror: rows of grants never held here erased");
        handle.receipts_signed();
    }
    let (written, doubtful) = (&mut c.written, &mut c.doubtful);
    let (todo, held): (Vec<&MirrorEntry>, Vec<&MirrorEntry>) = entries
        .iter()
        .partition(|e| e.erasure_pending || written.get(&key(e)) != Some(&(e.rev, e.customer_name.clone())));
    // What the database holds already (found so on connecting): a node that does not serve the
    // customer may let it go.
    if !held.is_empty() {
        handle.with_vault(|v| -> Result<(), MirrorError> {
            for e in held.iter().filter(|e| doubtful.get(&key(e)) != Some(&e.rev)) {
                v.mirror_mut().wrote(&e.customer, &e.grant, e.rev)?;
            }
            Ok(())
        })?;
    }
    // Withdrawals first, in transactions of their own: an erasure never waits behind an import.
    let (withdrawals, imports): (Vec<&MirrorEntry>, Vec<&MirrorEntry>) =
        todo.into_iter().partition(|e| e.erasure_pending);
    let wrote = !withdrawals.is_empty() || !imports.is_empty();
    let mut refused = Vec::new();
    // Rows another node wrote last are compared once, after connecting: a copy held here is
    // written over them only if it is newer from the same source (a node back from a stop, or
    // from a lost connection, holds copies older than the ones written meanwhile).
    let theirs = c.theirs.take().unwrap_or_default();
    for chunk in withdrawals.chunks(BATCH).chain(imports.chunks(BATCH)) {
        let mut newer_there = Vec::new();
        let mut shares = handle.with_vault(|v: &mut Vault| {
            chunk
                .iter()
                .filter_map(|e| v.mirror_mut().share(&e.customer, &e.grant).transpose())
                .collect::<Result<Vec<_>, _>>()
        })?;
        shares.retain(|s| {
            let g = s.grant.statement();
            let k = (g.issuer.to_string(), g.id.to_string());
            let keep =
                s.status != ShareStatus::Live || theirs.get(&k).is_none_or(|row| newer(s, row.as_ref()));
            if !keep {
                written.insert(k.clone(), (s.rev, s.customer_name.clone()));
                if theirs.get(&k).is_some_and(|row| as_new_there(s, row.as_ref())) {
                    newer_there.push((g.issuer, g.id, s.rev));
                } else {
                    doubtful.insert(k, s.rev);
                }
            }
            keep
        });
        let outcomes = c.db.write(node, &shares).await?;
        // Committed: the rows of withdrawn shares are gone, their receipts can be signed.
        let mut erased = Vec::new();
        for (share, outcome) in shares.iter().zip(&outcomes) {
            let g = share.grant.statement();
            let k = (g.issuer.to_string(), g.id.to_string());
            if let Outcome::Refused(why) = outcome {
                refused.push(format!("grant {} of {}: {why}", g.id, g.issuer));
                doubtful.insert(k, share.rev);
            } else {
                doubtful.remove(&k);
            }
            written
                .insert((g.issuer.to_string(), g.id.to_string()), (share.rev, share.customer_name.clone()));
            if share.erasure_pending && share.status != ShareStatus::Live {
                erased.push((g.issuer, g.id));
            }
        }
        // Committed (or a copy as new is there, or the consent was erased there): the database
        // holds what this node holds. Not so for values the database refused.
        handle.with_vault(|v| -> Result<(), MirrorError> {
            let committed = shares
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| !matches!(o, Outcome::Refused(_)))
                .map(|(s, _)| (s.grant.statement().issuer, s.grant.statement().id, s.rev));
            for (customer, grant, rev) in committed.chain(newer_there) {
                v.mirror_mut().wrote(&customer, &grant, rev)?;
            }
            Ok(())
        })?;
        if !erased.is_empty() {
            handle.with_vault(|v| -> Result<(), MirrorError> {
                for (customer, grant) in &erased {
                    v.mirror_mut().erased(customer, grant)?;
                }
                Ok(())
            })?;
            tracing::info!(count = erased.len(), "mirror: rows erased, erasure receipts signed");
            handle.receipts_signed();
        }
    }
    // Consents past their expiry go from the database whichever node held them; after this
    // node's own writes, and a failure here fails nothing else (it is tried again later).
    if c.swept.is_none_or(|at| at.elapsed() >= SWEEP) {
        c.swept = Some(Instant::now());
        match c.db.erase_expired(node).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "mirror: values of expired consents erased"),
            Err(e) => tracing::warn!(error = %url.scrub(&e.to_string()), "mirror: erasing expired consents"),
        }
    }
    if !refused.is_empty() {
        // Said until the next round that writes without a refusal.
        let detail = format!(
            "writing to {}; the database refused the values of {} consent(s), kept without them: {}",
            url.target(),
            refused.len(),
            refused.join("; ")
        );
        handle.with_vault(|v| v.mirror_mut().set_status(true, &url.scrub(&detail)))?;
    } else if wrote {
        handle.with_vault(|v| v.mirror_mut().set_status(true, &format!("writing to {}", url.target())))?;
    }
    Ok(())
}

/// Whether the copy `share` holds is newer than the one in a row another node wrote: from the
/// same source, a later operation; over a row of unknown source (written before sources were kept), any.
fn newer(share: &vault_core::MirrorShare, row: Option<&(String, i64, i64)>) -> bool {
    let Some((device, epoch, op)) = row else { return true };
    let Some(mine) = &share.source else { return false };
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    mine.device.to_string() == *device && (as_i64(mine.epoch), as_i64(mine.op)) > (*epoch, *op)
}

/// Whether a row another node wrote holds the copy `share` holds, or a newer one of the same
/// source: this node may then let the customer go. (A row of another source is not ordered
/// with this copy: it may be older.)
fn as_new_there(share: &vault_core::MirrorShare, row: Option<&(String, i64, i64)>) -> bool {
    let (Some((device, epoch, op)), Some(mine)) = (row, &share.source) else { return false };
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    mine.device.to_string() == *device && (*epoch, *op) >= (as_i64(mine.epoch), as_i64(mine.op))
}

/// Beside the writing loop, on a connection of its own (a long write never delays it): says
/// this node is up every [`HEARTBEAT`], hands the node the nodes up, and hands it the
/// customers to call: all those with a live consent when the nodes up changed, those last
/// written by a node that is not up every [`READOPT`].
async fn watch_nodes(
    handle: VaultHandle,
    url: MirrorUrl,
    (owner, node): (String, String),
    writing: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut db: Option<Db> = None;
    let mut live: Vec<String> = Vec::new();
    let mut looked: Option<Instant> = None;
    loop {
        // At a fixed rate, whatever a beat took.
        let next = tokio::time::Instant::now() + HEARTBEAT;
        if db.as_ref().is_some_and(Db::is_closed) {
            db = None;
        }
        if db.is_none() {
            match Db::connect_watcher(&url, &owner).await {
                Ok(d) => db = Some(d),
                Err(e) => {
                    tracing::debug!(error = %url.scrub(&e.to_string()), "mirror: cannot say this node is up")
                }
            }
        }
        if let Some(d) = &db
            && writing.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = beat(&handle, d, &node, &mut live, &mut looked).await
        {
            tracing::debug!(error = %url.scrub(&e.to_string()), "mirror: cannot say this node is up");
            db = None;
        }
        tokio::time::sleep_until(next).await;
    }
}

async fn beat(
    handle: &VaultHandle,
    db: &Db,
    node: &str,
    live: &mut Vec<String>,
    looked: &mut Option<Instant>,
) -> Result<(), MirrorError> {
    let heard = db.heartbeat(node).await?;
    // The identity's active devices among them (see VaultHandle::set_live_nodes).
    let mut now: Vec<String> = handle
        .set_live_nodes(heard.iter().filter_map(|d| d.parse().ok()).collect())
        .iter()
        .map(ToString::to_string)
        .collect();
    now.sort();
    let changed = now != *live;
    if changed || looked.is_none_or(|at| at.elapsed() >= READOPT) {
        if changed {
            tracing::info!(nodes = now.len(), "mirror: the nodes up changed");
        }
        let customers = db.live_customers(if changed { None } else { Some(&now) }).await?;
        let customers =
            customers.into_iter().filter_map(|(c, t)| Some((c.parse().ok()?, t.parse().ok()?))).collect();
        let n = handle.adopt(customers);
        if n > 0 {
            tracing::info!(customers = n, "calling the customers this node serves now");
        }
        *looked = Some(Instant::now());
    }
    *live = now;
    Ok(())
}

fn key(e: &MirrorEntry) -> (String, String) {
    (e.customer.to_string(), e.grant.to_string())
}
