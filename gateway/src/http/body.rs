//! Reading request bodies: the media type, and a body within a size limit whose excess is
//! drained so the client reads the 413.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use bytes::Bytes;

use aerolith_common::{Error, ErrorCode};

use super::error::ApiError;

/// The essence of the request's Content-Type (`application/json`), if it has one.
pub fn media_type(headers: &HeaderMap) -> Result<Option<String>, Error> {
    match headers.get(CONTENT_TYPE) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Error::invalid("unreadable Content-Type"))?;
            let essence = s
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            Ok(Some(essence))
        }
    }
}

/// Past this many bytes an oversized body is no longer drained: the connection is dropped.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

/// Reads a body of at most `limit` bytes. An oversized body is still read (and discarded) up
/// to [`DRAIN_CAP`], so the client, which is still sending, receives the 413 instead of a
/// connection reset.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, Error> {
    use http_body_util::BodyExt;
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::invalid(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_CAP {
                break;
            }
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// A JSON body (`application/json`, or no Content-Type) of at most `limit` bytes.
pub async fn json_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    match media_type(req.headers())?.as_deref() {
        None | Some("application/json") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "Content-Type must be application/json, not {other}"
            ))
            .into());
        }
    }
    Ok(read_body(req, limit).await?)
}
