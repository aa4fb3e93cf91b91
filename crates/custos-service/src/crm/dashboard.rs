//! The dashboard: pipeline value by stage, deals won this month, activities due
//! and recent activity. The aggregates read only plain columns (stages, amounts,
//! dates), so they open no sealed value; the few activities shown by name are
//! read through [`Custos::get`] and [`Custos::list`], which audit each of them.

use crate::crm::query::ListParams;
use crate::crm::records::RecordView;
use crate::ledger::audit::Event;
use crate::{Custos, ListSize, Principal, Result, ServiceError};
use custos_domain::policy::{self, Operation};
use custos_domain::value::{from_unix_ms, to_unix_ms};
use custos_domain::{DataCategory, Entity};
use custos_store::{Condition, GroupRow, ListQuery, Sort, SqlValue, StoredRow, Tx};
use std::collections::BTreeMap;
use time::{Date, Duration, Month, OffsetDateTime, Time};
use uuid::Uuid;

/// How many activities the "due" and "recent" tiles list by name.
pub const TILE_ITEMS: u32 = 5;
/// How many months the "won" chart covers, this one included.
pub const WON_MONTHS: usize = 6;
/// How many days the "recent activity" chart covers, today included.
pub const RECENT_DAYS: usize = 14;
/// The "due" tile looks this many days ahead.
pub const DUE_DAYS: i64 = 7;

/// Amounts per currency, in hundredths (`None` as currency: amounts without one).
pub type Amounts = BTreeMap<Option<String>, i64>;

/// Deals in one pipeline stage.
#[derive(Debug, Clone)]
pub struct StageTotal {
    /// The stage name.
    pub stage: String,
    /// How many deals are in it.
    pub count: u64,
    /// Their summed amounts per currency (`None` when the role may not see
    /// financial data).
    pub amounts: Option<Amounts>,
}

/// Won deals in one calendar month.
#[derive(Debug, Clone)]
pub struct MonthWon {
    /// The first day of the month.
    pub month: Date,
    /// Deals won in it.
    pub count: u64,
    /// Their amounts per currency (`None` when the role may not see financial data).
    pub amounts: Option<Amounts>,
}

/// The pipeline tiles (deals).
#[derive(Debug, Clone)]
pub struct PipelineSummary {
    /// Every stage in pipeline order, then any stage no longer configured.
    pub stages: Vec<StageTotal>,
    /// Won deals per month, oldest first; the last entry is this month.
    pub won_by_month: Vec<MonthWon>,
}

/// Tasks that are due: not done, with a due time no later than a week from now.
/// Each count stops at [`crate::COUNT_LIMIT`] (see [`ListSize`]), so the
/// dashboard costs the same however many tasks are overdue.
#[derive(Debug, Clone)]
pub struct DueSummary {
    /// How many tasks are due within the next week (overdue ones included).
    pub count: ListSize,
    /// How many of them are already overdue.
    pub overdue: ListSize,
    /// Tasks per day: index 0 is overdue, 1 is today, … up to `DUE_DAYS`.
    pub by_day: Vec<ListSize>,
    /// The first few, soonest first.
    pub items: Vec<RecordView>,
}

/// Recently logged activities.
#[derive(Debug, Clone)]
pub struct RecentSummary {
    /// Activities logged per day, oldest first; the last entry is today.
    /// Each stops at [`crate::COUNT_LIMIT`].
    pub by_day: Vec<ListSize>,
    /// The latest few.
    pub items: Vec<RecordView>,
}

/// Everything the dashboard shows. A tile is `None` when the role may not read
/// the records behind it.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// When the figures were computed.
    pub now: OffsetDateTime,
    /// Deals by stage and won per month.
    pub pipeline: Option<PipelineSummary>,
    /// Tasks due.
    pub due: Option<DueSummary>,
    /// Recent activity.
    pub recent: Option<RecentSummary>,
}

fn text(v: &SqlValue) -> Option<&str> {
    match v {
        SqlValue::Text(s) => Some(s),
        _ => None,
    }
}

fn int(v: &SqlValue) -> Option<i64> {
    match v {
        SqlValue::Int(i) => Some(*i),
        _ => None,
    }
}

fn month_start(d: Date) -> Date {
    d.replace_day(1).unwrap_or(d)
}

fn previous_month(first: Date) -> Date {
    let (y, m) = match first.month() {
        Month::January => (first.year() - 1, Month::December),
        m => (first.year(), m.previous()),
    };
    Date::from_calendar_date(y, m, 1).unwrap_or(first)
}

fn midnight_ms(d: Date) -> i64 {
    to_unix_ms(d.with_time(Time::MIDNIGHT).assume_utc())
}

/// Adds a group of deals (see `Tx::group_records`) to a count and its
/// amounts: a currency appears once some deal in it has an amount.
fn add_group(slot: &mut (u64, Amounts), g: &GroupRow) {
    slot.0 += g.count;
    if g.valued > 0 {
        *slot.1.entry(g.key[2].clone()).or_insert(0) += g.sum;
    }
}

fn add(amounts: &mut Amounts, row: &StoredRow) {
    if let Some(a) = int(row.get("amount")) {
        let currency = text(row.get("currency")).map(str::to_string);
        *amounts.entry(currency).or_insert(0) += a;
    }
}

impl Custos {
    /// The dashboard's figures for `p`. Tiles whose records the role may not read
    /// are left out; amounts are left out when it may not see financial data.
    pub async fn dashboard(&self, p: &Principal) -> Result<Dashboard> {
        let now = self.now();
        let see_deals = policy::allows(p.role, Operation::Read, Entity::Deal);
        let see_activities = policy::allows(p.role, Operation::Read, Entity::Activity);
        if !see_deals && !see_activities {
            return Err(ServiceError::Forbidden(format!(
                "the {} role has no dashboard",
                p.role_name
            )));
        }
        let money = p.can_read(DataCategory::Financial);
        // A read: figures from a read connection, the leaf then written by
        // group commit with other reads' (see `Custos::list`), so the home
        // page never holds up a write.
        let mut tx = self.inner.store.begin_read().await?;
        let pipeline = if see_deals {
            let scope = crate::crm::records::scope_condition(p, Entity::Deal);
            Some(
                self.pipeline_summary(tx.as_mut(), now, money, scope)
                    .await?,
            )
        } else {
            None
        };
        let (due_ids, due) = if see_activities {
            let scope = crate::crm::records::scope_condition(p, Entity::Activity);
            let (ids, summary) = Self::due_summary(tx.as_mut(), now, scope).await?;
            (ids, Some(summary))
        } else {
            (Vec::new(), None)
        };
        let recent_days = if see_activities {
            let scope = crate::crm::records::scope_condition(p, Entity::Activity);
            Some(Self::recent_by_day(tx.as_mut(), now, scope).await?)
        } else {
            None
        };
        let mut categories = vec![DataCategory::Business, DataCategory::System];
        if money && see_deals {
            categories.push(DataCategory::Financial);
        }
        let tiles: Vec<&str> = [(see_deals, "pipeline,won"), (see_activities, "due,recent")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, t)| *t)
            .collect();
        let ev = Event::new(p, "dashboard.read")
            .categories(categories)
            .detail(format!("tiles={}", tiles.join(",")));
        drop(tx);
        self.append_read(vec![ev]).await?;

        // The activities named on the dashboard are read through the audited use
        // cases, one leaf per person shown.
        let due = match due {
            Some(mut d) => {
                // Read together, shown in the order they are due.
                let mut found = self.get_many(p, Entity::Activity, &due_ids).await?;
                for id in due_ids {
                    if let Some(i) = found.iter().position(|v| v.id() == id) {
                        d.items.push(found.swap_remove(i));
                    }
                }
                Some(d)
            }
            None => None,
        };
        let recent = match recent_days {
            Some(by_day) => {
                let params = ListParams::parse(
                    Entity::Activity,
                    &[("limit".to_string(), TILE_ITEMS.to_string())],
                )?;
                let page = self.list(p, Entity::Activity, &params).await?;
                Some(RecentSummary {
                    by_day,
                    items: page.items,
                })
            }
            None => None,
        };
        Ok(Dashboard {
            now,
            pipeline,
            due,
            recent,
        })
    }

    async fn pipeline_summary(
        &self,
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        money: bool,
        scope: Option<Condition>,
    ) -> Result<PipelineSummary> {
        let configured = Self::stages_in(tx).await?;
        let mut by_stage: BTreeMap<String, (u64, Amounts)> = BTreeMap::new();
        let this_month = month_start(now.date());
        let mut months = vec![this_month];
        while months.len() < WON_MONTHS {
            let earliest = months[months.len() - 1];
            months.push(previous_month(earliest));
        }
        months.reverse();
        let mut won: Vec<(u64, Amounts)> = vec![(0, Amounts::new()); months.len()];
        // Every deal counted and summed by stage, close date and currency,
        // from one index alone (migration 15): a few rows per day of closes,
        // not a row per deal.
        let scoped: Vec<Condition> = scope.iter().cloned().collect();
        let groups = tx
            .group_records(
                Entity::Deal,
                &scoped,
                &["stage", "close_date", "currency"],
                "amount",
            )
            .await?;
        for g in &groups {
            let stage = g.key[0].clone().unwrap_or_default();
            let slot = by_stage.entry(stage.clone()).or_default();
            add_group(slot, g);
            // Won when it closed (deals without a close date below).
            if stage == "won"
                && let Some(d) = g.key[1]
                    .as_deref()
                    .and_then(custos_domain::validate::parse_date)
                && let Some(i) = months.iter().position(|m| *m == month_start(d))
            {
                add_group(&mut won[i], g);
            }
        }
        // Won deals without a close date count as won when they last
        // changed: only those changed since the first month shown, one
        // range of an index (migration 16) in the order they changed.
        let mut undated = scoped.clone();
        undated.push(Condition::Eq("stage", SqlValue::Text("won".into())));
        undated.push(Condition::IsNull("close_date"));
        undated.push(Condition::AtLeast(
            "updated_at",
            SqlValue::Int(midnight_ms(months[0])),
        ));
        let mut after: Option<(SqlValue, Uuid)> = None;
        loop {
            let q = ListQuery {
                entity: Entity::Deal,
                conditions: undated.clone(),
                sort: Sort {
                    field: "updated_at",
                    descending: false,
                },
                after: after.clone(),
                limit: 500,
            };
            let rows = tx.list_records(&q).await?;
            for row in &rows {
                after = Some((row.get("updated_at").clone(), row.id));
                let changed = int(row.get("updated_at"))
                    .and_then(from_unix_ms)
                    .map(|t| t.date());
                if let Some(d) = changed
                    && let Some(i) = months.iter().position(|m| *m == month_start(d))
                {
                    won[i].0 += 1;
                    add(&mut won[i].1, row);
                }
            }
            if rows.len() < 500 {
                break;
            }
        }
        let mut stages = Vec::new();
        for s in configured.iter().chain(
            by_stage
                .keys()
                .filter(|k| !configured.contains(k))
                .collect::<Vec<_>>(),
        ) {
            let (count, amounts) = by_stage.get(s).cloned().unwrap_or_default();
            stages.push(StageTotal {
                stage: s.clone(),
                count,
                amounts: money.then_some(amounts),
            });
        }
        let won_by_month = months
            .into_iter()
            .zip(won)
            .map(|(month, (count, amounts))| MonthWon {
                month,
                count,
                amounts: money.then_some(amounts),
            })
            .collect();
        Ok(PipelineSummary {
            stages,
            won_by_month,
        })
    }

    /// Counts due tasks and returns the ids of the first few (soonest first).
    /// Only records within `scope` count (the caller's record scope).
    async fn due_summary(
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        scope: Option<Condition>,
    ) -> Result<(Vec<Uuid>, DueSummary)> {
        let open_tasks = || {
            let mut c = vec![
                Condition::Eq("kind", SqlValue::Text("task".into())),
                Condition::Or(vec![
                    Condition::IsNull("done"),
                    Condition::Eq("done", SqlValue::Bool(false)),
                ]),
            ];
            c.extend(scope.clone());
            c
        };
        let today = now.date();
        let horizon = midnight_ms(today + Duration::days(DUE_DAYS + 1));
        let now_ms = to_unix_ms(now);
        let mut due = open_tasks();
        due.push(Condition::Before("due_at", SqlValue::Int(horizon)));
        let count = ListSize::count(tx, Entity::Activity, &due).await?;
        let mut overdue_c = open_tasks();
        overdue_c.push(Condition::Before("due_at", SqlValue::Int(now_ms)));
        let overdue = ListSize::count(tx, Entity::Activity, &overdue_c).await?;
        let mut by_day = vec![overdue];
        for day in 0..=DUE_DAYS {
            let start = midnight_ms(today + Duration::days(day)).max(now_ms);
            let end = midnight_ms(today + Duration::days(day + 1));
            let mut c = open_tasks();
            c.push(Condition::AtLeast("due_at", SqlValue::Int(start)));
            c.push(Condition::Before("due_at", SqlValue::Int(end)));
            by_day.push(ListSize::count(tx, Entity::Activity, &c).await?);
        }
        // The first few, soonest first: open is "done" NULL or false, each a
        // range of one index (migration 15) read in due order, merged here.
        let mut rows = Vec::new();
        for open in [
            Condition::IsNull("done"),
            Condition::Eq("done", SqlValue::Bool(false)),
        ] {
            let mut c = vec![
                Condition::Eq("kind", SqlValue::Text("task".into())),
                open,
                // A task without a due time sorts as the lowest: not due.
                Condition::SortKeyAfter("due_at", SqlValue::Int(i64::MIN)),
                Condition::SortKeyBefore("due_at", SqlValue::Int(horizon)),
            ];
            c.extend(scope.clone());
            rows.extend(
                tx.list_records(&ListQuery {
                    entity: Entity::Activity,
                    conditions: c,
                    sort: Sort {
                        field: "due_at",
                        descending: false,
                    },
                    after: None,
                    limit: TILE_ITEMS,
                })
                .await?,
            );
        }
        rows.sort_by_key(|r| (int(r.get("due_at")), r.id));
        rows.truncate(TILE_ITEMS as usize);
        let ids = rows.iter().map(|r| r.id).collect();
        Ok((
            ids,
            DueSummary {
                count,
                overdue,
                by_day,
                items: Vec::new(),
            },
        ))
    }

    /// Activities logged per day over the last `RECENT_DAYS` days.
    async fn recent_by_day(
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        scope: Option<Condition>,
    ) -> Result<Vec<ListSize>> {
        let today = now.date();
        let mut out = Vec::with_capacity(RECENT_DAYS);
        for back in (0..RECENT_DAYS as i64).rev() {
            let day = today - Duration::days(back);
            let mut c = vec![
                Condition::AtLeast("created_at", SqlValue::Int(midnight_ms(day))),
                Condition::Before(
                    "created_at",
                    SqlValue::Int(midnight_ms(day + Duration::days(1))),
                ),
            ];
            c.extend(scope.clone());
            out.push(ListSize::count(tx, Entity::Activity, &c).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Config, Via};
    use custos_crypto::{MasterKey, MasterKeyring};
    use custos_domain::{ManualClock, Role};
    use serde_json::json;
    use std::sync::Arc;
    use time::macros::{date, datetime};

    async fn custos() -> Custos {
        let store = Arc::new(custos_store::SqliteStore::memory().await.unwrap());
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-10 12:00 UTC)));
        let ring = MasterKeyring::new(vec![MasterKey::generate(1).unwrap()]).unwrap();
        Custos::open(store, clock, ring, Config::default())
            .await
            .unwrap()
    }

    fn as_role(role: Role) -> Principal {
        Principal::with_role(Uuid::nil(), role, Via::Cli)
    }

    #[tokio::test]
    async fn figures_add_up_by_stage_month_and_due_day() {
        let c = custos().await;
        let p = Principal::cli();
        for (stage, amount, close) in [
            ("lead", "100.00", None),
            ("lead", "50.50", None),
            ("proposal", "1000.00", None),
            ("won", "700.00", Some("2026-03-02")),
            ("won", "300.00", Some("2026-02-27")),
            ("lost", "10.00", None),
        ] {
            let mut d =
                json!({"title": "Deal", "stage": stage, "amount": amount, "currency": "EUR"});
            if let Some(close) = close {
                d["close_date"] = json!(close);
            }
            c.create(&p, Entity::Deal, &d).await.unwrap();
        }
        // A lead without an amount counts but adds no money; one in another
        // currency is summed apart; a won deal without a close date counts
        // as won when it last changed (now: March).
        for d in [
            json!({"title": "No amount", "stage": "lead"}),
            json!({"title": "Dollars", "stage": "lead", "amount": "5.00", "currency": "USD"}),
            json!({"title": "Undated", "stage": "won", "amount": "40.00", "currency": "EUR"}),
        ] {
            c.create(&p, Entity::Deal, &d).await.unwrap();
        }
        let contact = c
            .create(
                &p,
                Entity::Contact,
                &json!({"first_name": "Ada", "last_name": "L"}),
            )
            .await
            .unwrap();
        let task = |due: &str, done: bool| json!({"contact_id": contact.id().to_string(), "kind": "task", "occurred_at": "2026-03-01T09:00:00Z", "due_at": due, "done": done});
        for t in [
            task("2026-03-09T09:00:00Z", false), // overdue
            task("2026-03-10T15:00:00Z", false), // today
            task("2026-03-12T09:00:00Z", false), // in two days
            task("2026-03-30T09:00:00Z", false), // too far ahead
            task("2026-03-09T09:00:00Z", true),  // done
        ] {
            c.create(&p, Entity::Activity, &t).await.unwrap();
        }
        // Open without saying so (done not set): due tomorrow. Open without
        // a due time: not due.
        let mut unset = task("2026-03-11T09:00:00Z", false);
        unset.as_object_mut().unwrap().remove("done");
        c.create(&p, Entity::Activity, &unset).await.unwrap();
        let mut undated = task("2026-03-11T09:00:00Z", false);
        undated.as_object_mut().unwrap().remove("due_at");
        c.create(&p, Entity::Activity, &undated).await.unwrap();

        let d = c.dashboard(&p).await.unwrap();
        let pipeline = d.pipeline.unwrap();
        let stage = |name: &str| pipeline.stages.iter().find(|s| s.stage == name).unwrap();
        assert_eq!(pipeline.stages[0].stage, "lead", "pipeline order");
        assert_eq!(stage("lead").count, 4);
        let lead = stage("lead").amounts.as_ref().unwrap();
        assert_eq!(lead[&Some("EUR".to_string())], 15_050);
        assert_eq!(lead[&Some("USD".to_string())], 500);
        assert_eq!(lead.len(), 2, "{lead:?}");
        assert_eq!(stage("won").count, 3);
        let months: Vec<(Date, u64)> = pipeline
            .won_by_month
            .iter()
            .map(|m| (m.month, m.count))
            .collect();
        assert_eq!(months.len(), WON_MONTHS);
        assert_eq!(months[WON_MONTHS - 1], (date!(2026 - 03 - 01), 2));
        assert_eq!(months[WON_MONTHS - 2], (date!(2026 - 02 - 01), 1));
        let march = pipeline.won_by_month[WON_MONTHS - 1]
            .amounts
            .as_ref()
            .unwrap();
        assert_eq!(march[&Some("EUR".to_string())], 74_000);
        let due = d.due.unwrap();
        let exactly = ListSize::Exactly;
        assert_eq!((due.count, due.overdue), (exactly(4), exactly(1)));
        assert_eq!(due.by_day[..4], [exactly(1); 4]);
        // Soonest first, across done NULL and done false.
        let shown: Vec<String> = due
            .items
            .iter()
            .map(|v| v.record.get("due_at").display())
            .collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(shown, sorted);
        let recent = d.recent.unwrap();
        assert_eq!(recent.by_day.len(), RECENT_DAYS);
        assert_eq!(
            recent.by_day[RECENT_DAYS - 1],
            exactly(7),
            "all logged today"
        );

        // An auditor sees counts but no money.
        let d = c.dashboard(&as_role(Role::Auditor)).await.unwrap();
        assert!(
            d.pipeline
                .unwrap()
                .stages
                .iter()
                .all(|s| s.amounts.is_none())
        );

        // Counting is exact on plain filters and declines on sealed ones.
        let params = ListParams::parse(Entity::Deal, &[("stage".into(), "lead".into())]).unwrap();
        assert_eq!(
            c.count(&p, Entity::Deal, &params).await.unwrap(),
            Some(crate::ListSize::Exactly(4))
        );
        let params =
            ListParams::parse(Entity::Contact, &[("email".into(), "a@b.example".into())]).unwrap();
        assert_eq!(c.count(&p, Entity::Contact, &params).await.unwrap(), None);
    }

    /// A day with more activities than the counting limit reads as "more
    /// than" the limit: the chart's counts stop there, so the dashboard
    /// costs the same however busy a day was.
    #[tokio::test]
    async fn a_busy_day_counts_up_to_the_limit() {
        let c = custos().await;
        let p = Principal::cli();
        c.seed(&p, 1, |_, _| {}).await.unwrap();
        let before = c.dashboard(&p).await.unwrap().recent.unwrap().by_day;
        assert!(
            before
                .iter()
                .all(|d| matches!(d, ListSize::Exactly(n) if *n < crate::COUNT_LIMIT)),
            "{before:?}"
        );
        c.seed_related(
            &p,
            Entity::Activity,
            crate::COUNT_LIMIT + 100,
            None,
            |_, _| {},
        )
        .await
        .unwrap();
        let after = c.dashboard(&p).await.unwrap().recent.unwrap().by_day;
        assert_eq!(
            after[RECENT_DAYS - 1],
            ListSize::MoreThan(crate::COUNT_LIMIT),
            "{after:?}"
        );
        // The other days are as they were: the fake activities are logged now.
        assert_eq!(after[..RECENT_DAYS - 1], before[..RECENT_DAYS - 1]);
    }

    #[test]
    fn months_step_back_over_the_year_end() {
        assert_eq!(previous_month(date!(2026 - 01 - 01)), date!(2025 - 12 - 01));
        assert_eq!(previous_month(date!(2026 - 03 - 01)), date!(2026 - 02 - 01));
        assert_eq!(month_start(date!(2026 - 03 - 17)), date!(2026 - 03 - 01));
    }
}
