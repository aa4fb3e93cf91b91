//! CRUD for the CRM entities, driven by the inventory: one code path for every
//! entity, so sealing, masking, searching and auditing cannot differ between them.

use crate::crm::query::{ListParams, Page};
use crate::ledger::audit::Event;
use crate::vault::seal::to_sql;
use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::normalize;
use custos_domain::inventory::{self, FieldDecl, FieldKind, Normalizer, Presence, Protection};
use custos_domain::policy::{self, Operation};
use custos_domain::validate::{self, Mode};
use custos_domain::{DataCategory, Entity, Record, Value};
use custos_store::{Condition, ListQuery, NewRecords, SqlValue, StoredRow, Tx};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A record as the caller may see it: values they may not read are masked.
#[derive(Debug, Clone)]
pub struct RecordView {
    /// The typed record (masked fields hold `Null` here).
    pub record: Record,
    /// Names of masked fields.
    pub masked: Vec<&'static str>,
    /// Masked fields the role may see the shape of (`"j•••@example.com"`),
    /// with that shape; the other masked fields show `"•••"`.
    pub shapes: BTreeMap<&'static str, String>,
    /// The person this record was about was erased; it is kept (anonymised)
    /// because the inventory requires it (e.g. orders, for accounting).
    pub erased: bool,
}

impl serde::Serialize for RecordView {
    /// The JSON form: every declared field, plus `masked` naming the fields
    /// replaced by `"•••"` (or by their masked shape, `"j•••@example.com"`),
    /// and `erased` on a record kept after its person was erased.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = BTreeMap::new();
        for f in inventory::fields(self.record.entity) {
            if f.category == DataCategory::Credentials {
                continue; // never leaves the service, not even masked
            }
            let v = if self.masked.contains(&f.name) {
                serde_json::Value::String(self.masked_text(f.name))
            } else {
                self.record.get(f.name).to_json()
            };
            map.insert(f.name, v);
        }
        map.insert("masked", serde_json::json!(self.masked));
        if self.erased {
            map.insert("erased", serde_json::Value::Bool(true));
        }
        serde::Serialize::serialize(&map, s)
    }
}

impl RecordView {
    /// A field's text as the caller sees it: its masked form where it is
    /// masked, `None` where it is empty.
    pub fn shown_text(&self, field: &str) -> Option<String> {
        if self.masked.contains(&field) {
            return Some(self.masked_text(field));
        }
        match self.record.get(field) {
            Value::Null => None,
            v => Some(v.display()),
        }
    }

    /// The record id.
    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// What a masked field shows: its shape where the role may see that,
    /// else `"•••"`.
    pub fn masked_text(&self, field: &str) -> String {
        self.shapes
            .get(field)
            .cloned()
            .unwrap_or_else(|| "•••".to_string())
    }
}

/// The API-token scope an operation needs.
pub(crate) fn token_scope(op: Operation) -> &'static str {
    match op {
        Operation::Read => "read",
        Operation::Create | Operation::Update | Operation::Delete => "write",
        Operation::Export => "export",
    }
}

/// The owner of a stored row, for record scopes (`None` if it has none).
pub(crate) fn owner_of(row: &StoredRow) -> Option<Uuid> {
    match row.get("owner_id") {
        SqlValue::Text(t) => Uuid::parse_str(t).ok(),
        _ => None,
    }
}

/// The list condition limiting `entity` to the records `p` reaches (`None`
/// when the caller reaches all, or the entity has no owner).
pub(crate) fn scope_condition(p: &Principal, entity: Entity) -> Option<Condition> {
    let owners = p.owners.as_ref()?;
    inventory::field(entity, "owner_id")?;
    Some(Condition::Or(
        owners
            .iter()
            .map(|o| Condition::Eq("owner_id", SqlValue::Text(o.to_string())))
            .collect(),
    ))
}

/// Why `p` may not touch this record, if it is outside their record scope.
pub(crate) fn out_of_scope(p: &Principal, entity: Entity, row: &StoredRow) -> Option<String> {
    if p.owners.is_none() || inventory::field(entity, "owner_id").is_none() {
        return None;
    }
    (!p.reaches(owner_of(row))).then(|| {
        format!(
            "this {} is outside the {} role's record scope ({})",
            entity.name(),
            p.role_name,
            p.scope().label().to_lowercase()
        )
    })
}

/// What a create sent with an idempotency key did.
#[derive(Debug, Clone)]
pub enum Submission<T> {
    /// It created this.
    Created(T),
    /// The same submission had already created the record with this id;
    /// nothing new was made.
    Replayed(Uuid),
}

impl Custos {
    /// Refuses and records an operation the role may not perform.
    async fn authorise(&self, p: &Principal, op: Operation, entity: Entity) -> Result<()> {
        let scope = token_scope(op);
        let msg = if !policy::allows(p.role, op, entity) {
            format!(
                "the {} role may not {} {}",
                p.role_name,
                op.name(),
                entity.plural()
            )
        } else if !p.has_scope(scope) {
            format!("this API token lacks the {scope} scope")
        } else {
            return Ok(());
        };
        Err(self
            .refuse(p, &format!("{}.{}", entity.name(), op.name()), msg)
            .await)
    }

    /// Checks that referenced records exist; returns field errors otherwise.
    async fn check_refs(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        values: &BTreeMap<&'static str, Value>,
    ) -> Result<()> {
        let mut errors = Vec::new();
        for (name, v) in values {
            let Some(f) = inventory::field(entity, name) else {
                continue;
            };
            if let (FieldKind::Ref { entity: target }, Value::Uuid(id)) = (f.kind, v)
                && tx.get_record(target, *id).await?.is_none()
            {
                errors.push(custos_domain::FieldError::new(
                    *name,
                    format!("no {} has this id", target.name()),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid(errors))
        }
    }

    fn check_write_categories(
        p: &Principal,
        entity: Entity,
        values: &BTreeMap<&'static str, Value>,
    ) -> Result<()> {
        for name in values.keys() {
            if let Some(f) = inventory::field(entity, name)
                && !p.can_write(f.category)
            {
                return Err(ServiceError::Forbidden(format!(
                    "the {} role may not write {} data ({})",
                    p.role_name,
                    f.category.name(),
                    f.name
                )));
            }
        }
        Ok(())
    }

    /// Creates a record from JSON input.
    pub async fn create(
        &self,
        p: &Principal,
        entity: Entity,
        input: &serde_json::Value,
    ) -> Result<RecordView> {
        match self.create_as(p, entity, None, input).await? {
            Submission::Created(view) => Ok(view),
            // Unreachable without a chosen id; answered as a conflict.
            Submission::Replayed(id) => Err(ServiceError::Conflict(format!(
                "{} {id} already exists",
                entity.name()
            ))),
        }
    }

    /// Like [`Custos::create`], with the new record's id chosen by the
    /// caller: a form carries a fresh id (its idempotency key), so a form
    /// sent twice (a reload, Back then Send again) creates one record, and
    /// the second sending is told which ([`Submission::Replayed`]).
    pub async fn create_once(
        &self,
        p: &Principal,
        entity: Entity,
        id: Uuid,
        input: &serde_json::Value,
    ) -> Result<Submission<RecordView>> {
        self.create_as(p, entity, Some(id), input).await
    }

    async fn create_as(
        &self,
        p: &Principal,
        entity: Entity,
        id: Option<Uuid>,
        input: &serde_json::Value,
    ) -> Result<Submission<RecordView>> {
        self.authorise(p, Operation::Create, entity).await?;
        let mut tx = self.inner.store.begin().await?;
        if let Some(id) = id
            && tx.get_record(entity, id).await?.is_some()
        {
            return Ok(Submission::Replayed(id));
        }
        let vctx = Self::validation_context(tx.as_mut(), entity).await?;
        let mut values = validate::parse_input(entity, input, Mode::Create, &vctx)
            .map_err(ServiceError::Invalid)?;
        if let Err(ServiceError::Forbidden(m)) = Self::check_write_categories(p, entity, &values) {
            return Err(self
                .refuse_in(tx, p, &format!("{}.create", entity.name()), m)
                .await);
        }
        if p.owners.is_some()
            && let Some(Value::Uuid(o)) = values.get("owner_id")
            && !p.reaches(Some(*o))
        {
            let msg = "the owner is outside your record scope".to_string();
            return Err(self
                .refuse_in(tx, p, &format!("{}.create", entity.name()), msg)
                .await);
        }
        self.check_refs(tx.as_mut(), entity, &values).await?;
        if let Some(id) = id {
            // Validation refuses "id" from input; this one is the caller's.
            values.insert("id", Value::Uuid(id));
        }
        let mut batch = NewRecords::default();
        let made = self
            .prepare_new(tx.as_mut(), p, entity, values, &mut batch)
            .await?;
        tx.insert_new(&batch).await?;
        // The answer is opened from the row just written, not read back.
        let row = batch
            .rows
            .pop()
            .map(|(_, row)| row)
            .ok_or(ServiceError::NotFound(entity.name()))?;
        if let (Some(subject), Some(key)) = (made.subject, made.new_key) {
            self.inner
                .keys
                .remember_new(subject, entity, key, self.now_ms());
        }
        let opened = self.open_row(tx.as_mut(), p, entity, &row).await?;
        tx.commit().await?;
        Ok(Submission::Created(opened.view))
    }

    /// Inserts a record from validated values (references already checked)
    /// and appends its audit leaf, inside `tx`. Returns its id and subject.
    pub(crate) async fn insert_validated(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        entity: Entity,
        values: BTreeMap<&'static str, Value>,
    ) -> Result<(Uuid, Option<Uuid>)> {
        let mut batch = NewRecords::default();
        let made = self.prepare_new(tx, p, entity, values, &mut batch).await?;
        tx.insert_new(&batch).await?;
        Ok((made.id, made.subject))
    }

    /// Reads one record.
    pub async fn get(&self, p: &Principal, entity: Entity, id: Uuid) -> Result<RecordView> {
        self.authorise(p, Operation::Read, entity).await?;
        // A read transaction: the leaf is appended after it, by group commit.
        let mut tx = self.inner.store.begin_read().await?;
        let action = format!("{}.read", entity.name());
        // The record and its subject's processing flags in one query.
        let Some((row, flags)) = tx.get_record_with_flags(entity, id).await? else {
            return Err(self.not_found_in(tx, p, entity, &action, id).await);
        };
        if let Some(msg) = out_of_scope(p, entity, &row) {
            return Err(self.refuse_in(tx, p, &action, msg).await);
        }
        // Only the privacy officer may process a restricted person's records
        // (GDPR Art. 18).
        if p.role != custos_domain::Role::PrivacyOfficer
            && flags
                .iter()
                .any(|f| f == custos_domain::dsar::Flag::Restricted.as_str())
        {
            let msg = "processing of this person's data is restricted (GDPR Art. 18); only the privacy officer may open it".to_string();
            return Err(self.refuse_in(tx, p, &action, msg).await);
        }
        let opened = self.open_row(tx.as_mut(), p, entity, &row).await;
        drop(tx);
        let opened = match opened {
            Ok(o) => o,
            Err(ServiceError::Gone(what)) => {
                let ev = Event::new(p, action)
                    .subject(row.subject_id)
                    .record(entity, id)
                    .outcome("not_found")
                    .detail("erased");
                self.append_read(vec![ev]).await?;
                return Err(ServiceError::Gone(what));
            }
            Err(e) => return Err(e),
        };
        let ev = Event::new(p, action)
            .subject(row.subject_id)
            .record(entity, id)
            .categories(opened.categories.iter().copied());
        self.append_read(vec![ev]).await?;
        Ok(opened.view)
    }

    /// Reads several records at once: the records a page names (a list's
    /// companies and contacts) in one query and one batch of audit leaves,
    /// each recorded as a read of that record, as [`Custos::get`] records
    /// it. Records that do not exist, are outside the caller's scope, are
    /// restricted (for anyone but the privacy officer) or were erased are
    /// left out, as a list leaves them out.
    pub async fn get_many(
        &self,
        p: &Principal,
        entity: Entity,
        ids: &[Uuid],
    ) -> Result<Vec<RecordView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.authorise(p, Operation::Read, entity).await?;
        let action = format!("{}.read", entity.name());
        let mut tx = self.inner.store.begin_read().await?;
        let mut views = Vec::new();
        let mut events = Vec::new();
        for chunk in ids.chunks(500) {
            let mut conditions = vec![Condition::IdIn(chunk.to_vec())];
            conditions.extend(scope_condition(p, entity));
            let rows = tx
                .list_records(&ListQuery {
                    entity,
                    conditions,
                    sort: custos_store::Sort {
                        field: "created_at",
                        descending: false,
                    },
                    after: None,
                    limit: chunk.len() as u32,
                })
                .await?;
            let restricted = self.restricted_among(tx.as_mut(), p, &rows).await?;
            let subjects: Vec<Uuid> = rows.iter().filter_map(|r| r.subject_id).collect();
            self.inner.keys.preload(tx.as_mut(), &subjects).await?;
            for row in &rows {
                if row.subject_id.is_some_and(|s| restricted.contains(&s)) {
                    continue;
                }
                let opened = match self.open_row(tx.as_mut(), p, entity, row).await {
                    Ok(o) => o,
                    Err(ServiceError::Gone(_)) => continue,
                    Err(e) => return Err(e),
                };
                events.push(
                    Event::new(p, action.clone())
                        .subject(row.subject_id)
                        .record(entity, row.id)
                        .categories(opened.categories.iter().copied()),
                );
                views.push(opened.view);
            }
        }
        drop(tx);
        if !events.is_empty() {
            self.append_read(events).await?;
        }
        Ok(views)
    }

    /// The subjects among these rows whose processing is restricted, whom
    /// only the privacy officer may see (GDPR Art. 18).
    async fn restricted_among(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        rows: &[StoredRow],
    ) -> Result<BTreeSet<Uuid>> {
        if p.role == custos_domain::Role::PrivacyOfficer {
            return Ok(BTreeSet::new());
        }
        let subjects: Vec<Uuid> = rows.iter().filter_map(|r| r.subject_id).collect();
        Ok(crate::privacy::dsar::flags_in_force(tx, &subjects)
            .await?
            .into_iter()
            .filter(|(_, f)| *f == custos_domain::dsar::Flag::Restricted)
            .map(|(s, _)| s)
            .collect())
    }

    /// Lists records with filters, search, sorting and keyset pagination.
    pub async fn list(
        &self,
        p: &Principal,
        entity: Entity,
        params: &ListParams,
    ) -> Result<Page<RecordView>> {
        self.authorise(p, Operation::Read, entity).await?;
        // A read transaction: the leaves are appended after it, by group commit.
        let mut tx = self.inner.store.begin_read().await?;
        let vctx = Self::validation_context(tx.as_mut(), entity).await?;
        if let Some(f) = inventory::field(entity, params.sort.field)
            && !p.can_read(f.category)
        {
            let msg = format!(
                "the {} role may not sort by {} data",
                p.role_name,
                f.category.name()
            );
            return Err(self
                .refuse_in(tx, p, &format!("{}.list", entity.name()), msg)
                .await);
        }
        let mut conditions = Vec::new();
        let mut checks: Vec<(&'static FieldDecl, String)> = Vec::new();
        for (name, raw) in &params.filters {
            let f = inventory::field(entity, name)
                .ok_or_else(|| ServiceError::invalid(name, "unknown field"))?;
            if !p.can_read(f.category) {
                let msg = format!(
                    "the {} role may not search {} data",
                    p.role_name,
                    f.category.name()
                );
                return Err(self
                    .refuse_in(tx, p, &format!("{}.list", entity.name()), msg)
                    .await);
            }
            match f.protection {
                Protection::Plain { .. } => {
                    let json = match f.kind {
                        FieldKind::Bool => serde_json::Value::Bool(raw == "true"),
                        _ => serde_json::Value::String(raw.clone()),
                    };
                    if f.kind == FieldKind::Bool && raw != "true" && raw != "false" {
                        return Err(ServiceError::invalid(name, "must be true or false"));
                    }
                    let v = validate::parse_value(f.kind, &json, &vctx)
                        .map_err(|m| ServiceError::invalid(name, m))?;
                    conditions.push(Condition::Eq(f.name, to_sql(&v)));
                }
                Protection::SealedIndexed { normalizer } => {
                    let norm = match normalizer {
                        Normalizer::Email => normalize::email(raw),
                        Normalizer::Phone => normalize::phone(raw),
                        Normalizer::Tokens | Normalizer::EachTag => normalize::text(raw),
                    };
                    if norm.is_empty() {
                        return Err(ServiceError::invalid(name, "is empty after normalisation"));
                    }
                    if normalizer == Normalizer::Tokens {
                        // Names are indexed word by word: every word must match,
                        // and the whole value is confirmed after opening.
                        let words = normalize::tokens(raw);
                        let all = words
                            .iter()
                            .map(|w| Condition::Blind {
                                field: f.name,
                                hash: self.inner.keys.blind_term(entity, f.name, w),
                            })
                            .collect();
                        conditions.push(Condition::And(all));
                    } else {
                        let hash = self.inner.keys.blind_term(entity, f.name, &norm);
                        conditions.push(Condition::Blind {
                            field: f.name,
                            hash,
                        });
                    }
                    checks.push((f, norm));
                }
                Protection::Sealed => {
                    return Err(ServiceError::invalid(
                        name,
                        "is sealed without a search index and cannot be filtered",
                    ));
                }
            }
        }
        let mut q_tokens = Vec::new();
        if let Some(q) = &params.q {
            match self.q_condition(p, entity, q, &mut q_tokens) {
                Ok(c) => conditions.push(c),
                Err(ServiceError::Forbidden(m)) => {
                    return Err(self
                        .refuse_in(tx, p, &format!("{}.list", entity.name()), m)
                        .await);
                }
                Err(e) => return Err(e),
            }
        }
        conditions.extend(scope_condition(p, entity));
        let mut items: Vec<(RecordView, SqlValue, Option<Uuid>, BTreeSet<DataCategory>)> =
            Vec::new();
        let mut after = params.after.clone();
        let batch = params.limit + 1;
        let mut company_names: BTreeMap<Uuid, String> = BTreeMap::new();
        // Where a search that read its last window stopped, if it did.
        let mut stopped_at = None;
        let mut windows = 0;
        for _ in 0..100 {
            let query = ListQuery {
                entity,
                conditions: conditions.clone(),
                sort: params.sort,
                after: after.clone(),
                limit: batch,
            };
            let window = tx
                .list_records_within(&query, self.inner.config.list_window)
                .await?;
            let rows = window.rows;
            let full = rows.len() as u32 == batch;
            // Restricted people are left out of lists and searches, except for
            // the privacy officer.
            let restricted = self.restricted_among(tx.as_mut(), p, &rows).await?;
            // The page's keys in one query, not one per person.
            let subjects: Vec<Uuid> = rows.iter().filter_map(|r| r.subject_id).collect();
            self.inner.keys.preload(tx.as_mut(), &subjects).await?;
            for row in &rows {
                after = Some((row.get(params.sort.field).clone(), row.id));
                if row.subject_id.is_some_and(|s| restricted.contains(&s)) {
                    continue;
                }
                let opened = match self.open_row(tx.as_mut(), p, entity, row).await {
                    Ok(o) => o,
                    Err(ServiceError::Gone(_)) => continue, // erased subjects are not listed
                    Err(e) => return Err(e),
                };
                // Blind indexes are truncated on purpose, so a match is a candidate:
                // confirm it on the opened value.
                if !Self::confirm_filters(&opened.view.record, &checks) {
                    continue;
                }
                if let Some(q) = &params.q
                    && !self
                        .confirm_q(
                            tx.as_mut(),
                            &opened.view.record,
                            q,
                            &q_tokens,
                            &mut company_names,
                        )
                        .await?
                {
                    continue;
                }
                items.push((
                    opened.view,
                    row.get(params.sort.field).clone(),
                    row.subject_id,
                    opened.categories,
                ));
                if items.len() as u32 > params.limit {
                    break;
                }
            }
            if items.len() as u32 > params.limit {
                break;
            }
            if let Some(end) = window.resume {
                // The window ended before the page filled: search on from its
                // last row, up to LIST_WINDOWS windows in this request.
                windows += 1;
                if windows == crate::LIST_WINDOWS {
                    stopped_at = Some(end);
                    break;
                }
                after = Some(end);
            } else if !full {
                break;
            }
        }
        let partial = stopped_at.is_some();
        let next_cursor = if items.len() as u32 > params.limit {
            items.truncate(params.limit as usize);
            items
                .last()
                .map(|(v, sort_value, _, _)| params.cursor_after(sort_value, v.id()))
        } else {
            stopped_at.map(|(value, id)| params.cursor_after(&value, id))
        };
        let action = format!("{}.list", entity.name());
        let filter_names: Vec<&str> = params
            .filters
            .iter()
            .map(|(n, _)| *n)
            .chain(params.q.as_ref().map(|_| "q"))
            .collect();
        let filter_detail = format!(
            "filters={}",
            if filter_names.is_empty() {
                "none".to_string()
            } else {
                filter_names.join(",")
            }
        );
        drop(tx);
        let mut events = Vec::new();
        if entity.subject_field().is_some() {
            // One leaf per person shown, so "who accessed this person" is complete.
            for (view, _, subject, cats) in &items {
                events.push(
                    Event::new(p, action.clone())
                        .subject(*subject)
                        .record(entity, view.id())
                        .categories(cats.iter().copied())
                        .detail(filter_detail.clone()),
                );
            }
            if items.is_empty() {
                events.push(
                    Event::new(p, action)
                        .detail(filter_detail)
                        .detail("count=0"),
                );
            }
        } else {
            let cats: BTreeSet<DataCategory> = items
                .iter()
                .flat_map(|(_, _, _, c)| c.iter().copied())
                .collect();
            events.push(
                Event::new(p, action)
                    .categories(cats)
                    .detail(filter_detail)
                    .detail(format!("count={}", items.len())),
            );
        }
        self.append_read(events).await?;
        Ok(Page {
            items: items.into_iter().map(|(v, _, _, _)| v).collect(),
            next_cursor,
            partial,
        })
    }

    fn confirm_filters(record: &Record, checks: &[(&'static FieldDecl, String)]) -> bool {
        checks.iter().all(|(f, norm)| {
            let Some(n) = f.protection.normalizer() else {
                return true;
            };
            match (n, record.get(f.name)) {
                (Normalizer::Email, Value::Text(s)) => normalize::email(s) == *norm,
                (Normalizer::Phone, Value::Text(s)) => normalize::phone(s) == *norm,
                (Normalizer::Tokens, Value::Text(s)) => normalize::text(s) == *norm,
                (Normalizer::EachTag, Value::Tags(t)) => {
                    t.iter().any(|t| normalize::text(t) == *norm)
                }
                _ => false,
            }
        })
    }

    /// The condition for `?q=`: contacts by name words (blind index) or company
    /// name; companies by name or domain; deals by title.
    fn q_condition(
        &self,
        p: &Principal,
        entity: Entity,
        q: &str,
        tokens: &mut Vec<String>,
    ) -> Result<Condition> {
        match entity {
            Entity::Contact => {
                if !p.can_read(DataCategory::Identity) {
                    return Err(ServiceError::Forbidden(format!(
                        "the {} role may not search names",
                        p.role_name
                    )));
                }
                *tokens = normalize::tokens(q);
                let mut by_name = Vec::new();
                for t in tokens.iter() {
                    by_name.push(Condition::Or(vec![
                        Condition::Blind {
                            field: "first_name",
                            hash: self.inner.keys.blind_term(entity, "first_name", t),
                        },
                        Condition::Blind {
                            field: "last_name",
                            hash: self.inner.keys.blind_term(entity, "last_name", t),
                        },
                    ]));
                }
                let mut any = vec![Condition::RefContains {
                    field: "company_id",
                    target: Entity::Company,
                    target_field: "name",
                    needle: q.to_string(),
                }];
                if !by_name.is_empty() {
                    any.push(Condition::And(by_name));
                }
                Ok(Condition::Or(any))
            }
            Entity::Company => Ok(Condition::Or(vec![
                Condition::Contains("name", q.to_string()),
                Condition::Contains("domain", q.to_string()),
            ])),
            Entity::Deal => Ok(Condition::Contains("title", q.to_string())),
            _ => Err(ServiceError::invalid(
                "q",
                format!("free-text search is not available for {}", entity.plural()),
            )),
        }
    }

    async fn confirm_q(
        &self,
        tx: &mut dyn Tx,
        record: &Record,
        q: &str,
        tokens: &[String],
        company_names: &mut BTreeMap<Uuid, String>,
    ) -> Result<bool> {
        let folded = q.to_lowercase();
        let has = |field: &str| {
            record
                .get(field)
                .as_text()
                .is_some_and(|t| t.to_lowercase().contains(&folded))
        };
        match record.entity {
            Entity::Contact => {}
            Entity::Company => return Ok(has("name") || has("domain")),
            Entity::Deal => return Ok(has("title")),
            _ => return Ok(true),
        }
        let mut words = normalize::tokens(record.get("first_name").as_text().unwrap_or_default());
        words.extend(normalize::tokens(
            record.get("last_name").as_text().unwrap_or_default(),
        ));
        if !tokens.is_empty() && tokens.iter().all(|t| words.contains(t)) {
            return Ok(true);
        }
        let Some(company) = record.get("company_id").as_uuid() else {
            return Ok(false);
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = company_names.entry(company) {
            let name = match tx.get_record(Entity::Company, company).await? {
                Some(row) => match row.get("name") {
                    SqlValue::Text(s) => s.clone(),
                    _ => String::new(),
                },
                None => String::new(),
            };
            slot.insert(name);
        }
        let name = company_names
            .get(&company)
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        Ok(name.contains(&q.to_lowercase()))
    }

    /// Changes some fields of a record.
    pub async fn update(
        &self,
        p: &Principal,
        entity: Entity,
        id: Uuid,
        input: &serde_json::Value,
    ) -> Result<RecordView> {
        self.authorise(p, Operation::Update, entity).await?;
        let mut tx = self.inner.store.begin().await?;
        let vctx = Self::validation_context(tx.as_mut(), entity).await?;
        let values = validate::parse_input(entity, input, Mode::Patch, &vctx)
            .map_err(ServiceError::Invalid)?;
        if let Some(sf) = entity.subject_field()
            && sf != "id"
            && values.contains_key(sf)
        {
            return Err(ServiceError::invalid(
                sf,
                "cannot be changed: the record is sealed under this person's key; create a new record instead",
            ));
        }
        if let Err(ServiceError::Forbidden(m)) = Self::check_write_categories(p, entity, &values) {
            return Err(self
                .refuse_in(tx, p, &format!("{}.update", entity.name()), m)
                .await);
        }
        let Some(row) = tx.get_record(entity, id).await? else {
            return Err(self
                .not_found_in(tx, p, entity, &format!("{}.update", entity.name()), id)
                .await);
        };
        if let Some(msg) = out_of_scope(p, entity, &row) {
            return Err(self
                .refuse_in(tx, p, &format!("{}.update", entity.name()), msg)
                .await);
        }
        if let Some(Value::Uuid(o)) = values.get("owner_id")
            && !p.reaches(Some(*o))
        {
            let msg = "the new owner is outside your record scope".to_string();
            return Err(self
                .refuse_in(tx, p, &format!("{}.update", entity.name()), msg)
                .await);
        }
        if entity == Entity::User {
            self.guard_user_update(tx.as_mut(), p, id, &values).await?;
        }
        self.check_refs(tx.as_mut(), entity, &values).await?;
        let key = self
            .write_key_for(tx.as_mut(), entity, row.subject_id)
            .await?;
        let mut all = values.clone();
        all.insert("updated_at", Value::Timestamp(self.now()));
        let mut columns = Vec::new();
        self.seal_values(
            tx.as_mut(),
            entity,
            id,
            row.subject_id,
            key.as_deref(),
            &all,
            &mut columns,
        )
        .await?;
        tx.update_record(entity, id, &columns).await?;
        let touched: BTreeSet<DataCategory> = values
            .keys()
            .filter_map(|n| inventory::field(entity, n))
            .map(|f| f.category)
            .collect();
        let fields: Vec<&str> = values.keys().copied().collect();
        let ev = Event::new(p, format!("{}.update", entity.name()))
            .subject(row.subject_id)
            .record(entity, id)
            .categories(touched)
            .detail(format!("fields={}", fields.join(",")));
        self.append(tx.as_mut(), ev).await?;
        let row = tx
            .get_record(entity, id)
            .await?
            .ok_or(ServiceError::NotFound(entity.name()))?;
        let opened = self.open_row(tx.as_mut(), p, entity, &row).await?;
        tx.commit().await?;
        Ok(opened.view)
    }

    /// Deletes a record. Deleting a contact also deletes its activities, unlinks
    /// its deals and destroys its data key; a contact with orders (kept for
    /// accounting) cannot be deleted, only erased through a data-subject request.
    pub async fn delete(&self, p: &Principal, entity: Entity, id: Uuid) -> Result<()> {
        self.authorise(p, Operation::Delete, entity).await?;
        let mut tx = self.inner.store.begin().await?;
        let action = format!("{}.delete", entity.name());
        let Some(row) = tx.get_record(entity, id).await? else {
            return Err(self.not_found_in(tx, p, entity, &action, id).await);
        };
        if let Some(msg) = out_of_scope(p, entity, &row) {
            return Err(self.refuse_in(tx, p, &action, msg).await);
        }
        match entity {
            Entity::Contact => {
                let orders = tx
                    .count_records(
                        Entity::Order,
                        &[Condition::Eq("contact_id", SqlValue::Text(id.to_string()))],
                    )
                    .await?;
                if orders > 0 {
                    return Err(ServiceError::Conflict(format!(
                        "this contact has {orders} order(s) kept for accounting; erase the person through a data-subject request instead"
                    )));
                }
                let link = Condition::Eq("contact_id", SqlValue::Text(id.to_string()));
                for act in self
                    .ids_where(tx.as_mut(), Entity::Activity, link.clone())
                    .await?
                {
                    tx.delete_record(Entity::Activity, act).await?;
                    let ev = Event::new(p, "activity.delete")
                        .subject(Some(id))
                        .record(Entity::Activity, act)
                        .detail("cascade=contact");
                    self.append(tx.as_mut(), ev).await?;
                }
                let now = SqlValue::Int(self.now_ms());
                let deals = self.ids_where(tx.as_mut(), Entity::Deal, link).await?;
                let cols = [("contact_id", SqlValue::Null), ("updated_at", now)];
                tx.update_records(Entity::Deal, &deals, &cols).await?;
                for deal in deals {
                    let ev = Event::new(p, "deal.update")
                        .record(Entity::Deal, deal)
                        .detail("fields=contact_id cascade=contact");
                    self.append(tx.as_mut(), ev).await?;
                }
                tx.delete_record(entity, id).await?;
                tx.shred_subject_key(id, self.now_ms()).await?;
                self.inner.keys.forget(&id);
            }
            Entity::Company => {
                let link = Condition::Eq("company_id", SqlValue::Text(id.to_string()));
                let now = SqlValue::Int(self.now_ms());
                for e in [Entity::Contact, Entity::Deal] {
                    let ids = self.ids_where(tx.as_mut(), e, link.clone()).await?;
                    let cols = [("company_id", SqlValue::Null), ("updated_at", now.clone())];
                    tx.update_records(e, &ids, &cols).await?;
                    for rid in ids {
                        let subject = (e == Entity::Contact).then_some(rid);
                        let ev = Event::new(p, format!("{}.update", e.name()))
                            .subject(subject)
                            .record(e, rid)
                            .detail("fields=company_id cascade=company");
                        self.append(tx.as_mut(), ev).await?;
                    }
                }
                tx.delete_record(entity, id).await?;
            }
            _ => {
                tx.delete_record(entity, id).await?;
            }
        }
        self.append(
            tx.as_mut(),
            Event::new(p, action)
                .subject(row.subject_id)
                .record(entity, id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes fields of a record directly (for use cases that set fields the
    /// generic input refuses, such as a user's password hash).
    pub(crate) async fn write_system_fields(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        id: Uuid,
        subject: Option<Uuid>,
        values: &BTreeMap<&'static str, Value>,
    ) -> Result<()> {
        let key = self.write_key_for(tx, entity, subject).await?;
        let mut columns = Vec::new();
        self.seal_values(
            tx,
            entity,
            id,
            subject,
            key.as_deref(),
            values,
            &mut columns,
        )
        .await?;
        tx.update_record(entity, id, &columns).await?;
        Ok(())
    }

    /// Fields that a client must send to create a record of `entity` (a
    /// deal's stage is not among them: it defaults to the pipeline's first).
    pub fn required_fields(entity: Entity) -> Vec<&'static str> {
        inventory::fields(entity)
            .filter(|f| f.presence == Presence::Required && !validate::defaulted_on_create(f.kind))
            .map(|f| f.name)
            .collect()
    }
}

/// Whether records of this entity are kept (anonymised) when their person is
/// erased: the inventory says so by keeping some of their fields.
pub(crate) fn kept_after_erasure(entity: Entity) -> bool {
    inventory::fields(entity).any(|f| {
        matches!(
            f.on_erasure,
            custos_domain::inventory::OnErasure::Keep { .. }
        )
    })
}
