//! The sharing protocol's frames (ALPN `vault/sync/1`), sans-IO: bytes in, frames out.
//!
//! A frame on the wire is a 4-byte big-endian length, then a type byte and its payload.
//! A connection starts with a *control* stream opened by the dialing side:
//!
//! ```text
//! dialer -> Hello(device certificate)      listener -> Hello(device certificate)
//! dialer -> KeyEvents(its key state)       (kept when the listener knows the dialer)
//! dialer -> Roster(its devices)            (kept when the listener knows the dialer)
//! dialer -> ListShares                     listener -> KeyEvents, Roster, to a peer it knows
//!                                          listener -> Shares(live grants, ended grants)
//! dialer -> Erased(receipt) ...            listener -> Ended(revocation | expiry) ... (live)
//! ```
//!
//! The dialer may also deliver consent requests on the control stream, before `ListShares`;
//! each is acknowledged, and the listener tells the requester its denials next to its shares:
//!
//! ```text
//! dialer -> Request(signed request)        listener -> RequestAck(id, accepted)
//!                                          listener -> Denied(signed denial) ... (live)
//! ```
//!
//! A seller delivers breach notices the same way: `Notice(signed notice)`, answered by
//! `NoticeAck(id, kept)`.
//!
//! An approval needs no frame of its own: it is a grant naming the request, listed in `Shares`.
//!
//! Each certificate must verify and name the device the QUIC handshake authenticated. Then,
//! for each live grant, the dialer opens one stream: `Open(grant id)` followed by Automerge
//! sync messages both ways (`Sync`); the dialer sends the first one (its heads), so the
//! listener never sends what the dialer already has. The listener answers only for grants whose audience is
//! the dialer's identity and that are live; anything else gets `Refused`, which reveals nothing
//! (not whether the grant exists, nor anything about other grants or peers).
//!
//! Limits (enforced by [`decode`] and by the transport): a frame is at most [`MAX_FRAME`]
//! bytes; a Shares frame lists at most [`MAX_GRANTS_PER_FRAME`] grants. The framing, the
//! per-kind limits and the byte budgets, shared with the device protocol ([`device`]) and
//! pairing, are in [`framing`].

use crate::grant::{ErasureReceipt, Revocation, SignedGrant};

use crate::identity::DeviceCertificate;
use crate::identity::Ticket;
use crate::key_event::{KEY_EVENT_LEN, KeyEvent, decode_events};
use crate::notice::BreachNotice;
use crate::request::{ConsentRequest, Denial};
use crate::roster::DeviceRoster;
use crate::statement::{GrantId, Signed};
use crate::statement::{NoticeId, RequestId};

pub(crate) mod device;
pub mod framing;
pub(crate) mod market;

/// The ALPN of the protocol.
pub const ALPN: &[u8] = b"vault/sync/1";
/// Largest frame, in bytes (a first sync of a 100,000-purchase projection is about 3 MB).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Most grants in one Shares frame.
pub(crate) const MAX_GRANTS_PER_FRAME: usize = 4096;

/// How a grant ended, as told to its grantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Revoked by its issuer (with the signed revocation).
    Revoked(Signed<Revocation>),
    /// Past its expiry.
    Expired(GrantId),
}

impl Ended {
    /// The grant concerned.
    pub fn grant(&self) -> GrantId {
        match self {
            Ended::Revoked(r) => r.statement().grant,
            Ended::Expired(id) => *id,
        }
    }
}

/// One protocol frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// First frame on the control stream, both ways.
    Hello(DeviceCertificate),
    /// The dialer asks what is shared with it.
    ListShares,
    /// The listener's answer: live grants for the dialer, and grants that ended.
    Shares {
        /// Live grants whose audience is the dialer.
        live: Vec<SignedGrant>,
        /// Grants to the dialer that ended and whose erasure is not yet confirmed.
        ended: Vec<Ended>,
    },
    /// A grant ended while connected.
    Ended(Ended),
    /// The grantee erased its copy.
    Erased(Signed<ErasureReceipt>),
    /// First frame of a grant stream.
    Open(GrantId),
    /// An Automerge sync message for the stream's grant.
    Sync(Vec<u8>),
    /// The request is refused (no reason is given, on purpose).
    Refused,
    /// A consent request, delivered by its requester.
    Request(Box<Signed<ConsentRequest>>),
    /// The answer to a delivery: queued for the holder's decision, or not accepted (too many
    /// requests from this peer, or not addressed to this vault).
    RequestAck {
        /// The request delivered.
        request: RequestId,
        /// Whether it is now waiting for the holder's decision.
        accepted: bool,
    },
    /// The holder said no to one of the dialer's requests.
    Denied(Signed<Denial>),
    /// Sent by an issuer that dialed its audience: "something changed in what I share with
    /// you; reach me at this ticket". The ticket must name the identity and device that dialed;
    /// the audience then dials back and asks `ListShares` as usual, so the offer carries no
    /// grant of its own and nothing in it is trusted beyond the way back.
    Offer(Ticket),
    /// The audience noted an [`Frame::Offer`]; the issuer stops retrying.
    OfferAck,
    /// The sender's identity's device roster, signed by its identity key: sent before
    /// `ListShares` by the dialer and before `Shares` by the listener, so each side learns the
    /// other's devices (where to reach them, and which were removed and must be refused).
    Roster(Signed<DeviceRoster>),
    /// A breach notice, delivered by the seller that signed it.
    Notice(Signed<BreachNotice>),
    /// The sender's identity's key events (see `key_event`), oldest first, each signed by the
    /// key it names: sent before `Roster` (both ways), so that a roster or statement signed by a
    /// rotated key is judged by the chain that names it. Wire form: the events' fixed-size forms,
    /// one after another (at least one, at most `MAX_KEY_EVENTS`).
    KeyEvents(Vec<KeyEvent>),
    /// The answer to a notice's delivery: kept, or refused (not the sender's, not about this
    /// vault's grants to it, too many).
    NoticeAck {
        /// The notice delivered.
        notice: NoticeId,
        /// Whether it was kept.
        kept: bool,
    },
}

/// A frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// Ends early or has bytes left over.
    #[error("truncated or overlong frame")]
    Truncated,
    /// An unknown frame type.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A statement inside does not verify.
    #[error("frame holds an invalid statement")]
    BadStatement,
    /// Too many entries.
    #[error("frame lists too many grants")]
    TooMany,
}

const T_HELLO: u8 = 1;
const T_LIST: u8 = 2;
const T_SHARES: u8 = 3;
const T_ENDED: u8 = 4;
const T_ERASED: u8 = 5;
const T_OPEN: u8 = 6;
const T_SYNC: u8 = 7;
const T_REFUSED: u8 = 8;
const T_REQUEST: u8 = 9;
const T_REQUEST_ACK: u8 = 10;
const T_DENIED: u8 = 11;
/// First byte of a sync body that names its projection epoch (see [`encode_sync_body`]).
const T_EPOCH: u8 = 20;
const T_OFFER: u8 = 12;
const T_OFFER_ACK: u8 = 13;
const T_ROSTER: u8 = 14;
const T_NOTICE: u8 = 15;
const T_NOTICE_ACK: u8 = 16;
const T_KEY_EVENTS: u8 = 17;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_ended(out: &mut Vec<u8>, ended: &Ended) {
    match ended {
        Ended::Revoked(r) => {
            out.push(1);
            put_bytes(out, &r.to_bytes());
        }
        Ended::Expired(id) => {
            out.push(2);
            out.extend_from_slice(id.as_bytes());
        }
    }
}

/// Encodes a frame body (type and payload), without the length prefix.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    match frame {
        Frame::Hello(cert) => {
            out.push(T_HELLO);
            out.extend_from_slice(&cert.to_bytes());
        }
        Frame::ListShares => out.push(T_LIST),
        Frame::Shares { live, ended } => {
            out.push(T_SHARES);
            out.extend_from_slice(&(live.len() as u32).to_be_bytes());
            for g in live {
                put_bytes(&mut out, &g.to_bytes());
            }
            out.extend_from_slice(&(ended.len() as u32).to_be_bytes());
            for e in ended {
                put_ended(&mut out, e);
            }
        }
        Frame::Ended(e) => {
            out.push(T_ENDED);
            put_ended(&mut out, e);
        }
        Frame::Erased(r) => {
            out.push(T_ERASED);
            out.extend_from_slice(&r.to_bytes());
        }
        Frame::Open(id) => {
            out.push(T_OPEN);
            out.extend_from_slice(id.as_bytes());
        }
        Frame::Sync(message) => {
            out.push(T_SYNC);
            out.extend_from_slice(message);
        }
        Frame::Refused => out.push(T_REFUSED),
        Frame::Request(r) => {
            out.push(T_REQUEST);
            out.extend_from_slice(&r.to_bytes());
        }
        Frame::RequestAck { request, accepted } => {
            out.push(T_REQUEST_ACK);
            out.extend_from_slice(request.as_bytes());
            out.push(u8::from(*accepted));
        }
        Frame::Denied(d) => {
            out.push(T_DENIED);
            out.extend_from_slice(&d.to_bytes());
        }
        Frame::Offer(ticket) => {
            out.push(T_OFFER);
            out.extend_from_slice(&ticket.to_bytes());
        }
        Frame::OfferAck => out.push(T_OFFER_ACK),
        Frame::Roster(r) => {
            out.push(T_ROSTER);
            out.extend_from_slice(&r.to_bytes());
        }
        Frame::Notice(n) => {
            out.push(T_NOTICE);
            out.extend_from_slice(&n.to_bytes());
        }
        Frame::NoticeAck { notice, kept } => {
            out.push(T_NOTICE_ACK);
            out.extend_from_slice(notice.as_bytes());
            out.push(u8::from(*kept));
        }
        Frame::KeyEvents(events) => {
            out.push(T_KEY_EVENTS);
            out.reserve(events.len() * KEY_EVENT_LEN);
            for e in events {
                out.extend_from_slice(&e.to_bytes());
            }
        }
    }
    out
}

/// Encodes a frame with its length prefix, ready for the wire (see [`framing`]).
pub fn encode_with_length(frame: &Frame) -> Vec<u8> {
    framing::frame(&encode(frame))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize, FrameError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u32()?;
        self.take(n)
    }
    fn grant_id(&mut self) -> Result<GrantId, FrameError> {
        Ok(GrantId::from_raw(self.take(10)?).expect("10 bytes"))
    }
    fn ended(&mut self) -> Result<Ended, FrameError> {
        match self.u8()? {
            1 => Ok(Ended::Revoked(
                Signed::<Revocation>::from_bytes(self.bytes()?).map_err(|_| FrameError::BadStatement)?,
            )),
            2 => Ok(Ended::Expired(self.grant_id()?)),
            other => Err(FrameError::UnknownType(other)),
        }
    }
    fn finish(&self) -> Result<(), FrameError> {
        if self.0.is_empty() { Ok(()) } else { Err(FrameError::Truncated) }
    }
}

/// Decodes a frame body (type and payload). Signed statements inside are verified here, so a
/// decoded frame never carries a forged grant, revocation or receipt. Never panics.
pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut r = Reader(body);
    let frame = match r.u8()? {
        T_HELLO => {
            Frame::Hello(DeviceCertificate::from_bytes(r.take(128)?).map_err(|_| FrameError::BadStatement)?)
        }
        T_LIST => Frame::ListShares,
        T_SHARES => {
            let n = r.u32()?;
            if n > MAX_GRANTS_PER_FRAME {
                return Err(FrameError::TooMany);
            }
            let mut live = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                live.push(SignedGrant::from_bytes(r.bytes()?).map_err(|_| FrameError::BadStatement)?);
            }
            let m = r.u32()?;
            if m > MAX_GRANTS_PER_FRAME {
                return Err(FrameError::TooMany);
            }
            let mut ended = Vec::with_capacity(m.min(64));
            for _ in 0..m {
                ended.push(r.ended()?);
            }
            Frame::Shares { live, ended }
        }
        T_ENDED => Frame::Ended(r.ended()?),
        T_ERASED => {
            let rest = r.take(r.0.len())?;
            Frame::Erased(Signed::<ErasureReceipt>::from_bytes(rest).map_err(|_| FrameError::BadStatement)?)
        }
        T_OPEN => Frame::Open(r.grant_id()?),
        T_SYNC => Frame::Sync(r.take(r.0.len())?.to_vec()),
        T_REFUSED => Frame::Refused,
        T_REQUEST => {
            let rest = r.take(r.0.len())?;
            Frame::Request(Box::new(
                Signed::<ConsentRequest>::from_bytes(rest).map_err(|_| FrameError::BadStatement)?,
            ))
        }
        T_REQUEST_ACK => {
            let request = RequestId::from_raw(r.take(10)?).expect("10 bytes");
            let accepted = match r.u8()? {
                0 => false,
                1 => true,
                other => return Err(FrameError::UnknownType(other)),
            };
            Frame::RequestAck { request, accepted }
        }
        T_DENIED => {
            let rest = r.take(r.0.len())?;
            Frame::Denied(Signed::<Denial>::from_bytes(rest).map_err(|_| FrameError::BadStatement)?)
        }
        T_OFFER => {
            let rest = r.take(r.0.len())?;
            Frame::Offer(Ticket::from_bytes(rest).map_err(|_| FrameError::BadStatement)?)
        }
        T_OFFER_ACK => Frame::OfferAck,
        T_ROSTER => {
            let rest = r.take(r.0.len())?;
            Frame::Roster(Signed::<DeviceRoster>::from_bytes(rest).map_err(|_| FrameError::BadStatement)?)
        }
        T_NOTICE => {
            let rest = r.take(r.0.len())?;
            Frame::Notice(Signed::<BreachNotice>::from_bytes(rest).map_err(|_| FrameError::BadStatement)?)
        }
        T_NOTICE_ACK => {
            let notice = NoticeId::from_raw(r.take(10)?).expect("10 bytes");
            let kept = match r.u8()? {
                0 => false,
                1 => true,
                other => return Err(FrameError::UnknownType(other)),
            };
            Frame::NoticeAck { notice, kept }
        }
        T_KEY_EVENTS => {
            let rest = r.take(r.0.len())?;
            let events = decode_events(rest).map_err(|_| FrameError::BadStatement)?;
            if events.is_empty() {
                return Err(FrameError::Truncated);
            }
            Frame::KeyEvents(events)
        }
        other => return Err(FrameError::UnknownType(other)),
    };
    r.finish()?;
    Ok(frame)
}

/// Wraps an Automerge sync message for a `Sync` frame, naming the projection *epoch* it
/// belongs to. When the issuer drops a projection's history (so that a value retracted before
/// its grantee saw it is not in anything the grantee receives), it starts a new epoch: a fresh
/// document. A grantee that sees a newer epoch replaces its copy instead of merging, and each
/// side ignores messages of an older epoch.
///
/// Epoch 0 is a bare Automerge message (as before epochs existed); a later epoch is
/// `T_EPOCH`, the epoch as 8 bytes big-endian, then the message. Automerge messages start with
/// 0x42 or 0x43, so the two forms cannot be confused.
pub fn encode_sync_body(epoch: u64, message: &[u8]) -> Vec<u8> {
    if epoch == 0 {
        return message.to_vec();
    }
    let mut out = Vec::with_capacity(9 + message.len());
    out.push(T_EPOCH);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a `Sync` frame's payload into its epoch and its Automerge message. Never panics.
pub fn decode_sync_body(body: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    match body.first() {
        Some(&T_EPOCH) => {
            let epoch = body.get(1..9).ok_or(FrameError::Truncated)?;
            Ok((u64::from_be_bytes(epoch.try_into().expect("8 bytes")), &body[9..]))
        }
        _ => Ok((0, body)),
    }
}

impl Frame {
    /// The statement kinds this frame carries, by their names in `statement::KINDS` (the
    /// checklist's tests check every kind travels in a frame of the fixture). No wildcard arm:
    /// a new frame does not compile until it is listed here.
    #[cfg(test)]
    pub(crate) fn statements_carried(&self) -> Vec<&'static str> {
        let ended = |e: &Ended| match e {
            Ended::Revoked(_) => Some("revocation"),
            Ended::Expired(_) => None,
        };
        match self {
            Frame::Hello(_) | Frame::Offer(_) => vec!["device_certificate"],
            Frame::Shares { live, ended: gone } => {
                let grants = (!live.is_empty()).then_some("grant");
                grants.into_iter().chain(gone.iter().filter_map(ended)).collect()
            }
            Frame::Ended(e) => ended(e).into_iter().collect(),
            Frame::Erased(_) => vec!["erasure_receipt"],
            Frame::Request(_) => vec!["consent_request"],
            Frame::Denied(_) => vec!["denial"],
            Frame::Roster(_) => vec!["device_roster"],
            Frame::Notice(_) => vec!["breach_notice"],
            Frame::KeyEvents(_) => vec!["key_event"],
            Frame::ListShares
            | Frame::Open(_)
            | Frame::Sync(_)
            | Frame::Refused
            | Frame::RequestAck { .. }
            | Frame::OfferAck
            | Frame::NoticeAck { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
