//! What the session machines need of the vault, as narrow traits: a machine sees only the
//! handful of operations its conversation uses, so it can be driven by a small fake in tests.
//! [`crate::Vault`] implements each in one place (`vault_impl.rs`).

use crate::identity::{DeviceId, IdentityId};
use crate::key_event::KeyEvent;
use crate::roster::DeviceRoster;
use crate::statement::Signed;
use crate::store::StoreError;
use crate::vault::{DeviceRecord, DeviceSync, EditError, GrantError, Merged, ReplicationError, SharedHave};

/// What a [`super::DeviceSession`] reads and writes.
pub trait DeviceStore {
    /// Whether `peer` is an active device of this identity other than this one, while this one
    /// is active too.
    fn may_sync_with(&self, peer: &DeviceId) -> Result<bool, StoreError>;
    /// Starts the log of sharing state, if this vault's was not started yet.
    fn seed_shared_log(&mut self) -> Result<(), StoreError>;
    /// What this device holds of the sharing state, as told to `peer`.
    fn shared_have(&self, peer: &DeviceId) -> Result<SharedHave, StoreError>;
    /// The device list as sent to another device (this device's addresses in it).
    fn devices_for_peer(&mut self) -> Result<Vec<DeviceRecord>, StoreError>;
    /// This identity's key events, oldest first.
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError>;
    /// The rosters to hand to another device.
    fn rosters_for_devices(&self) -> Result<Vec<Signed<DeviceRoster>>, StoreError>;
    /// The document's next sync message to the other device, if any.
    fn device_sync_generate(&mut self, sync: &mut DeviceSync) -> Result<Option<Vec<u8>>, EditError>;
    /// The next batch of sharing state the other device lacks, if any.
    fn shared_batch(&self, theirs: &mut SharedHave) -> Result<Option<Vec<u8>>, StoreError>;
    /// Takes in the device list another device sent.
    fn merge_devices(&mut self, from: &DeviceId, list: &[DeviceRecord]) -> Result<Merged, StoreError>;
    /// Keeps a roster of this identity if it is newer; whether it was.
    fn keep_own_roster(&mut self, roster: &Signed<DeviceRoster>) -> Result<bool, StoreError>;
    /// This vault's identity.
    fn identity(&self) -> IdentityId;
    /// Takes in key events of `identity`; whether anything changed.
    fn accept_key_events(&mut self, identity: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError>;
    /// Takes in what the other device holds, repairing a fork; whether anything changed.
    fn take_shared_have(&mut self, theirs: &SharedHave) -> Result<bool, ReplicationError>;
    /// Takes in a batch of sharing state; whether anything changed.
    fn shared_receive(
        &mut self,
        from: &DeviceId,
        theirs: &mut SharedHave,
        batch: &[u8],
    ) -> Result<bool, ReplicationError>;
    /// Takes in the document's sync message; whether the document changed.
    fn device_sync_receive(&mut self, sync: &mut DeviceSync, message: &[u8]) -> Result<bool, EditError>;
    /// Brings every projection up to date with the document.
    fn refresh_projections(&mut self) -> Result<(), GrantError>;
}
