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
///
/// Time is O(len(pattern) · len(key)) whatever the pattern (see [`wildcard`]):
/// a filter is user input, so no pattern may cost more than that.
pub fn glob_match(pattern: &str, key: &str) -> bool {
    glob_match_counted(pattern, key, &mut 0)
}

/// [`glob_match`], adding the loop iterations it took to `steps` (tests bound them).
fn glob_match_counted(pattern: &str, key: &str, steps: &mut u64) -> bool {
    let pat: Vec<&[u8]> = pattern.split('/').map(str::as_bytes).collect();
    let segs: Vec<&[u8]> = key.split('/').map(str::as_bytes).collect();
    // Segments: `**` is the star, any other pattern segment matches one key
    // segment by the same algorithm one level down (`*` the star, `?` any byte).
    wildcard(
        &pat,
        &segs,
        |p| *p == b"**",
        |p, s, steps| wildcard(p, s, |b| *b == b'*', |b, c, _| *b == b'?' || b == c, steps),
        steps,
    )
}

/// Wildcard matching of `text` by `pat`, where an item with `is_star` matches
/// any run of text items (none included) and any other item matches exactly
/// one text item when `one` says so.
///
/// Greedy with backtracking to the last star only: a star-free run of pattern
/// items is placed at its leftmost fit, since a later star absorbs whatever
/// that leaves. Each restart moves to a new diagonal (pattern index − text
/// index), so every (pattern item, text item) pair is tried at most once:
/// at most (len(pat) + 1) · (len(text) + 1) iterations, each with at most one
/// `one` call. Nested one level down, the byte-level costs sum to at most
/// (len(pattern) + 1) · (len(key) + 1) for the whole glob.
fn wildcard<P, T>(
    pat: &[P],
    text: &[T],
    is_star: impl Fn(&P) -> bool,
    mut one: impl FnMut(&P, &T, &mut u64) -> bool,
    steps: &mut u64,
) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last star seen, and the text index its run ends at so far.
    let mut back: Option<(usize, usize)> = None;
    while t < text.len() {
        *steps += 1;
        match pat.get(p) {
            Some(item) if is_star(item) => {
                back = Some((p, t));
                p += 1;
            }
            Some(item) if one(item, &text[t], steps) => {
                p += 1;
                t += 1;
            }
            _ => match back {
                Some((star, end)) => {
                    back = Some((star, end + 1));
                    p = star + 1;
                    t = end + 1;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(is_star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            // Backtracking cases: the first fit is not the right one.
            ("**/a/b", "a/a/b", true),
            ("**/a/**/b", "x/a/y/a/z/b", true),
            ("**/a/**/b", "x/a/y/b/z", false),
            ("*ab*b", "aabab", true),
            ("*ab*b", "aaba", false),
            ("a*?", "a", false),
            ("a*?", "ab", true),
            ("**/**", "a", true),
            ("a/**/**/b", "a/b", true),
            ("*a*/**", "a", true),
            ("*a*/**", "b/a", false),
        ];
        for (p, k, want) in cases {
            assert!(validate_glob(p).is_ok(), "{p}");
            assert_eq!(glob_match(p, k), want, "{p} ~ {k}");
            assert_eq!(reference(p, k), want, "reference: {p} ~ {k}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in ["", "a//b", "A/*", "a/**b", "a b"] {
            assert!(validate_glob(p).is_err(), "{p}");
        }
    }

    /// The work bound of [`wildcard`], for a whole glob: both levels together.
    fn bound(pattern: &str, key: &str) -> u64 {
        2 * (pattern.len() as u64 + 1) * (key.len() as u64 + 1)
    }

    /// Patterns that made the first, recursive matcher exponential (sixty
    /// `**/` took seconds per key) are matched within the linear bound.
    #[test]
    fn adversarial_patterns_take_linear_work() {
        let deep_key = "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t";
        let stars = format!("{}x", "**/".repeat(60));
        let star_runs = format!("{}b", "*a".repeat(60));
        let a_run = "a".repeat(200);
        let mixed = format!("{}z", "**/*a*a*a*/".repeat(10));
        let deep_a = vec!["aaaaaaaa"; 25].join("/");
        let cases: [(&str, &str, bool); 6] = [
            (&stars, deep_key, false),
            (&stars, "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/x", true),
            (&star_runs, &a_run, false),
            (&star_runs, &format!("{a_run}b"), true),
            (&mixed, &deep_a, false),
            (
                "**/**/**/**/**/**/**/**/**/**/*a*a*a*a*a*a*a*a*b",
                &deep_a,
                false,
            ),
        ];
        for (p, k, want) in cases {
            assert!(validate_glob(p).is_ok(), "{p}");
            let mut steps = 0;
            assert_eq!(glob_match_counted(p, k, &mut steps), want, "{p} ~ {k}");
            assert!(
                steps <= bound(p, k),
                "{p} ~ {k}: {steps} steps, bound {}",
                bound(p, k)
            );
        }
    }

    /// The first matcher, kept as the reference: the rules written down
    /// directly by recursion (exponential, so only for small inputs).
    fn reference(pattern: &str, key: &str) -> bool {
        fn segments(pat: &[&str], segs: &[&str]) -> bool {
            match pat.split_first() {
                None => segs.is_empty(),
                Some((&"**", rest)) => (0..=segs.len()).any(|i| segments(rest, &segs[i..])),
                Some((p, rest)) => match segs.split_first() {
                    Some((s, srest)) => {
                        segment(p.as_bytes(), s.as_bytes()) && segments(rest, srest)
                    }
                    None => false,
                },
            }
        }
        fn segment(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
                Some((b'?', rest)) => !s.is_empty() && segment(rest, &s[1..]),
                Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
            }
        }
        let pat: Vec<&str> = pattern.split('/').collect();
        let segs: Vec<&str> = key.split('/').collect();
        segments(&pat, &segs)
    }

    /// Small patterns over a tiny alphabet, so that matches are frequent and
    /// backtracking is exercised; segments may be `**`, or contain `**`
    /// (two stars within a segment), or be empty.
    fn pattern() -> impl Strategy<Value = String> {
        let seg = prop_oneof![Just("**".to_string()), "[ab*?]{0,4}"];
        prop::collection::vec(seg, 1..5).prop_map(|s| s.join("/"))
    }

    fn key() -> impl Strategy<Value = String> {
        prop::collection::vec("[ab]{0,4}", 1..6).prop_map(|s| s.join("/"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_the_reference(p in pattern(), k in key()) {
            let mut steps = 0;
            prop_assert_eq!(glob_match_counted(&p, &k, &mut steps), reference(&p, &k));
            prop_assert!(steps <= bound(&p, &k), "{} steps, bound {}", steps, bound(&p, &k));
        }
    }
}
