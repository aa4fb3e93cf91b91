//! The embedded default: SQLite in WAL mode, in the data directory.

use crate::pending::PendingLedger;
use crate::sql::{self, Dialect, Query};
use crate::{
    ApiTokenRow, ChallengeRow, CheckpointRow, ColumnType, Condition, CredentialRow, EventFilter,
    GroupRow, LeafIndex, LeafRow, LedgerHead, ListQuery, ListWindow, NewRecords, Result,
    SessionRow, SqlValue, Store, StoreError, StoredRow, SubjectKeyRow, Tx, UserAuthRow,
};
use async_trait::async_trait;
use custos_domain::Entity;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Row, Sqlite, SqliteConnection, SqlitePool,
    Transaction,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Versioned migrations, applied in order on open.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "ledger_checkpoints",
        include_str!("../../migrations/sqlite/0002_ledger_checkpoints.sql"),
    ),
    (
        3,
        "subject_key_versions",
        include_str!("../../migrations/sqlite/0003_subject_key_versions.sql"),
    ),
    (
        4,
        "identity",
        include_str!("../../migrations/sqlite/0004_identity.sql"),
    ),
    (
        10,
        "dsar_consent",
        include_str!("../../migrations/sqlite/0010_dsar_consent.sql"),
    ),
    (
        11,
        "ledger_bytes",
        include_str!("../../migrations/sqlite/0011_ledger_bytes.sql"),
    ),
    (
        12,
        "blind_index_key",
        include_str!("../../migrations/sqlite/0012_blind_index_key.sql"),
    ),
    (
        13,
        "sort_indexes",
        include_str!("../../migrations/sqlite/0013_sort_indexes.sql"),
    ),
    (
        14,
        "owner_indexes",
        include_str!("../../migrations/sqlite/0014_owner_indexes.sql"),
    ),
    (
        15,
        "dashboard_and_filter_indexes",
        include_str!("../../migrations/sqlite/0015_dashboard_and_filter_indexes.sql"),
    ),
    (
        16,
        "won_undated_index",
        include_str!("../../migrations/sqlite/0016_won_undated_index.sql"),
    ),
];

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
        let upgrade: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                // Built once, but on millions of rows a new index takes
                // minutes: an upgrade says what the pause at start-up is.
                if upgrade > 0 {
                    tracing::info!(version, name, "applying database migration");
                }
                sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)")
                    .bind(version)
                    .bind(*name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
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
        Ok(Box::new(SqliteTx {
            tx,
            head: None,
            pending: PendingLedger::default(),
            read_only: false,
        }))
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
        Ok(Box::new(SqliteTx {
            tx: Conn::Bulk(conn),
            head: None,
            pending: PendingLedger::default(),
            read_only: false,
        }))
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
        Ok(Box::new(SqliteTx {
            tx,
            head: None,
            pending: PendingLedger::default(),
            read_only: true,
        }))
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

struct SqliteTx {
    tx: Conn,
    /// The ledger head as of the last append in this transaction. BEGIN
    /// IMMEDIATE makes this connection the only writer until commit, so the
    /// cached head cannot go stale.
    head: Option<LedgerHead>,
    /// Ledger appends not yet written (see `crate::pending`).
    pending: PendingLedger,
    /// Started by `begin_read`: ledger appends are refused.
    read_only: bool,
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_all(q: Query) -> SqliteQuery<'static> {
    let mut query = sqlx::query(AssertSqlSafe(q.sql));
    for v in q.binds {
        query = match v {
            SqlValue::Null => query.bind(Option::<String>::None),
            SqlValue::Text(s) => query.bind(s),
            SqlValue::Int(i) => query.bind(i),
            SqlValue::Bool(b) => query.bind(b),
            SqlValue::Blob(b) => query.bind(b),
        };
    }
    query
}

/// Runs bulk statements. Those of one or a few records recur with the same
/// text (one create) and are worth keeping prepared; big batches differ in
/// length every time and would only push useful statements out of the cache.
async fn execute_bulk(q: Query, conn: &mut SqliteConnection) -> Result<()> {
    let keep = q.binds.len() <= 256;
    bind_all(q).persistent(keep).execute(conn).await?;
    Ok(())
}

fn uuid_col(row: &SqliteRow, idx: usize) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(idx)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt("bad uuid".into())))
        .transpose()
}

fn decode_record(entity: Entity, row: &SqliteRow) -> Result<StoredRow> {
    decode_record_at(entity, row, 0)
}

/// The user's record in the columns after a token's or session's own
/// (`cols`); `None` when the user is gone.
fn user_after(r: &SqliteRow, cols: &str) -> Result<Option<StoredRow>> {
    let at = cols.split(", ").count();
    match uuid_col(r, at)? {
        Some(_) => decode_record_at(Entity::User, r, at).map(Some),
        None => Ok(None),
    }
}

/// A record whose columns start at `at` in the row.
fn decode_record_at(entity: Entity, row: &SqliteRow, at: usize) -> Result<StoredRow> {
    let id = uuid_col(row, at)?.ok_or_else(|| StoreError::Corrupt("record without id".into()))?;
    let subject_id = uuid_col(row, at + 1)?;
    let mut columns = Vec::new();
    for (i, name) in sql::columns(entity).into_iter().enumerate().skip(2) {
        let i = at + i;
        let v = match sql::column_type_of(entity, name) {
            ColumnType::Text => row.try_get::<Option<String>, _>(i)?.map(SqlValue::Text),
            ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map(SqlValue::Int),
            ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(SqlValue::Bool),
            ColumnType::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(SqlValue::Blob),
        };
        columns.push((name, v.unwrap_or(SqlValue::Null)));
    }
    let mut all = vec![("id", SqlValue::Text(id.to_string()))];
    all.extend(columns);
    Ok(StoredRow {
        id,
        subject_id,
        columns: all,
    })
}

fn decode_subject_key(r: &SqliteRow) -> Result<SubjectKeyRow> {
    let kind: String = r.try_get(2)?;
    Ok(SubjectKeyRow {
        subject_id: uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("subject id".into()))?,
        dek_version: r.try_get(1)?,
        kind: Entity::from_name(&kind).ok_or_else(|| StoreError::Corrupt("subject kind".into()))?,
        wrapped_key: r.try_get(3)?,
        kek_version: r.try_get(4)?,
        created_at: r.try_get(5)?,
        shredded_at: r.try_get(6)?,
    })
}

fn to_hash(b: &[u8]) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn decode_session(r: &SqliteRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("session id".into()))?,
        token_hash: r.try_get(1)?,
        user_id: uuid_col(r, 2)?.ok_or_else(|| StoreError::Corrupt("session user".into()))?,
        created_at: r.try_get(3)?,
        last_seen_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
        kind: r.try_get(7)?,
        verified_at: r.try_get(8)?,
        device: r.try_get(9)?,
    })
}

const SESSION_COLS: &str = "id, token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, kind, verified_at, device";
const TOKEN_COLS: &str =
    "id, user_id, name, token_hash, created_at, last_used_at, expires_at, revoked_at, scopes";
const CREDENTIAL_COLS: &str =
    "id, user_id, credential_id, public_key, sign_count, name, created_at, last_used_at";
const CHALLENGE_COLS: &str =
    "id, token_hash, user_id, purpose, session_id, challenge, attempts, created_at, expires_at";

fn decode_credential(r: &SqliteRow) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("credential id".into()))?,
        user_id: uuid_col(r, 1)?.ok_or_else(|| StoreError::Corrupt("credential user".into()))?,
        credential_id: r.try_get(2)?,
        public_key: r.try_get(3)?,
        sign_count: r.try_get(4)?,
        name: r.try_get(5)?,
        created_at: r.try_get(6)?,
        last_used_at: r.try_get(7)?,
    })
}

fn decode_challenge(r: &SqliteRow) -> Result<ChallengeRow> {
    Ok(ChallengeRow {
        id: uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("challenge id".into()))?,
        token_hash: r.try_get(1)?,
        user_id: uuid_col(r, 2)?.ok_or_else(|| StoreError::Corrupt("challenge user".into()))?,
        purpose: r.try_get(3)?,
        session_id: uuid_col(r, 4)?,
        challenge: r.try_get(5)?,
        attempts: r.try_get(6)?,
        created_at: r.try_get(7)?,
        expires_at: r.try_get(8)?,
    })
}

fn decode_token(r: &SqliteRow) -> Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("token id".into()))?,
        user_id: uuid_col(r, 1)?.ok_or_else(|| StoreError::Corrupt("token user".into()))?,
        name: r.try_get(2)?,
        token_hash: r.try_get(3)?,
        created_at: r.try_get(4)?,
        last_used_at: r.try_get(5)?,
        expires_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
        scopes: r.try_get(8)?,
    })
}

fn decode_leaf(r: &SqliteRow) -> Result<LeafRow> {
    let idx: i64 = r.try_get(0)?;
    Ok(LeafRow {
        index: idx.max(0) as u64,
        data: r.try_get(1)?,
        leaf_hash: r.try_get(2)?,
    })
}

fn decode_checkpoint(r: &SqliteRow) -> Result<CheckpointRow> {
    let size: i64 = r.try_get(0)?;
    Ok(CheckpointRow {
        size: size.max(0) as u64,
        root: r.try_get(1)?,
        note: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

impl SqliteTx {
    /// Runs a COUNT query.
    async fn count(&mut self, q: Query) -> Result<u64> {
        let row = bind_all(q).fetch_one(&mut *self.tx).await?;
        let n: i64 = row.try_get(0)?;
        Ok(n.max(0) as u64)
    }

    /// Writes the pending ledger appends (before commit and before any read
    /// of the ledger tables in this transaction).
    async fn flush_ledger(&mut self) -> Result<()> {
        // One round trip for everything pending.
        if let Some(q) = sql::concat(self.pending.take(D)) {
            execute_bulk(q, &mut self.tx).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Tx for SqliteTx {
    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_ledger().await?;
        match self.tx {
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

    async fn insert_record(&mut self, entity: Entity, row: &StoredRow) -> Result<()> {
        bind_all(sql::insert(D, entity, row))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn update_record(
        &mut self,
        entity: Entity,
        id: Uuid,
        columns: &[(&'static str, SqlValue)],
    ) -> Result<bool> {
        if columns.is_empty() {
            return Ok(self.get_record(entity, id).await?.is_some());
        }
        let r = bind_all(sql::update(D, entity, id, columns))
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn update_records(
        &mut self,
        entity: Entity,
        ids: &[Uuid],
        columns: &[(&'static str, SqlValue)],
    ) -> Result<u64> {
        let mut changed = 0;
        if columns.is_empty() {
            return Ok(changed);
        }
        for chunk in ids.chunks(500) {
            let r = bind_all(sql::update_many(D, entity, chunk, columns))
                .execute(&mut *self.tx)
                .await?;
            changed += r.rows_affected();
        }
        Ok(changed)
    }

    async fn delete_record(&mut self, entity: Entity, id: Uuid) -> Result<bool> {
        bind_all(sql::delete_blind(D, entity, id, None))
            .execute(&mut *self.tx)
            .await?;
        let r = bind_all(sql::delete(D, entity, id))
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn get_record(&mut self, entity: Entity, id: Uuid) -> Result<Option<StoredRow>> {
        let row = bind_all(sql::get(D, entity, id))
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| decode_record(entity, &r)).transpose()
    }

    async fn get_record_with_flags(
        &mut self,
        entity: Entity,
        id: Uuid,
    ) -> Result<Option<(StoredRow, Vec<String>)>> {
        let row = bind_all(sql::get_with_flags(D, entity, id))
            .fetch_optional(&mut *self.tx)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let flags = sql::flag_list(r.try_get(sql::columns(entity).len())?);
        Ok(Some((decode_record(entity, &r)?, flags)))
    }

    async fn list_records(&mut self, query: &ListQuery) -> Result<Vec<StoredRow>> {
        let rows = bind_all(sql::list(D, query))
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| decode_record(query.entity, r))
            .collect()
    }

    async fn list_records_within(&mut self, query: &ListQuery, window: u32) -> Result<ListWindow> {
        // The window's last row, and whether more rows follow it.
        let (end, more) = if sql::windowed(query) {
            let rows = bind_all(sql::window_end(D, query, window))
                .fetch_all(&mut *self.tx)
                .await?;
            match rows.first() {
                Some(r) => {
                    let row = decode_record(query.entity, r)?;
                    let end = (row.get(query.sort.field).clone(), row.id);
                    (Some(end), rows.len() > 1)
                }
                None => (None, false),
            }
        } else {
            (None, false)
        };
        let rows = bind_all(sql::list_until(D, query, end.as_ref()))
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| decode_record(query.entity, r))
            .collect::<Result<Vec<_>>>()?;
        let resume = end.filter(|_| more && rows.len() < query.limit as usize);
        Ok(ListWindow { rows, resume })
    }

    async fn group_records(
        &mut self,
        entity: Entity,
        conditions: &[Condition],
        group: &[&'static str],
        sum: &'static str,
    ) -> Result<Vec<GroupRow>> {
        let rows = bind_all(sql::group(D, entity, conditions, group, sum))
            .fetch_all(&mut *self.tx)
            .await?;
        let n = group.len();
        rows.iter()
            .map(|r| {
                let mut key = Vec::with_capacity(n);
                for i in 0..n {
                    key.push(r.try_get::<Option<String>, _>(i)?);
                }
                let count: i64 = r.try_get(n)?;
                let valued: i64 = r.try_get(n + 1)?;
                Ok(GroupRow {
                    key,
                    count: count.max(0) as u64,
                    valued: valued.max(0) as u64,
                    sum: r.try_get(n + 2)?,
                })
            })
            .collect()
    }

    async fn count_records(&mut self, entity: Entity, conditions: &[Condition]) -> Result<u64> {
        self.count(sql::count(D, entity, conditions, None)).await
    }

    async fn count_records_up_to(
        &mut self,
        entity: Entity,
        conditions: &[Condition],
        limit: u64,
    ) -> Result<u64> {
        self.count(sql::count(D, entity, conditions, Some(limit)))
            .await
    }

    async fn set_blind_index(
        &mut self,
        entity: Entity,
        record_id: Uuid,
        field: &'static str,
        hashes: &[Vec<u8>],
    ) -> Result<()> {
        bind_all(sql::delete_blind(D, entity, record_id, Some(field)))
            .execute(&mut *self.tx)
            .await?;
        let rows = hashes
            .iter()
            .map(|h| (entity, field, h.as_slice(), record_id));
        if let Some(q) = sql::insert_blind_rows(D, rows) {
            bind_all(q).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn add_blind_index(
        &mut self,
        entity: Entity,
        record_id: Uuid,
        entries: &[(&'static str, Vec<u8>)],
    ) -> Result<()> {
        let rows = entries
            .iter()
            .map(|(field, h)| (entity, *field, h.as_slice(), record_id));
        if let Some(q) = sql::insert_blind_rows(D, rows) {
            bind_all(q).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn insert_new(&mut self, batch: &NewRecords) -> Result<()> {
        // One round trip for the whole batch, with the ledger rows pending.
        let mut queries = self.pending.take(D);
        queries.extend(sql::insert_new(D, batch));
        if let Some(q) = sql::concat(queries) {
            execute_bulk(q, &mut self.tx).await?;
        }
        Ok(())
    }

    async fn insert_subject_key(&mut self, row: &SubjectKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO subject_keys (subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(row.subject_id.to_string())
        .bind(row.dek_version)
        .bind(row.kind.name())
        .bind(row.wrapped_key.clone())
        .bind(row.kek_version)
        .bind(row.created_at)
        .bind(row.shredded_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn shred_subject_key(&mut self, subject_id: Uuid, now_ms: i64) -> Result<()> {
        let id = subject_id.to_string();
        sqlx::query(
            "UPDATE subject_keys SET wrapped_key = NULL, shredded_at = ?1 WHERE subject_id = ?2",
        )
        .bind(now_ms)
        .bind(&id)
        .execute(&mut *self.tx)
        .await?;
        // Records with blind-indexed fields are their own subjects (a
        // domain test checks it): the subject's entries are its record's.
        sqlx::query("DELETE FROM blind_index WHERE record_id = ?1")
            .bind(&id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO erasures (subject_id, erased_at) VALUES (?1, ?2) ON CONFLICT (subject_id) DO NOTHING")
            .bind(&id)
            .bind(now_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn get_subject_keys(&mut self, subject_id: Uuid) -> Result<Vec<SubjectKeyRow>> {
        let rows = sqlx::query(
            "SELECT subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at \
             FROM subject_keys WHERE subject_id = ?1 ORDER BY dek_version",
        )
        .bind(subject_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_subject_key).collect()
    }

    async fn get_subject_keys_many(&mut self, subjects: &[Uuid]) -> Result<Vec<SubjectKeyRow>> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(1000) {
            let rows = bind_all(sql::subject_keys_of(D, chunk))
                .persistent(false)
                .fetch_all(&mut *self.tx)
                .await?;
            for r in &rows {
                out.push(decode_subject_key(r)?);
            }
        }
        Ok(out)
    }

    async fn subject_keys_below(
        &mut self,
        kek_version: i64,
        limit: u32,
    ) -> Result<Vec<SubjectKeyRow>> {
        let rows = sqlx::query(
            "SELECT subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at \
             FROM subject_keys WHERE kek_version < ?1 AND wrapped_key IS NOT NULL LIMIT ?2",
        )
        .bind(kek_version)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_subject_key).collect()
    }

    async fn rewrap_subject_key(
        &mut self,
        subject_id: Uuid,
        dek_version: i64,
        wrapped: &[u8],
        kek_version: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE subject_keys SET wrapped_key = ?1, kek_version = ?2 \
             WHERE subject_id = ?3 AND dek_version = ?4 AND wrapped_key IS NOT NULL",
        )
        .bind(wrapped)
        .bind(kek_version)
        .bind(subject_id.to_string())
        .bind(dek_version)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn subject_key_stats(&mut self) -> Result<Vec<(i64, u64, i64)>> {
        let rows = sqlx::query(
            "SELECT kek_version, COUNT(*), MIN(created_at) FROM subject_keys \
             WHERE wrapped_key IS NOT NULL GROUP BY kek_version ORDER BY kek_version",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get(1)?;
                Ok((r.try_get(0)?, n.max(0) as u64, r.try_get(2)?))
            })
            .collect()
    }

    async fn erasures_since(&mut self, since_ms: i64) -> Result<Vec<(Uuid, i64)>> {
        let rows = sqlx::query(
            "SELECT subject_id, erased_at FROM erasures WHERE erased_at >= ?1 ORDER BY erased_at",
        )
        .bind(since_ms)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let id = uuid_col(r, 0)?.ok_or_else(|| StoreError::Corrupt("erasure id".into()))?;
                Ok((id, r.try_get(1)?))
            })
            .collect()
    }

    async fn set_flag(
        &mut self,
        subject_id: Uuid,
        flag: &str,
        request_id: Option<Uuid>,
        now_ms: i64,
    ) -> Result<bool> {
        let active: Option<i64> = sqlx::query_scalar(
            "SELECT set_at FROM processing_flags WHERE subject_id = ?1 AND flag = ?2 AND lifted_at IS NULL",
        )
        .bind(subject_id.to_string())
        .bind(flag)
        .fetch_optional(&mut *self.tx)
        .await?;
        if active.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO processing_flags (subject_id, flag, set_at, lifted_at, request_id) VALUES (?1, ?2, ?3, NULL, ?4)")
            .bind(subject_id.to_string())
            .bind(flag)
            .bind(now_ms)
            .bind(request_id.map(|r| r.to_string()))
            .execute(&mut *self.tx)
            .await?;
        Ok(true)
    }

    async fn lift_flag(&mut self, subject_id: Uuid, flag: &str, now_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE processing_flags SET lifted_at = ?1 WHERE subject_id = ?2 AND flag = ?3 AND lifted_at IS NULL",
        )
        .bind(now_ms)
        .bind(subject_id.to_string())
        .bind(flag)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn active_flags(&mut self, subjects: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(500) {
            let mut q = Query::new_sqlite();
            let marks: Vec<String> = chunk
                .iter()
                .map(|s| q.push(SqlValue::Text(s.to_string())))
                .collect();
            q.sql = format!(
                "SELECT subject_id, flag FROM processing_flags WHERE lifted_at IS NULL AND subject_id IN ({})",
                marks.join(", ")
            );
            for r in bind_all(q).fetch_all(&mut *self.tx).await? {
                let id =
                    uuid_col(&r, 0)?.ok_or_else(|| StoreError::Corrupt("flag subject".into()))?;
                out.push((id, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    async fn get_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?1")
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn put_secret(&mut self, name: &str, value: &[u8], now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (name, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn get_setting(&mut self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT name, value FROM settings WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn delete_setting(&mut self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM settings WHERE name = ?1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_setting(&mut self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert_session(&mut self, s: &SessionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, kind, verified_at, device) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(s.id.to_string())
        .bind(s.token_hash.clone())
        .bind(s.user_id.to_string())
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(s.kind.clone())
        .bind(s.verified_at)
        .bind(s.device.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn find_session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = ?1"
        )))
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| decode_session(&r)).transpose()
    }

    async fn touch_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = ?1 WHERE id = ?2")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_api_token(&mut self, t: &ApiTokenRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, last_used_at, expires_at, revoked_at, scopes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(t.id.to_string())
        .bind(t.user_id.to_string())
        .bind(t.name.clone())
        .bind(t.token_hash.clone())
        .bind(t.created_at)
        .bind(t.last_used_at)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .bind(t.scopes.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn find_api_token(&mut self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = ?1"
        )))
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| decode_token(&r)).transpose()
    }

    async fn find_api_token_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(ApiTokenRow, Option<StoredRow>)>> {
        let row = sqlx::query(AssertSqlSafe(sql::with_user(D, "api_tokens", TOKEN_COLS)))
            .bind(token_hash)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok((decode_token(&r)?, user_after(&r, TOKEN_COLS)?)))
            .transpose()
    }

    async fn find_session_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(SessionRow, Option<StoredRow>)>> {
        let row = sqlx::query(AssertSqlSafe(sql::with_user(D, "sessions", SESSION_COLS)))
            .bind(token_hash)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok((decode_session(&r)?, user_after(&r, SESSION_COLS)?)))
            .transpose()
    }

    async fn touch_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn list_sessions(
        &mut self,
        user_id: Option<Uuid>,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1 \
             AND (?2 IS NULL OR user_id = ?2) ORDER BY created_at DESC, id DESC LIMIT ?3"
        )))
        .bind(now_ms)
        .bind(user_id.map(|u| u.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_session).collect()
    }

    async fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        now_ms: i64,
        except: Option<Uuid>,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL \
             AND (?3 IS NULL OR id <> ?3)",
        )
        .bind(now_ms)
        .bind(user_id.to_string())
        .bind(except.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn set_session_verified(&mut self, id: Uuid, verified_at: i64, kind: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET verified_at = ?1, kind = ?2 WHERE id = ?3")
            .bind(verified_at)
            .bind(kind)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn list_api_tokens(&mut self, user_id: Option<Uuid>) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE (?1 IS NULL OR user_id = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT 1000"
        )))
        .bind(user_id.map(|u| u.to_string()))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_token).collect()
    }

    async fn revoke_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn get_user_auth(&mut self, user_id: Uuid) -> Result<Option<UserAuthRow>> {
        let row = sqlx::query(
            "SELECT totp_last_step, failed_since_login, last_login_at, password_changed_at, recovery_codes \
             FROM user_auth WHERE user_id = ?1",
        )
        .bind(user_id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| {
            Ok(UserAuthRow {
                user_id,
                totp_last_step: r.try_get(0)?,
                failed_since_login: r.try_get(1)?,
                last_login_at: r.try_get(2)?,
                password_changed_at: r.try_get(3)?,
                recovery_codes: r.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn put_user_auth(&mut self, a: &UserAuthRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_auth (user_id, totp_last_step, failed_since_login, last_login_at, password_changed_at, recovery_codes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id) DO UPDATE SET \
             totp_last_step = excluded.totp_last_step, failed_since_login = excluded.failed_since_login, \
             last_login_at = excluded.last_login_at, password_changed_at = excluded.password_changed_at, \
             recovery_codes = excluded.recovery_codes",
        )
        .bind(a.user_id.to_string())
        .bind(a.totp_last_step)
        .bind(a.failed_since_login)
        .bind(a.last_login_at)
        .bind(a.password_changed_at)
        .bind(a.recovery_codes.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert_credential(&mut self, c: &CredentialRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO webauthn_credentials ({CREDENTIAL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        )))
        .bind(c.id.to_string())
        .bind(c.user_id.to_string())
        .bind(c.credential_id.clone())
        .bind(c.public_key.clone())
        .bind(c.sign_count)
        .bind(c.name.clone())
        .bind(c.created_at)
        .bind(c.last_used_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn list_credentials(&mut self, user_id: Uuid) -> Result<Vec<CredentialRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CREDENTIAL_COLS} FROM webauthn_credentials WHERE user_id = ?1 ORDER BY created_at, id"
        )))
        .bind(user_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_credential).collect()
    }

    async fn touch_credential(&mut self, id: Uuid, sign_count: i64, now_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE webauthn_credentials SET sign_count = ?1, last_used_at = ?2 WHERE id = ?3",
        )
        .bind(sign_count)
        .bind(now_ms)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn delete_credentials(&mut self, user_id: Uuid, id: Option<Uuid>) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM webauthn_credentials WHERE user_id = ?1 AND (?2 IS NULL OR id = ?2)",
        )
        .bind(user_id.to_string())
        .bind(id.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn insert_challenge(&mut self, c: &ChallengeRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO auth_challenges ({CHALLENGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        )))
        .bind(c.id.to_string())
        .bind(c.token_hash.clone())
        .bind(c.user_id.to_string())
        .bind(c.purpose.clone())
        .bind(c.session_id.map(|u| u.to_string()))
        .bind(c.challenge.clone())
        .bind(c.attempts)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn find_challenge(&mut self, token_hash: &[u8]) -> Result<Option<ChallengeRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE token_hash = ?1"
        )))
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| decode_challenge(&r)).transpose()
    }

    async fn update_challenge(
        &mut self,
        id: Uuid,
        attempts: i64,
        challenge: Option<&[u8]>,
    ) -> Result<()> {
        sqlx::query("UPDATE auth_challenges SET attempts = ?1, challenge = ?2 WHERE id = ?3")
            .bind(attempts)
            .bind(challenge.map(<[u8]>::to_vec))
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn delete_challenge(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_challenges WHERE id = ?1 OR expires_at < ?2")
            .bind(id.to_string())
            .bind(now_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn record_auth_failure(&mut self, key: &[u8], at_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_failures WHERE at < ?1")
            .bind(at_ms - 86_400_000)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO auth_failures (key, at) VALUES (?1, ?2)")
            .bind(key)
            .bind(at_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn auth_failures(&mut self, key: &[u8], since_ms: i64) -> Result<(u64, Option<i64>)> {
        let r =
            sqlx::query("SELECT COUNT(*), MAX(at) FROM auth_failures WHERE key = ?1 AND at >= ?2")
                .bind(key)
                .bind(since_ms)
                .fetch_one(&mut *self.tx)
                .await?;
        let n: i64 = r.try_get(0)?;
        Ok((n.max(0) as u64, r.try_get(1)?))
    }

    async fn ledger_head(&mut self) -> Result<LedgerHead> {
        if let Some(h) = &self.head {
            return Ok(h.clone());
        }
        let row = sqlx::query("SELECT size, frontier, bytes FROM ledger_head WHERE id = 1")
            .fetch_optional(&mut *self.tx)
            .await?;
        let Some(r) = row else {
            return Ok(LedgerHead::default());
        };
        let size: i64 = r.try_get(0)?;
        let blob: Vec<u8> = r.try_get(1)?;
        if !blob.len().is_multiple_of(32) {
            return Err(StoreError::Corrupt("ledger frontier".into()));
        }
        let frontier = blob.chunks(32).map(to_hash).collect::<Result<Vec<_>>>()?;
        let bytes: i64 = r.try_get(2)?;
        Ok(LedgerHead {
            size: size.max(0) as u64,
            frontier,
            bytes: bytes.max(0) as u64,
        })
    }

    async fn append_leaf(
        &mut self,
        leaf: &LeafRow,
        index: &LeafIndex,
        nodes: &[(u32, u64, [u8; 32])],
        head: &LedgerHead,
    ) -> Result<()> {
        if self.read_only {
            return Err(StoreError::Unsupported(
                "a read transaction cannot append to the ledger".into(),
            ));
        }
        self.head = Some(head.clone());
        if self.pending.push(leaf, index, nodes, head) {
            self.flush_ledger().await?;
        }
        Ok(())
    }

    async fn find_leaves(&mut self, f: &EventFilter, limit: u32) -> Result<Vec<u64>> {
        self.flush_ledger().await?;
        let mut q = Query::new_sqlite();
        let mut wh = Vec::new();
        for (col, v) in [
            ("subject_id", &f.subject_id),
            ("actor", &f.actor),
            ("action", &f.action),
            ("record", &f.record),
        ] {
            if let Some(v) = v {
                wh.push(format!("{col} = {}", q.push(SqlValue::Text(v.clone()))));
            }
        }
        if let Some(t) = f.from_ms {
            wh.push(format!("time_ms >= {}", q.push(SqlValue::Int(t))));
        }
        if let Some(t) = f.to_ms {
            wh.push(format!("time_ms < {}", q.push(SqlValue::Int(t))));
        }
        if let Some(b) = f.before_index {
            wh.push(format!("idx < {}", q.push(SqlValue::Int(b as i64))));
        }
        let wh = if wh.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", wh.join(" AND "))
        };
        let lim = q.push(SqlValue::Int(i64::from(limit)));
        q.sql = format!("SELECT idx FROM ledger_index{wh} ORDER BY idx DESC LIMIT {lim}");
        let rows = bind_all(q.into_query()).fetch_all(&mut *self.tx).await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>(0)?.max(0) as u64))
            .collect()
    }

    async fn ledger_nodes(
        &mut self,
        level: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>> {
        self.flush_ledger().await?;
        let rows = sqlx::query("SELECT idx, hash FROM ledger_nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx")
            .bind(i64::from(level))
            .bind(start as i64)
            .bind(end as i64)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| {
                let idx: i64 = r.try_get(0)?;
                let h: Vec<u8> = r.try_get(1)?;
                Ok((idx.max(0) as u64, to_hash(&h)?))
            })
            .collect()
    }

    async fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(row.size as i64)
        .bind(row.root.clone())
        .bind(row.note.clone())
        .bind(row.created_at)
        .execute(&mut *self.tx)
        .await?;
        // Counted with the head, so the ledger's status does not count
        // every checkpoint (one a minute while the ledger grows).
        sqlx::query("UPDATE ledger_head SET checkpoints = checkpoints + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn checkpoints(&mut self) -> Result<Vec<CheckpointRow>> {
        let rows = sqlx::query(
            "SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_checkpoint).collect()
    }

    async fn latest_checkpoint(&mut self) -> Result<Option<CheckpointRow>> {
        let row = sqlx::query(
            "SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(decode_checkpoint).transpose()
    }

    async fn checkpoint_count(&mut self) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT checkpoints FROM ledger_head WHERE id = 1")
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn ledger_leaves(&mut self, start: u64, end: u64) -> Result<Vec<LeafRow>> {
        self.flush_ledger().await?;
        let rows = sqlx::query("SELECT idx, data, leaf_hash FROM ledger_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")
            .bind(start as i64)
            .bind(end as i64)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(decode_leaf).collect()
    }

    async fn ledger_leaves_at(&mut self, indexes: &[u64]) -> Result<Vec<LeafRow>> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        self.flush_ledger().await?;
        let mut out = Vec::with_capacity(indexes.len());
        for chunk in indexes.chunks(500) {
            let rows = bind_all(sql::leaves_at(D, chunk))
                .fetch_all(&mut *self.tx)
                .await?;
            for r in &rows {
                out.push(decode_leaf(r)?);
            }
        }
        out.sort_by_key(|l| l.index);
        Ok(out)
    }

    async fn ledger_node(&mut self, level: u32, index: u64) -> Result<Option<[u8; 32]>> {
        self.flush_ledger().await?;
        let h: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT hash FROM ledger_nodes WHERE level = ?1 AND idx = ?2")
                .bind(i64::from(level))
                .bind(index as i64)
                .fetch_optional(&mut *self.tx)
                .await?;
        h.map(|h| to_hash(&h)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sort;
    use custos_domain::inventory;

    #[tokio::test]
    async fn schema_matches_the_inventory_both_ways() {
        let store = SqliteStore::memory().await.expect("open");
        assert_eq!(
            store.schema_version().await.expect("version"),
            MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
        );
        for entity in Entity::ALL {
            let mut cols = store.table_columns(entity.plural()).await.expect("cols");
            cols.sort();
            let mut declared: Vec<String> =
                sql::columns(entity).into_iter().map(String::from).collect();
            declared.sort();
            assert_eq!(
                cols,
                declared,
                "table {} differs from the inventory",
                entity.plural()
            );
            for f in inventory::fields(entity) {
                assert!(cols.contains(&f.name.to_string()));
            }
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_paginate_by_keyset() {
        let store = SqliteStore::memory().await.expect("open");
        let mut tx = store.begin().await.expect("tx");
        let mut ids = Vec::new();
        for i in 0..5i64 {
            let id = Uuid::now_v7();
            ids.push(id);
            let row = StoredRow {
                id,
                subject_id: None,
                columns: vec![
                    ("name", SqlValue::Text(format!("Company {i}"))),
                    ("created_at", SqlValue::Int(1000 + i)),
                    ("updated_at", SqlValue::Int(1000 + i)),
                ],
            };
            tx.insert_record(Entity::Company, &row)
                .await
                .expect("insert");
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let q = ListQuery {
                entity: Entity::Company,
                conditions: vec![],
                sort: Sort {
                    field: "created_at",
                    descending: true,
                },
                after: after.clone(),
                limit: 2,
            };
            let page = tx.list_records(&q).await.expect("list");
            if page.is_empty() {
                break;
            }
            for r in &page {
                seen.push(r.id);
            }
            let last = page.last().expect("row");
            after = Some((last.get("created_at").clone(), last.id));
        }
        ids.reverse();
        assert_eq!(seen, ids);
        let n = tx
            .count_records(
                Entity::Company,
                &[Condition::Contains("name", "company 3".into())],
            )
            .await
            .expect("count");
        assert_eq!(n, 1);
        tx.commit().await.expect("commit");
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
        for (v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= version) {
            sqlx::raw_sql(AssertSqlSafe(*sql))
                .execute(&mut conn)
                .await
                .expect("migration");
            sqlx::query("INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)")
                .bind(v)
                .bind(*name)
                .execute(&mut conn)
                .await
                .expect("version");
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
            for f in inventory::fields(entity).filter(|f| f.sortable) {
                assert_eq!(
                    sql::never_null(entity, f.name),
                    not_null.iter().any(|c| c == f.name),
                    "{}.{}",
                    entity.plural(),
                    f.name
                );
            }
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
        assert_eq!(tx.checkpoint_count().await.expect("count"), 2);
        assert_eq!(
            tx.latest_checkpoint()
                .await
                .expect("latest")
                .map(|c| c.note),
            Some("nine".to_string())
        );
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
            for (field, hash, record) in [
                ("email", vec![1u8, 2, 3], &a),
                ("last_name", vec![4, 5, 6], &a),
                ("last_name", vec![4, 5, 6], &a),
                ("email", vec![1, 2, 3], &b),
            ] {
                sqlx::query(
                    "INSERT INTO blind_index (entity, field, hash, record_id, subject_id) \
                     VALUES ('contact', ?1, ?2, ?3, ?3)",
                )
                .bind(field)
                .bind(hash)
                .bind(record)
                .execute(&mut conn)
                .await
                .expect("entry");
            }
            conn.close().await.expect("close");
        }
        let store = SqliteStore::open(&path).await.expect("migrate");
        assert_eq!(
            store.schema_version().await.expect("version"),
            MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
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
