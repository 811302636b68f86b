//! The watcher: notices commits made to the vault file by other processes (a CLI `grant`,
//! `revoke` or edit while `vault serve` runs), catches up, and wakes every session.
//!
//! Detection reads SQLite's `PRAGMA data_version`, which changes exactly when *another*
//! connection committed; this connection's own commits (expiry, erasure) never change it.
//! So the version is read once per step, and nothing read after it is ever discarded: a
//! commit that lands while this step runs is seen by the next one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vault_core::Vault;

use super::NodeTasks;

/// Polls the vault file for commits by other processes; on a change, catches up, updates the
/// projections, logs expiries, and wakes every session.
pub(super) async fn watch_vault(shared: Arc<NodeTasks>, poll: Duration) {
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry_check = Instant::now();
    loop {
        ticker.tick().await;
        let expiry_due = last_expiry_check.elapsed() >= Duration::from_secs(1);
        if expiry_due {
            last_expiry_check = Instant::now();
        }
        let wake = watch_step(&mut shared.vault(), expiry_due, |_| {});
        if wake.receipts {
            // A copy that expired here was erased and its receipt signed: live sessions send it
            // now (the issuer may not have ended the grant yet, by its own clock).
            shared.receipts.send_modify(|n| *n += 1);
        }
        if wake.changed {
            shared.changed();
        }
    }
}

/// One step of the watcher: true when the sessions must be woken (another process committed,
/// or a grant expired). `after_check` runs right after the change check (a seam for tests: a
/// commit by another process can land there).
pub(super) fn watch_step(vault: &mut Vault, expiry_due: bool, after_check: impl FnOnce(&mut Vault)) -> Wake {
    let mut changed = match vault.changed_elsewhere() {
        Ok(true) => {
            if let Err(e) = vault.refresh() {
                // A damaged or tampered set of rows stops all serving (see `Vault::refresh`).
                let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
                tracing::error!(error = %e, %cause, "catching up with the vault file failed");
            }
            if let Err(e) = vault.projections_mut().update(None) {
                tracing::warn!(error = %e, "updating projections failed");
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the vault file");
            false
        }
    };
    after_check(vault);
    if expiry_due {
        changed |= vault.grants_mut().expire().map(|e| !e.is_empty()).unwrap_or(false);
        // An age (`over(N)`) turns on a date, not on an edit: recomputed once the date changes.
        changed |= match vault.projections_mut().update_dated() {
            Ok(updated) => !updated.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, "updating dated projections failed");
                false
            }
        };
        // Watchers (the database mirror among them) learn of an erasure here as of any change.
        let erased = vault.held_mut().erase_expired().unwrap_or(false);
        return Wake { changed: changed || erased, receipts: erased };
    }
    Wake { changed, receipts: false }
}

/// What one watcher step wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    /// The sessions: something changed (here, in another process, or by the clock).
    pub(super) changed: bool,
    /// The sessions with issuers: copies expired here were erased and their receipts signed.
    pub(super) receipts: bool,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use vault_core::{Identity, KdfParams, NewGrant, Passphrase, Vault};

    use super::watch_step;

    #[test]
    fn an_age_turns_on_its_date_without_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        // 2027-01-15; the birthday makes 18 on 2027-01-20, counted from 2027-02-01.
        let clock = Arc::new(AtomicI64::new(1_800_000_000));
        let c = clock.clone();
        let mut node = Vault::at(dir.path())
            .kdf(KdfParams::INSECURE_FOR_TESTS)
            .clock(Arc::new(move || c.load(Ordering::SeqCst)))
            .create(&Passphrase::new("pw"))
            .unwrap();
        node.records_mut().set_profile("birthday", "2009-01-20").unwrap();
        let grant = node
            .grants_mut()
            .issue(NewGrant {
                audience: Identity::generate().public(),
                fields: vec!["profile.birthday:over(18)".parse().unwrap()],
                filter: None,
                purpose: "age check".into(),
                expires_at: None,
                prices: false,
            })
            .unwrap();
        let id = grant.statement().id;
        let _ = watch_step(&mut node, true, |_| {});
        assert!(!watch_step(&mut node, true, |_| {}).changed, "nothing changed yet");
        clock.store(1_800_000_000 + 5 * 86_400, Ordering::SeqCst);
        assert!(!watch_step(&mut node, true, |_| {}).changed, "the birthday: ages are counted by the month");
        // 2027-02-01, 12:00 UTC: February everywhere.
        clock.store(1_800_000_000 + 17 * 86_400 + 4 * 3600, Ordering::SeqCst);
        assert!(watch_step(&mut node, true, |_| {}).changed, "the sessions are woken as the month turns");
        let values = node.projections_mut().values(&id).unwrap().unwrap();
        assert_eq!(values["profile"]["birthday:over(18)"], serde_json::json!(true));
        assert!(!watch_step(&mut node, true, |_| {}).changed, "once");
    }

    #[test]
    fn a_commit_by_another_process_during_a_step_is_seen_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut node =
            Vault::at(dir.path()).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw")).unwrap();
        let mut cli = Vault::at(dir.path()).unlock(&Passphrase::new("pw")).unwrap();
        let _ = watch_step(&mut node, true, |_| {}).changed;
        assert!(!watch_step(&mut node, true, |_| {}).changed, "nothing changed yet");
        // Another process commits inside the window, while the step handles expiry.
        let first =
            watch_step(&mut node, true, |_| cli.records_mut().set_profile("name", "Ada").unwrap()).changed;
        let second = watch_step(&mut node, true, |_| {}).changed;
        assert!(first || second, "the other process's commit was never detected");
        assert_eq!(node.records().profile_field("name").unwrap(), Some("Ada".into()));
        // The node's own writes are not mistaken for another process's.
        node.records_mut().set_preference("diet", "vegan").unwrap();
        assert!(!watch_step(&mut node, true, |_| {}).changed);
    }
}
