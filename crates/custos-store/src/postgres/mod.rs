//! PostgreSQL, for teams that outgrow one machine: the same schema and the same
//! guarantees as the embedded SQLite store, and several `custos serve` processes
//! may share one database.
//!
//! # One writer at a time
//!
//! Every use case appends to the audit ledger, and an append reads the ledger
//! head, adds a leaf and writes the new head: two transactions doing that at
//! once would both append leaf *n*. So every transaction starts by taking one
//! transaction-scoped advisory lock (`pg_advisory_xact_lock`) per database,
//! before it reads anything; the lock is released by COMMIT or ROLLBACK (or the
//! connection dying). This is what SQLite's `BEGIN IMMEDIATE` does, and it
//! holds across processes. Taking it in [`Store::begin`], not lazily before the
//! first ledger read, is the simple correct choice:
//!
//! - no deadlock can form between Custos transactions: the advisory lock is the
//!   first lock each one takes, so none can hold a row lock another waits for
//!   while waiting for the advisory lock itself;
//! - with READ COMMITTED (the default, kept on purpose), each statement sees
//!   everything committed before it started, so after the lock is granted the
//!   transaction sees the previous holder's head. (REPEATABLE READ would take
//!   its snapshot at the lock statement, before the wait ended.)
//! - it costs little: nearly every use case writes a leaf anyway (reads are
//!   audited too), so the ledger serialises them whatever the lock's scope.

use crate::migrations;
use crate::sql::Dialect;
use crate::tx::{Backend, StoreTx};
use crate::{Result, Store, StoreError, Tx};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool, Postgres, Transaction};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The version the newest migration brings the schema to.
fn latest_version() -> i64 {
    migrations::latest()
}

/// Advisory-lock key serialising Custos transactions (ASCII "custosTx").
/// Advisory locks are per database, so databases on one cluster do not contend.
pub(crate) const WRITE_LOCK: i64 = 0x6375_7374_6f73_5478;
/// Advisory-lock key serialising migrations of processes starting together
/// (ASCII "custosMg").
const MIGRATION_LOCK: i64 = 0x6375_7374_6f73_4d67;

/// Connections per process unless told otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

const D: Dialect = Dialect::Postgres;

/// PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects to the database named by a `postgres://` URL (which must exist)
    /// and runs pending migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        Self::connect_with(url, DEFAULT_POOL_SIZE).await
    }

    /// Like [`PostgresStore::connect`], with at most `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<PostgresStore> {
        let opts = Self::options(url)?;
        // One connection first: a wrong host, user or database is reported as
        // such, not as a pool timeout.
        let probe = opts
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        probe.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) fn options(url: &str) -> Result<PgConnectOptions> {
        if !is_postgres_url(url) {
            return Err(StoreError::UnsupportedUrl);
        }
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(url))))?;
        Ok(opts
            .application_name("custos")
            // The store's LIKE patterns escape with a single backslash: make sure
            // '\' in SQL text is one backslash (the default since 9.1, but a
            // server or role may have turned it off).
            .options([
                ("standard_conforming_strings", "on"),
                // Notices such as "relation already exists, skipping" are not
                // worth a log line.
                ("client_min_messages", "warning"),
            ]))
    }

    async fn migrate(&self) -> Result<()> {
        // One transaction under a lock: several processes starting together on
        // a new database must not both create the tables (DDL is transactional
        // in PostgreSQL, so a failed migration leaves nothing half-done).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let upgrade = migrations::current::<Postgres>(&mut tx).await? > 0;
        for m in migrations::list(D) {
            migrations::apply::<Postgres>(&mut tx, m, upgrade).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64> {
        migrations::current::<Postgres>(&mut *self.pool.acquire().await?).await
    }

    /// Whether the database already holds a Custos installation (its system
    /// keys), as opposed to only the empty schema.
    pub async fn is_initialised(&self) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM secrets)")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Column names of a table, for the schema-versus-inventory test.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Names of the declared indexes of a table, sorted (not those PostgreSQL
    /// makes for primary keys and UNIQUE constraints), for the schema test.
    pub async fn table_indexes(&self, table: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT i.indexname::text FROM pg_indexes i \
             WHERE i.schemaname = current_schema() AND i.tablename = $1 \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                 WHERE c.conindid = to_regclass(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname)) \
                 AND c.contype IN ('p', 'u')) \
             ORDER BY i.indexname",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates a new, empty database `name` on the server of `server_url` (a
    /// URL of any database there that the user may connect to, such as
    /// `postgres`), and returns the URL of the new one. For tests and set-up
    /// scripts; `name` must be a plain identifier.
    pub async fn create_database(server_url: &str, name: &str) -> Result<String> {
        check_db_name(name)?;
        let mut conn = Self::options(server_url)?
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(server_url))))?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await?;
        Ok(with_database(server_url, name))
    }

    /// Drops database `name` on the server of `server_url`, ending any
    /// connections still open to it.
    pub async fn drop_database(server_url: &str, name: &str) -> Result<()> {
        check_db_name(name)?;
        let mut conn = Self::options(server_url)?
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact_url(server_url))))?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

fn check_db_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Query(format!("bad database name {name:?}")))
    }
}

/// `url` with its database (path) replaced by `name`, keeping any query.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[async_trait]
impl Store for PostgresStore {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let mut tx = self.pool.begin().await?;
        // See the module documentation: the one lock, taken first.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(StoreTx::boxed(tx, false))
    }

    async fn begin_bulk(&self) -> Result<Box<dyn Tx>> {
        // The server's own cache serves every connection alike.
        self.begin().await
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        // Without the write lock: readers do not queue behind writers.
        let tx = self.pool.begin_with("BEGIN READ ONLY").await?;
        Ok(StoreTx::boxed(tx, true))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn snapshot(&self, _dest: &Path) -> Result<()> {
        Err(StoreError::Unsupported(
            "`custos backup create` copies the embedded SQLite database only; back up a PostgreSQL \
             database with pg_dump (it holds only sealed personal data) and keep the master key apart"
                .into(),
        ))
    }

    async fn integrity_check(&self) -> Result<()> {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&self.pool).await?;
        let version = self.schema_version().await?;
        if one == 1 && version == latest_version() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "schema version {version}, expected {}",
                latest_version()
            )))
        }
    }
}

#[async_trait]
impl Backend for Transaction<'static, Postgres> {
    type Db = Postgres;
    const DIALECT: Dialect = D;

    fn conn(&mut self) -> &mut sqlx::PgConnection {
        self
    }

    async fn commit(self) -> Result<()> {
        Transaction::commit(self).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! These run when `CUSTOS_TEST_POSTGRES_URL` names a PostgreSQL server
    //! (see custos-testkit); each test creates a database of its own.
    use super::*;
    use crate::SqliteStore;
    use custos_domain::Entity;
    use uuid::Uuid;

    /// A fresh database on the test server, or `None` (skipped) without one.
    async fn scratch(test: &str) -> Option<(String, String, PostgresStore)> {
        let server = std::env::var("CUSTOS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let sqlite_pass = std::env::var("CUSTOS_TEST_BACKEND").as_deref() == Ok("sqlite");
        let Some(server) = server.filter(|_| !sqlite_pass) else {
            eprintln!("skipped: {test} needs CUSTOS_TEST_POSTGRES_URL");
            return None;
        };
        let name = format!("custos_test_{}", Uuid::now_v7().simple());
        let url = PostgresStore::create_database(&server, &name)
            .await
            .expect("create database");
        let store = PostgresStore::connect(&url).await.expect("connect");
        Some((server, name, store))
    }

    async fn drop_scratch(server: &str, name: &str, store: PostgresStore) {
        store.close().await;
        PostgresStore::drop_database(server, name)
            .await
            .expect("drop database");
    }

    #[test]
    fn urls_keep_their_query_and_hide_passwords() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            redact_url("postgresql://u:secret@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert!(!redact_url("postgres://u:p@ss@h/db").contains("ss@h"));
    }

    #[tokio::test]
    async fn schema_matches_the_inventory_both_ways_and_sqlite_table_by_table() {
        let Some((server, name, store)) = scratch("the PostgreSQL schema test").await else {
            return;
        };
        assert_eq!(
            store.schema_version().await.expect("version"),
            latest_version()
        );
        for entity in Entity::ALL {
            let cols = store.table_columns(entity.plural()).await.expect("cols");
            crate::shared_tests::columns_match_the_inventory(entity, cols);
            // Sortable columns sort bare exactly when declared NOT NULL.
            let not_null: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 AND is_nullable = 'NO'",
            )
            .bind(entity.plural())
            .fetch_all(&store.pool)
            .await
            .expect("not null");
            crate::shared_tests::sortable_columns_sort_bare_when_not_null(entity, &not_null);
        }
        // Every table, column and index of the SQLite schema, and no other.
        let lite = SqliteStore::memory().await.expect("sqlite");
        let tables = lite.table_names().await.expect("tables");
        assert!(tables.len() > Entity::ALL.len());
        let mut pg_tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(&store.pool)
        .await
        .expect("pg tables");
        pg_tables.sort();
        assert_eq!(pg_tables, tables);
        for t in &tables {
            let mut a = lite.table_columns(t).await.expect("sqlite cols");
            let mut b = store.table_columns(t).await.expect("pg cols");
            a.sort();
            b.sort();
            assert_eq!(a, b, "columns of {t}");
            let a = lite.table_indexes(t).await.expect("sqlite indexes");
            let b = store.table_indexes(t).await.expect("pg indexes");
            assert_eq!(a, b, "indexes of {t}");
        }
        store.integrity_check().await.expect("integrity");
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn records_round_trip_with_nulls_and_paginate_by_keyset() {
        let Some((server, name, store)) = scratch("the PostgreSQL round trip").await else {
            return;
        };
        crate::shared_tests::records_round_trip_with_nulls_and_paginate_by_keyset(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn dropping_a_transaction_rolls_back_and_frees_the_lock() {
        let Some((server, name, store)) = scratch("the PostgreSQL rollback test").await else {
            return;
        };
        {
            let mut tx = store.begin().await.expect("tx");
            tx.put_setting("x", "1").await.expect("put");
        }
        let mut tx = store.begin().await.expect("tx");
        assert_eq!(tx.get_setting("x").await.expect("get"), None);
        drop(tx);
        drop_scratch(&server, &name, store).await;
    }

    /// Migrations 12 and 13 on a database that holds data, as an older
    /// Custos left it: repeated blind-index entries become one and the
    /// subject column goes (12); the stored checkpoints are counted into the
    /// head (13).
    #[tokio::test]
    async fn migrations_12_and_13_keep_the_data_of_an_older_database() {
        let server = match std::env::var("CUSTOS_TEST_POSTGRES_URL") {
            Ok(u)
                if !u.is_empty()
                    && std::env::var("CUSTOS_TEST_BACKEND").as_deref() != Ok("sqlite") =>
            {
                u
            }
            _ => {
                eprintln!("skipped: the migration test needs CUSTOS_TEST_POSTGRES_URL");
                return;
            }
        };
        let name = format!("custos_test_{}", Uuid::now_v7().simple());
        let url = PostgresStore::create_database(&server, &name)
            .await
            .expect("create database");
        let (a, b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        {
            let mut conn = PostgresStore::options(&url)
                .expect("url")
                .connect()
                .await
                .expect("connect");
            sqlx::raw_sql(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
            )
            .execute(&mut conn)
            .await
            .expect("table");
            for m in migrations::list(D).into_iter().filter(|m| m.0 <= 11) {
                migrations::apply::<Postgres>(&mut conn, m, false)
                    .await
                    .expect("migration");
            }
            crate::shared_tests::insert_old_blind_entries::<Postgres>(&mut conn, &a, &b).await;
            sqlx::raw_sql(
                "INSERT INTO ledger_head (id, size, frontier, bytes) VALUES (1, 9, ''::bytea, 0); \
                 INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES (4, '\\x00', 'four', 1), (9, '\\x01', 'nine', 2);",
            )
            .execute(&mut conn)
            .await
            .expect("ledger");
            conn.close().await.expect("close");
        }
        let store = PostgresStore::connect(&url).await.expect("migrate");
        assert_eq!(
            store.schema_version().await.expect("version"),
            latest_version()
        );
        let mut cols = store.table_columns("blind_index").await.expect("cols");
        cols.sort();
        assert_eq!(cols, ["entity", "field", "hash", "record_id"]);
        let entries: Vec<(String, String)> =
            sqlx::query_as("SELECT field, record_id FROM blind_index ORDER BY field, record_id")
                .fetch_all(&store.pool)
                .await
                .expect("entries");
        let mut expected = vec![
            ("email".to_string(), a.clone()),
            ("email".to_string(), b.clone()),
            ("last_name".to_string(), a.clone()),
        ];
        expected.sort();
        assert_eq!(entries, expected);
        let mut tx = store.begin().await.expect("tx");
        crate::shared_tests::the_two_old_checkpoints_are_counted(tx.as_mut()).await;
        drop(tx);
        store.close().await;
        PostgresStore::drop_database(&server, &name)
            .await
            .expect("drop database");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn transactions_of_two_pools_never_interleave() {
        // Two pools stand for two `custos serve` processes: each transaction
        // reads a counter and writes it back incremented, as an append reads
        // and writes the ledger head. Without the lock some increments would
        // be lost.
        let Some((server, name, first)) = scratch("the PostgreSQL lock test").await else {
            return;
        };
        let url = with_database(&server, &name);
        let second = PostgresStore::connect(&url).await.expect("second pool");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await?;
                let n: i64 = tx
                    .get_setting("n")
                    .await?
                    .map_or(0, |v| v.parse().unwrap_or(-1000));
                tokio::task::yield_now().await;
                tx.put_setting("n", &(n + 1).to_string()).await?;
                tx.commit().await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("increment");
        }
        let mut tx = first.begin().await.expect("tx");
        assert_eq!(
            tx.get_setting("n").await.expect("get").as_deref(),
            Some("40")
        );
        drop(tx);
        second.close().await;
        drop_scratch(&server, &name, first).await;
    }

    #[tokio::test]
    async fn update_records_changes_exactly_the_named_records() {
        let Some((server, name, store)) = scratch("the PostgreSQL update_records test").await
        else {
            return;
        };
        crate::shared_tests::update_records_changes_exactly_the_named_records(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn windowed_lists_find_every_match_in_order() {
        let Some((server, name, store)) = scratch("the PostgreSQL windowed list test").await else {
            return;
        };
        crate::shared_tests::windowed_lists_find_every_match_in_order(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn group_records_counts_and_sums_by_the_grouping_columns() {
        let Some((server, name, store)) = scratch("the PostgreSQL group_records test").await else {
            return;
        };
        crate::shared_tests::group_records_counts_and_sums_by_the_grouping_columns(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn flag_counts_count_subjects_in_force() {
        let Some((server, name, store)) = scratch("the PostgreSQL flag_counts test").await else {
            return;
        };
        crate::shared_tests::flag_counts_count_subjects_in_force(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn retention_runs_resume_and_finish() {
        let Some((server, name, store)) = scratch("the PostgreSQL retention runs test").await
        else {
            return;
        };
        crate::shared_tests::retention_runs_resume_and_finish(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn policy_versions_are_kept_once_each() {
        let Some((server, name, store)) = scratch("the PostgreSQL policy versions test").await
        else {
            return;
        };
        crate::shared_tests::policy_versions_are_kept_once_each(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn legal_holds_place_and_lift() {
        let Some((server, name, store)) = scratch("the PostgreSQL legal holds test").await else {
            return;
        };
        crate::shared_tests::legal_holds_place_and_lift(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn not_null_finds_records_with_a_value() {
        let Some((server, name, store)) = scratch("the PostgreSQL NotNull test").await else {
            return;
        };
        crate::shared_tests::not_null_finds_records_with_a_value(&store).await;
        drop_scratch(&server, &name, store).await;
    }

    #[tokio::test]
    async fn snapshot_says_to_use_pg_dump() {
        let Some((server, name, store)) = scratch("the PostgreSQL snapshot test").await else {
            return;
        };
        let err = store
            .snapshot(Path::new("/nonexistent/x.db"))
            .await
            .expect_err("no snapshot");
        assert!(err.to_string().contains("pg_dump"), "{err}");
        drop_scratch(&server, &name, store).await;
    }
}
