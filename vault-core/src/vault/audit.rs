//! [`AccessLog`]: every grant, revocation, expiry, erasure receipt, request and sync served,
//! sealed and appended in the same transaction as the event it records. Owns the sealed table
//! `audit` (customer state: the customer's record of who got what).

use serde::{Deserialize, Serialize};

use std::ops::Deref;

use super::Vault;
use crate::identity::{DeviceId, IdentityId};
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::store::sealed::Key;

use crate::store::sealed::AUDIT as TABLE;
use crate::store::typed::TypedTable;

/// The access log, one row per event, numbered in order.
const ROWS: TypedTable<AuditEvent> = TypedTable::new(TABLE);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditKind {
    /// This vault issued a grant.
    GrantIssued,
    /// This vault revoked a grant.
    GrantRevoked,
    /// A grant of this vault passed its expiry.
    GrantExpired,
    /// A grantee confirmed it erased its copy.
    ErasureReceipt,
    /// Projection data was served to a grantee.
    SyncServed,
    /// A grantee tried to change a read-only copy; refused.
    ChangeRefused,
    /// A peer was refused (no valid certificate, blocked, no grant).
    PeerRefused,
    /// This vault received a share from someone.
    ShareReceived,
    /// This vault erased a share it had received (revoked or expired).
    ShareErased,
    /// This vault asked someone for access.
    RequestSent,
    /// Someone asked this vault for access.
    RequestReceived,
    /// A delivered request was not accepted (blocked, misaddressed, too many).
    RequestRefused,
    /// This vault approved a request (with the grant it issued).
    RequestApproved,
    /// This vault denied a request.
    RequestDenied,
    /// This vault learned the answer to one of its requests.
    RequestAnswered,
    /// This vault (a seller) sent a breach notice.
    BreachNotified,
    /// A seller told this vault its data may have been breached.
    BreachNotice,
    /// A device's copy of the sharing state forked (a vault file restored from an older copy,
    /// or copied): the state was logged again under a fresh origin.
    SharingForked,
    /// This customer stated an intention (under a pseudonym).
    IntentionStated,
    /// An intention of this customer was delivered to a seller.
    IntentionSent,
    /// This vault (a seller) received an intention from a pseudonym.
    IntentionReceived,
    /// An intention was withdrawn (by this customer, or by its customer for a seller).
    IntentionWithdrawn,
    /// This vault (a seller) made an offer to an intention.
    OfferMade,
    /// This customer fetched an offer for one of its intentions.
    OfferReceived,
    /// An offer was accepted: this customer told the seller who it is, or (a seller) learned who.
    OfferAccepted,
}

/// One line of the access log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: AuditKind,
    /// The other party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IdentityId>,
    /// The grant concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantId>,
    /// The fields concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Bytes sent, for syncs served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Free detail (never a user value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The device of this identity it happened on, when not this one (events another device
    /// logged arrive with the sharing state, see replication.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
}

impl AuditEvent {
    /// An event of `kind` at `at`.
    pub fn new(at: i64, kind: AuditKind) -> Self {
        Self {
            at,
            kind,
            peer: None,
            grant: None,
            fields: Vec::new(),
            bytes: None,
            detail: None,
            device: None,
        }
    }
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events with this peer.
    pub peer: Option<IdentityId>,
    /// Only events about this grant.
    pub grant: Option<GrantId>,
    /// Only events at or after (unix seconds).
    pub since: Option<i64>,
}

/// The access log of a vault: `vault.access_log()` to read, `vault.access_log_mut()` to append
/// an event in a transaction of its own.
#[derive(Debug)]
pub struct AccessLog<V> {
    vault: V,
}

impl<V: Deref<Target = Vault>> AccessLog<V> {
    pub(super) fn new(vault: V) -> Self {
        Self { vault }
    }

    /// Appends an event; call inside the transaction of the event itself.
    pub(crate) fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let seq = self.vault.store.next_seq(&TABLE)?;
        ROWS.put(&self.vault.store, Key::Seq(seq), event)
    }

    /// The access log, oldest first.
    pub fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out = Vec::new();
        for (_, event) in ROWS.list(&self.vault.store)? {
            if filter.peer.is_some_and(|p| event.peer != Some(p))
                || filter.grant.is_some_and(|g| event.grant != Some(g))
                || filter.since.is_some_and(|s| event.at < s)
            {
                continue;
            }
            out.push(event);
        }
        Ok(out)
    }
}

impl<V: Deref<Target = Vault>> AccessLog<V> {
    /// The position of the last event (0: none): what [`AccessLog::after`] continues from.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self.vault.store.next_seq(&TABLE)? - 1)
    }

    /// At most `limit` events after position `seq`, oldest first, with their positions: a
    /// running node's lines as things happen.
    pub fn after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        ROWS.list_after(&self.vault.store, seq, limit)
    }
}

impl AccessLog<&mut Vault> {
    /// Appends an event in its own transaction (for events that change nothing else).
    pub fn record(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.vault.write(|v| v.access_log().append(event))
    }
}
