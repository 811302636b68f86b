//! Finding and repairing a fork of the shared log (see origin.rs for why one happens): which
//! origin this device writes under now, which origins it knows forked, what another device's
//! `Have` makes suspect, and the repair. A fork is only ever taken on proof: two different
//! entries under one (origin, number), or an entry that follows another than the one held,
//! each signed by the origin's own device key. Another device's word alone (a digest) makes
//! a suspect, whose entry is asked for again.

use super::Replication;
use data_encoding::BASE64;
use std::ops::{Deref, DerefMut};

use super::origin::{MAX_FORKED, Origin, fresh_incarnation};
use super::{Entry, ReplicationError, SharedHave};
use crate::store::StoreError;
use crate::store::sealed::{REQUESTS_IN, REQUESTS_OUT};
use crate::vault::Vault;
use crate::vault::audit::{AuditEvent, AuditKind};
use crate::vault::settings::Setting;

/// Most suspects kept at once.
const MAX_SUSPECTS: usize = 64;

impl<V: Deref<Target = Vault>> Replication<V> {
    /// The origin this device logs its entries under now.
    pub(in crate::vault) fn current_origin(&self) -> Result<Origin, StoreError> {
        let incarnation = self
            .vault
            .settings()
            .get(Setting::SharedLogIncarnation)?
            .and_then(|b| serde_json::from_slice::<u64>(&b).ok())
            .unwrap_or(0);
        Ok(Origin { device: self.vault.device.public(), incarnation })
    }

    /// The origins known to have forked: their entries are still taken where they follow the
    /// chain held here, and logged again under this device's origin.
    pub(in crate::vault) fn forked_origins(&self) -> Result<Vec<Origin>, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::SharedLogForked)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// Origins another device's digest disagreed with, and the number it named.
    pub(in crate::vault) fn suspects(&self) -> Result<Vec<(Origin, i64)>, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::SharedLogSuspects)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// The entry in question came back: proof of a fork or not, the suspicion is settled.
    pub(in crate::vault) fn clear_suspect(&self, origin: &Origin) -> Result<(), StoreError> {
        let mut suspects = self.suspects()?;
        let before = suspects.len();
        suspects.retain(|(o, _)| o != origin);
        if suspects.len() != before {
            self.vault
                .settings()
                .put(Setting::SharedLogSuspects, &serde_json::to_vec(&suspects).expect("serializes"))?;
        }
        Ok(())
    }

    /// Records that `forks` forked (call inside a write). When this device's own current
    /// origin is among them, it continues under a fresh incarnation. Either way, every
    /// shared row's current state is logged again under this device's origin, so that what
    /// this device learned from a forked origin reaches the devices on its other branch.
    /// Returns whether anything was new.
    pub(in crate::vault) fn note_forks(&self, forks: &[Origin]) -> Result<bool, StoreError> {
        let mut known = self.forked_origins()?;
        let mut new: Vec<Origin> = forks.iter().filter(|o| !known.contains(o)).copied().collect();
        new.dedup();
        // Every fork here was proven by two entries its origin's own key signed; past the
        // bound (far beyond what restores and copies make), more are not recorded nor repaired.
        new.truncate(MAX_FORKED.saturating_sub(known.len()));
        if new.is_empty() {
            return Ok(false);
        }
        let current = self.current_origin()?;
        known.extend(new.iter().copied());
        self.vault
            .settings()
            .put(Setting::SharedLogForked, &serde_json::to_vec(&known).expect("serializes"))?;
        let detail = if new.contains(&current) {
            let next = fresh_incarnation();
            self.vault
                .settings()
                .put(Setting::SharedLogIncarnation, &serde_json::to_vec(&next).expect("serializes"))?;
            tracing::warn!(
                "this device's sharing state was restored from an older copy (or the file was copied): \
                 it goes on under a fresh origin, and logs its sharing state again"
            );
            "this device's vault file was restored from an older copy, or copied: its sharing \
             state goes on under a fresh origin and was sent to your other devices again"
        } else {
            tracing::warn!(
                "another device's sharing state forked (restored from an older copy?): this device \
                 logs its sharing state again"
            );
            "another device of yours was restored from an older copy, or copied: this device sent \
             its sharing state to your devices again"
        };
        self.vault.access_log().append(&AuditEvent {
            detail: Some(detail.into()),
            ..AuditEvent::new(self.vault.now(), AuditKind::SharingForked)
        })?;
        self.relog_shared_state()?;
        Ok(true)
    }

    /// Logs every shared row's current state again under this device's current origin
    /// (merging is idempotent: devices that hold it already change nothing).
    fn relog_shared_state(&self) -> Result<(), StoreError> {
        for entry in self.vault.grants().grant_entries()? {
            self.log_shared(&entry)?;
        }
        for entry in self.contact_entries()?.into_iter().chain(self.vault.notices().notice_entries()?) {
            self.log_shared(&entry)?;
        }
        for (table, incoming) in [(REQUESTS_IN, true), (REQUESTS_OUT, false)] {
            for (id, record) in crate::vault::requests::raw_list(&self.vault, table)? {
                self.log_shared(&Entry::Request { incoming, id, record })?;
            }
        }
        Ok(())
    }
}

impl<V: DerefMut<Target = Vault>> Replication<V> {
    /// Reads what another device says it holds, before sending it anything. An origin whose
    /// digest there differs from this device's at the same number may have forked; the other
    /// device's word is not proof, so the origin becomes a suspect: this device's next `Have`
    /// asks for that entry again, and what comes back (signed by the origin's own key) proves
    /// a fork or clears the suspicion (see `shared_receive`). Returns whether this device must
    /// say again what it holds.
    pub fn take_have(&mut self, theirs: &SharedHave) -> Result<bool, ReplicationError> {
        let maxima = self.log_maxima()?;
        let mut suspects = self.suspects()?;
        let before = suspects.len();
        for (origin, seq) in &theirs.log {
            let held = maxima.iter().find(|(o, _)| o == origin).map_or(0, |(_, s)| *s);
            if *seq > held || *seq <= 0 || suspects.iter().any(|(o, _)| o == origin) {
                // Beyond what is held here: its entries, when they come, are checked against
                // the chain as they are taken.
                continue;
            }
            let Some((_, digest)) = theirs.digests.iter().find(|(o, _)| o == origin) else { continue };
            let Some(mine) = self.digest_at(origin, *seq)? else { continue };
            if BASE64.decode(digest.as_bytes()).ok().as_deref() != Some(&mine[..])
                && suspects.len() < MAX_SUSPECTS
            {
                suspects.push((*origin, *seq));
            }
        }
        if suspects.len() == before {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(&suspects).expect("serializes");
        self.vault.write(|v| v.settings().put(Setting::SharedLogSuspects, &bytes))?;
        Ok(true)
    }
}
