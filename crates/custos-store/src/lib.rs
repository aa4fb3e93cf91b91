//! Storage of Custos behind the [`Store`] and [`Tx`] traits.
//!
//! The store only ever sees ciphertext for personal fields: the service layer seals
//! values before they arrive here and opens them after they leave. Every use case
//! runs in one [`Tx`], so the audit leaf it appends commits or rolls back with the
//! change it records. SQL is built once by [`sql`] for every backend; each backend
//! module only executes it.

pub mod admin;
pub mod exec;
mod identity;
mod migrations;
mod pending;
pub mod postgres;
mod retention;
mod settings;
#[cfg(test)]
mod shared_tests;
pub mod sql;
pub mod sqlite;
pub mod transfer;
mod tx;

use async_trait::async_trait;
use custos_domain::Entity;
use uuid::Uuid;

/// The store traits, for code that calls them on a `dyn Tx`.
pub mod prelude {
    pub use crate::{
        HoldsTx, IdentityTx, LedgerTx, PolicyVersionsTx, RecordsTx, RetentionTx, SettingsTx, Store,
        SubjectsTx, Tx,
    };
}

pub use identity::IdentityTx;
pub use postgres::PostgresStore;
pub use retention::{
    HoldsTx, LegalHoldRow, PolicyVersionRow, PolicyVersionsTx, RetentionRunRow, RetentionTx,
};
pub use settings::SettingsTx;
pub use sqlite::SqliteStore;

/// A storage failure. Internal detail stays in the message for logs; it never
/// contains personal values because the store never sees any.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(String),
    /// A uniqueness or foreign-key rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data is not in the expected shape.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The backend cannot do this; the message says what to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// A database URL that names no supported backend.
    #[error("unsupported database URL (use sqlite://PATH or postgres://…)")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Query(e.to_string()),
        }
    }
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A value as stored in one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// TEXT.
    Text(String),
    /// 64-bit integer (amounts in hundredths, times in Unix milliseconds).
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// Bytes: sealed values.
    Blob(Vec<u8>),
}

/// How a column is stored, derived from the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// TEXT.
    Text,
    /// BIGINT.
    Int,
    /// BOOLEAN.
    Bool,
    /// BLOB / BYTEA (sealed).
    Blob,
}

/// The column type of a declared field.
pub fn column_type(decl: &custos_domain::FieldDecl) -> ColumnType {
    use custos_domain::FieldKind as K;
    if decl.protection.is_sealed() {
        return ColumnType::Blob;
    }
    match decl.kind {
        K::Money | K::Timestamp => ColumnType::Int,
        K::Bool => ColumnType::Bool,
        _ => ColumnType::Text,
    }
}

/// One stored record: its id, the subject whose key seals it, and its columns in
/// inventory order (sealed columns hold ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Record id.
    pub id: Uuid,
    /// The data subject, if the record is about a person.
    pub subject_id: Option<Uuid>,
    /// Column values by field name.
    pub columns: Vec<(&'static str, SqlValue)>,
}

impl StoredRow {
    /// The value of a column (`Null` if absent).
    pub fn get(&self, field: &str) -> &SqlValue {
        self.columns
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, v)| v)
            .unwrap_or(&SqlValue::Null)
    }
}

/// A filter on records, compiled to SQL by [`sql`].
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Column equals value.
    Eq(&'static str, SqlValue),
    /// Column is NULL.
    IsNull(&'static str),
    /// Column holds a value.
    NotNull(&'static str),
    /// Column ≥ value.
    AtLeast(&'static str, SqlValue),
    /// Column < value.
    Before(&'static str, SqlValue),
    /// The column's sort key (as a list sorts it, see [`sql::sort_expr`]:
    /// NULL as the lowest value) < value: a range of the indexes built on
    /// that key.
    SortKeyBefore(&'static str, SqlValue),
    /// The column's sort key > value (see [`Condition::SortKeyBefore`]).
    SortKeyAfter(&'static str, SqlValue),
    /// The record has a blind-index entry for `field` equal to `hash`.
    Blind {
        /// The indexed field.
        field: &'static str,
        /// The truncated HMAC.
        hash: Vec<u8>,
    },
    /// The record has a blind-index entry for `field` equal to any of
    /// `hashes` (the duplicate checks of a whole import chunk in one query).
    BlindAny {
        /// The indexed field.
        field: &'static str,
        /// The truncated HMACs.
        hashes: Vec<Vec<u8>>,
    },
    /// A plain text column contains the needle, case-insensitively.
    Contains(&'static str, String),
    /// The record referenced by `field` (of entity `target`) has a plain text column
    /// `target_field` containing the needle, case-insensitively.
    RefContains {
        /// The reference column on this entity.
        field: &'static str,
        /// The referenced entity.
        target: Entity,
        /// The plain text column on it.
        target_field: &'static str,
        /// What to look for.
        needle: String,
    },
    /// Id is one of these.
    IdIn(Vec<Uuid>),
    /// Column equals one of these values (none: no row).
    In(&'static str, Vec<SqlValue>),
    /// All must hold.
    And(Vec<Condition>),
    /// Any must hold.
    Or(Vec<Condition>),
}

/// Sort order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// A plain, sortable column.
    pub field: &'static str,
    /// Newest / largest first.
    pub descending: bool,
}

/// A page of a list, with keyset pagination.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Which entity.
    pub entity: Entity,
    /// Filters (all must hold).
    pub conditions: Vec<Condition>,
    /// Sort order; ties are broken by id in the same direction.
    pub sort: Sort,
    /// Start after this (sort value, id), from the previous page's last row.
    pub after: Option<(SqlValue, Uuid)>,
    /// Page size.
    pub limit: u32,
}

/// One page of a list read a window at a time (see
/// [`RecordsTx::list_records_within`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ListWindow {
    /// The matching rows, in the list's order, at most the query's limit.
    pub rows: Vec<StoredRow>,
    /// Set when the window ended before the page was full and more rows
    /// follow: the (sort value, id) of the window's last row, where the next
    /// read goes on.
    pub resume: Option<(SqlValue, Uuid)>,
}

/// One group of [`RecordsTx::group_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// The values of the grouping columns, in their order.
    pub key: Vec<Option<String>>,
    /// How many records the group holds.
    pub count: u64,
    /// How many of them have a value in the summed column.
    pub valued: u64,
    /// The sum of the summed column (0 when none has a value).
    pub sum: i64,
}

/// The wrapped data key of one data subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeyRow {
    /// The subject's id.
    pub subject_id: Uuid,
    /// Version of this data key for the subject (1, 2, …; newest seals new values).
    pub dek_version: i64,
    /// Which entity the subject is (contact or user).
    pub kind: Entity,
    /// The data key wrapped by the master key; `None` once shredded.
    pub wrapped_key: Option<Vec<u8>>,
    /// Version of the master key that wrapped it.
    pub kek_version: i64,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it was destroyed (Unix ms), if erased.
    pub shredded_at: Option<i64>,
}

/// One blind-index entry of a new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindEntry {
    /// The record's entity.
    pub entity: Entity,
    /// The indexed field.
    pub field: &'static str,
    /// The truncated HMAC.
    pub hash: Vec<u8>,
    /// The record. Records with blind-indexed fields are their own data
    /// subjects: erasing the subject deletes its record's entries.
    pub record_id: Uuid,
}

/// New records to write together ([`RecordsTx::insert_new`]): the new data keys of
/// subjects created with them, the rows, and their blind-index entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecords {
    /// New subjects' data keys (version 1).
    pub keys: Vec<SubjectKeyRow>,
    /// The records, each with its entity.
    pub rows: Vec<(Entity, StoredRow)>,
    /// Their blind-index entries (the records have none yet).
    pub blind: Vec<BlindEntry>,
}

impl NewRecords {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.rows.is_empty() && self.blind.is_empty()
    }
}

/// A web session (the token itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Session id (opaque, used in audit events).
    pub id: Uuid,
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// The user signed in.
    pub user_id: Uuid,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last request (Unix ms), for the idle timeout.
    pub last_seen_at: i64,
    /// Absolute end (Unix ms).
    pub expires_at: i64,
    /// Revoked (Unix ms).
    pub revoked_at: Option<i64>,
    /// `full`, or `enrol` for a session that may only set up a second factor.
    pub kind: String,
    /// When a second factor (or, for accounts without one, the password) was
    /// last checked in this session (Unix ms), for step-up.
    pub verified_at: Option<i64>,
    /// The device (user agent and address), sealed under the user's data key.
    pub device: Option<Vec<u8>>,
}

/// An API token (stored hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// Token id (opaque, used in audit events).
    pub id: Uuid,
    /// The user it acts as.
    pub user_id: Uuid,
    /// A label chosen by its creator.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last used (Unix ms).
    pub last_used_at: Option<i64>,
    /// Expiry (Unix ms), if any.
    pub expires_at: Option<i64>,
    /// Revoked (Unix ms).
    pub revoked_at: Option<i64>,
    /// Comma-separated scopes; `None` allows everything the user's role does.
    pub scopes: Option<String>,
}

/// The sign-in state of one user: counters, times and hashes, no personal values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserAuthRow {
    /// The user.
    pub user_id: Uuid,
    /// Time step of the last accepted TOTP code (older or equal steps are replays).
    pub totp_last_step: Option<i64>,
    /// Failed sign-ins since the last successful one (told to the user).
    pub failed_since_login: i64,
    /// Last successful sign-in (Unix ms).
    pub last_login_at: Option<i64>,
    /// Last password change (Unix ms): sessions from before it are refused.
    pub password_changed_at: Option<i64>,
    /// SHA-256 hashes (32 bytes each) of the unused recovery codes.
    pub recovery_codes: Vec<u8>,
}

/// A WebAuthn credential (passkey or security key) of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// Row id (opaque, used in audit events and URLs).
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// The authenticator's credential id.
    pub credential_id: Vec<u8>,
    /// The public key (algorithm tag and key bytes).
    pub public_key: Vec<u8>,
    /// Signature counter.
    pub sign_count: i64,
    /// The name the user gave it, sealed under their data key.
    pub name: Option<Vec<u8>>,
    /// Registered (Unix ms).
    pub created_at: i64,
    /// Last used (Unix ms).
    pub last_used_at: Option<i64>,
}

/// A short-lived authentication ceremony (a sign-in waiting for its second
/// factor, a passkey registration, a step-up), found by its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    /// Row id.
    pub id: Uuid,
    /// SHA-256 of the token given to the client.
    pub token_hash: Vec<u8>,
    /// The user.
    pub user_id: Uuid,
    /// `signin`, `register` or `stepup`.
    pub purpose: String,
    /// The session it belongs to, if any.
    pub session_id: Option<Uuid>,
    /// The WebAuthn challenge issued, if any.
    pub challenge: Option<Vec<u8>>,
    /// Wrong codes tried so far.
    pub attempts: i64,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Ends (Unix ms).
    pub expires_at: i64,
}

/// One stored ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    /// Position in the log, from 0.
    pub index: u64,
    /// The canonical event bytes.
    pub data: Vec<u8>,
    /// SHA-256(0x00 ‖ data), as stored.
    pub leaf_hash: Vec<u8>,
}

/// The searchable ids of one ledger leaf (the leaf itself stays canonical bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafIndex {
    /// Event time (Unix ms).
    pub time_ms: i64,
    /// Actor string (`user:<uuid>`, `cli`, …).
    pub actor: String,
    /// Action (`contact.read`, …).
    pub action: String,
    /// Data subject id, if any.
    pub subject_id: Option<String>,
    /// Record (`contact:<uuid>`), if any.
    pub record: Option<String>,
    /// Outcome.
    pub outcome: String,
}

/// A filter on ledger events; every given part must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter {
    /// Data subject id.
    pub subject_id: Option<String>,
    /// Actor string.
    pub actor: Option<String>,
    /// Action name.
    pub action: Option<String>,
    /// Record (`entity:uuid`).
    pub record: Option<String>,
    /// Events at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Events before (Unix ms).
    pub to_ms: Option<i64>,
    /// Only leaves with index below this (for paging newest first).
    pub before_index: Option<u64>,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Tree size it commits to.
    pub size: u64,
    /// Root hash at that size.
    pub root: Vec<u8>,
    /// The signed note.
    pub note: String,
    /// When it was signed (Unix ms).
    pub created_at: i64,
}

/// The state of the Merkle tree after the last append.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerHead {
    /// Number of leaves.
    pub size: u64,
    /// Roots of the perfect subtrees that make up the tree, left to right.
    pub frontier: Vec<[u8; 32]>,
    /// Total bytes of every leaf (the ledger's size on its status page).
    pub bytes: u64,
}

/// The page cache of a bulk write transaction on SQLite, in MiB
/// ([`Store::begin_bulk`]). A million-row import writes blind-index entries
/// at random places in an index of hundreds of MiB; with the usual 32 MiB
/// the cache keeps spilling pages to the WAL and reading them back.
pub const BULK_CACHE_MIB: u32 = 256;

/// A storage backend. It hands out transactions; everything else happens in one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Starts a transaction that may write (SQLite: `BEGIN IMMEDIATE`).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Starts a transaction that only reads: it does not queue behind
    /// writers (SQLite: a deferred `BEGIN` on its WAL snapshot; PostgreSQL:
    /// `BEGIN READ ONLY` without the write lock). Appending to the ledger in
    /// it is refused. (No default: a wrapper that forgot it would quietly
    /// turn every read into a write transaction.)
    async fn begin_read(&self) -> Result<Box<dyn Tx>>;
    /// Starts a write transaction for bulk work (an import): the same as
    /// [`Store::begin`], but SQLite gives it a connection of its own with a
    /// page cache of [`BULK_CACHE_MIB`] instead of 32 MiB, closed when the
    /// transaction ends. (No default, for the reason given at `begin_read`.)
    async fn begin_bulk(&self) -> Result<Box<dyn Tx>>;
    /// The backend's name, for status output.
    fn backend(&self) -> &'static str;
    /// Files that hold the database, for status and tests (empty for servers).
    fn files(&self) -> Vec<std::path::PathBuf>;
    /// Closes all connections (flushes the SQLite WAL).
    async fn close(&self);
    /// Writes a consistent snapshot of the whole database to `dest` (a new
    /// file), while the store stays online.
    async fn snapshot(&self, dest: &std::path::Path) -> Result<()>;
    /// Checks the database's own integrity (SQLite: `PRAGMA integrity_check`).
    async fn integrity_check(&self) -> Result<()>;
}

/// One transaction. Dropping it without [`Tx::commit`] rolls everything back.
///
/// Its methods come by concern: records and blind indexes in [`RecordsTx`],
/// data keys and processing flags in [`SubjectsTx`], the audit ledger in
/// [`LedgerTx`], secrets and settings in [`SettingsTx`], sessions, tokens and
/// second factors in [`IdentityTx`]. Each is written once for every backend
/// (see [`exec`] and `tx.rs`); bring them into scope with
/// `use custos_store::prelude::*`.
#[async_trait]
pub trait Tx:
    RecordsTx
    + SubjectsTx
    + LedgerTx
    + SettingsTx
    + IdentityTx
    + RetentionTx
    + HoldsTx
    + PolicyVersionsTx
    + Send
{
    /// Makes every change of this transaction durable.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Whether this transaction was started by [`Store::begin_read`].
    fn is_read_only(&self) -> bool {
        false
    }
}

/// Records of every entity: insert, change, delete, read, list, count and
/// group, and their blind-index entries.
#[async_trait]
pub trait RecordsTx: SubjectsTx + Send {
    /// Inserts a record.
    async fn insert_record(&mut self, entity: Entity, row: &StoredRow) -> Result<()>;
    /// Changes some columns of a record; false when it does not exist.
    async fn update_record(
        &mut self,
        entity: Entity,
        id: Uuid,
        columns: &[(&'static str, SqlValue)],
    ) -> Result<bool>;
    /// Sets the same columns to the same values on several records, a few
    /// hundred per statement; returns how many records changed.
    async fn update_records(
        &mut self,
        entity: Entity,
        ids: &[Uuid],
        columns: &[(&'static str, SqlValue)],
    ) -> Result<u64>;
    /// Deletes a record and its blind-index rows; false when it does not exist.
    async fn delete_record(&mut self, entity: Entity, id: Uuid) -> Result<bool>;
    /// Reads one record.
    async fn get_record(&mut self, entity: Entity, id: Uuid) -> Result<Option<StoredRow>>;
    /// Reads one record with its subject's active processing flags
    /// (restriction, objection, legal hold), in one query.
    async fn get_record_with_flags(
        &mut self,
        entity: Entity,
        id: Uuid,
    ) -> Result<Option<(StoredRow, Vec<String>)>> {
        let Some(row) = self.get_record(entity, id).await? else {
            return Ok(None);
        };
        let flags = match row.subject_id {
            Some(s) => self
                .active_flags(&[s])
                .await?
                .into_iter()
                .map(|(_, f)| f)
                .collect(),
            None => Vec::new(),
        };
        Ok(Some((row, flags)))
    }
    /// Reads a page of records.
    async fn list_records(&mut self, query: &ListQuery) -> Result<Vec<StoredRow>>;
    /// Lists records as [`RecordsTx::list_records`] does, but reads at most `window`
    /// rows of the list when no index answers its conditions
    /// ([`sql::windowed`]): a filter on a rare value then reads a window, not
    /// the table, and says where the next window starts.
    async fn list_records_within(&mut self, query: &ListQuery, window: u32) -> Result<ListWindow>;
    /// Counts the records matching all conditions, and sums their `sum`
    /// column, by the values of the text columns `group` (in their order).
    async fn group_records(
        &mut self,
        entity: Entity,
        conditions: &[Condition],
        group: &[&'static str],
        sum: &'static str,
    ) -> Result<Vec<GroupRow>>;
    /// Counts records matching all conditions.
    async fn count_records(&mut self, entity: Entity, conditions: &[Condition]) -> Result<u64>;
    /// The number of records of `entity`, then how many of them hold a
    /// value in each of `fields` (counted on the stored columns, sealed ones
    /// included, without opening anything), in one scan.
    async fn count_values(&mut self, entity: Entity, fields: &[&'static str]) -> Result<Vec<u64>>;
    /// Counts records matching all conditions, stopping at `limit`: the
    /// answer is `limit` when at least that many match.
    async fn count_records_up_to(
        &mut self,
        entity: Entity,
        conditions: &[Condition],
        limit: u64,
    ) -> Result<u64>;
    /// Replaces the blind-index entries of one field of one record.
    async fn set_blind_index(
        &mut self,
        entity: Entity,
        record_id: Uuid,
        field: &'static str,
        hashes: &[Vec<u8>],
    ) -> Result<()>;

    /// Adds the blind-index entries (field, hash) of a record being created,
    /// which has none yet: unlike [`RecordsTx::set_blind_index`], nothing is replaced,
    /// so backends write them all in one statement.
    async fn add_blind_index(
        &mut self,
        entity: Entity,
        record_id: Uuid,
        entries: &[(&'static str, Vec<u8>)],
    ) -> Result<()> {
        let mut fields: Vec<&'static str> = entries.iter().map(|e| e.0).collect();
        fields.dedup();
        for field in fields {
            let hashes: Vec<Vec<u8>> = entries
                .iter()
                .filter(|e| e.0 == field)
                .map(|e| e.1.clone())
                .collect();
            self.set_blind_index(entity, record_id, field, &hashes)
                .await?;
        }
        Ok(())
    }

    /// Writes new records with their new subject keys and blind-index
    /// entries. Backends write a batch in a few multi-row statements (one
    /// round trip on SQLite) instead of several statements per record.
    async fn insert_new(&mut self, batch: &NewRecords) -> Result<()> {
        for key in &batch.keys {
            self.insert_subject_key(key).await?;
        }
        for (entity, row) in &batch.rows {
            self.insert_record(*entity, row).await?;
        }
        for b in &batch.blind {
            self.add_blind_index(b.entity, b.record_id, &[(b.field, b.hash.clone())])
                .await?;
        }
        Ok(())
    }
}

/// Data subjects: their data-key versions (wrapped by the master key),
/// crypto-shredding, and the processing flags on them.
#[async_trait]
pub trait SubjectsTx: Send {
    /// Stores a new subject key version.
    async fn insert_subject_key(&mut self, row: &SubjectKeyRow) -> Result<()>;
    /// Destroys every data-key version of a subject and its blind-index rows
    /// (crypto-shredding), and records the erasure.
    async fn shred_subject_key(&mut self, subject_id: Uuid, now_ms: i64) -> Result<()>;
    /// Every data-key version of a subject, oldest first.
    async fn get_subject_keys(&mut self, subject_id: Uuid) -> Result<Vec<SubjectKeyRow>>;
    /// Every data-key version of each of these subjects, by subject then
    /// version: one query for a page of records instead of one per person.
    async fn get_subject_keys_many(&mut self, subjects: &[Uuid]) -> Result<Vec<SubjectKeyRow>> {
        let mut out = Vec::new();
        for s in subjects {
            out.extend(self.get_subject_keys(*s).await?);
        }
        Ok(out)
    }
    /// Unshredded keys wrapped by a master key older than `kek_version`.
    async fn subject_keys_below(
        &mut self,
        kek_version: i64,
        limit: u32,
    ) -> Result<Vec<SubjectKeyRow>>;
    /// Replaces the wrapping of one key version.
    async fn rewrap_subject_key(
        &mut self,
        subject_id: Uuid,
        dek_version: i64,
        wrapped: &[u8],
        kek_version: i64,
    ) -> Result<()>;
    /// Per master-key version: how many live data keys it wraps and the oldest's creation time.
    async fn subject_key_stats(&mut self) -> Result<Vec<(i64, u64, i64)>>;
    /// Subjects erased at or after `since_ms`, with the time.
    async fn erasures_since(&mut self, since_ms: i64) -> Result<Vec<(Uuid, i64)>>;
    // ---- processing flags (restriction, objection, legal hold)
    /// Sets a flag on a subject; false if it was already active.
    async fn set_flag(
        &mut self,
        subject_id: Uuid,
        flag: &str,
        request_id: Option<Uuid>,
        now_ms: i64,
    ) -> Result<bool>;
    /// Lifts an active flag; false if none was active.
    async fn lift_flag(&mut self, subject_id: Uuid, flag: &str, now_ms: i64) -> Result<bool>;
    /// Active flags of these subjects.
    async fn active_flags(&mut self, subjects: &[Uuid]) -> Result<Vec<(Uuid, String)>>;
    /// How many subjects each flag is in force on, by flag name (flags in
    /// force on nobody are left out).
    async fn flag_counts(&mut self) -> Result<Vec<(String, u64)>>;
}

/// The audit ledger: leaves, the Merkle frontier and stored subtree roots,
/// and signed checkpoints.
#[async_trait]
pub trait LedgerTx: Send {
    /// The tree size and frontier after the last append.
    async fn ledger_head(&mut self) -> Result<LedgerHead>;
    /// Appends the leaf at `head.size - 1`, the perfect subtree roots it
    /// completed, and the new head.
    async fn append_leaf(
        &mut self,
        leaf: &LeafRow,
        index: &LeafIndex,
        nodes: &[(u32, u64, [u8; 32])],
        head: &LedgerHead,
    ) -> Result<()>;
    /// Leaf indexes matching a filter, newest first.
    async fn find_leaves(&mut self, filter: &EventFilter, limit: u32) -> Result<Vec<u64>>;
    /// Stored perfect-subtree roots at `level` for `start <= index < end`.
    async fn ledger_nodes(
        &mut self,
        level: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>>;
    /// Stores a signed checkpoint.
    async fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<()>;
    /// All stored checkpoints, smallest size first.
    async fn checkpoints(&mut self) -> Result<Vec<CheckpointRow>>;
    /// The checkpoint of the largest size, if any.
    async fn latest_checkpoint(&mut self) -> Result<Option<CheckpointRow>>;
    /// How many checkpoints are stored (a count kept with the ledger head).
    async fn checkpoint_count(&mut self) -> Result<u64>;
    /// Leaves with `start <= index < end`, in order.
    async fn ledger_leaves(&mut self, start: u64, end: u64) -> Result<Vec<LeafRow>>;
    /// The leaves at these indexes (those that exist), in index order: a
    /// page of audit search results in one query.
    async fn ledger_leaves_at(&mut self, indexes: &[u64]) -> Result<Vec<LeafRow>>;
    /// The root of the perfect subtree at `level`, `index`, if stored.
    async fn ledger_node(&mut self, level: u32, index: u64) -> Result<Option<[u8; 32]>>;
}
