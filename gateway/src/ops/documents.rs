//! Document operations: routed to the shard's owner, or scattered over every node and merged
//! in id order for listings.

use serde::Serialize;
use serde_json::{Map, Value};

use aerolith_common::document::Document;
use aerolith_common::json::{encode_object, parse_value};
use aerolith_common::name::{validate_collection, validate_doc_id};
use aerolith_common::patch::PatchKind;
use aerolith_common::{Error, Result, pb};

use super::{Ctx, MAX_LIMIT, Ops, PAGE_BYTES, cursor};

/// A write precondition from `If-Match` / `If-None-Match` (or their equivalents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// `If-Match: <version>`.
    pub if_match: Option<String>,
    /// `If-Match: *`.
    pub if_match_any: bool,
    /// `If-None-Match: *`.
    pub if_none_match_any: bool,
}

impl Precondition {
    /// A write precondition from `If-Match` / `If-None-Match` values, as HTTP headers or the
    /// same fields of a WebSocket frame carry them: `If-Match` is a version (quoted, bare or
    /// `W/`-quoted) or `*`, anything else `invalid_argument`; `If-None-Match` on a write may
    /// only be `*`. An empty value is no precondition, as an empty gRPC field is.
    pub fn from_tags(if_match: Option<&str>, if_none_match: Option<&str>) -> Result<Precondition> {
        let mut pre = Precondition::default();
        let (if_match, if_none_match) = (given(if_match), given(if_none_match));
        match if_match {
            Some("*") => pre.if_match_any = true,
            Some(m) => match tag_version(m) {
                Some(v) => pre.if_match = Some(v.to_string()),
                None => {
                    return Err(Error::invalid(
                        "If-Match must be * or a document version (quoted or bare), \
                         like \"dc1@1:3\"",
                    ));
                }
            },
            None => {}
        }
        match if_none_match {
            Some("*") => pre.if_none_match_any = true,
            Some(_) => return Err(Error::invalid("If-None-Match on a write supports only *")),
            None => {}
        }
        Ok(pre)
    }

    /// The precondition as bytes of a request's fingerprint.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}",
            self.if_match.as_deref().unwrap_or(""),
            self.if_match_any,
            self.if_none_match_any
        )
        .into_bytes()
    }

    pub(crate) fn to_proto(&self) -> Option<pb::Precondition> {
        (*self != Precondition::default()).then(|| pb::Precondition {
            if_match: self.if_match.clone().unwrap_or_default(),
            if_match_any: self.if_match_any,
            if_none_match_any: self.if_none_match_any,
        })
    }
}

/// A precondition value that says something: trimmed, and not empty.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// The version an `If-Match` entity tag names: quoted, bare or `W/`-quoted, and well formed.
fn tag_version(tag: &str) -> Option<&str> {
    let t = tag.trim();
    let inner = match t.strip_prefix("W/").unwrap_or(t).strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None if t.starts_with("W/") => return None,
        None => t,
    };
    is_version(inner).then_some(inner)
}

/// Whether `s` has the syntax of a document version: `dc@epoch:counter` actors joined by
/// `.`, then `~<hex>` once its collection was re-created (the pattern `/openapi.json`
/// states). The server issues no other kind, so nothing else can ever match.
pub fn is_version(s: &str) -> bool {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let (vector, incarnation) = match s.split_once('~') {
        Some((v, i)) => (v, Some(i)),
        None => (s, None),
    };
    let hex = |i: &str| !i.is_empty() && i.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    incarnation.is_none_or(hex)
        && vector.split('.').all(|actor| {
            let Some((dc, point)) = actor.split_once('@') else {
                return false;
            };
            let Some((epoch, counter)) = point.split_once(':') else {
                return false;
            };
            aerolith_common::name::validate_dc(dc).is_ok() && digits(epoch) && digits(counter)
        })
}

/// Strips the quotes (and a weak prefix) from an entity tag.
pub fn unquote(tag: &str) -> &str {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
}

/// A document's data as every adapter hands it over: a parsed JSON object.
pub type Data = Map<String, Value>;

/// A page of documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The documents, in order.
    pub documents: Vec<Document>,
    /// Where the next page starts; `None` ends the scan.
    pub next_cursor: Option<String>,
    /// How each node reached the documents, when the query asked (`explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanStep>>,
}

/// One node's part of a query plan (API.md "Query", `explain`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    /// The storage node's id.
    pub node: String,
    /// The index it used; `None` for a scan of the collection.
    pub index: Option<String>,
    /// The records (or index entries, walking an index in order) it read.
    pub examined: u64,
}

fn ids(collection: &str, id: &str) -> Result<()> {
    validate_collection(collection)?;
    validate_doc_id(id)
}

fn render(collection: &str, id: &str, rec: Option<pb::DocRecord>) -> Result<Document> {
    rec.as_ref()
        .map(|r| Document::from_record(collection, id, r))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::not_found(format!("document {collection}/{id} not found")))
}

/// The idempotency part of a write request: the client's key (if it sent one), scoped to
/// `scope`, with the fingerprint of the logical request `parts` describe.
pub(crate) fn idempotency(ctx: &Ctx, scope: &str, parts: &[&[u8]]) -> Option<pb::Idempotency> {
    ctx.idempotency_key.as_ref().map(|k| pb::Idempotency {
        key: k.as_str().to_string(),
        fingerprint: aerolith_common::idempotency::fingerprint(parts),
        scope: scope.to_string(),
    })
}

impl Ops {
    /// Reads a document; `not_found` if absent or deleted.
    pub async fn get_document(&self, ctx: Ctx, collection: &str, id: &str) -> Result<Document> {
        ids(collection, id)?;
        let shard = self.router.shard_of(collection, id);
        let req = pb::GetRequest {
            shard: shard as u32,
            collection: collection.to_string(),
            id: id.to_string(),
            session: ctx.session.marks(|s| s == shard),
        };
        let resp = self.router.call_shard(shard, req, ctx.remaining()?).await?;
        ctx.session.observe_all(&resp.mark);
        render(collection, id, resp.record)
    }

    /// Creates or replaces a document; returns it and whether it was created.
    pub async fn put_document(
        &self,
        ctx: Ctx,
        collection: &str,
        id: &str,
        data: &Data,
        pre: &Precondition,
    ) -> Result<(Document, bool)> {
        self.put(ctx, collection, id, id, data, pre).await
    }

    /// A put of document `id`; an idempotency key is scoped to `scope` (the id, or empty for
    /// a create under a generated id: a retry then answers the id the first attempt chose).
    async fn put(
        &self,
        ctx: Ctx,
        collection: &str,
        id: &str,
        scope: &str,
        data: &Data,
        pre: &Precondition,
    ) -> Result<(Document, bool)> {
        ids(collection, id)?;
        let canonical = encode_object(data, self.limits)?;
        let shard = self.router.shard_of(collection, id);
        let idempotency = idempotency(
            &ctx,
            scope,
            &[
                b"put",
                collection.as_bytes(),
                scope.as_bytes(),
                &canonical,
                &pre.fingerprint(),
            ],
        );
        let req = pb::PutRequest {
            after_delete_hlc: 0,
            shard: shard as u32,
            collection: collection.to_string(),
            id: id.to_string(),
            body: canonical,
            precondition: pre.to_proto(),
            session: ctx.session.marks(|s| s == shard),
            idempotency,
        };
        let resp = self.router.call_shard(shard, req, ctx.remaining()?).await?;
        self.settle(&ctx, resp.mark.as_ref()).await?;
        let id = if resp.id.is_empty() { id } else { &resp.id };
        Ok((render(collection, id, resp.record)?, resp.created))
    }

    /// A put as WebSocket, GraphQL and gRPC take it: with an id, create or replace; without
    /// one, create under a generated id ([`Ops::put_target`]). Returns the document and
    /// whether it was created.
    pub async fn put_or_create(
        &self,
        ctx: Ctx,
        collection: &str,
        id: Option<&str>,
        data: &Data,
        pre: &Precondition,
    ) -> Result<(Document, bool)> {
        let key = ctx.idempotency_key.as_ref().map(|k| k.as_str().to_string());
        let (id, scope, pre) = self.put_target(collection, id, key.as_deref(), pre)?;
        self.put(ctx, collection, &id, &scope, data, &pre).await
    }

    /// Creates a document under a generated UUIDv7 id.
    pub async fn create_document(
        &self,
        ctx: Ctx,
        collection: &str,
        data: &Data,
    ) -> Result<Document> {
        let none = Precondition::default();
        Ok(self
            .put_or_create(ctx, collection, None, data, &none)
            .await?
            .0)
    }

    /// Where a put goes, for every protocol and for bulk (the put-or-create rule): with an
    /// id, that document, its idempotency key scoped to it; without one, a new document
    /// under a generated id (placed by `key`), the key scoped to the collection, created
    /// only if absent, and `If-Match` refused (a document without an id is always created).
    /// Returns the id, the key's scope and the precondition to send.
    pub(crate) fn put_target(
        &self,
        collection: &str,
        id: Option<&str>,
        key: Option<&str>,
        pre: &Precondition,
    ) -> Result<(String, String, Precondition)> {
        match id {
            Some(id) => Ok((id.to_string(), id.to_string(), pre.clone())),
            None if pre.if_match.is_some() || pre.if_match_any => Err(Error::invalid(
                "if_match needs an id: a document without one is always created",
            )),
            None => {
                let created = Precondition {
                    if_none_match_any: true,
                    ..Default::default()
                };
                Ok((self.generated_id(collection, key), String::new(), created))
            }
        }
    }

    /// A new UUIDv7 id. With an idempotency key, one that falls in the shard the key names,
    /// so a retry (whose id would differ) finds the key's record where the first attempt
    /// left it, beside its document.
    pub(crate) fn generated_id(&self, collection: &str, key: Option<&str>) -> String {
        let Some(key) = key else {
            return uuid::Uuid::now_v7().to_string();
        };
        let home = self
            .router
            .shard_of(collection, &format!("\u{1}idempotency\u{1}{key}"));
        // One in `shards` ids falls in it: a few hundred tries at most, in practice.
        loop {
            let id = uuid::Uuid::now_v7().to_string();
            if self.router.shard_of(collection, &id) == home {
                return id;
            }
        }
    }

    /// Patches a document (merge patch or JSON Patch).
    pub async fn patch_document(
        &self,
        ctx: Ctx,
        collection: &str,
        id: &str,
        kind: PatchKind,
        patch: &Value,
        pre: &Precondition,
    ) -> Result<Document> {
        ids(collection, id)?;
        let patch = serde_json::to_vec(patch).map_err(Error::internal)?;
        if patch.len() > self.limits.max_bytes {
            return Err(Error::new(
                aerolith_common::ErrorCode::PayloadTooLarge,
                format!(
                    "patch of {} bytes exceeds the limit of {} bytes",
                    patch.len(),
                    self.limits.max_bytes
                ),
            ));
        }
        // Checked here (the depth rule of every body, and the patch's own shape) so a
        // malformed patch never costs a round trip, and is invalid_argument before any
        // precondition or document is looked at (RFC 9110 §13.2.1).
        let parsed = parse_value(&patch, self.limits.max_depth + 2)?;
        aerolith_common::patch::check(kind, &parsed)?;
        let patch = patch.as_slice();
        let shard = self.router.shard_of(collection, id);
        let req = pb::PatchRequest {
            after_delete_hlc: 0,
            shard: shard as u32,
            collection: collection.to_string(),
            id: id.to_string(),
            kind: match kind {
                PatchKind::Merge => pb::PatchKind::Merge,
                PatchKind::JsonPatch => pb::PatchKind::JsonPatch,
            } as i32,
            patch: patch.to_vec(),
            precondition: pre.to_proto(),
            session: ctx.session.marks(|s| s == shard),
            idempotency: idempotency(
                &ctx,
                id,
                &[
                    b"patch",
                    collection.as_bytes(),
                    id.as_bytes(),
                    &[kind as u8],
                    patch,
                    &pre.fingerprint(),
                ],
            ),
        };
        let resp = self.router.call_shard(shard, req, ctx.remaining()?).await?;
        self.settle(&ctx, resp.mark.as_ref()).await?;
        render(collection, id, resp.record)
    }

    /// Deletes a document; `not_found` if absent.
    pub async fn delete_document(
        &self,
        ctx: Ctx,
        collection: &str,
        id: &str,
        pre: &Precondition,
    ) -> Result<()> {
        ids(collection, id)?;
        let shard = self.router.shard_of(collection, id);
        let req = pb::DeleteRequest {
            after_delete_hlc: 0,
            shard: shard as u32,
            collection: collection.to_string(),
            id: id.to_string(),
            precondition: pre.to_proto(),
            session: ctx.session.marks(|s| s == shard),
            idempotency: idempotency(
                &ctx,
                id,
                &[
                    b"delete",
                    collection.as_bytes(),
                    id.as_bytes(),
                    &pre.fingerprint(),
                ],
            ),
        };
        let resp = self.router.call_shard(shard, req, ctx.remaining()?).await?;
        self.settle(&ctx, resp.mark.as_ref()).await
    }

    /// Lists documents in id order: every node lists its shards from the cursor, and the
    /// pages are merged. A node that stopped early bounds how far this page may go, so no
    /// document is skipped; the page may then be short while `next_cursor` is set.
    pub async fn list_documents(
        &self,
        ctx: Ctx,
        collection: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page> {
        validate_collection(collection)?;
        let limit = limit.clamp(1, MAX_LIMIT);
        let after = cursor.map(cursor::decode).transpose()?.unwrap_or_default();
        let results = self
            .router
            .scatter(
                |n| pb::ListRequest {
                    shards: n.shards.iter().map(|s| *s as u32).collect(),
                    collection: collection.to_string(),
                    after: after.clone(),
                    limit,
                    max_bytes: PAGE_BYTES,
                    session: ctx.session.marks(|s| n.shards.contains(&s)),
                },
                ctx.remaining()?,
            )
            .await;
        let mut docs = Vec::new();
        let mut bound: Option<String> = None;
        for (_, r) in results {
            let list = r?;
            ctx.session.observe_all(&list.marks);
            if !list.done && bound.as_ref().is_none_or(|b| list.scanned_through < *b) {
                bound = Some(list.scanned_through.clone());
            }
            docs.extend(list.docs);
        }
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut page = Vec::new();
        let mut bytes = 0u64;
        let mut cut = false;
        for d in docs {
            if bound.as_ref().is_some_and(|b| d.id > *b) {
                break;
            }
            if page.len() as u32 >= limit || (bytes >= PAGE_BYTES && !page.is_empty()) {
                cut = true;
                break;
            }
            let Some(rec) = d.record.as_ref() else {
                continue;
            };
            bytes += rec.body.len() as u64;
            if let Some(doc) = Document::from_record(collection, &d.id, rec)? {
                page.push(doc);
            }
        }
        let next_cursor = if cut {
            page.last().map(|d| cursor::encode(&d.id))
        } else {
            bound.map(|b| cursor::encode(&b))
        };
        Ok(Page {
            plan: None,
            documents: page,
            next_cursor,
        })
    }
}
