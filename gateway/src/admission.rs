//! Admission of a request, the same on every protocol: who is calling (their token), may
//! they do this (the role), are they within their request rate (a token bucket per token)
//! and within their caps of open connections, WebSockets and subscriptions (`crate::caps`).
//! The protocol adapters' layers ask; this module decides, and writes the audit line of
//! every refused authentication or authorisation, on every protocol, here and only here.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerolith_common::audit::{self, Outcome};
use aerolith_common::auth::{Caller, Role, Tokens};
use aerolith_common::{Error, ErrorCode, Result};

use crate::caps::{Caps, Kind, Slot};

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
    /// Caps per token on open connections, WebSockets and subscriptions.
    #[command(flatten)]
    pub caps: crate::caps::CapLimits,
}

/// Default of [`RequestLimits::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            rate_per_second: 0,
            burst: 0,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            caps: crate::caps::CapLimits::default(),
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
    caps: Arc<Caps>,
}

impl Admission {
    /// Admission by `tokens` (none: everyone is let in) within `limits`' rate and caps.
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
        Admission {
            tokens,
            rate,
            caps: Caps::new(limits.caps),
        }
    }

    /// Whether tokens are configured (authentication on).
    pub fn auth_on(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller presenting `token` from `peer`, if it has `needed`: `unauthenticated` or
    /// `permission_denied` otherwise, with an audit line naming `target` (what was asked:
    /// a method and path, a gRPC method; written out only for a refusal). Nothing is
    /// charged yet: see [`Who::charge`].
    pub fn identify(
        self: &Arc<Self>,
        token: Option<&str>,
        needed: Role,
        peer: Option<SocketAddr>,
        target: impl Display,
    ) -> Result<Who> {
        let caller = match self.tokens.caller(token) {
            Ok(c) => c,
            Err(e) => {
                self.refused(&e, None, peer, &target);
                return Err(e);
            }
        };
        let who = Who {
            caller,
            peer,
            admission: self.clone(),
        };
        who.require(needed, target)?;
        Ok(who)
    }

    /// Writes the audit line of a refused authentication or authorisation (other errors are
    /// not refusals of the caller's credentials and write none).
    fn refused(
        &self,
        e: &Error,
        caller: Option<&Caller>,
        peer: Option<SocketAddr>,
        target: &dyn Display,
    ) {
        let outcome = match e.code {
            ErrorCode::Unauthenticated => Outcome::Unauthenticated,
            ErrorCode::PermissionDenied => Outcome::Denied,
            _ => return,
        };
        let target = target.to_string();
        audit::record(&audit::Event {
            process: "gateway",
            action: "request",
            target: &target,
            role: caller.map(|c| c.role),
            token_id: caller.map_or("-", |c| self.tokens.id_of(c)),
            peer,
            outcome,
            reason: e.code.as_str(),
        });
    }
}

/// An admitted caller: their role and token, where they call from, and the admission that
/// checks, charges and caps what they do next (each WebSocket frame, each GraphQL
/// operation, each subscription).
#[derive(Clone)]
pub struct Who {
    /// The caller's role and token.
    pub caller: Caller,
    /// The caller's address, when known.
    pub peer: Option<SocketAddr>,
    admission: Arc<Admission>,
}

impl std::fmt::Debug for Who {
    // The admission holds the token values: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Who")
            .field("caller", &self.caller)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Who {
    /// `permission_denied` unless the caller has `needed`, with an audit line naming `target`
    /// (written out only for a refusal).
    pub fn require(&self, needed: Role, target: impl Display) -> Result<()> {
        self.caller.require(needed).inspect_err(|e| {
            self.admission
                .refused(e, Some(&self.caller), self.peer, &target)
        })
    }

    /// Counts one request (an HTTP request, a WebSocket frame, a GraphQL operation) against
    /// the caller's rate.
    pub fn charge(&self) -> Result<()> {
        match &self.admission.rate {
            Some(r) => r.charge(&self.caller, Instant::now()),
            None => Ok(()),
        }
    }

    /// A place of `kind` for the caller's token, held until the slot drops; `rate_limited`
    /// naming the cap when the token holds all of them.
    pub fn take(&self, kind: Kind) -> Result<Slot> {
        self.admission.caps.take(kind, &self.caller)
    }

    /// The caller's token id for audit lines (`-` with authentication off).
    pub fn token_id(&self) -> &str {
        self.admission.tokens.id_of(&self.caller)
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
        let adm = Arc::new(Admission::new(tokens, limits));
        let admit = |t, role| {
            adm.identify(t, role, None, "GET /")
                .and_then(|who| who.charge().map(|()| who))
        };
        let code = |r: Result<Who>| r.map(|_| ()).unwrap_err().code;
        assert_eq!(code(admit(None, Role::Read)), ErrorCode::Unauthenticated);
        let t = Some("read-token-0123456789");
        assert_eq!(code(admit(t, Role::Write)), ErrorCode::PermissionDenied);
        let who = admit(t, Role::Read).expect("the refusals cost nothing");
        assert_eq!(
            who.token_id(),
            aerolith_common::auth::token_id("read-token-0123456789")
        );
        assert_eq!(code(admit(t, Role::Read)), ErrorCode::RateLimited);
        let open = Arc::new(Admission::new(Tokens::default(), RequestLimits::default()));
        for _ in 0..1000 {
            let who = open.identify(None, Role::Admin, None, "GET /").unwrap();
            who.charge().unwrap();
            assert_eq!(who.token_id(), "-");
        }
    }
}
