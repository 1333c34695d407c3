//! What a commit's plan was validated against, so the store can tell whether
//! it still holds.
//!
//! The service validates a change set on its in-memory state at revision
//! `basis`, outside the database transaction. Another writer (this process or
//! another replica) may commit in between a change that the validation would
//! have refused together with this one: a segment deleted while a flag using
//! it is written, a stricter schema registered while a value is written, a
//! secret deleted while configuration referencing it is written. The plan
//! therefore says what it read ([`Read`]); under the lock that allocates the
//! next revision, the store lists what was committed after `basis`
//! ([`Changes`]) and refuses the commit with [`crate::StoreError::Stale`]
//! when one of those changes touches what the plan read. Changes to anything
//! else — other keys, other apps, other kinds — do not, so unrelated
//! concurrent writes never make each other retry.
//!
//! [`Guard::conflict`] is the whole rule, pure, shared by every backend.

use cairn_model::{glob_match, EntryKind, Revision, Scope};

/// A plan's dependencies: the revision it was validated at and what it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// The revision of the state the plan was validated against.
    pub basis: Revision,
    pub reads: Vec<Read>,
}

/// One part of the state a plan's validation read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// One entry: any version written after the basis (tombstones too).
    Entry { scope: Scope, key: String },
    /// Entries of `kind` at the scopes visible from `at` (its layers): a flag
    /// is compiled with the segments visible at its scope.
    VisibleFrom { kind: EntryKind, at: Scope },
    /// Entries of `kind` at the scopes that can see `layer`: a segment change
    /// is checked against the flags that can see it; a secret delete against
    /// the entries that can reference it (`kind: None` = every kind).
    Seeing {
        kind: Option<EntryKind>,
        layer: Scope,
    },
    /// Entries of `kind` at every scope that reaches a view `scope` reaches:
    /// a segment change was checked against flags compiled with every
    /// segment of their views.
    Overlapping { kind: EntryKind, scope: Scope },
    /// Configuration entries a schema at (`app`, `pattern`) applies to
    /// (`app: None` = every app): a schema's drift check read them.
    Matching {
        app: Option<String>,
        pattern: String,
    },
    /// Schemas that apply to the configuration entry `key` of `app`
    /// (global ones and `app`'s): a value was validated against them.
    SchemasFor { app: Option<String>, key: String },
    /// The secret `name` at any scope visible from `from` (created, rotated
    /// with another policy, deleted): a `$secret` reference was resolved.
    Secret { name: String, from: Scope },
    /// Every secret (a delete checked that no rotation hook is signed with it).
    Secrets,
    /// The settings of every environment (`strict_flags` was applied).
    Environments,
    /// The settings of one environment (a change of its policy was based
    /// on them).
    Environment { name: String },
}

/// What was committed after a basis, as far as guards are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Every entry version written (scope, key, kind of the version).
    pub entries: Vec<(Scope, String, EntryKind)>,
    /// Every schema version registered: (app, pattern).
    pub schemas: Vec<(Option<String>, String)>,
    /// Every secret whose row changed: (scope, name).
    pub secrets: Vec<(Scope, String)>,
    /// Every environment created or changed.
    pub environments: Vec<String>,
}

/// Which of [`Changes`]' lists a guard needs (the store reads only those).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub entries: bool,
    pub schemas: bool,
    pub secrets: bool,
    pub environments: bool,
}

impl Guard {
    pub fn new(basis: Revision) -> Self {
        Guard {
            basis,
            reads: Vec::new(),
        }
    }

    /// Add a read (duplicates are kept out).
    pub fn read(&mut self, read: Read) {
        if !self.reads.contains(&read) {
            self.reads.push(read);
        }
    }

    /// The kinds of change the reads can conflict with.
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for r in &self.reads {
            match r {
                Read::Entry { .. }
                | Read::VisibleFrom { .. }
                | Read::Seeing { .. }
                | Read::Overlapping { .. }
                | Read::Matching { .. } => n.entries = true,
                Read::SchemasFor { .. } => n.schemas = true,
                Read::Secret { .. } | Read::Secrets => n.secrets = true,
                Read::Environments | Read::Environment { .. } => n.environments = true,
            }
        }
        n
    }

    /// The first change after the basis that touches what the plan read,
    /// described for the error message; `None` if the plan still holds.
    pub fn conflict(&self, changes: &Changes) -> Option<String> {
        for read in &self.reads {
            if let Some(what) = read.conflict(changes) {
                return Some(what);
            }
        }
        None
    }
}

impl Read {
    fn conflict(&self, changes: &Changes) -> Option<String> {
        let entry = |pred: &dyn Fn(&Scope, &str, EntryKind) -> bool| {
            changes
                .entries
                .iter()
                .find(|(s, k, kind)| pred(s, k, *kind))
                .map(|(s, k, kind)| format!("{} {k} at {s}", kind.as_str()))
        };
        match self {
            Read::Entry { scope, key } => entry(&|s, k, _| s == scope && k == key),
            Read::VisibleFrom { kind, at } => entry(&|s, _, k| k == *kind && s.is_visible_from(at)),
            Read::Seeing { kind, layer } => {
                entry(&|s, _, k| kind.is_none_or(|want| want == k) && layer.is_visible_from(s))
            }
            Read::Overlapping { kind, scope } => entry(&|s, _, k| k == *kind && s.overlaps(scope)),
            Read::Matching { app, pattern } => entry(&|s, k, kind| {
                kind == EntryKind::Config
                    && app.as_ref().is_none_or(|a| s.app.as_ref() == Some(a))
                    && glob_match(pattern, k)
            }),
            Read::SchemasFor { app, key } => changes
                .schemas
                .iter()
                .find(|(a, p)| {
                    a.as_ref().is_none_or(|a| Some(a) == app.as_ref()) && glob_match(p, key)
                })
                .map(|(a, p)| format!("schema {p} of {}", a.as_deref().unwrap_or("global"))),
            Read::Secret { name, from } => changes
                .secrets
                .iter()
                .find(|(s, n)| n == name && s.is_visible_from(from))
                .map(|(s, n)| format!("secret {n} at {s}")),
            Read::Secrets => changes
                .secrets
                .first()
                .map(|(s, n)| format!("secret {n} at {s}")),
            Read::Environments => changes
                .environments
                .first()
                .map(|e| format!("environment {e}")),
            Read::Environment { name } => changes
                .environments
                .iter()
                .find(|e| *e == name)
                .map(|e| format!("environment {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(app: Option<&str>, env: Option<&str>) -> Scope {
        Scope::new(app, env)
    }

    fn entries(list: &[(Scope, &str, EntryKind)]) -> Changes {
        Changes {
            entries: list
                .iter()
                .map(|(s, k, kind)| (s.clone(), (*k).to_owned(), *kind))
                .collect(),
            ..Changes::default()
        }
    }

    fn guard(reads: Vec<Read>) -> Guard {
        Guard { basis: 7, reads }
    }

    // Each row: a read, a change after the basis, and whether it conflicts
    // (written out by hand from the rules in the module docs).
    #[test]
    #[rustfmt::skip]
    fn entry_reads_against_entry_changes() {
        let shop = Some("shop");
        let prod = Some("prod");
        use EntryKind::*;
        let rows: Vec<(Read, (Scope, &str, EntryKind), bool)> = vec![
            // The entry itself, and nothing else.
            (Read::Entry { scope: s(shop, prod), key: "a".into() }, (s(shop, prod), "a", Config), true),
            (Read::Entry { scope: s(shop, prod), key: "a".into() }, (s(shop, None), "a", Config), false),
            (Read::Entry { scope: s(shop, prod), key: "a".into() }, (s(shop, prod), "b", Config), false),
            // A flag at shop/prod sees segments at its four layers only.
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(None, None), "beta", Segment), true),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(None, prod), "beta", Segment), true),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(shop, None), "beta", Segment), true),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(shop, prod), "beta", Segment), true),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(shop, Some("dev")), "beta", Segment), false),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(Some("other"), None), "beta", Segment), false),
            (Read::VisibleFrom { kind: Segment, at: s(shop, prod) }, (s(shop, prod), "beta", Flag), false),
            (Read::VisibleFrom { kind: Segment, at: s(shop, None) }, (s(shop, prod), "beta", Segment), false),
            // A segment at shop is seen by flags at shop and below.
            (Read::Seeing { kind: Some(Flag), layer: s(shop, None) }, (s(shop, prod), "f", Flag), true),
            (Read::Seeing { kind: Some(Flag), layer: s(shop, None) }, (s(shop, None), "f", Flag), true),
            (Read::Seeing { kind: Some(Flag), layer: s(shop, None) }, (s(None, None), "f", Flag), false),
            (Read::Seeing { kind: Some(Flag), layer: s(shop, None) }, (s(Some("other"), prod), "f", Flag), false),
            (Read::Seeing { kind: Some(Flag), layer: s(shop, None) }, (s(shop, prod), "f", Config), false),
            (Read::Seeing { kind: None, layer: s(None, None) }, (s(shop, prod), "c", Config), true),
            // A segment at global/prod shares the view shop/prod with shop's segments.
            (Read::Overlapping { kind: Segment, scope: s(None, prod) }, (s(shop, None), "a", Segment), true),
            (Read::Overlapping { kind: Segment, scope: s(None, prod) }, (s(shop, prod), "a", Segment), true),
            (Read::Overlapping { kind: Segment, scope: s(None, prod) }, (s(None, None), "a", Segment), true),
            (Read::Overlapping { kind: Segment, scope: s(None, prod) }, (s(shop, Some("dev")), "a", Segment), false),
            (Read::Overlapping { kind: Segment, scope: s(None, prod) }, (s(shop, None), "a", Flag), false),
            // A schema's drift check read configuration its pattern matches.
            (Read::Matching { app: None, pattern: "db/*".into() }, (s(shop, prod), "db/url", Config), true),
            (Read::Matching { app: None, pattern: "db/*".into() }, (s(shop, prod), "web/url", Config), false),
            (Read::Matching { app: None, pattern: "db/*".into() }, (s(shop, prod), "db/url", Flag), false),
            (Read::Matching { app: shop.map(Into::into), pattern: "**".into() }, (s(Some("other"), None), "x", Config), false),
            (Read::Matching { app: shop.map(Into::into), pattern: "**".into() }, (s(shop, None), "x", Config), true),
        ];
        for (read, (scope, key, kind), want) in rows {
            let got = guard(vec![read.clone()]).conflict(&entries(&[(scope.clone(), key, kind)]));
            assert_eq!(got.is_some(), want, "{read:?} vs {kind:?} {key} at {scope}: {got:?}");
        }
    }

    #[test]
    fn schema_secret_and_environment_reads() {
        let for_db = guard(vec![Read::SchemasFor {
            app: Some("shop".into()),
            key: "db/url".into(),
        }]);
        let schema = |app: Option<&str>, p: &str| Changes {
            schemas: vec![(app.map(Into::into), p.into())],
            ..Changes::default()
        };
        assert!(for_db.conflict(&schema(None, "db/*")).is_some());
        assert!(for_db.conflict(&schema(Some("shop"), "**")).is_some());
        assert!(for_db.conflict(&schema(Some("other"), "**")).is_none());
        assert!(for_db.conflict(&schema(None, "web/*")).is_none());

        let pw = guard(vec![Read::Secret {
            name: "db/pw".into(),
            from: Scope::new(Some("shop"), Some("prod")),
        }]);
        let secret = |scope: Scope, n: &str| Changes {
            secrets: vec![(scope, n.into())],
            ..Changes::default()
        };
        assert!(pw.conflict(&secret(Scope::global(), "db/pw")).is_some());
        assert!(pw
            .conflict(&secret(Scope::new(Some("shop"), None), "db/pw"))
            .is_some());
        assert!(pw
            .conflict(&secret(Scope::new(Some("other"), None), "db/pw"))
            .is_none());
        assert!(pw.conflict(&secret(Scope::global(), "db/user")).is_none());
        assert!(guard(vec![Read::Secrets])
            .conflict(&secret(Scope::global(), "x"))
            .is_some());

        let envs = Changes {
            environments: vec!["prod".into()],
            ..Changes::default()
        };
        assert!(guard(vec![Read::Environments]).conflict(&envs).is_some());
        assert!(for_db.conflict(&envs).is_none());
        assert!(guard(vec![]).conflict(&envs).is_none());
        let prod = |name: &str| Read::Environment { name: name.into() };
        assert!(guard(vec![prod("prod")]).conflict(&envs).is_some());
        assert!(guard(vec![prod("dev")]).conflict(&envs).is_none());
        assert!(guard(vec![prod("dev")]).needs().environments);
        assert_eq!(
            guard(vec![Read::Environments]).needs(),
            Needs {
                environments: true,
                ..Needs::default()
            }
        );
    }
}
