//! Finding and repairing a fork of the shared log (see origin.rs for why one happens): which
//! origin this device writes under now, which origins it knows forked, what another device's
//! `Have` reveals, and the repair.

use data_encoding::BASE64;

use super::origin::{MAX_FORKED, Origin, fresh_incarnation};
use super::{Entry, ReplicationError, SharedHave};
use crate::store::StoreError;
use crate::store::sealed::{REQUESTS_IN, REQUESTS_OUT};
use crate::vault::Vault;
use crate::vault::audit::{AuditEvent, AuditKind};

/// Node value: this device's current incarnation (absent: 0).
const INCARNATION: &str = "shared-log-incarnation";
/// Node value: the origins known to have forked.
const FORKED: &str = "shared-log-forked";

impl Vault {
    /// The origin this device logs its entries under now.
    pub(in crate::vault) fn current_origin(&self) -> Result<Origin, StoreError> {
        let incarnation =
            self.node_value(INCARNATION)?.and_then(|b| serde_json::from_slice::<u64>(&b).ok()).unwrap_or(0);
        Ok(Origin { device: self.device.public(), incarnation })
    }

    /// The origins known to have forked: none of their entries is taken or sent any more.
    pub(in crate::vault) fn forked_origins(&self) -> Result<Vec<Origin>, StoreError> {
        Ok(self.node_value(FORKED)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
    }

    /// Reads what another device says it holds, before sending it anything: an origin whose
    /// digest at a number differs from this device's at that number forked, and so did each
    /// origin the other device knows forked. Returns whether this changed anything here
    /// (a fork repaired: the sharing state was logged again).
    pub fn take_shared_have(&mut self, theirs: &SharedHave) -> Result<bool, ReplicationError> {
        let known = self.forked_origins()?;
        let maxima = self.log_maxima()?;
        let mut forks: Vec<Origin> = Vec::new();
        for (origin, seq) in &theirs.log {
            let held = maxima.iter().find(|(o, _)| o == origin).map_or(0, |(_, s)| *s);
            if known.contains(origin) || *seq > held || *seq <= 0 {
                // Beyond what is held here: its entries, when they come, are checked against
                // the chain as they are taken.
                continue;
            }
            let Some((_, digest)) = theirs.digests.iter().find(|(o, _)| o == origin) else { continue };
            let Some(mine) = self.digest_at(origin, *seq)? else { continue };
            if BASE64.decode(digest.as_bytes()).ok().as_deref() != Some(&mine[..]) {
                forks.push(*origin);
            }
        }
        // Another device's word that an origin forked counts for origins this device holds
        // entries of, and for its own current one (it may not have seen the other branch):
        // one that names origins nobody holds makes nothing here.
        let current = self.current_origin()?;
        let held = |o: &Origin| *o == current || maxima.iter().any(|(m, _)| m == o);
        forks.extend(theirs.forked.iter().take(MAX_FORKED).filter(|o| !known.contains(o) && held(o)).copied());
        if forks.is_empty() {
            return Ok(false);
        }
        Ok(self.write(|v| v.note_forks(&forks))?)
    }

    /// Records that `forks` forked (call inside a write). When this device's own current
    /// origin is among them, it continues under a fresh incarnation. Either way, every
    /// shared row's current state is logged again under this device's origin, so that what
    /// this device learned from a forked origin reaches the devices on its other branch.
    /// Returns whether anything was new.
    pub(in crate::vault) fn note_forks(&self, forks: &[Origin]) -> Result<bool, StoreError> {
        let mut known = self.forked_origins()?;
        let new: Vec<Origin> = forks.iter().filter(|o| !known.contains(o)).copied().collect();
        if new.is_empty() {
            return Ok(false);
        }
        let current = self.current_origin()?;
        known.extend(new.iter().copied());
        known.sort();
        known.dedup();
        if known.len() > MAX_FORKED {
            // The oldest incarnations are the least likely to be seen again.
            known.drain(..known.len() - MAX_FORKED);
        }
        self.put_node_value(FORKED, &serde_json::to_vec(&known).expect("serializes"))?;
        let detail = if new.contains(&current) {
            let next = fresh_incarnation();
            self.put_node_value(INCARNATION, &serde_json::to_vec(&next).expect("serializes"))?;
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
        self.access_log().append(&AuditEvent {
            detail: Some(detail.into()),
            ..AuditEvent::new(self.now(), AuditKind::SharingForked)
        })?;
        self.relog_shared_state()?;
        Ok(true)
    }

    /// Logs every shared row's current state again under this device's current origin
    /// (merging is idempotent: devices that hold it already change nothing).
    fn relog_shared_state(&self) -> Result<(), StoreError> {
        for entry in self.grant_entries()? {
            self.log_shared(&entry)?;
        }
        for entry in self.contact_entries()?.into_iter().chain(self.notice_entries()?) {
            self.log_shared(&entry)?;
        }
        for (table, incoming) in [(REQUESTS_IN, true), (REQUESTS_OUT, false)] {
            for (id, record) in crate::vault::requests::raw_list(self, table)? {
                self.log_shared(&Entry::Request { incoming, id, record })?;
            }
        }
        Ok(())
    }
}
