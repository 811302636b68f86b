//! The issuer's side of a connection's control stream: what the peer was told (its share set,
//! its denials), whether it listens for changes, and its request rate.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::store::IssuerStore;
use super::{SessionError, frame_name, isolated, log_refusal};
use crate::grant::SignedGrant;
use crate::identity::{DeviceCertificate, DeviceId, IdentityId, Ticket};
use crate::key_event::KeyEvent;
use crate::protocol::{Ended, Frame};
use crate::roster::DeviceRoster;
use crate::statement::Signed;
use crate::statement::{GrantId, RequestId};

/// Control frames a peer may send per minute on one connection.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 120;
const WINDOW: Duration = Duration::from_secs(60);

/// What an audience may learn: its live grants and its ended grants.
pub type ShareSet = (BTreeSet<GrantId>, BTreeSet<GrantId>);

/// The ids in a `Shares` answer.
pub(crate) fn share_set(live: &[SignedGrant], ended: &[Ended]) -> ShareSet {
    (live.iter().map(|g| g.statement().id).collect(), ended.iter().map(Ended::grant).collect())
}

/// What the transport does for an [`IssuerSession`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerAction {
    /// Write this frame on the control stream.
    Send(Frame),
    /// The peer listens for its shares on this connection from now on, until it ends (the node
    /// offers shares only to audiences with no such session).
    Listening,
    /// The peer now knows this share set (it was just sent).
    Told(ShareSet),
    /// The peer offered shares: dial it back as this certificate's identity and device, at the
    /// address this connection came from only (never an address the peer wrote down). If the
    /// offer is noted, answer `OfferAck`.
    DialBack(DeviceCertificate),
}

/// One connection's control stream, on the issuer's side.
#[derive(Debug)]
pub struct IssuerSession {
    peer: IdentityId,
    device: DeviceId,
    told: Option<ShareSet>,
    denials_told: BTreeSet<RequestId>,
    subscribed: bool,
    window: (Instant, u32),
    /// The key events and roster a peer this vault does not know sent on this connection: not
    /// stored (a stranger stores nothing here), unless it delivers a consent request signed by
    /// one of its devices, which needs them to be judged (see `MAX_ROSTER_AGE`).
    unknown_peer_said: Option<Box<StrangerSaid>>,
    /// Where the peer's device was reached from on this connection, kept with a request it
    /// delivers (the holder may add it as a contact from the request).
    reply_to: Option<Ticket>,
}

/// What a peer this vault does not know said of its keys and devices on one connection.
#[derive(Debug, Default)]
struct StrangerSaid {
    events: Vec<KeyEvent>,
    roster: Option<Signed<DeviceRoster>>,
}

impl IssuerSession {
    /// A session with `device` of `peer`, whose hello verified.
    pub fn new(peer: IdentityId, device: DeviceId, now: Instant) -> Self {
        Self {
            peer,
            device,
            told: None,
            denials_told: BTreeSet::new(),
            subscribed: false,
            window: (now, 0),
            unknown_peer_said: None,
            reply_to: None,
        }
    }

    /// The way back to the peer's device as this connection showed it: its certificate and
    /// the addresses the connection came from (validated by the transport, never addresses
    /// the peer merely wrote down). Ignored unless it names the session's identity and device.
    pub fn with_reply_to(mut self, ticket: Ticket) -> Self {
        if ticket.identity() == self.peer && ticket.device() == self.device {
            self.reply_to = Some(ticket);
        }
        self
    }

    /// The peer's identity.
    pub fn peer(&self) -> IdentityId {
        self.peer
    }

    /// Takes a frame the peer sent on the control stream at `now`. An error ends the
    /// connection.
    pub fn on_frame<S: IssuerStore + ?Sized>(
        &mut self,
        vault: &mut S,
        frame: Frame,
        now: Instant,
    ) -> Result<Vec<IssuerAction>, SessionError> {
        if now.saturating_duration_since(self.window.0) > WINDOW {
            self.window = (now, 0);
        }
        self.window.1 = self.window.1.saturating_add(1);
        if self.window.1 > MAX_REQUESTS_PER_MINUTE {
            return Err(SessionError::TooManyRequests);
        }
        isolated("a control frame", || {
            let mut out = Vec::new();
            match frame {
                Frame::ListShares => {
                    if !self.subscribed {
                        out.push(IssuerAction::Listening);
                        // This identity's devices, before its shares: where else to reach it,
                        // and which of its devices to refuse from now on. Only for a peer this
                        // vault shares with or knows: a stranger learns nothing, not even
                        // how many devices there are or where.
                        if vault.knows_peer(&self.peer)? {
                            let events = vault.own_key_events()?;
                            if !events.is_empty() {
                                out.push(IssuerAction::Send(Frame::KeyEvents(events)));
                            }
                            if let Some(roster) = vault.roster()? {
                                out.push(IssuerAction::Send(Frame::Roster(roster)));
                            }
                        }
                    }
                    self.subscribed = true;
                    self.told = None;
                }
                Frame::Offer(ticket) => {
                    // A way back to the identity and device that dialed, nothing more.
                    if ticket.identity() != self.peer || ticket.device() != self.device {
                        return Err(SessionError::OfferForAnotherDevice);
                    }
                    return Ok(vec![IssuerAction::DialBack(*ticket.certificate())]);
                }
                Frame::Request(request) => {
                    let id = request.statement().id;
                    // A request is what makes a stranger known: its roster is judged with it.
                    if request.signed_by().is_some()
                        && let Some(said) = self.unknown_peer_said.take()
                    {
                        let StrangerSaid { events, roster } = *said;
                        vault.accept_key_events(self.peer, &events)?;
                        if let Some(roster) = roster {
                            vault.accept_roster(self.peer, &roster)?;
                        }
                    }
                    let accepted = vault.receive_request(&self.peer, &request, self.reply_to.as_ref())?;
                    if let Err(why) = &accepted {
                        log_refusal(&self.peer, why);
                    }
                    let ack = Frame::RequestAck { request: id, accepted: accepted.is_ok() };
                    return Ok(vec![IssuerAction::Send(ack)]);
                }
                Frame::Notice(notice) => {
                    let kept = vault.receive_notice(&self.peer, &notice)?;
                    let ack = Frame::NoticeAck { notice: notice.statement().id, kept };
                    return Ok(vec![IssuerAction::Send(ack)]);
                }
                Frame::KeyEvents(events) => {
                    // Kept, like a roster, only from a peer this vault knows.
                    if vault.knows_peer(&self.peer)? {
                        vault.accept_key_events(self.peer, &events)?;
                    } else if events.len() <= 64 {
                        self.unknown_peer_said.get_or_insert_with(Default::default).events = events;
                    }
                    return Ok(Vec::new());
                }
                Frame::Roster(roster) => {
                    if vault.knows_peer(&self.peer)? {
                        vault.accept_roster(self.peer, &roster)?;
                    } else {
                        self.unknown_peer_said.get_or_insert_with(Default::default).roster = Some(roster);
                    }
                    if vault.is_refused_device(&self.peer, &self.device)? {
                        return Err(SessionError::RemovedDevice);
                    }
                    return Ok(Vec::new());
                }
                Frame::Erased(receipt) => {
                    if receipt.statement().grantee != self.peer {
                        return Err(SessionError::ReceiptFromAnotherIdentity);
                    }
                    if let Err(e) = vault.record_erasure(&receipt) {
                        tracing::debug!(error = %e, "ignoring an erasure receipt");
                    }
                    self.told = None;
                }
                other => return Err(SessionError::UnexpectedFrame(frame_name(&other))),
            }
            out.extend(self.tell(vault)?);
            Ok(out)
        })
    }

    /// The vault changed (here or in another process): tells a listening peer what is new.
    pub fn on_change<S: IssuerStore + ?Sized>(
        &mut self,
        vault: &mut S,
    ) -> Result<Vec<IssuerAction>, SessionError> {
        isolated("telling a peer its shares", || self.tell(vault))
    }

    /// Denials not told yet, then the share set when it changed since it was last told.
    fn tell<S: IssuerStore + ?Sized>(&mut self, vault: &mut S) -> Result<Vec<IssuerAction>, SessionError> {
        let mut out = Vec::new();
        if !self.subscribed {
            return Ok(out);
        }
        // The answers to the peer's requests: denials here, approvals as grants below.
        for denial in vault.denials_for(&self.peer)? {
            if self.denials_told.insert(denial.statement().request) {
                out.push(IssuerAction::Send(Frame::Denied(denial)));
            }
        }
        let (live, ended) = vault.shares_for(&self.peer)?;
        let now = share_set(&live, &ended);
        if self.told.as_ref() != Some(&now) {
            out.push(IssuerAction::Send(Frame::Shares { live, ended }));
            out.push(IssuerAction::Told(now.clone()));
            self.told = Some(now);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
