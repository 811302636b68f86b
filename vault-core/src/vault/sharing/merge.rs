//! Grants as the other devices of this identity see them: the entry a grant row is logged as,
//! and the merge of an entry another device sent (see replication.rs for the rules).

use super::audience::MAX_CLOCK_SKEW;
use super::{GrantError, GrantRecord, GrantStatus};
use crate::derive::too_revealing;
use crate::grant::{ErasureReceipt, Revocation, SignedGrant};
use crate::identity::IdentityId;
use crate::path::FieldPath;
use crate::statement::{GrantId, Signed};
use crate::store::StoreError;
use crate::store::sealed::GRANTS;
use crate::vault::Vault;
use crate::vault::replication::Entry;

impl GrantRecord {
    /// The row as logged for the other devices (without what is this device's own business).
    pub(in crate::vault) fn entry(&self) -> Entry {
        Entry::Grant {
            signed: self.signed.clone(),
            revocation: self.revocation.clone(),
            erasure: self.erasure.clone(),
            heads: self.heads.clone(),
        }
    }
}

/// Most document heads a grant entry may name (a document has a handful at most).
const MAX_GRANT_HEADS: usize = 64;

impl Vault {
    /// Revokes the grants to `audience` that, once grants issued on devices out of touch met,
    /// tell it more about one field than derived fields allow (see derive.rs: two answers
    /// about a date, one band of a price). Ordered by issue time then id, a derived grant
    /// that goes past the limit with the ones before it is the excess: every device picks the
    /// same one, whatever order the grants arrived in. The access log says why.
    fn revoke_excess_derived(&mut self, audience: IdentityId) -> Result<(), StoreError> {
        let mut grants = self.grants_where(|g| g.audience == audience)?;
        grants.sort_by_key(|g| (g.grant.statement().issued_at, g.grant.statement().id));
        let mut given: Vec<FieldPath> = Vec::new();
        for info in grants {
            let g = info.grant.statement();
            let with: Vec<FieldPath> = given.iter().chain(&g.fields).cloned().collect();
            if !g.fields.iter().any(|f| f.derived().is_some()) || too_revealing(&with).is_none() {
                given = with;
                continue;
            }
            if info.revocation.is_some() {
                continue;
            }
            let why = "issued on another device while apart: with this identity's other grants to \
                       the same person it told more than derived fields allow";
            match self.revoke_locked(&g.id, Some(why)) {
                Ok(_) | Err(GrantError::AlreadyRevoked(_)) => {}
                Err(GrantError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, grant = %g.id, "could not revoke a grant past the limit")
                }
            }
        }
        Ok(())
    }

    /// True when the document holds every change `heads` names (hex change hashes); a name
    /// that is not one counts as missing.
    fn holds_heads(&mut self, heads: &[String]) -> bool {
        heads.iter().all(|h| {
            let hash = data_encoding::HEXLOWER
                .decode(h.as_bytes())
                .ok()
                .and_then(|b| automerge::ChangeHash::try_from(&b[..]).ok());
            hash.is_some_and(|hash| self.doc.automerge().get_change_by_hash(&hash).is_some())
        })
    }

    /// Builds the projection of a live grant another device issued, once this device's
    /// document holds the heads the grant was issued at. True when built.
    pub(in crate::vault) fn build_waiting_projection(
        &mut self,
        g: &crate::grant::Grant,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.grant_record(&g.id)? else { return Ok(false) };
        if !self.holds_heads(&record.heads) {
            return Ok(false);
        }
        self.first_projection(g)?;
        Ok(true)
    }

    /// Every grant row as an entry of the shared log.
    pub(in crate::vault) fn grant_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for raw in self.store.keys(&GRANTS)? {
            let id = GrantId::from_raw(raw.id()).ok_or_else(|| StoreError::damaged(&GRANTS, "(bad id)"))?;
            if let Some(record) = self.grant_record(&id)? {
                out.push(record.entry());
            }
        }
        Ok(out)
    }

    /// Merges a grant another device of this identity sent: a new live grant is stored with a
    /// projection built here from the current values (so this device serves it too); a
    /// revocation or an erasure receipt this device lacked is added (a revocation drops the
    /// projection: nothing more is served from here). Of two revocations the earlier stays.
    /// False when a statement does not verify or is not about this identity's grant.
    pub(in crate::vault) fn merge_grant(
        &mut self,
        signed: &[u8],
        revocation: Option<&[u8]>,
        erasure: Option<&[u8]>,
        heads: &[String],
    ) -> Result<bool, StoreError> {
        let Ok(grant) = SignedGrant::from_bytes(signed) else { return Ok(false) };
        if heads.len() > MAX_GRANT_HEADS {
            return Ok(false);
        }
        let g = grant.statement().clone();
        if g.issuer != self.identity() {
            return Ok(false);
        }
        // A grant a removed device signed is taken like any other: it reads as void (see
        // `status_of`), and revocations and receipts about it must still apply.
        // Not before the grant (an "earlier" revocation must not be backdated past it). No
        // bound on the future: this device's clock must not decide, once and for all, that a
        // revocation does not count.
        let dated = |at: i64| at >= g.issued_at.saturating_sub(MAX_CLOCK_SKEW);
        let revocation = match revocation.map(Signed::<Revocation>::from_bytes) {
            None => None,
            Some(Ok(r))
                if r.statement().grant == g.id
                    && r.statement().issuer == g.issuer
                    && dated(r.statement().revoked_at) =>
            {
                Some(r)
            }
            Some(_) => return Ok(false),
        };
        let erasure = match erasure.map(Signed::<ErasureReceipt>::from_bytes) {
            None => None,
            Some(Ok(e))
                if e.statement().grant == g.id
                    && e.statement().issuer == g.issuer
                    && e.statement().grantee == g.audience =>
            {
                Some(e)
            }
            Some(_) => return Ok(false),
        };
        let Some(mut record) = self.grant_record(&g.id)? else {
            let record = GrantRecord {
                signed: grant.to_bytes(),
                revocation: revocation.as_ref().map(Signed::to_bytes),
                erasure: erasure.as_ref().map(Signed::to_bytes),
                expiry_logged: false,
                heads: heads.to_vec(),
            };
            self.store_grant_record(&g.id, &record)?;
            // Built now only when this device's document holds what the issuing device's held;
            // otherwise once the document sync brings it (see `update_projections`).
            if self.info(&record)?.status == GrantStatus::Active && self.holds_heads(heads) {
                self.first_projection(&g)?;
            }
            if g.fields.iter().any(|f| f.derived().is_some()) {
                self.revoke_excess_derived(g.audience)?;
            }
            return Ok(true);
        };
        if record.signed != grant.to_bytes() {
            // Two statements under one grant id: only a device of this identity could sign
            // the second; keep the one this device has (the entry is handled).
            return Ok(true);
        }
        let mut changed = false;
        if let Some(theirs) = revocation {
            let mine = record.revocation.as_deref().and_then(Signed::<Revocation>::from_stored);
            let earlier = match &mine {
                None => true,
                Some(m) => {
                    (theirs.statement().revoked_at, theirs.to_bytes())
                        < (m.statement().revoked_at, m.to_bytes())
                }
            };
            if earlier {
                record.revocation = Some(theirs.to_bytes());
                changed = true;
                if mine.is_none() {
                    self.drop_projection(&g.id)?;
                }
            }
        }
        // Of two receipts, the smaller encoding stays: the same one on every device.
        if let Some(theirs) = erasure.map(|e| e.to_bytes())
            && record.erasure.as_ref().is_none_or(|mine| theirs < *mine)
        {
            record.erasure = Some(theirs);
            changed = true;
        }
        if changed {
            self.store_grant_record(&g.id, &record)?;
        }
        Ok(true)
    }
}
