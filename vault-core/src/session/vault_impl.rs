//! The vault behind the session machines' traits: the one place that maps what a machine asks
//! to the vault's own methods.

use super::admission::AdmissionStore;
use super::store::{DeviceStore, GranteeStore, IssuerStore};
use crate::grant::{ErasureReceipt, SignedGrant};
use crate::identity::{DeviceId, IdentityId, Ticket};
use crate::key_event::KeyEvent;
use crate::notice::BreachNotice;
use crate::protocol::Ended;
use crate::request::{ConsentRequest, Denial};
use crate::roster::DeviceRoster;
use crate::statement::{GrantId, NoticeId, RequestId, Signed};
use crate::store::StoreError;
use crate::vault::{
    DeviceRecord, DeviceSync, EditError, GrantError, Merged, Refusal, ReplicationError, ShareError,
    SharedHave, Vault,
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

impl IssuerStore for Vault {
    fn knows_peer(&mut self, peer: &IdentityId) -> Result<bool, GrantError> {
        Vault::knows_peer(self, peer)
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Vault::own_key_events(self)
    }
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        Vault::roster(self)
    }
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        Vault::accept_key_events(self, peer, events)
    }
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError> {
        Vault::accept_roster(self, peer, roster)
    }
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        Vault::is_refused_device(self, peer, device)
    }
    fn receive_request(
        &mut self,
        peer: &IdentityId,
        request: &Signed<ConsentRequest>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        self.inbox_mut().receive(peer, request)
    }
    fn receive_notice(
        &mut self,
        peer: &IdentityId,
        notice: &Signed<BreachNotice>,
    ) -> Result<bool, StoreError> {
        Vault::receive_notice(self, peer, notice)
    }
    fn record_erasure(&mut self, receipt: &Signed<ErasureReceipt>) -> Result<(), GrantError> {
        Vault::record_erasure(self, receipt)
    }
    fn denials_for(&self, peer: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError> {
        self.inbox().denials_for(peer)
    }
    fn shares_for(&mut self, peer: &IdentityId) -> Result<(Vec<SignedGrant>, Vec<Ended>), GrantError> {
        Vault::shares_for(self, peer)
    }
}

impl GranteeStore for Vault {
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Vault::own_key_events(self)
    }
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        Vault::roster(self)
    }
    fn undelivered_requests(&self, holder: &IdentityId) -> Result<Vec<Signed<ConsentRequest>>, StoreError> {
        self.outbox().undelivered(holder)
    }
    fn undelivered_notices(&self, customer: &IdentityId) -> Result<Vec<Signed<BreachNotice>>, StoreError> {
        Vault::undelivered_notices(self, customer)
    }
    fn request_delivered(
        &mut self,
        holder: &IdentityId,
        id: &RequestId,
        accepted: bool,
    ) -> Result<(), StoreError> {
        self.outbox_mut().delivered(holder, id, accepted)
    }
    fn notice_delivered(&mut self, customer: &IdentityId, id: &NoticeId) -> Result<(), StoreError> {
        Vault::notice_delivered(self, customer, id)
    }
    fn accept_denials(&mut self, holder: &IdentityId, denials: &[Signed<Denial>]) -> Result<(), StoreError> {
        self.outbox_mut().accept_denials(holder, denials)
    }
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        Vault::accept_key_events(self, peer, events)
    }
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError> {
        Vault::accept_roster(self, peer, roster)
    }
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        Vault::is_refused_device(self, peer, device)
    }
    fn unconfirmed_receipts(&self, issuer: IdentityId) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        Vault::unconfirmed_receipts(self, Some(issuer))
    }
    fn live_shares_from(&self, issuer: &IdentityId) -> Result<Vec<GrantId>, StoreError> {
        Vault::live_shares_from(self, issuer)
    }
    fn accept_shares(
        &mut self,
        issuer: IdentityId,
        ticket: Option<&Ticket>,
        live: &[SignedGrant],
        ended: &[Ended],
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        Vault::accept_shares(self, issuer, ticket, live, ended)
    }
}
