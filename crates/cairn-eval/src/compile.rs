//! Compiles JsonLogic (with flagd's custom operations) into an [`Expr`] tree, once.
//!
//! `$ref`s are inlined, constants are pre-converted, constant `sem_ver` operands are
//! pre-parsed and constant `fractional` weights are pre-summed, so evaluation does no parsing.

use serde_json::{Map, Value};

use crate::error::{push_escaped, ParseError};
use crate::fractional::{Bucket, Fractional};
use crate::semver::{self, OwnedVersion, SemVerOp};

/// Deepest nesting of operations accepted (bounds recursion at compile and evaluation time).
pub const MAX_DEPTH: usize = 128;

/// A pre-converted constant.
#[derive(Debug, Clone)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Num(f64),
    Str(Box<str>),
    /// An array (of constants) or another JSON value kept as is.
    Json(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrayOp {
    Map,
    Filter,
    All,
    Some,
    None,
}

/// A `sem_ver` operand: pre-parsed when constant.
#[derive(Debug, Clone)]
pub(crate) enum SemVerArg {
    Const(OwnedVersion),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) enum SemVerOpArg {
    Const(SemVerOp),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) struct SemVerExpr {
    pub left: SemVerArg,
    pub op: SemVerOpArg,
    pub right: SemVerArg,
}

/// A compiled JsonLogic expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Const(Const),
    /// An array literal with at least one non-constant element.
    Array(Box<[Expr]>),
    /// `var` with a constant path, split on `.`; an empty path is the whole data.
    Var {
        path: Box<[Box<str>]>,
        default: Option<Box<Expr>>,
    },
    /// A constant in a result position naming variant `.0` of the flag (pre-resolved, so the
    /// result needs no lookup by name).
    Variant(u32, Box<str>),
    /// `var` of one top-level attribute, without a default.
    VarTop(Box<str>),
    /// `starts_with` (`prefix`) or `ends_with` with a constant second operand.
    StrAffix {
        subject: Box<Expr>,
        affix: Box<str>,
        prefix: bool,
    },
    /// `var` whose path is computed.
    VarDyn {
        path: Box<Expr>,
        default: Option<Box<Expr>>,
    },
    /// `{"var": "$flagd.flagKey"}`.
    FlagKey,
    /// `{"var": "$flagd.timestamp"}`.
    Timestamp,
    Missing(Box<[Expr]>),
    MissingSome(Box<[Expr]>),
    If(Box<[Expr]>),
    Or(Box<[Expr]>),
    And(Box<[Expr]>),
    Not(Box<Expr>),
    Truthy(Box<Expr>),
    Eq(Box<[Expr; 2]>),
    Ne(Box<[Expr; 2]>),
    StrictEq(Box<[Expr; 2]>),
    StrictNe(Box<[Expr; 2]>),
    Cmp(CmpOp, Box<[Expr]>),
    Arith(ArithOp, Box<[Expr]>),
    Cat(Box<[Expr]>),
    Substr(Box<[Expr]>),
    In(Box<[Expr; 2]>),
    /// `in` with a constant array of strings: membership by string equality.
    InStrs(Box<Expr>, Box<[Box<str>]>),
    Merge(Box<[Expr]>),
    ArrayOp(ArrayOp, Box<[Expr; 2]>),
    Reduce(Box<[Expr; 3]>),
    StartsWith(Box<[Expr; 2]>),
    EndsWith(Box<[Expr; 2]>),
    SemVer(Box<SemVerExpr>),
    Fractional(Box<Fractional>),
}

impl Expr {
    pub(crate) fn as_const(&self) -> Option<&Const> {
        match self {
            Expr::Const(c) => Some(c),
            _ => None,
        }
    }
}

fn const_of(v: &Value) -> Const {
    match v {
        Value::Null => Const::Null,
        Value::Bool(b) => Const::Bool(*b),
        Value::Number(n) => Const::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Const::Str(s.as_str().into()),
        other => Const::Json(other.clone()),
    }
}

/// Compilation state: the evaluators for `$ref`, the current JSON pointer and `$ref` stack.
pub(crate) struct Compiler<'e> {
    evaluators: &'e Map<String, Value>,
    /// The key of the flag being compiled (`$flagd.flagKey`).
    flag_key: &'e str,
    path: Vec<String>,
    refs: Vec<String>,
}

impl<'e> Compiler<'e> {
    pub(crate) fn new(
        evaluators: &'e Map<String, Value>,
        flag_key: &'e str,
        base: &[&str],
    ) -> Self {
        Self {
            evaluators,
            flag_key,
            path: base.iter().map(|s| (*s).to_owned()).collect(),
            refs: Vec::new(),
        }
    }

    pub(crate) fn pointer(&self) -> String {
        let mut p = String::new();
        for s in &self.path {
            p.push('/');
            push_escaped(&mut p, s);
        }
        p
    }

    pub(crate) fn err(&self, message: impl Into<String>) -> ParseError {
        let mut message = message.into();
        if let Some(r) = self.refs.last() {
            message.push_str(&format!(" (inside $evaluators/{r})"));
        }
        ParseError::new(self.pointer(), message)
    }

    fn at<T>(
        &mut self,
        seg: impl ToString,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.path.push(seg.to_string());
        let r = f(self);
        self.path.pop();
        r
    }

    /// Compiles one JsonLogic value.
    pub(crate) fn compile(&mut self, v: &Value) -> Result<Expr, ParseError> {
        if self.path.len() + self.refs.len() * 8 > MAX_DEPTH {
            return Err(self.err(format!("rule is nested deeper than {MAX_DEPTH} levels")));
        }
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.at(i, |c| c.compile(item))?);
                }
                if out.iter().all(|e| e.as_const().is_some()) {
                    Ok(Expr::Const(Const::Json(v.clone())))
                } else {
                    Ok(Expr::Array(out.into()))
                }
            }
            Value::Object(map) => {
                let mut it = map.iter();
                let (op, arg) = match (it.next(), it.next()) {
                    (Some(kv), None) => kv,
                    (None, _) => {
                        return Err(self.err("a rule object must have one operator key, found none"))
                    }
                    (Some(_), Some(_)) => {
                        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                        return Err(self.err(format!(
                            "a rule object must have exactly one operator key, found {}: {}",
                            keys.len(),
                            keys.join(", ")
                        )));
                    }
                };
                let op = op.as_str();
                self.at(op, |c| c.compile_op(op, arg))
            }
            scalar => Ok(Expr::Const(const_of(scalar))),
        }
    }

    /// Compiles the arguments of an operation (a non-array argument is a single argument).
    fn args(&mut self, arg: &Value) -> Result<Vec<Expr>, ParseError> {
        match arg {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.at(i, |c| c.compile(item))?);
                }
                Ok(out)
            }
            single => Ok(vec![self.compile(single)?]),
        }
    }

    fn two(&mut self, arg: &Value) -> Result<Box<[Expr; 2]>, ParseError> {
        let mut a = self.args(arg)?.into_iter();
        let x = a.next().unwrap_or(Expr::Const(Const::Null));
        let y = a.next().unwrap_or(Expr::Const(Const::Null));
        Ok(Box::new([x, y]))
    }

    fn one(&mut self, arg: &Value) -> Result<Box<Expr>, ParseError> {
        let a = self.args(arg)?;
        Ok(Box::new(
            a.into_iter().next().unwrap_or(Expr::Const(Const::Null)),
        ))
    }

    fn exactly<const N: usize>(&mut self, op: &str, arg: &Value) -> Result<[Expr; N], ParseError> {
        let a = self.args(arg)?;
        let n = a.len();
        a.try_into()
            .map_err(|_| self.err(format!("`{op}` takes exactly {N} arguments, found {n}")))
    }

    fn compile_op(&mut self, op: &str, arg: &Value) -> Result<Expr, ParseError> {
        Ok(match op {
            "$ref" => return self.compile_ref(arg),
            "var" => self.compile_var(arg)?,
            "missing" => Expr::Missing(self.args(arg)?.into()),
            "missing_some" => Expr::MissingSome(self.exactly::<2>(op, arg)?.into()),
            "if" | "?:" => Expr::If(self.args(arg)?.into()),
            "or" => Expr::Or(self.args(arg)?.into()),
            "and" => Expr::And(self.args(arg)?.into()),
            "!" => Expr::Not(self.one(arg)?),
            "!!" => Expr::Truthy(self.one(arg)?),
            "==" => Expr::Eq(self.two(arg)?),
            "!=" => Expr::Ne(self.two(arg)?),
            "===" => Expr::StrictEq(self.two(arg)?),
            "!==" => Expr::StrictNe(self.two(arg)?),
            "<" => Expr::Cmp(CmpOp::Lt, self.cmp_args(op, arg, true)?),
            "<=" => Expr::Cmp(CmpOp::Le, self.cmp_args(op, arg, true)?),
            ">" => Expr::Cmp(CmpOp::Gt, self.cmp_args(op, arg, false)?),
            ">=" => Expr::Cmp(CmpOp::Ge, self.cmp_args(op, arg, false)?),
            "+" => Expr::Arith(ArithOp::Add, self.args(arg)?.into()),
            "-" => Expr::Arith(ArithOp::Sub, self.args(arg)?.into()),
            "*" => Expr::Arith(ArithOp::Mul, self.args(arg)?.into()),
            "/" => Expr::Arith(ArithOp::Div, self.args(arg)?.into()),
            "%" => Expr::Arith(ArithOp::Mod, self.args(arg)?.into()),
            "min" => Expr::Arith(ArithOp::Min, self.args(arg)?.into()),
            "max" => Expr::Arith(ArithOp::Max, self.args(arg)?.into()),
            "cat" => Expr::Cat(self.args(arg)?.into()),
            "substr" => Expr::Substr(self.args(arg)?.into()),
            "in" => {
                let [needle, hay] = *self.two(arg)?;
                match hay.as_const() {
                    Some(Const::Json(Value::Array(items)))
                        if items.iter().all(Value::is_string) =>
                    {
                        let set = items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(Box::<str>::from)
                            .collect();
                        Expr::InStrs(Box::new(needle), set)
                    }
                    _ => Expr::In(Box::new([needle, hay])),
                }
            }
            "merge" => Expr::Merge(self.args(arg)?.into()),
            "map" => Expr::ArrayOp(ArrayOp::Map, self.two(arg)?),
            "filter" => Expr::ArrayOp(ArrayOp::Filter, self.two(arg)?),
            "all" => Expr::ArrayOp(ArrayOp::All, self.two(arg)?),
            "some" => Expr::ArrayOp(ArrayOp::Some, self.two(arg)?),
            "none" => Expr::ArrayOp(ArrayOp::None, self.two(arg)?),
            "reduce" => {
                let mut a = self.args(arg)?.into_iter();
                let x = a.next().unwrap_or(Expr::Const(Const::Null));
                let y = a.next().unwrap_or(Expr::Const(Const::Null));
                let z = a.next().unwrap_or(Expr::Const(Const::Null));
                Expr::Reduce(Box::new([x, y, z]))
            }
            "starts_with" | "ends_with" => {
                let args = self.exactly::<2>(op, arg)?;
                for (i, a) in args.iter().enumerate() {
                    if let Some(c) = a.as_const() {
                        if !matches!(c, Const::Str(_)) {
                            return Err(self.at(i, |c| {
                                Ok(c.err(format!("`{op}` compares strings; this argument is not a string")))
                            })?);
                        }
                    }
                }
                let prefix = op == "starts_with";
                if let [subject, Expr::Const(Const::Str(affix))] = args {
                    return Ok(Expr::StrAffix {
                        subject: Box::new(subject),
                        affix,
                        prefix,
                    });
                }
                if prefix {
                    Expr::StartsWith(Box::new(args))
                } else {
                    Expr::EndsWith(Box::new(args))
                }
            }
            "sem_ver" => self.compile_sem_ver(arg)?,
            "fractional" => Expr::Fractional(Box::new(self.compile_fractional(arg)?)),
            "fractionalEvaluation" => {
                return Err(self.err(
                    "the legacy `fractionalEvaluation` operation is not supported; use `fractional` with {\"var\": …} as its first argument",
                ))
            }
            // `log` evaluates to its argument (a library has no console).
            "log" => *self.one(arg)?,
            other => return Err(self.err(format!("unknown operation `{other}`"))),
        })
    }

    fn cmp_args(
        &mut self,
        op: &str,
        arg: &Value,
        between: bool,
    ) -> Result<Box<[Expr]>, ParseError> {
        let a = self.args(arg)?;
        let max = if between { 3 } else { 2 };
        if a.len() < 2 || a.len() > max {
            return Err(self.err(format!(
                "`{op}` takes {} arguments, found {}",
                if between { "2 or 3" } else { "2" },
                a.len()
            )));
        }
        Ok(a.into())
    }

    fn compile_ref(&mut self, arg: &Value) -> Result<Expr, ParseError> {
        let Some(name) = arg.as_str() else {
            return Err(self.err("`$ref` must name an evaluator with a string"));
        };
        let Some(body) = self.evaluators.get(name) else {
            return Err(self.err(format!("`$ref` names an unknown evaluator `{name}`")));
        };
        if self.refs.iter().any(|r| r == name) {
            return Err(self.err(format!("`$ref` cycle through evaluator `{name}`")));
        }
        self.refs.push(name.to_owned());
        let r = self.compile(body);
        self.refs.pop();
        r
    }

    fn compile_var(&mut self, arg: &Value) -> Result<Expr, ParseError> {
        let mut args = self.args(arg)?.into_iter();
        let path = args.next().unwrap_or(Expr::Const(Const::Null));
        let default = args.next().map(Box::new);
        let path_str = match path.as_const() {
            Some(Const::Null) => Some(String::new()),
            Some(Const::Str(s)) => Some(s.to_string()),
            Some(Const::Num(n)) => Some(crate::value::js_number_to_string(*n)),
            Some(_) => {
                return Err(self.err("`var` takes a path string, a number, or an expression"))
            }
            None => None,
        };
        let Some(p) = path_str else {
            return Ok(Expr::VarDyn {
                path: Box::new(path),
                default,
            });
        };
        if default.is_none() {
            match p.as_str() {
                "$flagd.flagKey" => return Ok(Expr::FlagKey),
                "$flagd.timestamp" => return Ok(Expr::Timestamp),
                "$flagd" => {
                    return Err(self.err(
                        "read `$flagd.flagKey` or `$flagd.timestamp`, not `$flagd` as a whole",
                    ))
                }
                // flagd replaces any caller-supplied `$flagd`, so other members are absent.
                _ if p.starts_with("$flagd.") => return Ok(Expr::Const(Const::Null)),
                _ => {}
            }
        }
        let segments: Box<[Box<str>]> = if p.is_empty() {
            Box::new([])
        } else {
            p.split('.').map(Box::from).collect()
        };
        if let ([one], None) = (&segments[..], &default) {
            return Ok(Expr::VarTop(one.clone()));
        }
        Ok(Expr::Var {
            path: segments,
            default,
        })
    }

    fn compile_sem_ver(&mut self, arg: &Value) -> Result<Expr, ParseError> {
        let [l, o, r] = self.exactly::<3>("sem_ver", arg)?;
        let version = |c: &mut Self, i: usize, e: Expr| -> Result<SemVerArg, ParseError> {
            match e.as_const() {
                None => Ok(SemVerArg::Expr(e)),
                Some(Const::Str(s)) => match semver::parse(s) {
                    Some(v) => Ok(SemVerArg::Const(v.to_owned_version())),
                    None => c.at(
                        i,
                        |c| Err(c.err(format!("`{s}` is not a semantic version"))),
                    ),
                },
                Some(_) => c.at(i, |c| Err(c.err("a `sem_ver` version must be a string"))),
            }
        };
        let left = version(self, 0, l)?;
        let right = version(self, 2, r)?;
        let op = match o.as_const() {
            None => SemVerOpArg::Expr(o),
            Some(Const::Str(s)) => match SemVerOp::parse(s) {
                Some(op) => SemVerOpArg::Const(op),
                None => {
                    return self.at(1, |c| {
                        Err(c.err(format!(
                            "unknown `sem_ver` operator `{s}`; use one of = != < <= > >= ~ ^"
                        )))
                    })
                }
            },
            Some(_) => {
                return self.at(1, |c| Err(c.err("the `sem_ver` operator must be a string")))
            }
        };
        Ok(Expr::SemVer(Box::new(SemVerExpr { left, op, right })))
    }

    fn compile_fractional(&mut self, arg: &Value) -> Result<Fractional, ParseError> {
        let items: &[Value] = match arg {
            Value::Array(a) => a,
            _ => return Err(self.err("`fractional` takes an array of buckets, optionally preceded by a bucketing expression")),
        };
        let (bucket_by, first) = match items.first() {
            Some(Value::Array(_)) => (None, 0),
            Some(e) => (Some(self.at(0, |c| c.compile(e))?), 1),
            None => return Err(self.err("`fractional` needs at least one bucket")),
        };
        if items.len() <= first {
            return Err(self.err("`fractional` needs at least one bucket [variant, weight]"));
        }
        let mut buckets = Vec::with_capacity(items.len() - first);
        for (i, item) in items.iter().enumerate().skip(first) {
            let b = self.at(i, |c| {
                let Value::Array(parts) = item else {
                    return Err(c.err("a `fractional` bucket must be an array [variant, weight]"));
                };
                if parts.is_empty() || parts.len() > 2 {
                    return Err(c.err(format!(
                        "a `fractional` bucket must be [variant] or [variant, weight], found {} elements",
                        parts.len()
                    )));
                }
                let variant = c.at(0, |c| c.compile(&parts[0]))?;
                if let Some(Const::Json(_)) = variant.as_const() {
                    return c.at(0, |c| Err(c.err("a bucket variant must be a string, boolean, number or null")));
                }
                let weight = match parts.get(1) {
                    Some(w) => Some(c.at(1, |c| {
                        let e = c.compile(w)?;
                        if let Some(k) = e.as_const() {
                            crate::fractional::const_weight(k).map_err(|m| c.err(m))?;
                        }
                        Ok(e)
                    })?),
                    None => None,
                };
                Ok(Bucket { variant, weight })
            })?;
            buckets.push(b);
        }
        Fractional::new(bucket_by, buckets, self.flag_key).map_err(|m| self.err(m))
    }
}
