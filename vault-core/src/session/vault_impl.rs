//! The vault behind the session machines' traits: the one place that maps what a machine asks
//! to the vault's own methods.

use super::admission::AdmissionStore;
use super::store::DeviceStore;
use crate::identity::{DeviceId, IdentityId};
use crate::key_event::KeyEvent;
use crate::roster::DeviceRoster;
use crate::statement::Signed;
use crate::store::StoreError;
use crate::vault::{
    DeviceRecord, DeviceSync, EditError, GrantError, Merged, ReplicationError, SharedHave, Vault,
};

impl DeviceStore for Vault {
    fn may_sync_with(&self, peer: &DeviceId) -> Result<bool, StoreError> {
        self.devices().may_sync_with(peer)
    }
    fn seed_shared_log(&mut self) -> Result<(), StoreError> {
        Vault::seed_shared_log(self)
    }
    fn shared_have(&self, peer: &DeviceId) -> Result<SharedHave, StoreError> {
        Vault::shared_have(self, peer)
    }
    fn devices_for_peer(&mut self) -> Result<Vec<DeviceRecord>, StoreError> {
        let addrs = self.node_addrs();
        self.devices_mut().for_peer(&addrs)
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Vault::own_key_events(self)
    }
    fn rosters_for_devices(&self) -> Result<Vec<Signed<DeviceRoster>>, StoreError> {
        Vault::rosters_for_devices(self)
    }
    fn device_sync_generate(&mut self, sync: &mut DeviceSync) -> Result<Option<Vec<u8>>, EditError> {
        Vault::device_sync_generate(self, sync)
    }
    fn shared_batch(&self, theirs: &mut SharedHave) -> Result<Option<Vec<u8>>, StoreError> {
        Vault::shared_batch(self, theirs)
    }
    fn merge_devices(&mut self, from: &DeviceId, list: &[DeviceRecord]) -> Result<Merged, StoreError> {
        self.devices_mut().merge(from, list)
    }
    fn keep_own_roster(&mut self, roster: &Signed<DeviceRoster>) -> Result<bool, StoreError> {
        Vault::keep_own_roster(self, roster)
    }
    fn identity(&self) -> IdentityId {
        Vault::identity(self)
    }
    fn accept_key_events(&mut self, identity: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        Vault::accept_key_events(self, identity, events)
    }
    fn take_shared_have(&mut self, theirs: &SharedHave) -> Result<bool, ReplicationError> {
        Vault::take_shared_have(self, theirs)
    }
    fn shared_receive(
        &mut self,
        from: &DeviceId,
        theirs: &mut SharedHave,
        batch: &[u8],
    ) -> Result<bool, ReplicationError> {
        Vault::shared_receive(self, from, theirs, batch)
    }
    fn device_sync_receive(&mut self, sync: &mut DeviceSync, message: &[u8]) -> Result<bool, EditError> {
        Vault::device_sync_receive(self, sync, message)
    }
    fn refresh_projections(&mut self) -> Result<(), GrantError> {
        Vault::update_projections(self, None).map(drop)
    }
}

impl AdmissionStore for Vault {
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        Vault::is_refused_device(self, peer, device)
    }
    fn is_blocked(&self, peer: &IdentityId) -> Result<bool, StoreError> {
        self.contacts().is_blocked(peer)
    }
    fn may_sync_with(&self, device: &DeviceId) -> Result<bool, StoreError> {
        self.devices().may_sync_with(device)
    }
}
