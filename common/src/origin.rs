//! Web origins (`scheme://host[:port]`, RFC 6454) named on the command line: the replicator
//! admin API a gateway's console talks to, and the console origins a replicator answers.
//! They end up in response headers (CORS, Content-Security-Policy), so only the characters
//! an origin may hold get through.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// One web origin, normalised (lower case, no trailing slash, no default port elided).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// The origin as a browser sends it in an `Origin` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origins a browser may send for a page served from `addr` (`host:port`) with
    /// `scheme`: the address itself and, for a loopback address, `localhost` too.
    pub fn for_addr(scheme: &str, addr: std::net::SocketAddr) -> Vec<Origin> {
        let mut out = vec![Origin(format!("{scheme}://{addr}"))];
        if addr.ip().is_loopback() {
            out.push(Origin(format!("{scheme}://localhost:{}", addr.port())));
        }
        out
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Origin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Origin> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "{s:?} is not a web origin (scheme://host[:port], http or https): {why}"
            ))
        };
        let lower = s.trim_end_matches('/').to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"))
            .ok_or_else(|| bad("the scheme must be http or https"))?;
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        // Brackets and colons for IPv6 literals and ports; nothing that could end a header
        // value or a CSP source list.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        if !rest.chars().all(allowed) {
            return Err(bad("only a host and a port, without a path, query or user"));
        }
        Ok(Origin(lower))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_nothing_but_an_origin_gets_through() {
        let o: Origin = "HTTP://127.0.0.1:9090/".parse().unwrap();
        assert_eq!(o.as_str(), "http://127.0.0.1:9090");
        assert!("https://[::1]:9090".parse::<Origin>().is_ok());
        for bad in [
            "ftp://x",
            "127.0.0.1:9090",
            "http://",
            "http://a/b",
            "http://a b",
            "http://a;script-src *",
            "http://user@a",
            "http://a\r\nx: y",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_address_is_also_reached_as_localhost() {
        let got = Origin::for_addr("http", "127.0.0.1:8080".parse().unwrap());
        let got: Vec<_> = got.iter().map(Origin::as_str).collect();
        assert_eq!(got, ["http://127.0.0.1:8080", "http://localhost:8080"]);
    }
}
