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

/// The announced length of a frame, refused beyond `max`.
fn checked_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes the first frame of `bytes`: the message and the bytes it took, or `None` when
/// `bytes` hold only part of a frame. The same checks as [`read_frame`], on a buffer (what
/// the fuzz target drives).
pub fn split_frame<M: Message + Default>(
    bytes: &[u8],
    max: usize,
) -> Result<Option<(M, usize)>, FrameError> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = checked_len(*prefix, max)?;
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    Ok(Some((decode(payload)?, 4 + len)))
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
    let len = checked_len(len, max)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
        quinn::ReadExactError::ReadError(e) => FrameError::Read(e),
    })?;
    decode(&payload).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn frames_split_whole_and_refuse_what_is_short_long_or_garbled() {
        let ping = pb::Request::default();
        let mut bytes = encode(&ping);
        bytes.extend(encode(&ping));
        let (_, used) = split_frame::<pb::Request>(&bytes, 1024).unwrap().unwrap();
        assert_eq!(used, bytes.len() / 2);
        assert!(
            split_frame::<pb::Request>(&bytes[..3], 1024)
                .unwrap()
                .is_none()
        );
        let announced = [0, 0, 0, 9, 1, 2];
        assert!(
            split_frame::<pb::Request>(&announced, 1024)
                .unwrap()
                .is_none()
        );
        let huge = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            split_frame::<pb::Request>(&huge, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        let garbled = [0, 0, 0, 2, 0xff, 0xff];
        assert!(matches!(
            split_frame::<pb::Request>(&garbled, 1024),
            Err(FrameError::Decode(_))
        ));
    }
}
