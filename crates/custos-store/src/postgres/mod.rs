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

use crate::pending::PendingLedger;
use crate::sql::{self, Dialect, Query};
use crate::{
    ApiTokenRow, ChallengeRow, CheckpointRow, ColumnType, Condition, CredentialRow, EventFilter,
    GroupRow, LeafIndex, LeafRow, LedgerHead, ListQuery, ListWindow, NewRecords, Result,
    SessionRow, SqlValue, Store, StoreError, StoredRow, SubjectKeyRow, Tx, UserAuthRow,
};
use async_trait::async_trait;
use custos_domain::Entity;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool, Postgres, Row, Transaction};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// Versioned migrations, applied in order on connect; the versions are those of
/// the SQLite migrations, so both backends are at the same schema version.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "ledger_checkpoints",
        include_str!("../../migrations/postgres/0002_ledger_checkpoints.sql"),
    ),
    (
        3,
        "subject_key_versions",
        include_str!("../../migrations/postgres/0003_subject_key_versions.sql"),
    ),
    (
        4,
        "identity",
        include_str!("../../migrations/postgres/0004_identity.sql"),
    ),
    (
        10,
        "dsar_consent",
        include_str!("../../migrations/postgres/0010_dsar_consent.sql"),
    ),
    (
        11,
        "ledger_bytes",
        include_str!("../../migrations/postgres/0011_ledger_bytes.sql"),
    ),
    (
        12,
        "blind_index_key",
        include_str!("../../migrations/postgres/0012_blind_index_key.sql"),
    ),
    (
        13,
        "sort_indexes",
        include_str!("../../migrations/postgres/0013_sort_indexes.sql"),
    ),
    (
        14,
        "owner_indexes",
        include_str!("../../migrations/postgres/0014_owner_indexes.sql"),
    ),
    (
        15,
        "dashboard_and_filter_indexes",
        include_str!("../../migrations/postgres/0015_dashboard_and_filter_indexes.sql"),
    ),
    (
        16,
        "won_undated_index",
        include_str!("../../migrations/postgres/0016_won_undated_index.sql"),
    ),
];

/// The version the newest migration brings the schema to.
fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
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
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let latest = latest_version();
        if current > latest {
            return Err(StoreError::Corrupt(format!(
                "the database is at schema version {current}, newer than this Custos ({latest}): upgrade Custos"
            )));
        }
        for (version, name, sql) in MIGRATIONS {
            // Versions need not be contiguous: apply each one that is missing.
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            // Built once, but on millions of rows a new index takes
            // minutes: an upgrade says what the pause at start-up is.
            if current > 0 {
                tracing::info!(version, name, "applying database migration");
            }
            sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(*name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
        Ok(Box::new(PostgresTx {
            tx,
            head: None,
            pending: PendingLedger::default(),
            read_only: false,
        }))
    }

    async fn begin_bulk(&self) -> Result<Box<dyn Tx>> {
        // The server's own cache serves every connection alike.
        self.begin().await
    }

    async fn begin_read(&self) -> Result<Box<dyn Tx>> {
        // Without the write lock: readers do not queue behind writers.
        let tx = self.pool.begin_with("BEGIN READ ONLY").await?;
        Ok(Box::new(PostgresTx {
            tx,
            head: None,
            pending: PendingLedger::default(),
            read_only: true,
        }))
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

struct PostgresTx {
    tx: Transaction<'static, Postgres>,
    /// The ledger head as of the last append in this transaction. The write
    /// lock taken in `begin` keeps every other writer out until commit, so
    /// the cached head cannot go stale.
    head: Option<LedgerHead>,
    /// Ledger appends not yet written (see `crate::pending`).
    pending: PendingLedger,
    /// Started by `begin_read`: ledger appends are refused.
    read_only: bool,
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_all(q: Query) -> PgQuery<'static> {
    let types: Vec<ColumnType> = (0..q.binds.len()).map(|i| q.type_of(i)).collect();
    let mut query = sqlx::query(AssertSqlSafe(q.sql));
    for (v, ty) in q.binds.into_iter().zip(types) {
        query = match v {
            // PostgreSQL types every parameter: a NULL goes with its column's type.
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

fn uuid_col(row: &PgRow, idx: usize) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(idx)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt("bad uuid".into())))
        .transpose()
}

fn decode_record(entity: Entity, row: &PgRow) -> Result<StoredRow> {
    decode_record_at(entity, row, 0)
}

/// The user's record in the columns after a token's or session's own
/// (`cols`); `None` when the user is gone.
fn user_after(r: &PgRow, cols: &str) -> Result<Option<StoredRow>> {
    let at = cols.split(", ").count();
    match uuid_col(r, at)? {
        Some(_) => decode_record_at(Entity::User, r, at).map(Some),
        None => Ok(None),
    }
}

/// A record whose columns start at `at` in the row.
fn decode_record_at(entity: Entity, row: &PgRow, at: usize) -> Result<StoredRow> {
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

fn decode_subject_key(r: &PgRow) -> Result<SubjectKeyRow> {
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

fn decode_session(r: &PgRow) -> Result<SessionRow> {
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

fn decode_credential(r: &PgRow) -> Result<CredentialRow> {
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

fn decode_challenge(r: &PgRow) -> Result<ChallengeRow> {
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

fn decode_token(r: &PgRow) -> Result<ApiTokenRow> {
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

fn decode_leaf(r: &PgRow) -> Result<LeafRow> {
    let idx: i64 = r.try_get(0)?;
    Ok(LeafRow {
        index: idx.max(0) as u64,
        data: r.try_get(1)?,
        leaf_hash: r.try_get(2)?,
    })
}

fn decode_checkpoint(r: &PgRow) -> Result<CheckpointRow> {
    let size: i64 = r.try_get(0)?;
    Ok(CheckpointRow {
        size: size.max(0) as u64,
        root: r.try_get(1)?,
        note: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

impl PostgresTx {
    /// Runs a COUNT query.
    async fn count(&mut self, q: Query) -> Result<u64> {
        let row = bind_all(q).fetch_one(&mut *self.tx).await?;
        let n: i64 = row.try_get(0)?;
        Ok(n.max(0) as u64)
    }

    /// Writes the pending ledger appends (before commit and before any read
    /// of the ledger tables in this transaction).
    async fn flush_ledger(&mut self) -> Result<()> {
        for q in self.pending.take(D) {
            bind_all(q).execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Tx for PostgresTx {
    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_ledger().await?;
        self.tx.commit().await?;
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
        for q in sql::insert_new(D, batch) {
            bind_all(q).persistent(false).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn insert_subject_key(&mut self, row: &SubjectKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO subject_keys (subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "UPDATE subject_keys SET wrapped_key = NULL, shredded_at = $1 WHERE subject_id = $2",
        )
        .bind(now_ms)
        .bind(&id)
        .execute(&mut *self.tx)
        .await?;
        // Records with blind-indexed fields are their own subjects (a
        // domain test checks it): the subject's entries are its record's.
        sqlx::query("DELETE FROM blind_index WHERE record_id = $1")
            .bind(&id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO erasures (subject_id, erased_at) VALUES ($1, $2) ON CONFLICT (subject_id) DO NOTHING",
        )
        .bind(&id)
        .bind(now_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn get_subject_keys(&mut self, subject_id: Uuid) -> Result<Vec<SubjectKeyRow>> {
        let rows = sqlx::query(
            "SELECT subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at \
             FROM subject_keys WHERE subject_id = $1 ORDER BY dek_version",
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
             FROM subject_keys WHERE kek_version < $1 AND wrapped_key IS NOT NULL LIMIT $2",
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
            "UPDATE subject_keys SET wrapped_key = $1, kek_version = $2 \
             WHERE subject_id = $3 AND dek_version = $4 AND wrapped_key IS NOT NULL",
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
            "SELECT subject_id, erased_at FROM erasures WHERE erased_at >= $1 ORDER BY erased_at",
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
            "SELECT set_at FROM processing_flags WHERE subject_id = $1 AND flag = $2 AND lifted_at IS NULL",
        )
        .bind(subject_id.to_string())
        .bind(flag)
        .fetch_optional(&mut *self.tx)
        .await?;
        if active.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO processing_flags (subject_id, flag, set_at, lifted_at, request_id) VALUES ($1, $2, $3, NULL, $4)",
        )
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
            "UPDATE processing_flags SET lifted_at = $1 WHERE subject_id = $2 AND flag = $3 AND lifted_at IS NULL",
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
            let mut q = Query::new_postgres();
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
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn put_secret(&mut self, name: &str, value: &[u8], now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (name, value, updated_at) VALUES ($1, $2, $3) \
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
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT name, value FROM settings WHERE substr(name, 1, length($1)) = $1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn delete_setting(&mut self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM settings WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_setting(&mut self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
            "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| decode_session(&r)).transpose()
    }

    async fn touch_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_api_token(&mut self, t: &ApiTokenRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, last_used_at, expires_at, revoked_at, scopes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"
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
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
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
            "SELECT {SESSION_COLS} FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 \
             AND ($2::TEXT IS NULL OR user_id = $2) ORDER BY created_at DESC, id DESC LIMIT $3"
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
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
             AND ($3::TEXT IS NULL OR id <> $3)",
        )
        .bind(now_ms)
        .bind(user_id.to_string())
        .bind(except.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn set_session_verified(&mut self, id: Uuid, verified_at: i64, kind: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET verified_at = $1, kind = $2 WHERE id = $3")
            .bind(verified_at)
            .bind(kind)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn list_api_tokens(&mut self, user_id: Option<Uuid>) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE ($1::TEXT IS NULL OR user_id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT 1000"
        )))
        .bind(user_id.map(|u| u.to_string()))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_token).collect()
    }

    async fn revoke_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
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
             FROM user_auth WHERE user_id = $1",
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
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET \
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
            "INSERT INTO webauthn_credentials ({CREDENTIAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
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
            "SELECT {CREDENTIAL_COLS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"
        )))
        .bind(user_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_credential).collect()
    }

    async fn touch_credential(&mut self, id: Uuid, sign_count: i64, now_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE webauthn_credentials SET sign_count = $1, last_used_at = $2 WHERE id = $3",
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
            "DELETE FROM webauthn_credentials WHERE user_id = $1 AND ($2::TEXT IS NULL OR id = $2)",
        )
        .bind(user_id.to_string())
        .bind(id.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn insert_challenge(&mut self, c: &ChallengeRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO auth_challenges ({CHALLENGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
            "SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE token_hash = $1"
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
        sqlx::query("UPDATE auth_challenges SET attempts = $1, challenge = $2 WHERE id = $3")
            .bind(attempts)
            .bind(challenge.map(<[u8]>::to_vec))
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn delete_challenge(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_challenges WHERE id = $1 OR expires_at < $2")
            .bind(id.to_string())
            .bind(now_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn record_auth_failure(&mut self, key: &[u8], at_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM auth_failures WHERE at < $1")
            .bind(at_ms - 86_400_000)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("INSERT INTO auth_failures (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(at_ms)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn auth_failures(&mut self, key: &[u8], since_ms: i64) -> Result<(u64, Option<i64>)> {
        let r =
            sqlx::query("SELECT COUNT(*), MAX(at) FROM auth_failures WHERE key = $1 AND at >= $2")
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
        let mut q = Query::new_postgres();
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
        let rows = sqlx::query(
            "SELECT idx, hash FROM ledger_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
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
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
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
        let rows = sqlx::query(
            "SELECT idx, data, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
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
            sqlx::query_scalar("SELECT hash FROM ledger_nodes WHERE level = $1 AND idx = $2")
                .bind(i64::from(level))
                .bind(index as i64)
                .fetch_optional(&mut *self.tx)
                .await?;
        h.map(|h| to_hash(&h)).transpose()
    }
}

#[cfg(test)]
mod tests {
    //! These run when `CUSTOS_TEST_POSTGRES_URL` names a PostgreSQL server
    //! (see custos-testkit); each test creates a database of its own.
    use super::*;
    use crate::{Sort, SqliteStore};
    use custos_domain::inventory;

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
            // Sortable columns sort bare exactly when declared NOT NULL.
            let not_null: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 AND is_nullable = 'NO'",
            )
            .bind(entity.plural())
            .fetch_all(&store.pool)
            .await
            .expect("not null");
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
                    ("domain", SqlValue::Null),
                    ("created_at", SqlValue::Int(1000 + i)),
                    ("updated_at", SqlValue::Int(1000 + i)),
                ],
            };
            tx.insert_record(Entity::Company, &row)
                .await
                .expect("insert");
        }
        // Typed NULLs in every column type: text, integer, boolean, bytes.
        let contact = Uuid::now_v7();
        tx.insert_record(
            Entity::Activity,
            &StoredRow {
                id: Uuid::now_v7(),
                subject_id: Some(contact),
                columns: vec![
                    ("contact_id", SqlValue::Text(contact.to_string())),
                    ("kind", SqlValue::Text("note".into())),
                    ("body", SqlValue::Null),
                    ("occurred_at", SqlValue::Int(5)),
                    ("due_at", SqlValue::Null),
                    ("done", SqlValue::Null),
                    ("owner_id", SqlValue::Null),
                    ("created_at", SqlValue::Int(5)),
                    ("updated_at", SqlValue::Int(5)),
                ],
            },
        )
        .await
        .expect("insert with nulls");
        let n = tx
            .count_records(
                Entity::Activity,
                &[
                    Condition::IsNull("done"),
                    Condition::Eq("kind", SqlValue::Text("note".into())),
                ],
            )
            .await
            .expect("count");
        assert_eq!(n, 1);
        assert!(
            tx.update_record(Entity::Company, ids[0], &[("domain", SqlValue::Null)])
                .await
                .expect("update to null")
        );
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
        for (needle, expect) in [("company 3", 1), ("COMPANY", 5), ("50%", 0), ("_", 0)] {
            let n = tx
                .count_records(
                    Entity::Company,
                    &[Condition::Contains("name", needle.into())],
                )
                .await
                .expect("count");
            assert_eq!(n, expect, "contains {needle:?}");
        }
        tx.commit().await.expect("commit");
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
            for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= 11) {
                sqlx::raw_sql(AssertSqlSafe(*sql))
                    .execute(&mut conn)
                    .await
                    .expect("migration");
                sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
                    .bind(version)
                    .bind(*name)
                    .execute(&mut conn)
                    .await
                    .expect("version");
            }
            for (field, hash, record) in [
                ("email", vec![1u8, 2, 3], &a),
                ("last_name", vec![4, 5, 6], &a),
                ("last_name", vec![4, 5, 6], &a),
                ("email", vec![1, 2, 3], &b),
            ] {
                sqlx::query(
                    "INSERT INTO blind_index (entity, field, hash, record_id, subject_id) \
                     VALUES ('contact', $1, $2, $3, $3)",
                )
                .bind(field)
                .bind(hash)
                .bind(record)
                .execute(&mut conn)
                .await
                .expect("entry");
            }
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
        assert_eq!(tx.checkpoint_count().await.expect("count"), 2);
        assert_eq!(
            tx.latest_checkpoint()
                .await
                .expect("latest")
                .map(|c| c.note),
            Some("nine".to_string())
        );
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
