//! Changing the retention policies: the inventory declares each policy's
//! default period (version 1); the privacy officer may give a policy
//! another period, with a reason. Each change is the policy's next
//! version, recorded in the ledger (`retention.policy`, ids and numbers
//! only) and kept with its reason, so the history of every policy can be
//! shown and every purge certificate names the version it applied. A change
//! that would purge more is shown with the number of records it would
//! affect, and saved only once confirmed.

use crate::ledger::audit::{Event, format_timestamp_ms};
use crate::privacy::retention::{order_cutoff, time_of};
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::Role;
use custos_domain::retention::{self, Periods, Policy};
use custos_store::PolicyVersionRow;
use custos_store::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;

/// The longest reason for a change.
pub const POLICY_REASON_MAX: usize = 500;

/// A retention policy as the privacy officer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    /// What it is about, whatever its period (`orders.completed_at`): the
    /// name to change it by.
    pub key: String,
    /// Its name with its period (`orders.completed_at.2y`).
    pub name: String,
    /// The entity it governs.
    pub entity: &'static str,
    /// What the period runs from.
    pub anchor: &'static str,
    /// `delete`, `anonymise` or `erase`.
    pub disposal: &'static str,
    /// The period in force, in years.
    pub years: u32,
    /// The inventory's default period.
    pub default_years: u32,
    /// The version in force (1: the inventory's default).
    pub version: u32,
    /// The changes, oldest first.
    pub history: Vec<PolicyChange>,
}

/// One saved change of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    /// The version it made.
    pub version: u32,
    /// The period it set.
    pub years: u32,
    /// The period before.
    pub previous_years: u32,
    /// Why.
    pub reason: String,
    /// Who (actor string).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The ledger leaf that recorded it.
    pub leaf: u64,
}

/// What a change of period would do on the next run, over every policy
/// (an order policy's period also decides which people an order keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyImpact {
    /// The policy.
    pub key: String,
    /// Its period now.
    pub years_now: u32,
    /// The period asked for.
    pub years: u32,
    /// Records a run would purge now.
    pub due_now: u64,
    /// Records a run would purge with the change.
    pub due_then: u64,
    /// How many more the change would purge (0 when it purges fewer).
    pub more: u64,
}

fn version_of(row: &PolicyVersionRow) -> PolicyChange {
    PolicyChange {
        version: u32::try_from(row.version).unwrap_or(u32::MAX),
        years: u32::try_from(row.years).unwrap_or(u32::MAX),
        previous_years: u32::try_from(row.previous_years).unwrap_or(u32::MAX),
        reason: row.reason.clone(),
        by: row.actor.clone(),
        at: format_timestamp_ms(time_of(row.changed_at)),
        leaf: u64::try_from(row.leaf).unwrap_or(0),
    }
}

fn view_of(p: &Policy, rows: &[PolicyVersionRow]) -> PolicyView {
    let default_years = retention::policies()
        .iter()
        .find(|d| d.key() == p.key())
        .map_or(p.years, |d| d.years);
    PolicyView {
        key: p.key(),
        name: p.name(),
        entity: p.entity.name(),
        anchor: p.period_from(),
        disposal: p.then.as_str(),
        years: p.years,
        default_years,
        version: p.version,
        history: rows
            .iter()
            .filter(|r| r.policy == p.key())
            .map(version_of)
            .collect(),
    }
}

/// The period in a change's body: a whole number, or a string of one.
fn years_in(input: &Json) -> std::result::Result<u32, ServiceError> {
    let text = match input.get("years") {
        Some(Json::Number(n)) => n.to_string(),
        Some(Json::String(s)) => s.clone(),
        None | Some(Json::Null) => String::new(),
        Some(_) => return Err(ServiceError::invalid("years", "must be a number")),
    };
    retention::parse_years(&text).map_err(|m| ServiceError::invalid("years", m))
}

impl Custos {
    async fn policies_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let msg =
            "retention policies are changed by an administrator or the privacy officer".to_string();
        self.refuse(p, action, msg).await
    }

    /// The policies in force with their histories.
    pub async fn retention_policies(&self, p: &Principal) -> Result<Vec<PolicyView>> {
        if !Self::require_privacy(p) && p.role != Role::Auditor {
            return Err(self.policies_refused(p, "retention.policies").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let rows = tx.policy_versions().await?;
        let periods = Self::periods_in(tx.as_mut()).await?;
        Ok(periods
            .policies()
            .iter()
            .map(|x| view_of(x, &rows))
            .collect())
    }

    /// What giving the policy `key` a period of `years` would do on the next
    /// run: the records due now and with the change, over every policy.
    /// Counts only, read from ids, dates and flags.
    pub async fn retention_policy_impact(
        &self,
        p: &Principal,
        key: &str,
        years: u32,
    ) -> Result<PolicyImpact> {
        if !Self::require_privacy(p) {
            return Err(self.policies_refused(p, "retention.policy.impact").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let periods = Self::periods_in(tx.as_mut()).await?;
        self.impact_in(tx.as_mut(), &periods, key, years).await
    }

    async fn impact_in(
        &self,
        tx: &mut dyn Tx,
        periods: &Periods,
        key: &str,
        years: u32,
    ) -> Result<PolicyImpact> {
        let now = periods.policies();
        let Some(current) = now.iter().find(|x| x.key() == key) else {
            return Err(ServiceError::NotFound("retention policy"));
        };
        let mut changed = periods.clone();
        changed.0.insert(key.to_string(), (years, current.version));
        let at = self.now();
        let due_now = self.total_due(tx, &now, at).await?;
        let due_then = self.total_due(tx, &changed.policies(), at).await?;
        Ok(PolicyImpact {
            key: key.to_string(),
            years_now: current.years,
            years,
            due_now,
            due_then,
            more: due_then.saturating_sub(due_now),
        })
    }

    async fn total_due(
        &self,
        tx: &mut dyn Tx,
        policies: &[Policy],
        at: time::OffsetDateTime,
    ) -> Result<u64> {
        let order_cutoff = order_cutoff(policies, at);
        let mut total = 0;
        for policy in policies {
            total += self
                .count_due(tx, policy, at, order_cutoff, 0)
                .await?
                .outcome
                .purged;
        }
        Ok(total)
    }

    /// Gives the policy `key` another period: body `{"years": N, "reason":
    /// "…", "confirm": true}`. A change that would purge more records is
    /// refused unless `confirm` is true, with the number it would affect.
    /// Saved as the policy's next version, recorded in the ledger.
    pub async fn retention_policy_set(
        &self,
        p: &Principal,
        key: &str,
        input: &Json,
    ) -> Result<PolicyView> {
        if !Self::require_privacy(p) {
            return Err(self.policies_refused(p, "retention.policy").await);
        }
        if !input.is_object() {
            return Err(ServiceError::invalid("years", "send a JSON object"));
        }
        let years = years_in(input)?;
        let reason = match input.get("reason") {
            None | Some(Json::Null) => "",
            Some(Json::String(s)) => s.trim(),
            Some(_) => return Err(ServiceError::invalid("reason", "must be a string")),
        };
        if reason.is_empty() {
            return Err(ServiceError::invalid(
                "reason",
                "say why the period changes (a law, a contract, a decision)",
            ));
        }
        if let Err(m) = custos_domain::validate::check_text(reason, POLICY_REASON_MAX, true) {
            return Err(ServiceError::invalid("reason", m));
        }
        let confirmed = match input.get("confirm") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(ServiceError::invalid("confirm", "must be true or false")),
        };
        let mut tx = self.inner.store.begin().await?;
        let periods = Self::periods_in(tx.as_mut()).await?;
        let Some(current) = periods.policies().into_iter().find(|x| x.key() == key) else {
            return Err(ServiceError::NotFound("retention policy"));
        };
        if current.years == years {
            return Err(ServiceError::invalid(
                "years",
                format!(
                    "the policy keeps records {years} {} already",
                    if years == 1 { "year" } else { "years" }
                ),
            ));
        }
        let impact = self.impact_in(tx.as_mut(), &periods, key, years).await?;
        if impact.more > 0 && !confirmed {
            return Err(ServiceError::Conflict(format!(
                "this change would purge {} more {} on the next run; confirm it to save",
                impact.more,
                if impact.more == 1 {
                    "record"
                } else {
                    "records"
                }
            )));
        }
        let version = current.version + 1;
        let leaf = self
            .append(
                tx.as_mut(),
                Event::new(p, "retention.policy").detail(format!(
                    "policy={key} version={version} years={years} previous={} more={}",
                    current.years, impact.more
                )),
            )
            .await?;
        let row = PolicyVersionRow {
            policy: key.to_string(),
            version: i64::from(version),
            years: i64::from(years),
            previous_years: i64::from(current.years),
            reason: reason.to_string(),
            actor: p.actor(),
            changed_at: custos_domain::value::to_unix_ms(self.now()),
            leaf: i64::try_from(leaf).unwrap_or(i64::MAX),
        };
        tx.insert_policy_version(&row).await?;
        let rows = tx.policy_versions().await?;
        tx.commit().await?;
        let mut changed = current;
        changed.years = years;
        changed.version = version;
        Ok(view_of(&changed, &rows))
    }
}
