//! A session between two devices of one identity (ALPN `vault/device/1`, messages in
//! [`crate::DeviceMessage`]): the customer's document by the Automerge sync protocol, the list
//! of devices, the identity's key events (a rotation made on one device reaches every other,
//! and a device whose key it replaced drops it), the newest device roster the identity key
//! signed (so a device without that key can hand it to peers), and the sharing state (grants,
//! contacts, requests, the access log: each side says what it holds, then sends what the other
//! lacks, see the vault's replication).
//!
//! Only an active device of the identity is admitted ([`DeviceSession::admits`]); a device
//! removed while connected is cut off at its next message or turn; a device that learns it was
//! removed ends the session.
//!
//! The transport calls [`DeviceSession::start`] once, then alternates [`DeviceSession::turn`]
//! (what this side has to say now) with [`DeviceSession::on_message`] (what the other side
//! said) and wake-ups, writing every [`DeviceAction::Send`] in order.

use super::SessionError;
use super::store::DeviceStore;
use crate::identity::DeviceId;
use crate::key_event::KeyEvent;
use crate::protocol::device::DeviceMessage;
use crate::vault::{DeviceRecord, DeviceSync, SharedHave};

/// What the transport does for a [`DeviceSession`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// Write this message.
    Send(Box<DeviceMessage>),
    /// The vault changed: wake the other sessions (they look again at whom they admit).
    Changed,
    /// End the session (the peer is no longer admitted, or this device was removed).
    End,
}

impl DeviceAction {
    fn send(message: DeviceMessage) -> Self {
        DeviceAction::Send(Box::new(message))
    }
}

/// What one turn of a [`DeviceSession`] produced.
#[derive(Debug, Default)]
pub struct DeviceTurn {
    /// What to do, in order.
    pub actions: Vec<DeviceAction>,
    /// More sharing state waits to be sent: take another turn once what the other device sent
    /// was read, without waiting for a change. One batch goes per turn, so two devices catching
    /// up with each other never both wait on a full stream.
    pub more: bool,
}

/// One session with another device of this identity.
#[derive(Debug)]
pub struct DeviceSession {
    peer: DeviceId,
    doc: DeviceSync,
    list_sent: Option<Vec<DeviceRecord>>,
    keys_sent: Option<Vec<KeyEvent>>,
    /// What the other device holds of the sharing state: unknown until it says.
    theirs: Option<SharedHave>,
}

impl DeviceSession {
    /// A session with `peer`.
    pub fn new(peer: DeviceId) -> Self {
        Self { peer, doc: DeviceSync::default(), list_sent: None, keys_sent: None, theirs: None }
    }

    /// The other device.
    pub fn peer(&self) -> DeviceId {
        self.peer
    }

    /// Whether `peer` may hold a session with this device: an active device of this identity
    /// other than this one, while this one is active too (a failing store says no).
    pub fn admits<S: DeviceStore + ?Sized>(store: &S, peer: &DeviceId) -> bool {
        store.may_sync_with(peer).unwrap_or(false)
    }

    /// The session's first message: what this device holds of the sharing state.
    pub fn start<S: DeviceStore + ?Sized>(
        &mut self,
        store: &mut S,
    ) -> Result<Vec<DeviceAction>, SessionError> {
        store.seed_shared_log()?;
        Ok(vec![DeviceAction::send(DeviceMessage::Have(store.shared_have(&self.peer)?))])
    }

    /// What this side has to say now: key events, the device list and rosters when they
    /// changed, the document's next sync message, one batch of sharing state.
    pub fn turn<S: DeviceStore + ?Sized>(&mut self, store: &mut S) -> Result<DeviceTurn, SessionError> {
        let mut turn = DeviceTurn::default();
        if !Self::admits(store, &self.peer) {
            turn.actions.push(DeviceAction::End);
            return Ok(turn);
        }
        let list = store.devices_for_peer()?;
        // Key events before rosters: a roster signed by a rotated key is judged by them.
        let keys = store.own_key_events()?;
        if !keys.is_empty() && self.keys_sent.as_ref() != Some(&keys) {
            turn.actions.push(DeviceAction::send(DeviceMessage::Keys(keys.clone())));
            self.keys_sent = Some(keys);
            self.list_sent = None;
        }
        if self.list_sent.as_ref() != Some(&list) {
            turn.actions.push(DeviceAction::send(DeviceMessage::List(list.clone())));
            self.list_sent = Some(list);
            for roster in store.rosters_for_devices()? {
                turn.actions.push(DeviceAction::send(DeviceMessage::Roster(roster)));
            }
        }
        if let Some(message) = store.device_sync_generate(&mut self.doc)? {
            turn.actions.push(DeviceAction::send(DeviceMessage::Doc(message)));
        }
        if let Some(theirs) = self.theirs.as_mut()
            && let Some(batch) = store.shared_batch(theirs)?
        {
            turn.actions.push(DeviceAction::send(DeviceMessage::Shared(batch)));
            turn.more = true;
        }
        Ok(turn)
    }

    /// Takes a message the other device sent.
    pub fn on_message<S: DeviceStore + ?Sized>(
        &mut self,
        store: &mut S,
        message: DeviceMessage,
    ) -> Result<Vec<DeviceAction>, SessionError> {
        let mut out = Vec::new();
        match message {
            DeviceMessage::List(list) => {
                let merged = store.merge_devices(&self.peer, &list)?;
                if merged.wrote {
                    // Other sessions look again at whom they admit.
                    out.push(DeviceAction::Changed);
                }
                if merged.removed_here {
                    tracing::warn!("this device was removed from its identity on another device");
                    out.push(DeviceAction::End);
                }
            }
            DeviceMessage::Roster(roster) => {
                let kept = store.keep_own_roster(&roster)?;
                if !Self::admits(store, &self.peer) {
                    // The identity key's word that this device (or the other) was removed: a
                    // removed device calling is handed it before it is turned away.
                    tracing::warn!("this device, or the one it talks to, was removed from the identity");
                    if kept {
                        out.push(DeviceAction::Changed);
                    }
                    out.push(DeviceAction::End);
                    return Ok(out);
                }
                if kept {
                    // Entries of a device this one did not know yet waited: ask again.
                    out.push(DeviceAction::send(DeviceMessage::Have(store.shared_have(&self.peer)?)));
                }
            }
            DeviceMessage::Keys(events) => {
                let identity = store.identity();
                if store.accept_key_events(identity, &events)? {
                    out.push(DeviceAction::Changed);
                }
            }
            DeviceMessage::Have(have) => {
                // A fork (a device restored from an older copy) shows in what the other device
                // holds: repaired before anything is sent.
                if store.take_shared_have(&have)? {
                    out.push(DeviceAction::Changed);
                    out.push(DeviceAction::send(DeviceMessage::Have(store.shared_have(&self.peer)?)));
                }
                self.theirs = Some(have);
            }
            DeviceMessage::Shared(_) | DeviceMessage::Doc(_) if !Self::admits(store, &self.peer) => {
                out.push(DeviceAction::End);
            }
            DeviceMessage::Shared(bytes) => {
                let mut believed = self.theirs.take().unwrap_or_default();
                let changed = store.shared_receive(&self.peer, &mut believed, &bytes);
                self.theirs = Some(believed);
                if changed? {
                    out.push(DeviceAction::Changed);
                }
            }
            DeviceMessage::Doc(bytes) => {
                if store.device_sync_receive(&mut self.doc, &bytes)? {
                    store.refresh_projections()?;
                    out.push(DeviceAction::Changed);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
