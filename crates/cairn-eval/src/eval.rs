//! Evaluation of compiled expressions against a context.
//!
//! A flagd custom operation that cannot be applied (a `sem_ver` operand that is not a version,
//! a `starts_with` operand that is not a string, `fractional` without a bucketing value or
//! with weights that cannot be used, …) yields `null` **in place**, as flagd's evaluators do:
//! JsonLogic goes on with it (`null` is falsy, so an enclosing `if` takes its next branch,
//! `!` makes it `true`), and only a whole rule that yields `null` falls back to the default
//! variant (reason DEFAULT). Evaluation itself never fails: standard JsonLogic operations
//! coerce, as in JsonLogic, and every operation returns a value.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::compile::{ArithOp, ArrayOp, CmpOp, Const, Expr, SemVerArg, SemVerExpr, SemVerOpArg};
use crate::context::EvalContext;
use crate::fractional::{self, Fractional, Weight};
use crate::murmur3::Murmur3;
use crate::semver::{self, SemVerOp, Version};
use crate::value::{js_compare, loose_eq, strict_eq, Val};

/// What every evaluation of one flag shares.
pub(crate) struct Env<'a> {
    pub ctx: &'a EvalContext,
    pub flag_key: &'a str,
    pub now: i64,
    /// The data as flagd sees it (the context plus `$flagd`), built on first use: only
    /// `{"var": ""}` and `{"var": "$flagd"}` need it.
    whole: OnceCell<Value>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(ctx: &'a EvalContext, flag_key: &'a str, now: i64) -> Self {
        Self {
            ctx,
            flag_key,
            now,
            whole: OnceCell::new(),
        }
    }

    fn whole(&self) -> &Value {
        self.whole.get_or_init(|| {
            let mut m: Map<String, Value> = self
                .ctx
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            let mut flagd = Map::new();
            flagd.insert("flagKey".into(), Value::String(self.flag_key.to_owned()));
            flagd.insert("timestamp".into(), Value::from(self.now));
            m.insert(FLAGD.to_owned(), Value::Object(flagd));
            Value::Object(m)
        })
    }

    /// `$flagd`: `{"flagKey", "timestamp"}` (a caller-supplied `$flagd` is shadowed).
    fn flagd(&self) -> &Value {
        &self.whole()[FLAGD]
    }
}

const FLAGD: &str = "$flagd";

/// The data `var` reads: the context, or the element inside `map`/`filter`/`reduce`/….
enum Scope<'a, 's> {
    Root,
    Item(&'s Val<'a>),
    Reduce {
        current: &'s Val<'a>,
        accumulator: &'s Val<'a>,
    },
}

/// The environment, borrowed for as long as the values evaluated from it.
type E<'a> = &'a Env<'a>;

fn navigate_json<'a>(mut v: &'a Value, path: &[impl AsRef<str>]) -> Option<&'a Value> {
    for seg in path {
        let seg = seg.as_ref();
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn navigate<'a>(start: &Val<'a>, path: &[impl AsRef<str>]) -> Option<Val<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(start.clone());
    };
    match start {
        Val::Json(v) => navigate_json(v, path).map(Val::from_json),
        Val::Arr(items) => {
            let item = items.get(first.as_ref().parse::<usize>().ok()?)?;
            navigate(item, rest)
        }
        _ => None,
    }
}

fn lookup<'a>(env: E<'a>, scope: &Scope<'a, '_>, path: &[impl AsRef<str>]) -> Option<Val<'a>> {
    match scope {
        Scope::Root => match path.split_first() {
            None => Some(Val::from_json(env.whole())),
            Some((first, rest)) => {
                let first = first.as_ref();
                let top = if first == FLAGD {
                    env.flagd()
                } else {
                    env.ctx.get(first)?
                };
                navigate_json(top, rest).map(Val::from_json)
            }
        },
        Scope::Item(item) => navigate(item, path),
        Scope::Reduce {
            current,
            accumulator,
        } => {
            let (first, rest) = path.split_first()?;
            match first.as_ref() {
                "current" => navigate(current, rest),
                "accumulator" => navigate(accumulator, rest),
                _ => None,
            }
        }
    }
}

fn lookup_str<'a>(env: E<'a>, scope: &Scope<'a, '_>, path: &str) -> Option<Val<'a>> {
    if matches!(scope, Scope::Root) {
        match path {
            "$flagd.flagKey" => return Some(Val::Str(Cow::Borrowed(env.flag_key))),
            "$flagd.timestamp" => return Some(Val::Num(env.now as f64)),
            _ => {}
        }
    }
    if path.is_empty() {
        return lookup(env, scope, &[] as &[&str]);
    }
    let segs: Vec<&str> = path.split('.').collect();
    lookup(env, scope, &segs)
}

fn const_val(c: &Const) -> Val<'_> {
    match c {
        Const::Null => Val::Null,
        Const::Bool(b) => Val::Bool(*b),
        Const::Num(n) => Val::Num(*n),
        Const::Str(s) => Val::Str(Cow::Borrowed(s)),
        Const::Json(v) => Val::from_json(v),
    }
}

/// `null` for "the custom operation cannot be applied".
#[inline]
fn bool_or_null<'a>(b: Option<bool>) -> Val<'a> {
    b.map_or(Val::Null, Val::Bool)
}

#[inline]
fn eval<'a>(e: &'a Expr, env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    match e {
        Expr::Const(c) => const_val(c),
        Expr::Var { path, default } => match lookup(env, scope, path) {
            Some(v) => v,
            None => match default {
                Some(d) => eval(d, env, scope),
                None => Val::Null,
            },
        },
        Expr::If(args) => {
            let mut i = 0;
            while i + 1 < args.len() {
                if truthy(&args[i], env, scope) {
                    return eval(&args[i + 1], env, scope);
                }
                i += 2;
            }
            match args.get(i) {
                Some(last) => eval(last, env, scope),
                None => Val::Null,
            }
        }
        Expr::Or(args) => {
            let mut last = Val::Null;
            for a in args.iter() {
                last = eval(a, env, scope);
                if last.truthy() {
                    break;
                }
            }
            last
        }
        Expr::And(args) => {
            let mut last = Val::Null;
            for a in args.iter() {
                last = eval(a, env, scope);
                if !last.truthy() {
                    break;
                }
            }
            last
        }
        Expr::Not(a) => Val::Bool(!truthy(a, env, scope)),
        Expr::Truthy(a) => Val::Bool(truthy(a, env, scope)),
        Expr::Eq(ab) => Val::Bool(loose_eq(
            &eval(&ab[0], env, scope),
            &eval(&ab[1], env, scope),
        )),
        Expr::Ne(ab) => Val::Bool(!loose_eq(
            &eval(&ab[0], env, scope),
            &eval(&ab[1], env, scope),
        )),
        Expr::StrictEq(ab) => Val::Bool(strict_eq(
            &eval(&ab[0], env, scope),
            &eval(&ab[1], env, scope),
        )),
        Expr::StrictNe(ab) => Val::Bool(!strict_eq(
            &eval(&ab[0], env, scope),
            &eval(&ab[1], env, scope),
        )),
        Expr::Cmp(op, args) => Val::Bool(compare(*op, args, env, scope)),
        Expr::Variant(_, name) => Val::Str(Cow::Borrowed(name)),
        Expr::VarTop(name) => match scope {
            Scope::Root => env.ctx.get(name).map_or(Val::Null, Val::from_json),
            _ => lookup(env, scope, std::slice::from_ref(name)).unwrap_or(Val::Null),
        },
        Expr::StrAffix {
            subject,
            affix,
            prefix,
        } => bool_or_null(str_affix(subject, affix, *prefix, env, scope)),
        Expr::InStrs(..) => Val::Bool(truthy(e, env, scope)),
        Expr::StartsWith(ab) | Expr::EndsWith(ab) => {
            let a = eval(&ab[0], env, scope);
            let b = eval(&ab[1], env, scope);
            match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => Val::Bool(if matches!(e, Expr::StartsWith(_)) {
                    a.starts_with(b)
                } else {
                    a.ends_with(b)
                }),
                _ => Val::Null,
            }
        }
        Expr::SemVer(sv) => bool_or_null(sem_ver(sv, env, scope)),
        Expr::Fractional(f) => eval_fractional(f, env, scope),
        Expr::Array(_)
        | Expr::VarDyn { .. }
        | Expr::FlagKey
        | Expr::Timestamp
        | Expr::Missing(_)
        | Expr::MissingSome(_)
        | Expr::Arith(..)
        | Expr::Cat(_)
        | Expr::Substr(_)
        | Expr::In(_)
        | Expr::Merge(_)
        | Expr::ArrayOp(..)
        | Expr::Reduce(_) => eval_cold(e, env, scope),
    }
}

/// Evaluates an operand, reading a top-level attribute inline (no call, no `Val` through memory).
#[inline(always)]
fn operand<'a>(e: &'a Expr, env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    match (e, scope) {
        (Expr::VarTop(name), Scope::Root) => env.ctx.get(name).map_or(Val::Null, Val::from_json),
        _ => eval(e, env, scope),
    }
}

/// `starts_with`/`ends_with` with a constant affix; `None` when the subject is not a string.
#[inline(always)]
fn str_affix<'a>(
    subject: &'a Expr,
    affix: &str,
    prefix: bool,
    env: E<'a>,
    scope: &Scope<'a, '_>,
) -> Option<bool> {
    let v = operand(subject, env, scope);
    let s = v.as_str()?;
    Some(if prefix {
        s.starts_with(affix)
    } else {
        s.ends_with(affix)
    })
}

/// The truthiness of an expression, computed without materializing boolean results.
#[inline]
fn truthy<'a>(e: &'a Expr, env: E<'a>, scope: &Scope<'a, '_>) -> bool {
    match e {
        Expr::StrAffix {
            subject,
            affix,
            prefix,
        } => str_affix(subject, affix, *prefix, env, scope) == Some(true),
        Expr::InStrs(needle, set) => {
            let needle = operand(needle, env, scope);
            match needle.as_str() {
                Some(n) => set.iter().any(|s| crate::value::short_eq(s, n)),
                None => false,
            }
        }
        Expr::SemVer(sv) => sem_ver(sv, env, scope) == Some(true),
        Expr::Not(a) => !truthy(a, env, scope),
        Expr::Truthy(a) => truthy(a, env, scope),
        Expr::Cmp(op, args) => compare(*op, args, env, scope),
        Expr::Eq(ab) => loose_eq(&eval(&ab[0], env, scope), &eval(&ab[1], env, scope)),
        Expr::StrictEq(ab) => strict_eq(&eval(&ab[0], env, scope), &eval(&ab[1], env, scope)),
        _ => eval(e, env, scope).truthy(),
    }
}

/// The less common operations, kept out of line so the hot `eval` frame stays small.
#[inline(never)]
fn eval_cold<'a>(e: &'a Expr, env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    match e {
        Expr::Array(items) => Val::Arr(items.iter().map(|i| eval(i, env, scope)).collect()),
        Expr::VarDyn { path, default } => {
            let p = eval(path, env, scope);
            let found = if p.is_null() {
                lookup(env, scope, &[] as &[&str])
            } else {
                lookup_str(env, scope, &p.to_js_string())
            };
            match found {
                Some(v) => v,
                None => match default {
                    Some(d) => eval(d, env, scope),
                    None => Val::Null,
                },
            }
        }
        Expr::FlagKey => match scope {
            Scope::Root => Val::Str(Cow::Borrowed(env.flag_key)),
            _ => lookup(env, scope, &[FLAGD, "flagKey"]).unwrap_or(Val::Null),
        },
        Expr::Timestamp => match scope {
            Scope::Root => Val::Num(env.now as f64),
            _ => lookup(env, scope, &[FLAGD, "timestamp"]).unwrap_or(Val::Null),
        },
        Expr::Missing(args) => Val::Arr(missing(args, env, scope)),
        Expr::MissingSome(args) => {
            let need = eval(&args[0], env, scope).to_number();
            let keys = eval(&args[1], env, scope);
            let keys = keys.array_items().unwrap_or_default();
            let absent = missing_keys(&keys, env, scope);
            if (keys.len() - absent.len()) as f64 >= need {
                Val::Arr(Vec::new())
            } else {
                Val::Arr(absent)
            }
        }
        Expr::Arith(op, args) => arith(*op, args, env, scope),
        Expr::Cat(args) => {
            if let [only] = &args[..] {
                Val::Str(eval(only, env, scope).to_js_string())
            } else {
                let mut s = String::new();
                for a in args.iter() {
                    s.push_str(&eval(a, env, scope).to_js_string());
                }
                Val::Str(Cow::Owned(s))
            }
        }
        Expr::Substr(args) => substr(args, env, scope),
        Expr::In(ab) => {
            let needle = eval(&ab[0], env, scope);
            let hay = eval(&ab[1], env, scope);
            Val::Bool(match &hay {
                Val::Str(h) => h.contains(needle.to_js_string().as_ref()),
                other => other
                    .array_items()
                    .is_some_and(|items| items.iter().any(|i| strict_eq(i, &needle))),
            })
        }
        Expr::Merge(args) => {
            let mut out = Vec::new();
            for a in args.iter() {
                let v = eval(a, env, scope);
                match v.array_items() {
                    Some(items) => out.extend(items),
                    None => out.push(v),
                }
            }
            Val::Arr(out)
        }
        Expr::ArrayOp(op, ab) => array_op(*op, ab, env, scope),
        Expr::Reduce(abc) => {
            let items = eval(&abc[0], env, scope).array_items();
            let mut acc = eval(&abc[2], env, scope);
            if let Some(items) = items {
                for item in &items {
                    let inner = Scope::Reduce {
                        current: item,
                        accumulator: &acc,
                    };
                    acc = eval(&abc[1], env, &inner);
                }
            }
            acc
        }
        Expr::Const(_)
        | Expr::Var { .. }
        | Expr::If(_)
        | Expr::Or(_)
        | Expr::And(_)
        | Expr::Not(_)
        | Expr::Truthy(_)
        | Expr::Eq(_)
        | Expr::Ne(_)
        | Expr::StrictEq(_)
        | Expr::StrictNe(_)
        | Expr::Cmp(..)
        | Expr::InStrs(..)
        | Expr::Variant(..)
        | Expr::VarTop(_)
        | Expr::StrAffix { .. }
        | Expr::StartsWith(_)
        | Expr::EndsWith(_)
        | Expr::SemVer(_)
        | Expr::Fractional(_) => eval(e, env, scope),
    }
}

fn missing_keys<'a>(keys: &[Val<'a>], env: E<'a>, scope: &Scope<'a, '_>) -> Vec<Val<'a>> {
    keys.iter()
        .filter(|k| {
            let path = k.to_js_string();
            match lookup_str(env, scope, &path) {
                None => true,
                Some(v) => v.is_null() || v.as_str() == Some(""),
            }
        })
        .cloned()
        .collect()
}

fn missing<'a>(args: &'a [Expr], env: E<'a>, scope: &Scope<'a, '_>) -> Vec<Val<'a>> {
    let mut keys = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let v = eval(a, env, scope);
        match v.array_items() {
            // `{"missing": [["a", "b"]]}` (e.g. the output of `merge`) lists the keys.
            Some(items) if i == 0 => keys.extend(items),
            _ => keys.push(v),
        }
    }
    missing_keys(&keys, env, scope)
}

fn compare<'a>(op: CmpOp, args: &'a [Expr], env: E<'a>, scope: &Scope<'a, '_>) -> bool {
    let holds = |o: Option<Ordering>| match (op, o) {
        (_, None) => false,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
    };
    let a = eval(&args[0], env, scope);
    let b = eval(&args[1], env, scope);
    if !holds(js_compare(&a, &b)) {
        return false;
    }
    match args.get(2) {
        Some(c) => holds(js_compare(&b, &eval(c, env, scope))),
        None => true,
    }
}

fn arith<'a>(op: ArithOp, args: &'a [Expr], env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    let vals: Vec<Val<'a>> = args.iter().map(|a| eval(a, env, scope)).collect();
    let n = |i: usize| vals.get(i).map_or(f64::NAN, Val::to_number);
    Val::Num(match op {
        ArithOp::Add => vals.iter().map(Val::parse_float).sum(),
        ArithOp::Mul => {
            if vals.is_empty() {
                return Val::Null;
            }
            vals.iter().map(Val::parse_float).product()
        }
        ArithOp::Sub => match vals.len() {
            0 => return Val::Null,
            1 => -n(0),
            _ => n(0) - n(1),
        },
        ArithOp::Div => n(0) / n(1),
        ArithOp::Mod => n(0) % n(1),
        ArithOp::Min | ArithOp::Max => {
            if vals.is_empty() {
                return Val::Null;
            }
            let mut acc = if op == ArithOp::Min {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
            for v in &vals {
                let x = v.to_number();
                if x.is_nan() {
                    acc = f64::NAN;
                    break;
                }
                acc = if op == ArithOp::Min {
                    acc.min(x)
                } else {
                    acc.max(x)
                };
            }
            acc
        }
    })
}

fn substr<'a>(args: &'a [Expr], env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    let source = match args.first() {
        Some(a) => eval(a, env, scope).to_js_string(),
        None => Cow::Borrowed("undefined"),
    };
    let chars: Vec<char> = source.chars().collect();
    let len = chars.len() as f64;
    let num = |v: Val<'_>| {
        let x = v.to_number();
        if x.is_nan() {
            0.0
        } else {
            x.trunc()
        }
    };
    let start = match args.get(1) {
        Some(a) => num(eval(a, env, scope)),
        None => 0.0,
    };
    let start = if start < 0.0 {
        (len + start).max(0.0)
    } else {
        start.min(len)
    };
    let end = match args.get(2) {
        None => len,
        Some(a) => {
            let l = num(eval(a, env, scope));
            if l < 0.0 {
                (len + l).max(start)
            } else {
                (start + l).min(len)
            }
        }
    };
    let (s, e) = (start as usize, (end as usize).max(start as usize));
    Val::Str(Cow::Owned(chars[s..e].iter().collect()))
}

fn array_op<'a>(op: ArrayOp, ab: &'a [Expr; 2], env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    let items = eval(&ab[0], env, scope).array_items().unwrap_or_default();
    let test = |item: &Val<'a>| -> Val<'a> { eval(&ab[1], env, &Scope::Item(item)) };
    match op {
        ArrayOp::Map => Val::Arr(items.iter().map(test).collect()),
        ArrayOp::Filter => Val::Arr(items.into_iter().filter(|i| test(i).truthy()).collect()),
        ArrayOp::All => Val::Bool(!items.is_empty() && items.iter().all(|i| test(i).truthy())),
        ArrayOp::Some => Val::Bool(items.iter().any(|i| test(i).truthy())),
        ArrayOp::None => Val::Bool(!items.iter().any(|i| test(i).truthy())),
    }
}

fn version_text<'v>(v: &'v Val<'_>) -> Option<Cow<'v, str>> {
    match v {
        Val::Str(s) => Some(Cow::Borrowed(s.as_ref())),
        // A numeric attribute such as `2` or `2.1` reads as a version.
        Val::Num(n) if n.is_finite() => Some(Cow::Owned(crate::value::js_number_to_string(*n))),
        _ => None,
    }
}

/// `sem_ver`; `None` (the operation yields `null`) when an operand is not a version or the
/// operator is unknown.
fn sem_ver<'a>(sv: &'a SemVerExpr, env: E<'a>, scope: &Scope<'a, '_>) -> Option<bool> {
    let left_val;
    let left_text;
    let left: Version<'_> = match &sv.left {
        SemVerArg::Const(v) => v.as_version(),
        SemVerArg::Expr(e) => {
            left_val = operand(e, env, scope);
            left_text = version_text(&left_val)?;
            semver::parse(&left_text)?
        }
    };
    let right_val;
    let right_text;
    let right: Version<'_> = match &sv.right {
        SemVerArg::Const(v) => v.as_version(),
        SemVerArg::Expr(e) => {
            right_val = operand(e, env, scope);
            right_text = version_text(&right_val)?;
            semver::parse(&right_text)?
        }
    };
    let op = match &sv.op {
        SemVerOpArg::Const(op) => *op,
        SemVerOpArg::Expr(e) => {
            let v = eval(e, env, scope);
            v.as_str().and_then(SemVerOp::parse)?
        }
    };
    Some(op.apply(&left, &right))
}

/// `murmur3(flagKey + targetingKey)`, continuing from the precomputed flag-key state;
/// `None` without a string `targetingKey`.
fn default_hash(f: &Fractional, env: E<'_>) -> Option<u32> {
    let key = env.ctx.targeting_key()?;
    let mut h = f.flag_key_prefix.clone();
    h.write(key.as_bytes());
    Some(h.finish())
}

fn bucketing_hash<'a>(f: &'a Fractional, env: E<'a>, scope: &Scope<'a, '_>) -> Option<u32> {
    match &f.bucket_by {
        None => default_hash(f, env),
        // `cat` is hashed piece by piece: no concatenated string is built.
        Some(Expr::Cat(parts)) => {
            let mut h = Murmur3::new(0);
            for p in parts.iter() {
                h.write(eval(p, env, scope).to_js_string().as_bytes());
            }
            Some(h.finish())
        }
        Some(e) => match eval(e, env, scope) {
            Val::Str(s) => Some(crate::murmur3::murmur3_32(s.as_bytes(), 0)),
            v if v.is_null() => default_hash(f, env),
            _ => None,
        },
    }
}

/// The index of the bucket the bucketing value falls in; `None` when there is no bucketing
/// value or the weights cannot be used (the operation yields `null`).
fn fractional_index<'a>(f: &'a Fractional, env: E<'a>, scope: &Scope<'a, '_>) -> Option<usize> {
    let hash = bucketing_hash(f, env, scope)?;
    let computed;
    let cumulative: &[u64] = match &f.cumulative {
        Some(c) => c,
        None => {
            let mut sums = Vec::with_capacity(f.buckets.len());
            let mut total = 0u64;
            for b in f.buckets.iter() {
                total += match &b.weight {
                    Weight::Const(w) => *w,
                    Weight::Expr(e) => match eval(e, env, scope) {
                        v if v.is_null() => 1,
                        Val::Num(n) => fractional::weight_of_number(n)?,
                        _ => return None,
                    },
                };
                if total > fractional::MAX_TOTAL_WEIGHT {
                    return None;
                }
                sums.push(total);
            }
            computed = sums;
            &computed
        }
    };
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    fractional::pick(cumulative, fractional::bucket_value(hash, total))
}

/// The value of bucket `idx`'s variant: a scalar or `null` (anything else yields `null`).
fn bucket_variant<'a>(f: &'a Fractional, idx: usize, env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    match eval(&f.buckets[idx].variant, env, scope) {
        v @ (Val::Null | Val::Bool(_) | Val::Num(_) | Val::Str(_)) => v,
        _ => Val::Null,
    }
}

fn eval_fractional<'a>(f: &'a Fractional, env: E<'a>, scope: &Scope<'a, '_>) -> Val<'a> {
    match fractional_index(f, env, scope) {
        Some(idx) => bucket_variant(f, idx, env, scope),
        None => Val::Null,
    }
}

/// What a rule decided: a pre-resolved variant, or a value to interpret as a variant name.
pub(crate) enum Decision<'a> {
    Variant(usize),
    Value(Val<'a>),
}

/// Evaluates a rule in result position: `if` branches and `fractional` buckets that are
/// constant variant names come back as indices, without a lookup by name.
pub(crate) fn decide<'a>(e: &'a Expr, env: E<'a>) -> Decision<'a> {
    let scope = &Scope::Root;
    match e {
        Expr::Variant(i, _) => Decision::Variant(*i as usize),
        Expr::If(args) => {
            let mut i = 0;
            while i + 1 < args.len() {
                if truthy(&args[i], env, scope) {
                    return decide(&args[i + 1], env);
                }
                i += 2;
            }
            match args.get(i) {
                Some(last) => decide(last, env),
                None => Decision::Value(Val::Null),
            }
        }
        Expr::Fractional(f) => match fractional_index(f, env, scope) {
            None => Decision::Value(Val::Null),
            Some(idx) => match &f.buckets[idx].variant {
                Expr::Variant(i, _) => Decision::Variant(*i as usize),
                _ => Decision::Value(bucket_variant(f, idx, env, scope)),
            },
        },
        other => Decision::Value(eval(other, env, scope)),
    }
}
