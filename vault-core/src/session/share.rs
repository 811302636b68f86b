//! The grantee's side of one grant stream: its own sync state for the share's copy, whether
//! the copy changed, and when a one-shot sync is done.

use super::{SessionError, frame_name, isolated};
use crate::identity::{DeviceId, IdentityId};
use crate::protocol::Frame;
use crate::statement::GrantId;
use crate::vault::{ShareSync, Vault};

/// What to do next on a [`ShareStream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareNext {
    /// A frame to write first, if any.
    pub send: Option<Frame>,
    /// The stream is done (a one-shot sync holds all the issuer has): finish it. Otherwise
    /// wait for the issuer's next frame (a one-shot sync gives up after a while).
    pub done: bool,
}

/// What a frame from the issuer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareEvent {
    /// A sync message was applied; `changed` when the copy (as shown) changed.
    Applied {
        /// The copy changed: wake whoever watches the vault.
        changed: bool,
    },
    /// The issuer refused the stream: finish it.
    Finished,
}

/// One grant stream, on the grantee's side.
#[derive(Debug)]
pub struct ShareStream {
    issuer: IdentityId,
    grant: GrantId,
    sync: ShareSync,
    live: bool,
    changed: bool,
}

impl ShareStream {
    /// Starts syncing the live share `grant` from `issuer`'s device `from` (the connection's
    /// authenticated peer) on a new stream: the stream and the frame that opens it. With
    /// `live`, the stream stays open for changes; otherwise it is done once this vault holds
    /// what the issuer advertised. Each of the issuer's devices serves its own copy of the
    /// projection: a copy from another device than the last replaces the one held.
    pub fn open(
        vault: &mut Vault,
        issuer: IdentityId,
        from: DeviceId,
        grant: GrantId,
        live: bool,
    ) -> Result<(ShareStream, Frame), SessionError> {
        let sync = isolated("opening a share stream", || {
            Ok(vault.held_mut().share_sync_state(&issuer, from, &grant)?)
        })?;
        Ok((ShareStream { issuer, grant, sync, live, changed: false }, Frame::Open(grant)))
    }

    /// The share synced.
    pub fn grant(&self) -> GrantId {
        self.grant
    }

    /// Whether the copy changed since the stream opened.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The next message for the issuer, and whether the stream is done.
    pub fn next(&mut self, vault: &mut Vault) -> Result<ShareNext, SessionError> {
        isolated("answering an issuer", || {
            let send = vault
                .held_mut()
                .share_sync_generate(&self.issuer, &self.grant, &mut self.sync)?
                .map(Frame::Sync);
            // A grantee never has changes of its own: once it holds what the issuer last
            // advertised and has said so, a one-shot sync is done.
            let done = !self.live && vault.held_mut().share_in_sync(&self.issuer, &self.grant, &self.sync)?;
            Ok(ShareNext { send, done })
        })
    }

    /// Takes a frame the issuer sent on the stream. Anything but `Sync` or `Refused` is an
    /// error (the transport ends the stream).
    pub fn on_frame(&mut self, vault: &mut Vault, frame: &Frame) -> Result<ShareEvent, SessionError> {
        match frame {
            Frame::Sync(message) => isolated("applying an issuer's sync message", || {
                let changed = vault.held_mut().share_sync_receive(
                    &self.issuer,
                    &self.grant,
                    &mut self.sync,
                    message,
                )?;
                self.changed |= changed;
                Ok(ShareEvent::Applied { changed })
            }),
            Frame::Refused => Ok(ShareEvent::Finished),
            other => Err(SessionError::UnexpectedFrame(frame_name(other))),
        }
    }
}
