//! Collections: listing, creating, reading and deleting them, and the typed handle that
//! document calls go through.

use std::marker::PhantomData;

use reqwest::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::client::{Call, CallOptions, Client};
use crate::error::{Error, Result};

/// How concurrent versions of a document are resolved (fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// Last writer wins (the default).
    #[default]
    Lww,
    /// Concurrent versions kept as siblings.
    Siblings,
    /// Per top-level field, the newest write wins.
    FieldMerge,
}

/// A collection as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// Its conflict strategy.
    pub conflict_strategy: ConflictStrategy,
    /// When it was created (absent in listings).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A typed handle on one collection: documents read into and written from `T`.
#[derive(Debug)]
pub struct Collection<T = serde_json::Value> {
    pub(crate) client: Client,
    pub(crate) name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Collection<T> {
        Collection {
            client: self.client.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

/// `s` with every byte outside API.md's name and id characters percent-encoded, so that
/// no name can change a request's path.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A typed handle on collection `name` (nothing is sent).
    pub fn collection<T>(&self, name: &str) -> Collection<T>
    where
        T: Serialize + DeserializeOwned,
    {
        Collection {
            client: self.clone(),
            name: name.to_string(),
            _t: PhantomData,
        }
    }

    /// Every collection with its conflict strategy.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let a = self
            .send(Call::new(Method::GET, "/v1/collections".into()))
            .await?;
        decode(&a.url, &a.body["collections"])
    }

    /// Creates collection `name` (or leaves it as it is); `true` if it was created.
    pub async fn create_collection(
        &self,
        name: &str,
        strategy: Option<ConflictStrategy>,
    ) -> Result<bool> {
        let body = match strategy {
            Some(s) => serde_json::json!({ "conflict_strategy": s }),
            None => serde_json::json!({}),
        };
        let call = Call::new(Method::PUT, format!("/v1/collections/{}", segment(name)))
            .json(&body)?
            .write(&CallOptions::default());
        Ok(self.send(call).await?.status == 201)
    }

    /// Collection `name`'s settings (`not_found` if it does not exist).
    pub async fn get_collection(&self, name: &str) -> Result<CollectionInfo> {
        let path = format!("/v1/collections/{}", segment(name));
        let a = self.send(Call::new(Method::GET, path)).await?;
        decode(&a.url, &a.body)
    }

    /// Deletes collection `name` and its documents in every DC (needs the `admin` role).
    pub async fn delete_collection(&self, name: &str) -> Result<()> {
        let path = format!("/v1/collections/{}", segment(name));
        self.send(Call::new(Method::DELETE, path).write(&CallOptions::default()))
            .await?;
        Ok(())
    }
}

impl<T> Collection<T> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path of this collection's `rest` (`/v1/collections/{c}{rest}`).
    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/v1/collections/{}{rest}", segment(&self.name))
    }
}

/// `v` read as a `D`, or a decode error naming `url`.
pub(crate) fn decode<D: DeserializeOwned>(url: &str, v: &serde_json::Value) -> Result<D> {
    D::deserialize(v).map_err(|e| Error::Decode {
        url: url.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_cannot_change_the_path() {
        assert_eq!(super::segment("users"), "users");
        assert_eq!(super::segment("../x?y"), "..%2Fx%3Fy");
    }
}
