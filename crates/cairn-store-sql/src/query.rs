//! Statements written once for every dialect: SQL text with `$1, $2, …`
//! placeholders (both SQLite and PostgreSQL read them) and the values bound
//! to them ([`Arg`]); rows come back as the dialect's [`SqlRow`].
//!
//! The shape follows sqlx (`query`, `query_as`, `query_scalar`, `bind`,
//! `fetch_*`), but the values are a closed set of types, so the shared code
//! needs no trait bounds per type and per database: the dialect binds and
//! decodes them with its own sqlx driver ([`Dialect::execute`] and friends).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use crate::dialect::{Conn, Dialect};

/// One value bound to a placeholder. `None` is SQL `NULL` of that type.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    Int64(Option<i64>),
    Int32(Option<i32>),
    Bool(Option<bool>),
    Text(Option<Cow<'a, str>>),
    Bytes(Option<Cow<'a, [u8]>>),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident($v:ident) $e:expr;)*) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from($v: $t) -> Self {
                Arg::$variant($e)
            }
        })*
    };
}

arg_from! {
    i64 => Int64(v) Some(v);
    Option<i64> => Int64(v) v;
    i32 => Int32(v) Some(v);
    Option<i32> => Int32(v) v;
    bool => Bool(v) Some(v);
    Option<bool> => Bool(v) v;
    &'a str => Text(v) Some(Cow::Borrowed(v));
    &'a String => Text(v) Some(Cow::Borrowed(v.as_str()));
    String => Text(v) Some(Cow::Owned(v));
    Option<&'a str> => Text(v) v.map(Cow::Borrowed);
    Option<String> => Text(v) v.map(Cow::Owned);
    &'a Option<String> => Text(v) v.as_deref().map(Cow::Borrowed);
    &'a [u8] => Bytes(v) Some(Cow::Borrowed(v));
    &'a Vec<u8> => Bytes(v) Some(Cow::Borrowed(v.as_slice()));
}

/// A column of a row: by position or by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col<'a> {
    Index(usize),
    Name(&'a str),
}

impl From<usize> for Col<'_> {
    fn from(i: usize) -> Self {
        Col::Index(i)
    }
}

impl<'a> From<&'a str> for Col<'a> {
    fn from(name: &'a str) -> Self {
        Col::Name(name)
    }
}

impl fmt::Display for Col<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Col::Index(i) => write!(f, "{i}"),
            Col::Name(n) => f.write_str(n),
        }
    }
}

/// A result row of a dialect, read as the value types [`Arg`] binds. A
/// column that is `NULL` reads as `None`.
pub trait SqlRow: Send + Sync + 'static {
    fn int64(&self, col: Col<'_>) -> sqlx::Result<Option<i64>>;
    fn int32(&self, col: Col<'_>) -> sqlx::Result<Option<i32>>;
    fn boolean(&self, col: Col<'_>) -> sqlx::Result<Option<bool>>;
    fn text(&self, col: Col<'_>) -> sqlx::Result<Option<String>>;
    fn bytes(&self, col: Col<'_>) -> sqlx::Result<Option<Vec<u8>>>;

    /// The column as a Rust value (`Option<_>` for a nullable column).
    fn get<'c, T: Column>(&self, col: impl Into<Col<'c>>) -> sqlx::Result<T>
    where
        Self: Sized,
    {
        T::read(self, col.into())
    }
}

/// A Rust type a column reads as.
pub trait Column: Sized {
    fn read<R: SqlRow>(row: &R, col: Col<'_>) -> sqlx::Result<Self>;
}

fn not_null<T>(value: Option<T>, col: Col<'_>) -> sqlx::Result<T> {
    value.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(sqlx::error::UnexpectedNullError),
    })
}

macro_rules! column {
    ($($t:ty => $read:ident),*) => {
        $(impl Column for Option<$t> {
            fn read<R: SqlRow>(row: &R, col: Col<'_>) -> sqlx::Result<Self> {
                row.$read(col)
            }
        }
        impl Column for $t {
            fn read<R: SqlRow>(row: &R, col: Col<'_>) -> sqlx::Result<Self> {
                not_null(row.$read(col)?, col)
            }
        })*
    };
}

column!(i64 => int64, i32 => int32, bool => boolean, String => text, Vec<u8> => bytes);

/// A Rust value a whole row reads as: a tuple of [`Column`]s, by position.
pub trait FromRow: Sized {
    fn from_row<R: SqlRow>(row: &R) -> sqlx::Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Column),+> FromRow for ($($t,)+) {
            fn from_row<R: SqlRow>(row: &R) -> sqlx::Result<Self> {
                Ok(($(row.get::<$t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, E 3);
tuple_from_row!(A 0, B 1, C 2, E 3, F 4);
tuple_from_row!(A 0, B 1, C 2, E 3, F 4, G 5, H 6);

/// A statement of dialect `D` and its bound values.
pub struct Query<'a, D> {
    sql: Cow<'a, str>,
    args: Vec<Arg<'a>>,
    dialect: PhantomData<fn() -> D>,
}

/// A statement whose rows read as `T` ([`FromRow`]).
pub struct QueryAs<'a, D, T> {
    query: Query<'a, D>,
    row: PhantomData<fn() -> T>,
}

/// A statement whose rows read as their first column, `T`.
pub struct QueryScalar<'a, D, T> {
    query: Query<'a, D>,
    value: PhantomData<fn() -> T>,
}

/// A statement: `sql` with `$1, $2, …` placeholders, bound in order.
pub fn query<'a, D: Dialect>(sql: impl Into<Cow<'a, str>>) -> Query<'a, D> {
    Query {
        sql: sql.into(),
        args: Vec::new(),
        dialect: PhantomData,
    }
}

/// A statement whose rows read as `T`, a tuple of columns.
pub fn query_as<'a, D: Dialect, T: FromRow>(sql: impl Into<Cow<'a, str>>) -> QueryAs<'a, D, T> {
    QueryAs {
        query: query(sql),
        row: PhantomData,
    }
}

/// A statement whose rows read as their first column.
pub fn query_scalar<'a, D: Dialect, T: Column>(
    sql: impl Into<Cow<'a, str>>,
) -> QueryScalar<'a, D, T> {
    QueryScalar {
        query: query(sql),
        value: PhantomData,
    }
}

impl<'a, D: Dialect> Query<'a, D> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends SQL text (for statements built piece by piece).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(value.into());
        let placeholder = format!("${}", self.args.len());
        self.push(&placeholder)
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn args(&self) -> &[Arg<'a>] {
        &self.args
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute(&self, conn: &mut Conn<D>) -> sqlx::Result<u64> {
        D::execute(conn, self).await
    }

    pub async fn fetch_all(&self, conn: &mut Conn<D>) -> sqlx::Result<Vec<D::Row>> {
        D::fetch_all(conn, self).await
    }

    pub async fn fetch_optional(&self, conn: &mut Conn<D>) -> sqlx::Result<Option<D::Row>> {
        D::fetch_optional(conn, self).await
    }

    /// The first row; `sqlx::Error::RowNotFound` if there is none.
    pub async fn fetch_one(&self, conn: &mut Conn<D>) -> sqlx::Result<D::Row> {
        self.fetch_optional(conn)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

impl<'a, D: Dialect, T: FromRow> QueryAs<'a, D, T> {
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all(&self, conn: &mut Conn<D>) -> sqlx::Result<Vec<T>> {
        let rows = self.query.fetch_all(conn).await?;
        rows.iter().map(T::from_row).collect()
    }

    pub async fn fetch_optional(&self, conn: &mut Conn<D>) -> sqlx::Result<Option<T>> {
        let row = self.query.fetch_optional(conn).await?;
        row.as_ref().map(T::from_row).transpose()
    }

    pub async fn fetch_one(&self, conn: &mut Conn<D>) -> sqlx::Result<T> {
        T::from_row(&self.query.fetch_one(conn).await?)
    }
}

impl<'a, D: Dialect, T: Column> QueryScalar<'a, D, T> {
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all(&self, conn: &mut Conn<D>) -> sqlx::Result<Vec<T>> {
        let rows = self.query.fetch_all(conn).await?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    pub async fn fetch_optional(&self, conn: &mut Conn<D>) -> sqlx::Result<Option<T>> {
        let row = self.query.fetch_optional(conn).await?;
        row.map(|r| r.get(0)).transpose()
    }

    pub async fn fetch_one(&self, conn: &mut Conn<D>) -> sqlx::Result<T> {
        self.query.fetch_one(conn).await?.get(0)
    }
}
