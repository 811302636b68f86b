//! The mirror's loop beside the node: on every change of the vault (and every second, for
//! erasures still pending), write what changed; after a withdrawn share's rows are committed
//! gone, have the vault sign its erasure receipt. A failure drops the connection, records the
//! problem for `vault shared`, and retries with backoff; the node keeps serving meanwhile.

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinHandle;
use vault_core::{MirrorEntry, ShareStatus, Vault};
use vault_sync::VaultHandle;

use crate::db::{Db, Written};
use crate::{MirrorError, MirrorUrl};

/// How often the loop looks again without being woken (erasures pending, expiries).
const TICK: Duration = Duration::from_secs(1);
/// The longest wait between attempts to reach the database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Shares written per transaction.
const BATCH: usize = 256;

/// A running mirror.
#[derive(Debug)]
pub struct Mirror {
    task: JoinHandle<()>,
}

impl Mirror {
    /// Starts mirroring the vault behind `handle` into `url`.
    pub fn spawn(handle: VaultHandle, url: MirrorUrl) -> Mirror {
        Mirror { task: tokio::spawn(run(handle, url)) }
    }

    /// Stops it (a write in flight is rolled back by the server: nothing half-written stays).
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Connects, prepares the tables for `vault` and says where they are: what `vault mirror set`
/// checks before attaching.
pub async fn check(url: &MirrorUrl, owner: &str) -> Result<u64, MirrorError> {
    let db = Db::connect(url, owner).await?;
    Ok(db.written().await?.len() as u64)
}

/// Removes every row the mirror wrote, so that it can be detached with nothing left behind.
/// Returns how many consents were removed.
pub async fn detach(url: &MirrorUrl, owner: &str) -> Result<u64, MirrorError> {
    let mut db = Db::connect(url, owner).await?;
    db.remove_all().await
}

async fn run(handle: VaultHandle, url: MirrorUrl) {
    let mut changes = handle.changes();
    let owner = handle.with_vault(|v| v.identity().to_string());
    let mut conn: Option<(Db, Written)> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        match round(&handle, &url, &owner, &mut conn).await {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                let _ = tokio::time::timeout(TICK, changes.changed()).await;
            }
            Err(e) => {
                conn = None;
                let text = url.scrub(&e.to_string());
                tracing::warn!(error = %text, "mirror");
                let _ = handle.with_vault(|v| v.set_mirror_status(false, &text));
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
    let entries = handle.with_vault(|v| v.mirror_entries())?;
    if conn.is_none() {
        let mut db = Db::connect(url, owner).await?;
        // Rows of shares this vault no longer has (a restore, a lost write) go first.
        let keep: HashSet<(String, String)> = entries.iter().map(key).collect();
        let removed = db.remove_except(&keep).await?;
        if removed > 0 {
            tracing::info!(removed, "mirror: removed the rows of shares this vault no longer has");
        }
        let written = db.written().await?;
        handle.with_vault(|v| v.set_mirror_status(true, &format!("writing to {}", url.target())))?;
        *conn = Some((db, written));
    }
    let (db, written) = conn.as_mut().expect("connected above");
    let todo: Vec<&MirrorEntry> = entries
        .iter()
        .filter(|e| e.erasure_pending || written.get(&key(e)) != Some(&(e.rev, e.customer_name.clone())))
        .collect();
    for chunk in todo.chunks(BATCH) {
        let shares = handle.with_vault(|v: &mut Vault| {
            chunk
                .iter()
                .filter_map(|e| v.mirror_share(&e.customer, &e.grant).transpose())
                .collect::<Result<Vec<_>, _>>()
        })?;
        db.write(&shares).await?;
        // Committed: the rows of withdrawn shares are gone, their receipts can be signed.
        let mut erased = Vec::new();
        for share in &shares {
            let g = share.grant.statement();
            written
                .insert((g.issuer.to_string(), g.id.to_string()), (share.rev, share.customer_name.clone()));
            if share.erasure_pending && share.status != ShareStatus::Live {
                erased.push((g.issuer, g.id));
            }
        }
        if !erased.is_empty() {
            handle.with_vault(|v| -> Result<(), MirrorError> {
                for (customer, grant) in &erased {
                    v.mirror_erased(customer, grant)?;
                }
                Ok(())
            })?;
            tracing::info!(count = erased.len(), "mirror: rows erased, erasure receipts signed");
            handle.receipts_signed();
        }
    }
    Ok(())
}

fn key(e: &MirrorEntry) -> (String, String) {
    (e.customer.to_string(), e.grant.to_string())
}
