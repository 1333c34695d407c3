//! Errors of compiling flag definitions.

use std::fmt::Write as _;

/// A flag document or definition that cannot be compiled.
///
/// `path` is a JSON pointer (RFC 6901) to the offending member, relative to the value that was
/// given to the parse/compile call (e.g. `/flags/new-ui/targeting/if/0/sem_ver/1`). The server
/// shows both to the user when it rejects a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {})", if .path.is_empty() { "/" } else { .path.as_str() })]
pub struct ParseError {
    /// JSON pointer to the offending member; empty for the whole value.
    pub path: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(path: String, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }

    /// Prefixes the path with more segments (used when a flag is compiled inside a document).
    pub(crate) fn prefixed(mut self, segments: &[&str]) -> Self {
        let mut p = String::new();
        for s in segments {
            p.push('/');
            push_escaped(&mut p, s);
        }
        p.push_str(&self.path);
        self.path = p;
        self
    }
}

/// Appends one JSON-pointer reference token, escaped.
pub(crate) fn push_escaped(out: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => {
                let _ = out.write_char(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_prefix_escape_segments() {
        let e = ParseError::new("/targeting".into(), "bad").prefixed(&["flags", "a/b~c"]);
        assert_eq!(e.path, "/flags/a~1b~0c/targeting");
        assert_eq!(e.to_string(), "bad (at /flags/a~1b~0c/targeting)");
        assert_eq!(ParseError::new(String::new(), "x").to_string(), "x (at /)");
    }
}
