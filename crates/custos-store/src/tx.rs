//! [`Tx`] written once: records, blind indexes, subject keys, processing
//! flags and the ledger, on [`StoreTx`], the one transaction type. A
//! [`Backend`] supplies its connection, how to send several statements at
//! once, and how to commit; the transaction's ledger state lives in
//! [`StoreTx`].

use crate::exec::{Driver, Exec, Row};
use crate::pending::PendingLedger;
use crate::sql::{self, Dialect, Query};
use crate::{
    CheckpointRow, ColumnType, Condition, EventFilter, GroupRow, LeafIndex, LeafRow, LedgerHead,
    LedgerTx, ListQuery, ListWindow, NewRecords, RecordsTx, Result, SqlValue, StoreError,
    StoredRow, SubjectKeyRow, SubjectsTx, Tx,
};
use async_trait::async_trait;
use custos_domain::Entity;
use uuid::Uuid;

use ColumnType::{Blob as B, Int as I, Text as T};

/// A transaction's own ledger state, kept by its backend.
#[derive(Debug, Default)]
pub(crate) struct LedgerState {
    /// The ledger head as of the last append in this transaction. Each
    /// backend keeps every other writer out until commit (SQLite's BEGIN
    /// IMMEDIATE, PostgreSQL's advisory lock), so it cannot go stale.
    pub(crate) head: Option<LedgerHead>,
    /// Ledger appends not yet written (see `crate::pending`).
    pub(crate) pending: PendingLedger,
    /// Started by `begin_read`: ledger appends are refused.
    pub(crate) read_only: bool,
}

/// What a backend supplies for [`StoreTx`]: its connection inside a
/// transaction, how to send several statements at once, and how to
/// commit. Connections, locks, WAL handling and pools stay in the
/// backend's module.
#[async_trait]
pub(crate) trait Backend: Send + Sized + 'static {
    /// The sqlx database it talks to.
    type Db: Driver;

    /// The SQL dialect of the statements built by [`sql`].
    const DIALECT: Dialect;

    /// The connection the transaction's statements run on.
    fn conn(&mut self) -> &mut <Self::Db as sqlx::Database>::Connection;

    /// Runs several statements, in order (SQLite: in one round trip).
    async fn execute_all(&mut self, queries: Vec<Query>) -> Result<()> {
        for q in queries {
            <Self::Db as Driver>::execute(self.conn(), q).await?;
        }
        Ok(())
    }

    /// Commits what the transaction wrote.
    async fn commit(self) -> Result<()>;
}

/// The one transaction type: a backend's connection and the transaction's
/// ledger state, with [`Tx`] written once for every backend.
pub(crate) struct StoreTx<B> {
    conn: B,
    ledger: LedgerState,
}

impl<B: Backend> StoreTx<B> {
    /// A transaction on `conn`; `read_only` for those of `begin_read`.
    pub(crate) fn boxed(conn: B, read_only: bool) -> Box<dyn Tx> {
        Box::new(StoreTx {
            conn,
            ledger: LedgerState {
                read_only,
                ..LedgerState::default()
            },
        })
    }

    fn ledger(&mut self) -> &mut LedgerState {
        &mut self.ledger
    }

    fn read_only(&self) -> bool {
        self.ledger.read_only
    }

    async fn execute_all(&mut self, queries: Vec<Query>) -> Result<()> {
        self.conn.execute_all(queries).await
    }
}

#[async_trait]
impl<B: Backend> Exec for StoreTx<B> {
    async fn execute(&mut self, q: Query) -> Result<u64> {
        <B::Db as Driver>::execute(self.conn.conn(), q).await
    }

    async fn fetch(&mut self, q: Query, types: &[ColumnType]) -> Result<Vec<Row>> {
        <B::Db as Driver>::fetch(self.conn.conn(), q, types).await
    }
}

const SUBJECT_KEY_COLS: &str =
    "subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at";
const SUBJECT_KEY_TYPES: &[ColumnType] = &[T, I, T, B, I, I, I];
const CHECKPOINT_TYPES: &[ColumnType] = &[I, B, T, I];
const LEAF_TYPES: &[ColumnType] = &[I, B, B];

/// The stored types of an entity's columns, in table order.
pub(crate) fn record_types(entity: Entity) -> Vec<ColumnType> {
    sql::columns(entity)
        .into_iter()
        .map(|c| sql::column_type_of(entity, c))
        .collect()
}

/// A record whose columns start at `at` in the row; `None` when its id is
/// NULL (a LEFT JOIN that found nothing).
pub(crate) fn record_at(entity: Entity, r: &Row, at: usize) -> Result<Option<StoredRow>> {
    let Some(id) = r.opt_uuid(at)? else {
        return Ok(None);
    };
    let subject_id = r.opt_uuid(at + 1)?;
    let mut columns = vec![("id", SqlValue::Text(id.to_string()))];
    for (i, name) in sql::columns(entity).into_iter().enumerate().skip(2) {
        let v = r.0.get(at + i).cloned().unwrap_or(SqlValue::Null);
        columns.push((name, v));
    }
    Ok(Some(StoredRow {
        id,
        subject_id,
        columns,
    }))
}

fn record(entity: Entity, r: &Row) -> Result<StoredRow> {
    record_at(entity, r, 0)?.ok_or_else(|| StoreError::Corrupt("record without id".into()))
}

fn to_hash(b: &[u8]) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn count_of(n: i64) -> u64 {
    n.max(0) as u64
}

fn decode_subject_key(r: &Row) -> Result<SubjectKeyRow> {
    let kind = r.text(2)?;
    Ok(SubjectKeyRow {
        subject_id: r.uuid(0, "subject id")?,
        dek_version: r.int(1)?,
        kind: Entity::from_name(&kind).ok_or_else(|| StoreError::Corrupt("subject kind".into()))?,
        wrapped_key: r.opt_blob(3)?,
        kek_version: r.int(4)?,
        created_at: r.int(5)?,
        shredded_at: r.opt_int(6)?,
    })
}

fn decode_leaf(r: &Row) -> Result<LeafRow> {
    Ok(LeafRow {
        index: count_of(r.int(0)?),
        data: r.blob(1)?,
        leaf_hash: r.blob(2)?,
    })
}

fn decode_checkpoint(r: &Row) -> Result<CheckpointRow> {
    Ok(CheckpointRow {
        size: count_of(r.int(0)?),
        root: r.blob(1)?,
        note: r.text(2)?,
        created_at: r.int(3)?,
    })
}

/// Runs a COUNT query.
async fn count<B: Backend>(tx: &mut StoreTx<B>, q: Query) -> Result<u64> {
    let row = tx.fetch_optional(q, &[I]).await?;
    Ok(match row {
        Some(r) => count_of(r.int(0)?),
        None => 0,
    })
}

/// Writes the pending ledger appends (before commit and before any read of
/// the ledger tables in this transaction).
async fn flush_ledger<B: Backend>(tx: &mut StoreTx<B>) -> Result<()> {
    let queries = tx.ledger().pending.take(B::DIALECT);
    if !queries.is_empty() {
        tx.execute_all(queries).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> Tx for StoreTx<B> {
    fn is_read_only(&self) -> bool {
        self.read_only()
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        flush_ledger(&mut *self).await?;
        self.conn.commit().await
    }
}

#[async_trait]
impl<B: Backend> RecordsTx for StoreTx<B> {
    async fn insert_record(&mut self, entity: Entity, row: &StoredRow) -> Result<()> {
        self.execute(sql::insert(B::DIALECT, entity, row)).await?;
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
        let n = self
            .execute(sql::update(B::DIALECT, entity, id, columns))
            .await?;
        Ok(n > 0)
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
            changed += self
                .execute(sql::update_many(B::DIALECT, entity, chunk, columns))
                .await?;
        }
        Ok(changed)
    }

    async fn delete_record(&mut self, entity: Entity, id: Uuid) -> Result<bool> {
        self.execute(sql::delete_blind(B::DIALECT, entity, id, None))
            .await?;
        Ok(self.execute(sql::delete(B::DIALECT, entity, id)).await? > 0)
    }

    async fn get_record(&mut self, entity: Entity, id: Uuid) -> Result<Option<StoredRow>> {
        let row = self
            .fetch_optional(sql::get(B::DIALECT, entity, id), &record_types(entity))
            .await?;
        row.map(|r| record(entity, &r)).transpose()
    }

    async fn get_record_with_flags(
        &mut self,
        entity: Entity,
        id: Uuid,
    ) -> Result<Option<(StoredRow, Vec<String>)>> {
        let mut types = record_types(entity);
        types.push(T);
        let flags_at = types.len() - 1;
        let row = self
            .fetch_optional(sql::get_with_flags(B::DIALECT, entity, id), &types)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let flags = sql::flag_list(r.opt_text(flags_at)?);
        Ok(Some((record(entity, &r)?, flags)))
    }

    async fn list_records(&mut self, query: &ListQuery) -> Result<Vec<StoredRow>> {
        let types = record_types(query.entity);
        self.fetch(sql::list(B::DIALECT, query), &types)
            .await?
            .iter()
            .map(|r| record(query.entity, r))
            .collect()
    }

    async fn list_records_within(&mut self, query: &ListQuery, window: u32) -> Result<ListWindow> {
        let types = record_types(query.entity);
        // The window's last row, and whether more rows follow it.
        let (end, more) = if sql::windowed(query) {
            let rows = self
                .fetch(sql::window_end(B::DIALECT, query, window), &types)
                .await?;
            match rows.first() {
                Some(r) => {
                    let row = record(query.entity, r)?;
                    let end = (row.get(query.sort.field).clone(), row.id);
                    (Some(end), rows.len() > 1)
                }
                None => (None, false),
            }
        } else {
            (None, false)
        };
        let rows = self
            .fetch(sql::list_until(B::DIALECT, query, end.as_ref()), &types)
            .await?
            .iter()
            .map(|r| record(query.entity, r))
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
        let n = group.len();
        let mut types = vec![T; n];
        types.extend([I, I, I]);
        let rows = self
            .fetch(
                sql::group(B::DIALECT, entity, conditions, group, sum),
                &types,
            )
            .await?;
        rows.iter()
            .map(|r| {
                let key = (0..n).map(|i| r.opt_text(i)).collect::<Result<Vec<_>>>()?;
                Ok(GroupRow {
                    key,
                    count: count_of(r.int(n)?),
                    valued: count_of(r.int(n + 1)?),
                    sum: r.int(n + 2)?,
                })
            })
            .collect()
    }

    async fn count_records(&mut self, entity: Entity, conditions: &[Condition]) -> Result<u64> {
        count(self, sql::count(B::DIALECT, entity, conditions, None)).await
    }

    async fn count_values(&mut self, entity: Entity, fields: &[&'static str]) -> Result<Vec<u64>> {
        let types = vec![I; fields.len() + 1];
        let q = sql::count_values(B::DIALECT, entity, fields);
        let Some(row) = self.fetch_optional(q, &types).await? else {
            return Ok(vec![0; fields.len() + 1]);
        };
        (0..=fields.len())
            .map(|i| Ok(count_of(row.int(i)?)))
            .collect()
    }

    async fn count_records_up_to(
        &mut self,
        entity: Entity,
        conditions: &[Condition],
        limit: u64,
    ) -> Result<u64> {
        count(
            self,
            sql::count(B::DIALECT, entity, conditions, Some(limit)),
        )
        .await
    }

    async fn set_blind_index(
        &mut self,
        entity: Entity,
        record_id: Uuid,
        field: &'static str,
        hashes: &[Vec<u8>],
    ) -> Result<()> {
        self.execute(sql::delete_blind(
            B::DIALECT,
            entity,
            record_id,
            Some(field),
        ))
        .await?;
        let rows = hashes
            .iter()
            .map(|h| (entity, field, h.as_slice(), record_id));
        if let Some(q) = sql::insert_blind_rows(B::DIALECT, rows) {
            self.execute(q).await?;
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
        if let Some(q) = sql::insert_blind_rows(B::DIALECT, rows) {
            self.execute(q).await?;
        }
        Ok(())
    }

    async fn insert_new(&mut self, batch: &NewRecords) -> Result<()> {
        // The whole batch with the ledger rows pending: on SQLite one round trip.
        let mut queries = self.ledger().pending.take(B::DIALECT);
        queries.extend(sql::insert_new(B::DIALECT, batch));
        if !queries.is_empty() {
            self.execute_all(queries).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> SubjectsTx for StoreTx<B> {
    async fn insert_subject_key(&mut self, row: &SubjectKeyRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO subject_keys ({SUBJECT_KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .uuid(row.subject_id)
        .int(row.dek_version)
        .text(row.kind.name())
        .opt_blob(row.wrapped_key.as_deref())
        .int(row.kek_version)
        .int(row.created_at)
        .opt_int(row.shredded_at);
        self.execute(q).await?;
        Ok(())
    }

    async fn shred_subject_key(&mut self, subject_id: Uuid, now_ms: i64) -> Result<()> {
        let q = Query::written(
            "UPDATE subject_keys SET wrapped_key = NULL, shredded_at = $1 WHERE subject_id = $2",
        )
        .int(now_ms)
        .uuid(subject_id);
        self.execute(q).await?;
        // Records with blind-indexed fields are their own subjects (a
        // domain test checks it): the subject's entries are its record's.
        let q = Query::written("DELETE FROM blind_index WHERE record_id = $1").uuid(subject_id);
        self.execute(q).await?;
        let q = Query::written(
            "INSERT INTO erasures (subject_id, erased_at) VALUES ($1, $2) ON CONFLICT (subject_id) DO NOTHING",
        )
        .uuid(subject_id)
        .int(now_ms);
        self.execute(q).await?;
        Ok(())
    }

    async fn get_subject_keys(&mut self, subject_id: Uuid) -> Result<Vec<SubjectKeyRow>> {
        let q = Query::written(format!(
            "SELECT {SUBJECT_KEY_COLS} FROM subject_keys WHERE subject_id = $1 ORDER BY dek_version"
        ))
        .uuid(subject_id);
        self.fetch(q, SUBJECT_KEY_TYPES)
            .await?
            .iter()
            .map(decode_subject_key)
            .collect()
    }

    async fn get_subject_keys_many(&mut self, subjects: &[Uuid]) -> Result<Vec<SubjectKeyRow>> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(1000) {
            let rows = self
                .fetch(sql::subject_keys_of(B::DIALECT, chunk), SUBJECT_KEY_TYPES)
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
        let q = Query::written(format!(
            "SELECT {SUBJECT_KEY_COLS} FROM subject_keys \
             WHERE kek_version < $1 AND wrapped_key IS NOT NULL LIMIT $2"
        ))
        .int(kek_version)
        .int(i64::from(limit));
        self.fetch(q, SUBJECT_KEY_TYPES)
            .await?
            .iter()
            .map(decode_subject_key)
            .collect()
    }

    async fn rewrap_subject_key(
        &mut self,
        subject_id: Uuid,
        dek_version: i64,
        wrapped: &[u8],
        kek_version: i64,
    ) -> Result<()> {
        let q = Query::written(
            "UPDATE subject_keys SET wrapped_key = $1, kek_version = $2 \
             WHERE subject_id = $3 AND dek_version = $4 AND wrapped_key IS NOT NULL",
        )
        .blob(wrapped)
        .int(kek_version)
        .uuid(subject_id)
        .int(dek_version);
        self.execute(q).await?;
        Ok(())
    }

    async fn subject_key_stats(&mut self) -> Result<Vec<(i64, u64, i64)>> {
        let q = Query::written(
            "SELECT kek_version, COUNT(*), MIN(created_at) FROM subject_keys \
             WHERE wrapped_key IS NOT NULL GROUP BY kek_version ORDER BY kek_version",
        );
        self.fetch(q, &[I, I, I])
            .await?
            .iter()
            .map(|r| Ok((r.int(0)?, count_of(r.int(1)?), r.int(2)?)))
            .collect()
    }

    async fn erasures_since(&mut self, since_ms: i64) -> Result<Vec<(Uuid, i64)>> {
        let q = Query::written(
            "SELECT subject_id, erased_at FROM erasures WHERE erased_at >= $1 ORDER BY erased_at",
        )
        .int(since_ms);
        self.fetch(q, &[T, I])
            .await?
            .iter()
            .map(|r| Ok((r.uuid(0, "erasure id")?, r.int(1)?)))
            .collect()
    }

    async fn set_flag(
        &mut self,
        subject_id: Uuid,
        flag: &str,
        request_id: Option<Uuid>,
        now_ms: i64,
    ) -> Result<bool> {
        let q = Query::written(
            "SELECT set_at FROM processing_flags WHERE subject_id = $1 AND flag = $2 AND lifted_at IS NULL",
        )
        .uuid(subject_id)
        .text(flag);
        if self.fetch_optional(q, &[I]).await?.is_some() {
            return Ok(false);
        }
        let q = Query::written(
            "INSERT INTO processing_flags (subject_id, flag, set_at, lifted_at, request_id) VALUES ($1, $2, $3, NULL, $4)",
        )
        .uuid(subject_id)
        .text(flag)
        .int(now_ms)
        .opt_uuid(request_id);
        self.execute(q).await?;
        Ok(true)
    }

    async fn lift_flag(&mut self, subject_id: Uuid, flag: &str, now_ms: i64) -> Result<bool> {
        let q = Query::written(
            "UPDATE processing_flags SET lifted_at = $1 WHERE subject_id = $2 AND flag = $3 AND lifted_at IS NULL",
        )
        .int(now_ms)
        .uuid(subject_id)
        .text(flag);
        Ok(self.execute(q).await? > 0)
    }

    async fn active_flags(&mut self, subjects: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(500) {
            let mut q = Query::written("");
            let marks: Vec<String> = chunk
                .iter()
                .map(|s| q.push(SqlValue::Text(s.to_string())))
                .collect();
            q.sql = format!(
                "SELECT subject_id, flag FROM processing_flags WHERE lifted_at IS NULL AND subject_id IN ({})",
                marks.join(", ")
            );
            for r in self.fetch(q, &[T, T]).await? {
                out.push((r.uuid(0, "flag subject")?, r.text(1)?));
            }
        }
        Ok(out)
    }

    async fn flag_counts(&mut self) -> Result<Vec<(String, u64)>> {
        let q = Query::written(
            "SELECT flag, COUNT(DISTINCT subject_id) FROM processing_flags \
             WHERE lifted_at IS NULL GROUP BY flag ORDER BY flag",
        );
        self.fetch(q, &[T, I])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, count_of(r.int(1)?))))
            .collect()
    }
}

#[async_trait]
impl<B: Backend> LedgerTx for StoreTx<B> {
    async fn ledger_head(&mut self) -> Result<LedgerHead> {
        if let Some(h) = &self.ledger().head {
            return Ok(h.clone());
        }
        let q = Query::written("SELECT size, frontier, bytes FROM ledger_head WHERE id = 1");
        let Some(r) = self.fetch_optional(q, &[I, B, I]).await? else {
            return Ok(LedgerHead::default());
        };
        let blob = r.blob(1)?;
        if !blob.len().is_multiple_of(32) {
            return Err(StoreError::Corrupt("ledger frontier".into()));
        }
        let frontier = blob.chunks(32).map(to_hash).collect::<Result<Vec<_>>>()?;
        Ok(LedgerHead {
            size: count_of(r.int(0)?),
            frontier,
            bytes: count_of(r.int(2)?),
        })
    }

    async fn append_leaf(
        &mut self,
        leaf: &LeafRow,
        index: &LeafIndex,
        nodes: &[(u32, u64, [u8; 32])],
        head: &LedgerHead,
    ) -> Result<()> {
        if self.read_only() {
            return Err(StoreError::Unsupported(
                "a read transaction cannot append to the ledger".into(),
            ));
        }
        let state = self.ledger();
        state.head = Some(head.clone());
        if state.pending.push(leaf, index, nodes, head) {
            flush_ledger(self).await?;
        }
        Ok(())
    }

    async fn find_leaves(&mut self, f: &EventFilter, limit: u32) -> Result<Vec<u64>> {
        flush_ledger(self).await?;
        let mut q = Query::written("");
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
        self.fetch(q, &[I])
            .await?
            .iter()
            .map(|r| Ok(count_of(r.int(0)?)))
            .collect()
    }

    async fn ledger_nodes(
        &mut self,
        level: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>> {
        flush_ledger(self).await?;
        let q = Query::written(
            "SELECT idx, hash FROM ledger_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
        .int(i64::from(level))
        .int(start as i64)
        .int(end as i64);
        self.fetch(q, &[I, B])
            .await?
            .iter()
            .map(|r| Ok((count_of(r.int(0)?), to_hash(&r.blob(1)?)?)))
            .collect()
    }

    async fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<()> {
        let q = Query::written(
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
        )
        .int(row.size as i64)
        .blob(&row.root)
        .text(&row.note)
        .int(row.created_at);
        self.execute(q).await?;
        // Counted with the head, so the ledger's status does not count
        // every checkpoint (one a minute while the ledger grows).
        let q = Query::written("UPDATE ledger_head SET checkpoints = checkpoints + 1 WHERE id = 1");
        self.execute(q).await?;
        Ok(())
    }

    async fn checkpoints(&mut self) -> Result<Vec<CheckpointRow>> {
        let q = Query::written(
            "SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size",
        );
        self.fetch(q, CHECKPOINT_TYPES)
            .await?
            .iter()
            .map(decode_checkpoint)
            .collect()
    }

    async fn latest_checkpoint(&mut self) -> Result<Option<CheckpointRow>> {
        let q = Query::written(
            "SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1",
        );
        self.fetch_optional(q, CHECKPOINT_TYPES)
            .await?
            .as_ref()
            .map(decode_checkpoint)
            .transpose()
    }

    async fn checkpoint_count(&mut self) -> Result<u64> {
        let q = Query::written("SELECT checkpoints FROM ledger_head WHERE id = 1");
        count(self, q).await
    }

    async fn ledger_leaves(&mut self, start: u64, end: u64) -> Result<Vec<LeafRow>> {
        flush_ledger(self).await?;
        let q = Query::written(
            "SELECT idx, data, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .int(start as i64)
        .int(end as i64);
        self.fetch(q, LEAF_TYPES)
            .await?
            .iter()
            .map(decode_leaf)
            .collect()
    }

    async fn ledger_leaves_at(&mut self, indexes: &[u64]) -> Result<Vec<LeafRow>> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        flush_ledger(self).await?;
        let mut out = Vec::with_capacity(indexes.len());
        for chunk in indexes.chunks(500) {
            let rows = self
                .fetch(sql::leaves_at(B::DIALECT, chunk), LEAF_TYPES)
                .await?;
            for r in &rows {
                out.push(decode_leaf(r)?);
            }
        }
        out.sort_by_key(|l| l.index);
        Ok(out)
    }

    async fn ledger_node(&mut self, level: u32, index: u64) -> Result<Option<[u8; 32]>> {
        flush_ledger(self).await?;
        let q = Query::written("SELECT hash FROM ledger_nodes WHERE level = $1 AND idx = $2")
            .int(i64::from(level))
            .int(index as i64);
        match self.fetch_optional(q, &[B]).await? {
            Some(r) => Ok(Some(to_hash(&r.blob(0)?)?)),
            None => Ok(None),
        }
    }
}
