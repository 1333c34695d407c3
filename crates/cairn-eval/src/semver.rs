//! Lenient semantic versions for flagd's `sem_ver` operation.
//!
//! Accepted: an optional `v`/`V` prefix; `MAJOR[.MINOR[.PATCH]]` with missing parts read as 0
//! (`"1.2"` is `1.2.0`); an optional pre-release after `-` and optional build metadata after `+`,
//! which is ignored for every comparison (SemVer 2.0.0 §10). Ordering follows SemVer 2.0.0 §11.

use std::cmp::Ordering;

/// A parsed version; the pre-release identifiers borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version<'a> {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The pre-release part without the leading `-`, empty when absent.
    pub pre: &'a str,
}

/// An owned version, for constants compiled into a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVersion {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Box<str>,
}

impl OwnedVersion {
    pub fn as_version(&self) -> Version<'_> {
        Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: &self.pre,
        }
    }
}

impl Version<'_> {
    pub fn to_owned_version(&self) -> OwnedVersion {
        OwnedVersion {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: self.pre.into(),
        }
    }
}

fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn valid_identifiers(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Parses a version leniently (see the module docs); `None` when it is not a version.
pub fn parse(input: &str) -> Option<Version<'_>> {
    let b = input.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'v' | b'V')));
    let mut parts = [0u64; 3];
    let mut n = 0;
    loop {
        let start = i;
        let mut v: u64 = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            i += 1;
        }
        if i == start || n == 3 {
            return None;
        }
        parts[n] = v;
        n += 1;
        match b.get(i) {
            Some(b'.') => i += 1,
            _ => break,
        }
    }
    let pre = match b.get(i) {
        Some(b'-') => {
            let rest = &input[i + 1..];
            let end = rest.find('+').unwrap_or(rest.len());
            i += 1 + end;
            &rest[..end]
        }
        _ => "",
    };
    if i < b.len() && b[i] != b'+' {
        return None;
    }
    // A `-` must be followed by identifiers (`1.2.3-` is not a version).
    if (!pre.is_empty() || input[..i].ends_with('-')) && !valid_identifiers(pre) {
        return None;
    }
    if i < b.len() && !valid_identifiers(&input[i + 1..]) {
        return None;
    }
    Some(Version {
        major: parts[0],
        minor: parts[1],
        patch: parts[2],
        pre,
    })
}

fn cmp_identifier(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// SemVer 2.0.0 precedence (build metadata was already dropped by [`parse`]).
pub fn compare(a: &Version<'_>, b: &Version<'_>) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let mut xs = a.pre.split('.');
                let mut ys = b.pre.split('.');
                loop {
                    match (xs.next(), ys.next()) {
                        (None, None) => return Ordering::Equal,
                        (None, Some(_)) => return Ordering::Less,
                        (Some(_), None) => return Ordering::Greater,
                        (Some(x), Some(y)) => match cmp_identifier(x, y) {
                            Ordering::Equal => {}
                            o => return o,
                        },
                    }
                }
            }
        })
}

/// The `sem_ver` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemVerOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: same major and minor.
    Tilde,
    /// `^`: same major.
    Caret,
}

impl SemVerOp {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "~" => Self::Tilde,
            "^" => Self::Caret,
            _ => return None,
        })
    }

    pub fn apply(self, a: &Version<'_>, b: &Version<'_>) -> bool {
        let o = compare(a, b);
        match self {
            Self::Eq => o == Ordering::Equal,
            Self::Ne => o != Ordering::Equal,
            Self::Lt => o == Ordering::Less,
            Self::Le => o != Ordering::Greater,
            Self::Gt => o == Ordering::Greater,
            Self::Ge => o != Ordering::Less,
            Self::Tilde => a.major == b.major && a.minor == b.minor,
            Self::Caret => a.major == b.major,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version<'_> {
        parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_prefix_partial_prerelease_and_build() {
        assert_eq!(v("v1.2.3"), v("1.2.3"));
        assert_eq!(v("V1.2.3"), v("1.2.3"));
        assert_eq!(v("1.2"), v("1.2.0"));
        assert_eq!(v("1"), v("1.0.0"));
        assert_eq!(v("1.0.0-rc.1").pre, "rc.1");
        assert_eq!(v("1.0.0+build.5").pre, "");
        for bad in [
            "",
            "v",
            "1.",
            "1..2",
            "1.2.3.4",
            "a.b.c",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "-1.2.3",
            " 1.2.3",
            "1.2.x",
            "1.2.3-ä",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn precedence_follows_semver_2() {
        // The example chain of SemVer 2.0.0 §11.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "10.0.0",
        ];
        for w in chain.windows(2) {
            assert_eq!(compare(&v(w[0]), &v(w[1])), Ordering::Less, "{w:?}");
            assert_eq!(compare(&v(w[1]), &v(w[0])), Ordering::Greater, "{w:?}");
        }
        assert_eq!(compare(&v("1.0.0+a"), &v("1.0.0+b")), Ordering::Equal);
    }

    #[test]
    fn tilde_and_caret() {
        assert!(SemVerOp::Tilde.apply(&v("1.2.9"), &v("1.2.0")));
        assert!(!SemVerOp::Tilde.apply(&v("1.3.0"), &v("1.2.0")));
        assert!(SemVerOp::Caret.apply(&v("1.9.0"), &v("1.2.0")));
        assert!(!SemVerOp::Caret.apply(&v("2.0.0"), &v("1.2.0")));
        assert!(SemVerOp::Caret.apply(&v("1.0.0-rc.1"), &v("1")));
    }
}
