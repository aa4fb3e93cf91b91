//! Finding records: the global search box (exact email or phone on sealed data,
//! names of contacts, companies and deals) and row counts for lists.
//!
//! Global search runs through [`Custos::list`], so each group is authorised and
//! audited exactly like a list. Counting reads only plain columns.

use crate::crm::query::ListParams;
use crate::crm::records::RecordView;
use crate::ledger::audit::Event;
use crate::vault::seal::to_sql;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::inventory::{self, FieldKind, Protection};
use custos_domain::policy::{self, Operation};
use custos_domain::{DataCategory, Entity, validate};
use custos_store::Condition;

/// How many records each group of the global search shows.
pub const SEARCH_GROUP_LIMIT: u32 = 10;

/// What the search box was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// An email address: exact match on contacts' sealed emails.
    Email,
    /// A phone number: exact match on contacts' sealed phones, plus names.
    Phone,
    /// Words: contact, company and deal names.
    Words,
}

/// The results for one kind of record.
#[derive(Debug, Clone)]
pub struct SearchGroup {
    /// Which entity.
    pub entity: Entity,
    /// How it was matched, in words ("exact email", "name").
    pub matched_by: &'static str,
    /// The records found (at most [`SEARCH_GROUP_LIMIT`]).
    pub items: Vec<RecordView>,
    /// Whether more records match than are shown.
    pub more: bool,
    /// The list query that shows every match (query pairs, no personal value
    /// except the search term the user typed, which a list URL holds anyway).
    pub list_query: Vec<(String, String)>,
    /// Why this group was not searched, if the role may not.
    pub refused: Option<String>,
}

/// The results of one global search, grouped by kind of record.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// How the query was read.
    pub kind: SearchKind,
    /// One group per kind of record searched.
    pub groups: Vec<SearchGroup>,
}

impl SearchResults {
    /// Records found in all groups.
    pub fn total(&self) -> usize {
        self.groups.iter().map(|g| g.items.len()).sum()
    }
}

/// Reads the search box: an `@` means an email; digits and phone punctuation
/// with at least three digits mean a phone number; anything else is words.
pub fn search_kind(q: &str) -> SearchKind {
    let q = q.trim();
    if q.contains('@') {
        return SearchKind::Email;
    }
    let digits = q.chars().filter(char::is_ascii_digit).count();
    if digits >= 3
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        SearchKind::Phone
    } else {
        SearchKind::Words
    }
}

/// Where counting a list stops. A list's total is shown on every page of
/// it; counting ten million activities would read them all each time,
/// while counting to this limit costs the same however big the table is.
pub const COUNT_LIMIT: u64 = 10_000;

/// How many records a list holds: exactly, up to [`COUNT_LIMIT`]; past it,
/// only that there are more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSize {
    /// This many.
    Exactly(u64),
    /// More than this many ([`COUNT_LIMIT`]).
    MoreThan(u64),
}

impl ListSize {
    /// The exact number, or the limit it is more than.
    pub fn at_least(self) -> u64 {
        match self {
            ListSize::Exactly(n) | ListSize::MoreThan(n) => n,
        }
    }

    /// The two together: exact when both are, otherwise "more than" the
    /// sum of what is known.
    pub fn plus(self, other: ListSize) -> ListSize {
        let n = self.at_least().saturating_add(other.at_least());
        match (self, other) {
            (ListSize::Exactly(_), ListSize::Exactly(_)) => ListSize::Exactly(n),
            _ => ListSize::MoreThan(n),
        }
    }

    /// Counts the records matching `conditions`, up to [`COUNT_LIMIT`]:
    /// reads at most that many index entries however many match.
    pub(crate) async fn count(
        tx: &mut dyn custos_store::Tx,
        entity: Entity,
        conditions: &[custos_store::Condition],
    ) -> Result<ListSize> {
        let counted = tx
            .count_records_up_to(entity, conditions, COUNT_LIMIT + 1)
            .await?;
        Ok(if counted > COUNT_LIMIT {
            ListSize::MoreThan(COUNT_LIMIT)
        } else {
            ListSize::Exactly(counted)
        })
    }
}

impl Custos {
    /// The global search: `q` is an email, a phone number or words.
    pub async fn search(&self, p: &Principal, q: &str) -> Result<SearchResults> {
        let q = q.trim();
        if q.is_empty() {
            return Err(ServiceError::invalid("q", "type something to search for"));
        }
        if q.chars().count() > 200 {
            return Err(ServiceError::invalid("q", "must be at most 200 characters"));
        }
        let kind = search_kind(q);
        let mut plan: Vec<(Entity, &'static str, &'static str, DataCategory)> = Vec::new();
        match kind {
            SearchKind::Email => plan.push((
                Entity::Contact,
                "email",
                "exact email",
                DataCategory::ContactDetails,
            )),
            SearchKind::Phone => {
                plan.push((
                    Entity::Contact,
                    "phone",
                    "exact phone",
                    DataCategory::ContactDetails,
                ));
                plan.push((
                    Entity::Company,
                    "q",
                    "name or domain",
                    DataCategory::Business,
                ));
                plan.push((Entity::Deal, "q", "title", DataCategory::Business));
            }
            SearchKind::Words => {
                plan.push((
                    Entity::Contact,
                    "q",
                    "name or company",
                    DataCategory::Identity,
                ));
                plan.push((
                    Entity::Company,
                    "q",
                    "name or domain",
                    DataCategory::Business,
                ));
                plan.push((Entity::Deal, "q", "title", DataCategory::Business));
            }
        }
        let mut groups = Vec::new();
        for (entity, param, matched_by, category) in plan {
            let list_query = vec![(param.to_string(), q.to_string())];
            let refused = if !policy::allows(p.role, Operation::Read, entity) {
                Some(format!(
                    "your role ({}) may not read {}",
                    p.role_name,
                    entity.plural()
                ))
            } else if !p.can_read(category) {
                Some(format!(
                    "your role ({}) may not search {} data",
                    p.role_name,
                    category.name().replace('_', " ")
                ))
            } else {
                None
            };
            if refused.is_some() {
                groups.push(SearchGroup {
                    entity,
                    matched_by,
                    items: Vec::new(),
                    more: false,
                    list_query,
                    refused,
                });
                continue;
            }
            let mut pairs = list_query.clone();
            pairs.push(("limit".into(), SEARCH_GROUP_LIMIT.to_string()));
            let params = ListParams::parse(entity, &pairs)?;
            let page = match self.list(p, entity, &params).await {
                Ok(page) => page,
                // A phone search on text that normalises to nothing finds nothing.
                Err(ServiceError::Invalid(_)) if kind != SearchKind::Words => {
                    crate::crm::query::Page {
                        items: Vec::new(),
                        next_cursor: None,
                        partial: false,
                    }
                }
                Err(e) => return Err(e),
            };
            groups.push(SearchGroup {
                entity,
                matched_by,
                more: page.next_cursor.is_some(),
                items: page.items,
                list_query,
                refused: None,
            });
        }
        Ok(SearchResults { kind, groups })
    }

    /// How many records a list with these filters holds, counted up to
    /// [`COUNT_LIMIT`], or `None` when the filters match on sealed data
    /// (blind indexes only give candidates, which the list confirms one by
    /// one as it opens them) or when counting would read far more rows than
    /// it counts (a text search, a column without an index: see
    /// `custos_store::sql::count_bounded`). Audited like a list.
    pub async fn count(
        &self,
        p: &Principal,
        entity: Entity,
        params: &ListParams,
    ) -> Result<Option<ListSize>> {
        let action = format!("{}.count", entity.name());
        if !policy::allows(p.role, Operation::Read, entity) {
            self.append_alone(Event::new(p, action).outcome("denied"))
                .await?;
            return Err(ServiceError::Forbidden(format!(
                "the {} role may not read {}",
                p.role_name,
                entity.plural()
            )));
        }
        // A read: counted on a read connection, its leaf then written by
        // group commit with other reads' (see `Custos::list`).
        let mut tx = self.inner.store.begin_read().await?;
        let vctx = Self::validation_context(tx.as_mut(), entity).await?;
        let mut conditions = Vec::new();
        for (name, raw) in &params.filters {
            let f = inventory::field(entity, name)
                .ok_or_else(|| ServiceError::invalid(name, "unknown field"))?;
            if !p.can_read(f.category) {
                return Err(ServiceError::Forbidden(format!(
                    "the {} role may not search {} data",
                    p.role_name,
                    f.category.name()
                )));
            }
            if !matches!(f.protection, Protection::Plain { .. }) {
                return Ok(None);
            }
            let json = match f.kind {
                FieldKind::Bool if raw == "true" || raw == "false" => {
                    serde_json::Value::Bool(raw == "true")
                }
                FieldKind::Bool => {
                    return Err(ServiceError::invalid(name, "must be true or false"));
                }
                _ => serde_json::Value::String(raw.clone()),
            };
            let v = validate::parse_value(f.kind, &json, &vctx)
                .map_err(|m| ServiceError::invalid(name, m))?;
            conditions.push(Condition::Eq(f.name, to_sql(&v)));
        }
        if let Some(q) = &params.q {
            match entity {
                Entity::Company => conditions.push(Condition::Or(vec![
                    Condition::Contains("name", q.clone()),
                    Condition::Contains("domain", q.clone()),
                ])),
                Entity::Deal => conditions.push(Condition::Contains("title", q.clone())),
                // Contact names are sealed: only the list can confirm matches.
                Entity::Contact => return Ok(None),
                _ => {
                    return Err(ServiceError::invalid(
                        "q",
                        format!("free-text search is not available for {}", entity.plural()),
                    ));
                }
            }
        }
        conditions.extend(crate::crm::records::scope_condition(p, entity));
        // A text search or a column without an index may match few rows of
        // millions: the list finds them a window at a time, a count would
        // read them all. Such a list shows no total.
        if !custos_store::sql::count_bounded(entity, &conditions) {
            return Ok(None);
        }
        let size = ListSize::count(tx.as_mut(), entity, &conditions).await?;
        let names: Vec<&str> = params
            .filters
            .iter()
            .map(|(n, _)| *n)
            .chain(params.q.as_ref().map(|_| "q"))
            .collect();
        let filters = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        };
        let ev = Event::new(p, action)
            .detail(format!("filters={filters}"))
            .detail(match size {
                ListSize::Exactly(n) => format!("count={n}"),
                ListSize::MoreThan(n) => format!("count={n}+"),
            });
        drop(tx);
        self.append_read(vec![ev]).await?;
        Ok(Some(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_tells_emails_phones_and_words_apart() {
        assert_eq!(search_kind("ada@example.com"), SearchKind::Email);
        assert_eq!(search_kind("+44 20 7946 0958"), SearchKind::Phone);
        assert_eq!(search_kind("(555) 010-2000"), SearchKind::Phone);
        assert_eq!(search_kind("Acme"), SearchKind::Words);
        assert_eq!(search_kind("3M"), SearchKind::Words);
        assert_eq!(search_kind("12"), SearchKind::Words);
    }

    #[test]
    fn sizes_add_up_and_stay_lower_bounds_past_the_limit() {
        use ListSize::*;
        assert_eq!(Exactly(2).plus(Exactly(3)), Exactly(5));
        assert_eq!(Exactly(2).plus(MoreThan(10)), MoreThan(12));
        assert_eq!(MoreThan(10).plus(Exactly(0)), MoreThan(10));
        assert_eq!(MoreThan(10).plus(MoreThan(10)), MoreThan(20));
        assert_eq!(MoreThan(u64::MAX).plus(Exactly(1)), MoreThan(u64::MAX));
    }
}
