//! The device protocol's messages (ALPN `vault/device/1`), between devices of one identity.
//! Framed like every other protocol (see [`super::framing`]): the body's first byte is the
//! kind, and each kind has its own limit, checked before the body is read.

use super::MAX_FRAME;
use super::framing::{DEVICE_LIST_LIMIT, DEVICE_ROSTER_LIMIT, put_frame};
use crate::key_event::{KEY_EVENT_LEN, KeyEvent, MAX_KEY_EVENTS, decode_events};
use crate::roster::DeviceRoster;
use crate::statement::Signed;
use crate::vault::{DeviceRecord, MAX_SHARED_BATCH, MAX_SHARED_HAVE, SharedHave};

/// The ALPN of sessions between devices of one identity.
pub const DEVICE_ALPN: &[u8] = b"vault/device/1";

const TAG_LIST: u8 = 1;
const TAG_DOC: u8 = 2;
const TAG_ROSTER: u8 = 3;
const TAG_HAVE: u8 = 4;
const TAG_SHARED: u8 = 5;
/// The identity's key events, each one's fixed-size wire form after the other.
const TAG_KEYS: u8 = 6;

/// One message between devices of one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceMessage {
    /// The sender's device list.
    List(Vec<DeviceRecord>),
    /// An Automerge sync message of the customer's document.
    Doc(Vec<u8>),
    /// The newest device roster the identity key signed.
    Roster(Signed<DeviceRoster>),
    /// The identity's key events, oldest first.
    Keys(Vec<KeyEvent>),
    /// What the sender holds of the sharing state.
    Have(SharedHave),
    /// A batch of sharing state.
    Shared(Vec<u8>),
}

/// A device message could not be read. The messages are the transport's log lines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceFrameError {
    /// A frame with no kind byte.
    #[error("empty device message")]
    Empty,
    /// A kind this version does not know.
    #[error("unknown device message")]
    UnknownKind,
    /// Larger than its kind's limit.
    #[error("device message too large")]
    TooLarge,
    /// The body does not decode (what it should have been is named).
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl DeviceMessage {
    /// The largest body (after the kind byte) a message of `kind` may have.
    pub fn limit(kind: u8) -> Result<usize, DeviceFrameError> {
        match kind {
            TAG_LIST => Ok(DEVICE_LIST_LIMIT),
            TAG_DOC => Ok(MAX_FRAME),
            TAG_ROSTER => Ok(DEVICE_ROSTER_LIMIT),
            TAG_HAVE => Ok(MAX_SHARED_HAVE),
            TAG_SHARED => Ok(MAX_SHARED_BATCH),
            TAG_KEYS => Ok(MAX_KEY_EVENTS * KEY_EVENT_LEN),
            _ => Err(DeviceFrameError::UnknownKind),
        }
    }

    /// Checks a frame's announced length (kind byte included) against its kind's limit.
    pub fn check_length(len: usize, kind: u8) -> Result<(), DeviceFrameError> {
        if len == 0 {
            return Err(DeviceFrameError::Empty);
        }
        if len - 1 > Self::limit(kind)? {
            return Err(DeviceFrameError::TooLarge);
        }
        Ok(())
    }

    fn kind_and_body(&self) -> (u8, std::borrow::Cow<'_, [u8]>) {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            Self::List(list) => (TAG_LIST, Owned(DeviceRecord::encode_list(list))),
            Self::Doc(message) => (TAG_DOC, Borrowed(message)),
            Self::Roster(roster) => (TAG_ROSTER, Owned(roster.to_bytes())),
            Self::Keys(events) => (TAG_KEYS, Owned(events.iter().flat_map(KeyEvent::to_bytes).collect())),
            Self::Have(have) => (TAG_HAVE, Owned(have.to_bytes())),
            Self::Shared(batch) => (TAG_SHARED, Borrowed(batch)),
        }
    }

    /// The message with its length prefix, ready for the wire.
    pub fn to_frame(&self) -> Vec<u8> {
        let (kind, body) = self.kind_and_body();
        let mut tagged = Vec::with_capacity(1 + body.len());
        tagged.push(kind);
        tagged.extend_from_slice(&body);
        let mut out = Vec::new();
        put_frame(&mut out, &tagged);
        out
    }

    /// Reads a message of `kind` from its body (the bytes after the kind byte).
    pub fn decode(kind: u8, body: Vec<u8>) -> Result<Self, DeviceFrameError> {
        use DeviceFrameError::Malformed;
        match kind {
            TAG_LIST => DeviceRecord::decode_list(&body).map(Self::List).ok_or(Malformed("device list")),
            TAG_DOC => Ok(Self::Doc(body)),
            TAG_ROSTER => Signed::<DeviceRoster>::from_bytes(&body)
                .map(Self::Roster)
                .map_err(|_| Malformed("device roster")),
            TAG_HAVE => {
                SharedHave::from_bytes(&body).map(Self::Have).ok_or(Malformed("sharing-state summary"))
            }
            TAG_SHARED => Ok(Self::Shared(body)),
            TAG_KEYS => decode_events(&body).map(Self::Keys).map_err(|_| Malformed("key events")),
            _ => Err(DeviceFrameError::UnknownKind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_length_kind_body() {
        let frame = DeviceMessage::Doc(vec![0x42, 7]).to_frame();
        assert_eq!(frame, [0, 0, 0, 3, TAG_DOC, 0x42, 7]);
        let back = DeviceMessage::decode(frame[4], frame[5..].to_vec()).unwrap();
        assert_eq!(back, DeviceMessage::Doc(vec![0x42, 7]));
        assert_eq!(DeviceMessage::check_length(0, TAG_DOC), Err(DeviceFrameError::Empty));
        assert_eq!(DeviceMessage::check_length(5, 99), Err(DeviceFrameError::UnknownKind));
        assert_eq!(
            DeviceMessage::check_length(DEVICE_ROSTER_LIMIT + 2, TAG_ROSTER),
            Err(DeviceFrameError::TooLarge)
        );
        assert_eq!(
            DeviceMessage::decode(TAG_LIST, b"not json".to_vec()),
            Err(DeviceFrameError::Malformed("device list"))
        );
    }
}
