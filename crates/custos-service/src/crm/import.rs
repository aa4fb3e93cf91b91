//! Bulk import of contacts, companies and orders from tabular data: columns
//! mapped by header, every row validated against the inventory before anything is
//! written, duplicates found by blind index, and the whole import in one
//! transaction so a failure leaves nothing half-imported.

use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::normalize;
use custos_domain::inventory::{self, Presence};
use custos_domain::policy::{self, Operation};
use custos_domain::validate::{self, Mode};
use custos_domain::{Entity, Value};
use custos_store::{Condition, ListQuery, NewRecords, Sort, SqlValue};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use uuid::Uuid;

/// Rows checked, and records written, per round of statements.
const CHUNK: usize = 500;

/// Candidate rows read per page when looking contacts up by email.
const LOOKUP_PAGE: u32 = 1000;

/// A data row as the JSON object validation reads, with its lookup columns.
struct RowObject {
    obj: Map<String, Json>,
    /// A company, by name.
    company: Option<String>,
    /// A contact, by email.
    contact_email: Option<String>,
}

fn row_object(entity: Entity, columns: &[Column], row: &[String]) -> RowObject {
    let mut obj = Map::new();
    let mut company = None;
    let mut contact_email = None;
    for (col, raw) in columns.iter().zip(row) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match col {
            Column::Field(name) => {
                let kind = inventory::field(entity, name).map(|f| f.kind);
                let v = if kind == Some(custos_domain::FieldKind::Tags) {
                    Json::Array(
                        raw.split([',', ';'])
                            .map(|t| Json::String(t.trim().to_string()))
                            .filter(|t| t != "")
                            .collect(),
                    )
                } else if kind == Some(custos_domain::FieldKind::Bool) {
                    Json::Bool(matches!(raw.to_lowercase().as_str(), "true" | "yes" | "1"))
                } else {
                    Json::String(raw.to_string())
                };
                obj.insert((*name).to_string(), v);
            }
            Column::CompanyName => company = Some(raw.to_string()),
            Column::ContactEmail => contact_email = Some(raw.to_string()),
            Column::Ignored => {}
        }
    }
    RowObject {
        obj,
        company,
        contact_email,
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// The line in the file (the header is line 1).
    pub line: u64,
    /// The column, or empty for the whole row.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Records created.
    pub imported: u64,
    /// Companies created for a `company` column.
    pub companies_created: u64,
    /// Rejected rows, with the reason for each problem.
    pub rejected: Vec<RowError>,
    /// Rows that passed every check (and were, or would be, imported).
    pub valid: u64,
    /// How each header was read: (header, field name, or `company` /
    /// `contact_email` for the lookup columns).
    pub columns: Vec<(String, String)>,
    /// Whether anything was written (false when rows were rejected and
    /// `skip_invalid` was not set, and for a check).
    pub committed: bool,
}

/// How a column is read.
#[derive(Debug, Clone)]
enum Column {
    Field(&'static str),
    CompanyName,
    ContactEmail,
    Ignored,
}

impl Column {
    fn name(&self) -> &'static str {
        match self {
            Column::Field(f) => f,
            Column::CompanyName => "company",
            Column::ContactEmail => "contact_email",
            Column::Ignored => "",
        }
    }
}

/// Maps headers to fields: the field name or its label, case-insensitively,
/// plus `company` (a company name) for contacts and `contact_email` (the
/// contact an order belongs to) for orders. Unknown headers are refused.
fn map_headers(entity: Entity, headers: &[String]) -> Result<Vec<Column>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for h in headers {
        let key = h.trim().to_lowercase().replace([' ', '-'], "_");
        if key.is_empty() {
            out.push(Column::Ignored);
            continue;
        }
        let col = if entity == Entity::Contact && (key == "company" || key == "company_name") {
            Some(Column::CompanyName)
        } else if entity == Entity::Order && key == "contact_email" {
            Some(Column::ContactEmail)
        } else {
            inventory::fields(entity)
                .find(|f| {
                    f.presence != Presence::System
                        && (f.name == key || f.label.to_lowercase().replace(' ', "_") == key)
                })
                .map(|f| Column::Field(f.name))
        };
        match col {
            Some(c) => {
                if !seen.insert(key.clone()) {
                    errors.push(custos_domain::FieldError::new(
                        h.trim(),
                        "appears twice in the header",
                    ));
                }
                out.push(c);
            }
            None => errors.push(custos_domain::FieldError::new(
                h.trim(),
                format!(
                    "is not a {} field (use a field name such as first_name, email)",
                    entity.name()
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ServiceError::Invalid(errors))
    }
}

/// Where an import's rows come from. An import reads them twice: once to
/// check every row, once to write the valid ones. In between it keeps only
/// which lines were rejected (and, for contacts, the emails seen), so a file
/// of any length is imported in the memory of a few chunks of rows.
///
/// [`ImportSource::rewind`] starts again at the first data row, and the
/// second reading must give the same rows as the first: if it does not (the
/// file was edited meanwhile), the import fails and writes nothing.
pub trait ImportSource: Send {
    /// How many data rows there are (for progress; the header not counted).
    fn row_count(&self) -> u64;
    /// Goes back to the first data row.
    fn rewind(&mut self) -> std::result::Result<(), String>;
    /// The next data row, `None` after the last, or why it cannot be read.
    fn next_row(&mut self) -> Option<std::result::Result<Vec<String>, String>>;
}

/// Rows already in memory: an upload, generated rows.
pub struct RowsInMemory<'a> {
    rows: &'a [Vec<String>],
    next: usize,
}

impl<'a> RowsInMemory<'a> {
    /// A source over `rows` (the data rows after the header).
    pub fn new(rows: &'a [Vec<String>]) -> Self {
        RowsInMemory { rows, next: 0 }
    }
}

impl ImportSource for RowsInMemory<'_> {
    fn row_count(&self) -> u64 {
        self.rows.len() as u64
    }

    fn rewind(&mut self) -> std::result::Result<(), String> {
        self.next = 0;
        Ok(())
    }

    fn next_row(&mut self) -> Option<std::result::Result<Vec<String>, String>> {
        let row = self.rows.get(self.next)?.clone();
        self.next += 1;
        Some(Ok(row))
    }
}

/// Which pass an import's progress is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStage {
    /// Checking every row; nothing written yet.
    Checking,
    /// Writing the valid rows.
    Writing,
}

/// Reads up to [`CHUNK`] rows, numbered by line (the header is line 1), and
/// folds each into `digest` so the two readings can be compared.
fn read_chunk(
    source: &mut dyn ImportSource,
    next_line: &mut u64,
    digest: &mut DefaultHasher,
) -> Result<Vec<(u64, Vec<String>)>> {
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        match source.next_row() {
            None => break,
            Some(Err(msg)) => return Err(ServiceError::invalid("file", msg)),
            Some(Ok(row)) => {
                row.hash(digest);
                out.push((*next_line, row));
                *next_line += 1;
            }
        }
    }
    Ok(out)
}

/// The error when the second reading of the rows differs from the first.
fn rows_changed() -> ServiceError {
    ServiceError::Conflict(
        "the rows changed while they were being imported (was the file edited?); nothing was imported"
            .into(),
    )
}

/// A row's checked values and its company name.
type ParsedRow = (BTreeMap<&'static str, Value>, Option<String>);

impl Custos {
    /// Imports rows of `entity` (contacts, companies or orders). `rows` are
    /// the data rows after the header. With `skip_invalid` the valid rows are
    /// imported and the others reported; without it, any invalid row means
    /// nothing is imported. `progress` gets (pass, rows done, rows in all).
    pub async fn import(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        rows: &[Vec<String>],
        skip_invalid: bool,
        progress: impl FnMut(ImportStage, u64, u64),
    ) -> Result<ImportReport> {
        let mut source = RowsInMemory::new(rows);
        self.import_from(p, entity, headers, &mut source, skip_invalid, progress)
            .await
    }

    /// [`Custos::import`] from a source read twice (a file), never held in
    /// memory whole.
    pub async fn import_from(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        source: &mut dyn ImportSource,
        skip_invalid: bool,
        progress: impl FnMut(ImportStage, u64, u64),
    ) -> Result<ImportReport> {
        self.import_rows(p, entity, headers, source, skip_invalid, false, progress)
            .await
    }

    /// Checks rows as [`Custos::import`] would (mapping, validation,
    /// duplicates, lookups) and writes nothing: the preview before an import.
    pub async fn import_check(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        rows: &[Vec<String>],
    ) -> Result<ImportReport> {
        let mut source = RowsInMemory::new(rows);
        self.import_rows(p, entity, headers, &mut source, true, true, |_, _, _| {})
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn import_rows(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        source: &mut dyn ImportSource,
        skip_invalid: bool,
        dry_run: bool,
        mut progress: impl FnMut(ImportStage, u64, u64),
    ) -> Result<ImportReport> {
        if !matches!(entity, Entity::Contact | Entity::Company | Entity::Order) {
            return Err(ServiceError::invalid(
                "entity",
                "import takes contacts, companies or orders",
            ));
        }
        if !policy::allows(p.role, Operation::Create, entity) {
            let msg = format!(
                "the {} role may not create {}",
                p.role_name,
                entity.plural()
            );
            return Err(self
                .refuse(p, &format!("{}.import", entity.name()), msg)
                .await);
        }
        let columns = map_headers(entity, headers)?;
        let mut report = ImportReport {
            columns: headers
                .iter()
                .zip(&columns)
                .map(|(h, c)| (h.trim().to_string(), c.name().to_string()))
                .collect(),
            ..Default::default()
        };
        source
            .rewind()
            .map_err(|m| ServiceError::invalid("file", m))?;
        let expected = source.row_count();
        // A preview only reads; an import writes in bulk.
        let mut tx = if dry_run {
            self.inner.store.begin().await?
        } else {
            self.inner.store.begin_bulk().await?
        };
        let vctx = Self::validation_context(tx.as_mut(), entity).await?;

        // Pass 1: check every row; find duplicates in the file and in
        // Custos. Lookups by email go a chunk of rows at a time, one query
        // each, not one per row. Only the rejections are kept.
        let mut first_reading = DefaultHasher::new();
        let mut next_line = 2;
        let mut emails_in_file: HashMap<String, u64> = HashMap::new();
        loop {
            let chunk = read_chunk(source, &mut next_line, &mut first_reading)?;
            if chunk.is_empty() {
                break;
            }
            report.rows += chunk.len() as u64;
            let (parsed, contacts) = self
                .parse_chunk(tx.as_mut(), entity, &columns, &vctx, chunk)
                .await?;
            let mut checked = Vec::new();
            for (line, outcome) in parsed {
                let values = match outcome {
                    Ok((values, _)) => values,
                    Err(errors) => {
                        report.rejected.extend(errors);
                        continue;
                    }
                };
                let mut norm = None;
                if let Some(Value::Text(email)) = values.get("email") {
                    let n = normalize::email(email);
                    if let Some(first) = emails_in_file.get(&n) {
                        report.rejected.push(RowError {
                            line,
                            field: "email".into(),
                            reason: format!("duplicate of line {first} in this file"),
                        });
                        continue;
                    }
                    emails_in_file.insert(n.clone(), line);
                    norm = Some(n);
                }
                checked.push((line, values, norm));
            }
            let wanted: Vec<String> = checked.iter().filter_map(|r| r.2.clone()).collect();
            let existing = self.contacts_by_email(tx.as_mut(), &wanted).await?;
            for (line, values, norm) in checked {
                if let Some(id) = norm.and_then(|n| existing.get(&n)) {
                    report.rejected.push(RowError {
                        line,
                        field: "email".into(),
                        reason: format!("a contact with this email already exists ({id})"),
                    });
                    continue;
                }
                if let Some(Value::Uuid(c)) = values.get("contact_id")
                    && entity == Entity::Order
                    && !contacts.values().any(|id| id == c)
                    && tx.get_record(Entity::Contact, *c).await?.is_none()
                {
                    report.rejected.push(RowError {
                        line,
                        field: "contact_id".into(),
                        reason: "no contact has this id".into(),
                    });
                    continue;
                }
                report.valid += 1;
            }
            progress(
                ImportStage::Checking,
                report.rows,
                expected.max(report.rows),
            );
        }
        drop(emails_in_file);
        // By line, as the file reads (a row's problems keep their order).
        report.rejected.sort_by_key(|e| e.line);
        let total = report.rows;
        if dry_run {
            // The check looked people up by email: it is on record too.
            let ev = crate::ledger::audit::Event::new(p, format!("{}.import_check", entity.name()))
                .detail(format!(
                    "rows={} valid={} rejected={}",
                    total,
                    report.valid,
                    report.rejected.len()
                ));
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Ok(report);
        }
        if !report.rejected.is_empty() && !skip_invalid {
            return Ok(report);
        }

        // Pass 2: read the rows again, leave out the rejected lines, and
        // write the others in the one transaction, a chunk of records at a
        // time in a few statements. While the store writes one chunk, the
        // next is sealed (the store works on its own thread, or its own
        // server). A row that no longer passes means the rows changed.
        source
            .rewind()
            .map_err(|m| ServiceError::invalid("file", m))?;
        let rejected_lines: Vec<u64> = {
            let mut l: Vec<u64> = report.rejected.iter().map(|e| e.line).collect();
            l.dedup();
            l
        };
        let mut rejected_lines = rejected_lines.into_iter().peekable();
        let mut second_reading = DefaultHasher::new();
        let mut next_line = 2;
        let mut companies: HashMap<String, Uuid> = HashMap::new();
        let mut done = total - report.valid;
        let mut ready = NewRecords::default();
        loop {
            let mut chunk = read_chunk(source, &mut next_line, &mut second_reading)?;
            if chunk.is_empty() {
                break;
            }
            chunk.retain(|(line, _)| {
                while rejected_lines.next_if(|l| l < line).is_some() {}
                rejected_lines.next_if_eq(line).is_none()
            });
            let (parsed, _) = self
                .parse_chunk(tx.as_mut(), entity, &columns, &vctx, chunk)
                .await?;
            // What needs the store: companies by name, the subjects' keys.
            let mut planned = Vec::with_capacity(parsed.len());
            for (_, outcome) in parsed {
                let (mut values, company) = outcome.map_err(|_| rows_changed())?;
                if let Some(name) = company {
                    let cid = match companies.get(&name.to_lowercase()) {
                        Some(id) => *id,
                        None => {
                            let id = match self.company_by_name(tx.as_mut(), &name).await? {
                                Some(id) => id,
                                None => {
                                    let mut cv = BTreeMap::new();
                                    cv.insert("name", Value::Text(name.clone()));
                                    report.companies_created += 1;
                                    self.insert_validated(tx.as_mut(), p, Entity::Company, cv)
                                        .await?
                                        .0
                                }
                            };
                            companies.insert(name.to_lowercase(), id);
                            id
                        }
                    };
                    values.insert("company_id", Value::Uuid(cid));
                }
                let key = self.record_key(tx.as_mut(), entity, &values).await?;
                planned.push((values, key));
            }
            let written = ready.rows.len() as u64;
            let sealed = {
                let mut write = std::pin::pin!(tx.insert_new(&ready));
                // The first poll hands the statements to the store.
                let first =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx)))
                        .await;
                let sealed: Result<Vec<_>> = planned
                    .into_iter()
                    .map(|(values, key)| self.seal_record(p, entity, values, key))
                    .collect();
                match first {
                    std::task::Poll::Ready(r) => r?,
                    std::task::Poll::Pending => write.await?,
                }
                sealed?
            };
            if written > 0 {
                done += written;
                progress(ImportStage::Writing, done, total);
            }
            ready = NewRecords::default();
            for record in sealed {
                self.add_sealed(tx.as_mut(), record, &mut ready).await?;
                report.imported += 1;
            }
        }
        tx.insert_new(&ready).await?;
        if next_line - 2 != total
            || report.imported != report.valid
            || second_reading.finish() != first_reading.finish()
        {
            // Dropping the transaction rolls every write back.
            return Err(rows_changed());
        }
        let ev = crate::ledger::audit::Event::new(p, format!("{}.import", entity.name())).detail(
            format!(
                "rows={} imported={} rejected={}",
                total,
                report.imported,
                report.rejected.len()
            ),
        );
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        progress(ImportStage::Writing, total, total);
        report.committed = true;
        Ok(report)
    }

    /// Parses a chunk of rows: each row's values checked against the
    /// inventory (or its problems), and the contacts its rows name by email
    /// (orders), found by blind index in one lookup.
    async fn parse_chunk(
        &self,
        tx: &mut dyn custos_store::Tx,
        entity: Entity,
        columns: &[Column],
        vctx: &validate::ValidationContext,
        chunk: Vec<(u64, Vec<String>)>,
    ) -> Result<(
        Vec<(u64, std::result::Result<ParsedRow, Vec<RowError>>)>,
        HashMap<String, Uuid>,
    )> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut objects = Vec::with_capacity(chunk.len());
        for (line, row) in chunk {
            if row.len() == columns.len() {
                objects.push((line, row_object(entity, columns, &row)));
            } else {
                let reason = format!("has {} values, the header has {}", row.len(), columns.len());
                out.push((
                    line,
                    Err(vec![RowError {
                        line,
                        field: String::new(),
                        reason,
                    }]),
                ));
            }
        }
        // An order names its contact by email: found by blind index.
        let wanted: Vec<String> = objects
            .iter()
            .filter_map(|(_, r)| r.contact_email.as_deref().map(normalize::email))
            .collect();
        let contacts = self.contacts_by_email(tx, &wanted).await?;
        for (line, row) in objects {
            let mut obj = row.obj;
            if let Some(email) = row.contact_email {
                match contacts.get(&normalize::email(&email)) {
                    Some(id) => {
                        obj.insert("contact_id".into(), Json::String(id.to_string()));
                    }
                    None => {
                        let e = RowError {
                            line,
                            field: "contact_email".into(),
                            reason: "no contact has this email".into(),
                        };
                        out.push((line, Err(vec![e])));
                        continue;
                    }
                }
            }
            let outcome = validate::parse_input(entity, &Json::Object(obj), Mode::Create, vctx)
                .map(|values| (values, row.company))
                .map_err(|errors| {
                    errors
                        .into_iter()
                        .map(|e| RowError {
                            line,
                            field: e.field,
                            reason: e.message,
                        })
                        .collect()
                });
            out.push((line, outcome));
        }
        Ok((out, contacts))
    }

    /// The contacts with these (normalised) emails, by email: the first
    /// created where several share one. One blind-index query for all, then
    /// the candidates' emails opened to confirm (blind indexes are truncated
    /// on purpose, so a match is only a candidate).
    async fn contacts_by_email(
        &self,
        tx: &mut dyn custos_store::Tx,
        norms: &[String],
    ) -> Result<HashMap<String, Uuid>> {
        let mut found = HashMap::new();
        if norms.is_empty() {
            return Ok(found);
        }
        let wanted: HashSet<&str> = norms.iter().map(String::as_str).collect();
        let mut hashes: Vec<Vec<u8>> = wanted
            .iter()
            .map(|n| self.inner.keys.blind_term(Entity::Contact, "email", n))
            .collect();
        hashes.sort();
        hashes.dedup();
        let mut after = None;
        loop {
            let q = ListQuery {
                entity: Entity::Contact,
                conditions: vec![Condition::BlindAny {
                    field: "email",
                    hashes: hashes.clone(),
                }],
                sort: Sort {
                    field: "created_at",
                    descending: false,
                },
                after: after.take(),
                limit: LOOKUP_PAGE,
            };
            let rows = tx.list_records(&q).await?;
            let subjects: Vec<Uuid> = rows.iter().filter_map(|r| r.subject_id).collect();
            self.inner.keys.preload(tx, &subjects).await?;
            for row in &rows {
                match self.open_internal(tx, Entity::Contact, row).await {
                    Ok(r) => {
                        if let Some(norm) = r.get("email").as_text().map(normalize::email)
                            && wanted.contains(norm.as_str())
                        {
                            found.entry(norm).or_insert(row.id);
                        }
                    }
                    Err(ServiceError::Gone(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            match rows.last() {
                Some(last) if rows.len() as u32 == LOOKUP_PAGE => {
                    after = Some((last.get("created_at").clone(), last.id));
                }
                _ => break,
            }
        }
        Ok(found)
    }

    async fn company_by_name(
        &self,
        tx: &mut dyn custos_store::Tx,
        name: &str,
    ) -> Result<Option<Uuid>> {
        let q = ListQuery {
            entity: Entity::Company,
            conditions: vec![Condition::Contains("name", name.to_string())],
            sort: Sort {
                field: "created_at",
                descending: false,
            },
            after: None,
            limit: 50,
        };
        for row in tx.list_records(&q).await? {
            if let SqlValue::Text(n) = row.get("name")
                && n.to_lowercase() == name.to_lowercase()
            {
                return Ok(Some(row.id));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn headers_map_by_name_or_label_and_unknown_ones_are_refused() {
        let cols = map_headers(
            Entity::Contact,
            &h(&["First name", "LAST_NAME", "Email", "company", "tags"]),
        )
        .expect("ok");
        assert!(matches!(cols[0], Column::Field("first_name")));
        assert!(matches!(cols[1], Column::Field("last_name")));
        assert!(matches!(cols[3], Column::CompanyName));
        let Err(ServiceError::Invalid(errs)) =
            map_headers(Entity::Contact, &h(&["email", "shoe size", "Email"]))
        else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["shoe size", "Email"]);
        assert!(
            map_headers(Entity::Contact, &h(&["id"])).is_err(),
            "system fields are not importable"
        );
    }
}
