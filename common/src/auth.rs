//! Bearer tokens and roles (API.md "Authentication"): the token set a process is configured
//! with, constant-time lookup, and the role each REST route and gRPC method needs. The
//! protocol adapters enforce it; this module only decides.

use std::path::Path;

use crate::{Error, ErrorCode, Result};

/// What a token may do; each role implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every read, the change feed, `/v1/cluster`.
    Read,
    /// Document writes, bulk, creating collections.
    Write,
    /// Deleting collections and the replicator admin API.
    Admin,
}

impl Role {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(Error::invalid(format!(
                "unknown role {other:?}: read, write or admin"
            ))),
        }
    }
}

/// The configured tokens; empty means authentication is off (dev mode).
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
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
            self.add(Role::parse(role)?, token)?;
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
        Ok(())
    }

    /// The role of `token`, comparing against every configured token in constant time
    /// (the time does not depend on where or whether a match is).
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let mut found = None;
        for (known, role) in &self.entries {
            if constant_time_eq(known, token.as_bytes()) {
                found = found.max(Some(*role));
            }
        }
        found
    }

    /// The role of an `Authorization` header value (`Bearer <token>`): `unauthenticated`
    /// when missing, malformed or unknown.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Role> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
        self.role_of(token)
            .ok_or_else(|| Error::new(ErrorCode::Unauthenticated, "unknown token"))
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

/// The role a REST request needs; `None` for the unauthenticated endpoints (health,
/// readiness, metrics and the OpenAPI document).
pub fn rest_role(method: &str, path: &str) -> Option<Role> {
    if matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json") {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segments.as_slice()) {
        ("DELETE", ["v1", "collections", _]) => Role::Admin,
        // A query is a read, though it is a POST.
        ("POST", ["v1", "collections", _, "query"]) => Role::Read,
        // GraphQL decides per operation (mutations need write).
        ("POST", ["graphql"]) => Role::Read,
        ("GET" | "HEAD" | "OPTIONS", _) => Role::Read,
        _ => Role::Write,
    })
}

/// The role a gRPC method needs (its full path, `/package.Service/Method`); `None` for the
/// health service.
pub fn grpc_role(path: &str) -> Option<Role> {
    if path.starts_with("/grpc.health.v1.Health/") {
        return None;
    }
    Some(match path.rsplit('/').next().unwrap_or_default() {
        "DeleteCollection" => Role::Admin,
        "PutDocument" | "PatchDocument" | "DeleteDocument" | "BulkWrite" | "CreateCollection" => {
            Role::Write
        }
        // Reads, Watch and server reflection.
        _ => Role::Read,
    })
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
    fn routes_need_the_roles_api_md_gives_them() {
        assert_eq!(rest_role("GET", "/healthz"), None);
        assert_eq!(rest_role("GET", "/metrics"), None);
        assert_eq!(rest_role("GET", "/v1/cluster"), Some(Role::Read));
        assert_eq!(
            rest_role("GET", "/v1/collections/c/changes"),
            Some(Role::Read)
        );
        assert_eq!(
            rest_role("POST", "/v1/collections/c/query"),
            Some(Role::Read)
        );
        assert_eq!(
            rest_role("PUT", "/v1/collections/c/docs/d"),
            Some(Role::Write)
        );
        assert_eq!(
            rest_role("POST", "/v1/collections/c/bulk"),
            Some(Role::Write)
        );
        assert_eq!(rest_role("PUT", "/v1/collections/c"), Some(Role::Write));
        assert_eq!(
            rest_role("DELETE", "/v1/collections/c/docs/d"),
            Some(Role::Write)
        );
        assert_eq!(rest_role("DELETE", "/v1/collections/c"), Some(Role::Admin));
        assert_eq!(grpc_role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(grpc_role("/aerolith.v1.Documents/Watch"), Some(Role::Read));
        assert_eq!(
            grpc_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Role::Read)
        );
        assert_eq!(
            grpc_role("/aerolith.v1.Documents/BulkWrite"),
            Some(Role::Write)
        );
        assert_eq!(
            grpc_role("/aerolith.v1.Documents/DeleteCollection"),
            Some(Role::Admin)
        );
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }
}
