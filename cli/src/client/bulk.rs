//! `aerolith bulk COLLECTION [FILE]`: imports newline-delimited JSON documents in batches
//! of bulk requests, with a progress line on a terminal and a final count.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use aerolith_client::Method;
use serde_json::{Value, json};

use super::Failure;
use super::api::Api;
use super::output::{Output, Printer};

/// Errors printed one a line before the summary; the rest are only counted.
const SHOWN_ERRORS: usize = 10;

/// What an import did.
#[derive(Debug, Default)]
struct Tally {
    lines: u64,
    written: u64,
    failed: u64,
    shown: usize,
}

impl Tally {
    fn fail(&mut self, line: u64, why: &str) {
        self.failed += 1;
        if self.shown < SHOWN_ERRORS {
            self.shown += 1;
            eprintln!("line {line}: {why}");
        }
    }
}

/// One document's bulk op: a put under its id field's value, or a generated id.
fn op(doc: Value, id_field: &str) -> Result<Value, String> {
    let Value::Object(map) = &doc else {
        return Err("invalid_argument: a document must be a JSON object".to_string());
    };
    Ok(match map.get(id_field) {
        Some(Value::String(id)) => json!({"op": "put", "id": id, "data": doc}),
        Some(other) => {
            return Err(format!(
                "invalid_argument: the id field {id_field:?} must be a string, not {other}"
            ));
        }
        None => json!({"op": "put", "data": doc}),
    })
}

/// Sends one batch (`(line number, op)` pairs) and counts its results.
async fn flush(
    api: &Api,
    collection: &str,
    batch: &mut Vec<(u64, Value)>,
    tally: &mut Tally,
) -> Result<(), Failure> {
    if batch.is_empty() {
        return Ok(());
    }
    let ops: Vec<&Value> = batch.iter().map(|(_, op)| op).collect();
    let body =
        serde_json::to_vec(&json!({ "ops": ops })).map_err(|e| Failure::other(e.to_string()))?;
    let a = api
        .call(
            Method::POST,
            &format!("/v1/collections/{collection}/bulk"),
            Some(("application/json", body)),
            &[],
        )
        .await?;
    let results = a.body["results"].as_array().cloned().unwrap_or_default();
    for (i, (line, _)) in batch.iter().enumerate() {
        match results.get(i) {
            Some(r) if r["error"].is_null() => tally.written += 1,
            Some(r) => {
                let why = format!(
                    "{}: {}",
                    r["error"]["code"].as_str().unwrap_or("error"),
                    r["error"]["message"].as_str().unwrap_or("")
                );
                tally.fail(*line, &why);
            }
            None => tally.fail(*line, "internal: no result for this document"),
        }
    }
    batch.clear();
    Ok(())
}

/// A failed request ends the import: say how far it got, on a line of its own.
fn stopped(live: bool, tally: &Tally, f: Failure) -> Failure {
    if live {
        eprintln!();
    }
    Failure {
        exit: f.exit,
        message: format!(
            "{} (stopped after {} lines: {} written, {} failed)",
            f.message, tally.lines, tally.written, tally.failed
        ),
    }
}

/// Imports `file` (stdin when `None` or `-`).
pub async fn run(
    api: &Api,
    out: &Printer,
    collection: &str,
    file: Option<&Path>,
    id_field: &str,
    batch_size: usize,
) -> Result<(), Failure> {
    let reader: Box<dyn BufRead> = match file {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let started = Instant::now();
    let live = std::io::stderr().is_terminal();
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(batch_size);
    for (n, line) in reader.lines().enumerate() {
        let n = n as u64 + 1;
        let line = line.map_err(|e| Failure::other(format!("reading line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        tally.lines += 1;
        let parsed = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("invalid_argument: not JSON ({e})"))
            .and_then(|doc| op(doc, id_field));
        match parsed {
            Ok(op) => batch.push((n, op)),
            Err(why) => tally.fail(n, &why),
        }
        if batch.len() >= batch_size {
            if let Err(f) = flush(api, collection, &mut batch, &mut tally).await {
                return Err(stopped(live, &tally, f));
            }
            if live {
                let rate = tally.lines as f64 / started.elapsed().as_secs_f64().max(0.001);
                eprint!(
                    "\r{} lines, {} written, {} failed, {rate:.0} lines/s ",
                    tally.lines, tally.written, tally.failed
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
    if let Err(f) = flush(api, collection, &mut batch, &mut tally).await {
        return Err(stopped(live, &tally, f));
    }
    if live {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    match out.format(Output::Table) {
        Output::Json => out.line(&json!({
            "lines": tally.lines, "written": tally.written, "failed": tally.failed,
            "seconds": (secs * 1000.0).round() / 1000.0,
        })),
        Output::Table => super::output::emit(&format!(
            "imported {} of {} documents into {collection} in {secs:.1} s ({} failed)",
            tally.written, tally.lines, tally.failed
        )),
    }
    if tally.failed > 0 {
        return Err(Failure::other(format!(
            "{} of {} documents failed",
            tally.failed, tally.lines
        )));
    }
    Ok(())
}
