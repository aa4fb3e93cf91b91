//! What a backend must do for statements written once: run one, and read
//! rows as [`SqlValue`]s of the types asked for. Everything else about a
//! backend (connections, locks, WAL, typed NULLs) stays in its module.
//!
//! Statements written once use `$N` placeholders, which PostgreSQL reads
//! natively and sqlx-sqlite maps to the N-th bind value as well; each bind
//! value carries its column's type (see [`Query::text`] and the rest), so
//! PostgreSQL receives a NULL with the right type.
//!
//! The per-concern store traits ([`crate::SettingsTx`],
//! [`crate::IdentityTx`]) are implemented once for every [`Exec`]: a new
//! store method of theirs is one function, not one per backend.

use crate::sql::Query;
use crate::{ColumnType, Result, SqlValue, StoreError};
use async_trait::async_trait;
use futures::future::BoxFuture;
use uuid::Uuid;

/// Runs written-once statements on one backend's transaction.
#[async_trait]
pub trait Exec: Send {
    /// Runs a statement; returns how many rows it changed.
    async fn execute(&mut self, q: Query) -> Result<u64>;

    /// Runs a query; each row's columns decoded as `types`, in order.
    async fn fetch(&mut self, q: Query, types: &[ColumnType]) -> Result<Vec<Row>>;

    /// The first row of a query, if any.
    async fn fetch_optional(&mut self, q: Query, types: &[ColumnType]) -> Result<Option<Row>> {
        Ok(self.fetch(q, types).await?.into_iter().next())
    }
}

/// A row read through [`Exec`]: its columns as values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    fn at(&self, i: usize) -> Result<&SqlValue> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("row has no column {i}")))
    }

    fn wrong(i: usize, what: &str) -> StoreError {
        StoreError::Corrupt(format!("column {i} is not {what}"))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s.clone())),
            _ => Err(Self::wrong(i, "text")),
        }
    }

    /// A text column.
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| Self::wrong(i, "text"))
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Int(n) => Ok(Some(*n)),
            _ => Err(Self::wrong(i, "an integer")),
        }
    }

    /// An integer column.
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| Self::wrong(i, "an integer"))
    }

    /// A bytes column that may be NULL.
    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.at(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Blob(b) => Ok(Some(b.clone())),
            _ => Err(Self::wrong(i, "bytes")),
        }
    }

    /// A bytes column.
    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_blob(i)?.ok_or_else(|| Self::wrong(i, "bytes"))
    }

    /// A UUID kept as text, that may be NULL.
    pub fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
        self.opt_text(i)?
            .map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt("bad uuid".into())))
            .transpose()
    }

    /// A UUID kept as text; `what` names it in the error.
    pub fn uuid(&self, i: usize, what: &str) -> Result<Uuid> {
        self.opt_uuid(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("{what} missing")))
    }
}

impl Query {
    /// A statement written once for every backend, with `$N` placeholders;
    /// bind its values in order with [`Query::text`] and the rest.
    pub fn written(sql: impl Into<String>) -> Query {
        let mut q = Query::new_postgres();
        q.sql = sql.into();
        q
    }

    fn with(mut self, v: SqlValue, ty: ColumnType) -> Query {
        self.push_typed(v, ty);
        self
    }

    /// Binds a text value.
    pub fn text(self, v: &str) -> Query {
        self.with(SqlValue::Text(v.to_string()), ColumnType::Text)
    }

    /// Binds a text value or a text NULL.
    pub fn opt_text(self, v: Option<&str>) -> Query {
        let v = v.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_string()));
        self.with(v, ColumnType::Text)
    }

    /// Binds a UUID (kept as text).
    pub fn uuid(self, v: Uuid) -> Query {
        self.with(SqlValue::Text(v.to_string()), ColumnType::Text)
    }

    /// Binds a UUID or a text NULL.
    pub fn opt_uuid(self, v: Option<Uuid>) -> Query {
        let v = v.map_or(SqlValue::Null, |u| SqlValue::Text(u.to_string()));
        self.with(v, ColumnType::Text)
    }

    /// Binds an integer.
    pub fn int(self, v: i64) -> Query {
        self.with(SqlValue::Int(v), ColumnType::Int)
    }

    /// Binds an integer or an integer NULL.
    pub fn opt_int(self, v: Option<i64>) -> Query {
        self.with(v.map_or(SqlValue::Null, SqlValue::Int), ColumnType::Int)
    }

    /// Binds bytes.
    pub fn blob(self, v: &[u8]) -> Query {
        self.with(SqlValue::Blob(v.to_vec()), ColumnType::Blob)
    }

    /// Binds bytes or a bytes NULL.
    pub fn opt_blob(self, v: Option<&[u8]>) -> Query {
        let v = v.map_or(SqlValue::Null, |b| SqlValue::Blob(b.to_vec()));
        self.with(v, ColumnType::Blob)
    }
}

/// Whether a statement is worth keeping prepared: those of one or a few
/// records recur with the same text; big batches (hundreds of bind values)
/// differ in length every time and would only push useful statements out
/// of the cache.
pub(crate) fn keep_prepared(q: &Query) -> bool {
    q.binds.len() <= 256
}

/// A sqlx database the written-once statements run on: each backend's
/// impl is two calls to the generic [`execute_on`] and [`fetch_on`], so
/// statements bind, run and decode the same way on both.
pub(crate) trait Driver: sqlx::Database {
    /// Runs a statement; returns how many rows it changed.
    fn execute(conn: &mut Self::Connection, q: Query) -> BoxFuture<'_, Result<u64>>;

    /// Runs a query, each row decoded as `types`.
    fn fetch<'a>(
        conn: &'a mut Self::Connection,
        q: Query,
        types: &'a [ColumnType],
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
}

impl Driver for sqlx::Sqlite {
    fn execute(conn: &mut Self::Connection, q: Query) -> BoxFuture<'_, Result<u64>> {
        Box::pin(execute_on(
            conn,
            q,
            sqlx::sqlite::SqliteQueryResult::rows_affected,
        ))
    }
    fn fetch<'a>(
        c: &'a mut Self::Connection,
        q: Query,
        t: &'a [ColumnType],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(fetch_on(c, q, t))
    }
}

impl Driver for sqlx::Postgres {
    fn execute(conn: &mut Self::Connection, q: Query) -> BoxFuture<'_, Result<u64>> {
        Box::pin(execute_on(
            conn,
            q,
            sqlx::postgres::PgQueryResult::rows_affected,
        ))
    }
    fn fetch<'a>(
        c: &'a mut Self::Connection,
        q: Query,
        t: &'a [ColumnType],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(fetch_on(c, q, t))
    }
}

/// Runs a statement on a connection; returns how many rows it changed
/// (`changed` reads that from the backend's result). Statements of one or
/// a few records stay prepared ([`keep_prepared`]).
async fn execute_on<'c, DB, E>(
    conn: E,
    q: Query,
    changed: fn(&DB::QueryResult) -> u64,
) -> Result<u64>
where
    DB: Binds + sqlx::database::HasStatementCache,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: sqlx::Executor<'c, Database = DB>,
{
    let keep = keep_prepared(&q);
    let done = DB::bind_typed(q).persistent(keep).execute(conn).await?;
    Ok(changed(&done))
}

/// Runs a query on a connection, each row decoded as `types`.
async fn fetch_on<'c, DB, E>(conn: E, q: Query, types: &[ColumnType]) -> Result<Vec<Row>>
where
    DB: Binds + Decodes + sqlx::database::HasStatementCache,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: sqlx::Executor<'c, Database = DB>,
{
    let keep = keep_prepared(&q);
    let rows = DB::bind_typed(q).persistent(keep).fetch_all(conn).await?;
    rows.iter().map(|r| DB::decode_row(r, types)).collect()
}

/// A database that takes every value a written-once statement binds: the
/// encoding bounds stated once, here.
trait Binds: sqlx::Database {
    /// Binds a statement's values in order, each NULL with its column's type.
    fn bind_typed(q: Query) -> sqlx::query::Query<'static, Self, Self::Arguments>;
}

impl<DB> Binds for DB
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> bool: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Vec<u8>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<bool>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<Vec<u8>>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    fn bind_typed(q: Query) -> sqlx::query::Query<'static, DB, DB::Arguments> {
        let types: Vec<ColumnType> = (0..q.binds.len()).map(|i| q.type_of(i)).collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.sql));
        for (v, ty) in q.binds.into_iter().zip(types) {
            query = match v {
                SqlValue::Null => match ty {
                    ColumnType::Text => query.bind(Option::<String>::None),
                    ColumnType::Int => query.bind(Option::<i64>::None),
                    ColumnType::Bool => query.bind(Option::<bool>::None),
                    ColumnType::Blob => query.bind(Option::<Vec<u8>>::None),
                },
                SqlValue::Text(s) => query.bind(s),
                SqlValue::Int(i) => query.bind(i),
                SqlValue::Bool(b) => query.bind(b),
                SqlValue::Blob(b) => query.bind(b),
            };
        }
        query
    }
}

/// A database whose rows the written-once queries read: the decoding
/// bounds stated once, here.
trait Decodes: sqlx::Database {
    /// A row as values of the types asked for: the one decoder both
    /// backends use.
    fn decode_row(row: &Self::Row, types: &[ColumnType]) -> Result<Row>;
}

impl<DB> Decodes for DB
where
    DB: sqlx::Database,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> Option<String>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<i64>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<bool>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    fn decode_row(row: &DB::Row, types: &[ColumnType]) -> Result<Row> {
        use sqlx::Row as _;
        let mut out = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            let v = match ty {
                ColumnType::Text => row.try_get::<Option<String>, _>(i)?.map(SqlValue::Text),
                ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map(SqlValue::Int),
                ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(SqlValue::Bool),
                ColumnType::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(SqlValue::Blob),
            };
            out.push(v.unwrap_or(SqlValue::Null));
        }
        Ok(Row(out))
    }
}
