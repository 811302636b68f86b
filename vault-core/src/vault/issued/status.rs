//! Where a grant stands: revoked, void (issued by a device of this identity since removed, or
//! by a key a rotation replaced before the grant's date), expired or active. Computed on every
//! read, since the clock, the device list and the key state move.

use super::Grants;
use super::{GrantInfo, GrantStatus};
use crate::grant::SignedGrant;
use crate::identity::{DeviceId, IdentityId};
use crate::key_event::KeyLog;
use crate::statement::Statement;
use crate::store::StoreError;
use crate::vault::Vault;
use std::ops::Deref;

/// What makes this identity's grants void: its removed devices, and its key state (a grant an
/// old key signed dated after the rotation that replaced it, arriving from a device that still
/// held that key, is void here as it is at every peer).
pub(super) struct Voiding {
    removed: Vec<DeviceId>,
    identity: IdentityId,
    log: KeyLog,
}

/// Where a grant stands now, given what voids this identity's grants.
pub(super) fn status_of(grant: &SignedGrant, revoked: bool, now: i64, voiding: &Voiding) -> GrantStatus {
    // This identity's own devices are vouched for by its list (removed ones are caught first).
    let key_refused = || {
        !crate::signer::allowed(
            grant.by(),
            &voiding.identity,
            grant.statement().made_at(),
            &voiding.log,
            true,
        )
    };
    if revoked {
        GrantStatus::Revoked
    } else if grant.signed_by().is_some_and(|d| voiding.removed.contains(&d)) || key_refused() {
        GrantStatus::Void
    } else if !grant.statement().is_live_at(now) {
        GrantStatus::Expired
    } else {
        GrantStatus::Active
    }
}

pub(super) fn with_status(mut info: GrantInfo, now: i64, removed: &Voiding) -> GrantInfo {
    info.status = status_of(&info.grant, info.revocation.is_some(), now, removed);
    info
}

impl<V: Deref<Target = Vault>> Grants<V> {
    /// The devices of this identity that were removed, and its key state: what voids a grant
    /// here.
    pub(super) fn removed_devices(&self) -> Result<Voiding, StoreError> {
        let removed =
            self.vault.devices().list()?.into_iter().filter(|d| !d.is_active()).map(|d| d.id).collect();
        let identity = self.vault.identity();
        Ok(Voiding { removed, identity, log: self.vault.keys().key_log(&identity)? })
    }
}
