//! The data-minimisation review (GDPR Art. 5(1)(c)): for each field of the
//! CRM's records, how often the ledger saw it read, exported and written
//! over the last months, how many records hold a value (counted on the
//! stored columns, sealed ones included, never by opening them), and
//! whether it has a declared purpose. Fields with no purpose, no reads, or
//! values held without use are flagged; the privacy officer records a
//! decision per field (keep, with a reason, or stop collecting it, after
//! which forms leave it out and new values are refused), and the review is
//! due again a year after the last one.
//!
//! A read of a record discloses the categories its leaf names, so a field
//! counts as read when a read, list or search of its entity disclosed its
//! category; writes name their fields (`fields=` in the leaf).

use crate::ledger::audit::{Event, format_timestamp_ms};
use crate::privacy::retention::time_of;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::inventory::{self, FieldDecl, Presence};
use custos_domain::retention::months_before;
use custos_domain::{Entity, Role};
use custos_ledger::event::AuditEvent;
use custos_store::EventFilter;
use custos_store::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::HashMap;

const DECISION_PREFIX: &str = "privacy.minimisation.decision.";
const REVIEWED_KEY: &str = "privacy.minimisation.reviewed_at";
/// The default window of the review, in months.
pub const REVIEW_MONTHS: u32 = 12;
/// The longest reason of a decision.
pub const DECISION_REASON_MAX: usize = 500;
/// Ledger leaves read per query while counting.
const SCAN_CHUNK: u64 = 2_000;

/// What the privacy officer decided about a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Keep collecting it, for the reason given.
    Keep,
    /// Stop collecting it: it leaves forms, and new values are refused.
    StopCollecting,
}

impl DecisionKind {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Keep => "keep",
            DecisionKind::StopCollecting => "stop_collecting",
        }
    }
}

/// A decision on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Keep or stop collecting.
    pub decision: DecisionKind,
    /// Why.
    pub reason: String,
    /// Who decided (actor string).
    pub decided_by: String,
    /// When (RFC 3339).
    pub decided_at: String,
}

/// Why a field is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageFlag {
    /// No purpose is declared for it.
    NoPurpose,
    /// Nobody read or exported it in the window.
    Unread,
    /// Records hold values of it, yet nobody read it in the window.
    HeldUnused,
}

/// The usage of one field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldUsage {
    /// The entity.
    pub entity: Entity,
    /// The field.
    pub field: &'static str,
    /// Its label.
    pub label: &'static str,
    /// Its data category.
    pub category: &'static str,
    /// Its purposes.
    pub purposes: Vec<&'static str>,
    /// Whether a form may leave it out (only those can stop being collected).
    pub optional: bool,
    /// Reads, lists and searches that disclosed it, in the window.
    pub reads: u64,
    /// Exports that disclosed it (access packages, purpose-checked exports).
    pub exports: u64,
    /// Creates and updates that wrote it.
    pub writes: u64,
    /// Records holding a value now.
    pub held: u64,
    /// Records of the entity now.
    pub records: u64,
    /// Why it is flagged (empty: nothing to review).
    pub flags: Vec<UsageFlag>,
    /// The decision recorded, if any.
    pub decision: Option<Decision>,
}

/// The minimisation report.
#[derive(Debug, Clone, Serialize)]
pub struct MinimisationReport {
    /// How many months the counts cover.
    pub months: u32,
    /// The window's start (RFC 3339).
    pub from: String,
    /// Its end: now (RFC 3339).
    pub to: String,
    /// Ledger entries read to count.
    pub entries_scanned: u64,
    /// One per field of the CRM's records.
    pub fields: Vec<FieldUsage>,
    /// When the last review was completed (RFC 3339).
    pub reviewed_at: Option<String>,
    /// When the next is due (YYYY-MM-DD).
    pub review_due_on: String,
    /// Whether it is past due.
    pub review_overdue: bool,
}

/// The fields the review covers: every field of the CRM's records but
/// their ids and bookkeeping times.
fn reviewed_fields() -> impl Iterator<Item = &'static FieldDecl> {
    Entity::CRM
        .into_iter()
        .flat_map(inventory::fields)
        .filter(|f| !matches!(f.name, "id" | "created_at" | "updated_at"))
}

#[derive(Default)]
struct Counts {
    /// (entity, category) → reads.
    reads: HashMap<(Entity, String), u64>,
    /// (entity, category) → exports.
    exports: HashMap<(Entity, String), u64>,
    /// (entity, field) → writes.
    writes: HashMap<(Entity, String), u64>,
}

impl Counts {
    fn add(&mut self, e: &AuditEvent) {
        if e.outcome != "success" {
            return;
        }
        let Some((name, op)) = e.action.split_once('.') else {
            return;
        };
        let Some(entity) = Entity::CRM.into_iter().find(|x| x.name() == name) else {
            return;
        };
        let per_category = match op {
            "read" | "list" | "search" => &mut self.reads,
            "export" => &mut self.exports,
            "create" | "update" => {
                let fields = e
                    .detail
                    .as_deref()
                    .unwrap_or_default()
                    .split(' ')
                    .find_map(|w| w.strip_prefix("fields="))
                    .unwrap_or_default();
                for f in fields.split(',').filter(|f| !f.is_empty()) {
                    *self.writes.entry((entity, f.to_string())).or_default() += 1;
                }
                return;
            }
            _ => return,
        };
        for c in &e.categories {
            *per_category.entry((entity, c.clone())).or_default() += 1;
        }
    }
}

/// When the next review is due: a year after the last, or today when there
/// was none.
fn review_due_on(reviewed_ms: Option<i64>, now: time::OffsetDateTime) -> time::Date {
    match reviewed_ms {
        Some(ms) => {
            let d = time_of(ms).date();
            d.replace_year(d.year() + 1).unwrap_or(d)
        }
        None => now.date(),
    }
}

fn decision_key(entity: Entity, field: &str) -> String {
    format!("{DECISION_PREFIX}{}.{field}", entity.name())
}

impl Custos {
    async fn minimisation_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let msg = "the minimisation review is for the privacy officer".to_string();
        self.refuse(p, action, msg).await
    }

    /// The fields of `entity` no longer collected (a "stop collecting"
    /// decision). Not personal: forms and imports ask it of anyone.
    pub async fn not_collected(&self, entity: Entity) -> Result<Vec<&'static str>> {
        let mut tx = self.inner.store.begin_read().await?;
        Self::not_collected_in(tx.as_mut(), entity).await
    }

    pub(crate) async fn not_collected_in(
        tx: &mut dyn Tx,
        entity: Entity,
    ) -> Result<Vec<&'static str>> {
        let prefix = format!("{DECISION_PREFIX}{}.", entity.name());
        let mut out = Vec::new();
        for (key, value) in tx.list_settings(&prefix).await? {
            let Some(field) = key.strip_prefix(&prefix) else {
                continue;
            };
            let stopped = serde_json::from_str::<Decision>(&value)
                .is_ok_and(|d| d.decision == DecisionKind::StopCollecting);
            if let Some(decl) = inventory::field(entity, field)
                && stopped
            {
                out.push(decl.name);
            }
        }
        Ok(out)
    }

    /// The review over the last `months` (1 to 120): counts from the ledger
    /// and the stored columns, flags and decisions. Audited as
    /// `minimisation.report`.
    pub async fn minimisation_report(
        &self,
        p: &Principal,
        months: u32,
    ) -> Result<MinimisationReport> {
        if !Self::require_privacy(p) && p.role != Role::Auditor {
            return Err(self.minimisation_refused(p, "minimisation.report").await);
        }
        if !(1..=120).contains(&months) {
            return Err(ServiceError::invalid(
                "months",
                "must be a number of months from 1 to 120",
            ));
        }
        let now = self.now();
        let from = months_before(now, months);
        let from_ms = custos_domain::value::to_unix_ms(from);
        let mut tx = self.inner.store.begin_read().await?;
        // The first entry of the window: the one after the last before it.
        let before = tx
            .find_leaves(
                &EventFilter {
                    to_ms: Some(from_ms),
                    ..Default::default()
                },
                1,
            )
            .await?;
        let start = before.first().map_or(0, |i| i + 1);
        let end = tx.ledger_head().await?.size;
        let mut counts = Counts::default();
        let mut at = start;
        while at < end {
            let upto = (at + SCAN_CHUNK).min(end);
            for leaf in tx.ledger_leaves(at, upto).await? {
                let event = AuditEvent::decode(&leaf.data).map_err(|e| {
                    ServiceError::Internal(format!("ledger entry {}: {e}", leaf.index))
                })?;
                counts.add(&event);
            }
            at = upto;
        }
        let mut held: HashMap<Entity, Vec<u64>> = HashMap::new();
        for entity in Entity::CRM {
            let names: Vec<&'static str> = reviewed_fields()
                .filter(|f| f.entity == entity)
                .map(|f| f.name)
                .collect();
            held.insert(entity, tx.count_values(entity, &names).await?);
        }
        let mut decisions: HashMap<String, Decision> = HashMap::new();
        for (key, value) in tx.list_settings(DECISION_PREFIX).await? {
            if let Ok(d) = serde_json::from_str(&value) {
                decisions.insert(key, d);
            }
        }
        let reviewed_ms = tx
            .get_setting(REVIEWED_KEY)
            .await?
            .and_then(|s| s.parse::<i64>().ok());
        drop(tx);
        let mut fields = Vec::new();
        let mut position: HashMap<Entity, usize> = HashMap::new();
        for f in reviewed_fields() {
            let i = position.entry(f.entity).or_insert(0);
            *i += 1;
            let of = held.get(&f.entity);
            let records = of.and_then(|v| v.first()).copied().unwrap_or(0);
            let held_now = of.and_then(|v| v.get(*i)).copied().unwrap_or(0);
            let key = (f.entity, f.category.name().to_string());
            let reads = counts.reads.get(&key).copied().unwrap_or(0);
            let exports = counts.exports.get(&key).copied().unwrap_or(0);
            let writes = counts
                .writes
                .get(&(f.entity, f.name.to_string()))
                .copied()
                .unwrap_or(0);
            let mut flags = Vec::new();
            if f.purposes.is_empty() {
                flags.push(UsageFlag::NoPurpose);
            }
            if reads + exports == 0 {
                flags.push(UsageFlag::Unread);
                if held_now > 0 {
                    flags.push(UsageFlag::HeldUnused);
                }
            }
            fields.push(FieldUsage {
                entity: f.entity,
                field: f.name,
                label: f.label,
                category: f.category.name(),
                purposes: f.purposes.iter().map(|p| p.name()).collect(),
                optional: f.presence == Presence::Optional,
                reads,
                exports,
                writes,
                held: held_now,
                records,
                flags,
                decision: decisions.remove(&decision_key(f.entity, f.name)),
            });
        }
        let due = review_due_on(reviewed_ms, now);
        self.append_alone(
            Event::new(p, "minimisation.report")
                .detail(format!("months={months} entries={}", end - start)),
        )
        .await?;
        Ok(MinimisationReport {
            months,
            from: format_timestamp_ms(from),
            to: format_timestamp_ms(now),
            entries_scanned: end - start,
            fields,
            reviewed_at: reviewed_ms.map(|ms| format_timestamp_ms(time_of(ms))),
            review_due_on: due.to_string(),
            review_overdue: due <= now.date(),
        })
    }

    /// When the minimisation review is due (YYYY-MM-DD) if it is due today or
    /// overdue, for the privacy overview; `None` while it is not. Reads one
    /// setting, not the ledger.
    pub async fn minimisation_review_due(&self, p: &Principal) -> Result<Option<String>> {
        if !Self::require_privacy(p) && p.role != Role::Auditor {
            return Ok(None);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let reviewed_ms = tx
            .get_setting(REVIEWED_KEY)
            .await?
            .and_then(|s| s.parse::<i64>().ok());
        let now = self.now();
        let due = review_due_on(reviewed_ms, now);
        Ok((due <= now.date()).then(|| due.to_string()))
    }

    /// Records the decision on one field (privacy officer): `{"decision":
    /// "keep" | "stop_collecting", "reason"}`. Only an optional field can
    /// stop being collected; a reason is always required.
    pub async fn minimisation_decide(
        &self,
        p: &Principal,
        entity: Entity,
        field: &str,
        input: &Json,
    ) -> Result<Decision> {
        if !Self::require_privacy(p) {
            return Err(self.minimisation_refused(p, "minimisation.decide").await);
        }
        let Some(decl) = reviewed_fields().find(|f| f.entity == entity && f.name == field) else {
            return Err(ServiceError::NotFound("field"));
        };
        let kind = match input.get("decision").and_then(Json::as_str) {
            Some("keep") => DecisionKind::Keep,
            Some("stop_collecting") => DecisionKind::StopCollecting,
            _ => {
                return Err(ServiceError::invalid(
                    "decision",
                    "must be keep or stop_collecting",
                ));
            }
        };
        let reason = match input.get("reason") {
            None | Some(Json::Null) => "",
            Some(Json::String(s)) => s.trim(),
            Some(_) => return Err(ServiceError::invalid("reason", "must be a string")),
        };
        if reason.is_empty() {
            return Err(ServiceError::invalid(
                "reason",
                "say why (what the field is needed for, or why it is not)",
            ));
        }
        if let Err(m) = custos_domain::validate::check_text(reason, DECISION_REASON_MAX, true) {
            return Err(ServiceError::invalid("reason", m));
        }
        if kind == DecisionKind::StopCollecting && decl.presence != Presence::Optional {
            return Err(ServiceError::invalid(
                "decision",
                format!(
                    "{} is required or set by Custos, so it cannot stop being collected",
                    decl.label
                ),
            ));
        }
        let decision = Decision {
            decision: kind,
            reason: reason.to_string(),
            decided_by: p.actor(),
            decided_at: format_timestamp_ms(self.now()),
        };
        let json =
            serde_json::to_string(&decision).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut tx = self.inner.store.begin().await?;
        tx.put_setting(&decision_key(entity, decl.name), &json)
            .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "minimisation.decide").detail(format!(
                "field={}.{} decision={}",
                entity.name(),
                decl.name,
                kind.as_str()
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(decision)
    }

    /// Marks the review done today (privacy officer); the next is due in a
    /// year.
    pub async fn minimisation_reviewed(&self, p: &Principal) -> Result<()> {
        if !Self::require_privacy(p) {
            return Err(self.minimisation_refused(p, "minimisation.reviewed").await);
        }
        let mut tx = self.inner.store.begin().await?;
        tx.put_setting(REVIEWED_KEY, &self.now_ms().to_string())
            .await?;
        self.append(tx.as_mut(), Event::new(p, "minimisation.reviewed"))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
