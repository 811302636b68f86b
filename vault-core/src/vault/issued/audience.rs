//! What an audience is told and what it confirms: the grants it may learn of (live, or ended
//! without a confirmed erasure) and the erasure receipts it sends back.

use super::Grants;
use super::{GrantError, GrantStatus, MAX_SERVED_DEVICES};
use crate::grant::{ErasureReceipt, SignedGrant};
use crate::identity::IdentityId;
use crate::protocol::Ended;
use crate::statement::Signed;
use crate::vault::Vault;
use crate::vault::audit::{AuditEvent, AuditKind};
use std::ops::DerefMut;

/// Clock difference tolerated between an erasure receipt's time and the grant's end (seconds).
pub(super) const MAX_CLOCK_SKEW: i64 = 600;

impl<V: DerefMut<Target = Vault>> Grants<V> {
    /// Records a grantee's erasure receipt for one of this vault's grants.
    pub fn record_erasure(&mut self, receipt: &Signed<ErasureReceipt>) -> Result<(), GrantError> {
        let r = receipt.statement();
        let now = self.vault.now();
        self.vault.write(|v| {
            let mut record =
                v.grants().grant_record(&r.grant)?.ok_or_else(|| GrantError::Unknown(r.grant.to_string()))?;
            let grant = v.grants().info(&record)?.grant;
            if r.issuer != v.identity() || r.grantee != grant.statement().audience {
                return Err(GrantError::ReceiptMismatch(r.grant));
            }
            // One receipt per device of the grantee: another device's is news, the same one's
            // again is not.
            let device = crate::grant::erased_on(receipt);
            let known = v.grants().info(&record)?;
            if known.erasures.iter().any(|e| crate::grant::erased_on(e) == device)
                || (record.erasure.is_some() && device.is_none())
                || known.erasures.len() > MAX_SERVED_DEVICES
            {
                return Ok(());
            }
            // A receipt only means something for a grant that has ended, and only if it was
            // made after the end: otherwise a grantee could pre-empt a later revocation.
            let info = v.grants().info(&record)?;
            r.check_dated(info.grant.statement(), now)?;
            let ended_at = match (&info.revocation, info.grant.statement().expires_at) {
                (Some(rev), _) => rev.statement().revoked_at,
                (None, _) if info.status == GrantStatus::Void => info.grant.statement().issued_at,
                (None, Some(expiry)) if expiry <= now => expiry,
                _ => return Err(GrantError::StillLive(r.grant)),
            };
            // erased_at comes from the grantee's clock: allow for skew between machines. The
            // check that matters is above: the grant has ended when the receipt is recorded.
            if r.erased_at < ended_at.saturating_sub(MAX_CLOCK_SKEW) {
                return Err(GrantError::StillLive(r.grant));
            }
            if info.revocation.is_none() && !record.expiry_logged {
                v.grants_mut().note_expiry(info.grant.statement(), &mut record, now)?;
            }
            match record.erasure {
                None => record.erasure = Some(receipt.to_bytes()),
                Some(_) => record.erasures.push(receipt.to_bytes()),
            }
            v.grants().put_grant_record(&r.grant, &record)?;
            let mut event = AuditEvent::new(now, AuditKind::ErasureReceipt);
            event.peer = Some(r.grantee);
            event.grant = Some(r.grant);
            event.detail = device.map(|d| format!("on their device {}", &d.to_string()[..8]));
            v.access_log().append(&event)?;
            Ok(())
        })
    }

    /// What `peer` may learn: its live grants, and its grants that ended without a confirmed
    /// erasure. Expiries are logged first.
    pub fn shares_for(&mut self, peer: &IdentityId) -> Result<(Vec<SignedGrant>, Vec<Ended>), GrantError> {
        // Expiries are logged by the node's watcher; the status below already follows the clock.
        if self.vault.tampered.is_some() || self.vault.contacts().is_blocked(peer)? {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut live = Vec::new();
        let mut ended = Vec::new();
        for info in self.list_where(|g| g.audience == *peer)? {
            let g = info.grant.statement();
            if g.audience != *peer {
                continue;
            }
            // An ended grant is told until every device of the grantee it was served to has
            // confirmed its erasure: a device that never syncs again is not taken as erased
            // because another one was.
            let erased = info.erasure_complete();
            match (info.status, info.revocation, erased) {
                (GrantStatus::Active, _, _) => live.push(info.grant),
                (_, _, true) => {}
                (GrantStatus::Revoked, Some(r), false) => ended.push(Ended::Revoked(r)),
                (_, _, false) => ended.push(Ended::Expired(g.id)),
            }
        }
        Ok((live, ended))
    }
}
