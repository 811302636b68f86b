//! Reading and writing length-prefixed frames on QUIC streams, with the size limit enforced
//! before anything is allocated.

use iroh::endpoint::{RecvStream, SendStream};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vault_core::{Frame, FrameError, MAX_FRAME, decode, encode_with_length};

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

/// Largest frame a listener accepts before the peer has proven anything, and on control
/// streams (hello, list, receipts) and the first frame of a grant stream.
pub(crate) const CONTROL_LIMIT: usize = 64 * 1024;
/// Largest frame a listener accepts from a grantee on a grant stream: a grantee's sync messages
/// carry heads and bloom filters, never documents.
pub(crate) const GRANTEE_SYNC_LIMIT: usize = 1024 * 1024;
/// Largest Shares frame a dialer accepts.
pub(crate) const SHARES_LIMIT: usize = 16 * 1024 * 1024;

/// Reads a frame's length and checks it against `limit` (and [`MAX_FRAME`]) before anything
/// is allocated; `Ok(None)` when the stream ended cleanly between frames.
async fn read_length<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    limit: usize,
) -> Result<Option<usize>, ReadFrameError> {
    let mut len = [0u8; 4];
    match AsyncReadExt::read_exact(recv, &mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME.min(limit) {
        return Err(FrameError::TooLarge(len).into());
    }
    Ok(Some(len))
}

/// Reads one frame of at most `limit` bytes (and never more than [`MAX_FRAME`]); `Ok(None)`
/// when the stream ended cleanly between frames. The length is checked before allocating.
pub(crate) async fn read_frame(recv: &mut RecvStream, limit: usize) -> Result<Option<Frame>, ReadFrameError> {
    let Some(len) = read_length(recv, limit).await? else { return Ok(None) };
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await?;
    Ok(Some(decode(&body)?))
}

/// Reads one frame like [`read_frame`], first taking its length in bytes from `budget`: the
/// frame is allocated only once the budget allows, and the budget is given back when the
/// returned permit is dropped (after the frame was handled). One budget per issuer bounds
/// what that issuer can make this vault buffer, whatever the number of its streams.
pub(crate) async fn read_frame_within<R: tokio::io::AsyncRead + Unpin>(
    recv: &mut R,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<Option<(Frame, OwnedSemaphorePermit)>, ReadFrameError> {
    let Some(len) = read_length(recv, limit).await? else { return Ok(None) };
    let permit = budget
        .clone()
        .acquire_many_owned(u32::try_from(len.max(1)).map_err(|_| FrameError::TooLarge(len))?)
        .await
        .map_err(|_| std::io::Error::other("the session ended"))?;
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await?;
    Ok(Some((decode(&body)?, permit)))
}

/// Writes one frame; returns the bytes written.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &Frame) -> std::io::Result<usize> {
    let bytes = encode_with_length(frame);
    send.write_all(&bytes).await.map_err(std::io::Error::other)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Semaphore;
    use vault_core::{Frame, encode_with_length};

    use super::read_frame_within;

    #[tokio::test]
    async fn a_budget_bounds_what_is_buffered() {
        let frame = Frame::Sync(vec![7; 60]);
        let mut wire: Vec<u8> = encode_with_length(&frame);
        wire.extend(encode_with_length(&frame));
        let budget = Arc::new(Semaphore::new(100));
        let mut input = wire.as_slice();
        let (first, held) = read_frame_within(&mut input, 1000, &budget).await.unwrap().unwrap();
        assert_eq!(first, frame);
        // The second frame does not fit while the first is held: it is not even allocated.
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), read_frame_within(&mut input, 1000, &budget));
        assert!(blocked.await.is_err());
        drop(held);
        let mut input = &wire[wire.len() / 2..];
        let (second, _held) = read_frame_within(&mut input, 1000, &budget).await.unwrap().unwrap();
        assert_eq!(second, frame);
    }
}
