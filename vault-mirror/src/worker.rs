//! The mirror's loop beside the node: on every change of the vault (and every few seconds
//! regardless), write what changed; after a withdrawn share's rows are committed
//! gone, have the vault sign its erasure receipt. A failure drops the connection, records the
//! problem for `vault shared`, and retries with backoff; the node keeps serving meanwhile.

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinHandle;
use vault_core::{MirrorEntry, ShareStatus, Vault};
use vault_sync::VaultHandle;

use crate::db::{Db, Written};
use crate::{MirrorError, MirrorUrl};

/// How long the loop waits for a change before looking again anyway (a change made by another
/// process that the node's watcher has not reported yet).
const TICK: Duration = Duration::from_secs(5);
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

/// The owner the mirror's tables record: this vault's identity and device (each device of an
/// identity receives shares on its own, so each needs a database of its own).
pub fn owner(vault: &Vault) -> String {
    format!("{}/{}", vault.identity(), vault.device_key().public())
}

/// Connects, prepares the tables for vault `owner` (see [`owner`]) and says how many consents
/// they hold: what `vault mirror set` checks before attaching. Fails while a node writes there.
pub async fn check(url: &MirrorUrl, owner: &str) -> Result<u64, MirrorError> {
    let db = Db::connect(url, owner, true).await?;
    Ok(db.written().await.map_err(|e| e.scrubbed(url))?.len() as u64)
}

/// Removes every row the mirror wrote and marks the tables detached (a node still writing stops),
/// so that the vault can detach the mirror with nothing left behind. Returns how many consents
/// were removed.
pub async fn detach(url: &MirrorUrl, owner: &str) -> Result<u64, MirrorError> {
    let mut db = Db::connect(url, owner, true).await?;
    db.remove_all().await.map_err(|e| e.scrubbed(url))
}

async fn run(handle: VaultHandle, url: MirrorUrl) {
    let mut changes = handle.changes();
    let owner = handle.with_vault(|v| owner(v));
    let mut conn: Option<(Db, Written)> = None;
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
        match round(&handle, &url, &owner, &mut conn).await {
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
/// not hold, and confirm the erasures committed.
async fn round(
    handle: &VaultHandle,
    url: &MirrorUrl,
    owner: &str,
    conn: &mut Option<(Db, Written)>,
) -> Result<(), MirrorError> {
    if conn.as_ref().is_some_and(|(db, _)| db.is_closed()) {
        *conn = None;
    }
    // Only what changed since the last round, unless (re)connecting: then every share, to
    // compare with what the database holds. A round that fails drops the connection, so what
    // it was given is looked at again on the next one.
    let entries = handle.with_vault(|v| v.mirror().changes(conn.is_none()))?;
    if conn.is_none() {
        let mut db = Db::connect(url, owner, false).await?;
        // Rows of shares this vault no longer has (a restore, a lost write) go first.
        let keep: HashSet<(String, String)> = entries.iter().map(key).collect();
        let removed = db.remove_except(&keep).await?;
        if removed > 0 {
            tracing::info!(removed, "mirror: removed the rows of shares this vault no longer has");
        }
        let written = db.written().await?;
        handle.with_vault(|v| {
            v.mirror_mut().reconciled();
            v.mirror_mut().set_status(true, &format!("writing to {}", url.target()))
        })?;
        *conn = Some((db, written));
    }
    let (db, written) = conn.as_mut().expect("connected above");
    let todo: Vec<&MirrorEntry> = entries
        .iter()
        .filter(|e| e.erasure_pending || written.get(&key(e)) != Some(&(e.rev, e.customer_name.clone())))
        .collect();
    // Withdrawals first, in transactions of their own: an erasure never waits behind an import.
    let (withdrawals, imports): (Vec<&MirrorEntry>, Vec<&MirrorEntry>) =
        todo.into_iter().partition(|e| e.erasure_pending);
    let wrote = !withdrawals.is_empty() || !imports.is_empty();
    let mut refused = Vec::new();
    for chunk in withdrawals.chunks(BATCH).chain(imports.chunks(BATCH)) {
        let shares = handle.with_vault(|v: &mut Vault| {
            chunk
                .iter()
                .filter_map(|e| v.mirror_mut().share(&e.customer, &e.grant).transpose())
                .collect::<Result<Vec<_>, _>>()
        })?;
        let outcomes = db.write(&shares).await?;
        // Committed: the rows of withdrawn shares are gone, their receipts can be signed.
        let mut erased = Vec::new();
        for (share, outcome) in shares.iter().zip(outcomes) {
            let g = share.grant.statement();
            if let Some(why) = outcome {
                refused.push(format!("grant {} of {}: {why}", g.id, g.issuer));
            }
            written
                .insert((g.issuer.to_string(), g.id.to_string()), (share.rev, share.customer_name.clone()));
            if share.erasure_pending && share.status != ShareStatus::Live {
                erased.push((g.issuer, g.id));
            }
        }
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

fn key(e: &MirrorEntry) -> (String, String) {
    (e.customer.to_string(), e.grant.to_string())
}
