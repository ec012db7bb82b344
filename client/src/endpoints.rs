//! The gateways a client may use, in order of preference, and which one answered last.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// A list of gateway base URLs (`http://host:port` or `https://…`); calls go to the one
/// that answered last and fail over to the others in order.
#[derive(Debug, Clone)]
pub struct Endpoints {
    urls: Arc<Vec<String>>,
    preferred: Arc<AtomicUsize>,
}

impl Endpoints {
    /// Endpoints from base URLs (trailing slashes dropped); at least one, each http(s)://.
    pub fn new<I, S>(urls: I) -> Result<Endpoints>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| base_url(&u.into()))
            .collect::<Result<_>>()?;
        if urls.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        Ok(Endpoints {
            urls: Arc::new(urls),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The gateways of `aerolith dev`'s `endpoints.json` (`{"dcs":[{"http": …}]}`), in DC order.
    pub fn from_endpoints_json(text: &str) -> Result<Endpoints> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("endpoints.json: {e}")))?;
        let urls: Vec<String> = v["dcs"]
            .as_array()
            .map(|dcs| {
                dcs.iter()
                    .filter_map(|dc| dc["http"].as_str())
                    .map(|a| format!("http://{a}"))
                    .collect()
            })
            .unwrap_or_default();
        Endpoints::new(urls)
    }

    /// Every base URL, in configuration order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The index of the gateway calls try first.
    pub fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.urls.len()
    }

    /// Indexes in the order to try them: the preferred first, then the rest in order.
    pub(crate) fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        let first = self.preferred();
        (0..n).map(|i| (first + i) % n).collect()
    }

    /// Remembers that gateway `i` answered, so later calls start there.
    pub(crate) fn answered(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
    }

    /// The base URL of gateway `i`.
    pub(crate) fn url(&self, i: usize) -> &str {
        &self.urls[i % self.urls.len()]
    }
}

/// A base URL with its trailing slashes dropped, or an error if it is not http(s)://.
pub(crate) fn base_url(url: &str) -> Result<String> {
    let trimmed = url.trim_end_matches('/');
    if !trimmed.starts_with("http://") && !trimmed.starts_with("https://") {
        return Err(Error::Config(format!(
            "endpoint {url:?} is not an http:// or https:// URL"
        )));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_starts_at_the_gateway_that_answered_last() {
        let e = Endpoints::new(["http://a/", "http://b", "http://c"]).unwrap();
        assert_eq!(e.order(), vec![0, 1, 2]);
        e.answered(2);
        assert_eq!(e.order(), vec![2, 0, 1]);
        assert_eq!(e.url(0), "http://a");
    }

    #[test]
    fn endpoints_json_lists_every_dc() {
        let e = Endpoints::from_endpoints_json(
            r#"{"dcs":[{"id":"dc1","http":"127.0.0.1:8080"},{"id":"dc2","http":"127.0.0.1:8081"}]}"#,
        )
        .unwrap();
        assert_eq!(e.urls(), ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]);
        assert!(Endpoints::from_endpoints_json("{}").is_err());
        assert!(Endpoints::new(["ftp://x"]).is_err());
    }
}
