//! Refusing an HTTP request before its handler runs, without breaking HTTP/2: a stream
//! answered with its request body unread is reset after the answer, and clients such as
//! curl then report the reset (error 92) instead of the refusal they were sent. So what is
//! left of the body is read first, within bounds.

use axum::extract::Request;
use axum::response::Response;

/// How much of a refused request's body is read before the refusal goes out, and for how
/// long at most (a client that sends more, or slower, gets the reset).
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// `resp`, once what is left of `req`'s body has been read (bounded).
pub async fn after_body(req: Request, resp: Response) -> Response {
    let body = req.into_body();
    let _ = tokio::time::timeout(DRAIN_TIME, axum::body::to_bytes(body, DRAIN_BYTES)).await;
    resp
}
