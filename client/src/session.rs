//! Session consistency: the `X-Aerolith-Session` token a client carries across calls.

use std::sync::{Arc, Mutex};

/// A session: the newest `X-Aerolith-Session` token seen, sent with every call made through
/// it, so reads see the session's own writes through any gateway (API.md "Session
/// consistency"). Clones share the token.
#[derive(Debug, Clone, Default)]
pub struct Session {
    token: Arc<Mutex<Option<String>>>,
}

impl Session {
    /// A new session with no token yet.
    pub fn new() -> Session {
        Session::default()
    }

    /// A session resuming from a token saved earlier.
    pub fn from_token(token: impl Into<String>) -> Session {
        Session {
            token: Arc::new(Mutex::new(Some(token.into()))),
        }
    }

    /// The current token, if any call has answered one yet.
    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps `token`, the server's merge of what was sent with what the call did.
    pub(crate) fn update(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.to_string());
    }
}
