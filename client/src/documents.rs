//! Documents: get, put, create, patch and delete on a typed collection.

use reqwest::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::client::{Call, CallOptions};
use crate::collections::{Collection, decode, segment};
use crate::error::{Error, Result};

/// A document as the server returns it, with its data read as `T`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Document<T = serde_json::Value> {
    /// Its collection.
    pub collection: String,
    /// Its id.
    pub id: String,
    /// Its version (the value for `If-Match`).
    pub version: String,
    /// When it was last written (RFC 3339, UTC, milliseconds).
    pub updated_at: String,
    /// The DC that wrote this version.
    pub origin: String,
    /// Its data.
    pub data: T,
    /// Unresolved concurrent versions (`siblings` collections only).
    #[serde(default = "Vec::new")]
    pub conflicts: Vec<ConflictVersion<T>>,
}

/// A concurrent version kept beside a `siblings` document's winner.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConflictVersion<T = serde_json::Value> {
    /// Its version.
    pub version: String,
    /// When it was written.
    pub updated_at: String,
    /// The DC that wrote it.
    pub origin: String,
    /// Its data.
    pub data: T,
}

/// A patch: a merge patch (RFC 7396, an object) or a JSON Patch (RFC 6902, an array).
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// A merge patch.
    Merge(serde_json::Value),
    /// A JSON Patch.
    Json(serde_json::Value),
}

/// What a put did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T = serde_json::Value> {
    /// Whether it created the document (201) rather than replaced it.
    pub created: bool,
    /// The document as written.
    pub document: Document<T>,
}

impl<T> Collection<T>
where
    T: Serialize + DeserializeOwned,
{
    fn doc_path(&self, id: &str) -> String {
        self.path(&format!("/docs/{}", segment(id)))
    }

    /// Document `id` (`not_found` if it does not exist).
    pub async fn get(&self, id: &str) -> Result<Document<T>> {
        self.get_with(id, &CallOptions::default()).await
    }

    /// Document `id`, or `None` if it does not exist.
    pub async fn find(&self, id: &str) -> Result<Option<Document<T>>> {
        match self.get(id).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Document `id` with per-call options (a deadline).
    pub async fn get_with(&self, id: &str, opts: &CallOptions) -> Result<Document<T>> {
        let a = self
            .client
            .send(Call::new(Method::GET, self.doc_path(id)).opts(opts))
            .await?;
        decode(&a.url, &a.body)
    }

    /// Creates or replaces document `id` with `data`.
    pub async fn put(&self, id: &str, data: &T) -> Result<Written<T>> {
        self.put_with(id, data, &CallOptions::default()).await
    }

    /// [`Collection::put`] with preconditions, write concern, key or deadline.
    pub async fn put_with(&self, id: &str, data: &T, opts: &CallOptions) -> Result<Written<T>> {
        let call = Call::new(Method::PUT, self.doc_path(id))
            .json(data)?
            .write(opts);
        let a = self.client.send(call).await?;
        Ok(Written {
            created: a.status == 201,
            document: decode(&a.url, &a.body)?,
        })
    }

    /// Creates a document under a server-generated id.
    pub async fn insert(&self, data: &T) -> Result<Document<T>> {
        self.insert_with(data, &CallOptions::default()).await
    }

    /// [`Collection::insert`] with write concern, key or deadline.
    pub async fn insert_with(&self, data: &T, opts: &CallOptions) -> Result<Document<T>> {
        let call = Call::new(Method::POST, self.path("/docs"))
            .json(data)?
            .write(opts);
        let a = self.client.send(call).await?;
        decode(&a.url, &a.body)
    }

    /// Patches document `id` (`not_found` if it does not exist).
    pub async fn patch(&self, id: &str, patch: &Patch) -> Result<Document<T>> {
        self.patch_with(id, patch, &CallOptions::default()).await
    }

    /// [`Collection::patch`] with preconditions, write concern, key or deadline.
    pub async fn patch_with(
        &self,
        id: &str,
        patch: &Patch,
        opts: &CallOptions,
    ) -> Result<Document<T>> {
        let (content_type, value) = match patch {
            Patch::Merge(v) => ("application/merge-patch+json", v),
            Patch::Json(v) => ("application/json-patch+json", v),
        };
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Config(format!("patch: {e}")))?;
        let mut call = Call::new(Method::PATCH, self.doc_path(id)).write(opts);
        call.body = Some((content_type.to_string(), bytes));
        let a = self.client.send(call).await?;
        decode(&a.url, &a.body)
    }

    /// Deletes document `id` (`not_found` if it does not exist).
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.delete_with(id, &CallOptions::default()).await
    }

    /// [`Collection::delete`] with preconditions, write concern, key or deadline.
    pub async fn delete_with(&self, id: &str, opts: &CallOptions) -> Result<()> {
        let call = Call::new(Method::DELETE, self.doc_path(id)).write(opts);
        self.client.send(call).await?;
        Ok(())
    }
}
