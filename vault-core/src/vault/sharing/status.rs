//! Where a grant stands: revoked, void (issued by a device of this identity since removed),
//! expired or active. Computed on every read, since the clock and the device list move.

use super::{GrantInfo, GrantStatus};
use crate::grant::SignedGrant;
use crate::identity::DeviceId;
use crate::store::StoreError;
use crate::vault::Vault;

/// Where a grant stands now, given the devices of this identity that were removed.
pub(super) fn status_of(grant: &SignedGrant, revoked: bool, now: i64, removed: &[DeviceId]) -> GrantStatus {
    if revoked {
        GrantStatus::Revoked
    } else if grant.signed_by().is_some_and(|d| removed.contains(&d)) {
        GrantStatus::Void
    } else if !grant.statement().is_live_at(now) {
        GrantStatus::Expired
    } else {
        GrantStatus::Active
    }
}

pub(super) fn with_status(mut info: GrantInfo, now: i64, removed: &[DeviceId]) -> GrantInfo {
    info.status = status_of(&info.grant, info.revocation.is_some(), now, removed);
    info
}

impl Vault {
    /// The devices of this identity that were removed: what they signed is void here.
    pub(super) fn removed_devices(&self) -> Result<Vec<DeviceId>, StoreError> {
        Ok(self.devices().list()?.into_iter().filter(|d| !d.is_active()).map(|d| d.id).collect())
    }
}
