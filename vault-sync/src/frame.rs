//! Reading and writing length-prefixed frames on QUIC streams, with the size limit enforced
//! before anything is allocated.

use iroh::endpoint::{RecvStream, SendStream};
use tokio::io::AsyncReadExt;
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

/// Reads one frame; `Ok(None)` when the stream ended cleanly between frames.
pub(crate) async fn read_frame(recv: &mut RecvStream) -> Result<Option<Frame>, ReadFrameError> {
    let mut len = [0u8; 4];
    match AsyncReadExt::read_exact(recv, &mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len).into());
    }
    let mut body = vec![0u8; len];
    AsyncReadExt::read_exact(recv, &mut body).await?;
    Ok(Some(decode(&body)?))
}

/// Writes one frame; returns the bytes written.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &Frame) -> std::io::Result<usize> {
    let bytes = encode_with_length(frame);
    send.write_all(&bytes).await.map_err(std::io::Error::other)?;
    Ok(bytes.len())
}
