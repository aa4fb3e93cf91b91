//! The embedded default: SQLite in WAL mode, in the data directory.

use crate::exec::Driver;
use crate::migrations;
use crate::sql::{self, Dialect, Query};
use crate::tx::{Backend, StoreTx};
use crate::{Result, Store, StoreError, Tx};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

const D: Dialect = Dialect::Sqlite;

/// SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    path: Option<PathBuf>,
    /// Connections for reads (a database file only; an in-memory database
    /// is one connection, the pool's).
    readers: Option<Arc<Readers>>,
    /// The connection for writes (a database file only).
    writer: Option<Arc<Writer>>,
}

/// The one connection this process writes through, kept apart from sqlx's
/// pool like [`Readers`]. SQLite lets one writer at a time anyway: taking
/// turns here costs nothing, where writers on several connections wait in
/// SQLite's busy handler, which sleeps and retries. Other processes on the
/// same file (the command line while the server runs) still wait in the
/// busy handler.
struct Writer {
    opts: SqliteConnectOptions,
    /// `None` before the first write and after a transaction was given up
    /// (its connection is closed, which rolls it back).
    conn: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
    /// How long a write waits for its turn ([`WRITE_TURN`]).
    turn: Duration,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// How long a write waits for its turn: as long as SQLite's busy handler
/// waits for another process. A write started while the same task holds
/// one would otherwise wait for ever.
const WRITE_TURN: Duration = Duration::from_secs(30);

/// The write connection in a transaction (BEGIN IMMEDIATE sent), held
/// until the transaction ends. Dropped without COMMIT (an error, or a
/// request given up half-way), the connection is closed, which makes SQLite
/// roll the transaction back, and the next write opens a new one.
struct WriteConn {
    guard: tokio::sync::OwnedMutexGuard<Option<SqliteConnection>>,
    open: bool,
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if self.open {
            drop(self.guard.take());
        }
    }
}

/// Connections for reads, kept apart from sqlx's pool: sqlx pings a pooled
/// connection each time it is given back (a round trip to the connection's
/// worker thread), which cost a read as much as one of its queries. Reads
/// hold no transaction, so a connection given back needs no clean-up.
struct Readers {
    opts: SqliteConnectOptions,
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    /// Bounds the connections open for reads.
    permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").finish_non_exhaustive()
    }
}

/// A read connection, back to [`Readers`] when dropped.
struct ReadConn {
    conn: Option<SqliteConnection>,
    readers: Arc<Readers>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.readers
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect(opts, 8, Some(path.to_path_buf())).await
    }

    /// Opens an in-memory database (for unit tests); one connection, so it is shared.
    pub async fn memory() -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:").map_err(StoreError::from)?;
        Self::connect(opts, 1, None).await
    }

    async fn connect(
        opts: SqliteConnectOptions,
        max: u32,
        path: Option<PathBuf>,
    ) -> Result<SqliteStore> {
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed audit leaf survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Sorting and temporary indexes stay in memory, never in temp files.
            .pragma("temp_store", "memory")
            // Up to 32 MiB of pages per connection (the default is 2 MiB): at
            // a million contacts the indexes written by every insert (blind
            // index, ledger) no longer fit in 2 MiB, and each insert then
            // re-read index pages from the OS. Only pages in use take memory.
            .pragma("cache_size", "-32768")
            // Freed pages are overwritten, so deleted ciphertext does not linger.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            // A local file: no ping before each use (a round trip to the
            // connection's worker thread per transaction).
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let readers = path.as_ref().map(|_| {
            Arc::new(Readers {
                opts: opts.clone(),
                idle: std::sync::Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(max as usize)),
            })
        });
        let writer = path.as_ref().map(|_| {
            Arc::new(Writer {
                opts: opts.clone(),
                conn: Arc::new(tokio::sync::Mutex::new(None)),
                turn: WRITE_TURN,
            })
        });
        let store = SqliteStore {
            pool,
            path,
            readers,
            writer,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let upgrade = migrations::current::<Sqlite>(&mut conn).await? > 0;
        drop(conn);
        // One transaction a migration: BEGIN IMMEDIATE keeps another process
        // from applying the same one at once.
        for m in migrations::list(D) {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            migrations::apply::<Sqlite>(&mut tx, m, upgrade).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64> {
        migrations::current::<Sqlite>(&mut *self.pool.acquire().await?).await
    }

    /// Column names of a table, for the schema-versus-inventory test.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM pragma_table_info(?1)")
            .bind(table)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Names of the tables, sorted, for the schema tests of both backends.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Names of the declared indexes of a table, sorted (not those SQLite makes
    /// for keys and UNIQUE constraints).
    pub async fn table_indexes(&self, table: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
             AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        // IMMEDIATE takes the write lock up front: a use case reads, then writes its
        // audit leaf, and must not fail to upgrade a read snapshot half-way.
        let tx = match &self.writer {
            Some(writer) => {
                let mut guard = tokio::time::timeout(writer.turn, writer.conn.clone().lock_owned())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable(
                            "the database stayed busy with another write".into(),
                        )
                    })?;
                let conn = match guard.as_mut() {
                    Some(conn) => conn,
                    None => guard.insert(writer.opts.connect().await?),
                };
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(conn).await?;
                Conn::Write(WriteConn { guard, open: true })
            }
            None => Conn::Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(StoreTx::boxed(tx, false))
    }

    async fn begin_bulk(&self) -> Result<Box<dyn Tx>> {
        // An in-memory database is one connection: the pool's.
        let Some(readers) = &self.readers else {
            return self.begin().await;
        };
        let mut conn = readers
            .opts
            .clone()
            .pragma("cache_size", format!("-{}", crate::BULK_CACHE_MIB * 1024))
            .connect()
            .await?;
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await?;
        Ok(StoreTx::boxed(Conn::Bulk(conn), false))
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        // WAL readers do not wait for the writer.
        let tx =
            match &self.readers {
                Some(readers) => {
                    let permit =
                        readers.permits.clone().acquire_owned().await.map_err(|_| {
                            StoreError::Unavailable("the database is closed".into())
                        })?;
                    let idle = readers.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let conn = match idle {
                        Some(c) => c,
                        None => readers.opts.connect().await?,
                    };
                    Conn::Own(ReadConn {
                        conn: Some(conn),
                        readers: readers.clone(),
                        _permit: permit,
                    })
                }
                None => Conn::Read(self.pool.acquire().await?),
            };
        Ok(StoreTx::boxed(tx, true))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn files(&self) -> Vec<PathBuf> {
        match &self.path {
            Some(p) => {
                let wal = PathBuf::from(format!("{}-wal", p.display()));
                let shm = PathBuf::from(format!("{}-shm", p.display()));
                vec![p.clone(), wal, shm]
            }
            None => Vec::new(),
        }
    }

    async fn close(&self) {
        if let Some(writer) = &self.writer
            && let Some(c) = writer.conn.lock().await.take()
        {
            let _ = c.close().await;
        }
        if let Some(readers) = &self.readers {
            readers.permits.close();
            let idle = std::mem::take(&mut *readers.idle.lock().unwrap_or_else(|e| e.into_inner()));
            for c in idle {
                let _ = c.close().await;
            }
        }
        self.pool.close().await;
    }

    async fn snapshot(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists",
                dest.display()
            )));
        }
        let target = dest
            .to_str()
            .ok_or_else(|| StoreError::Query("snapshot path is not UTF-8".into()))?;
        // VACUUM INTO reads one consistent snapshot while writers continue.
        sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn integrity_check(&self) -> Result<()> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(rows.join("; ")))
        }
    }
}

/// A transaction's connection: a write transaction, or, for reads, a pooled
/// connection whose statements each read the latest committed state (no
/// BEGIN and COMMIT: two fewer round trips to SQLite's worker thread per read).
enum Conn {
    Tx(Transaction<'static, Sqlite>),
    Read(PoolConnection<Sqlite>),
    Own(ReadConn),
    Write(WriteConn),
    /// A bulk write transaction's own connection, BEGIN IMMEDIATE sent.
    /// Dropped without COMMIT, the connection closes and SQLite rolls the
    /// transaction back.
    Bulk(SqliteConnection),
}

impl std::ops::Deref for Conn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            Conn::Tx(t) => t,
            Conn::Read(c) => c,
            Conn::Bulk(c) => c,
            Conn::Own(r) => r
                .conn
                .as_ref()
                .unwrap_or_else(|| unreachable!("taken only on drop")),
            Conn::Write(w) => w
                .guard
                .as_ref()
                .unwrap_or_else(|| unreachable!("set before a transaction, taken only on drop")),
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Conn::Tx(t) => t,
            Conn::Read(c) => c,
            Conn::Bulk(c) => c,
            Conn::Own(r) => r
                .conn
                .as_mut()
                .unwrap_or_else(|| unreachable!("taken only on drop")),
            Conn::Write(w) => w
                .guard
                .as_mut()
                .unwrap_or_else(|| unreachable!("set before a transaction, taken only on drop")),
        }
    }
}

#[async_trait]
impl Backend for Conn {
    type Db = Sqlite;
    const DIALECT: Dialect = D;

    fn conn(&mut self) -> &mut SqliteConnection {
        self
    }

    async fn execute_all(&mut self, queries: Vec<Query>) -> Result<()> {
        // One round trip for them all.
        if let Some(q) = sql::concat(queries) {
            Sqlite::execute(self, q).await?;
        }
        Ok(())
    }

    async fn commit(self) -> Result<()> {
        match self {
            Conn::Tx(tx) => tx.commit().await?,
            Conn::Write(mut w) => {
                let conn = w.guard.as_mut().ok_or_else(|| {
                    StoreError::Unavailable("the write connection was closed".into())
                })?;
                sqlx::raw_sql("COMMIT").execute(conn).await?;
                w.open = false;
            }
            Conn::Bulk(mut conn) => {
                sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
                // A bulk write leaves a write-ahead log as large as what it
                // wrote (gigabytes after a million rows). Copy it into the
                // database and truncate it now, so the disk space comes back
                // and later reads and writes do not work past it. Readers in
                // the middle of a transaction can keep it from finishing;
                // it is then left to the usual checkpoints: the write is
                // committed either way, so a failure here is not an error.
                let _ = sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut conn)
                    .await;
                conn.close().await?;
            }
            // A read transaction appends nothing (`append_leaf` refuses).
            Conn::Read(_) | Conn::Own(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlValue;
    use crate::sql;
    use crate::{CheckpointRow, Condition, LeafIndex, LeafRow, LedgerHead, StoredRow};
    use custos_domain::Entity;
    use custos_domain::inventory;
    use uuid::Uuid;

    #[tokio::test]
    async fn schema_matches_the_inventory_both_ways() {
        let store = SqliteStore::memory().await.expect("open");
        assert_eq!(
            store.schema_version().await.expect("version"),
            migrations::latest()
        );
        for entity in Entity::ALL {
            let cols = store.table_columns(entity.plural()).await.expect("cols");
            crate::shared_tests::columns_match_the_inventory(entity, cols);
        }
    }

    #[tokio::test]
    async fn records_round_trip_with_nulls_and_paginate_by_keyset() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::records_round_trip_with_nulls_and_paginate_by_keyset(&store).await;
    }

    #[tokio::test]
    async fn dropping_a_transaction_rolls_back() {
        let store = SqliteStore::memory().await.expect("open");
        {
            let mut tx = store.begin().await.expect("tx");
            tx.put_setting("x", "1").await.expect("put");
        }
        let mut tx = store.begin().await.expect("tx");
        assert_eq!(tx.get_setting("x").await.expect("get"), None);
    }

    /// Migration 12 drops the blind index's subject column: entries written
    /// by an older Custos stay findable, once each, and erasing a subject
    /// still deletes its record's entries.
    /// A new database file at schema `version`, as an older Custos left it.
    async fn database_at(path: &std::path::Path, version: i64) -> SqliteConnection {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&opts).await.expect("open");
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .expect("table");
        for m in migrations::list(D).into_iter().filter(|m| m.0 <= version) {
            migrations::apply::<Sqlite>(&mut conn, m, false)
                .await
                .expect("migration");
        }
        conn
    }

    /// The sortable columns that sort bare are exactly those declared NOT
    /// NULL: a bare sort of a column with NULLs would lose rows at page
    /// boundaries, and a COALESCE sort of one without would miss its index.
    #[tokio::test]
    async fn sortable_columns_sort_bare_exactly_when_declared_not_null() {
        let store = SqliteStore::memory().await.expect("open");
        for entity in Entity::ALL {
            let not_null: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) WHERE \"notnull\" = 1")
                    .bind(entity.plural())
                    .fetch_all(&store.pool)
                    .await
                    .expect("columns");
            crate::shared_tests::sortable_columns_sort_bare_when_not_null(entity, &not_null);
        }
    }

    /// Every column `sql::indexed` names leads an index of its table (bare,
    /// or inside the COALESCE a list sorts by): the windowed lists and the
    /// bounded counts rely on it. PostgreSQL has the same indexes (its schema
    /// test compares them).
    #[tokio::test]
    async fn columns_called_indexed_lead_an_index() {
        let store = SqliteStore::memory().await.expect("open");
        let mut checked = 0;
        for entity in Entity::CRM
            .iter()
            .chain(&[Entity::Request, Entity::Consent])
        {
            let defs: Vec<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
                 AND sql IS NOT NULL",
            )
            .bind(entity.plural())
            .fetch_all(&store.pool)
            .await
            .expect("indexes");
            // The first column or expression of each index, as written.
            let leads: Vec<String> = defs
                .iter()
                .filter_map(|d| {
                    let inner = &d[d.find('(')? + 1..];
                    let inner = inner
                        .trim_start()
                        .strip_prefix("COALESCE(")
                        .unwrap_or(inner);
                    let end = inner.find([',', ')'])?;
                    Some(inner[..end].trim().trim_matches('"').to_string())
                })
                .collect();
            for f in inventory::fields(*entity).filter(|f| f.name != "id") {
                if sql::indexed(*entity, f.name) {
                    checked += 1;
                    assert!(
                        leads.iter().any(|l| l == f.name),
                        "{}.{} is called indexed, but no index starts with it: {defs:?}",
                        entity.plural(),
                        f.name
                    );
                }
            }
        }
        assert!(checked > 20, "only {checked} columns checked");
        // Each (column, sort key) pair said to be sorted within an index
        // starts one, the sort key as lists sort it.
        for (entity, column, sort) in sql::SORTED_WITHIN {
            let want = format!(
                "{} ({column}, {}, id)",
                entity.plural(),
                sql::sort_expr(*entity, sort).replace('"', "")
            );
            let defs: Vec<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
            )
            .fetch_all(&store.pool)
            .await
            .expect("indexes");
            assert!(
                defs.iter().any(|d| d.contains(&want)),
                "no index {want} among {defs:?}"
            );
        }
    }

    /// Migration 13 counts the checkpoints already stored into the head;
    /// each new checkpoint adds one, and the latest is the largest.
    #[tokio::test]
    async fn checkpoints_are_counted_with_the_head_from_migration_13_on() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        {
            // A database at schema 12 with a ledger and two checkpoints.
            let mut conn = database_at(&path, 12).await;
            sqlx::raw_sql(
                "INSERT INTO ledger_head (id, size, frontier, bytes) VALUES (1, 9, x'', 0); \
                 INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES (4, x'00', 'four', 1), (9, x'01', 'nine', 2);",
            )
            .execute(&mut conn)
            .await
            .expect("ledger");
            conn.close().await.expect("close");
        }
        let store = SqliteStore::open(&path).await.expect("migrate");
        let mut tx = store.begin().await.expect("tx");
        crate::shared_tests::the_two_old_checkpoints_are_counted(tx.as_mut()).await;
        tx.insert_checkpoint(&CheckpointRow {
            size: 12,
            root: vec![2],
            note: "twelve".into(),
            created_at: 3,
        })
        .await
        .expect("insert");
        assert_eq!(tx.checkpoint_count().await.expect("count"), 3);
        assert_eq!(
            tx.latest_checkpoint()
                .await
                .expect("latest")
                .map(|c| c.size),
            Some(12)
        );
        assert_eq!(tx.checkpoints().await.expect("all").len(), 3);
    }

    /// A count up to a limit stops there; below it, it is exact.
    #[tokio::test]
    async fn a_count_up_to_a_limit_stops_there() {
        let store = SqliteStore::memory().await.expect("open");
        let mut tx = store.begin().await.expect("tx");
        for n in 0..5 {
            let id = Uuid::now_v7();
            let row = StoredRow {
                id,
                subject_id: None,
                columns: vec![
                    ("name", SqlValue::Text(format!("Company {n}"))),
                    ("created_at", SqlValue::Int(n)),
                    ("updated_at", SqlValue::Int(n)),
                ],
            };
            tx.insert_record(Entity::Company, &row)
                .await
                .expect("insert");
        }
        let all: &[Condition] = &[];
        assert_eq!(
            tx.count_records_up_to(Entity::Company, all, 3)
                .await
                .expect("count"),
            3
        );
        assert_eq!(
            tx.count_records_up_to(Entity::Company, all, 10)
                .await
                .expect("count"),
            5
        );
        let some = [Condition::AtLeast("created_at", SqlValue::Int(3))];
        assert_eq!(
            tx.count_records_up_to(Entity::Company, &some, 10)
                .await
                .expect("count"),
            2
        );
        assert_eq!(
            tx.count_records(Entity::Company, all).await.expect("count"),
            5
        );
    }

    #[tokio::test]
    async fn blind_index_entries_survive_migration_12_once_each() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        let (a, b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        {
            // A database at schema 11, as an older Custos left it.
            let mut conn = database_at(&path, 11).await;
            crate::shared_tests::insert_old_blind_entries::<Sqlite>(&mut conn, &a, &b).await;
            conn.close().await.expect("close");
        }
        let store = SqliteStore::open(&path).await.expect("migrate");
        assert_eq!(
            store.schema_version().await.expect("version"),
            migrations::latest()
        );
        let mut cols = store.table_columns("blind_index").await.expect("cols");
        cols.sort();
        assert_eq!(cols, ["entity", "field", "hash", "record_id"]);
        let entries = |field: &'static str, hash: Vec<u8>| {
            let pool = store.pool.clone();
            async move {
                let mut ids: Vec<String> = sqlx::query_scalar(
                    "SELECT record_id FROM blind_index WHERE entity = 'contact' AND field = ?1 AND hash = ?2",
                )
                .bind(field)
                .bind(hash)
                .fetch_all(&pool)
                .await
                .expect("lookup");
                ids.sort();
                ids
            }
        };
        let mut both = vec![a.clone(), b.clone()];
        both.sort();
        assert_eq!(entries("email", vec![1, 2, 3]).await, both);
        assert_eq!(
            entries("last_name", vec![4, 5, 6]).await,
            std::slice::from_ref(&a)
        );

        // New entries are found too; erasure goes by record.
        let mut tx = store.begin().await.expect("tx");
        let c = Uuid::now_v7();
        tx.set_blind_index(Entity::Contact, c, "first_name", &[vec![7, 8, 9]])
            .await
            .expect("set");
        tx.shred_subject_key(Uuid::parse_str(&a).expect("uuid"), 1)
            .await
            .expect("shred");
        tx.commit().await.expect("commit");
        assert_eq!(entries("first_name", vec![7, 8, 9]).await, [c.to_string()]);
        assert_eq!(
            entries("email", vec![1, 2, 3]).await,
            std::slice::from_ref(&b)
        );
        assert!(entries("last_name", vec![4, 5, 6]).await.is_empty());
    }

    /// A bulk transaction has a connection of its own: what it commits is
    /// there, what it drops is rolled back, and the write lock is free again
    /// at once either way.
    #[tokio::test]
    async fn a_bulk_transaction_commits_or_rolls_back_on_its_own_connection() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("bulk.db"))
            .await
            .expect("open");
        let mut tx = store.begin_bulk().await.expect("bulk");
        tx.put_setting("kept", "1").await.expect("put");
        tx.commit().await.expect("commit");

        let mut tx = store.begin_bulk().await.expect("bulk");
        tx.put_setting("dropped", "1").await.expect("put");
        drop(tx);
        // The lock is free: a plain write transaction starts and commits
        // well within the 30 s busy timeout.
        let started = std::time::Instant::now();
        let mut tx = store.begin().await.expect("tx");
        tx.put_setting("after", "1").await.expect("put");
        tx.commit().await.expect("commit");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        let mut tx = store.begin().await.expect("tx");
        assert_eq!(
            tx.get_setting("kept").await.expect("get").as_deref(),
            Some("1")
        );
        assert_eq!(tx.get_setting("dropped").await.expect("get"), None);
    }

    #[tokio::test]
    async fn update_records_changes_exactly_the_named_records() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("update.db"))
            .await
            .expect("open");
        crate::shared_tests::update_records_changes_exactly_the_named_records(&store).await;
    }

    #[tokio::test]
    async fn windowed_lists_find_every_match_in_order() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::windowed_lists_find_every_match_in_order(&store).await;
    }

    #[tokio::test]
    async fn group_records_counts_and_sums_by_the_grouping_columns() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::group_records_counts_and_sums_by_the_grouping_columns(&store).await;
    }

    #[tokio::test]
    async fn flag_counts_count_subjects_in_force() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::flag_counts_count_subjects_in_force(&store).await;
    }

    #[tokio::test]
    async fn retention_runs_resume_and_finish() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::retention_runs_resume_and_finish(&store).await;
    }

    #[tokio::test]
    async fn policy_versions_are_kept_once_each() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::policy_versions_are_kept_once_each(&store).await;
    }

    #[tokio::test]
    async fn legal_holds_place_and_lift() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::legal_holds_place_and_lift(&store).await;
    }

    #[tokio::test]
    async fn not_null_finds_records_with_a_value() {
        let store = SqliteStore::memory().await.expect("open");
        crate::shared_tests::not_null_finds_records_with_a_value(&store).await;
    }

    /// A leaf appended in a write transaction: its ledger rows wait in the
    /// transaction's pending batch until commit.
    async fn append_one(tx: &mut dyn Tx, index: u64, what: &str) {
        let data = format!("leaf {what}").into_bytes();
        let leaf = LeafRow {
            index,
            leaf_hash: vec![index as u8; 32],
            data,
        };
        let entry = LeafIndex {
            time_ms: 1,
            actor: "cli".into(),
            action: what.into(),
            subject_id: None,
            record: None,
            outcome: "success".into(),
        };
        let head = LedgerHead {
            size: index + 1,
            frontier: vec![[index as u8; 32]],
            bytes: 10 * (index + 1),
        };
        tx.append_leaf(&leaf, &entry, &[], &head)
            .await
            .expect("append");
    }

    /// Writes go through one connection of their own. A transaction given
    /// up without COMMIT (an error, a request dropped half-way) is rolled
    /// back, its pending ledger rows with it, and the next write works at
    /// once on a new connection; a commit writes the pending ledger rows
    /// and commits in one go.
    #[tokio::test]
    async fn the_write_connection_commits_pending_rows_and_rolls_back_what_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("write.db"))
            .await
            .expect("open");
        let mut tx = store.begin().await.expect("tx");
        tx.put_setting("kept", "1").await.expect("put");
        append_one(tx.as_mut(), 0, "kept").await;
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("tx");
        tx.put_setting("dropped", "1").await.expect("put");
        append_one(tx.as_mut(), 1, "dropped").await;
        drop(tx);

        let started = std::time::Instant::now();
        let mut tx = store.begin().await.expect("tx after a dropped one");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(tx.ledger_head().await.expect("head").size, 1);
        tx.put_setting("after", "1").await.expect("put");
        tx.commit().await.expect("commit");

        let mut tx = store.begin_read().await.expect("read");
        assert_eq!(
            tx.get_setting("kept").await.expect("get").as_deref(),
            Some("1")
        );
        assert_eq!(tx.get_setting("dropped").await.expect("get"), None);
        assert_eq!(
            tx.get_setting("after").await.expect("get").as_deref(),
            Some("1")
        );
        let leaves = tx.ledger_leaves_at(&[0, 1]).await.expect("leaves");
        assert_eq!(leaves.len(), 1);
        assert_eq!(leaves[0].data, b"leaf kept");
    }

    /// Writers of one process take turns on the write connection: many at
    /// once all commit, none fails on a busy database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_take_turns_and_all_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("turns.db"))
            .await
            .expect("open");
        let mut tasks = Vec::new();
        for i in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await?;
                tx.put_setting(&format!("w{i}"), "1").await?;
                tokio::task::yield_now().await;
                tx.commit().await
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("write");
        }
        let mut tx = store.begin_read().await.expect("read");
        for i in 0..32 {
            assert_eq!(
                tx.get_setting(&format!("w{i}"))
                    .await
                    .expect("get")
                    .as_deref(),
                Some("1")
            );
        }
    }

    /// A write that cannot get its turn (here: started while the same task
    /// holds one) fails with a clear error once the turn's wait is over,
    /// instead of waiting for ever.
    #[tokio::test]
    async fn a_write_that_never_gets_its_turn_fails_clearly() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = SqliteStore::open(&dir.path().join("turn.db"))
            .await
            .expect("open");
        let writer = store.writer.take().expect("a file has a writer");
        store.writer = Some(Arc::new(Writer {
            opts: writer.opts.clone(),
            conn: writer.conn.clone(),
            turn: Duration::from_millis(200),
        }));
        let held = store.begin().await.expect("tx");
        let err = store.begin().await.err().expect("no second turn");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("busy"), "{err}");
        drop(held);
        store.begin().await.expect("the turn is free again");
    }

    #[tokio::test]
    async fn a_bulk_write_leaves_no_write_ahead_log_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bulk.db");
        let wal = dir.path().join("bulk.db-wal");
        let store = SqliteStore::open(&path).await.expect("open");
        // A plain write first, so the log has frames and a reader has a
        // connection open (the store's own, as in a running server).
        let mut tx = store.begin().await.expect("tx");
        tx.put_setting("before", "1").await.expect("put");
        tx.commit().await.expect("commit");
        let mut tx = store.begin_read().await.expect("read");
        assert_eq!(
            tx.get_setting("before").await.expect("get").as_deref(),
            Some("1")
        );
        drop(tx);
        // A bulk write of a few megabytes of values.
        let mut tx = store.begin_bulk().await.expect("bulk");
        for i in 0..2000 {
            tx.put_setting(&format!("bulk{i}"), &"x".repeat(2000))
                .await
                .expect("put");
        }
        tx.commit().await.expect("commit");
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(len, 0, "the log was copied into the database and truncated");
        // Everything is still there, through the store's other connections.
        let mut tx = store.begin_read().await.expect("read");
        assert_eq!(
            tx.get_setting("bulk1999")
                .await
                .expect("get")
                .map(|v| v.len()),
            Some(2000)
        );
    }
}
