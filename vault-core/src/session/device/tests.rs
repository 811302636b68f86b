//! The device machine against a fake store: no vault, no network.

use std::collections::VecDeque;

use super::*;
use crate::identity::{DeviceKey, Identity, IdentityId};
use crate::roster::DeviceRoster;
use crate::statement::Signed;
use crate::store::StoreError;
use crate::vault::{EditError, GrantError, Merged, ReplicationError};

/// A vault reduced to what the device machine asks, with what it answers set by the test.
#[derive(Default)]
struct Fake {
    admitted: bool,
    list: Vec<DeviceRecord>,
    docs: VecDeque<Vec<u8>>,
    batches: VecDeque<Vec<u8>>,
    merged: Option<Merged>,
    doc_changes: bool,
    projections_refreshed: u32,
    identity: Option<IdentityId>,
    /// The next roster taken says this device was removed.
    roster_removes: bool,
}

impl DeviceStore for Fake {
    fn may_sync_with(&self, _: &DeviceId) -> Result<bool, StoreError> {
        Ok(self.admitted)
    }
    fn seed_shared_log(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn shared_have(&self, _: &DeviceId) -> Result<SharedHave, StoreError> {
        Ok(SharedHave::default())
    }
    fn devices_for_peer(&mut self) -> Result<Vec<DeviceRecord>, StoreError> {
        Ok(self.list.clone())
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(Vec::new())
    }
    fn rosters_for_devices(&self) -> Result<Vec<Signed<DeviceRoster>>, StoreError> {
        Ok(Vec::new())
    }
    fn device_sync_generate(&mut self, _: &mut DeviceSync) -> Result<Option<Vec<u8>>, EditError> {
        Ok(self.docs.pop_front())
    }
    fn shared_batch(&self, _: &mut SharedHave) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.batches.front().cloned())
    }
    fn merge_devices(&mut self, _: &DeviceId, _: &[DeviceRecord]) -> Result<Merged, StoreError> {
        Ok(self.merged.take().unwrap_or(Merged { removed_here: false, wrote: false }))
    }
    fn keep_own_roster(&mut self, _: &Signed<DeviceRoster>) -> Result<bool, StoreError> {
        if self.roster_removes {
            self.admitted = false;
        }
        Ok(self.roster_removes)
    }
    fn identity(&self) -> IdentityId {
        self.identity.expect("an identity")
    }
    fn accept_key_events(&mut self, _: IdentityId, _: &[KeyEvent]) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn take_shared_have(&mut self, _: &SharedHave) -> Result<bool, ReplicationError> {
        Ok(false)
    }
    fn shared_receive(
        &mut self,
        _: &DeviceId,
        _: &mut SharedHave,
        _: &[u8],
    ) -> Result<bool, ReplicationError> {
        Ok(true)
    }
    fn device_sync_receive(&mut self, _: &mut DeviceSync, _: &[u8]) -> Result<bool, EditError> {
        Ok(self.doc_changes)
    }
    fn refresh_projections(&mut self) -> Result<(), GrantError> {
        self.projections_refreshed += 1;
        Ok(())
    }
}

fn peer() -> DeviceId {
    DeviceKey::generate().public()
}

fn sent(actions: &[DeviceAction]) -> Vec<&DeviceMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            DeviceAction::Send(m) => Some(&**m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_starts_with_what_it_holds_and_sends_the_list_once() {
    let mut store = Fake { admitted: true, identity: Some(Identity::generate().public()), ..Fake::default() };
    store.docs.push_back(vec![0x42, 1]);
    let mut session = DeviceSession::new(peer());
    let start = session.start(&mut store).unwrap();
    assert!(matches!(sent(&start)[..], [DeviceMessage::Have(_)]));
    let first = session.turn(&mut store).unwrap();
    assert!(matches!(sent(&first.actions)[..], [DeviceMessage::List(_), DeviceMessage::Doc(_)]));
    assert!(!first.more, "no batch before the other device said what it holds");
    let second = session.turn(&mut store).unwrap();
    assert!(second.actions.is_empty(), "nothing new, nothing sent: {:?}", second.actions);
}

#[test]
fn batches_go_one_a_turn_once_the_other_side_said_what_it_holds() {
    let mut store = Fake { admitted: true, ..Fake::default() };
    store.batches.push_back(b"batch".to_vec());
    let mut session = DeviceSession::new(peer());
    session.turn(&mut store).unwrap();
    session.on_message(&mut store, DeviceMessage::Have(SharedHave::default())).unwrap();
    let turn = session.turn(&mut store).unwrap();
    assert_eq!(sent(&turn.actions), [&DeviceMessage::Shared(b"batch".to_vec())]);
    assert!(turn.more);
}

#[test]
fn a_peer_no_longer_admitted_is_cut_off() {
    let mut store = Fake { admitted: true, ..Fake::default() };
    let mut session = DeviceSession::new(peer());
    session.turn(&mut store).unwrap();
    store.admitted = false;
    let actions = session.on_message(&mut store, DeviceMessage::Doc(vec![0x42])).unwrap();
    assert_eq!(actions, [DeviceAction::End]);
    let actions = session.on_message(&mut store, DeviceMessage::Shared(vec![1])).unwrap();
    assert_eq!(actions, [DeviceAction::End]);
    assert_eq!(session.turn(&mut store).unwrap().actions, [DeviceAction::End]);
    assert!(!DeviceSession::admits(&store, &session.peer()));
}

#[test]
fn a_device_told_it_was_removed_stops_after_waking_the_others() {
    let mut store =
        Fake { admitted: true, merged: Some(Merged { removed_here: true, wrote: true }), ..Fake::default() };
    let mut session = DeviceSession::new(peer());
    let actions = session.on_message(&mut store, DeviceMessage::List(Vec::new())).unwrap();
    assert_eq!(actions, [DeviceAction::Changed, DeviceAction::End]);
}

#[test]
fn a_roster_saying_this_device_was_removed_ends_the_session() {
    let identity = Identity::generate();
    let roster =
        DeviceRoster { identity: identity.public(), issued_at: 1, active: Vec::new(), removed: Vec::new() };
    let roster = Signed::sign(roster, &identity).unwrap();
    // A roster that removes nobody here: the session goes on (and asks again for what waited).
    let mut store = Fake { admitted: true, ..Fake::default() };
    let mut session = DeviceSession::new(peer());
    assert!(session.on_message(&mut store, DeviceMessage::Roster(roster.clone())).unwrap().is_empty());
    // One that removes this device: the others are woken, and the session ends at once.
    store.roster_removes = true;
    let actions = session.on_message(&mut store, DeviceMessage::Roster(roster)).unwrap();
    assert_eq!(actions, [DeviceAction::Changed, DeviceAction::End]);
}

#[test]
fn a_changed_document_updates_the_projections() {
    let mut store = Fake { admitted: true, doc_changes: true, ..Fake::default() };
    let mut session = DeviceSession::new(peer());
    let actions = session.on_message(&mut store, DeviceMessage::Doc(vec![0x42])).unwrap();
    assert_eq!(actions, [DeviceAction::Changed]);
    assert_eq!(store.projections_refreshed, 1);
    store.doc_changes = false;
    assert!(session.on_message(&mut store, DeviceMessage::Doc(vec![0x42])).unwrap().is_empty());
    assert_eq!(store.projections_refreshed, 1);
}
