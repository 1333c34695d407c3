//! Reading values from `--value`, a file (JSON or YAML) or standard input.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Parse text as JSON, or else as YAML.
pub fn parse_value(text: &str, origin: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(json_err) => match serde_yaml::from_str::<Value>(text) {
            Ok(v) if !text.trim().is_empty() => Ok(v),
            _ => bail!("{origin} is neither JSON ({json_err}) nor YAML"),
        },
    }
}

/// The value from exactly one of `--value`, a file, or `-` (stdin).
pub fn read_value(inline: Option<&str>, file: Option<&str>) -> Result<Value> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("give either --value or a file, not both"),
        (Some(v), None) => serde_json::from_str(v).context("--value is not valid JSON"),
        (None, Some(path)) => read_input(path),
        (None, None) => bail!("give a value: --value JSON, a FILE, or - for standard input"),
    }
}

/// A FILE argument: a JSON or YAML file, or `-` for standard input.
pub fn read_input(file: &str) -> Result<Value> {
    if file == "-" {
        read_stdin()
    } else {
        read_file(Path::new(file))
    }
}

fn read_stdin() -> Result<Value> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading standard input")?;
    parse_value(&s, "standard input")
}

fn read_file(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if is_yaml {
        serde_yaml::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
    } else {
        parse_value(&text, &path.display().to_string())
    }
}
