//! Which writes need approval (DESIGN.md §7), as pure functions of the
//! environments' settings: a write reaches the resolved views of the
//! environments its scope is part of, and it is gated when one of them is
//! protected without `auto_approve`; the strictest policy wins. And who may
//! approve for an environment that names its approvers ([`Approver`]).

use std::collections::{BTreeMap, BTreeSet};

use cairn_model::Scope;
use cairn_store::{Binding, Environment};

pub use crate::identity::policy::Approver;

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

/// May the principal `identity` with `bindings` approve for `env` as far as
/// its `approvers` list goes? An empty list names no one in particular
/// (yes); otherwise one item must match. Items that do not parse (never
/// stored by the service) match no one.
pub fn approver_allowed(env: &Environment, identity: &str, bindings: &[Binding]) -> bool {
    env.approvers.is_empty()
        || env
            .approvers
            .iter()
            .filter_map(|a| Approver::parse(a).ok())
            .any(|a| a.matches(identity, bindings, &env.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::Role;

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
    fn approver_items_parse_by_table() {
        let ok = |r: Role| Ok(Approver::Role(r));
        let table: Vec<(&str, Result<Approver, ()>)> = vec![
            ("role:admin", ok(Role::Admin)),
            ("role:operator", ok(Role::Operator)),
            ("role:viewer", ok(Role::Viewer)),
            ("user:ann", Ok(Approver::User("ann".into()))),
            (
                "user:ann.lee@corp",
                Ok(Approver::User("ann.lee@corp".into())),
            ),
            ("role:sdk", Err(())),
            ("role:owner", Err(())),
            ("role:", Err(())),
            ("user:", Err(())),
            ("user:Ann", Err(())),
            ("user:ann ", Err(())),
            (" user:ann", Err(())),
            ("group:ops", Err(())),
            ("token:tok_1", Err(())),
            ("ann", Err(())),
            ("", Err(())),
        ];
        for (item, want) in table {
            let got = Approver::parse(item);
            assert_eq!(got.clone().map_err(|_| ()), want, "{item:?}");
            if let Err(message) = got {
                assert!(message.contains(&format!("{item:?}")), "{message}");
            }
        }
    }

    fn b(role: Role, env: &str) -> Binding {
        Binding {
            role,
            app: "*".into(),
            env: env.into(),
        }
    }

    #[test]
    fn who_matches_an_approvers_list_by_table() {
        let mut prod = env("prod", true, 2, false).1;
        let admin = [b(Role::Admin, "*")];
        let operator = [b(Role::Operator, "*")];
        let operator_in_prod = [b(Role::Operator, "prod")];
        let operator_in_dev = [b(Role::Operator, "dev")];
        let operator_in_pr = [b(Role::Operator, "pr*")];
        let viewer = [b(Role::Viewer, "*")];
        let sdk = [b(Role::Sdk, "prod")];
        // (approvers, identity, bindings, may approve)
        type Row<'a> = (&'a [&'a str], &'a str, &'a [Binding], bool);
        let table: Vec<Row> = vec![
            // No list: the list says nothing (write access decides).
            (&[], "user:ann", &viewer, true),
            (&["role:admin"], "user:adm", &admin, true),
            (&["role:admin"], "user:ann", &operator, false),
            // A higher role satisfies a lower one.
            (&["role:operator"], "user:adm", &admin, true),
            (&["role:operator"], "user:ann", &operator, true),
            (&["role:operator"], "user:ann", &operator_in_prod, true),
            (&["role:operator"], "user:ann", &operator_in_pr, true),
            (&["role:operator"], "user:ann", &operator_in_dev, false),
            (&["role:operator"], "user:vic", &viewer, false),
            (&["role:viewer"], "user:vic", &viewer, true),
            (&["role:viewer"], "token:tok_sdk", &sdk, false),
            // Users by name, whatever their role; tokens and JWTs are not users.
            (&["user:ann"], "user:ann", &operator, true),
            (&["user:ann"], "user:bob", &operator, false),
            (&["user:ann"], "user:anne", &operator, false),
            (&["user:ann"], "jwt:ann", &operator, false),
            (&["user:ann"], "token:ann", &admin, false),
            (&["role:admin", "user:ann"], "user:ann", &operator, true),
            (&["role:admin", "user:ann"], "user:bob", &operator, false),
            (&["role:admin", "user:ann"], "token:tok_1", &admin, true),
            // An item that does not parse matches no one.
            (&["group:ops"], "user:ann", &admin, false),
        ];
        for (list, identity, bindings, want) in table {
            prod.approvers = list.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                approver_allowed(&prod, identity, bindings),
                want,
                "{list:?} {identity} {bindings:?}"
            );
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
