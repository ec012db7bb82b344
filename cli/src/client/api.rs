//! The client commands' connection to the cluster, through the `aerolith-client` crate:
//! requests to the gateway or the replicator admin API with the token attached, and the
//! crate's errors turned into [`Failure`]s.

use aerolith_client::{AdminClient, CallOptions, Client, Error, Method};
use serde_json::Value;

use super::{Failure, Global};

/// A server's successful answer: its JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The body, parsed.
    pub body: Value,
}

/// A connection to one cluster's gateway and replicator admin API.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    admin: AdminClient,
}

/// A base URL: `http://`, or `https://` when a CA to trust was given.
fn base(url: &str, what: &str, tls: bool) -> Result<String, Failure> {
    let trimmed = url.trim_end_matches('/');
    if trimmed.starts_with("https://") && !tls {
        return Err(Failure::usage(format!(
            "{what} {url:?} is https://: pass --ca PEM (the CA that signed its certificate; \
             `aerolith certs --public-names` writes public-ca.pem)"
        )));
    }
    if !trimmed.starts_with("http://") && !trimmed.starts_with("https://") {
        return Err(Failure::usage(format!(
            "{what} {url:?} is not an http:// or https:// URL"
        )));
    }
    Ok(trimmed.to_string())
}

/// The CA PEM of `--ca` (the client crate checks that it holds certificates).
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read --ca {}: {e}", path.display())))
}

/// The client crate's error as the CLI reports it: `not_found` exits 1, the rest 3.
pub fn failure(e: Error) -> Failure {
    match e {
        Error::Api { code, message, .. } => Failure::from_error(code.as_str(), &message),
        Error::Status { url, status: 404 } => {
            Failure::from_error("not_found", &format!("{url} not found"))
        }
        Error::Transport { url, message } => {
            Failure::other(format!("cannot reach {url}: {message}"))
        }
        other => Failure::other(other.to_string()),
    }
}

impl Api {
    /// A client for `global`'s endpoints, token and CA.
    pub fn new(global: &Global) -> Result<Api, Failure> {
        let tls = global.ca.is_some();
        let endpoint = base(&global.endpoint, "--endpoint", tls)?;
        let admin_url = base(&global.admin_endpoint, "--admin-endpoint", tls)?;
        let ca = global.ca.as_deref().map(read_ca).transpose()?;
        // One pass: a person at a terminal wants the failure now, not after the deadline.
        let mut builder = Client::builder()
            .endpoint(&endpoint)
            .retry_until_deadline(false);
        if let Some(t) = &global.token {
            builder = builder.token(t);
        }
        if let Some(pem) = &ca {
            builder = builder.ca_pem(pem.clone());
        }
        // The crate refuses a CA that holds no certificate: the person's `--ca` is wrong.
        let setup = |e: Error| match (&e, &global.ca) {
            (Error::Config(why), Some(path)) => {
                Failure::usage(format!("--ca {}: {why}", path.display()))
            }
            _ => Failure::other(format!("HTTP client: {e}")),
        };
        let client = builder.build().map_err(setup)?;
        let admin =
            AdminClient::new(&admin_url, global.token.clone(), ca.as_deref()).map_err(setup)?;
        Ok(Api { client, admin })
    }

    /// The client crate's client of the gateway (for what needs more than one call).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A request to the gateway (`path` from `/v1/...`); `If-Match` is the only header the
    /// commands send. Writes carry an idempotency key.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Failure> {
        let mut opts = CallOptions::default();
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("if-match") {
                opts.if_match = Some((*v).to_string());
            }
        }
        let read_only =
            method == Method::GET || path.ends_with("/query") || path.ends_with("/count");
        let body = self
            .client
            .raw(method, path, body, !read_only, &opts)
            .await
            .map_err(failure)?;
        Ok(Answer { body })
    }

    /// A POST of a JSON body to the replicator admin API.
    pub async fn admin_post(&self, path: &str, json: Vec<u8>) -> Result<Answer, Failure> {
        let body = self.admin.post(path, json).await.map_err(failure)?;
        Ok(Answer { body })
    }

    /// A GET of the replicator admin API.
    pub async fn admin_get(&self, path: &str) -> Result<Answer, Failure> {
        let body = self.admin.get(path).await.map_err(failure)?;
        Ok(Answer { body })
    }
}
