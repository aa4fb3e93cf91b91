//! Moving a deployment from the embedded SQLite database to PostgreSQL
//! (`custos migrate-store`).
//!
//! Every table is copied row by row, column by column, as stored: sealed
//! values are bytes to this module and arrive in PostgreSQL unchanged, so they
//! still open with the same master key and data keys, and the audit ledger's
//! leaves, nodes and head are the same bytes (its root does not change).
//!
//! The source is read in one SQLite read transaction (a consistent snapshot)
//! and the target is written in one PostgreSQL transaction that holds the
//! write lock every Custos transaction takes and first checks that the target
//! is empty: a failure anywhere leaves the target as it was.

use crate::postgres::{PostgresStore, WRITE_LOCK, redact_url};
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};
use futures::TryStreamExt;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, AssertSqlSafe, ConnectOptions, Connection, Row};

/// Bookkeeping tables of each backend's own migrations: not copied (the target
/// has its own, written when its schema was created).
const NOT_COPIED: &[&str] = &["schema_migrations"];

/// PostgreSQL takes at most 65,535 parameters in one statement.
const MAX_PARAMS: usize = 65_535;

/// Rows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// The table.
    pub table: String,
    /// How many rows it holds.
    pub rows: u64,
}

/// Table and column names are built into SQL text here, so only plain
/// lower-case identifiers are accepted (all of Custos' names are).
fn ident(name: &str) -> Result<&str> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(name)
    } else {
        Err(StoreError::Corrupt(format!(
            "unexpected table or column name {name:?}"
        )))
    }
}

/// How a PostgreSQL column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgType {
    Text,
    BigInt,
    Bool,
    Bytes,
}

impl PgType {
    fn from_name(data_type: &str) -> Result<PgType> {
        match data_type {
            "text" | "character varying" => Ok(PgType::Text),
            "bigint" | "integer" | "smallint" => Ok(PgType::BigInt),
            "boolean" => Ok(PgType::Bool),
            "bytea" => Ok(PgType::Bytes),
            other => Err(StoreError::Corrupt(format!(
                "unexpected PostgreSQL column type {other}"
            ))),
        }
    }
}

/// One value on its way, typed for PostgreSQL (a NULL keeps its column's type).
enum Cell {
    Text(Option<String>),
    BigInt(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

fn read_cell(row: &sqlx::sqlite::SqliteRow, i: usize, ty: PgType) -> Result<Cell> {
    // Unchecked: SQLite's declared types are advisory (a BOOLEAN column holds
    // integers); the target column's type decides how the value is read, and
    // SQLite converts where it must. Bytes are read as the bytes stored.
    Ok(match ty {
        PgType::Text => Cell::Text(row.try_get_unchecked(i)?),
        PgType::BigInt => Cell::BigInt(row.try_get_unchecked(i)?),
        PgType::Bool => Cell::Bool(row.try_get_unchecked(i)?),
        PgType::Bytes => Cell::Bytes(row.try_get_unchecked(i)?),
    })
}

fn bind(args: &mut PgArguments, cell: Cell) -> Result<()> {
    let added = match cell {
        Cell::Text(v) => args.add(v),
        Cell::BigInt(v) => args.add(v),
        Cell::Bool(v) => args.add(v),
        Cell::Bytes(v) => args.add(v),
    };
    added.map_err(|e| StoreError::Query(e.to_string()))
}

/// `INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), …` for `rows` rows.
fn insert_sql(table: &str, columns: &[String], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql
}

impl SqliteStore {
    /// Every table that holds Custos data, with its row count.
    pub async fn table_rows(&self) -> Result<Vec<TableRows>> {
        let mut conn = self.pool.acquire().await?;
        sqlite_table_rows(&mut conn).await
    }
}

async fn sqlite_table_rows(conn: &mut sqlx::SqliteConnection) -> Result<Vec<TableRows>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for name in names {
        if NOT_COPIED.contains(&name.as_str()) {
            continue;
        }
        let table = ident(&name)?;
        let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *conn)
            .await?;
        out.push(TableRows {
            table: name,
            rows: rows as u64,
        });
    }
    Ok(out)
}

impl PostgresStore {
    /// Row counts of these tables.
    pub async fn table_rows(&self, tables: &[String]) -> Result<Vec<TableRows>> {
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::new();
        for name in tables {
            let table = ident(name)?;
            let rows: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut *conn)
                    .await?;
            out.push(TableRows {
                table: name.clone(),
                rows: rows as u64,
            });
        }
        Ok(out)
    }

    /// The first table (by name) in the database's schema that holds a row,
    /// if any. It changes nothing: no migration runs, so a database that
    /// belongs to something else is left exactly as it was.
    pub async fn first_table_with_rows(url: &str) -> Result<Option<String>> {
        let mut conn = Self::options(url)?
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        let found = first_nonempty(&mut conn).await;
        conn.close().await?;
        found
    }
}

/// The first non-empty table of the current schema, leaving out the
/// migration bookkeeping (a schema made by Custos holds rows there but no data).
async fn first_nonempty(conn: &mut sqlx::PgConnection) -> Result<Option<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in names {
        if NOT_COPIED.contains(&name.as_str()) {
            continue;
        }
        // A foreign table name is quoted, not refused: this only reads.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let any: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {quoted})"
        )))
        .fetch_one(&mut *conn)
        .await?;
        if any {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Copies every table of `src` into `dst`, whose schema must be current (it
/// is after [`PostgresStore::connect`]) and whose tables must all be empty.
/// Rows go over in batches of up to `batch`; `progress` gets (rows copied,
/// rows in all). Returns the row count of each table copied, checked on the
/// target before the one transaction commits.
pub async fn copy_sqlite_to_postgres(
    src: &SqliteStore,
    dst: &PostgresStore,
    batch: usize,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<TableRows>> {
    let batch = batch.max(1);
    let mut read = src.pool.begin().await?;
    let tables = sqlite_table_rows(&mut read).await?;
    let total: u64 = tables.iter().map(|t| t.rows).sum();

    let mut write = dst.pool.begin().await?;
    // The lock every Custos transaction takes first: a `custos serve` already
    // started on the target waits until the copy is complete.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut *write)
        .await?;
    if let Some(table) = first_nonempty(&mut write).await? {
        return Err(StoreError::Conflict(format!(
            "the PostgreSQL database already holds data (table {table})"
        )));
    }
    progress(0, total);
    let mut copied = 0u64;
    for t in &tables {
        let table = ident(&t.table)?;
        let target: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_all(&mut *write)
        .await?;
        if target.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the PostgreSQL schema has no table {table}"
            )));
        }
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
            .bind(table)
            .fetch_all(&mut *read)
            .await?;
        let mut types = Vec::new();
        for c in &columns {
            ident(c)?;
            let ty = target.iter().find(|(n, _)| n == c).ok_or_else(|| {
                StoreError::Corrupt(format!("the PostgreSQL table {table} has no column {c}"))
            })?;
            types.push(PgType::from_name(&ty.1)?);
        }
        let per_statement = batch.min(MAX_PARAMS / columns.len().max(1)).max(1);
        // One pass over the table in the read snapshot (some tables have
        // no rowid to page by), written in statements of `per_statement`.
        let select = format!("SELECT {} FROM {table}", columns.join(", "));
        let full_insert = insert_sql(table, &columns, per_statement);
        let mut table_rows = 0u64;
        let mut stream = sqlx::query(AssertSqlSafe(select)).fetch(&mut *read);
        let mut rows = Vec::with_capacity(per_statement);
        loop {
            let next = stream.try_next().await?;
            let end = next.is_none();
            rows.extend(next);
            if rows.len() == per_statement || (end && !rows.is_empty()) {
                let mut args = PgArguments::default();
                for row in &rows {
                    for (i, ty) in types.iter().enumerate() {
                        bind(&mut args, read_cell(row, i, *ty)?)?;
                    }
                }
                let sql = if rows.len() == per_statement {
                    full_insert.clone()
                } else {
                    insert_sql(table, &columns, rows.len())
                };
                sqlx::query_with(AssertSqlSafe(sql), args)
                    .execute(&mut *write)
                    .await?;
                table_rows += rows.len() as u64;
                copied += rows.len() as u64;
                progress(copied, total);
                rows.clear();
            }
            if end {
                break;
            }
        }
        drop(stream);
        let landed: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *write)
                .await?;
        if table_rows != t.rows || landed as u64 != t.rows {
            return Err(StoreError::Corrupt(format!(
                "table {table}: {} rows in SQLite, {table_rows} read, {landed} in PostgreSQL; nothing was committed",
                t.rows
            )));
        }
    }
    write.commit().await?;
    read.rollback().await?;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_number_every_parameter() {
        assert_eq!(
            insert_sql("t", &["a".into(), "b".into()], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    #[test]
    fn only_plain_names_are_built_into_sql() {
        assert!(ident("ledger_leaves").is_ok());
        assert!(ident("x; DROP TABLE y").is_err());
        assert!(ident("").is_err());
        assert!(ident("Contacts").is_err());
    }
}
