//! Retention policies, derived from the data inventory and never declared a
//! second time: every field whose retention is "N years after a timestamp"
//! belongs to the policy of its entity, period and anchor. A record is due
//! once its anchor is older than the cut-off. Pure rules; the purge that
//! acts on them lives in the service.

use crate::Entity;
use crate::inventory::{self, Disposal, FieldDecl, OnErasure, Retention};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One retention policy: the fields of `entity` kept `years` after the
/// timestamp `anchor`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The entity whose records it governs.
    pub entity: Entity,
    /// How many years a record is kept after its anchor.
    pub years: u32,
    /// The timestamp field the period runs from (e.g. `completed_at`). For
    /// a policy after the last activity, the record's own `updated_at`: the
    /// activities logged with the person count as well (see
    /// [`Policy::after_last_activity`]).
    pub anchor: &'static str,
    /// Whether the period runs from the person's last activity: a record
    /// whose own anchor is past the cut-off is kept while an activity with
    /// them is younger, a deal of theirs is open ([`deal_is_open`]) or an
    /// order of theirs is still within its own period.
    pub after_last_activity: bool,
    /// What becomes of a record once it is due.
    pub then: Disposal,
    /// The fields it covers, in inventory order.
    pub fields: Vec<&'static FieldDecl>,
    /// Its version: 1 is the inventory's default, each change the privacy
    /// officer saves is the next.
    pub version: u32,
}

impl Policy {
    /// What the policy is about, whatever its period: entity and what the
    /// period runs from (`orders.completed_at`). Changes of the period are
    /// versions of the policy of this key.
    pub fn key(&self) -> String {
        format!("{}.{}", self.entity.plural(), self.period_from())
    }

    /// The policy's name, e.g. `orders.completed_at.2y`: what
    /// certificates, the ledger and the UI call it.
    pub fn name(&self) -> String {
        format!(
            "{}.{}.{}y",
            self.entity.plural(),
            self.period_from(),
            self.years
        )
    }

    /// What the period runs from, as the policy's name and reports say it:
    /// the anchor, or `last_activity`.
    pub fn period_from(&self) -> &'static str {
        if self.after_last_activity {
            LAST_ACTIVITY
        } else {
            self.anchor
        }
    }

    /// The fields erased when a record is due (the inventory's `Destroy`).
    pub fn erased(&self) -> impl Iterator<Item = &'static FieldDecl> + '_ {
        self.fields
            .iter()
            .copied()
            .filter(|f| f.on_erasure == OnErasure::Destroy)
    }

    /// The fields kept past the period because the law requires it (the
    /// inventory's `Keep`, e.g. order amounts for accounting).
    pub fn kept(&self) -> impl Iterator<Item = &'static FieldDecl> + '_ {
        self.fields
            .iter()
            .copied()
            .filter(|f| matches!(f.on_erasure, OnErasure::Keep { .. }))
    }

    /// The moment before which an anchor makes a record due, at `now`.
    pub fn cutoff(&self, now: OffsetDateTime) -> OffsetDateTime {
        years_before(now, self.years)
    }

    /// Whether a record whose anchor is `anchor` is due at `now`. A record
    /// without its anchor (an order not completed yet) is never due.
    pub fn is_due(&self, anchor: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        anchor.is_some_and(|a| a < self.cutoff(now))
    }
}

/// Every policy the inventory declares, in inventory order of their first
/// field: one per (entity, years, anchor).
pub fn policies() -> Vec<Policy> {
    let mut out: Vec<Policy> = Vec::new();
    for f in inventory::FIELDS {
        let (years, anchor, then, after_last_activity) = match f.retention {
            Retention::YearsAfter {
                years,
                anchor,
                then,
            } => (years, anchor, then, false),
            Retention::YearsAfterLastActivity { years } => {
                (years, "updated_at", Disposal::Erase, true)
            }
            Retention::WhileRelationship | Retention::WhileAccount => continue,
        };
        match out.iter_mut().find(|p| {
            p.entity == f.entity
                && p.years == years
                && p.anchor == anchor
                && p.then == then
                && p.after_last_activity == after_last_activity
        }) {
            Some(p) => p.fields.push(f),
            None => out.push(Policy {
                entity: f.entity,
                years,
                anchor,
                after_last_activity,
                then,
                fields: vec![f],
                version: 1,
            }),
        }
    }
    // People are erased after their records' own policies ran, so what a
    // record's policy disposes of is counted under it.
    out.sort_by_key(|p| p.then == Disposal::Erase);
    out
}

/// The longest period a policy may be given, in years.
pub const MAX_YEARS: u32 = 100;

/// The key of the policy a field's retention belongs to, if it has one
/// (see [`Policy::key`]).
pub fn key_of(f: &FieldDecl) -> Option<String> {
    match f.retention {
        Retention::YearsAfter { anchor, .. } => Some(format!("{}.{anchor}", f.entity.plural())),
        Retention::YearsAfterLastActivity { .. } => {
            Some(format!("{}.{LAST_ACTIVITY}", f.entity.plural()))
        }
        Retention::WhileRelationship | Retention::WhileAccount => None,
    }
}

/// The periods in force where the privacy officer changed the inventory's
/// default: by policy key, the years and the version. Empty means every
/// policy is as the inventory declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Periods(pub BTreeMap<String, (u32, u32)>);

impl Periods {
    /// A field's retention as in force: the inventory's, with the period
    /// its policy was given.
    pub fn retention(&self, f: &FieldDecl) -> Retention {
        let Some((years, _)) = key_of(f).and_then(|k| self.0.get(&k).copied()) else {
            return f.retention;
        };
        match f.retention {
            Retention::YearsAfter { anchor, then, .. } => Retention::YearsAfter {
                years,
                anchor,
                then,
            },
            Retention::YearsAfterLastActivity { .. } => Retention::YearsAfterLastActivity { years },
            r => r,
        }
    }

    /// The policies in force: the inventory's, with the periods and
    /// versions set.
    pub fn policies(&self) -> Vec<Policy> {
        let mut out = policies();
        for p in &mut out {
            if let Some((years, version)) = self.0.get(&p.key()) {
                p.years = *years;
                p.version = *version;
            }
        }
        out
    }
}

/// A period as the privacy officer types it: whole years, 1 to
/// [`MAX_YEARS`].
pub fn parse_years(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(y) if (1..=MAX_YEARS).contains(&y) => Ok(y),
        Ok(_) => Err(format!("enter a period of 1 to {MAX_YEARS} years")),
        Err(_) => Err("enter the period as a whole number of years, such as 2".to_string()),
    }
}

/// What a period after the last activity is called in policy names.
pub const LAST_ACTIVITY: &str = "last_activity";

/// The deal stages that close a deal; a deal in any other stage is open.
pub const CLOSED_STAGES: [&str; 2] = ["won", "lost"];

/// Whether a deal in `stage` is still open (so its contact is kept).
pub fn deal_is_open(stage: &str) -> bool {
    !CLOSED_STAGES.contains(&stage)
}

/// `t` moved back `years` calendar years, the way a period "of two years"
/// is read: the same day and time, or 28 February when `t` is 29 February
/// and the earlier year is not a leap year.
pub fn years_before(t: OffsetDateTime, years: u32) -> OffsetDateTime {
    months_before(t, years.saturating_mul(12))
}

/// The same time `months` calendar months earlier; a day the month lacks
/// falls back to its last (31 March less one month is 28 or 29 February).
pub fn months_before(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let date = t.date();
    let index = date.year() as i64 * 12 + (date.month() as i64 - 1) - months as i64;
    let year = index.div_euclid(12) as i32;
    let Ok(month) = time::Month::try_from((index.rem_euclid(12) + 1) as u8) else {
        return OffsetDateTime::UNIX_EPOCH;
    };
    let day = date.day().min(time::util::days_in_month(month, year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(d) => t.replace_date(d),
        Err(_) => OffsetDateTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn months_before_crosses_years_and_short_months() {
        assert_eq!(
            months_before(datetime!(2026-03-31 10:00 UTC), 1),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            months_before(datetime!(2024-03-31 10:00 UTC), 1),
            datetime!(2024-02-29 10:00 UTC)
        );
        assert_eq!(
            months_before(datetime!(2026-01-15 00:00 UTC), 13),
            datetime!(2024-12-15 00:00 UTC)
        );
        assert_eq!(
            months_before(datetime!(2026-12-07 00:00 UTC), 12),
            datetime!(2025-12-07 00:00 UTC)
        );
    }

    #[test]
    fn orders_are_kept_two_years_after_completion_with_amounts_kept() {
        let orders: Vec<Policy> = policies()
            .into_iter()
            .filter(|p| p.entity == Entity::Order)
            .collect();
        assert_eq!(orders.len(), 1, "{orders:?}");
        let p = &orders[0];
        assert_eq!((p.years, p.anchor), (2, "completed_at"));
        assert_eq!(p.then, Disposal::Anonymise);
        assert_eq!(p.name(), "orders.completed_at.2y");
        // Every order field with a YearsAfter retention is in the policy,
        // and nothing else.
        let declared = inventory::fields(Entity::Order)
            .filter(|f| matches!(f.retention, Retention::YearsAfter { .. }))
            .count();
        assert_eq!(p.fields.len(), declared);
        assert!(p.kept().any(|f| f.name == "total"), "amounts are kept");
        assert!(p.erased().count() + p.kept().count() == p.fields.len());
    }

    #[test]
    fn contacts_are_erased_three_years_after_their_last_activity() {
        let p = policies()
            .into_iter()
            .find(|p| p.entity == Entity::Contact)
            .expect("a contact policy");
        assert_eq!((p.years, p.then), (3, Disposal::Erase));
        assert!(p.after_last_activity);
        assert_eq!(p.name(), "contacts.last_activity.3y");
        // Every contact field goes with the contact.
        assert_eq!(p.fields.len(), inventory::fields(Entity::Contact).count());
        assert!(inventory::field(Entity::Contact, p.anchor).is_some());
    }

    #[test]
    fn a_period_set_by_the_officer_changes_policy_and_field_alike() {
        let mut periods = Periods::default();
        periods.0.insert("orders.completed_at".to_string(), (5, 2));
        let order = periods
            .policies()
            .into_iter()
            .find(|p| p.entity == Entity::Order)
            .expect("order policy");
        assert_eq!((order.years, order.version), (5, 2));
        assert_eq!(order.name(), "orders.completed_at.5y");
        assert_eq!(order.key(), "orders.completed_at");
        let contact = periods
            .policies()
            .into_iter()
            .find(|p| p.entity == Entity::Contact)
            .expect("contact policy");
        assert_eq!((contact.years, contact.version), (3, 1), "untouched");
        for f in inventory::fields(Entity::Order) {
            match periods.retention(f) {
                Retention::YearsAfter { years, then, .. } => {
                    assert_eq!(years, 5, "{}", f.name);
                    assert_eq!(then, Disposal::Anonymise);
                }
                other => assert_eq!(other, f.retention, "{}", f.name),
            }
        }
        // Every policy's key is the key of each of its fields.
        for p in policies() {
            for f in &p.fields {
                assert_eq!(key_of(f), Some(p.key()), "{}", f.name);
            }
        }
    }

    #[test]
    fn a_period_is_whole_years_within_bounds() {
        assert_eq!(parse_years(" 3 "), Ok(3));
        assert_eq!(parse_years("100"), Ok(100));
        for bad in ["0", "101", "-1", "two", "", "1.5", "4294967296"] {
            assert!(parse_years(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_deal_is_open_until_won_or_lost() {
        for s in crate::validate::DEFAULT_STAGES {
            assert_eq!(deal_is_open(s), s != "won" && s != "lost", "{s}");
        }
    }

    #[test]
    fn closed_requests_are_kept_three_years() {
        let p = policies()
            .into_iter()
            .find(|p| p.entity == Entity::Request)
            .expect("a request policy");
        assert_eq!((p.years, p.anchor), (3, "closed_at"));
        assert_eq!(p.then, Disposal::Delete);
    }

    #[test]
    fn activities_are_deleted_two_years_after_they_happened() {
        let p = policies()
            .into_iter()
            .find(|p| p.entity == Entity::Activity)
            .expect("an activity policy");
        assert_eq!(
            (p.years, p.anchor, p.then),
            (2, "occurred_at", Disposal::Delete)
        );
        assert!(p.fields.iter().any(|f| f.name == "body"));
    }

    #[test]
    fn one_policy_per_entity_so_a_record_is_never_due_twice() {
        // Two policies on one entity would make a record due under both, with
        // perhaps different fates; the inventory must give each entity one.
        let all = policies();
        for p in &all {
            assert_eq!(
                all.iter().filter(|q| q.entity == p.entity).count(),
                1,
                "{} has more than one retention policy",
                p.entity
            );
            // Anonymising must leave something, or it is a deletion.
            if p.then == Disposal::Anonymise {
                assert!(
                    p.erased().count() > 0 && p.kept().count() > 0,
                    "{}",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn the_cutoff_is_calendar_years_and_a_leap_day_falls_back() {
        assert_eq!(
            years_before(datetime!(2026-12-07 10:30 UTC), 2),
            datetime!(2024-12-07 10:30 UTC)
        );
        assert_eq!(
            years_before(datetime!(2028-02-29 00:00 UTC), 2),
            datetime!(2026-02-28 00:00 UTC)
        );
        assert_eq!(
            years_before(datetime!(2028-02-29 00:00 UTC), 4),
            datetime!(2024-02-29 00:00 UTC)
        );
    }

    #[test]
    fn a_record_is_due_only_once_its_anchor_is_older_than_the_period() {
        let p = policies()
            .into_iter()
            .find(|p| p.entity == Entity::Order)
            .expect("order policy");
        let now = datetime!(2026-12-07 12:00 UTC);
        assert!(p.is_due(Some(datetime!(2024-12-07 11:59 UTC)), now));
        assert!(!p.is_due(Some(datetime!(2024-12-07 12:00 UTC)), now));
        assert!(!p.is_due(Some(datetime!(2025-06-01 00:00 UTC)), now));
        assert!(!p.is_due(None, now), "an order not completed is never due");
    }
}
