//! Admission of a request, the same on every protocol: who is calling (their token), may
//! they do this (the role), and are they within their request rate (a token bucket per
//! token). The protocol adapters' layers ask; this module decides.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aerolith_common::auth::{Caller, Role, Tokens};
use aerolith_common::{Error, ErrorCode, Result};

/// Request limits of a gateway (README "Limits").
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct RequestLimits {
    /// Requests per second each token may make, on every protocol (WebSocket request
    /// frames included; callers without a token share one allowance); over it: 429
    /// `rate_limited` / RESOURCE_EXHAUSTED. 0: unlimited.
    #[arg(long = "rate-limit", env = "AEROLITH_RATE_LIMIT", default_value_t = 0)]
    pub rate_per_second: u32,
    /// Requests a token may make at once after a quiet spell; 0: one second's worth.
    #[arg(long = "rate-burst", env = "AEROLITH_RATE_BURST", default_value_t = 0)]
    pub burst: u32,
    /// Requests the gateway serves at once (HTTP and gRPC together); more wait for a
    /// place, within their deadline.
    #[arg(long, env = "AEROLITH_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_in_flight: usize,
}

/// Default of [`RequestLimits::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            rate_per_second: 0,
            burst: 0,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-token request rates.
#[derive(Debug)]
struct RateLimiter {
    per_second: f64,
    burst: f64,
    // Keyed by the token's index: as many entries as configured tokens, plus one.
    buckets: Mutex<HashMap<Option<usize>, Bucket>>,
}

impl RateLimiter {
    fn charge(&self, caller: &Caller, now: Instant) -> Result<()> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(caller.token).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / self.per_second);
        Err(Error::new(
            ErrorCode::RateLimited,
            format!(
                "over the limit of {} requests a second for this token; retry in {} ms",
                self.per_second,
                wait.as_millis().max(1)
            ),
        ))
    }
}

/// Decides whether a request goes ahead.
#[derive(Debug)]
pub struct Admission {
    tokens: Tokens,
    rate: Option<RateLimiter>,
}

impl Admission {
    /// Admission by `tokens` (none: everyone is let in) within `limits`' rate.
    pub fn new(tokens: Tokens, limits: RequestLimits) -> Admission {
        let rate = (limits.rate_per_second > 0).then(|| {
            let per_second = f64::from(limits.rate_per_second);
            let burst = match limits.burst {
                0 => per_second,
                b => f64::from(b),
            };
            RateLimiter {
                per_second,
                burst: burst.max(1.0),
                buckets: Mutex::new(HashMap::new()),
            }
        });
        Admission { tokens, rate }
    }

    /// The caller presenting `token`, if it has `needed` and is within its rate:
    /// `unauthenticated`, `permission_denied` or `rate_limited` otherwise. Refused requests
    /// cost nothing from the rate.
    pub fn admit(&self, token: Option<&str>, needed: Role) -> Result<Caller> {
        let caller = self.tokens.caller(token)?;
        caller.require(needed)?;
        self.charge(&caller)?;
        Ok(caller)
    }

    /// Counts one request of an admitted caller (a WebSocket request frame, say) against
    /// its rate.
    pub fn charge(&self, caller: &Caller) -> Result<()> {
        match &self.rate {
            Some(r) => r.charge(caller, Instant::now()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn each_token_has_its_own_bucket_that_refills_at_the_rate() {
        let r = limiter(2.0, 3.0);
        let (a, b) = (
            Caller {
                role: Role::Read,
                token: Some(0),
            },
            Caller {
                role: Role::Read,
                token: Some(1),
            },
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            r.charge(&a, t0).unwrap();
        }
        let over = r.charge(&a, t0).unwrap_err();
        assert_eq!(over.code, ErrorCode::RateLimited);
        assert!(over.message.contains("retry in 500 ms"), "{}", over.message);
        r.charge(&b, t0).expect("another token's bucket is full");
        r.charge(&a, t0 + Duration::from_millis(500))
            .expect("half a second refills one request");
        assert!(r.charge(&a, t0 + Duration::from_millis(500)).is_err());
        for _ in 0..3 {
            r.charge(&a, t0 + Duration::from_secs(60)).unwrap();
        }
        assert!(
            r.charge(&a, t0 + Duration::from_secs(60)).is_err(),
            "a quiet minute refills only the burst"
        );
    }

    #[test]
    fn admission_authenticates_then_authorizes_then_charges() {
        let mut tokens = Tokens::default();
        tokens.add_list("read:read-token-0123456789").unwrap();
        let limits = RequestLimits {
            rate_per_second: 1,
            ..RequestLimits::default()
        };
        let adm = Admission::new(tokens, limits);
        let code = |r: Result<Caller>| r.map(|_| ()).unwrap_err().code;
        assert_eq!(
            code(adm.admit(None, Role::Read)),
            ErrorCode::Unauthenticated
        );
        let t = Some("read-token-0123456789");
        assert_eq!(code(adm.admit(t, Role::Write)), ErrorCode::PermissionDenied);
        adm.admit(t, Role::Read).expect("the refusals cost nothing");
        assert_eq!(code(adm.admit(t, Role::Read)), ErrorCode::RateLimited);
        let open = Admission::new(Tokens::default(), RequestLimits::default());
        for _ in 0..1000 {
            open.admit(None, Role::Admin).unwrap();
        }
    }
}
