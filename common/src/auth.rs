//! Bearer tokens and roles (API.md "Authentication"): the token set a process is configured
//! with, constant-time lookup, and the role each REST route and gRPC method needs. The
//! protocol adapters enforce it; this module only decides.

use std::path::Path;

use crate::{Error, ErrorCode, Result};

/// What a token may do; each role implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every read, the change feed, `/v1/cluster`.
    Read,
    /// Document writes, bulk, creating collections.
    Write,
    /// Deleting collections and the replicator admin API.
    Admin,
}

impl Role {
    /// The role's name in API.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            // The text is not echoed: a line with role and token swapped would print the
            // token.
            _ => Err(Error::invalid("unknown role: read, write or admin")),
        }
    }
}

/// Who made a request: the role its token grants, and which configured token it was (so
/// limits can be kept per token without holding the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// What the caller may do.
    pub role: Role,
    /// The index of the caller's token among the configured ones; `None` with auth off.
    pub token: Option<usize>,
}

impl Caller {
    /// The caller of a process without tokens: anyone who reaches the port may do anything.
    pub const UNRESTRICTED: Caller = Caller {
        role: Role::Admin,
        token: None,
    };

    /// The caller assumed where none was recorded (failing closed: reads only).
    pub const READ_ONLY: Caller = Caller {
        role: Role::Read,
        token: None,
    };

    /// `permission_denied` unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "this needs the {} role; the token has {}",
                    needed.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }
}

/// The configured tokens; empty means authentication is off (dev mode).
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
    /// Each token's id for logs, in `entries`' order (see [`token_id`]).
    ids: Vec<String>,
}

impl std::fmt::Debug for Tokens {
    // Never print token values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

impl Tokens {
    /// Whether no token is configured (authentication off).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the tokens of a file of `ROLE TOKEN` lines (blank lines and `#` comments
    /// skipped).
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(Error::invalid(format!(
                    "{} line {}: expected `ROLE TOKEN`",
                    path.display(),
                    n + 1
                )));
            };
            let role = Role::parse(role).map_err(|e| {
                Error::invalid(format!("{} line {}: {}", path.display(), n + 1, e.message))
            })?;
            self.add(role, token)?;
        }
        Ok(())
    }

    /// Adds the tokens of an `AEROLITH_AUTH_TOKENS` value: `role:token,role:token`.
    pub fn add_list(&mut self, list: &str) -> Result<()> {
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (role, token) = item.split_once(':').ok_or_else(|| {
                Error::invalid("AEROLITH_AUTH_TOKENS entries are `role:token`".to_string())
            })?;
            self.add(Role::parse(role.trim())?, token.trim())?;
        }
        Ok(())
    }

    fn add(&mut self, role: Role, token: &str) -> Result<()> {
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "a token must be at least 16 printable characters without spaces".to_string(),
            ));
        }
        self.entries.push((token.as_bytes().to_vec(), role));
        self.ids.push(token_id(token));
        Ok(())
    }

    /// The id of the caller's token for logs and audit lines (`-` with authentication off).
    pub fn id_of(&self, caller: &Caller) -> &str {
        caller
            .token
            .and_then(|i| self.ids.get(i))
            .map_or("-", String::as_str)
    }

    /// Tokens from a `ROLE TOKEN` file and an `AEROLITH_AUTH_TOKENS` list, either or both.
    pub fn load(file: Option<&Path>, list: Option<&str>) -> Result<Tokens> {
        let mut tokens = Tokens::default();
        if let Some(f) = file {
            tokens.add_file(f)?;
        }
        if let Some(l) = list {
            tokens.add_list(l)?;
        }
        Ok(tokens)
    }

    /// The caller holding `token`, comparing against every configured token in constant
    /// time (the time does not depend on where or whether a match is).
    pub fn lookup(&self, token: &str) -> Option<Caller> {
        let mut found: Option<Caller> = None;
        for (i, (known, role)) in self.entries.iter().enumerate() {
            if constant_time_eq(known, token.as_bytes()) && found.is_none_or(|f| *role > f.role) {
                found = Some(Caller {
                    role: *role,
                    token: Some(i),
                });
            }
        }
        found
    }

    /// The role of `token`, if it is one of the configured ones.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.lookup(token).map(|c| c.role)
    }

    /// The caller of a request presenting `token` (from a header or query parameter):
    /// unrestricted when no token is configured, `unauthenticated` when it is missing or
    /// unknown.
    pub fn caller(&self, token: Option<&str>) -> Result<Caller> {
        if self.is_empty() {
            return Ok(Caller::UNRESTRICTED);
        }
        let token = token.ok_or_else(|| {
            Error::new(
                ErrorCode::Unauthenticated,
                "this needs a token: Authorization: Bearer <token>",
            )
        })?;
        self.lookup(token)
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "unknown token"))
    }

    /// The role of an `Authorization` header value (`Bearer <token>`): `unauthenticated`
    /// when missing, malformed or unknown.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Role> {
        let token = header
            .and_then(bearer)
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
        self.role_of(token)
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "unknown token"))
    }
}

/// A token's id for logs: `tok-` and the first 12 hex digits of its SHA-256. It names the
/// token across restarts and reorderings of the token file, and tells nothing usable about
/// the secret (tokens are at least 16 characters; `aerolith certs` writes 256-bit ones).
pub fn token_id(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tok-{hex}")
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Refuses to serve `addrs` without tokens unless they are all loopback or `allow_no_auth`
/// says so; with no tokens, logs that authentication is off.
pub fn check_exposure(
    tokens: &Tokens,
    allow_no_auth: bool,
    addrs: &[std::net::SocketAddr],
) -> Result<()> {
    if !tokens.is_empty() {
        return Ok(());
    }
    if let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback())
        && !allow_no_auth
    {
        return Err(Error::invalid(format!(
            "refusing to serve {open} without authentication: configure tokens with \
             --auth-tokens FILE or AEROLITH_AUTH_TOKENS, or pass --allow-no-auth"
        )));
    }
    tracing::warn!(
        "authentication is off: no token is configured, so anyone who reaches the port may read, write and administer"
    );
    Ok(())
}

/// Where a process's tokens come from (API.md "Authentication").
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenArgs {
    /// File of `ROLE TOKEN` lines (roles `read`, `write`, `admin`) that clients must present
    /// as `Authorization: Bearer <token>`; the `AEROLITH_AUTH_TOKENS` environment variable
    /// (`role:token,role:token`) adds more. With neither, authentication is off.
    #[arg(long, env = "AEROLITH_AUTH_TOKENS_FILE", value_name = "FILE")]
    pub auth_tokens: Option<std::path::PathBuf>,
}

impl TokenArgs {
    /// The tokens of `--auth-tokens` and `AEROLITH_AUTH_TOKENS` together.
    pub fn load(&self) -> Result<Tokens> {
        let list = std::env::var("AEROLITH_AUTH_TOKENS").ok();
        Tokens::load(self.auth_tokens.as_deref(), list.as_deref())
    }
}

/// Tokens, and whether a process without them may listen beyond loopback.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Where the tokens come from.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Serve on a non-loopback address with no token configured (authentication off:
    /// anyone who reaches the port may read, write and administer).
    #[arg(long, env = "AEROLITH_ALLOW_NO_AUTH")]
    pub allow_no_auth: bool,
}

impl AuthArgs {
    /// The configured tokens, refused when there are none and `addrs` reach beyond
    /// loopback without `--allow-no-auth`.
    pub fn tokens_for(&self, addrs: &[std::net::SocketAddr]) -> Result<Tokens> {
        let tokens = self.tokens.load()?;
        check_exposure(&tokens, self.allow_no_auth, addrs)?;
        Ok(tokens)
    }
}

/// Equal bytes, compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "read-token-0123456789";
    const W: &str = "write-token-0123456789";
    const A: &str = "admin-token-0123456789";

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        t.add_list(&format!("read:{R}, write:{W},admin:{A}"))
            .unwrap();
        t
    }

    #[test]
    fn tokens_map_to_their_roles_and_unknown_ones_to_nothing() {
        let t = tokens();
        assert_eq!(t.role_of(R), Some(Role::Read));
        assert_eq!(t.role_of(W), Some(Role::Write));
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of("read-token-012345678"), None, "a prefix");
        assert_eq!(t.role_of("read-token-01234567890"), None, "longer");
        assert_eq!(t.role_of(""), None);
        assert_eq!(
            t.authenticate(Some(&format!("Bearer {W}"))).unwrap(),
            Role::Write
        );
        for bad in [None, Some("Basic abc"), Some("Bearer nope-nope-nope-nope")] {
            assert_eq!(
                t.authenticate(bad).unwrap_err().code,
                ErrorCode::Unauthenticated
            );
        }
        assert!(!format!("{t:?}").contains(R), "Debug never shows a token");
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Token abc"), None);
    }

    #[test]
    fn callers_carry_their_token_and_need_the_role() {
        let t = tokens();
        let read = t.caller(Some(R)).unwrap();
        assert_eq!(read.role, Role::Read);
        assert_ne!(read.token, t.caller(Some(W)).unwrap().token);
        assert_eq!(
            read.require(Role::Write).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        assert!(read.require(Role::Read).is_ok());
        assert_eq!(t.caller(None).unwrap_err().code, ErrorCode::Unauthenticated);
        assert_eq!(
            Tokens::default().caller(None).unwrap(),
            Caller::UNRESTRICTED
        );
    }

    #[test]
    fn without_tokens_only_loopback_is_served_unless_allowed() {
        let open: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let none = Tokens::default();
        assert!(check_exposure(&none, false, &[local]).is_ok());
        let refused = check_exposure(&none, false, &[local, open]).unwrap_err();
        assert!(
            refused.message.contains("--allow-no-auth"),
            "{}",
            refused.message
        );
        assert!(check_exposure(&none, true, &[open]).is_ok());
        assert!(check_exposure(&tokens(), false, &[open]).is_ok());
    }

    #[test]
    fn token_files_and_lists_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, format!("# who may do what\n\nread {R}\nadmin {A}\n")).unwrap();
        let mut t = Tokens::default();
        t.add_file(&f).unwrap();
        assert_eq!(t.role_of(A), Some(Role::Admin));
        std::fs::write(&f, format!("read {R} extra\n")).unwrap();
        assert!(Tokens::default().add_file(&f).is_err());
        assert!(
            Tokens::default()
                .add_list("reader:0123456789abcdef")
                .is_err()
        );
        assert!(Tokens::default().add_list("read:short").is_err());
        assert!(Tokens::default().add_list("read0123456789abcdef").is_err());
        assert!(Tokens::default().is_empty());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }
}
