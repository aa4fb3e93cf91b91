//! The retention purge: the policies the inventory declares
//! ([`custos_domain::retention`]) applied to the records whose period is
//! over. A run works policy by policy, a batch at a time, and commits each
//! batch with its audit leaves and its progress, so a run stopped by a crash
//! is finished by the next one (the cut-offs stay those of the run's start,
//! so the end state is the same). Records of a person under legal hold are
//! skipped and counted. A finished run yields a purge certificate: the counts
//! per policy, the run's first and last ledger leaves and a signed checkpoint
//! covering them, with inclusion proofs, which an auditor checks offline
//! (`examples/auditor/verify_certificate.py`).

use crate::ledger::audit::{Event, format_timestamp_ms};
use crate::privacy::dsar::flags_in_force;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::Entity;
use custos_domain::Role;
use custos_domain::dsar::Flag;
use custos_domain::inventory::{self, Disposal};
use custos_domain::retention::{self, Periods, Policy};
use custos_store::prelude::*;
use custos_store::{Condition, ListQuery, RetentionRunRow, Sort, SqlValue, StoredRow};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

/// Records per batch of a run unless the caller says otherwise.
pub const DEFAULT_BATCH: u32 = 500;
/// How many due records a preview lists per policy.
pub const PREVIEW_FIRST: usize = 10;
/// The certificate format's name.
pub const CERTIFICATE_FORMAT: &str = "custos-purge-certificate/1";

/// How a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Records per transaction (1 to 10,000).
    pub batch: u32,
    /// A pause after each batch, to spare a busy database.
    pub pause: std::time::Duration,
    /// Whether the schedule started it: it is then recorded as the
    /// system's, not the caller's.
    pub scheduled: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            batch: DEFAULT_BATCH,
            pause: std::time::Duration::ZERO,
            scheduled: false,
        }
    }
}

/// What one policy would do (a preview) or did (a run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// The policy's name, e.g. `orders.completed_at.2y`.
    pub policy: String,
    /// The entity it governs (`order`, …).
    pub entity: String,
    /// Its period in years.
    pub years: u32,
    /// The timestamp the period runs from.
    pub anchor: String,
    /// `delete` or `anonymise`.
    pub disposal: String,
    /// The policy's version.
    pub version: u32,
    /// Records whose anchor is before this are due (RFC 3339).
    pub cutoff: String,
    /// Records purged (a preview: that would be).
    pub purged: u64,
    /// Due records kept because their person is under legal hold.
    pub held: u64,
}

/// One due record in a preview: ids and dates, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueRecord {
    /// The record.
    pub id: Uuid,
    /// Its anchor (RFC 3339).
    pub anchor: String,
    /// Whether a legal hold keeps it.
    pub held: bool,
}

/// What a run would purge now, per policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPreview {
    /// When the preview was computed (RFC 3339).
    pub at: String,
    /// Per policy: the counts, and its first due records.
    pub policies: Vec<PolicyPreview>,
}

/// One policy in a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyPreview {
    /// The counts (`purged`: would be purged).
    #[serde(flatten)]
    pub outcome: PolicyOutcome,
    /// Its first due records, oldest first (at most [`PREVIEW_FIRST`]).
    pub first: Vec<DueRecord>,
}

/// A finished run, as `custos retention run` and the UI report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRunReport {
    /// The run.
    pub id: Uuid,
    /// Whether it finished a run a crash had stopped.
    pub resumed: bool,
    /// Its purge certificate (JSON).
    pub certificate: PurgeCertificate,
}

/// One run in the list of past runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRunSummary {
    /// The run.
    pub id: Uuid,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Started (Unix ms).
    pub started_ms: i64,
    /// Finished (RFC 3339); `None` while it runs or after a crash.
    pub finished_at: Option<String>,
    /// Who started it.
    pub actor: String,
    /// Records purged, over every policy.
    pub purged: u64,
    /// Records held.
    pub held: u64,
}

/// The evidence of one run: what was purged under which policy, and where
/// in the ledger, under a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeCertificate {
    /// [`CERTIFICATE_FORMAT`].
    pub format: String,
    /// The run.
    pub run_id: Uuid,
    /// Who started it.
    pub actor: String,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Finished (RFC 3339).
    pub finished_at: String,
    /// Per policy: the counts.
    pub policies: Vec<PolicyOutcome>,
    /// Where the run is in the ledger, and the proof.
    pub ledger: CertificateLedger,
}

/// The ledger part of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLedger {
    /// Index of the leaf that recorded the run's start.
    pub first_index: u64,
    /// Index of the leaf that recorded its end, with the counts.
    pub last_index: u64,
    /// A signed checkpoint (C2SP signed note) covering both.
    pub checkpoint: String,
    /// The key that verifies it (get it from the operator as well: a
    /// verifier trusts its own copy, not this one).
    pub verifier_key: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The first and last leaves with their inclusion proofs.
    pub leaves: Vec<CertificateLeaf>,
}

/// A leaf in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateLeaf {
    /// Its index.
    pub index: u64,
    /// The exact leaf bytes, base64.
    pub data: String,
    /// SHA-256(0x00 ‖ data), hex.
    pub leaf_hash: String,
    /// RFC 9162 inclusion proof in the checkpoint's tree, bottom up, hex.
    pub inclusion_proof: Vec<String>,
}

/// A run's saved progress: per policy, how far it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunState {
    /// The run's "now": cut-offs are computed from it, also on resume.
    at_ms: i64,
    policies: Vec<PolicyState>,
    /// The leaf that recorded the end, once appended.
    #[serde(default)]
    last_leaf: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PolicyState {
    outcome: PolicyOutcome,
    /// The (anchor ms, id) of the last record passed.
    after: Option<(i64, Uuid)>,
    done: bool,
}

fn outcome_of(p: &Policy, at: time::OffsetDateTime) -> PolicyOutcome {
    PolicyOutcome {
        policy: p.name(),
        entity: p.entity.name().to_string(),
        years: p.years,
        anchor: p.period_from().to_string(),
        disposal: p.then.as_str().to_string(),
        version: p.version,
        cutoff: format_timestamp_ms(p.cutoff(at)),
        purged: 0,
        held: 0,
    }
}

/// The conditions of a policy's due records: an anchor before the cut-off
/// and, for anonymising and erasing, a value left to destroy (so a record
/// is done once: an erased person's sealed fields are all cleared).
fn due_conditions(p: &Policy, cutoff_ms: i64) -> Vec<Condition> {
    let mut c = vec![
        Condition::NotNull(p.anchor),
        Condition::SortKeyBefore(p.anchor, SqlValue::Int(cutoff_ms)),
    ];
    let left = |f: &'static inventory::FieldDecl| Condition::NotNull(f.name);
    match p.then {
        Disposal::Delete => {}
        Disposal::Anonymise => c.push(Condition::Or(p.erased().map(left).collect())),
        Disposal::Erase => c.push(Condition::Or(
            inventory::sealed_fields(p.entity).map(left).collect(),
        )),
    }
    c
}

/// The cut-off (Unix ms) of the order policy among `policies`: an order
/// within its period keeps its person.
pub(crate) fn order_cutoff<'a>(
    policies: impl IntoIterator<Item = &'a Policy> + 'a,
    at: time::OffsetDateTime,
) -> Option<i64> {
    policies
        .into_iter()
        .find(|p| p.entity == Entity::Order)
        .map(|p| ms_of(p.cutoff(at)))
}

/// The policies of a run, one per saved state: each as it was when the run
/// started (its period and version are the saved ones, so a resumed run
/// ends as it would have), `None` for one this version no longer has. A
/// policy this version added after the run started (an upgrade between a
/// crash and the resume) is appended, fresh, with the run's own time.
fn run_policies(
    state: &mut RunState,
    in_force: &[Policy],
    at: time::OffsetDateTime,
) -> Vec<Option<Policy>> {
    let key = |o: &PolicyOutcome| (o.entity.clone(), o.anchor.clone());
    let mut out: Vec<Option<Policy>> = state
        .policies
        .iter()
        .map(|st| {
            let mut p = in_force
                .iter()
                .find(|p| {
                    (p.entity.name().to_string(), p.period_from().to_string()) == key(&st.outcome)
                })?
                .clone();
            p.years = st.outcome.years;
            p.version = st.outcome.version;
            Some(p)
        })
        .collect();
    for p in in_force {
        let k = (p.entity.name().to_string(), p.period_from().to_string());
        if !state.policies.iter().any(|st| key(&st.outcome) == k) {
            state.policies.push(PolicyState {
                outcome: outcome_of(p, at),
                after: None,
                done: false,
            });
            out.push(Some(p.clone()));
        }
    }
    // Erasing runs last, also when appended.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| out[i].as_ref().is_some_and(|p| p.then == Disposal::Erase));
    let policies = order.iter().map(|&i| out[i].clone()).collect();
    state.policies = order.iter().map(|&i| state.policies[i].clone()).collect();
    policies
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("retention: {e}"))
}

/// A record's anchor (Unix ms); due records always have one.
fn anchor_ms(r: &StoredRow, p: &Policy) -> i64 {
    match r.get(p.anchor) {
        SqlValue::Int(ms) => *ms,
        _ => 0,
    }
}

fn ms_of(t: time::OffsetDateTime) -> i64 {
    custos_domain::value::to_unix_ms(t)
}

/// A Unix-ms time (the epoch if out of range).
pub(crate) fn time_of(ms: i64) -> time::OffsetDateTime {
    custos_domain::value::from_unix_ms(ms).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl Custos {
    async fn retention_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let msg = "retention is run by an administrator or the privacy officer".to_string();
        self.refuse(p, action, msg).await
    }

    /// One batch of a policy's due records after `after`.
    async fn due_batch(
        &self,
        tx: &mut dyn Tx,
        p: &Policy,
        cutoff_ms: i64,
        after: Option<(i64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<StoredRow>> {
        let q = ListQuery {
            entity: p.entity,
            conditions: due_conditions(p, cutoff_ms),
            sort: Sort {
                field: p.anchor,
                descending: false,
            },
            after: after.map(|(ms, id)| (SqlValue::Int(ms), id)),
            limit,
        };
        Ok(tx.list_records(&q).await?)
    }

    /// The subjects among `rows` a legal hold keeps.
    async fn held_among(&self, tx: &mut dyn Tx, rows: &[StoredRow]) -> Result<HashSet<Uuid>> {
        let subjects: Vec<Uuid> = rows.iter().filter_map(|r| r.subject_id).collect();
        if subjects.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(flags_in_force(tx, &subjects)
            .await?
            .into_iter()
            .filter(|(_, f)| *f == Flag::LegalHold)
            .map(|(s, _)| s)
            .collect())
    }

    /// The people among `rows` (records that are their own subject) a
    /// policy after the last activity keeps although their own record is
    /// past the cut-off: an activity with them since the cut-off, an open
    /// deal of theirs, or an order of theirs still within its own period
    /// (or not completed). Other policies keep nobody this way.
    async fn still_active(
        &self,
        tx: &mut dyn Tx,
        policy: &Policy,
        rows: &[StoredRow],
        at: time::OffsetDateTime,
        order_cutoff: Option<i64>,
    ) -> Result<HashSet<Uuid>> {
        if !policy.after_last_activity || rows.is_empty() {
            return Ok(HashSet::new());
        }
        let people = Condition::In(
            "contact_id",
            rows.iter()
                .map(|r| SqlValue::Text(r.id.to_string()))
                .collect(),
        );
        let cutoff = SqlValue::Int(ms_of(policy.cutoff(at)));
        let recent = Condition::Or(vec![
            Condition::AtLeast("updated_at", cutoff.clone()),
            Condition::AtLeast("occurred_at", cutoff),
        ]);
        // An order keeps its person while the order policy keeps the order.
        let order_kept = match order_cutoff {
            Some(ms) => Condition::Or(vec![
                Condition::IsNull("completed_at"),
                Condition::AtLeast("completed_at", SqlValue::Int(ms)),
            ]),
            None => Condition::And(vec![]),
        };
        let mut kept = HashSet::new();
        let found = [
            (Entity::Activity, recent),
            (Entity::Order, order_kept),
            (Entity::Deal, Condition::And(vec![])),
        ];
        for (entity, cond) in found {
            let rows = self
                .rows_where(tx, entity, Condition::And(vec![people.clone(), cond]))
                .await?;
            for r in rows {
                if entity == Entity::Deal
                    && !matches!(r.get("stage"), SqlValue::Text(s) if retention::deal_is_open(s))
                {
                    continue;
                }
                if let SqlValue::Text(c) = r.get("contact_id")
                    && let Ok(id) = c.parse::<Uuid>()
                {
                    kept.insert(id);
                }
            }
        }
        Ok(kept)
    }

    /// The periods in force (the inventory's defaults where the privacy
    /// officer changed nothing): for the purge, the notice, the map and the
    /// record of processing alike.
    pub async fn retention_periods(&self) -> Result<Periods> {
        let mut tx = self.inner.store.begin_read().await?;
        Self::periods_in(tx.as_mut()).await
    }

    pub(crate) async fn periods_in(tx: &mut dyn Tx) -> Result<Periods> {
        let mut periods = Periods::default();
        for v in tx.policy_versions().await? {
            // Oldest first: the newest version of each policy stays.
            let years = u32::try_from(v.years).map_err(internal)?;
            let version = u32::try_from(v.version).map_err(internal)?;
            periods.0.insert(v.policy, (years, version));
        }
        Ok(periods)
    }

    /// One policy's due records at `at`: the counts (`purged`: would be)
    /// and the first `first` of them. Reads ids, dates and flags only.
    pub(crate) async fn count_due(
        &self,
        tx: &mut dyn Tx,
        policy: &Policy,
        at: time::OffsetDateTime,
        order_cutoff: Option<i64>,
        first: usize,
    ) -> Result<PolicyPreview> {
        let cutoff = ms_of(policy.cutoff(at));
        let mut outcome = outcome_of(policy, at);
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let rows = self
                .due_batch(tx, policy, cutoff, after, DEFAULT_BATCH)
                .await?;
            let held = self.held_among(tx, &rows).await?;
            let active = self
                .still_active(tx, policy, &rows, at, order_cutoff)
                .await?;
            for r in rows.iter().filter(|r| !active.contains(&r.id)) {
                let kept = r.subject_id.is_some_and(|s| held.contains(&s));
                if kept {
                    outcome.held += 1;
                } else {
                    outcome.purged += 1;
                }
                if listed.len() < first {
                    listed.push(DueRecord {
                        id: r.id,
                        anchor: format_timestamp_ms(time_of(anchor_ms(r, policy))),
                        held: kept,
                    });
                }
            }
            match rows.last() {
                Some(last) if rows.len() == DEFAULT_BATCH as usize => {
                    after = Some((anchor_ms(last, policy), last.id));
                }
                _ => break,
            }
        }
        Ok(PolicyPreview {
            outcome,
            first: listed,
        })
    }

    /// What a run would purge now: per policy, the counts and the first
    /// due records (ids and dates). Reads only ids, dates and flags; the
    /// preview itself is audited.
    pub async fn retention_preview(&self, p: &Principal) -> Result<RetentionPreview> {
        if !Self::require_privacy(p) {
            return Err(self.retention_refused(p, "retention.preview").await);
        }
        let at = self.now();
        let mut tx = self.inner.store.begin_read().await?;
        let policies = Self::periods_in(tx.as_mut()).await?.policies();
        let order_cutoff = order_cutoff(&policies, at);
        let mut out = Vec::new();
        for policy in &policies {
            out.push(
                self.count_due(tx.as_mut(), policy, at, order_cutoff, PREVIEW_FIRST)
                    .await?,
            );
        }
        drop(tx);
        let detail = out
            .iter()
            .map(|p| {
                let o = &p.outcome;
                format!("{}=due:{},held:{}", o.policy, o.purged, o.held)
            })
            .collect::<Vec<_>>()
            .join(" ");
        self.append_alone(Event::new(p, "retention.preview").detail(detail))
            .await?;
        Ok(RetentionPreview {
            at: format_timestamp_ms(at),
            policies: out,
        })
    }

    /// Runs the purge (or finishes the run a crash stopped): every policy,
    /// a batch of records per transaction, each purged record audited, then
    /// a signed checkpoint and the certificate. `progress(done, total)` is
    /// called after each batch.
    pub async fn retention_run(
        &self,
        p: &Principal,
        options: RunOptions,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<RetentionRunReport> {
        if !Self::require_privacy(p) {
            return Err(self.retention_refused(p, "retention.run").await);
        }
        let batch = options.batch.clamp(1, 10_000);
        let actor = if options.scheduled {
            "system".to_string()
        } else {
            p.actor()
        };
        let event = |action: &str| Event::new(p, action).actor(actor.clone());
        // Start a run, or take up the one a crash left.
        let mut tx = self.inner.store.begin().await?;
        let in_force = Self::periods_in(tx.as_mut()).await?.policies();
        let (run, mut state, resumed) = match tx.unfinished_retention_run().await? {
            Some(run) => {
                let state: RunState = serde_json::from_str(&run.state).map_err(internal)?;
                drop(tx);
                (run, state, true)
            }
            None => {
                let at = self.now();
                let id = Uuid::now_v7();
                let state = RunState {
                    at_ms: ms_of(at),
                    policies: in_force
                        .iter()
                        .map(|p| PolicyState {
                            outcome: outcome_of(p, at),
                            after: None,
                            done: false,
                        })
                        .collect(),
                    last_leaf: None,
                };
                let first = self
                    .append(
                        tx.as_mut(),
                        event("retention.start").detail(format!("run={id}")),
                    )
                    .await?;
                let run = RetentionRunRow {
                    id,
                    started_at: state.at_ms,
                    finished_at: None,
                    actor: actor.clone(),
                    first_leaf: first as i64,
                    state: serde_json::to_string(&state).map_err(internal)?,
                    certificate: None,
                };
                tx.insert_retention_run(&run).await?;
                tx.commit().await?;
                (run, state, false)
            }
        };
        let at = time_of(state.at_ms);
        let policies = run_policies(&mut state, &in_force, at);
        let order_cutoff = order_cutoff(policies.iter().flatten(), at);
        // The work left, for the progress bar.
        let mut total = 0;
        let mut done = 0;
        {
            let mut tx = self.inner.store.begin_read().await?;
            for (policy, st) in policies.iter().zip(&state.policies) {
                done += st.outcome.purged + st.outcome.held;
                if let Some(policy) = policy
                    && !st.done
                {
                    let cutoff = ms_of(policy.cutoff(at));
                    total += tx
                        .count_records(policy.entity, &due_conditions(policy, cutoff))
                        .await?;
                }
            }
            total += done;
        }
        progress(done, total);
        for (i, policy) in policies.iter().enumerate() {
            // A policy this version no longer has did what it did.
            let Some(policy) = policy else { continue };
            if state.policies[i].done {
                continue;
            }
            let cutoff = ms_of(policy.cutoff(at));
            loop {
                let mut tx = self.inner.store.begin().await?;
                let after = state.policies[i].after;
                let rows = self
                    .due_batch(tx.as_mut(), policy, cutoff, after, batch)
                    .await?;
                let held = self.held_among(tx.as_mut(), &rows).await?;
                let active = self
                    .still_active(tx.as_mut(), policy, &rows, at, order_cutoff)
                    .await?;
                let mut shredded = Vec::new();
                for r in rows.iter().filter(|r| !active.contains(&r.id)) {
                    if r.subject_id.is_some_and(|s| held.contains(&s)) {
                        state.policies[i].outcome.held += 1;
                        continue;
                    }
                    self.dispose(tx.as_mut(), policy, r).await?;
                    if policy.entity.subject_field() == Some("id") {
                        shredded.push(r.id);
                    }
                    self.append(
                        tx.as_mut(),
                        event("retention.purge")
                            .subject(r.subject_id)
                            .record(policy.entity, r.id)
                            .detail(format!(
                                "run={} policy={} then={}",
                                run.id,
                                policy.name(),
                                policy.then.as_str()
                            )),
                    )
                    .await?;
                    state.policies[i].outcome.purged += 1;
                }
                let st = &mut state.policies[i];
                match rows.last() {
                    Some(last) => {
                        st.after = Some((anchor_ms(last, policy), last.id));
                        st.done = rows.len() < batch as usize;
                    }
                    None => st.done = true,
                }
                let finished = st.done;
                tx.save_retention_run(
                    run.id,
                    &serde_json::to_string(&state).map_err(internal)?,
                    None,
                )
                .await?;
                tx.commit().await?;
                for s in shredded {
                    self.inner.keys.forget(&s);
                    self.journal_erasure(s);
                }
                done += rows.len() as u64;
                progress(done, total.max(done));
                if finished {
                    break;
                }
                if !options.pause.is_zero() {
                    tokio::time::sleep(options.pause).await;
                }
            }
        }
        // The end, with the counts, in the ledger; then a checkpoint over it.
        let last = match state.last_leaf {
            Some(l) => l,
            None => {
                let mut tx = self.inner.store.begin().await?;
                let counts = state
                    .policies
                    .iter()
                    .map(|p| {
                        format!(
                            "{}=purged:{},held:{}",
                            p.outcome.policy, p.outcome.purged, p.outcome.held
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let last = self
                    .append(
                        tx.as_mut(),
                        event("retention.finish").detail(format!("run={} {counts}", run.id)),
                    )
                    .await?;
                state.last_leaf = Some(last);
                tx.save_retention_run(
                    run.id,
                    &serde_json::to_string(&state).map_err(internal)?,
                    None,
                )
                .await?;
                tx.commit().await?;
                last
            }
        };
        let note = self.ledger_checkpoint().await?;
        let key = self.ledger_verifier_key()?;
        let first = u64::try_from(run.first_leaf).map_err(internal)?;
        let proved = self.prove_leaves(note, key, &[first, last]).await?;
        let finished_at = self.now();
        let certificate = PurgeCertificate {
            format: CERTIFICATE_FORMAT.to_string(),
            run_id: run.id,
            actor: run.actor.clone(),
            started_at: format_timestamp_ms(time_of(run.started_at)),
            finished_at: format_timestamp_ms(finished_at),
            policies: state.policies.iter().map(|p| p.outcome.clone()).collect(),
            ledger: CertificateLedger {
                first_index: first,
                last_index: last,
                checkpoint: proved.checkpoint,
                verifier_key: proved.verifier_key,
                tree_size: proved.size,
                leaves: proved
                    .leaves
                    .iter()
                    .map(|l| CertificateLeaf {
                        index: l.index,
                        data: base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            &l.data,
                        ),
                        leaf_hash: hex::encode(l.leaf_hash),
                        inclusion_proof: l.proof.iter().map(hex::encode).collect(),
                    })
                    .collect(),
            },
        };
        let json = serde_json::to_string(&certificate).map_err(internal)?;
        let mut tx = self.inner.store.begin().await?;
        tx.save_retention_run(
            run.id,
            &serde_json::to_string(&state).map_err(internal)?,
            Some((ms_of(finished_at), &json)),
        )
        .await?;
        tx.commit().await?;
        Ok(RetentionRunReport {
            id: run.id,
            resumed,
            certificate,
        })
    }

    /// Deletes or anonymises one due record, as its policy says.
    async fn dispose(&self, tx: &mut dyn Tx, policy: &Policy, r: &StoredRow) -> Result<()> {
        match policy.then {
            Disposal::Delete => {
                tx.delete_record(policy.entity, r.id).await?;
                // A record that is its own data subject (a privacy request)
                // takes its data key with it.
                if policy.entity.subject_field() == Some("id") {
                    tx.shred_subject_key(r.id, self.now_ms()).await?;
                }
            }
            Disposal::Anonymise => {
                let cleared: Vec<(&'static str, SqlValue)> =
                    policy.erased().map(|f| (f.name, SqlValue::Null)).collect();
                tx.update_record(policy.entity, r.id, &cleared).await?;
            }
            // The person and everything of theirs, as an erasure request.
            Disposal::Erase => {
                self.shred_in(tx, r.id).await?;
            }
        }
        Ok(())
    }

    /// The past runs, newest first.
    pub async fn retention_runs(
        &self,
        p: &Principal,
        limit: u32,
    ) -> Result<Vec<RetentionRunSummary>> {
        if !Self::require_privacy(p) && p.role != Role::Auditor {
            return Err(self.retention_refused(p, "retention.list").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let runs = tx.list_retention_runs(limit.clamp(1, 500)).await?;
        runs.into_iter()
            .map(|r| {
                let state: RunState = serde_json::from_str(&r.state).map_err(internal)?;
                Ok(RetentionRunSummary {
                    id: r.id,
                    started_at: format_timestamp_ms(time_of(r.started_at)),
                    started_ms: r.started_at,
                    finished_at: r.finished_at.map(|f| format_timestamp_ms(time_of(f))),
                    actor: r.actor,
                    purged: state.policies.iter().map(|p| p.outcome.purged).sum(),
                    held: state.policies.iter().map(|p| p.outcome.held).sum(),
                })
            })
            .collect()
    }

    /// The certificate of a finished run.
    pub async fn retention_certificate(&self, p: &Principal, id: Uuid) -> Result<PurgeCertificate> {
        if !Self::require_privacy(p) && p.role != Role::Auditor {
            return Err(self.retention_refused(p, "retention.certificate").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let run = tx
            .get_retention_run(id)
            .await?
            .ok_or(ServiceError::NotFound("retention run"))?;
        let Some(json) = run.certificate else {
            return Err(ServiceError::Conflict(
                "this run has not finished; run `custos retention run` to finish it".into(),
            ));
        };
        serde_json::from_str(&json).map_err(internal)
    }
}
