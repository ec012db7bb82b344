//! Caps per token on what a client holds open (README "Limits"): connections to the public
//! ports, WebSocket connections, and live subscriptions (WebSocket subscriptions, GraphQL
//! subscriptions and gRPC `Watch` counted together). A place is a [`Slot`], given back when
//! it drops, so no path that closes a connection or ends a feed can forget to free it.
//! Caps hold only with tokens configured: without them there is no token to count by.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aerolith_common::auth::Caller;
use aerolith_common::{Error, ErrorCode, Result};

/// Default of [`CapLimits::connections`].
pub const DEFAULT_CONNECTIONS: u32 = 1024;
/// Default of [`CapLimits::websockets`].
pub const DEFAULT_WEBSOCKETS: u32 = 256;
/// Default of [`CapLimits::subscriptions`].
pub const DEFAULT_SUBSCRIPTIONS: u32 = 1024;

/// How much each token may hold open at once (0: no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct CapLimits {
    /// Connections each token may hold open, HTTP and gRPC ports together; a connection is
    /// held by the token of the first authenticated request it carries (and by every other
    /// token it carries). Over it: 429 `rate_limited` / RESOURCE_EXHAUSTED. 0: no cap.
    /// Only with tokens configured.
    #[arg(long = "max-connections-per-token", env = "AEROLITH_MAX_CONNECTIONS_PER_TOKEN",
          default_value_t = DEFAULT_CONNECTIONS, value_name = "N")]
    pub connections: u32,
    /// WebSocket connections (`/v1/ws` and `/graphql/ws` together) each token may hold
    /// open; over it the upgrade gets 429 `rate_limited`. 0: no cap. Only with tokens
    /// configured.
    #[arg(long = "max-websockets-per-token", env = "AEROLITH_MAX_WEBSOCKETS_PER_TOKEN",
          default_value_t = DEFAULT_WEBSOCKETS, value_name = "N")]
    pub websockets: u32,
    /// Live subscriptions (WebSocket and GraphQL subscriptions and gRPC Watch calls
    /// together) each token may hold open; over it the subscription is refused with
    /// `rate_limited`. 0: no cap. Only with tokens configured.
    #[arg(long = "max-subscriptions-per-token", env = "AEROLITH_MAX_SUBSCRIPTIONS_PER_TOKEN",
          default_value_t = DEFAULT_SUBSCRIPTIONS, value_name = "N")]
    pub subscriptions: u32,
}

impl Default for CapLimits {
    fn default() -> Self {
        CapLimits {
            connections: DEFAULT_CONNECTIONS,
            websockets: DEFAULT_WEBSOCKETS,
            subscriptions: DEFAULT_SUBSCRIPTIONS,
        }
    }
}

/// What a slot is a place for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A connection to the HTTP or gRPC port.
    Connection,
    /// A WebSocket connection.
    WebSocket,
    /// A live subscription.
    Subscription,
}

impl Kind {
    /// What the cap counts, for refusals.
    fn what(self) -> &'static str {
        match self {
            Kind::Connection => "open connections",
            Kind::WebSocket => "open WebSocket connections",
            Kind::Subscription => "live subscriptions",
        }
    }

    /// The flag that sets the cap, for refusals.
    fn flag(self) -> &'static str {
        match self {
            Kind::Connection => "--max-connections-per-token",
            Kind::WebSocket => "--max-websockets-per-token",
            Kind::Subscription => "--max-subscriptions-per-token",
        }
    }

    /// The `cap` label of refusal metrics.
    fn label(self) -> &'static str {
        match self {
            Kind::Connection => "connections",
            Kind::WebSocket => "websockets",
            Kind::Subscription => "subscriptions",
        }
    }
}

impl CapLimits {
    fn of(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Connection => self.connections,
            Kind::WebSocket => self.websockets,
            Kind::Subscription => self.subscriptions,
        }
    }
}

/// The places each token holds.
#[derive(Debug)]
pub struct Caps {
    limits: CapLimits,
    // Keyed by kind and token index: at most three entries per configured token.
    held: Mutex<HashMap<(Kind, usize), u32>>,
}

impl Caps {
    /// Caps of `limits`.
    pub fn new(limits: CapLimits) -> Arc<Caps> {
        Arc::new(Caps {
            limits,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A place of `kind` for `caller`'s token, or `rate_limited` naming the cap when the
    /// token holds all of them. Callers without a token (authentication off) and kinds
    /// without a cap get a slot that counts nothing.
    pub fn take(self: &Arc<Self>, kind: Kind, caller: &Caller) -> Result<Slot> {
        let cap = self.limits.of(kind);
        let Some(token) = caller.token.filter(|_| cap > 0) else {
            return Ok(Slot::unheld());
        };
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry((kind, token)).or_insert(0);
        if *n >= cap {
            metrics::counter!("aerolith_cap_refusals_total", "cap" => kind.label()).increment(1);
            return Err(Error::new(
                ErrorCode::RateLimited,
                format!(
                    "this token holds its cap of {cap} {} ({}); close one and retry",
                    kind.what(),
                    kind.flag()
                ),
            ));
        }
        *n += 1;
        Ok(Slot {
            held: Some((self.clone(), kind, token)),
        })
    }

    fn give_back(&self, kind: Kind, token: usize) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&(kind, token)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&(kind, token));
            }
        }
    }
}

/// One place held; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    held: Option<(Arc<Caps>, Kind, usize)>,
}

impl Slot {
    /// A slot that holds no place (for what no token asked for).
    pub fn unheld() -> Slot {
        Slot { held: None }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((caps, kind, token)) = self.held.take() {
            caps.give_back(kind, token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_common::auth::Role;

    fn caller(token: usize) -> Caller {
        Caller {
            role: Role::Read,
            token: Some(token),
        }
    }

    #[test]
    fn each_token_holds_at_most_its_cap_until_a_slot_drops() {
        let caps = Caps::new(CapLimits {
            connections: 2,
            websockets: 0,
            subscriptions: 1,
        });
        let (a, b) = (caller(0), caller(1));
        let first = caps.take(Kind::Connection, &a).unwrap();
        let _second = caps.take(Kind::Connection, &a).unwrap();
        let over = caps.take(Kind::Connection, &a).unwrap_err();
        assert_eq!(over.code, ErrorCode::RateLimited);
        assert!(
            over.message.contains("cap of 2 open connections")
                && over.message.contains("--max-connections-per-token"),
            "{}",
            over.message
        );
        caps.take(Kind::Connection, &b)
            .expect("another token has its own places");
        caps.take(Kind::Subscription, &a)
            .expect("kinds are counted apart");
        drop(first);
        caps.take(Kind::Connection, &a)
            .expect("a dropped slot is given back");
        for _ in 0..100 {
            std::mem::forget(caps.take(Kind::WebSocket, &a).expect("0 is no cap"));
        }
        for _ in 0..100 {
            std::mem::forget(
                caps.take(Kind::Subscription, &Caller::UNRESTRICTED)
                    .expect("no token, no cap"),
            );
        }
    }
}
