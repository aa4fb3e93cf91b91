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
use custos_store::{Condition, ListQuery, Sort, SqlValue};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

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

impl Custos {
    /// Imports rows of `entity` (contacts or companies). `rows` are the data
    /// rows after the header. With `skip_invalid` the valid rows are imported
    /// and the others reported; without it, any invalid row means nothing is
    /// imported. `progress` gets (rows done, total).
    pub async fn import(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        rows: &[Vec<String>],
        skip_invalid: bool,
        progress: impl FnMut(u64, u64),
    ) -> Result<ImportReport> {
        self.import_rows(p, entity, headers, rows, skip_invalid, false, progress)
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
        self.import_rows(p, entity, headers, rows, true, true, |_, _| {})
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn import_rows(
        &self,
        p: &Principal,
        entity: Entity,
        headers: &[String],
        rows: &[Vec<String>],
        skip_invalid: bool,
        dry_run: bool,
        mut progress: impl FnMut(u64, u64),
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
        let total = rows.len() as u64;
        let mut report = ImportReport {
            rows: total,
            columns: headers
                .iter()
                .zip(&columns)
                .map(|(h, c)| (h.trim().to_string(), c.name().to_string()))
                .collect(),
            ..Default::default()
        };
        let mut tx = self.inner.store.begin().await?;
        let vctx = Self::validation_context(tx.as_mut()).await?;

        // Pass 1: validate every row; find duplicates in the file and in Custos.
        let mut valid: Vec<(u64, BTreeMap<&'static str, Value>, Option<String>)> = Vec::new();
        let mut emails_in_file: HashMap<String, u64> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let line = i as u64 + 2;
            if row.len() != columns.len() {
                report.rejected.push(RowError {
                    line,
                    field: String::new(),
                    reason: format!("has {} values, the header has {}", row.len(), columns.len()),
                });
                continue;
            }
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
            // An order names its contact by email: found by blind index.
            if let Some(email) = contact_email {
                let norm = normalize::email(&email);
                match self.existing_contact_by_email(tx.as_mut(), &norm).await? {
                    Some(id) => {
                        obj.insert("contact_id".into(), Json::String(id.to_string()));
                    }
                    None => {
                        report.rejected.push(RowError {
                            line,
                            field: "contact_email".into(),
                            reason: "no contact has this email".into(),
                        });
                        continue;
                    }
                }
            }
            let values =
                match validate::parse_input(entity, &Json::Object(obj), Mode::Create, &vctx) {
                    Ok(v) => v,
                    Err(errors) => {
                        for e in errors {
                            report.rejected.push(RowError {
                                line,
                                field: e.field,
                                reason: e.message,
                            });
                        }
                        continue;
                    }
                };
            if let Some(Value::Text(email)) = values.get("email") {
                let norm = normalize::email(email);
                if let Some(first) = emails_in_file.get(&norm) {
                    report.rejected.push(RowError {
                        line,
                        field: "email".into(),
                        reason: format!("duplicate of line {first} in this file"),
                    });
                    continue;
                }
                emails_in_file.insert(norm.clone(), line);
                if let Some(existing) = self.existing_contact_by_email(tx.as_mut(), &norm).await? {
                    report.rejected.push(RowError {
                        line,
                        field: "email".into(),
                        reason: format!("a contact with this email already exists ({existing})"),
                    });
                    continue;
                }
            }
            if let Some(Value::Uuid(c)) = values.get("contact_id")
                && entity == Entity::Order
                && tx.get_record(Entity::Contact, *c).await?.is_none()
            {
                report.rejected.push(RowError {
                    line,
                    field: "contact_id".into(),
                    reason: "no contact has this id".into(),
                });
                continue;
            }
            valid.push((line, values, company));
        }
        report.valid = valid.len() as u64;
        if dry_run {
            // The check looked people up by email: it is on record too.
            let ev = crate::audit::Event::new(p, format!("{}.import_check", entity.name())).detail(
                format!(
                    "rows={} valid={} rejected={}",
                    total,
                    report.valid,
                    report.rejected.len()
                ),
            );
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Ok(report);
        }
        if !report.rejected.is_empty() && !skip_invalid {
            return Ok(report);
        }

        // Pass 2: write, in the one transaction.
        let mut companies: HashMap<String, Uuid> = HashMap::new();
        let mut done = total - valid.len() as u64;
        for (_, mut values, company) in valid {
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
            self.insert_validated(tx.as_mut(), p, entity, values)
                .await?;
            report.imported += 1;
            done += 1;
            if done.is_multiple_of(1000) {
                progress(done, total);
            }
        }
        let ev = crate::audit::Event::new(p, format!("{}.import", entity.name())).detail(format!(
            "rows={} imported={} rejected={}",
            total,
            report.imported,
            report.rejected.len()
        ));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        progress(total, total);
        report.committed = true;
        Ok(report)
    }

    async fn existing_contact_by_email(
        &self,
        tx: &mut dyn custos_store::Tx,
        norm: &str,
    ) -> Result<Option<Uuid>> {
        let hash = self.inner.keys.blind_term(Entity::Contact, "email", norm);
        let q = ListQuery {
            entity: Entity::Contact,
            conditions: vec![Condition::Blind {
                field: "email",
                hash,
            }],
            sort: Sort {
                field: "created_at",
                descending: false,
            },
            after: None,
            limit: 20,
        };
        for row in tx.list_records(&q).await? {
            match self.open_internal(tx, Entity::Contact, &row).await {
                Ok(r)
                    if r.get("email").as_text().map(normalize::email).as_deref() == Some(norm) =>
                {
                    return Ok(Some(row.id));
                }
                Ok(_) | Err(ServiceError::Gone(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
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
