//! What serving streams sent, logged durably in groups.
//!
//! Every sync message that carries data is recorded before it leaves: an access-log entry
//! (who, which grant, which fields, how many bytes) and the stream's sync state. Alone, a
//! library caller gets one durable transaction per message ([`Serving::log_served`] writes at
//! once). A node serving a thousand grantees at once asks for group commit instead
//! ([`Serving::defer_served_log`]): each message's record waits in memory, one transaction
//! writes every record waiting ([`Serving::flush_served`]), and the node sends each message only
//! once its record is durable ([`Serving::served_outcome`]). Nothing leaves unlogged, so there
//! is no loss window: a crash before the commit loses records of messages that were never
//! sent. A commit that fails drops its records, and their messages are never sent either.

use super::serving::Serving;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use crate::identity::DeviceId;
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::audit::AuditEvent;

/// Failed commits remembered, at most (a stream waits for its record a few milliseconds).
const FAILED_KEPT: usize = 64;

/// What became of a served message's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Logged {
    /// On disk: the message may be sent.
    Durable,
    /// Waiting for the next commit.
    Pending,
    /// Its commit failed: the message must not be sent.
    Failed,
}

/// One served message's record, waiting for its commit.
struct Entry {
    grant: GrantId,
    device: DeviceId,
    epoch: u64,
    state: Vec<u8>,
    event: AuditEvent,
}

/// Records waiting for a commit, numbered from 1.
#[derive(Default)]
pub(crate) struct ServedLog {
    deferred: bool,
    pending: Vec<Entry>,
    /// Every record numbered up to this one is settled (durable or failed).
    settled: u64,
    /// Ranges of records whose commit failed, newest last.
    failed: VecDeque<(u64, u64)>,
    /// Records up to this one fell out of `failed` unanswered: they count as failed.
    forgotten: u64,
}

impl ServedLog {
    fn next(&self) -> u64 {
        self.settled + self.pending.len() as u64 + 1
    }
}

impl<V: Deref<Target = Vault>> Serving<V> {
    /// The number of the newest record still waiting for its commit, if any.
    pub fn served_unlogged(&self) -> Option<u64> {
        (!self.vault.issued.served_log.pending.is_empty()).then(|| self.vault.issued.served_log.next() - 1)
    }

    /// Every record numbered up to this one is settled: durable, or dropped by a failed commit.
    pub fn served_settled(&self) -> u64 {
        self.vault.issued.served_log.settled
    }

    /// What became of record `seq`.
    pub fn served_outcome(&self, seq: u64) -> Logged {
        let log = &self.vault.issued.served_log;
        if seq > log.settled {
            Logged::Pending
        } else if seq <= log.forgotten || log.failed.iter().any(|(lo, hi)| (*lo..=*hi).contains(&seq)) {
            Logged::Failed
        } else {
            Logged::Durable
        }
    }
}

impl<V: DerefMut<Target = Vault>> Serving<V> {
    /// Group commit for served messages (see the module docs): records wait for
    /// [`Serving::flush_served`], and the caller sends a message once [`Serving::served_outcome`]
    /// says its record is durable. Off by default: each record is then written at once.
    pub fn defer_served_log(&mut self, on: bool) {
        self.vault.issued.served_log.deferred = on;
    }

    /// Records a served message (inside no transaction): written at once, or queued for the
    /// next group commit. Returns the record's number when queued.
    pub(super) fn log_served(
        &mut self,
        grant: GrantId,
        device: DeviceId,
        epoch: u64,
        state: Vec<u8>,
        event: AuditEvent,
    ) -> Result<Option<u64>, StoreError> {
        if !self.vault.issued.served_log.deferred {
            self.vault.write(|v| {
                v.serving_mut().store_serve_state(&grant, &device, epoch, state)?;
                v.access_log().append(&event)
            })?;
            return Ok(None);
        }
        let seq = self.vault.issued.served_log.next();
        self.vault.issued.served_log.pending.push(Entry { grant, device, epoch, state, event });
        Ok(Some(seq))
    }

    /// Writes every waiting record in one transaction; returns how many. On failure they are
    /// dropped (their messages must not be sent) and the error is returned.
    pub fn flush_served(&mut self) -> Result<usize, StoreError> {
        let entries = std::mem::take(&mut self.vault.issued.served_log.pending);
        if entries.is_empty() {
            return Ok(0);
        }
        let (lo, hi) = (
            self.vault.issued.served_log.settled + 1,
            self.vault.issued.served_log.settled + entries.len() as u64,
        );
        let count = entries.len();
        // Settled as failed before the write, and cleared once it committed: whatever happens
        // in between (an error, a panic), these records are never taken for durable.
        self.vault.issued.served_log.settled = hi;
        self.vault.issued.served_log.failed.push_back((lo, hi));
        if self.vault.issued.served_log.failed.len() > FAILED_KEPT
            && let Some((_, old)) = self.vault.issued.served_log.failed.pop_front()
        {
            self.vault.issued.served_log.forgotten = self.vault.issued.served_log.forgotten.max(old);
        }
        self.vault.write(|v| {
            for e in entries {
                // A grant that ended before this commit keeps no states (they were forgotten
                // with it), and its message is never sent: the stream waits for this commit,
                // then checks the grant, which cannot come back. Logging it as served would
                // put a served message after the revocation in the access log.
                if !v.grants().get(&e.grant)?.is_some_and(|g| g.is_live()) {
                    continue;
                }
                v.serving_mut().store_serve_state(&e.grant, &e.device, e.epoch, e.state)?;
                v.access_log().append(&e.event)?;
            }
            Ok::<_, StoreError>(())
        })?;
        self.vault.issued.served_log.failed.retain(|range| *range != (lo, hi));
        Ok(count)
    }
}
