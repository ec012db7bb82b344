//! The wire frame: a big-endian `u32` length, then one protobuf message.

use prost::Message;
use quinn::{RecvStream, SendStream};

/// Largest frame accepted by default (a page of documents is at most 16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 32 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is over the cap.
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The payload is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Reading failed.
    #[error("read failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Encodes a message as one frame.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec cannot run out of space.
    let _ = msg.encode(&mut buf);
    buf
}

/// Decodes a frame's payload, given the announced length already checked.
pub fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, FrameError> {
    Ok(M::decode(payload)?)
}

/// Writes one frame.
pub async fn write_frame<M: Message>(send: &mut SendStream, msg: &M) -> Result<(), FrameError> {
    send.write_all(&encode(msg)).await?;
    Ok(())
}

/// Reads one frame; `None` when the stream ended cleanly before a new frame began.
pub async fn read_frame<M: Message + Default>(
    recv: &mut RecvStream,
    max: usize,
) -> Result<Option<M>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match recv.read(&mut len[got..]).await? {
            Some(n) => got += n,
            None if got == 0 => return Ok(None),
            None => return Err(FrameError::Truncated),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
        quinn::ReadExactError::ReadError(e) => FrameError::Read(e),
    })?;
    decode(&payload).map(Some)
}
