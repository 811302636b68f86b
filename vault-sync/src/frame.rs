//! Reading and writing length-prefixed frames on QUIC streams, for every ALPN: the bytes
//! only. The framing, each protocol's limits and the byte budgets are vault-core's
//! ([`vault_core::framing`]); the limit is checked before anything is allocated.

use iroh::endpoint::{RecvStream, SendStream};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vault_core::framing::{LENGTH_LEN, announced_length, check_length};
use vault_core::{DeviceMessage, Frame, FrameError, decode, encode_with_length};

use crate::error::SyncError;

/// A frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The stream failed or ended inside a frame.
    #[error("stream error")]
    Io(#[from] std::io::Error),
    /// The frame is malformed or too large.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads a frame's length and checks it against `limit` (and `MAX_FRAME`) before anything
/// is allocated; `Ok(None)` when the stream ended cleanly between frames.
async fn read_length<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    limit: usize,
) -> Result<Option<usize>, ReadFrameError> {
    let mut len = [0u8; LENGTH_LEN];
    match AsyncReadExt::read_exact(recv, &mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = announced_length(len);
    check_length(len, limit)?;
    Ok(Some(len))
}

/// Reads one frame of at most `limit` bytes (and never more than `MAX_FRAME`); `Ok(None)`
/// when the stream ended cleanly between frames. The length is checked before allocating.
pub(crate) async fn read_frame(recv: &mut RecvStream, limit: usize) -> Result<Option<Frame>, ReadFrameError> {
    let Some(len) = read_length(recv, limit).await? else { return Ok(None) };
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await?;
    Ok(Some(decode(&body)?))
}

/// What a frame read with [`read_frame_within`] holds of its budgets, until it is dropped.
pub(crate) type Permits = Vec<OwnedSemaphorePermit>;

/// Reads one frame like [`read_frame`], first taking its length in bytes from each of
/// `budgets` in order (a peer's own budget first, then the node's): the frame is allocated
/// only once every budget allows, and the budgets are given back when the returned permits
/// are dropped (after the frame was handled). One budget per issuer bounds what that issuer
/// can make this vault buffer, whatever the number of its streams; the node's budget bounds
/// what all peers together can.
pub(crate) async fn read_frame_within<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    limit: usize,
    budgets: &[&Arc<Semaphore>],
) -> Result<Option<(Frame, Permits)>, ReadFrameError> {
    let Some(len) = read_length(recv, limit).await? else { return Ok(None) };
    let n = u32::try_from(len.max(1)).map_err(|_| FrameError::TooLarge(len))?;
    let mut permits = Vec::with_capacity(budgets.len());
    for budget in budgets {
        let permit = Arc::clone(budget)
            .acquire_many_owned(n)
            .await
            .map_err(|_| std::io::Error::other("the session ended"))?;
        permits.push(permit);
    }
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await?;
    Ok(Some((decode(&body)?, permits)))
}

/// Writes one frame; returns the bytes written.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &Frame) -> std::io::Result<usize> {
    let bytes = encode_with_length(frame);
    send.write_all(&bytes).await.map_err(std::io::Error::other)?;
    Ok(bytes.len())
}

/// Writes one device message.
pub(crate) async fn write_device_message(
    send: &mut SendStream,
    message: &DeviceMessage,
) -> Result<(), SyncError> {
    send.write_all(&message.to_frame()).await.map_err(SyncError::io)
}

/// Reads one device message, its kind's limit checked before its body is allocated; `Ok(None)`
/// when the stream ended cleanly between messages.
pub(crate) async fn read_device_message(recv: &mut RecvStream) -> Result<Option<DeviceMessage>, SyncError> {
    let mut len = [0u8; LENGTH_LEN];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(iroh::endpoint::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(SyncError::io(e)),
    }
    let len = announced_length(len);
    if len == 0 {
        return Err(SyncError::Protocol(vault_core::DeviceFrameError::Empty.to_string()));
    }
    let mut kind = [0u8];
    recv.read_exact(&mut kind).await.map_err(SyncError::io)?;
    DeviceMessage::check_length(len, kind[0]).map_err(|e| SyncError::Protocol(e.to_string()))?;
    let mut body = vec![0u8; len - 1];
    recv.read_exact(&mut body).await.map_err(SyncError::io)?;
    DeviceMessage::decode(kind[0], body).map(Some).map_err(|e| SyncError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Semaphore;
    use vault_core::{Frame, encode_with_length};

    use crate::frame::read_frame_within;

    #[tokio::test]
    async fn a_budget_bounds_what_is_buffered() {
        let frame = Frame::Sync(vec![7; 60]);
        let mut wire: Vec<u8> = encode_with_length(&frame);
        wire.extend(encode_with_length(&frame));
        let budget = Arc::new(Semaphore::new(100));
        let mut input = wire.as_slice();
        let (first, held) = read_frame_within(&mut input, 1000, &[&budget]).await.unwrap().unwrap();
        assert_eq!(first, frame);
        // The second frame does not fit while the first is held: it is not even allocated.
        let budgets = [&budget];
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), read_frame_within(&mut input, 1000, &budgets));
        assert!(blocked.await.is_err());
        drop(held);
        let mut input = &wire[wire.len() / 2..];
        let (second, _held) = read_frame_within(&mut input, 1000, &[&budget]).await.unwrap().unwrap();
        assert_eq!(second, frame);
    }

    /// Two issuers, each within its own budget, together beyond the node's: the second frame
    /// waits (unallocated) until the first is handled.
    #[tokio::test]
    async fn the_node_budget_bounds_what_all_peers_buffer_together() {
        let frame = Frame::Sync(vec![7; 60]);
        let wire: Vec<u8> = encode_with_length(&frame);
        let (alice, bob) = (Arc::new(Semaphore::new(100)), Arc::new(Semaphore::new(100)));
        let node = Arc::new(Semaphore::new(100));
        let mut from_alice = wire.as_slice();
        let (_, held) = read_frame_within(&mut from_alice, 1000, &[&alice, &node]).await.unwrap().unwrap();
        let mut from_bob = wire.as_slice();
        let budgets = [&bob, &node];
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), read_frame_within(&mut from_bob, 1000, &budgets));
        assert!(blocked.await.is_err(), "bob's frame fits his budget but not the node's");
        assert_eq!(bob.available_permits(), 100, "what waited gave its own budget back");
        drop(held);
        let mut from_bob = wire.as_slice();
        let (second, _held) = read_frame_within(&mut from_bob, 1000, &[&bob, &node]).await.unwrap().unwrap();
        assert_eq!(second, frame);
    }
}
