use serde::{Deserialize, Serialize};

use crate::{EntryKind, ModelError};

/// The reserved app name that stands for "every app".
pub const GLOBAL_APP: &str = "global";
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
const MAX_NAME_BYTES: usize = 63;

/// A key: segments of `[a-z0-9_.-]` joined by `/`, at most 256 bytes.
pub fn validate_key(key: &str) -> Result<(), ModelError> {
    let bad = |m: &str| Err(ModelError::invalid("key", format!("{m} (got {key:?})")));
    if key.is_empty() {
        return bad("must not be empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad(&format!("must be at most {MAX_KEY_BYTES} bytes"));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("segments must not be empty (no leading, trailing or double '/')");
        }
        if segment == "." || segment == ".." {
            return bad("segments must not be '.' or '..'");
        }
        if !segment.bytes().all(is_key_byte) {
            return bad("segments may only contain a-z, 0-9, '_', '.', '-'");
        }
    }
    Ok(())
}

/// A flag or segment key, as flagd has them: any non-empty UTF-8 string of at
/// most 256 bytes without control characters, case-sensitive
/// (`newWelcomeBanner`, `fractional-flag-A`, `checkout.v2`). Stored verbatim
/// as the entry's key: distinct flag keys are distinct entries.
pub fn validate_flag_key(key: &str) -> Result<(), ModelError> {
    let bad = |m: &str| Err(ModelError::invalid("key", format!("{m} (got {key:?})")));
    if key.is_empty() {
        return bad("must not be empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad(&format!("must be at most {MAX_KEY_BYTES} bytes"));
    }
    if key.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

/// The key of the flag-set metadata entry of a scope: the empty string,
/// which no flag, segment or configuration key can be.
pub const FLAG_SET_KEY: &str = "";

/// The key rule of an entry of `kind`: configuration keys are paths of
/// `[a-z0-9_.-]` segments ([`validate_key`]); flag and segment keys are
/// flagd's ([`validate_flag_key`]); flag-set metadata lives at [`FLAG_SET_KEY`].
pub fn validate_entry_key(kind: EntryKind, key: &str) -> Result<(), ModelError> {
    match kind {
        EntryKind::Config => validate_key(key),
        EntryKind::Flag | EntryKind::Segment => validate_flag_key(key),
        EntryKind::FlagSet if key == FLAG_SET_KEY => Ok(()),
        EntryKind::FlagSet => Err(ModelError::invalid(
            "key",
            format!("flag-set metadata has the empty key (got {key:?})"),
        )),
    }
}

/// A key as a read names it: of any kind (flag keys include every
/// configuration key), or the flag-set key.
pub fn validate_any_key(key: &str) -> Result<(), ModelError> {
    if key == FLAG_SET_KEY {
        return Ok(());
    }
    validate_flag_key(key)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
}

fn validate_name(field: &str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!(
                "must be 1-{MAX_NAME_BYTES} characters of a-z, 0-9, '_', '-', starting with a letter or digit (got {name:?})"
            ),
        ))
    }
}

/// An app name. `global` is reserved for the global scope.
pub fn validate_app(name: &str) -> Result<(), ModelError> {
    validate_name("app", name)?;
    if name == GLOBAL_APP {
        return Err(ModelError::invalid(
            "app",
            "'global' is reserved for the global scope",
        ));
    }
    Ok(())
}

/// An environment name. `all` is reserved (it means "every environment").
pub fn validate_env(name: &str) -> Result<(), ModelError> {
    validate_name("env", name)?;
    if name == "all" {
        return Err(ModelError::invalid("env", "'all' is reserved"));
    }
    Ok(())
}

/// Where a value is set: (global or an app) × (all environments or one).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Default,
    utoipa::ToSchema,
)]
pub struct Scope {
    /// `None` is the global scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// `None` is every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl Scope {
    pub fn new(app: Option<&str>, env: Option<&str>) -> Self {
        Scope {
            app: app.map(str::to_owned),
            env: env.map(str::to_owned),
        }
    }

    pub fn global() -> Self {
        Scope::default()
    }

    /// Parse user input: an empty or `global` app is the global scope, an empty
    /// or `all` env is every environment. Names are validated.
    pub fn parse(app: Option<&str>, env: Option<&str>) -> Result<Self, ModelError> {
        let app = match app.map(str::trim) {
            None | Some("") | Some(GLOBAL_APP) => None,
            Some(a) => {
                validate_app(a)?;
                Some(a.to_owned())
            }
        };
        let env = match env.map(str::trim) {
            None | Some("") | Some("all") => None,
            Some(e) => {
                validate_env(e)?;
                Some(e.to_owned())
            }
        };
        Ok(Scope { app, env })
    }

    /// The app column as stored: `""` for global.
    pub fn app_str(&self) -> &str {
        self.app.as_deref().unwrap_or("")
    }

    /// The env column as stored: `""` for every environment.
    pub fn env_str(&self) -> &str {
        self.env.as_deref().unwrap_or("")
    }

    /// Inverse of [`Scope::app_str`] / [`Scope::env_str`].
    pub fn from_stored(app: &str, env: &str) -> Self {
        Scope {
            app: (!app.is_empty()).then(|| app.to_owned()),
            env: (!env.is_empty()).then(|| env.to_owned()),
        }
    }

    /// The four scopes of (app, env), least specific first:
    /// global → global+env → app → app+env.
    pub fn layers(app: &str, env: &str) -> [Scope; 4] {
        [
            Scope::new(None, None),
            Scope::new(None, Some(env)),
            Scope::new(Some(app), None),
            Scope::new(Some(app), Some(env)),
        ]
    }

    /// Are this scope's entries (or secrets) visible from `at`? Its app and
    /// env are each "every" or the same as `at`'s: the layers of `at`.
    pub fn is_visible_from(&self, at: &Scope) -> bool {
        self.app.as_ref().is_none_or(|a| at.app.as_ref() == Some(a))
            && self.env.as_ref().is_none_or(|e| at.env.as_ref() == Some(e))
    }

    /// Do this scope and `other` both reach some (app, env) view? (Each of
    /// app and env is "every" on one side or the same on both.)
    pub fn overlaps(&self, other: &Scope) -> bool {
        let part = |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
        part(&self.app, &other.app) && part(&self.env, &other.env)
    }

    /// Does a change at this scope affect the resolved view of (app, env)?
    pub fn affects(&self, app: &str, env: &str) -> bool {
        self.app.as_deref().is_none_or(|a| a == app) && self.env.as_deref().is_none_or(|e| e == env)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.app.as_deref().unwrap_or(GLOBAL_APP),
            self.env.as_deref().unwrap_or("all")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["a", "database/pool", "a.b/c_d-e/0", &"x".repeat(256)] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "A",
            "a b",
            "a/../b",
            "a/./b",
            "é",
            "a\\b",
            &"x".repeat(257),
        ] {
            let err = validate_key(bad).unwrap_err();
            let ModelError::Invalid { field, .. } = err;
            assert_eq!(field, "key", "{bad}");
        }
    }

    #[test]
    fn flag_keys() {
        for ok in [
            "newWelcomeBanner",
            "fractional-flag-A-shared-seed",
            "checkout.v2",
            "a b",
            "é/ü",
            "../x",
            "a//b",
            "?#%",
            &"x".repeat(256),
        ] {
            assert!(validate_flag_key(ok).is_ok(), "{ok}");
            assert!(validate_entry_key(EntryKind::Flag, ok).is_ok(), "{ok}");
            assert!(validate_entry_key(EntryKind::Segment, ok).is_ok(), "{ok}");
        }
        for bad in ["", "a\nb", "tab\there", "\u{7f}", "nul\0", &"x".repeat(257)] {
            assert!(validate_flag_key(bad).is_err(), "{bad:?}");
        }
        // 256 bytes of a two-byte character is 128 characters: fine; 129 is not.
        assert!(validate_flag_key(&"é".repeat(128)).is_ok());
        assert!(validate_flag_key(&"é".repeat(129)).is_err());
        // Configuration keys keep their rules.
        assert!(validate_entry_key(EntryKind::Config, "newWelcomeBanner").is_err());
        assert!(validate_entry_key(EntryKind::Config, "database/pool").is_ok());
        // Flag-set metadata only at the empty key, which nothing else can use.
        assert!(validate_entry_key(EntryKind::FlagSet, FLAG_SET_KEY).is_ok());
        assert!(validate_entry_key(EntryKind::FlagSet, "x").is_err());
        for kind in [EntryKind::Config, EntryKind::Flag, EntryKind::Segment] {
            assert!(validate_entry_key(kind, FLAG_SET_KEY).is_err());
        }
    }

    #[test]
    fn names() {
        assert!(validate_app("billing").is_ok());
        assert!(validate_app("global").is_err());
        assert!(validate_app("Billing").is_err());
        assert!(validate_app("-x").is_err());
        assert!(validate_app(&"a".repeat(64)).is_err());
        assert!(validate_env("prod").is_ok());
        assert!(validate_env("all").is_err());
        assert!(validate_env("a/b").is_err());
    }

    #[test]
    fn scope_parse_and_affects() {
        assert_eq!(
            Scope::parse(Some("global"), Some("all")).unwrap(),
            Scope::global()
        );
        assert_eq!(
            Scope::parse(None, Some("prod")).unwrap(),
            Scope::new(None, Some("prod"))
        );
        assert!(Scope::parse(Some("Bad"), None).is_err());
        assert!(Scope::global().affects("billing", "prod"));
        assert!(Scope::new(None, Some("prod")).affects("billing", "prod"));
        assert!(!Scope::new(None, Some("dev")).affects("billing", "prod"));
        assert!(Scope::new(Some("billing"), None).affects("billing", "prod"));
        assert!(!Scope::new(Some("payments"), None).affects("billing", "prod"));
        assert_eq!(
            Scope::from_stored("", "prod"),
            Scope::new(None, Some("prod"))
        );
        assert_eq!(Scope::new(Some("a"), None).to_string(), "a/all");
    }
}
