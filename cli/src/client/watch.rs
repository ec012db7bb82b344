//! `aerolith watch COLLECTION`: follows the change stream (the client crate's, over the
//! WebSocket API, reconnecting and resuming by itself), one change a line; on exit (Ctrl-C
//! or `--count`) says how to resume.

use serde_json::Value;

use super::Failure;
use super::api::{Api, failure};
use super::output::{Output, Printer, cell};

/// Follows `collection`'s changes until `count` changes, Ctrl-C, or an error.
pub async fn run(
    api: &Api,
    out: &Printer,
    collection: &str,
    since: Option<String>,
    filter: Option<Value>,
    count: Option<u64>,
) -> Result<(), Failure> {
    let mut stream = api.client().collection::<Value>(collection).changes();
    if let Some(t) = since {
        stream = stream.since(t);
    }
    if let Some(f) = filter {
        stream = stream.filter(f);
    }
    let format = out.format(Output::Json);
    let interrupted = aerolith_common::signal::shutdown_signal();
    tokio::pin!(interrupted);
    // `--count` counts from the confirmed subscription, so `--count 0` reports the feed's
    // current position.
    // One pass over the gateway for the first connection (a person wants "cannot reach"
    // now); once it runs, the stream reconnects for as long as it takes.
    stream.set_reconnect_timeout(Some(std::time::Duration::ZERO));
    let started = tokio::select! {
        r = stream.start() => Some(r.map_err(failure)),
        () = &mut interrupted => None,
    };
    stream.set_reconnect_timeout(None);
    // Changes stream in, so a table's columns are tab-separated rather than aligned.
    if matches!(started, Some(Ok(()))) && format == Output::Table {
        super::output::emit("OP\tID\tVERSION\tTOKEN");
    }
    let mut seen = 0u64;
    let ended = match started {
        None => Ok(()),
        Some(Err(e)) => Err(e),
        Some(Ok(())) => loop {
            if count.is_some_and(|c| seen >= c) {
                break Ok(());
            }
            let change = tokio::select! {
                c = stream.next() => c,
                () = &mut interrupted => break Ok(()),
            };
            let change = match change {
                Ok(c) => c,
                Err(e) => break Err(failure(e)),
            };
            seen += 1;
            match format {
                Output::Json => out.line(&serde_json::to_value(&change).unwrap_or_default()),
                Output::Table => super::output::emit(&format!(
                    "{}\t{}\t{}\t{}",
                    cell(&serde_json::to_value(change.op).unwrap_or_default()),
                    cell(&Value::String(change.id)),
                    cell(&Value::String(change.version)),
                    cell(&Value::String(change.token))
                )),
            }
        },
    };
    stream.close().await;
    if let Some(t) = stream.token() {
        eprintln!("resume with: aerolith watch {collection} --since {t}");
    }
    ended
}
