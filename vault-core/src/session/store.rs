//! What the session machines need of the vault, as narrow traits: a machine sees only the
//! handful of operations its conversation uses, so it can be driven by a small fake in tests.
//! [`crate::Vault`] implements each in one place (`vault_impl.rs`).

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
    SharedHave,
};

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

/// What an [`super::IssuerSession`] reads and writes: the peer's standing, its keys and
/// devices, what it delivers (requests, notices, erasure receipts) and what it may learn.
pub trait IssuerStore {
    /// Whether this vault shares with `peer` or knows it (a stranger learns nothing).
    fn knows_peer(&mut self, peer: &IdentityId) -> Result<bool, GrantError>;
    /// This identity's key events, oldest first.
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError>;
    /// This identity's newest device roster, if any.
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError>;
    /// Takes in key events of `peer`; whether anything changed.
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError>;
    /// Takes in a roster of `peer`.
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError>;
    /// Whether `device` of `peer` was removed from its identity.
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError>;
    /// Takes a consent request `peer` delivered, with the way back to the device that
    /// delivered it when known: queued, or why not.
    fn receive_request(
        &mut self,
        peer: &IdentityId,
        request: &Signed<ConsentRequest>,
        reply_to: Option<&Ticket>,
    ) -> Result<Result<(), Refusal>, StoreError>;
    /// Takes a breach notice `peer` delivered; whether it was kept.
    fn receive_notice(
        &mut self,
        peer: &IdentityId,
        notice: &Signed<BreachNotice>,
    ) -> Result<bool, StoreError>;
    /// Records an erasure receipt.
    fn record_erasure(&mut self, receipt: &Signed<ErasureReceipt>) -> Result<(), GrantError>;
    /// The denials of `peer`'s requests.
    fn denials_for(&self, peer: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError>;
    /// The live grants to `peer`, and those that ended and are not confirmed erased.
    fn shares_for(&mut self, peer: &IdentityId) -> Result<(Vec<SignedGrant>, Vec<Ended>), GrantError>;
}

/// What a [`super::GranteeSession`] reads and writes: what this vault delivers to one issuer
/// (its keys and devices, requests, notices, receipts), the answers it takes back, and the
/// shares it holds from that issuer.
pub trait GranteeStore {
    /// This identity's key events, oldest first.
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError>;
    /// This identity's newest device roster, if any.
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError>;
    /// Consent requests queued for `holder`.
    fn undelivered_requests(&self, holder: &IdentityId) -> Result<Vec<Signed<ConsentRequest>>, StoreError>;
    /// Breach notices not yet delivered to `customer`.
    fn undelivered_notices(&self, customer: &IdentityId) -> Result<Vec<Signed<BreachNotice>>, StoreError>;
    /// A request was delivered to `holder`, and accepted there or not.
    fn request_delivered(
        &mut self,
        holder: &IdentityId,
        id: &RequestId,
        accepted: bool,
    ) -> Result<(), StoreError>;
    /// A notice was delivered to `customer`.
    fn notice_delivered(&mut self, customer: &IdentityId, id: &NoticeId) -> Result<(), StoreError>;
    /// Takes denials of requests to `holder`.
    fn accept_denials(&mut self, holder: &IdentityId, denials: &[Signed<Denial>]) -> Result<(), StoreError>;
    /// Takes in key events of `peer`; whether anything changed.
    fn accept_key_events(&mut self, peer: IdentityId, events: &[KeyEvent]) -> Result<bool, StoreError>;
    /// Takes in a roster of `peer`.
    fn accept_roster(&mut self, peer: IdentityId, roster: &Signed<DeviceRoster>) -> Result<(), StoreError>;
    /// Whether `device` of `peer` was removed from its identity.
    fn is_refused_device(&self, peer: &IdentityId, device: &DeviceId) -> Result<bool, StoreError>;
    /// Erasure receipts `issuer` has not confirmed.
    fn unconfirmed_receipts(&self, issuer: IdentityId) -> Result<Vec<Signed<ErasureReceipt>>, ShareError>;
    /// The live shares held from `issuer`.
    fn live_shares_from(&self, issuer: &IdentityId) -> Result<Vec<GrantId>, StoreError>;
    /// Takes the share set `issuer` told; returns the receipts of what ended and was erased.
    fn accept_shares(
        &mut self,
        issuer: IdentityId,
        ticket: Option<&Ticket>,
        live: &[SignedGrant],
        ended: &[Ended],
        complete: bool,
    ) -> Result<Vec<Signed<ErasureReceipt>>, ShareError>;
}
