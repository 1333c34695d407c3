//! Which writes need approval (DESIGN.md §7), as pure functions of the
//! environments' settings: a write reaches the resolved views of the
//! environments its scope is part of, and it is gated when one of them is
//! protected without `auto_approve`; the strictest policy wins.

use std::collections::{BTreeMap, BTreeSet};

use cairn_model::Scope;
use cairn_store::Environment;

/// A gated change: the protected environments it reaches and the distinct
/// approvals it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Sorted, each once.
    pub environments: Vec<String>,
    /// The largest `required_approvals` of those environments, at least 1.
    pub required: i32,
}

/// The environments whose resolved views a write at `scope` reaches: its own
/// environment, or every environment for a scope set for all of them
/// (`global`, an app's own scope).
pub fn reached_envs<'e>(
    envs: &'e BTreeMap<String, Environment>,
    scope: &Scope,
) -> Vec<&'e Environment> {
    match &scope.env {
        Some(e) => envs.get(e).into_iter().collect(),
        None => envs.values().collect(),
    }
}

/// Does a write reaching `env` need its approval?
pub fn is_gated(env: &Environment) -> bool {
    env.protected && !env.auto_approve
}

/// The gate of a change set whose items are at `scopes`: `None` when it
/// reaches no gated environment (it is written at once).
pub fn gate<'s>(
    envs: &BTreeMap<String, Environment>,
    scopes: impl IntoIterator<Item = &'s Scope>,
) -> Option<Gate> {
    let mut gated = BTreeSet::new();
    let mut required = 1;
    for scope in scopes {
        for env in reached_envs(envs, scope) {
            if is_gated(env) {
                gated.insert(env.name.clone());
                required = required.max(env.required_approvals);
            }
        }
    }
    (!gated.is_empty()).then(|| Gate {
        environments: gated.into_iter().collect(),
        required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, protected: bool, required: i32, auto: bool) -> (String, Environment) {
        (
            name.to_owned(),
            Environment {
                name: name.to_owned(),
                description: String::new(),
                protected,
                required_approvals: required,
                auto_approve: auto,
                strict_flags: false,
                approvers: Vec::new(),
                created_at: chrono::DateTime::UNIX_EPOCH,
                revision: 0,
            },
        )
    }

    fn s(app: Option<&str>, env: Option<&str>) -> Scope {
        Scope::new(app, env)
    }

    #[test]
    fn the_gate_of_each_scope_by_table() {
        // dev: open; staging: protected but auto-approved; prod: 2
        // approvals; qa: protected with 0 required (still needs one);
        // audit: 3 approvals.
        let envs: BTreeMap<_, _> = [
            env("dev", false, 0, true),
            env("staging", true, 5, true),
            env("prod", true, 2, false),
            env("qa", true, 0, false),
            env("audit", true, 3, false),
        ]
        .into_iter()
        .collect();
        type Row<'a> = (Vec<Scope>, Option<(&'a [&'a str], i32)>);
        let table: Vec<Row> = vec![
            (vec![s(None, Some("dev"))], None),
            (vec![s(Some("shop"), Some("dev"))], None),
            (vec![s(None, Some("staging"))], None),
            (vec![s(None, Some("prod"))], Some((&["prod"], 2))),
            (vec![s(Some("shop"), Some("prod"))], Some((&["prod"], 2))),
            (vec![s(None, Some("qa"))], Some((&["qa"], 1))),
            // Broader scopes reach every environment: the strictest wins.
            (vec![s(None, None)], Some((&["audit", "prod", "qa"], 3))),
            (
                vec![s(Some("shop"), None)],
                Some((&["audit", "prod", "qa"], 3)),
            ),
            // A mixed change set is one gate over all of it.
            (
                vec![s(None, Some("dev")), s(Some("shop"), Some("prod"))],
                Some((&["prod"], 2)),
            ),
            (
                vec![s(None, Some("qa")), s(None, Some("prod"))],
                Some((&["prod", "qa"], 2)),
            ),
            (vec![s(None, Some("dev")), s(None, Some("staging"))], None),
            (vec![], None),
        ];
        for (scopes, want) in table {
            let got = gate(&envs, &scopes);
            let want = want.map(|(e, required)| Gate {
                environments: e.iter().map(|s| s.to_string()).collect(),
                required,
            });
            assert_eq!(got, want, "{scopes:?}");
        }
    }

    #[test]
    fn no_protected_environment_gates_nothing() {
        let envs: BTreeMap<_, _> = [env("dev", false, 3, false), env("prod", false, 2, true)]
            .into_iter()
            .collect();
        assert_eq!(gate(&envs, &[s(None, None)]), None);
    }
}
