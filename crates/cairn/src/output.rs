//! How the CLI prints: human text by default, the API's JSON with `--output json`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// One compact JSON document per line (arrays are split), for export.
    Jsonl,
}

pub fn error_line(msg: &str) {
    eprintln!("error: {msg}");
}

pub fn jsonl(v: &Value) {
    match v {
        Value::Array(items) => {
            for i in items {
                println!("{}", serde_json::to_string(i).unwrap_or_default());
            }
        }
        other => println!("{}", serde_json::to_string(other).unwrap_or_default()),
    }
}

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of `columns` (JSON field paths like `scope.app`) from an array of objects.
pub fn table(rows: &Value, columns: &[(&str, &str)]) {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let mut grid: Vec<Vec<String>> = vec![columns.iter().map(|(h, _)| h.to_string()).collect()];
    for r in &rows {
        grid.push(
            columns
                .iter()
                .map(|(_, path)| {
                    let v = path
                        .split('.')
                        .try_fold(r, |v, p| v.get(p))
                        .unwrap_or(&Value::Null);
                    let s = cell(v);
                    if s.chars().count() > 60 {
                        format!("{}…", s.chars().take(59).collect::<String>())
                    } else {
                        s
                    }
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            grid.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in grid {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
