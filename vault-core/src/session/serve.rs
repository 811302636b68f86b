//! The issuer's side of one grant stream: its own Automerge sync state (so what one device or
//! connection acknowledged never stands for another's), whether the grantee has spoken, and
//! its rate.

use std::time::Instant;

use super::rate::TokenBucket;
use super::{SessionError, frame_name, isolated};
use crate::identity::{DeviceId, IdentityId};
use crate::protocol::Frame;
use crate::statement::GrantId;
use crate::vault::{ServeSync, Vault};

/// Sync messages a grantee may send per second on one grant stream beyond its free answers,
/// after a burst of [`SYNC_BURST`].
pub const SYNC_MESSAGES_PER_SECOND: u32 = 50;
/// Sync messages a grantee may send at once on one grant stream.
pub const SYNC_BURST: u32 = 100;

/// What the transport does after a [`ServeStream`] step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeStep {
    /// Nothing to send now.
    Quiet,
    /// Write this sync message on the stream (a `Sync` frame).
    Send(Vec<u8>),
    /// The frame was not taken (the grantee sends faster than its rate): give it again at or
    /// after this instant, and read nothing more from the stream until then.
    WaitUntil(Instant),
}

/// One grant stream, on the issuer's side, serving one device of the grantee.
#[derive(Debug)]
pub struct ServeStream {
    peer: IdentityId,
    device: DeviceId,
    grant: GrantId,
    sync: ServeSync,
    /// The grantee speaks first (with its heads); answering before hearing it would send
    /// everything it already has, or everything twice.
    heard: bool,
    bucket: TokenBucket,
    /// An honest grantee acknowledges each update it is sent with a message of its own: those
    /// acknowledgements are free; everything else draws on the bucket. Only updates sent
    /// because the vault changed earn the credit, never answers to the grantee's own messages
    /// (a grantee that resets its state is answered with the whole projection each time). So
    /// a live grantee is never slowed down, however many edits it follows, and a flood is
    /// bounded all the same.
    answers_due: u32,
    /// The vault changed since the last update that carried data: the next one earns the
    /// credit, whether a change or the grantee's own message prompted it (an edit made while
    /// the grantee's acknowledgement was on its way is answered from that acknowledgement).
    change_pending: bool,
}

impl ServeStream {
    /// Takes the first frame of a grant stream from `device` of `peer`, which must be
    /// `Open(grant)` for a live grant to `peer`; on an error the transport answers `Refused`.
    /// Resumes from what was persisted for this device in the grant's current epoch.
    pub fn open(
        vault: &mut Vault,
        peer: IdentityId,
        device: DeviceId,
        first: &Frame,
        now: Instant,
    ) -> Result<ServeStream, SessionError> {
        let Frame::Open(grant) = first else { return Err(SessionError::UnexpectedFrame(frame_name(first))) };
        let grant = *grant;
        let sync = isolated("opening a grant stream", || {
            Ok(vault.serving_mut().serve_open(&peer, &device, &grant)?)
        })?;
        Ok(ServeStream {
            peer,
            device,
            grant,
            sync,
            heard: false,
            bucket: TokenBucket::new(SYNC_MESSAGES_PER_SECOND, SYNC_BURST, now),
            answers_due: 0,
            change_pending: false,
        })
    }

    /// The grant served.
    pub fn grant(&self) -> GrantId {
        self.grant
    }

    /// Whether the last message this stream generated may still leave: its grant is still
    /// served to the peer, at the projection epoch it was generated for (a revocation or a
    /// retraction may have been committed while it waited for its log record).
    pub fn still_current(&self, vault: &mut Vault) -> bool {
        vault.serving_mut().serve_still_current(&self.peer, &self.grant, self.sync.epoch)
    }

    /// Takes a frame the grantee sent at `now`: a `Sync` message, answered when the grantee
    /// lacks anything. A message that carries changes, or anything else, is an error: the
    /// transport answers `Refused` and ends the stream.
    pub fn on_frame(
        &mut self,
        vault: &mut Vault,
        frame: &Frame,
        now: Instant,
    ) -> Result<ServeStep, SessionError> {
        let Frame::Sync(message) = frame else {
            return Err(SessionError::UnexpectedFrame(frame_name(frame)));
        };
        if self.answers_due > 0 {
            self.answers_due -= 1;
        } else if let Err(at) = self.bucket.try_take(now) {
            return Ok(ServeStep::WaitUntil(at));
        }
        isolated("serving a grantee's sync message", || {
            vault.serving_mut().serve_receive(
                &self.peer,
                &self.device,
                &self.grant,
                &mut self.sync,
                message,
            )?;
            self.heard = true;
            self.generate(vault)
        })
    }

    /// The vault changed, and the transport will answer a frame of the grantee's before it
    /// calls [`ServeStream::on_change`]: that answer carries the change, and earns its credit.
    pub fn note_change(&mut self) {
        self.change_pending = true;
    }

    /// The vault changed: sends what the grantee lacks, once it has spoken.
    pub fn on_change(&mut self, vault: &mut Vault) -> Result<ServeStep, SessionError> {
        self.change_pending = true;
        if !self.heard {
            return Ok(ServeStep::Quiet);
        }
        isolated("answering a grantee", || self.generate(vault))
    }

    /// The next message, if any; the first that carries data after the vault changed earns
    /// the grantee's acknowledgement its free passage.
    fn generate(&mut self, vault: &mut Vault) -> Result<ServeStep, SessionError> {
        match vault.serving_mut().serve_generate(&self.peer, &self.device, &self.grant, &mut self.sync)? {
            Some((message, carries_data)) => {
                if carries_data && std::mem::take(&mut self.change_pending) {
                    self.answers_due = self.answers_due.saturating_add(1).min(SYNC_BURST);
                }
                Ok(ServeStep::Send(message))
            }
            None => Ok(ServeStep::Quiet),
        }
    }
}
