//! Grants and their projections, on the issuer's side.
//!
//! A grant is stored sealed with its revocation and erasure receipt when they arrive. Its
//! projection is stored as sealed Automerge chunks; each chunk records the main-document heads
//! it reflects, so that whoever serves the projection brings it up to date by diffing the main
//! document from those heads ([`Projections::update`]). Plain edits therefore never pay
//! for projections; the serving node does, in proportion to the edit.
//!
//! Here: issued grants and their lifecycle (issue, revoke, expire). Beside it: `projections`
//! (keeping each grant's projection and its epochs), `serving` (what a serving stream asks of
//! the vault, and who holds which epoch), `served_log` (the group commit of what
//! was served), `lookup` (reading grants, cached), `audience` (what an audience is told and the
//! erasure receipts it sends back), `node` (the node's own settings).

use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};

use super::Vault;
use super::audit::{AuditEvent, AuditKind};
use crate::doc::DocError;
use crate::grant::{ErasureReceipt, Grant, Revocation, SignedGrant};
use crate::identity::{DeviceId, IdentityId};
use crate::path::derive::too_revealing;
use crate::path::{FieldPath, PathError, RecordFilter};
use crate::projection::Projection;
use crate::statement::{GrantId, Signed, StatementError};
use crate::store::StoreError;
use crate::store::sealed::Key;

mod audience;
mod lookup;
mod merge;
mod node;
mod projections;
mod served_log;
mod serving;
mod status;
#[cfg(test)]
mod tests;

#[cfg(test)]
use audience::MAX_CLOCK_SKEW;
pub(crate) use lookup::GrantCache;
pub(in crate::vault) use merge::GrantParts;
pub(crate) use projections::ProjectionCache;
use projections::ProjectionState;
pub use projections::Projections;
pub use served_log::Logged;
pub(crate) use served_log::ServedLog;
pub use serving::{ServeError, Serving};
pub(crate) use serving::{ServeStates, ServeSync};
use status::status_of;

use crate::store::sealed::GRANTS;
use crate::store::typed::TypedTable;

/// The grants issued, one row per grant under its id.
const ROWS: TypedTable<GrantRecord> = TypedTable::new(GRANTS);

/// What to grant.
#[derive(Clone, Debug)]
pub struct NewGrant {
    /// Who receives.
    pub audience: IdentityId,
    /// What they receive.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    pub filter: Option<RecordFilter>,
    /// Why (required).
    pub purpose: String,
    /// Unix seconds; none for no expiry.
    pub expires_at: Option<i64>,
    /// Whether purchase prices are included.
    pub prices: bool,
}

/// A grant could not be issued, revoked or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// A field path or filter is unknown.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The statement does not check out.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// No grant with this id.
    #[error("no grant with id {0}")]
    Unknown(String),
    /// The grant was already revoked.
    #[error("grant {0} is already revoked")]
    AlreadyRevoked(GrantId),
    /// The expiry is not in the future.
    #[error("the expiry must be in the future")]
    ExpiryInPast,
    /// With this grant its audience would have been given too many answers about one field
    /// (dates: `year` and `over(N)`; prices: bands), counting every grant it was ever given
    /// (what an ended grant told is still known): together they would narrow the value down.
    #[error(
        "the recipient would have been given {what} of \"{field}\", counting every grant it was ever given (ended ones too: what they told is still known)"
    )]
    TooRevealing {
        /// The source field.
        field: String,
        /// What there would be too many of, in words.
        what: &'static str,
    },
    /// A receipt for a grant of someone else, or from someone who is not the grantee.
    #[error("the erasure receipt does not match grant {0}")]
    ReceiptMismatch(GrantId),
    /// An erasure receipt for a grant that had not ended when the receipt was made.
    #[error("grant {0} had not ended when the erasure receipt was made")]
    StillLive(GrantId),
    /// The document is damaged.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// Catching up with changes made by another process failed.
    #[error("cannot catch up with the vault's latest changes")]
    CatchUp(#[source] Box<super::EditError>),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GrantError {
    /// A failure to catch up, keeping a storage failure as one.
    pub(super) fn catch_up(e: super::EditError) -> Self {
        match e {
            super::EditError::Store(s) => GrantError::Store(s),
            other => GrantError::CatchUp(Box::new(other)),
        }
    }
}

/// Where a grant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantStatus {
    /// Served to its audience.
    Active,
    /// Past its expiry: nothing more is served.
    Expired,
    /// Revoked: nothing more is served.
    Revoked,
    /// Issued by a device of this identity that was since removed: nothing more is served (a
    /// thief's grant must not outlive the device; re-issue it from a device you hold if you
    /// meant it). Peers refuse it too, once they learn the removal.
    Void,
}

/// A grant with its status.
#[derive(Clone, Debug)]
pub struct GrantInfo {
    /// The signed grant (the consent receipt).
    pub grant: SignedGrant,
    /// Its status now.
    pub status: GrantStatus,
    /// The revocation, when revoked.
    pub revocation: Option<Signed<Revocation>>,
    /// The grantee's erasure receipt, when it arrived (the first, of the first device).
    pub erasure: Option<Signed<ErasureReceipt>>,
    /// Every erasure receipt, one per device of the grantee that sent one.
    pub erasures: Vec<Signed<ErasureReceipt>>,
    /// The grantee's devices this identity's devices served (that may hold a copy).
    pub served: Vec<DeviceId>,
}

#[derive(Serialize, Deserialize)]
struct GrantRecord {
    signed: Vec<u8>,
    #[serde(default)]
    revocation: Option<Vec<u8>>,
    #[serde(default)]
    erasure: Option<Vec<u8>>,
    #[serde(default)]
    expiry_logged: bool,
    /// The document's heads on the device that issued it, as it issued it (hex): a device that
    /// learns of the grant from another builds and serves its projection only once its own
    /// document holds them, so that a value overwritten before the grant is never served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    heads: Vec<String>,
    /// Receipts of the grantee's other devices, after `erasure` (one per device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    erasures: Vec<Vec<u8>>,
    /// The grantee's devices served (by any device of this identity), at most
    /// [`MAX_SERVED_DEVICES`]: the devices whose erasure is awaited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    served: Vec<DeviceId>,
}

/// Most grantee devices a grant remembers having served.
pub(crate) const MAX_SERVED_DEVICES: usize = 16;

impl GrantInfo {
    /// True when the grant is served.
    pub fn is_live(&self) -> bool {
        self.status == GrantStatus::Active
    }

    /// The grantee's devices that confirmed their erasure (a receipt that names none stands for
    /// every device: it comes from a vault made before receipts named devices).
    pub fn erased_on(&self) -> Vec<DeviceId> {
        self.erasures.iter().filter_map(crate::grant::erased_on).collect()
    }

    /// True when the grantee confirmed its erasure on every device it was served on (and at
    /// least once).
    pub fn erasure_complete(&self) -> bool {
        if self.erasures.is_empty() {
            return false;
        }
        if self.erasures.iter().any(|e| e.statement().device.is_none() && e.signed_by().is_none()) {
            return true;
        }
        let on = self.erased_on();
        self.served.iter().all(|d| on.contains(d))
    }
}

/// What the issuer's roles keep in memory (derived data: the file is the truth).
#[derive(Default)]
pub(crate) struct IssuedState {
    /// Parsed grants, valid while nobody else wrote (see lookup.rs).
    pub(in crate::vault) grant_cache: GrantCache,
    /// Projections this process has loaded, by grant.
    pub(in crate::vault) projections: ProjectionCache,
    /// Sync states of grants being served by this process.
    pub(in crate::vault) serve_states: ServeStates,
    /// Records of served messages waiting for their group commit (served_log.rs).
    pub(in crate::vault) served_log: ServedLog,
}

/// The grants this vault issued, their revocations and erasure receipts: `vault.grants()` to read, `vault.grants_mut()` to issue, revoke and expire.
#[derive(Debug)]
pub struct Grants<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Grants<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Grants<V> {
    fn grant_record(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        ROWS.get(&self.vault.store, Key::Id(id.as_bytes()))
    }

    /// Writes a grant row and logs its new state for the other devices.
    fn put_grant_record(&self, id: &GrantId, record: &GrantRecord) -> Result<(), StoreError> {
        self.store_grant_record(id, record)?;
        self.vault.replication().log_shared(&record.entry())?;
        Ok(())
    }

    /// Adds the grantee devices `devices` to those grant `id` was served to (call inside a
    /// write, before the serving state that knew them is dropped).
    pub(super) fn note_served(&self, id: &GrantId, devices: &[DeviceId]) -> Result<(), StoreError> {
        let Some(mut record) = self.grant_record(id)? else { return Ok(()) };
        let before = record.served.len();
        for d in devices {
            if !record.served.contains(d) && record.served.len() < MAX_SERVED_DEVICES {
                record.served.push(*d);
            }
        }
        if record.served.len() != before {
            record.served.sort();
            self.put_grant_record(id, &record)?;
        }
        Ok(())
    }

    /// Writes a grant row only (a local detail changed, or the row came from another device).
    fn store_grant_record(&self, id: &GrantId, record: &GrantRecord) -> Result<(), StoreError> {
        self.vault.issued.grant_cache.replace(None);
        ROWS.put(&self.vault.store, Key::Id(id.as_bytes()), record)
    }

    fn info(&self, record: &GrantRecord) -> Result<GrantInfo, StoreError> {
        // Stored statements were verified (or made) before they were stored, and the AEAD,
        // bound to this vault and row, authenticates them at rest: the signature checks are not
        // paid again on every read.
        let damaged = || StoreError::damaged(&GRANTS, "(statement)");
        let grant = SignedGrant::from_stored(&record.signed).ok_or_else(damaged)?;
        let revocation = match record.revocation.as_deref() {
            Some(b) => Some(Signed::<Revocation>::from_stored(b).ok_or_else(damaged)?),
            None => None,
        };
        let erasure = match record.erasure.as_deref() {
            Some(b) => Some(Signed::<ErasureReceipt>::from_stored(b).ok_or_else(damaged)?),
            None => None,
        };
        let mut erasures: Vec<Signed<ErasureReceipt>> = erasure.iter().cloned().collect();
        for b in &record.erasures {
            erasures.push(Signed::<ErasureReceipt>::from_stored(b).ok_or_else(damaged)?);
        }
        let status = status_of(&grant, revocation.is_some(), self.vault.now(), &self.removed_devices()?);
        Ok(GrantInfo { grant, status, revocation, erasure, erasures, served: record.served.clone() })
    }
}

impl<V: DerefMut<Target = Vault>> Grants<V> {
    /// Signs and stores a grant, builds its projection from the current values, and logs it,
    /// all in one transaction.
    pub fn issue(&mut self, new: NewGrant) -> Result<SignedGrant, GrantError> {
        self.vault.write(|v| v.grants_mut().issue_locked(new, None))
    }

    /// Issues a grant inside the caller's write transaction, answering `request` if given.
    pub(crate) fn issue_locked(
        &mut self,
        new: NewGrant,
        request: Option<crate::statement::RequestId>,
    ) -> Result<SignedGrant, GrantError> {
        let now = self.vault.now();
        if new.expires_at.is_some_and(|e| e <= now) {
            return Err(GrantError::ExpiryInPast);
        }
        let mut fields = new.fields;
        fields.sort();
        fields.dedup();
        if fields.iter().any(|f| f.derived().is_some()) {
            let given: Vec<FieldPath> = self
                .vault
                .grants()
                .list_where(|g| g.audience == new.audience)?
                .into_iter()
                .flat_map(|g| g.grant.statement().fields.clone())
                .collect();
            if let Some(too_many) = too_revealing(given.iter().chain(&fields)) {
                return Err(GrantError::TooRevealing { field: too_many.field, what: too_many.what });
            }
        }
        let grant = Grant {
            id: GrantId::random(),
            issuer: self.vault.identity(),
            audience: new.audience,
            fields,
            filter: new.filter,
            purpose: new.purpose.trim().to_owned(),
            issued_at: now,
            expires_at: new.expires_at,
            prices: new.prices,
            request,
        };
        let signed = Signed::sign(grant, self.vault.signer())?;
        {
            let v = &mut *self.vault;
            v.catch_up().map_err(GrantError::catch_up)?;
            let g = signed.statement();
            let heads = v.doc.automerge().get_heads().iter().map(ToString::to_string).collect();
            v.grants().put_grant_record(
                &g.id,
                &GrantRecord {
                    signed: signed.to_bytes(),
                    revocation: None,
                    erasure: None,
                    expiry_logged: false,
                    heads,
                    erasures: Vec::new(),
                    served: Vec::new(),
                },
            )?;
            v.grants_mut().first_projection(g)?;
            let mut event = AuditEvent::new(now, AuditKind::GrantIssued);
            event.peer = Some(g.audience);
            event.grant = Some(g.id);
            event.fields = g.fields.iter().map(ToString::to_string).collect();
            event.detail = Some(format!("purpose: {}", g.purpose));
            v.access_log().append(&event)?;
        }
        Ok(signed)
    }

    /// Builds a new grant's projection from the current values and stores it as its first
    /// chunk (inside the caller's transaction).
    fn first_projection(&mut self, g: &Grant) -> Result<(), StoreError> {
        let mut projection = Projection::build(g, &self.vault.doc, self.vault.now());
        let day = Some(crate::path::derive::counting_day(self.vault.now()));
        let as_of = self.vault.doc.automerge().get_heads();
        let as_of_seq = self.vault.last_seq;
        self.vault.projections().append_projection_chunk(
            &g.id,
            1,
            0,
            as_of_seq,
            &as_of,
            &projection.automerge().save(),
        )?;
        self.vault.issued.projections.insert(
            g.id,
            ProjectionState { projection, as_of_seq, as_of, last_seq: 1, chunks: 1, epoch: 0, day },
        );
        Ok(())
    }

    /// Revokes a grant: signs a revocation, stops serving it, drops its projection, logs it.
    pub fn revoke(&mut self, id: &GrantId) -> Result<Signed<Revocation>, GrantError> {
        self.vault.write(|v| v.grants_mut().revoke_locked(id, None))
    }

    /// Revokes a grant inside the caller's write transaction; `why` goes to the access log
    /// when the vault revoked it by itself.
    pub(super) fn revoke_locked(
        &mut self,
        id: &GrantId,
        why: Option<&str>,
    ) -> Result<Signed<Revocation>, GrantError> {
        let now = self.vault.now();
        let mut record = self.grant_record(id)?.ok_or_else(|| GrantError::Unknown(id.to_string()))?;
        if record.revocation.is_some() {
            return Err(GrantError::AlreadyRevoked(*id));
        }
        let grant = self.info(&record)?.grant;
        let revocation = Signed::sign(
            Revocation { grant: *id, issuer: self.vault.identity(), revoked_at: now },
            self.vault.signer(),
        )?;
        record.revocation = Some(revocation.to_bytes());
        self.put_grant_record(id, &record)?;
        self.vault.projections_mut().drop_projection(id)?;
        let mut event = AuditEvent::new(now, AuditKind::GrantRevoked);
        event.peer = Some(grant.statement().audience);
        event.grant = Some(*id);
        event.fields = grant.statement().fields.iter().map(ToString::to_string).collect();
        event.detail = why.map(str::to_owned);
        self.vault.access_log().append(&event)?;
        Ok(revocation)
    }

    /// Logs expiries not yet logged and drops expired grants' projections. Returns the grants
    /// that expired since the last call.
    pub fn expire(&mut self) -> Result<Vec<GrantId>, GrantError> {
        let now = self.vault.now();
        self.vault.write(|v| {
            let mut expired = Vec::new();
            for info in v.grants().list()? {
                let g = info.grant.statement();
                if info.status != GrantStatus::Expired {
                    continue;
                }
                let mut record = v.grants().grant_record(&g.id)?.expect("listed above");
                if record.expiry_logged {
                    continue;
                }
                v.grants_mut().note_expiry(g, &mut record, now)?;
                expired.push(g.id);
            }
            Ok(expired)
        })
    }

    /// Marks an expired grant's expiry as logged, drops its projection and logs it (inside the
    /// caller's transaction). The node's watcher does this soon after the expiry; recording the
    /// grantee's erasure receipt does it first if the receipt came sooner, so that the access
    /// log never shows an erasure before the expiry it answers.
    fn note_expiry(&mut self, g: &Grant, record: &mut GrantRecord, now: i64) -> Result<(), StoreError> {
        record.expiry_logged = true;
        self.store_grant_record(&g.id, record)?;
        self.vault.projections_mut().drop_projection(&g.id)?;
        // Dropping it noted the grantee devices served: the caller's copy of the row learns them.
        record.served = self.grant_record(&g.id)?.map(|r| r.served).unwrap_or_default();
        let mut event = AuditEvent::new(now, AuditKind::GrantExpired);
        event.peer = Some(g.audience);
        event.grant = Some(g.id);
        self.vault.access_log().append(&event)
    }
}
