//! What a change stream keeps to resume after a broken connection, whatever carries it
//! (WebSocket or gRPC): the last token, the gateway whose DC the token names, and what an
//! error from the server means for the stream.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode};

/// A stream's position and where to take it up again.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// The last token seen: a change's, a checkpoint's or the subscription's start.
    pub token: Option<String>,
    /// The gateway whose DC the token names (tokens are per DC).
    pub home: Option<usize>,
    /// Gateways that said the token belongs to another DC.
    wrong_dc: HashSet<usize>,
    /// How many times the stream connected again after losing its connection.
    pub reconnects: u64,
    connected_once: bool,
}

impl Resume {
    /// Starts after `token` (`None`: now).
    pub fn new(token: Option<String>) -> Resume {
        Resume {
            token,
            ..Resume::default()
        }
    }

    /// Where to (re)connect: the token's gateway first, then the others in `order`, those
    /// that said the token belongs to another DC last.
    pub fn order(&self, mut order: Vec<usize>) -> Vec<usize> {
        if let Some(h) = self.home
            && let Some(pos) = order.iter().position(|&i| i == h)
        {
            order.remove(pos);
            order.insert(0, h);
        }
        order.sort_by_key(|i| self.wrong_dc.contains(i));
        order
    }

    /// A connection to gateway `i` is open.
    pub fn connected(&mut self) {
        if self.connected_once {
            self.reconnects += 1;
        }
        self.connected_once = true;
    }

    /// Gateway `i` confirmed the subscription at `token`.
    pub fn subscribed(&mut self, i: usize, token: Option<String>) {
        self.wrong_dc.clear();
        self.seen(i, token);
    }

    /// Gateway `i` sent a token (a checkpoint's; a change's once it is handed out).
    pub fn seen(&mut self, i: usize, token: Option<String>) {
        if token.is_some() {
            self.token = token;
        }
        self.home = Some(i);
    }

    /// What an error from gateway `i` (one of `gateways`) means: `Ok` to reconnect and
    /// resume, or the error that ends the stream.
    pub fn on_error(
        &mut self,
        i: usize,
        gateways: usize,
        code: ErrorCode,
        message: String,
    ) -> Result<(), Error> {
        match code {
            // A slow consumer (or too many subscriptions), a gateway going away, a feed
            // that could not open in time.
            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => Ok(()),
            // Another DC's gateway does not take the token: try the others, unless every
            // one has refused it.
            ErrorCode::InvalidArgument
                if message.contains("belongs to DC") && {
                    self.wrong_dc.insert(i);
                    self.wrong_dc.len() < gateways
                } =>
            {
                Ok(())
            }
            _ => Err(Error::Api {
                status: code.http_status(),
                code,
                message,
            }),
        }
    }
}

/// The rounds of a stream's connection attempts (every gateway once per round): the pause
/// after a failed round, and when to give up.
#[derive(Debug)]
pub(crate) struct Rounds {
    started: Instant,
    pause: Duration,
    timeout: Option<Duration>,
}

impl Rounds {
    /// Rounds that give up once `timeout` has passed (`None`: never).
    pub fn new(timeout: Option<Duration>) -> Rounds {
        Rounds {
            started: Instant::now(),
            pause: Duration::from_millis(50),
            timeout,
        }
    }

    /// After a round in which every gateway failed (`last`: the last failure, `what`: what
    /// none took): `unavailable` once the timeout passed, else a pause (50 ms doubling to
    /// 2 s) before the next round.
    pub async fn failed(&mut self, what: &str, last: Option<Error>) -> Result<(), Error> {
        if self.timeout.is_some_and(|t| self.started.elapsed() >= t) {
            let why = last.map(|e| e.to_string()).unwrap_or_default();
            return Err(Error::Api {
                code: ErrorCode::Unavailable,
                status: 503,
                message: format!("change stream: no gateway took the {what}: {why}"),
            });
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        Ok(())
    }
}

/// Whether a stream's connection attempt, or a feed's poll, that failed this way may be
/// tried again (at the next gateway, in the next round, from the same token).
pub(crate) fn retryable(e: &Error) -> bool {
    match e {
        Error::Connect { .. } | Error::Transport { .. } | Error::Timeout(_) => true,
        Error::Status { status, .. } => matches!(status, 502..=504),
        Error::Api { code, .. } => matches!(
            code,
            ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::DeadlineExceeded
        ),
        Error::Decode { .. } | Error::Config(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_gateway_comes_first_and_other_dcs_last() {
        let mut r = Resume::new(None);
        assert_eq!(r.order(vec![0, 1, 2]), [0, 1, 2]);
        r.seen(2, Some("t".into()));
        assert_eq!(r.order(vec![0, 1, 2]), [2, 0, 1]);
        let wrong = |r: &mut Resume, i| {
            r.on_error(
                i,
                3,
                ErrorCode::InvalidArgument,
                "token belongs to DC dc1".into(),
            )
        };
        assert!(wrong(&mut r, 2).is_ok());
        assert_eq!(r.order(vec![0, 1, 2]), [0, 1, 2]);
        assert!(wrong(&mut r, 0).is_ok());
        assert!(wrong(&mut r, 1).is_err(), "every gateway refused the token");
        let gone = r.on_error(0, 3, ErrorCode::NotFound, "collection deleted".into());
        assert!(gone.is_err_and(|e| e.status() == Some(404)));
        assert!(
            r.on_error(0, 3, ErrorCode::RateLimited, "slow consumer".into())
                .is_ok()
        );
    }
}
