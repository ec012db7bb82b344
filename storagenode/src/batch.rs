//! A batch of calls from one caller (see `common/src/rpc/batch.rs`): its point reads served
//! in one pass, from memory where it can, the rest in one trip to the blocking pool; its
//! writes staged one after another and made durable as one commit group. Calls with
//! session marks and other kinds of call are refused (the client sends them alone). Every
//! call keeps its own deadline and its own answer.

use std::sync::Arc;
use std::time::Instant;

use aerolith_common::rpc::server::request_timeout;
use aerolith_common::rpc::{Node, Service};
use aerolith_common::{Error, Result, pb};
use pb::request::Body as Req;
use pb::response::Body as Resp;

use crate::service::session_marks;
use crate::store::Store;

/// Most calls a batch may hold (the client sends at most 32).
const MAX_ITEMS: usize = 256;

/// Serves `items`, answering each in its place.
pub(crate) async fn serve(store: Arc<Store>, items: Vec<pb::Request>) -> pb::ResponseBatch {
    let refused = if items.len() > MAX_ITEMS {
        Err(Error::invalid(format!(
            "a batch holds at most {MAX_ITEMS} calls"
        )))
    } else {
        // A node not serving (being rebuilt, or undecided) refuses every call alike.
        store.serving()
    };
    if let Err(e) = refused {
        let items = items
            .iter()
            .map(|_| Node::response(Err(e.clone())))
            .collect();
        return pb::ResponseBatch { items };
    }
    let now = Instant::now();
    let mut answers: Vec<Option<Result<Resp>>> = Vec::with_capacity(items.len());
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let deadline = now + request_timeout(item.timeout_ms);
        answers.push(None);
        if let Some(Err(e)) = item.body.as_ref().map(|b| store.check_owned(b)) {
            answers[i] = Some(Err(e));
            continue;
        }
        let out = match item.body {
            None => Err(Error::invalid("empty call in a batch")),
            // The client batches neither calls with session marks (they may wait for
            // replication and hold up the rest) nor any other kind.
            Some(ref body)
                if !session_marks(body).is_empty()
                    || !matches!(
                        body,
                        Req::Get(_) | Req::Put(_) | Req::Patch(_) | Req::Delete(_)
                    ) =>
            {
                Err(Error::invalid(
                    "a batch carries only point reads and document writes without session marks",
                ))
            }
            Some(Req::Get(r)) => match store.get_cached(&r) {
                Ok(Some(doc)) => Ok(Resp::Doc(doc)),
                Ok(None) => {
                    reads.push((i, r));
                    continue;
                }
                Err(e) => Err(e),
            },
            Some(body) => {
                writes.push((i, body, deadline));
                continue;
            }
        };
        answers[i] = Some(out);
    }
    let read_ids: Vec<usize> = reads.iter().map(|(i, _)| *i).collect();
    let write_ids: Vec<usize> = writes.iter().map(|(i, _, _)| *i).collect();
    let read_pass = (!reads.is_empty()).then(|| {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            reads
                .into_iter()
                .map(|(i, r)| (i, store.get(&r).map(Resp::Doc)))
                .collect::<Vec<_>>()
        })
    });
    let write_group = (!writes.is_empty()).then(|| {
        let store = store.clone();
        tokio::task::spawn_blocking(move || write_group(&store, writes))
    });
    for (pass, ids) in [(read_pass, read_ids), (write_group, write_ids)] {
        let Some(pass) = pass else { continue };
        match pass.await {
            Ok(answered) => {
                for (i, out) in answered {
                    answers[i] = Some(out);
                }
            }
            Err(e) => {
                let e = Error::internal(format!("storage task failed: {e}"));
                for i in ids {
                    answers[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    let items = answers
        .into_iter()
        .map(|answer| {
            // Every item was answered above, in place or by its pass.
            Node::response(answer.unwrap_or_else(|| Err(Error::internal("unanswered"))))
        })
        .collect();
    pb::ResponseBatch { items }
}

/// Stages every write, each against the state the ones before it left, then waits for
/// the commit groups that hold them (usually one; see [`Store::finish_each`]).
fn write_group(store: &Store, writes: Vec<(usize, Req, Instant)>) -> Vec<(usize, Result<Resp>)> {
    let (ids, staged): (Vec<usize>, Vec<_>) = writes
        .into_iter()
        .map(|(i, body, deadline)| {
            let staged = match &body {
                Req::Put(r) => store.stage_put(r, deadline),
                Req::Patch(r) => store.stage_patch(r, deadline),
                Req::Delete(r) => store.stage_delete(r, deadline),
                _ => Err(Error::internal("not a document write")),
            };
            (i, staged)
        })
        .unzip();
    let done = store.finish_each(staged);
    ids.into_iter()
        .zip(done)
        .map(|(i, out)| (i, out.map(Resp::Doc)))
        .collect()
}
