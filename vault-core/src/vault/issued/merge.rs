//! Grants as the other devices of this identity see them: the entry a grant row is logged as,
//! and the merge of an entry another device sent (see replication.rs for the rules).

use super::Grants;
use super::audience::MAX_CLOCK_SKEW;
use super::{GrantError, GrantRecord, GrantStatus, MAX_SERVED_DEVICES};
use crate::grant::{ErasureReceipt, Revocation, SignedGrant};
use crate::identity::DeviceId;
use crate::identity::IdentityId;
use crate::path::FieldPath;
use crate::path::derive::too_revealing;
use crate::statement::{GrantId, Signed};
use crate::store::StoreError;
use crate::store::sealed::GRANTS;
use crate::vault::Vault;
use crate::vault::replication::Entry;
use std::ops::{Deref, DerefMut};

impl GrantRecord {
    /// The row as logged for the other devices (without what is this device's own business).
    pub(in crate::vault) fn entry(&self) -> Entry {
        Entry::Grant {
            signed: self.signed.clone(),
            revocation: self.revocation.clone(),
            erasure: self.erasure.clone(),
            heads: self.heads.clone(),
            erasures: self.erasures.clone(),
            served: self.served.clone(),
        }
    }
}

/// A grant entry's parts, as another device sent them.
pub(in crate::vault) struct GrantParts<'a> {
    pub(in crate::vault) signed: &'a [u8],
    pub(in crate::vault) revocation: Option<&'a [u8]>,
    pub(in crate::vault) erasure: Option<&'a [u8]>,
    pub(in crate::vault) heads: &'a [String],
    pub(in crate::vault) erasures: &'a [Vec<u8>],
    pub(in crate::vault) served: &'a [DeviceId],
}

/// Erasure receipts (verified encodings), one per device of the grantee (of two for one
/// device, the smaller encoding), in encoding order: the first and the others.
fn one_per_device(mut receipts: Vec<Vec<u8>>) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
    receipts.sort();
    receipts.dedup();
    let mut seen = Vec::new();
    receipts.retain(|bytes| {
        let device = Signed::<ErasureReceipt>::from_stored(bytes).and_then(|e| crate::grant::erased_on(&e));
        if seen.contains(&device) {
            return false;
        }
        seen.push(device);
        true
    });
    receipts.truncate(MAX_SERVED_DEVICES);
    let mut rest = receipts.into_iter();
    (rest.next(), rest.collect())
}

/// Most document heads a grant entry may name (a document has a handful at most).
const MAX_GRANT_HEADS: usize = 64;

impl<V: Deref<Target = Vault>> Grants<V> {
    /// Every grant row as an entry of the shared log.
    pub(in crate::vault) fn grant_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for raw in self.vault.store.keys(&GRANTS)? {
            let id = GrantId::from_raw(raw.id()).ok_or_else(|| StoreError::damaged(&GRANTS, "(bad id)"))?;
            if let Some(record) = self.grant_record(&id)? {
                out.push(record.entry());
            }
        }
        Ok(out)
    }
}

impl<V: DerefMut<Target = Vault>> Grants<V> {
    /// Revokes the grants to `audience` that, once grants issued on devices out of touch met,
    /// tell it more about one field than derived fields allow (see derive.rs: two answers
    /// about a date, one band of a price). Ordered by issue time then id, a derived grant
    /// that goes past the limit with the ones before it is the excess: every device picks the
    /// same one, whatever order the grants arrived in. The access log says why.
    fn revoke_excess_derived(&mut self, audience: IdentityId) -> Result<(), StoreError> {
        let mut grants = self.list_where(|g| g.audience == audience)?;
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
            hash.is_some_and(|hash| self.vault.doc.automerge().get_change_by_hash(&hash).is_some())
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

    /// Merges a grant another device of this identity sent: a new live grant is stored with a
    /// projection built here from the current values (so this device serves it too); a
    /// revocation or an erasure receipt this device lacked is added (a revocation drops the
    /// projection: nothing more is served from here). Of two revocations the earlier stays.
    /// False when a statement does not verify or is not about this identity's grant.
    pub(in crate::vault) fn merge_grant(&mut self, parts: GrantParts<'_>) -> Result<bool, StoreError> {
        let GrantParts { signed, revocation, erasure, heads, erasures, served } = parts;
        let Ok(grant) = SignedGrant::from_bytes(signed) else { return Ok(false) };
        if heads.len() > MAX_GRANT_HEADS
            || erasures.len() > MAX_SERVED_DEVICES
            || served.len() > MAX_SERVED_DEVICES
        {
            return Ok(false);
        }
        let g = grant.statement().clone();
        if g.issuer != self.vault.identity() {
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
        let mut receipts = Vec::new();
        for bytes in erasure.into_iter().chain(erasures.iter().map(Vec::as_slice)) {
            match Signed::<ErasureReceipt>::from_bytes(bytes) {
                Ok(e)
                    if e.statement().grant == g.id
                        && e.statement().issuer == g.issuer
                        && e.statement().grantee == g.audience =>
                {
                    receipts.push(e.to_bytes());
                }
                _ => return Ok(false),
            }
        }
        let Some(mut record) = self.grant_record(&g.id)? else {
            let (erasure, erasures) = one_per_device(receipts);
            let mut served = served.to_vec();
            served.sort();
            served.dedup();
            let record = GrantRecord {
                signed: grant.to_bytes(),
                revocation: revocation.as_ref().map(Signed::to_bytes),
                erasure,
                expiry_logged: false,
                heads: heads.to_vec(),
                erasures,
                served,
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
            // the second; keep the one this device has. A revocation of that id still counts
            // (it only takes away): the id is revoked on every device, never half-revoked.
            if let Some(theirs) = revocation
                && record.revocation.is_none()
            {
                record.revocation = Some(theirs.to_bytes());
                self.store_grant_record(&g.id, &record)?;
                self.vault.projections_mut().drop_projection(&g.id)?;
            }
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
                    self.vault.projections_mut().drop_projection(&g.id)?;
                    // Dropping it noted the devices this one served.
                    record.served = self.grant_record(&g.id)?.map(|r| r.served).unwrap_or_default();
                }
            }
        }
        // Receipts: one per device of the grantee (of two, the smaller encoding stays), the same
        // set on every device.
        let held: Vec<Vec<u8>> = record.erasure.iter().chain(&record.erasures).cloned().collect();
        let (erasure, erasures) = one_per_device(held.iter().cloned().chain(receipts).collect());
        if (&erasure, &erasures) != (&record.erasure, &record.erasures) {
            (record.erasure, record.erasures) = (erasure, erasures);
            changed = true;
        }
        for d in served {
            if !record.served.contains(d) && record.served.len() < MAX_SERVED_DEVICES {
                record.served.push(*d);
                record.served.sort();
                changed = true;
            }
        }
        if changed {
            self.store_grant_record(&g.id, &record)?;
        }
        Ok(true)
    }
}
