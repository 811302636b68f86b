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
        self.replication_mut().seed()
    }
    fn shared_have(&self, peer: &DeviceId) -> Result<SharedHave, StoreError> {
        self.replication().have(peer)
    }
    fn devices_for_peer(&mut self) -> Result<Vec<DeviceRecord>, StoreError> {
        let addrs = self.serving().node_addrs();
        self.devices_mut().for_peer(&addrs)
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        self.keys().own_key_events()
    }
    fn rosters_for_devices(&self) -> Result<Vec<Signed<DeviceRoster>>, StoreError> {
        self.devices().rosters_for_devices()
    }
    fn device_sync_generate(&mut self, sync: &mut DeviceSync) -> Result<Option<Vec<u8>>, EditError> {
        self.devices_mut().sync_generate(sync)
    }
    fn shared_batch(&self, theirs: &mut SharedHave) -> Result<Option<Vec<u8>>, StoreError> {
        self.replication().batch(theirs)
    }
    fn merge_devices(&mut self, from: &DeviceId, list: &[DeviceRecord]) -> Result<Merged, StoreError> {
        self.devices_mut().merge(from, list)
    }
    fn keep_own_roster(&mut self, roster: &Signed<DeviceRoster>) -> Result<bool, StoreError> {
        self.devices_mut().keep_own_roster(roster)
    }
    fn identity(&self) -> IdentityId {
        Vault::identity(self)
    }
    fn accept_key_events(&mut self, identity: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        self.keys_mut().accept_key_events(identity, events)
    }
    fn take_shared_have(&mut self, theirs: &SharedHave) -> Result<bool, ReplicationError> {
        self.replication_mut().take_have(theirs)
    }
    fn shared_receive(
        &mut self,
        from: &DeviceId,
        theirs: &mut SharedHave,
        batch: &[u8],
    ) -> Result<bool, ReplicationError> {
        self.replication_mut().receive(from, theirs, batch)
    }
    fn device_sync_receive(&mut self, sync: &mut DeviceSync, message: &[u8]) -> Result<bool, EditError> {
        self.devices_mut().sync_receive(sync, message)
    }
    fn refresh_projections(&mut self) -> Result<(), GrantError> {
        self.projections_mut().update(None).map(drop)
    }
}

impl AdmissionStore for Vault {
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        self.devices().is_refused_device(peer, device)
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
        self.devices_mut().knows_peer(peer)
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        self.keys().own_key_events()
    }
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        self.devices().roster()
    }
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        self.keys_mut().accept_key_events(peer, events)
    }
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError> {
        self.devices_mut().accept_roster(peer, roster)
    }
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        self.devices().is_refused_device(peer, device)
    }
    fn receive_request(
        &mut self,
        peer: &IdentityId,
        request: &Signed<ConsentRequest>,
        reply_to: Option<&Ticket>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        self.inbox_mut().receive_from(peer, request, reply_to)
    }
    fn receive_notice(
        &mut self,
        peer: &IdentityId,
        notice: &Signed<BreachNotice>,
    ) -> Result<bool, StoreError> {
        self.notices_mut().receive(peer, notice)
    }
    fn record_erasure(&mut self, receipt: &Signed<ErasureReceipt>) -> Result<(), GrantError> {
        self.grants_mut().record_erasure(receipt)
    }
    fn denials_for(&self, peer: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError> {
        self.inbox().denials_for(peer)
    }
    fn shares_for(&mut self, peer: &IdentityId) -> Result<(Vec<SignedGrant>, Vec<Ended>), GrantError> {
        self.grants_mut().shares_for(peer)
    }
}

impl GranteeStore for Vault {
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        self.keys().own_key_events()
    }
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        self.devices().roster()
    }
    fn undelivered_requests(&self, holder: &IdentityId) -> Result<Vec<Signed<ConsentRequest>>, StoreError> {
        self.outbox().undelivered(holder)
    }
    fn undelivered_notices(&self, customer: &IdentityId) -> Result<Vec<Signed<BreachNotice>>, StoreError> {
        self.notices().undelivered(customer)
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
        self.notices_mut().delivered(customer, id)
    }
    fn accept_denials(&mut self, holder: &IdentityId, denials: &[Signed<Denial>]) -> Result<(), StoreError> {
        self.outbox_mut().accept_denials(holder, denials)
    }
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError> {
        self.keys_mut().accept_key_events(peer, events)
    }
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError> {
        self.devices_mut().accept_roster(peer, roster)
    }
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError> {
        self.devices().is_refused_device(peer, device)
    }
    fn unconfirmed_receipts(&self, issuer: IdentityId) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        self.held().unconfirmed_receipts(Some(issuer))
    }
    fn live_shares_from(&self, issuer: &IdentityId) -> Result<Vec<GrantId>, StoreError> {
        self.held().live_from(issuer)
    }
    fn accept_shares(
        &mut self,
        issuer: IdentityId,
        ticket: Option<&Ticket>,
        live: &[SignedGrant],
        ended: &[Ended],
        complete: bool,
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError> {
        self.held_mut().accept(issuer, ticket, live, ended, complete)
    }
}
