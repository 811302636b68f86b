//! The issuer's control-stream machine against a fake store: no vault, no network.

use super::*;
use crate::grant::ErasureReceipt;
use crate::identity::{DeviceKey, Identity, Ticket};
use crate::notice::BreachNotice;
use crate::request::{ConsentRequest, Denial};
use crate::store::StoreError;
use crate::vault::{GrantError, Refusal};

/// A vault reduced to what the issuer machine asks.
#[derive(Default)]
struct Fake {
    knows: bool,
    refused_device: bool,
    rosters_taken: u32,
}

impl IssuerStore for Fake {
    fn knows_peer(&mut self, _: &IdentityId) -> Result<bool, GrantError> {
        Ok(self.knows)
    }
    fn own_key_events(&self) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(Vec::new())
    }
    fn roster(&self) -> Result<Option<Signed<DeviceRoster>>, StoreError> {
        Ok(None)
    }
    fn accept_key_events(&mut self, _: IdentityId, _: &[KeyEvent]) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn accept_roster(&mut self, _: IdentityId, _: &Signed<DeviceRoster>) -> Result<(), StoreError> {
        self.rosters_taken += 1;
        Ok(())
    }
    fn is_refused_device(&self, _: &IdentityId, _: &DeviceId) -> Result<bool, StoreError> {
        Ok(self.refused_device)
    }
    fn receive_request(
        &mut self,
        _: &IdentityId,
        _: &Signed<ConsentRequest>,
        _: Option<&Ticket>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        unreachable!("no request in these tests")
    }
    fn receive_notice(&mut self, _: &IdentityId, _: &Signed<BreachNotice>) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn record_erasure(&mut self, _: &Signed<ErasureReceipt>) -> Result<(), GrantError> {
        Ok(())
    }
    fn denials_for(&self, _: &IdentityId) -> Result<Vec<Signed<Denial>>, StoreError> {
        Ok(Vec::new())
    }
    fn shares_for(&mut self, _: &IdentityId) -> Result<(Vec<SignedGrant>, Vec<Ended>), GrantError> {
        Ok((Vec::new(), Vec::new()))
    }
}

fn session(now: Instant) -> IssuerSession {
    IssuerSession::new(Identity::generate().public(), DeviceKey::generate().public(), now)
}

#[test]
fn a_listing_peer_is_told_its_shares_once_until_they_change() {
    let now = Instant::now();
    let mut store = Fake::default();
    let mut control = session(now);
    let actions = control.on_frame(&mut store, Frame::ListShares, now).unwrap();
    let empty = Frame::Shares { live: Vec::new(), ended: Vec::new() };
    assert_eq!(
        actions,
        [IssuerAction::Listening, IssuerAction::Send(empty), IssuerAction::Told(Default::default())],
        "a stranger learns nothing of this identity's keys or devices"
    );
    assert!(control.on_change(&mut store).unwrap().is_empty(), "nothing changed, nothing told");
}

#[test]
fn more_than_the_rate_of_control_frames_ends_the_connection() {
    let start = Instant::now();
    let mut store = Fake::default();
    let mut control = session(start);
    for _ in 0..MAX_REQUESTS_PER_MINUTE {
        control.on_frame(&mut store, Frame::ListShares, start).unwrap();
    }
    let over = control.on_frame(&mut store, Frame::ListShares, start).unwrap_err();
    assert!(matches!(over, SessionError::TooManyRequests));
    assert!(over.refused(control.peer()).is_some(), "the refusal is logged");
    let later = start + WINDOW + Duration::from_secs(1);
    assert!(control.on_frame(&mut store, Frame::ListShares, later).is_ok(), "a new window");
}

#[test]
fn frames_out_of_place_or_from_a_removed_device_are_refused() {
    let now = Instant::now();
    let mut store = Fake { refused_device: true, ..Fake::default() };
    let mut control = session(now);
    let err = control.on_frame(&mut store, Frame::Sync(vec![0x42]), now).unwrap_err();
    assert!(matches!(err, SessionError::UnexpectedFrame("sync")));
    let alice = Identity::generate();
    let body =
        DeviceRoster { identity: alice.public(), issued_at: 1_000, active: Vec::new(), removed: Vec::new() };
    let roster = Signed::sign(body, &alice).unwrap();
    let err = control.on_frame(&mut store, Frame::Roster(roster), now).unwrap_err();
    assert!(matches!(err, SessionError::RemovedDevice));
    assert_eq!(store.rosters_taken, 0, "a stranger's roster is not stored");
}
