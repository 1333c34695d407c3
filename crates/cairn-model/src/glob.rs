use crate::ModelError;

/// Check a key glob: segments joined by `/`, where a segment is `**` (any
/// number of segments, including none) or key characters with `*` (any run
/// within one segment) and `?` (one character).
pub fn validate_glob(pattern: &str) -> Result<(), ModelError> {
    if pattern.is_empty() || pattern.len() > crate::MAX_KEY_BYTES {
        return Err(ModelError::invalid("pattern", "must be 1-256 bytes"));
    }
    for seg in pattern.split('/') {
        let ok = !seg.is_empty()
            && (seg == "**"
                || seg.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'_' | b'.' | b'-' | b'*' | b'?')
                }));
        if !ok || (seg != "**" && seg.contains("**")) {
            return Err(ModelError::invalid(
                "pattern",
                format!(
                    "bad segment {seg:?}: use key characters, '*', '?' or a whole '**' segment"
                ),
            ));
        }
    }
    Ok(())
}

/// Does `key` match `pattern` (see [`validate_glob`])?
pub fn glob_match(pattern: &str, key: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = key.split('/').collect();
    match_segments(&pat, &segs)
}

fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|i| match_segments(rest, &segs[i..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => {
                match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, srest)
            }
            None => false,
        },
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| match_segment(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && match_segment(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && match_segment(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases = [
            ("database/*", "database/pool", true),
            ("database/*", "database/pool/max", false),
            ("database/*", "database", false),
            ("database/**", "database/pool/max", true),
            ("database/**", "database", true),
            ("**", "anything/at/all", true),
            ("**/max", "a/b/max", true),
            ("**/max", "max", true),
            ("**/max", "a/maxi", false),
            ("db-*/p?ol", "db-main/pool", true),
            ("db-*/p?ol", "db-main/poool", false),
            ("feature.*", "feature.x", true),
            ("exact/key", "exact/key", true),
            ("exact/key", "exact/keys", false),
        ];
        for (p, k, want) in cases {
            assert!(validate_glob(p).is_ok(), "{p}");
            assert_eq!(glob_match(p, k), want, "{p} ~ {k}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in ["", "a//b", "A/*", "a/**b", "a b"] {
            assert!(validate_glob(p).is_err(), "{p}");
        }
    }
}
