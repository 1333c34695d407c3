//! Compiles JsonLogic (with flagd's custom operations) into an [`Expr`] tree, once.
//!
//! `$ref`s are inlined, constants are pre-converted, constant `sem_ver` operands are
//! pre-parsed, constant `fractional` weights are pre-summed and constants in result positions
//! are pre-resolved to variants, so evaluation does no parsing.
//!
//! Only what flagd refuses is a [`ParseError`] (unknown operations, rule objects without
//! exactly one operator, …). A custom operation whose arguments cannot work (wrong count,
//! constant operands of the wrong type, an unknown `sem_ver` operator, all-zero weights)
//! compiles to `null`, as flagd evaluates it, and is reported as a [`RawWarning`]; a `$ref` to
//! a missing evaluator (or a `$ref` cycle) compiles too, marks the flag broken (every
//! evaluation is PARSE_ERROR, as in flagd) and is reported.

use serde_json::{Map, Value};

use crate::error::{push_escaped, ParseError};
use crate::fractional::{self, Bucket, Fractional, Weight, MAX_TOTAL_WEIGHT};
use crate::semver::{self, OwnedVersion, SemVerOp};
use crate::value::Val;
use crate::warning::{RawWarning, WarningCode};

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

/// JavaScript `String(c)` of a constant.
fn const_text(c: &Const) -> String {
    match c {
        Const::Null => "null".to_owned(),
        Const::Bool(b) => b.to_string(),
        Const::Num(n) => crate::value::js_number_to_string(*n),
        Const::Str(s) => s.to_string(),
        Const::Json(v) => Val::from_json(v).to_js_string().into_owned(),
    }
}

/// Whether a value is compiled where its result names the flag's variant (the whole rule,
/// the branches of an `if` in such a position, the buckets of a `fractional` in one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pos {
    Value,
    Result,
}

const NULL: Expr = Expr::Const(Const::Null);

/// Compilation state: the evaluators for `$ref`, the flag's variants, the current JSON
/// pointer, the `$ref`s being inlined, and what was found on the way.
pub(crate) struct Compiler<'e> {
    evaluators: &'e Map<String, Value>,
    /// The key of the flag being compiled (`$flagd.flagKey`).
    flag_key: &'e str,
    /// The flag's variants, sorted by name (empty when compiling an evaluator on its own).
    variants: &'e [(Box<str>, Value)],
    path: Vec<String>,
    /// Evaluators being inlined, outermost first, with the length of `path` at their `$ref`.
    frames: Vec<(String, usize)>,
    /// Names of the evaluators whose bodies are being compiled (for cycles).
    visiting: Vec<String>,
    /// Whether errors inside inlined evaluators point at their place under `/$evaluators`
    /// (when compiling a whole document) rather than at the `$ref`.
    document_pointers: bool,
    /// How many `map`/`filter`/`all`/`some`/`none`/`reduce` bodies enclose the current value
    /// (inside one, `var` reads the element, not the data).
    item_scopes: usize,
    pub(crate) warnings: Vec<RawWarning>,
    /// Set by a `$ref` that cannot be resolved: every evaluation is PARSE_ERROR.
    pub(crate) broken: Option<String>,
}

fn pointer_of(segments: &[String]) -> String {
    let mut p = String::new();
    for s in segments {
        p.push('/');
        push_escaped(&mut p, s);
    }
    p
}

impl<'e> Compiler<'e> {
    pub(crate) fn new(
        evaluators: &'e Map<String, Value>,
        flag_key: &'e str,
        variants: &'e [(Box<str>, Value)],
        base: &[&str],
    ) -> Self {
        Self {
            evaluators,
            flag_key,
            variants,
            path: base.iter().map(|s| (*s).to_owned()).collect(),
            frames: Vec::new(),
            visiting: Vec::new(),
            document_pointers: false,
            item_scopes: 0,
            warnings: Vec::new(),
            broken: None,
        }
    }

    /// A compiler for evaluator `name` on its own (pointers start at `/$evaluators/<name>`).
    pub(crate) fn for_evaluator(evaluators: &'e Map<String, Value>, name: &str) -> Self {
        let mut c = Self::new(evaluators, "", &[], &["$evaluators", name]);
        c.visiting.push(name.to_owned());
        c.document_pointers = true;
        c
    }

    /// The pointer relative to the compiled value, up to the outermost `$ref` being inlined.
    fn outer_pointer(&self) -> String {
        let end = self.frames.first().map_or(self.path.len(), |f| f.1);
        pointer_of(&self.path[..end])
    }

    /// The innermost evaluator being inlined and the pointer inside it.
    fn inner(&self) -> Option<(String, String)> {
        self.frames
            .last()
            .map(|(name, start)| (name.clone(), pointer_of(&self.path[*start..])))
    }

    pub(crate) fn err(&self, message: impl Into<String>) -> ParseError {
        let mut message = message.into();
        if let (true, Some((name, p))) = (self.document_pointers, self.inner()) {
            return ParseError::new(crate::warning::evaluator_pointer(&name, &p), message);
        }
        if let Some((name, p)) = self.inner() {
            message.push_str(&format!(
                " (in evaluator `{name}`, at {})",
                crate::warning::evaluator_pointer(&name, &p)
            ));
        }
        ParseError::new(self.outer_pointer(), message)
    }

    fn warn(&mut self, code: WarningCode, message: impl Into<String>) {
        let w = RawWarning {
            code,
            outer: self.outer_pointer(),
            inner: self.inner(),
            message: message.into(),
        };
        self.warnings.push(w);
    }

    fn warn_at(&mut self, seg: impl ToString, code: WarningCode, message: impl Into<String>) {
        self.path.push(seg.to_string());
        self.warn(code, message);
        self.path.pop();
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

    fn find_variant(&self, name: &str) -> Option<usize> {
        self.variants
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
    }

    /// Compiles one JsonLogic value.
    pub(crate) fn compile(&mut self, v: &Value, pos: Pos) -> Result<Expr, ParseError> {
        if self.path.len() + self.frames.len() * 8 > MAX_DEPTH {
            return Err(self.err(format!("rule is nested deeper than {MAX_DEPTH} levels")));
        }
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.at(i, |c| c.compile(item, Pos::Value))?);
                }
                if pos == Pos::Result {
                    self.warn(
                        WarningCode::UnknownVariant,
                        "targeting can return an array here, which is not a variant name",
                    );
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
                self.at(op, |c| c.compile_op(op, arg, pos))
            }
            scalar => {
                let c = const_of(scalar);
                Ok(match pos {
                    Pos::Value => Expr::Const(c),
                    Pos::Result => self.result_const(c),
                })
            }
        }
    }

    /// A constant the targeting returns: pre-resolved to its variant, or reported when it can
    /// name none (it is then an error at evaluation, as in flagd).
    fn result_const(&mut self, c: Const) -> Expr {
        let (name, is_bool): (&str, bool) = match &c {
            Const::Null => return Expr::Const(c),
            Const::Str(s) => (s, false),
            Const::Bool(true) => ("true", true),
            Const::Bool(false) => ("false", true),
            Const::Num(n) => {
                let n = *n;
                self.warn(
                    WarningCode::UnknownVariant,
                    format!("targeting can return the number {n}, which is not a variant name"),
                );
                return Expr::Const(c);
            }
            Const::Json(_) => {
                self.warn(
                    WarningCode::UnknownVariant,
                    "targeting can return an array here, which is not a variant name",
                );
                return Expr::Const(c);
            }
        };
        match self.find_variant(name).and_then(|i| u32::try_from(i).ok()) {
            Some(i) => Expr::Variant(i, name.into()),
            None => {
                let message = if is_bool {
                    format!(
                        "targeting can return {name}, but the flag has no variant named \"{name}\""
                    )
                } else {
                    format!("targeting can return `{name}`, which is not a variant of this flag")
                };
                self.warn(WarningCode::UnknownVariant, message);
                Expr::Const(c)
            }
        }
    }

    /// Compiles the arguments of an operation (a non-array argument is a single argument).
    fn args(&mut self, arg: &Value) -> Result<Vec<Expr>, ParseError> {
        match arg {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.at(i, |c| c.compile(item, Pos::Value))?);
                }
                Ok(out)
            }
            single => Ok(vec![self.compile(single, Pos::Value)?]),
        }
    }

    /// The arguments of an array operation: the second (the body run per element) reads the
    /// element with `var`.
    fn scoped_args(&mut self, arg: &Value) -> Result<Vec<Expr>, ParseError> {
        let Value::Array(items) = arg else {
            return self.args(arg);
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let body = usize::from(i == 1);
            self.item_scopes += body;
            let e = self.at(i, |c| c.compile(item, Pos::Value));
            self.item_scopes -= body;
            out.push(e?);
        }
        Ok(out)
    }

    fn scoped_two(&mut self, arg: &Value) -> Result<Box<[Expr; 2]>, ParseError> {
        let mut a = self.scoped_args(arg)?.into_iter();
        let x = a.next().unwrap_or(NULL);
        let y = a.next().unwrap_or(NULL);
        Ok(Box::new([x, y]))
    }

    fn two(&mut self, arg: &Value) -> Result<Box<[Expr; 2]>, ParseError> {
        let mut a = self.args(arg)?.into_iter();
        let x = a.next().unwrap_or(NULL);
        let y = a.next().unwrap_or(NULL);
        Ok(Box::new([x, y]))
    }

    fn one(&mut self, arg: &Value, pos: Pos) -> Result<Box<Expr>, ParseError> {
        let first = match arg {
            Value::Array(items) => match items.first() {
                Some(item) => {
                    let e = self.at(0, |c| c.compile(item, pos))?;
                    for (i, item) in items.iter().enumerate().skip(1) {
                        self.at(i, |c| c.compile(item, Pos::Value))?;
                    }
                    e
                }
                None => NULL,
            },
            single => self.compile(single, pos)?,
        };
        Ok(Box::new(first))
    }

    fn exactly<const N: usize>(&mut self, op: &str, arg: &Value) -> Result<[Expr; N], ParseError> {
        let a = self.args(arg)?;
        let n = a.len();
        a.try_into()
            .map_err(|_| self.err(format!("`{op}` takes exactly {N} arguments, found {n}")))
    }

    /// `if`: conditions are values, branches inherit the position.
    fn compile_if(&mut self, arg: &Value, pos: Pos) -> Result<Expr, ParseError> {
        let items: &[Value] = match arg {
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        let n = items.len();
        let is_array = arg.is_array();
        let mut out = Vec::with_capacity(n);
        for (i, item) in items.iter().enumerate() {
            let p = if i % 2 == 1 || i + 1 == n {
                pos
            } else {
                Pos::Value
            };
            out.push(if is_array {
                self.at(i, |c| c.compile(item, p))?
            } else {
                self.compile(item, p)?
            });
        }
        Ok(Expr::If(out.into()))
    }

    fn compile_op(&mut self, op: &str, arg: &Value, pos: Pos) -> Result<Expr, ParseError> {
        Ok(match op {
            "$ref" => return self.compile_ref(arg, pos),
            "var" => self.compile_var(arg)?,
            "missing" => Expr::Missing(self.args(arg)?.into()),
            "missing_some" => Expr::MissingSome(self.exactly::<2>(op, arg)?.into()),
            "if" | "?:" => self.compile_if(arg, pos)?,
            "or" => Expr::Or(self.args(arg)?.into()),
            "and" => Expr::And(self.args(arg)?.into()),
            "!" => Expr::Not(self.one(arg, Pos::Value)?),
            "!!" => Expr::Truthy(self.one(arg, Pos::Value)?),
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
            "map" => Expr::ArrayOp(ArrayOp::Map, self.scoped_two(arg)?),
            "filter" => Expr::ArrayOp(ArrayOp::Filter, self.scoped_two(arg)?),
            "all" => Expr::ArrayOp(ArrayOp::All, self.scoped_two(arg)?),
            "some" => Expr::ArrayOp(ArrayOp::Some, self.scoped_two(arg)?),
            "none" => Expr::ArrayOp(ArrayOp::None, self.scoped_two(arg)?),
            "reduce" => {
                let mut a = self.scoped_args(arg)?.into_iter();
                let x = a.next().unwrap_or(NULL);
                let y = a.next().unwrap_or(NULL);
                let z = a.next().unwrap_or(NULL);
                Expr::Reduce(Box::new([x, y, z]))
            }
            "starts_with" | "ends_with" => self.compile_affix(op, arg)?,
            "sem_ver" => self.compile_sem_ver(arg)?,
            "fractional" => self.compile_fractional(arg, pos)?,
            "fractionalEvaluation" => {
                return Err(self.err(
                    "the legacy `fractionalEvaluation` operation is not supported; use `fractional` with {\"var\": …} as its first argument",
                ))
            }
            // `log` evaluates to its argument (a library has no console).
            "log" => *self.one(arg, pos)?,
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

    fn compile_ref(&mut self, arg: &Value, pos: Pos) -> Result<Expr, ParseError> {
        let Some(name) = arg.as_str() else {
            return Err(self.err("`$ref` must name an evaluator with a string"));
        };
        let (code, problem) = match self.evaluators.get(name) {
            None => (
                WarningCode::MissingRef,
                format!("`$ref` names an unknown evaluator `{name}`"),
            ),
            Some(_) if self.visiting.iter().any(|r| r == name) => (
                WarningCode::RefCycle,
                format!("`$ref` cycle through evaluator `{name}`"),
            ),
            Some(body) => {
                self.frames.push((name.to_owned(), self.path.len()));
                self.visiting.push(name.to_owned());
                let r = self.compile(body, pos);
                self.visiting.pop();
                self.frames.pop();
                return r;
            }
        };
        self.warn(
            code,
            format!("{problem}: every evaluation of the flag is an error (PARSE_ERROR)"),
        );
        if self.broken.is_none() {
            self.broken = Some(format!("{problem} (at {})", self.outer_pointer()));
        }
        Ok(NULL)
    }

    fn compile_var(&mut self, arg: &Value) -> Result<Expr, ParseError> {
        let mut args = self.args(arg)?.into_iter();
        let path = args.next().unwrap_or(NULL);
        let default = args.next().map(Box::new);
        let Some(p) = path.as_const().map(|c| match c {
            Const::Null => String::new(),
            other => const_text(other),
        }) else {
            return Ok(Expr::VarDyn {
                path: Box::new(path),
                default,
            });
        };
        if default.is_none() {
            match p.as_str() {
                "$flagd.flagKey" => return Ok(Expr::FlagKey),
                "$flagd.timestamp" => return Ok(Expr::Timestamp),
                // flagd replaces any caller-supplied `$flagd`, so other members are absent
                // (evaluation shadows it; inside `map` & co `var` reads the element instead).
                _ if self.item_scopes == 0
                    && p.starts_with("$flagd.")
                    && !p["$flagd.".len()..].contains('.') =>
                {
                    self.warn(
                        WarningCode::InvalidOperand,
                        format!("flagd supplies only `$flagd.flagKey` and `$flagd.timestamp`; `{p}` always reads null"),
                    );
                    return Ok(NULL);
                }
                _ => {}
            }
        }
        let segments: Box<[Box<str>]> = if p.is_empty() {
            Box::new([])
        } else {
            p.split('.').map(Box::from).collect()
        };
        if let ([one], None) = (&segments[..], &default) {
            if one.as_ref() != "$flagd" {
                return Ok(Expr::VarTop(one.clone()));
            }
        }
        Ok(Expr::Var {
            path: segments,
            default,
        })
    }

    /// `starts_with` / `ends_with`: two operands that must be strings, else `null`.
    fn compile_affix(&mut self, op: &str, arg: &Value) -> Result<Expr, ParseError> {
        let args = match <[Expr; 2]>::try_from(self.args(arg)?) {
            Ok(args) => args,
            Err(args) => {
                self.warn(
                    WarningCode::ArgumentCount,
                    format!(
                        "`{op}` takes 2 arguments, found {}; it always yields null",
                        args.len()
                    ),
                );
                return Ok(NULL);
            }
        };
        let mut usable = true;
        for (i, a) in args.iter().enumerate() {
            if let Some(c) = a.as_const() {
                if !matches!(c, Const::Str(_)) {
                    self.warn_at(
                        i,
                        WarningCode::InvalidOperand,
                        format!("`{op}` compares strings; this constant is not one, so it always yields null"),
                    );
                    usable = false;
                }
            }
        }
        if !usable {
            return Ok(NULL);
        }
        let prefix = op == "starts_with";
        if let [subject, Expr::Const(Const::Str(affix))] = args {
            return Ok(Expr::StrAffix {
                subject: Box::new(subject),
                affix,
                prefix,
            });
        }
        Ok(if prefix {
            Expr::StartsWith(Box::new(args))
        } else {
            Expr::EndsWith(Box::new(args))
        })
    }

    fn compile_sem_ver(&mut self, arg: &Value) -> Result<Expr, ParseError> {
        let [l, o, r] = match <[Expr; 3]>::try_from(self.args(arg)?) {
            Ok(args) => args,
            Err(args) => {
                self.warn(
                    WarningCode::ArgumentCount,
                    format!("`sem_ver` takes 3 arguments (version, operator, version), found {}; it always yields null", args.len()),
                );
                return Ok(NULL);
            }
        };
        let mut usable = true;
        let mut version = |c: &mut Self, i: usize, e: Expr| -> Option<SemVerArg> {
            let text = match e.as_const() {
                None => return Some(SemVerArg::Expr(e)),
                Some(Const::Str(s)) => s.to_string(),
                Some(Const::Num(n)) if n.is_finite() => crate::value::js_number_to_string(*n),
                Some(_) => {
                    c.warn_at(
                        i,
                        WarningCode::InvalidOperand,
                        "a `sem_ver` version must be a string; this constant always yields null",
                    );
                    usable = false;
                    return None;
                }
            };
            match semver::parse(&text) {
                Some(v) => Some(SemVerArg::Const(v.to_owned_version())),
                None => {
                    c.warn_at(
                        i,
                        WarningCode::InvalidOperand,
                        format!(
                            "`{text}` is not a semantic version; the operation always yields null"
                        ),
                    );
                    usable = false;
                    None
                }
            }
        };
        let left = version(self, 0, l);
        let right = version(self, 2, r);
        let op = match o.as_const() {
            None => Some(SemVerOpArg::Expr(o)),
            Some(Const::Str(s)) => match SemVerOp::parse(s) {
                Some(op) => Some(SemVerOpArg::Const(op)),
                None => {
                    self.warn_at(
                        1,
                        WarningCode::UnknownOperator,
                        format!("unknown `sem_ver` operator `{s}` (use one of = != < <= > >= ~ ^); the operation always yields null"),
                    );
                    None
                }
            },
            Some(_) => {
                self.warn_at(
                    1,
                    WarningCode::UnknownOperator,
                    "the `sem_ver` operator must be a string (one of = != < <= > >= ~ ^); the operation always yields null",
                );
                None
            }
        };
        Ok(match (left, op, right) {
            (Some(left), Some(op), Some(right)) if usable => {
                Expr::SemVer(Box::new(SemVerExpr { left, op, right }))
            }
            _ => NULL,
        })
    }

    /// `fractional`: `[bucketing expression?, [variant, weight?], …]`. Anything flagd cannot
    /// bucket with compiles to `null` (reported); constant weights are checked and summed.
    fn compile_fractional(&mut self, arg: &Value, pos: Pos) -> Result<Expr, ParseError> {
        let items: &[Value] = match arg {
            Value::Array(a) => a,
            single => std::slice::from_ref(single),
        };
        let seg = |i: usize| -> Option<usize> { arg.is_array().then_some(i) };
        let mut usable = true;
        let (bucket_by, first) = match items.first() {
            Some(Value::Array(_)) | None => (None, 0),
            Some(e) => {
                let b = match seg(0) {
                    Some(i) => self.at(i, |c| c.compile(e, Pos::Value))?,
                    None => self.compile(e, Pos::Value)?,
                };
                match b.as_const() {
                    // A constant null bucketing value means the default one.
                    Some(Const::Null) => (None, 1),
                    Some(Const::Str(_)) | None => (Some(b), 1),
                    Some(_) => {
                        let message = "the `fractional` bucketing value must be a string; this constant always yields null";
                        match seg(0) {
                            Some(i) => self.warn_at(i, WarningCode::InvalidOperand, message),
                            None => self.warn(WarningCode::InvalidOperand, message),
                        }
                        usable = false;
                        (None, 1)
                    }
                }
            }
        };
        if items.len() <= first {
            self.warn(
                WarningCode::ArgumentCount,
                "`fractional` needs at least one bucket [variant, weight]; it always yields null",
            );
            return Ok(NULL);
        }
        let mut buckets = Vec::with_capacity(items.len() - first);
        let mut negative = false;
        for (i, item) in items.iter().enumerate().skip(first) {
            match self.at(i, |c| c.compile_bucket(item, pos))? {
                Some((b, was_negative)) => {
                    negative |= was_negative;
                    buckets.push(b);
                }
                None => usable = false,
            }
        }
        if !usable {
            return Ok(NULL);
        }
        let constant_weights: Option<Vec<u64>> = buckets
            .iter()
            .map(|b| match b.weight {
                Weight::Const(w) => Some(w),
                Weight::Expr(_) => None,
            })
            .collect();
        let cumulative = if let Some(weights) = constant_weights {
            match fractional::cumulate(weights.into_iter()) {
                None => {
                    self.warn(
                        WarningCode::WeightOverflow,
                        format!("the `fractional` weights add up to more than {MAX_TOTAL_WEIGHT}; it always yields null"),
                    );
                    return Ok(NULL);
                }
                Some(c) if c.last().copied().unwrap_or(0) == 0 => {
                    self.warn(
                        WarningCode::ZeroWeights,
                        if negative {
                            "every `fractional` weight is 0 (negative weights count as 0); it always yields null"
                        } else {
                            "every `fractional` weight is 0; it always yields null"
                        },
                    );
                    return Ok(NULL);
                }
                Some(c) => Some(c),
            }
        } else {
            None
        };
        Ok(Expr::Fractional(Box::new(Fractional::new(
            bucket_by,
            buckets,
            cumulative,
            self.flag_key,
        ))))
    }

    /// One `[variant, weight?]` bucket (at the current path), and whether its constant weight
    /// is negative; `None` when it can never work.
    fn compile_bucket(
        &mut self,
        item: &Value,
        pos: Pos,
    ) -> Result<Option<(Bucket, bool)>, ParseError> {
        let parts = match item {
            Value::Array(parts) if !parts.is_empty() => parts,
            _ => {
                // Still compiled, so that what flagd refuses inside is refused.
                self.compile(item, Pos::Value)?;
                self.warn(
                    WarningCode::InvalidOperand,
                    "a `fractional` bucket must be an array [variant, weight]; the operation always yields null",
                );
                return Ok(None);
            }
        };
        // A constant array is no variant at all: reported below, not as a result.
        let variant_pos = if parts[0].is_array() { Pos::Value } else { pos };
        let variant = self.at(0, |c| c.compile(&parts[0], variant_pos))?;
        // flagd ignores elements after the weight; they are still checked.
        for (j, extra) in parts.iter().enumerate().skip(2) {
            self.at(j, |c| c.compile(extra, Pos::Value))?;
        }
        let mut usable = true;
        let mut negative = false;
        if let Some(Const::Json(_)) = variant.as_const() {
            self.warn_at(
                0,
                WarningCode::InvalidOperand,
                "a bucket variant must be a string, boolean, number or null; the operation always yields null",
            );
            usable = false;
        }
        let weight = match parts.get(1) {
            None => Weight::Const(1),
            Some(w) => {
                let e = self.at(1, |c| c.compile(w, Pos::Value))?;
                match e.as_const() {
                    None => Weight::Expr(e),
                    Some(Const::Null) => Weight::Const(1),
                    Some(Const::Num(n)) => match fractional::weight_of_number(*n) {
                        Some(w) => {
                            if *n < 0.0 {
                                negative = true;
                                self.warn_at(
                                    1,
                                    WarningCode::NegativeWeight,
                                    format!("the `fractional` weight {n} is negative and counts as 0: this bucket is never chosen"),
                                );
                            }
                            Weight::Const(w)
                        }
                        None => {
                            let n = *n;
                            self.warn_at(
                                1,
                                WarningCode::InvalidOperand,
                                format!("a `fractional` weight must be a whole number up to {MAX_TOTAL_WEIGHT}, found {n}; the operation always yields null"),
                            );
                            usable = false;
                            Weight::Const(0)
                        }
                    },
                    Some(_) => {
                        self.warn_at(
                            1,
                            WarningCode::InvalidOperand,
                            "a `fractional` weight must be a number; the operation always yields null",
                        );
                        usable = false;
                        Weight::Const(0)
                    }
                }
            }
        };
        Ok(usable.then_some((Bucket { variant, weight }, negative)))
    }
}
