//! Printing results: JSON for machines (pretty for one value, one line per item for lists)
//! or aligned tables for people.

use serde_json::Value;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// JSON: one value pretty-printed, or one item a line.
    Json,
    /// An aligned table.
    Table,
}

/// Prints in the format the user chose, or the command's natural one.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    chosen: Option<Output>,
}

impl Printer {
    /// A printer for `--output` (`None`: each command's default).
    pub fn new(chosen: Option<Output>) -> Printer {
        Printer { chosen }
    }

    /// The format to use where the command's default is `default`.
    pub fn format(&self, default: Output) -> Output {
        self.chosen.unwrap_or(default)
    }

    /// Prints one JSON value, pretty.
    pub fn pretty(&self, v: &Value) {
        emit(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }

    /// Prints one JSON value on one line.
    pub fn line(&self, v: &Value) {
        emit(&v.to_string());
    }
}

/// Prints a line on stdout. A reader that went away (`aerolith query ... | head`) ends the
/// command quietly, with exit code 0, rather than a panic.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// A cell's text: strings as they are, anything else as compact JSON, nothing as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    emit(render(headers, rows).trim_end_matches('\n'));
}

fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![
            vec!["users".to_string(), "lww".to_string()],
            vec!["a".to_string(), "field_merge".to_string()],
        ];
        assert_eq!(
            render(&["NAME", "STRATEGY"], &rows),
            "NAME   STRATEGY\nusers  lww\na      field_merge\n"
        );
        assert_eq!(cell(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(cell(&Value::Null), "-");
    }
}
