//! Runs of the retention purge, written once for every backend: each run's
//! progress is saved with every batch it commits, so a run stopped by a crash
//! is found and finished by the next one, and each finished run keeps its
//! purge certificate.

use crate::exec::Exec;
use crate::sql::Query;
use crate::{ColumnType, Result};
use async_trait::async_trait;
use uuid::Uuid;

/// One run of the retention purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRunRow {
    /// Run id (opaque, in the ledger and the certificate).
    pub id: Uuid,
    /// Started (Unix ms).
    pub started_at: i64,
    /// Finished (Unix ms); `None` while it runs or after a crash.
    pub finished_at: Option<i64>,
    /// Who started it (`user:<uuid>`, `cli`, `system`).
    pub actor: String,
    /// Index of the ledger leaf that recorded its start.
    pub first_leaf: i64,
    /// Its progress, as the service writes it (JSON: per policy, the
    /// position reached and the counts). Ids and counts only.
    pub state: String,
    /// The purge certificate (JSON), once finished.
    pub certificate: Option<String>,
}

const COLUMNS: &str = "id, started_at, finished_at, actor, first_leaf, state, certificate";
const TYPES: &[ColumnType] = &[
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Int,
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Text,
    ColumnType::Text,
];

fn decode(r: &crate::exec::Row) -> Result<RetentionRunRow> {
    Ok(RetentionRunRow {
        id: r.uuid(0, "retention run id")?,
        started_at: r.int(1)?,
        finished_at: r.opt_int(2)?,
        actor: r.text(3)?,
        first_leaf: r.int(4)?,
        state: r.text(5)?,
        certificate: r.opt_text(6)?,
    })
}

/// Retention runs.
#[async_trait]
pub trait RetentionTx: Send {
    /// Records a new run.
    async fn insert_retention_run(&mut self, row: &RetentionRunRow) -> Result<()>;
    /// Saves a run's progress; with `finished` set, also its end and its
    /// certificate.
    async fn save_retention_run(
        &mut self,
        id: Uuid,
        state: &str,
        finished: Option<(i64, &str)>,
    ) -> Result<bool>;
    /// The run that started and never finished (a crash), if any; the
    /// oldest when there are several.
    async fn unfinished_retention_run(&mut self) -> Result<Option<RetentionRunRow>>;
    /// One run.
    async fn get_retention_run(&mut self, id: Uuid) -> Result<Option<RetentionRunRow>>;
    /// The newest runs first, at most `limit`.
    async fn list_retention_runs(&mut self, limit: u32) -> Result<Vec<RetentionRunRow>>;
}

#[async_trait]
impl<T: Exec> RetentionTx for T {
    async fn insert_retention_run(&mut self, row: &RetentionRunRow) -> Result<()> {
        let q = Query::written(
            "INSERT INTO retention_runs (id, started_at, finished_at, actor, first_leaf, state, certificate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .text(&row.id.to_string())
        .int(row.started_at)
        .opt_int(row.finished_at)
        .text(&row.actor)
        .int(row.first_leaf)
        .text(&row.state)
        .opt_text(row.certificate.as_deref());
        self.execute(q).await?;
        Ok(())
    }

    async fn save_retention_run(
        &mut self,
        id: Uuid,
        state: &str,
        finished: Option<(i64, &str)>,
    ) -> Result<bool> {
        let q = Query::written(
            "UPDATE retention_runs SET state = $1, finished_at = $2, certificate = $3 WHERE id = $4",
        )
        .text(state)
        .opt_int(finished.map(|f| f.0))
        .opt_text(finished.map(|f| f.1))
        .text(&id.to_string());
        Ok(self.execute(q).await? > 0)
    }

    async fn unfinished_retention_run(&mut self) -> Result<Option<RetentionRunRow>> {
        let q = Query::written(format!(
            "SELECT {COLUMNS} FROM retention_runs WHERE finished_at IS NULL ORDER BY started_at, id LIMIT 1"
        ));
        self.fetch_optional(q, TYPES)
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn get_retention_run(&mut self, id: Uuid) -> Result<Option<RetentionRunRow>> {
        let q = Query::written(format!(
            "SELECT {COLUMNS} FROM retention_runs WHERE id = $1"
        ))
        .text(&id.to_string());
        self.fetch_optional(q, TYPES)
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn list_retention_runs(&mut self, limit: u32) -> Result<Vec<RetentionRunRow>> {
        let q = Query::written(format!(
            "SELECT {COLUMNS} FROM retention_runs ORDER BY started_at DESC, id DESC LIMIT $1"
        ))
        .int(i64::from(limit));
        self.fetch(q, TYPES).await?.iter().map(decode).collect()
    }
}

/// One saved version of a retention policy's period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRow {
    /// The policy's key (`orders.completed_at`).
    pub policy: String,
    /// Its version (2 and up: 1 is the inventory's default).
    pub version: i64,
    /// The period set, in years.
    pub years: i64,
    /// The period before.
    pub previous_years: i64,
    /// Why (about the policy, not about anyone).
    pub reason: String,
    /// Who saved it.
    pub actor: String,
    /// When (Unix ms).
    pub changed_at: i64,
    /// The ledger leaf that recorded it.
    pub leaf: i64,
}

const VERSION_COLUMNS: &str =
    "policy, version, years, previous_years, reason, actor, changed_at, leaf";
const VERSION_TYPES: &[ColumnType] = &[
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Int,
    ColumnType::Int,
    ColumnType::Text,
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Int,
];

fn decode_version(r: &crate::exec::Row) -> Result<PolicyVersionRow> {
    Ok(PolicyVersionRow {
        policy: r.text(0)?,
        version: r.int(1)?,
        years: r.int(2)?,
        previous_years: r.int(3)?,
        reason: r.text(4)?,
        actor: r.text(5)?,
        changed_at: r.int(6)?,
        leaf: r.int(7)?,
    })
}

/// The versions of the retention policies.
#[async_trait]
pub trait PolicyVersionsTx: Send {
    /// Records a new version; a version already saved (a concurrent change)
    /// is refused by the key.
    async fn insert_policy_version(&mut self, row: &PolicyVersionRow) -> Result<()>;
    /// Every saved version, by policy, oldest first (a handful per policy).
    async fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRow>>;
}

#[async_trait]
impl<T: Exec> PolicyVersionsTx for T {
    async fn insert_policy_version(&mut self, row: &PolicyVersionRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO retention_policy_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .text(&row.policy)
        .int(row.version)
        .int(row.years)
        .int(row.previous_years)
        .text(&row.reason)
        .text(&row.actor)
        .int(row.changed_at)
        .int(row.leaf);
        self.execute(q).await?;
        Ok(())
    }

    async fn policy_versions(&mut self) -> Result<Vec<PolicyVersionRow>> {
        let q = Query::written(format!(
            "SELECT {VERSION_COLUMNS} FROM retention_policy_versions ORDER BY policy, version"
        ));
        self.fetch(q, VERSION_TYPES)
            .await?
            .iter()
            .map(decode_version)
            .collect()
    }
}

/// A legal hold on a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHoldRow {
    /// Hold id.
    pub id: Uuid,
    /// The person held.
    pub subject_id: Uuid,
    /// Why, sealed under the person's data key.
    pub reason: Vec<u8>,
    /// The staff user responsible for reviewing it.
    pub owner_id: Option<Uuid>,
    /// When it is to be reviewed (Unix ms).
    pub review_at: i64,
    /// Placed (Unix ms).
    pub placed_at: i64,
    /// Who placed it (actor string).
    pub placed_by: String,
    /// Lifted (Unix ms), if lifted.
    pub lifted_at: Option<i64>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
}

const HOLD_COLUMNS: &str =
    "id, subject_id, reason, owner_id, review_at, placed_at, placed_by, lifted_at, lifted_by";
const HOLD_TYPES: &[ColumnType] = &[
    ColumnType::Text,
    ColumnType::Text,
    ColumnType::Blob,
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Int,
    ColumnType::Text,
    ColumnType::Int,
    ColumnType::Text,
];

fn decode_hold(r: &crate::exec::Row) -> Result<LegalHoldRow> {
    Ok(LegalHoldRow {
        id: r.uuid(0, "hold id")?,
        subject_id: r.uuid(1, "hold subject")?,
        reason: r.blob(2)?,
        owner_id: r.opt_uuid(3)?,
        review_at: r.int(4)?,
        placed_at: r.int(5)?,
        placed_by: r.text(6)?,
        lifted_at: r.opt_int(7)?,
        lifted_by: r.opt_text(8)?,
    })
}

/// Legal holds.
#[async_trait]
pub trait HoldsTx: Send {
    /// Records a new hold.
    async fn insert_legal_hold(&mut self, row: &LegalHoldRow) -> Result<()>;
    /// Lifts a hold in force; false when there is none of that id in force.
    async fn lift_legal_hold(&mut self, id: Uuid, at_ms: i64, by: &str) -> Result<bool>;
    /// One hold.
    async fn get_legal_hold(&mut self, id: Uuid) -> Result<Option<LegalHoldRow>>;
    /// The holds on one person, newest first.
    async fn legal_holds_of(&mut self, subject: Uuid) -> Result<Vec<LegalHoldRow>>;
    /// The holds in force, the first to review first, at most `limit`.
    async fn legal_holds_in_force(&mut self, limit: u32) -> Result<Vec<LegalHoldRow>>;
}

#[async_trait]
impl<T: Exec> HoldsTx for T {
    async fn insert_legal_hold(&mut self, row: &LegalHoldRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO legal_holds ({HOLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .text(&row.id.to_string())
        .text(&row.subject_id.to_string())
        .blob(&row.reason)
        .opt_text(row.owner_id.map(|u| u.to_string()).as_deref())
        .int(row.review_at)
        .int(row.placed_at)
        .text(&row.placed_by)
        .opt_int(row.lifted_at)
        .opt_text(row.lifted_by.as_deref());
        self.execute(q).await?;
        Ok(())
    }

    async fn lift_legal_hold(&mut self, id: Uuid, at_ms: i64, by: &str) -> Result<bool> {
        let q = Query::written(
            "UPDATE legal_holds SET lifted_at = $1, lifted_by = $2 WHERE id = $3 AND lifted_at IS NULL",
        )
        .int(at_ms)
        .text(by)
        .text(&id.to_string());
        Ok(self.execute(q).await? > 0)
    }

    async fn get_legal_hold(&mut self, id: Uuid) -> Result<Option<LegalHoldRow>> {
        let q = Query::written(format!(
            "SELECT {HOLD_COLUMNS} FROM legal_holds WHERE id = $1"
        ))
        .text(&id.to_string());
        self.fetch_optional(q, HOLD_TYPES)
            .await?
            .map(|r| decode_hold(&r))
            .transpose()
    }

    async fn legal_holds_of(&mut self, subject: Uuid) -> Result<Vec<LegalHoldRow>> {
        let q = Query::written(format!(
            "SELECT {HOLD_COLUMNS} FROM legal_holds WHERE subject_id = $1 ORDER BY placed_at DESC, id DESC"
        ))
        .text(&subject.to_string());
        self.fetch(q, HOLD_TYPES)
            .await?
            .iter()
            .map(decode_hold)
            .collect()
    }

    async fn legal_holds_in_force(&mut self, limit: u32) -> Result<Vec<LegalHoldRow>> {
        let q = Query::written(format!(
            "SELECT {HOLD_COLUMNS} FROM legal_holds WHERE lifted_at IS NULL ORDER BY review_at, id LIMIT $1"
        ))
        .int(i64::from(limit));
        self.fetch(q, HOLD_TYPES)
            .await?
            .iter()
            .map(decode_hold)
            .collect()
    }
}
