//! The grantee's side of a connection's control stream: consent requests to deliver, the
//! share set the issuer tells (within a cap), receipts to send for what ended, and which
//! share streams to open or reopen.

use std::collections::BTreeSet;
use std::time::Duration;

use super::store::GranteeStore;
use super::{SessionError, frame_name, isolated};
use crate::grant::SignedGrant;
use crate::identity::{IdentityId, Ticket};
use crate::protocol::{Ended, Frame};
use crate::statement::{GrantId, NoticeId, RequestId};

/// Live shares this vault keeps from one issuer; grants beyond are ignored.
pub const MAX_SHARES_PER_ISSUER: usize = 64;
/// How long a live session waits before reopening a share stream that ended while its grant
/// is still live.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// What a sync exchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Live shares from the peer.
    pub live: usize,
    /// Shares whose copy changed.
    pub updated: usize,
    /// Shares erased because they ended.
    pub erased: usize,
    /// Consent requests delivered and accepted by the peer.
    pub delivered: usize,
    /// Consent requests the peer did not accept (too many, or refused).
    pub not_accepted: usize,
}

/// What the transport does for a [`GranteeSession`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GranteeAction {
    /// Write this frame on the control stream.
    Send(Box<Frame>),
    /// Open a stream for this share after `after` (zero: now) and drive a [`super::ShareStream`]
    /// on it; report its end with [`GranteeSession::on_stream_end`].
    OpenStream {
        /// The share.
        grant: GrantId,
        /// How long to wait first.
        after: Duration,
    },
    /// The issuer listed its shares: an offer it made is answered.
    OfferAnswered,
    /// The vault changed: wake whoever watches it.
    Changed,
    /// Everything is exchanged (a one-shot session): end the session.
    Done,
}

/// Something sent that the issuer acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owed {
    Request(RequestId),
    Notice(NoticeId),
}

/// One connection's control stream, on the grantee's side.
#[derive(Debug)]
pub struct GranteeSession {
    issuer: IdentityId,
    ticket: Option<Ticket>,
    live: bool,
    /// Shares with a stream (one-shot: ever opened, so none is opened twice).
    streaming: BTreeSet<GrantId>,
    /// Shares whose stream runs now.
    running: BTreeSet<GrantId>,
    got_shares: bool,
    /// Requests and notices sent and not acknowledged yet.
    unanswered: BTreeSet<Owed>,
    report: SyncReport,
}

impl GranteeSession {
    /// A session with `issuer` (whose hello matched `ticket`, kept as the way back). With
    /// `live`, it lasts until the connection drops; otherwise it is done once everything is
    /// exchanged.
    pub fn new(issuer: IdentityId, ticket: Option<Ticket>, live: bool) -> Self {
        Self {
            issuer,
            ticket,
            live,
            streaming: BTreeSet::new(),
            running: BTreeSet::new(),
            got_shares: false,
            unanswered: BTreeSet::new(),
            report: SyncReport::default(),
        }
    }

    /// Whether the issuer has yet to answer something this session sent: the share list, or a
    /// request or notice it acknowledges. A live session is not idle while it waits (the
    /// answer may be on its way from a busy peer), and one that ends waiting has not delivered.
    pub fn awaits_answer(&self) -> bool {
        !self.got_shares || !self.unanswered.is_empty()
    }

    /// Whether a request or notice this session sent is not acknowledged yet.
    pub fn owes_acknowledgement(&self) -> bool {
        !self.unanswered.is_empty()
    }

    /// What the session exchanged so far.
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// The first frames: this identity's device roster, queued consent requests (each is
    /// acknowledged), then `ListShares`.
    pub fn start<S: GranteeStore + ?Sized>(
        &mut self,
        vault: &mut S,
    ) -> Result<Vec<GranteeAction>, SessionError> {
        let mut out: Vec<GranteeAction> = Vec::new();
        let events = vault.own_key_events()?;
        if !events.is_empty() {
            out.push(GranteeAction::Send(Box::new(Frame::KeyEvents(events))));
        }
        if let Some(roster) = vault.roster()? {
            out.push(GranteeAction::Send(Box::new(Frame::Roster(roster))));
        }
        let requests = vault.undelivered_requests(&self.issuer)?;
        let notices = vault.undelivered_notices(&self.issuer)?;
        self.unanswered = requests.iter().map(|r| Owed::Request(r.statement().id)).collect();
        self.unanswered.extend(notices.iter().map(|n| Owed::Notice(n.statement().id)));
        out.extend(requests.into_iter().map(|r| GranteeAction::Send(Box::new(Frame::Request(Box::new(r))))));
        out.extend(notices.into_iter().map(|n| GranteeAction::Send(Box::new(Frame::Notice(n)))));
        out.push(GranteeAction::Send(Box::new(Frame::ListShares)));
        Ok(out)
    }

    /// Takes a frame the issuer sent on the control stream. An error ends the session.
    pub fn on_frame<S: GranteeStore + ?Sized>(
        &mut self,
        vault: &mut S,
        frame: Frame,
    ) -> Result<Vec<GranteeAction>, SessionError> {
        isolated("an issuer's control frame", || match frame {
            Frame::Shares { live, ended } => self.shares(vault, live, &ended, true),
            Frame::Ended(e) => self.shares(vault, Vec::new(), &[e], false),
            Frame::RequestAck { request, accepted } => {
                self.unanswered.remove(&Owed::Request(request));
                vault.request_delivered(&self.issuer, &request, accepted)?;
                if accepted {
                    self.report.delivered += 1;
                } else {
                    self.report.not_accepted += 1;
                }
                Ok(vec![GranteeAction::Changed])
            }
            Frame::NoticeAck { notice, kept } => {
                self.unanswered.remove(&Owed::Notice(notice));
                vault.notice_delivered(&self.issuer, &notice)?;
                if !kept {
                    tracing::warn!(%notice, "the customer's vault did not keep a breach notice");
                }
                Ok(vec![GranteeAction::Changed])
            }
            Frame::Denied(denial) => {
                vault.accept_denials(&self.issuer, &[denial])?;
                Ok(vec![GranteeAction::Changed])
            }
            Frame::KeyEvents(events) => {
                // Judged by the chain itself; a conflicting chain is refused inside.
                vault.accept_key_events(self.issuer, &events)?;
                Ok(Vec::new())
            }
            Frame::Roster(roster) => {
                vault.accept_roster(self.issuer, &roster)?;
                match &self.ticket {
                    Some(t) if vault.is_refused_device(&self.issuer, &t.device())? => {
                        Err(SessionError::RemovedDevice)
                    }
                    _ => Ok(Vec::new()),
                }
            }
            other => Err(SessionError::UnexpectedFrame(frame_name(&other))),
        })
    }

    /// Erasure receipts were signed outside this session (a seller's mirror confirmed erasing
    /// its rows): send the issuer's, so a live session does not hold them until it reconnects.
    pub fn on_receipts_signed<S: GranteeStore + ?Sized>(
        &mut self,
        vault: &mut S,
    ) -> Result<Vec<GranteeAction>, SessionError> {
        Ok(vault
            .unconfirmed_receipts(self.issuer)?
            .into_iter()
            .map(|r| GranteeAction::Send(Box::new(Frame::Erased(r))))
            .collect())
    }

    /// The issuer closed the control stream: a one-shot session is done, a live one failed.
    pub fn on_closed(&mut self) -> Result<Vec<GranteeAction>, SessionError> {
        if self.live { Err(SessionError::Closed) } else { Ok(vec![GranteeAction::Done]) }
    }

    /// A share stream ended: `changed` tells whether it changed the copy, `None` when it
    /// failed. In a live session, a stream that ended while its grant is still live is reopened
    /// after a pause, so a passing error never leaves it stale.
    pub fn on_stream_end<S: GranteeStore + ?Sized>(
        &mut self,
        vault: &mut S,
        grant: GrantId,
        changed: Option<bool>,
    ) -> Result<Vec<GranteeAction>, SessionError> {
        let mut out = Vec::new();
        self.running.remove(&grant);
        self.report.updated += usize::from(changed == Some(true));
        if self.live {
            self.streaming.remove(&grant);
            let still_live = vault.live_shares_from(&self.issuer)?.contains(&grant);
            if still_live && self.streaming.insert(grant) {
                self.running.insert(grant);
                out.push(GranteeAction::OpenStream { grant, after: REOPEN_AFTER });
            }
        }
        if !self.live && self.got_shares && self.running.is_empty() {
            out.push(GranteeAction::Done);
        }
        Ok(out)
    }

    fn shares<S: GranteeStore + ?Sized>(
        &mut self,
        vault: &mut S,
        live: Vec<SignedGrant>,
        ended: &[Ended],
        complete: bool,
    ) -> Result<Vec<GranteeAction>, SessionError> {
        self.got_shares = true;
        let mut out = vec![GranteeAction::OfferAnswered];
        let held = vault.live_shares_from(&self.issuer)?;
        let before = held.len();
        let live = within_share_cap(&held, live);
        let receipts = vault.accept_shares(self.issuer, self.ticket.as_ref(), &live, ended, complete)?;
        let now_live = vault.live_shares_from(&self.issuer)?;
        self.report.erased += before.saturating_sub(now_live.len()).max(receipts.len().min(ended.len()));
        self.report.live = now_live.len();
        out.extend(receipts.into_iter().map(|r| GranteeAction::Send(Box::new(Frame::Erased(r)))));
        for grant in now_live {
            if self.streaming.insert(grant) {
                self.running.insert(grant);
                out.push(GranteeAction::OpenStream { grant, after: Duration::ZERO });
            }
        }
        if !self.live && self.running.is_empty() {
            out.push(GranteeAction::Done);
        }
        Ok(out)
    }
}

/// Keeps the grants already held and new ones up to [`MAX_SHARES_PER_ISSUER`] live shares: an
/// issuer cannot make this vault hold any number of unsolicited grants.
fn within_share_cap(held: &[GrantId], offered: Vec<SignedGrant>) -> Vec<SignedGrant> {
    let mut room = MAX_SHARES_PER_ISSUER.saturating_sub(held.len());
    offered
        .into_iter()
        .filter(|g| {
            let id = g.statement().id;
            if held.contains(&id) {
                return true;
            }
            if room == 0 {
                tracing::debug!(grant = %id, "ignoring a grant beyond the per-issuer limit");
                return false;
            }
            room -= 1;
            true
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::grant::Grant;
    use crate::identity::Identity;
    use crate::statement::{GrantId, Signed};

    use super::*;

    fn grant(issuer: &Identity, n: u16) -> SignedGrant {
        let mut id = [0u8; 10];
        id[..2].copy_from_slice(&n.to_be_bytes());
        let grant = Grant {
            id: GrantId::from_raw(&id).unwrap(),
            issuer: issuer.public(),
            audience: Identity::from_secret_bytes(&[2; 32]).public(),
            fields: vec!["profile.email".parse().unwrap()],
            filter: None,
            purpose: "flood".into(),
            issued_at: 1_800_000_000,
            expires_at: None,
            prices: true,
            request: None,
        };
        Signed::sign(grant, issuer).unwrap()
    }

    #[test]
    fn an_issuer_cannot_make_a_grantee_hold_any_number_of_shares() {
        let issuer = Identity::from_secret_bytes(&[1; 32]);
        let offered: Vec<SignedGrant> = (0..200).map(|n| grant(&issuer, n)).collect();
        assert_eq!(within_share_cap(&[], offered.clone()).len(), MAX_SHARES_PER_ISSUER);
        // Shares already held stay; new ones fill what room is left.
        let held: Vec<GrantId> = offered[..60].iter().map(|g| g.statement().id).collect();
        let kept = within_share_cap(&held, offered.clone());
        assert_eq!(kept.len(), MAX_SHARES_PER_ISSUER);
        assert!(held.iter().all(|id| kept.iter().any(|g| g.statement().id == *id)));
    }
}
