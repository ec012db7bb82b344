//! Queries and listings: one page at a time, or every page as an async stream that
//! follows the cursors.

use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::client::{Call, CallOptions};
use crate::collections::{Collection, decode};
use crate::documents::Document;
use crate::error::Result;

/// A query (API.md "Query"): filter, sort, page size and projection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The filter (`None`: every document).
    pub filter: Option<Value>,
    /// Sort keys, each a field and whether it is descending.
    pub sort: Vec<(String, bool)>,
    /// Documents per page (1..=1000; `None`: the server's 100).
    pub limit: Option<u32>,
    /// The paths of `data` to keep (`None`: all).
    pub projection: Option<Vec<String>>,
}

impl Query {
    /// A query with this filter.
    pub fn filter(filter: Value) -> Query {
        Query {
            filter: Some(filter),
            ..Query::default()
        }
    }

    /// The same query, also sorted by `field` (ascending unless `desc`).
    pub fn sort(mut self, field: impl Into<String>, desc: bool) -> Query {
        self.sort.push((field.into(), desc));
        self
    }

    /// The same query with this page size.
    pub fn limit(mut self, limit: u32) -> Query {
        self.limit = Some(limit);
        self
    }

    /// The same query keeping only these paths.
    pub fn projection<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Query {
        self.projection = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// The request body for the page after `cursor`.
    fn body(&self, cursor: Option<&str>) -> Value {
        let mut b = json!({});
        if let Some(f) = &self.filter {
            b["filter"] = f.clone();
        }
        if !self.sort.is_empty() {
            let sort: Vec<Value> = self
                .sort
                .iter()
                .map(|(f, desc)| json!({"field": f, "order": if *desc { "desc" } else { "asc" }}))
                .collect();
            b["sort"] = Value::Array(sort);
        }
        if let Some(l) = self.limit {
            b["limit"] = json!(l);
        }
        if let Some(p) = &self.projection {
            b["projection"] = json!(p);
        }
        if let Some(c) = cursor {
            b["cursor"] = json!(c);
        }
        b
    }
}

/// One page of a query or listing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T = Value> {
    /// Its documents (possibly none while `next_cursor` is set).
    pub documents: Vec<Document<T>>,
    /// Where the next page starts; `None` ends the scan.
    pub next_cursor: Option<String>,
}

impl<T> Collection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// One page of `query`, from `cursor` (`None`: the first page).
    pub async fn query_page(&self, query: &Query, cursor: Option<&str>) -> Result<Page<T>> {
        let call = Call::new(Method::POST, self.path("/query")).json(&query.body(cursor))?;
        let a = self.client.send(call).await?;
        decode(&a.url, &a.body)
    }

    /// Every document matching `query`, following cursors page by page as they are read.
    pub fn query(&self, query: Query) -> impl Stream<Item = Result<Document<T>>> + Send + use<T> {
        let me = self.clone();
        pages(move |cursor| {
            let me = me.clone();
            let query = query.clone();
            async move { me.query_page(&query, cursor.as_deref()).await }
        })
    }

    /// One page of the listing by id, from `cursor`.
    pub async fn list_page(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<T>> {
        let mut params = Vec::new();
        if let Some(l) = limit {
            params.push(format!("limit={l}"));
        }
        if let Some(c) = cursor {
            params.push(format!("cursor={}", crate::collections::segment(c)));
        }
        let q = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        let a = self
            .client
            .send(Call::new(Method::GET, self.path(&format!("/docs{q}"))))
            .await?;
        decode(&a.url, &a.body)
    }

    /// Every document, in id order, page by page.
    pub fn list(&self) -> impl Stream<Item = Result<Document<T>>> + Send + use<T> {
        let me = self.clone();
        pages(move |cursor| {
            let me = me.clone();
            async move { me.list_page(None, cursor.as_deref()).await }
        })
    }

    /// How many documents match `filter`.
    pub async fn count(&self, filter: Value) -> Result<u64> {
        self.count_with(filter, &CallOptions::default()).await
    }

    /// [`Collection::count`] with a deadline.
    pub async fn count_with(&self, filter: Value, opts: &CallOptions) -> Result<u64> {
        let call = Call::new(Method::POST, self.path("/count"))
            .json(&json!({ "filter": filter }))?
            .opts(opts);
        let a = self.client.send(call).await?;
        decode(&a.url, &a.body["count"])
    }
}

/// A stream of the documents of the pages `fetch` returns, from no cursor until a page
/// without `next_cursor`; an error ends it.
pub(crate) fn pages<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<Document<T>>> + Send + 'static
where
    T: Send + 'static,
    F: Fn(Option<String>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Page<T>>> + Send,
{
    use futures::StreamExt;
    // State: the cursor to fetch next (`None` after the end), and whether it is the start.
    let state = (Some(None::<String>), fetch);
    futures::stream::unfold(state, |(next, fetch)| async move {
        let cursor = next?;
        match fetch(cursor).await {
            Ok(page) => {
                let more = page.next_cursor.map(Some);
                let docs: Vec<Result<Document<T>>> = page.documents.into_iter().map(Ok).collect();
                Some((futures::stream::iter(docs), (more, fetch)))
            }
            Err(e) => Some((futures::stream::iter(vec![Err(e)]), (None, fetch))),
        }
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_only_what_was_set() {
        assert_eq!(Query::default().body(None), json!({}));
        let q = Query::filter(json!({"a": 1}))
            .sort("age", true)
            .limit(5)
            .projection(["name"]);
        assert_eq!(
            q.body(Some("c1")),
            json!({"filter": {"a": 1}, "sort": [{"field": "age", "order": "desc"}],
                   "limit": 5, "projection": ["name"], "cursor": "c1"})
        );
    }
}
