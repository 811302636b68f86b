//! One framing for every ALPN (`vault/sync/1`, `vault/device/1`, `vault/pair/1`): a 4-byte
//! big-endian length, then the body, whose first byte names its kind. A reader checks the
//! length against the limit for what it expects *before* allocating anything; the limits, per
//! protocol and per kind, and the byte budgets that bound what a node buffers live here, so
//! that every bound on what a peer can make this vault hold is read in one place.
//!
//! The transport only moves bytes: it reads the prefix, asks [`check_length`] (or
//! [`crate::DeviceMessage::limit`] once it has the kind byte), then reads the body and hands it
//! to the protocol's decoder.

use super::{FrameError, MAX_FRAME};

/// Bytes of the length prefix.
pub const LENGTH_LEN: usize = 4;

/// Sharing protocol: largest frame a listener accepts before the peer has proven anything, and
/// on control streams (hello, list, receipts) and the first frame of a grant stream.
pub const CONTROL_LIMIT: usize = 64 * 1024;
/// Sharing protocol: largest frame a listener accepts from a grantee on a grant stream: a
/// grantee's sync messages carry heads and bloom filters, never documents.
pub const GRANTEE_SYNC_LIMIT: usize = 1024 * 1024;
/// Sharing protocol: largest Shares frame a dialer accepts.
pub const SHARES_LIMIT: usize = 16 * 1024 * 1024;

/// Device protocol: largest device list (the list holds at most `MAX_DEVICES` short records).
pub const DEVICE_LIST_LIMIT: usize = 256 * 1024;
/// Device protocol: largest roster (a roster body is at most 16 KiB, plus signature and
/// certificate).
pub const DEVICE_ROSTER_LIMIT: usize = 32 * 1024;

/// Pairing: largest message the inviter reads from a joiner that has proven nothing yet.
pub const PAIR_JOIN_LIMIT: usize = 1024;
/// Pairing: largest message the joiner reads (the welcome carries the whole document).
pub const PAIR_WELCOME_LIMIT: usize = MAX_FRAME;

/// Bytes of an issuer's frames this vault holds in memory at once, over all the issuer's
/// streams, control stream included (a frame waits until it fits).
pub const ISSUER_BYTE_BUDGET: usize = 2 * MAX_FRAME;
/// Bytes of frames in flight that the whole node holds in memory at once, over every peer and
/// stream, whichever side it plays (a frame waits until it fits).
pub const NODE_BYTE_BUDGET: usize = 4 * MAX_FRAME;
/// Bytes of hello frames the node holds at once from peers that have not proven anything yet:
/// apart from [`NODE_BYTE_BUDGET`], so that strangers sending half a hello cannot make
/// authenticated peers wait.
pub const HANDSHAKE_BYTE_BUDGET: usize = 16 * 1024 * 1024;

/// The length prefix of a body of `len` bytes.
pub fn length_prefix(len: usize) -> [u8; LENGTH_LEN] {
    (len as u32).to_be_bytes()
}

/// The length a prefix announces.
pub fn announced_length(prefix: [u8; LENGTH_LEN]) -> usize {
    u32::from_be_bytes(prefix) as usize
}

/// Appends `body` with its length prefix to `out`.
pub fn put_frame(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(LENGTH_LEN + body.len());
    out.extend_from_slice(&length_prefix(body.len()));
    out.extend_from_slice(body);
}

/// `body` with its length prefix, ready for the wire.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LENGTH_LEN + body.len());
    put_frame(&mut out, body);
    out
}

/// Refuses an announced length above `limit` (and above [`MAX_FRAME`], whatever the limit).
pub fn check_length(len: usize, limit: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME.min(limit) { Err(FrameError::TooLarge(len)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_its_length_then_its_body() {
        assert_eq!(frame(b"abc"), [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(announced_length(length_prefix(70_000)), 70_000);
        assert!(check_length(CONTROL_LIMIT, CONTROL_LIMIT).is_ok());
        assert_eq!(
            check_length(CONTROL_LIMIT + 1, CONTROL_LIMIT),
            Err(FrameError::TooLarge(CONTROL_LIMIT + 1))
        );
        assert!(check_length(MAX_FRAME + 1, usize::MAX).is_err());
    }
}
