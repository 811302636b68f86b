//! Serving a grant's projection to one device of its grantee: what an issuer-side grant stream
//! ([`crate::ServeStream`]) asks of the vault.
//!
//! Each stream owns its Automerge sync state ([`ServeSync`]): two devices of one grantee, or two
//! connections of one device, never share one. What a stream learns of a device's copy (the
//! heads both sides hold) is recorded by (grant, device) in memory, and persisted by (grant,
//! device, epoch) with each message that carries data, so that a later stream to that device
//! resumes without resending, and so that updates of the projection know which copies hold
//! what ([`Serving::grantee_holds`]).
//!
//! Every Automerge call fed with a peer's bytes is isolated here: a panic refuses the stream
//! and drops the projection this process had loaded (it may be half-updated).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::ChangeHash;
use automerge::sync::{State as SyncState, SyncDoc};
use serde::{Deserialize, Serialize};

use super::{GrantError, GrantInfo};
use crate::identity::{DeviceId, IdentityId};
use crate::protocol::{decode_sync_body, encode_sync_body};
use crate::statement::GrantId;
use crate::store::StoreError;
use crate::vault::Vault;
use crate::vault::audit::{AuditEvent, AuditKind};
use crate::vault::settings::Setting;

/// Devices of one grantee whose copies of a grant are tracked. A grant served to more devices
/// is never again known to be held: each retraction then starts a new epoch.
pub(crate) const MAX_DEVICES_PER_GRANT: usize = 16;

/// A network request was refused. The peer is told nothing more than "refused".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Not a live grant for this peer, a malformed message, or a change to a read-only copy.
    #[error("refused")]
    Refused,
    /// The grant's projection could not be brought up to date.
    #[error("the grant's projection failed")]
    Grant(#[source] Box<GrantError>),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GrantError> for ServeError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::Store(s) => ServeError::Store(s),
            other => ServeError::Grant(Box::new(other)),
        }
    }
}

/// The sync state of one serving stream, with the projection epoch it belongs to.
#[derive(Debug, Default)]
pub(crate) struct ServeSync {
    pub(crate) epoch: u64,
    pub(crate) state: SyncState,
}

impl ServeSync {
    /// Starts again from nothing when the projection moved to another epoch: a state of the old
    /// epoch means nothing for the new document.
    fn align(&mut self, epoch: u64) {
        if self.epoch != epoch {
            *self = ServeSync { epoch, state: SyncState::new() };
        }
    }
}

/// What is known of one device's copy of a grant: its epoch and the heads it holds.
#[derive(Clone, Debug)]
struct Held {
    epoch: u64,
    heads: Vec<ChangeHash>,
}

/// What the serving streams of this process learned of each device's copy of one grant.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    devices: HashMap<DeviceId, Held>,
    /// More devices than [`MAX_DEVICES_PER_GRANT`] were served.
    overflow: bool,
}

/// Acknowledgements by grant (then by device), in memory.
pub(crate) type ServeStates = HashMap<GrantId, Acks>;

/// Persisted per grant: each device's epoch and sync state as of the last message that carried
/// data to it.
#[derive(Serialize, Deserialize, Default)]
struct Stored {
    #[serde(default)]
    devices: Vec<StoredDevice>,
    #[serde(default)]
    overflow: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    device: [u8; 32],
    epoch: u64,
    /// Empty once the device's epoch is over.
    #[serde(default)]
    state: Vec<u8>,
}

fn sorted(heads: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads
}

/// Serving grants to their grantees: sync states, what was served, the node's addresses: `vault.serving()`, `vault.serving_mut()`.
#[derive(Debug)]
pub struct Serving<V> {
    pub(in crate::vault) vault: V,
}

impl<V: Deref<Target = Vault>> Serving<V> {
    pub(in crate::vault) fn new(vault: V) -> Self {
        Self { vault }
    }
}

impl<V: Deref<Target = Vault>> Serving<V> {
    fn check_serving(&self, peer: &IdentityId, id: &GrantId) -> Result<GrantInfo, ServeError> {
        if self.vault.tampered.is_some() || self.vault.contacts().is_blocked(peer)? {
            return Err(ServeError::Refused);
        }
        match self.vault.grants().get(id)? {
            Some(info) if info.is_live() && info.grant.statement().audience == *peer => Ok(info),
            _ => Err(ServeError::Refused),
        }
    }

    fn stored_states(&self, id: &GrantId) -> Result<Stored, StoreError> {
        Ok(self
            .vault
            .settings()
            .get(Setting::ServeStates(id))?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// True when every copy of grant `id` known to this vault is known to hold exactly the
    /// projection's `heads` of `epoch`, and there is at least one such copy.
    ///
    /// The rule, conservatively: a copy is a device of the grantee that a serving stream ever
    /// sent data to or heard from (in this process or, persisted, in any earlier one). One
    /// device that holds less (or holds an older epoch, or is not known to hold anything)
    /// means a retraction must start a new epoch, since that device would otherwise receive
    /// the retracted value in the history. Past [`MAX_DEVICES_PER_GRANT`] devices nothing is
    /// known to be held. A device this vault never served is not counted: it receives the
    /// epoch whole, history included (see docs/threat-model.md, "What sharing cannot
    /// guarantee").
    pub(super) fn grantee_holds(
        &self,
        id: &GrantId,
        epoch: u64,
        heads: &[ChangeHash],
    ) -> Result<bool, StoreError> {
        let stored = self.stored_states(id)?;
        let memory = self.vault.issued.serve_states.get(id);
        if stored.overflow || memory.is_some_and(|a| a.overflow) || heads.is_empty() {
            return Ok(false);
        }
        let mut known: HashMap<DeviceId, Held> = HashMap::new();
        for d in stored.devices {
            let Ok(device) = DeviceId::from_bytes(d.device) else { return Ok(false) };
            let heads = match SyncState::decode(&d.state) {
                Ok(state) if d.epoch == epoch => state.shared_heads,
                _ => Vec::new(),
            };
            known.insert(device, Held { epoch: d.epoch, heads });
        }
        // What streams of this process heard is fresher than what was persisted.
        for (device, held) in memory.map(|a| &a.devices).into_iter().flatten() {
            match known.get(device) {
                Some(k) if k.epoch > held.epoch => {}
                _ => {
                    known.insert(*device, held.clone());
                }
            }
        }
        let want = sorted(heads);
        Ok(!known.is_empty() && known.values().all(|h| h.epoch == epoch && sorted(&h.heads) == want))
    }
}

impl<V: DerefMut<Target = Vault>> Serving<V> {
    /// The epoch and heads of grant `id`'s projection when no device of its grantee is known
    /// to hold them (in this process, or persisted by an earlier one); `None` when one does, or
    /// when there is no projection yet. A node whose grantee let its session go idle offers
    /// again when this says the grantee is behind (see vault-sync's notify).
    pub fn grantee_behind(&mut self, id: &GrantId) -> Result<Option<(u64, Vec<ChangeHash>)>, StoreError> {
        let epoch = self.vault.projections_mut().epoch(id)?;
        let Some(doc) = self.vault.projections_mut().doc(id)? else { return Ok(None) };
        let want = sorted(&doc.get_heads());
        let holds = |epoch_held: u64, heads: &[ChangeHash]| epoch_held == epoch && sorted(heads) == want;
        let memory = self.vault.issued.serve_states.get(id);
        if memory.is_some_and(|a| a.devices.values().any(|h| holds(h.epoch, &h.heads))) {
            return Ok(None);
        }
        let stored = self.stored_states(id)?;
        let persisted = stored
            .devices
            .iter()
            .any(|d| SyncState::decode(&d.state).is_ok_and(|state| holds(d.epoch, &state.shared_heads)));
        Ok(if persisted { None } else { Some((epoch, want)) })
    }

    /// Whether a message generated for `id` at `epoch` may still be sent to `peer`.
    pub(crate) fn serve_still_current(&mut self, peer: &IdentityId, id: &GrantId, epoch: u64) -> bool {
        self.check_serving(peer, id).is_ok()
            && self.vault.projections_mut().epoch(id).is_ok_and(|e| e == epoch)
    }

    /// Starts serving grant `id` to `device` of `peer` on a new stream: the sync state to
    /// resume from (what that device held when data was last sent to it in this epoch).
    pub(crate) fn serve_open(
        &mut self,
        peer: &IdentityId,
        device: &DeviceId,
        id: &GrantId,
    ) -> Result<ServeSync, ServeError> {
        self.check_serving(peer, id)?;
        let epoch = self.vault.projections_mut().epoch(id)?;
        let stored = self.stored_states(id)?;
        let state = stored
            .devices
            .iter()
            .find(|d| d.device == *device.as_bytes() && d.epoch == epoch)
            .and_then(|d| SyncState::decode(&d.state).ok())
            .unwrap_or_default();
        Ok(ServeSync { epoch, state })
    }

    /// The next sync message for grant `id` on a stream to `device`, if its copy lacks
    /// anything, and whether it carries data. A message that carries data persists the
    /// stream's state and is logged.
    pub(crate) fn serve_generate(
        &mut self,
        peer: &IdentityId,
        device: &DeviceId,
        id: &GrantId,
        sync: &mut ServeSync,
    ) -> Result<Option<(Vec<u8>, bool)>, ServeError> {
        let info = self.check_serving(peer, id)?;
        let epoch = self.vault.projections_mut().epoch(id)?;
        sync.align(epoch);
        let Some(doc) = self.vault.projections_mut().doc(id)? else { return Ok(None) };
        // Automerge sends its whole document instead of changes when they are over a third of
        // its changes (to a peer that reads version 2 messages). A projection is one large
        // change plus one per edit, so each of its first edits would ship all of it again and
        // make the grantee re-read all of it. The whole document is for a grantee that has
        // nothing yet; one that has something is answered with changes.
        if sync.state.their_heads.as_ref().is_some_and(|h| !h.is_empty())
            && let Some(caps) = sync.state.their_capabilities.as_mut()
        {
            caps.retain(|c| *c != automerge::sync::Capability::MessageV2);
        }
        // The state holds what the peer said (its heads, its bloom filter).
        let generated = catch_unwind(AssertUnwindSafe(|| doc.sync().generate_sync_message(&mut sync.state)));
        let message = match generated {
            Ok(message) => message,
            Err(_) => return Err(self.peer_made_automerge_panic(id)),
        };
        let Some(message) = message else { return Ok(None) };
        let carries_data = !message.changes.is_empty();
        let bytes = encode_sync_body(epoch, &message.encode());
        if carries_data {
            // Logged before it leaves: at once, or in the node's next group commit
            // (served_log.rs), which the node waits for before sending.
            let g = info.grant.statement();
            let mut event = AuditEvent::new(self.vault.now(), AuditKind::SyncServed);
            event.peer = Some(*peer);
            event.grant = Some(*id);
            event.fields = g.fields.iter().map(ToString::to_string).collect();
            event.bytes = Some(bytes.len() as u64);
            self.log_served(*id, *device, epoch, sync.state.encode(), event)?;
        }
        Ok(Some((bytes, carries_data)))
    }

    /// Takes a sync message from `device` of the grantee of `id`. A grantee has nothing of its
    /// own to send: a message carrying any change is refused and logged before the projection
    /// is touched. An accepted message writes nothing: what it acknowledges is noted in memory
    /// and persisted with the next message that carries data.
    pub(crate) fn serve_receive(
        &mut self,
        peer: &IdentityId,
        device: &DeviceId,
        id: &GrantId,
        sync: &mut ServeSync,
        bytes: &[u8],
    ) -> Result<(), ServeError> {
        self.check_serving(peer, id)?;
        let (their_epoch, bytes) = decode_sync_body(bytes).map_err(|_| ServeError::Refused)?;
        let epoch = self.vault.projections_mut().epoch(id)?;
        sync.align(epoch);
        if their_epoch != epoch {
            // About a copy the grantee is replacing: nothing in it concerns this epoch.
            return Ok(());
        }
        let message = crate::doc::sync_message(bytes).ok_or(ServeError::Refused)?;
        if !message.changes.is_empty() {
            let mut event = AuditEvent::new(self.vault.now(), AuditKind::ChangeRefused);
            event.peer = Some(*peer);
            event.grant = Some(*id);
            event.detail = Some("the grantee tried to change its read-only copy".into());
            self.vault.write(|v| v.access_log().append(&event))?;
            return Err(ServeError::Refused);
        }
        let doc = self.vault.projections_mut().doc(id)?.ok_or(ServeError::Refused)?;
        let received =
            catch_unwind(AssertUnwindSafe(|| doc.sync().receive_sync_message(&mut sync.state, message)));
        match received {
            Ok(Ok(())) => {
                self.note_held(id, device, epoch, &sync.state.shared_heads);
                Ok(())
            }
            Ok(Err(_)) => Err(ServeError::Refused),
            Err(_) => Err(self.peer_made_automerge_panic(id)),
        }
    }

    /// A panic on a peer's bytes fails that stream only; the possibly half-updated projection
    /// this process loaded is dropped (it is reloaded from storage on next use).
    fn peer_made_automerge_panic(&mut self, id: &GrantId) -> ServeError {
        tracing::warn!("a grantee's sync message made the sync engine panic; refusing that stream");
        self.vault.issued.projections.remove(id);
        ServeError::Refused
    }

    /// Notes that `device`'s copy of `id` holds `heads` of `epoch`.
    fn note_held(&mut self, id: &GrantId, device: &DeviceId, epoch: u64, heads: &[ChangeHash]) {
        let acks = self.vault.issued.serve_states.entry(*id).or_default();
        if acks.devices.len() >= MAX_DEVICES_PER_GRANT && !acks.devices.contains_key(device) {
            acks.overflow = true;
            return;
        }
        acks.devices.insert(*device, Held { epoch, heads: heads.to_vec() });
    }

    /// Persists a stream's state for `device` (inside the caller's write transaction).
    pub(super) fn store_serve_state(
        &mut self,
        id: &GrantId,
        device: &DeviceId,
        epoch: u64,
        state: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut stored = self.stored_states(id)?;
        let count = stored.devices.len();
        match stored.devices.iter_mut().find(|d| d.device == *device.as_bytes()) {
            Some(d) => {
                d.epoch = epoch;
                d.state = state;
            }
            None if count < MAX_DEVICES_PER_GRANT => {
                stored.devices.push(StoredDevice { device: *device.as_bytes(), epoch, state });
            }
            None => stored.overflow = true,
        }
        let body = serde_json::to_vec(&stored).expect("serializes");
        self.vault.settings().put(Setting::ServeStates(id), &body)
    }

    /// A new epoch of `id` starts (inside the caller's write transaction): the states of the
    /// old epochs mean nothing for it, but which devices hold a copy is kept (none of them is
    /// known to hold the new epoch yet).
    pub(super) fn serve_states_new_epoch(&mut self, id: &GrantId, epoch: u64) -> Result<(), StoreError> {
        self.vault.settings().delete(Setting::LegacyServeState(id, epoch.saturating_sub(1)))?;
        let mut stored = self.stored_states(id)?;
        if stored.devices.iter().any(|d| !d.state.is_empty()) {
            for d in &mut stored.devices {
                d.state.clear();
            }
            let body = serde_json::to_vec(&stored).expect("serializes");
            self.vault.settings().put(Setting::ServeStates(id), &body)?;
        }
        Ok(())
    }

    /// Forgets what serving streams knew of the copies of `id` (inside the caller's write
    /// transaction), once it is no longer served.
    pub(super) fn forget_serve_states(&mut self, id: &GrantId) -> Result<(), StoreError> {
        // The devices served are whose erasure receipts the grant now waits for.
        let mut served: Vec<DeviceId> = self
            .stored_states(id)?
            .devices
            .iter()
            .filter_map(|d| DeviceId::from_bytes(d.device).ok())
            .collect();
        served.extend(
            self.vault
                .issued
                .serve_states
                .get(id)
                .map(|a| a.devices.keys().copied().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        self.vault.grants().note_served(id, &served)?;
        self.vault.issued.serve_states.remove(id);
        self.vault.settings().delete(Setting::ServeStates(id))
    }
}
