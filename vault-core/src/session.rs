//! Sessions of the sharing protocol, sans-IO: state machines that take decoded frames,
//! wake-ups ("the vault changed") and the time, and return the frames to send and what the
//! transport must do. vault-sync only carries bytes between them and the network.
//!
//! Four machines, one per end of each stream (see [`crate::protocol`] for the frames):
//!
//! | stream          | issuer (listener)   | grantee (dialer)   |
//! |-----------------|---------------------|--------------------|
//! | control         | [`IssuerSession`]   | [`GranteeSession`] |
//! | one grant       | [`ServeStream`]     | [`ShareStream`]    |
//!
//! and one for the device protocol (ALPN `vault/device/1`), the same on both ends:
//! [`DeviceSession`]. A machine reaches the vault through a narrow trait ([`DeviceStore`], ...),
//! which the vault implements in one place and a test can fake.
//!
//! An issuer-side machine is created once the peer's hello verified, and knows the peer's
//! identity and device: each [`ServeStream`] owns its Automerge sync state, so the state is
//! per (grant, peer device, stream) by construction. Machines borrow the [`Vault`] for each
//! step, so a transport can keep it behind a lock and a fuzz target can drive them directly.
//! Time is injected (`now`): a machine never sleeps, it says until when to wait.
//!
//! Nothing a peer sends can make a machine panic: every Automerge call fed with a peer's bytes
//! is isolated in the vault, and a step that still panicked fails with
//! [`SessionError::Panicked`] (the vault rolled back any write it was making).
//!
//! [`Vault`]: crate::Vault
//!
//! Driving the machines by hand, as a fuzz target does (every result may be an error: the
//! transport would end the stream or connection; nothing may panic):
//!
//! ```
//! use std::time::Instant;
//! use vault_core::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let open = |dir: &std::path::Path| {
//!     Vault::at(dir).kdf(KdfParams::INSECURE_FOR_TESTS).create(&Passphrase::new("pw"))
//! };
//! let (d1, d2) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let (mut issuer, mut grantee) = (open(d1.path())?, open(d2.path())?);
//! issuer.records_mut().set_profile("email", "ada@example.org")?;
//! let grant = issuer.grants_mut().issue(NewGrant {
//!     audience: grantee.identity(),
//!     fields: vec!["profile.email".parse()?],
//!     filter: None,
//!     purpose: "delivery".into(),
//!     expires_at: None,
//!     prices: true,
//! })?;
//! let (id, device, now) = (grant.statement().id, grantee.device_key().public(), Instant::now());
//!
//! // The issuer's side, fed by a hostile grantee holding a valid grant.
//! let mut control = IssuerSession::new(grantee.identity(), device, now);
//! let _ = control.on_frame(&mut issuer, Frame::ListShares, now); // Ok(actions to perform)
//! let _ = control.on_change(&mut issuer);
//! let mut serve = ServeStream::open(&mut issuer, grantee.identity(), device, &Frame::Open(id), now)?;
//! let _ = serve.on_frame(&mut issuer, &Frame::Sync(vec![0x42, 0, 1]), now); // Err: refused
//!
//! // The grantee's side, fed by a hostile issuer (here the real one's frames).
//! let mut session = GranteeSession::new(issuer.identity(), None, true);
//! let _ = session.start(&mut grantee);
//! let (live, ended) = issuer.grants_mut().shares_for(&grantee.identity())?;
//! session.on_frame(&mut grantee, Frame::Shares { live, ended })?; // OpenStream { grant: id, .. }
//! let (mut share, first) = ShareStream::open(&mut grantee, issuer.identity(), issuer.device_key().public(), id, true)?;
//! let mut serve = ServeStream::open(&mut issuer, grantee.identity(), device, &first, now)?;
//! let hello = share.next(&mut grantee)?.send.expect("the grantee speaks first");
//! let ServeStep::Send(body) = serve.on_frame(&mut issuer, &hello, now)? else { panic!() };
//! share.on_frame(&mut grantee, &Frame::Sync(body))?;
//! let _ = share.on_frame(&mut grantee, &Frame::Sync(vec![0x43, 0xff])); // Err: refused
//! # Ok(())
//! # }
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::identity::IdentityId;
use crate::protocol::Frame;
use crate::store::StoreError;
use crate::vault::{EditError, GrantError, Refusal, ReplicationError, ServeError, ShareError};

mod admission;
mod device;
mod dialing;
mod grantee;
mod issuer;
mod placement;
mod rate;
mod serve;
mod share;
mod store;
mod vault_impl;

pub use admission::{
    AdmissionStore, REFUSAL_LOG_INTERVAL, RefusalLog, Refused, RefusedWhy, admit_device, admit_peer,
};
pub use device::{DeviceAction, DeviceSession, DeviceTurn};
pub use dialing::{
    AudienceNews, DialCandidate, PeersMark, WrongPeer, check_answer, dial_candidates, may_dial,
    offer_audiences, offers_mark, outgoing_mark, peers_mark, wanted_peer, wanted_peers,
};
pub use grantee::{GranteeAction, GranteeSession, MAX_SHARES_PER_ISSUER, SyncReport};
pub use issuer::{IssuerAction, IssuerSession, MAX_REQUESTS_PER_MINUTE, ShareSet};
pub use placement::{dial_order, first_for};
pub use serve::{SYNC_BURST, SYNC_MESSAGES_PER_SECOND, ServeStep, ServeStream};
pub use share::{ShareEvent, ShareNext, ShareStream};
pub use store::{DeviceStore, GranteeStore, IssuerStore};

/// A session step failed: the transport ends that stream (a grant stream) or connection (a
/// control stream). What the peer is told is the transport's choice ("refused" at most).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A frame that has no place on this stream at this point.
    #[error("unexpected {0} frame")]
    UnexpectedFrame(&'static str),
    /// More control requests than [`MAX_REQUESTS_PER_MINUTE`] (see [`SessionError::refused`]).
    #[error("more than {MAX_REQUESTS_PER_MINUTE} requests in a minute")]
    TooManyRequests,
    /// An offer naming another identity or device than the one connected.
    #[error("an offer for another device")]
    OfferForAnotherDevice,
    /// The peer's device was removed from its identity (its own identity key says so).
    #[error("the peer's device was removed from its identity")]
    RemovedDevice,
    /// An erasure receipt signed by someone other than the peer.
    #[error("an erasure receipt from another identity")]
    ReceiptFromAnotherIdentity,
    /// The issuer closed the control stream of a live session.
    #[error("the issuer closed the session")]
    Closed,
    /// The issuer refused a grant stream, or this vault refused to serve one.
    #[error("refused to serve the grant")]
    Serve(#[from] ServeError),
    /// Issued grants could not be read or updated.
    #[error("the grants issued could not be read")]
    Grant(#[from] GrantError),
    /// A received share could not be read or updated.
    #[error("a received share could not be updated")]
    Share(#[from] ShareError),
    /// The storage layer failed.
    #[error("the vault's storage failed")]
    Store(#[from] StoreError),
    /// The document could not take or make a sync message from another device.
    #[error("the document could not be synced with another device")]
    Edit(#[source] Box<EditError>),
    /// Sharing state from another device could not be taken in.
    #[error(transparent)]
    Replication(Box<ReplicationError>),
    /// A step panicked on a peer's data; the vault rolled back what it was writing.
    #[error("{0} panicked on a peer's data")]
    Panicked(&'static str),
}

impl From<EditError> for SessionError {
    fn from(e: EditError) -> Self {
        SessionError::Edit(Box::new(e))
    }
}

impl From<ReplicationError> for SessionError {
    fn from(e: ReplicationError) -> Self {
        SessionError::Replication(Box::new(e))
    }
}

impl SessionError {
    /// The refusal of `peer` to write to the access log, when this error is one (a peer over
    /// its rate).
    pub fn refused(&self, peer: IdentityId) -> Option<Refused> {
        match self {
            SessionError::TooManyRequests => Some(Refused::too_many_requests(peer)),
            _ => None,
        }
    }
}

/// Runs one step of a machine; a panic becomes [`SessionError::Panicked`]. The vault rolls
/// back any write the step was making (`Vault::write`), so it stays usable.
fn isolated<T>(what: &'static str, f: impl FnOnce() -> Result<T, SessionError>) -> Result<T, SessionError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::warn!(what, "a peer's data made a session step panic; failing that stream");
        Err(SessionError::Panicked(what))
    })
}

/// The frame's name, for errors (never its content).
fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "hello",
        Frame::ListShares => "list-shares",
        Frame::Shares { .. } => "shares",
        Frame::Ended(_) => "ended",
        Frame::Erased(_) => "erased",
        Frame::Open(_) => "open",
        Frame::Sync(_) => "sync",
        Frame::Refused => "refused",
        Frame::Request(_) => "request",
        Frame::RequestAck { .. } => "request-ack",
        Frame::Denied(_) => "denied",
        Frame::Offer(_) => "offer",
        Frame::OfferAck => "offer-ack",
        Frame::Roster(_) => "roster",
        Frame::Notice(_) => "notice",
        Frame::KeyEvents(_) => "key events",
        Frame::NoticeAck { .. } => "notice-ack",
    }
}

/// Why a delivered request was not accepted, for the debug log only.
fn log_refusal(peer: &crate::identity::IdentityId, why: &Refusal) {
    tracing::debug!(?why, %peer, "request not accepted");
}
