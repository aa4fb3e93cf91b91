//! Sealing and opening records, driven by the inventory: which data key a
//! record is sealed with, each sealed field bound to its record, field and
//! subject (AES-256-GCM with associated data), blind-index entries for the
//! searchable fields, and opening a stored row for a caller, masking what
//! their role may not read (DESIGN invariants 1 and 3).

use crate::crm::records::RecordView;
use crate::crm::records::kept_after_erasure;
use crate::ledger::audit::Event;
use crate::vault::keys::SubjectKeys;
use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::{DataKey, SealContext, open, seal, sealed_key_version};
use custos_domain::inventory::{self, FieldKind};
use custos_domain::policy::{self};
use custos_domain::validate::parse_date;
use custos_domain::value::{from_unix_ms, to_unix_ms};
use custos_domain::{DataCategory, Entity, ReadLevel, Record, Value};
use custos_store::{BlindEntry, NewRecords, SqlValue, StoredRow, Tx};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// A record prepared by [`Custos::prepare_new`].
pub(crate) struct NewRecord {
    /// Its id.
    pub(crate) id: Uuid,
    /// Its data subject.
    pub(crate) subject: Option<Uuid>,
    /// The data key made for it when it is a new subject.
    pub(crate) new_key: Option<Arc<DataKey>>,
}

/// The data key a new record is sealed with ([`Custos::record_key`]).
pub(crate) enum RecordKey {
    /// The record is a new data subject: a key is made for it.
    NewSubject,
    /// The key of the record's subject (an existing person).
    Subject(Uuid, Arc<DataKey>),
    /// The record has no subject and nothing personal.
    None,
}

/// A new record sealed and ready to join a batch ([`Custos::seal_record`]).
pub(crate) struct SealedRecord {
    pub(crate) entity: Entity,
    pub(crate) row: StoredRow,
    /// The new subject's key row, when the record is a new subject.
    pub(crate) key_row: Option<custos_store::SubjectKeyRow>,
    /// The new subject's key, to remember once written.
    pub(crate) new_key: Option<Arc<DataKey>>,
    pub(crate) blind: Vec<BlindEntry>,
    pub(crate) event: Event,
}

/// What opening a stored row produced.
pub(crate) struct Opened {
    pub(crate) view: RecordView,
    pub(crate) categories: BTreeSet<DataCategory>,
}

pub(crate) fn ctx<'a>(
    tenant: &'a str,
    entity: Entity,
    field: &'a str,
    id: &'a str,
    subject: &'a str,
) -> SealContext<'a> {
    SealContext {
        tenant,
        entity: entity.name(),
        field,
        record_id: id,
        subject_id: subject,
    }
}

/// The stored form of a plain value.
pub(crate) fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bool(b) => SqlValue::Bool(*b),
        Value::Money(m) => SqlValue::Int(*m),
        Value::Timestamp(t) => SqlValue::Int(to_unix_ms(*t)),
        Value::Date(d) => SqlValue::Text(custos_domain::value::format_date(*d)),
        Value::Uuid(u) => SqlValue::Text(u.to_string()),
        Value::Tags(t) => SqlValue::Text(serde_json::to_string(t).unwrap_or_default()),
    }
}

/// The typed form of a stored plain value.
pub(crate) fn from_sql(kind: FieldKind, v: &SqlValue) -> Result<Value> {
    let bad = || ServiceError::Internal("stored value does not fit its declared type".into());
    Ok(match (kind, v) {
        (_, SqlValue::Null) => Value::Null,
        (FieldKind::Id | FieldKind::Ref { .. }, SqlValue::Text(s)) => {
            Value::Uuid(Uuid::parse_str(s).map_err(|_| bad())?)
        }
        (FieldKind::Money, SqlValue::Int(i)) => Value::Money(*i),
        (FieldKind::Timestamp, SqlValue::Int(i)) => {
            Value::Timestamp(from_unix_ms(*i).ok_or_else(bad)?)
        }
        (FieldKind::Date, SqlValue::Text(s)) => Value::Date(parse_date(s).ok_or_else(bad)?),
        (FieldKind::Bool, SqlValue::Bool(b)) => Value::Bool(*b),
        (FieldKind::Bool, SqlValue::Int(i)) => Value::Bool(*i != 0),
        (FieldKind::Tags, SqlValue::Text(s)) => {
            Value::Tags(serde_json::from_str(s).map_err(|_| bad())?)
        }
        (_, SqlValue::Text(s)) => Value::Text(s.clone()),
        _ => return Err(bad()),
    })
}

/// Records the masked shape of a value (`"j•••@example.com"`).
pub(crate) fn shape(shapes: &mut BTreeMap<&'static str, String>, name: &'static str, v: &Value) {
    if let serde_json::Value::String(s) = policy::mask(v) {
        shapes.insert(name, s);
    }
}

impl Custos {
    /// Every data-key version of the record's subject (`Gone` once erased).
    pub(crate) async fn subject_keys_for(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        row_subject: Option<Uuid>,
    ) -> Result<Option<Arc<SubjectKeys>>> {
        match row_subject {
            Some(s) => Ok(Some(
                self.inner.keys.subject_keys(tx, s, entity.name()).await?,
            )),
            None => Ok(None),
        }
    }

    /// The key that seals new values for the record's subject (rotating it
    /// first if it is too old).
    pub(crate) async fn write_key_for(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        row_subject: Option<Uuid>,
    ) -> Result<Option<Arc<DataKey>>> {
        match row_subject {
            Some(s) => Ok(Some(
                self.inner
                    .keys
                    .write_key(tx, s, entity.name(), self.now_ms())
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Opens a stored row for `p`: plain fields decoded, sealed fields opened when
    /// the role may read their category; masked otherwise (not even decrypted),
    /// or shown in a masked shape where the role's read level is `masked`.
    pub(crate) async fn open_row(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        entity: Entity,
        row: &StoredRow,
    ) -> Result<Opened> {
        let mut record = Record::new(entity, row.id);
        let mut masked = Vec::new();
        let mut shapes = BTreeMap::new();
        let mut categories = BTreeSet::new();
        let tenant = self.inner.keys.tenant();
        let id = row.id.to_string();
        let subject = row.subject_id.map(|s| s.to_string()).unwrap_or_default();
        // An erased person's records answer Gone, whatever the caller may see.
        let (keys, erased) = match self.subject_keys_for(tx, entity, row.subject_id).await {
            Ok(k) => (k, false),
            // Records kept for a legal obligation outlive the person's key, anonymised.
            Err(ServiceError::Gone(_)) if kept_after_erasure(entity) => (None, true),
            Err(e) => return Err(e),
        };
        for f in inventory::fields(entity) {
            if f.name == "id" || f.category == DataCategory::Credentials {
                continue; // credentials never leave the service, not even masked
            }
            let stored = row.get(f.name);
            if matches!(stored, SqlValue::Null) {
                continue; // absent stays Null
            }
            let level = p.read_level(f.category);
            if level == ReadLevel::None {
                masked.push(f.name);
                continue;
            }
            if level == ReadLevel::Masked {
                masked.push(f.name);
            }
            if !matches!(f.category, DataCategory::Identifiers | DataCategory::System) {
                categories.insert(f.category);
            }
            if !f.protection.is_sealed() {
                let v = from_sql(f.kind, stored)?;
                if level == ReadLevel::Masked {
                    shape(&mut shapes, f.name, &v);
                } else {
                    record.set(f.name, v);
                }
                continue;
            }
            let SqlValue::Blob(bytes) = stored else {
                return Err(ServiceError::Internal(
                    "sealed column holds no ciphertext".into(),
                ));
            };
            if erased {
                continue; // unreadable for ever: its key was shredded
            }
            let keys = keys
                .as_ref()
                .ok_or_else(|| ServiceError::Internal("sealed field without a subject".into()))?;
            let k = keys.get(sealed_key_version(bytes)?)?;
            let plain = open(k, &ctx(tenant, entity, f.name, &id, &subject), bytes)?;
            let v = Value::from_plaintext(f.kind, &plain).ok_or_else(|| {
                ServiceError::Internal("sealed value does not fit its declared type".into())
            })?;
            if level == ReadLevel::Masked {
                shape(&mut shapes, f.name, &v);
                continue;
            }
            record.set(f.name, v);
        }
        Ok(Opened {
            view: RecordView {
                record,
                masked,
                shapes,
                erased,
            },
            categories,
        })
    }

    /// Seals the given values of a record into stored columns and sets its
    /// blind-index rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn seal_values(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        id: Uuid,
        subject: Option<Uuid>,
        key: Option<&DataKey>,
        values: &BTreeMap<&'static str, Value>,
        columns: &mut Vec<(&'static str, SqlValue)>,
    ) -> Result<()> {
        let mut blind = Vec::new();
        self.seal_new(entity, id, subject, key, values, columns, &mut blind)?;
        let mut fields: Vec<&'static str> = values
            .keys()
            .filter_map(|n| inventory::field(entity, n))
            .filter(|f| f.protection.normalizer().is_some())
            .map(|f| f.name)
            .collect();
        fields.dedup();
        for field in fields {
            let hashes: Vec<Vec<u8>> = blind
                .iter()
                .filter(|b| b.field == field)
                .map(|b| b.hash.clone())
                .collect();
            tx.set_blind_index(entity, id, field, &hashes).await?;
        }
        Ok(())
    }

    /// Seals the given values of a record into stored columns and gathers
    /// the blind-index entries of its indexed fields into `blind`, writing
    /// nothing: for a record being created, whose entries are written with it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_new(
        &self,
        entity: Entity,
        id: Uuid,
        subject: Option<Uuid>,
        key: Option<&DataKey>,
        values: &BTreeMap<&'static str, Value>,
        columns: &mut Vec<(&'static str, SqlValue)>,
        blind: &mut Vec<BlindEntry>,
    ) -> Result<()> {
        let tenant = self.inner.keys.tenant();
        let ids = id.to_string();
        let subj = subject.map(|s| s.to_string()).unwrap_or_default();
        for (name, v) in values {
            let Some(f) = inventory::field(entity, name) else {
                continue;
            };
            if !f.protection.is_sealed() {
                columns.push((f.name, to_sql(v)));
                continue;
            }
            let k = key
                .ok_or_else(|| ServiceError::Internal("sealed field without a data key".into()))?;
            if v.is_null() {
                columns.push((f.name, SqlValue::Null));
            } else {
                let sealed = seal(
                    k,
                    &ctx(tenant, entity, f.name, &ids, &subj),
                    &v.to_plaintext(),
                )?;
                columns.push((f.name, SqlValue::Blob(sealed)));
            }
            if let Some(norm) = f.protection.normalizer() {
                let hashes = self.inner.keys.blind_values(entity, f.name, norm, v);
                blind.extend(hashes.into_iter().map(|hash| BlindEntry {
                    entity,
                    field: f.name,
                    hash,
                    record_id: id,
                }));
            }
        }
        Ok(())
    }

    /// Prepares a record from validated values (references already checked)
    /// for writing with `batch` ([`Tx::insert_new`]): id, timestamps and
    /// owner set, a new subject's data key made, values sealed, blind-index
    /// entries gathered; its audit leaf is appended to `tx` now. Many records
    /// prepared into one batch are written in a few statements.
    pub(crate) async fn prepare_new(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        entity: Entity,
        values: BTreeMap<&'static str, Value>,
        batch: &mut NewRecords,
    ) -> Result<NewRecord> {
        let key = self.record_key(tx, entity, &values).await?;
        let sealed = self.seal_record(p, entity, values, key)?;
        self.add_sealed(tx, sealed, batch).await
    }

    /// The first step of [`Custos::prepare_new`], the only one that reads:
    /// the data key a new record is sealed with.
    pub(crate) async fn record_key(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        values: &BTreeMap<&'static str, Value>,
    ) -> Result<RecordKey> {
        match entity.subject_field() {
            Some("id") => Ok(RecordKey::NewSubject),
            Some(field) => {
                let subject = values
                    .get(field)
                    .and_then(Value::as_uuid)
                    .ok_or_else(|| ServiceError::invalid(field, "is required"))?;
                match self
                    .inner
                    .keys
                    .write_key(tx, subject, "contact", self.now_ms())
                    .await
                {
                    Ok(k) => Ok(RecordKey::Subject(subject, k)),
                    Err(ServiceError::Gone(_)) => {
                        Err(ServiceError::invalid(field, "this contact was erased"))
                    }
                    Err(e) => Err(e),
                }
            }
            None => Ok(RecordKey::None),
        }
    }

    /// The second step of [`Custos::prepare_new`], with no storage at all
    /// (so a bulk write can do it while the store writes the previous
    /// batch): id, timestamps and owner set, a new subject's data key made,
    /// values sealed, blind-index entries and the audit event made.
    pub(crate) fn seal_record(
        &self,
        p: &Principal,
        entity: Entity,
        mut values: BTreeMap<&'static str, Value>,
        key: RecordKey,
    ) -> Result<SealedRecord> {
        let id = match values.remove("id") {
            Some(Value::Uuid(id)) => id,
            _ => Uuid::now_v7(),
        };
        let now = Value::Timestamp(self.now());
        values.insert("created_at", now.clone());
        values.insert("updated_at", now);
        if inventory::field(entity, "owner_id").is_some()
            && !values.contains_key("owner_id")
            && p.user_id != Uuid::nil()
        {
            values.insert("owner_id", Value::Uuid(p.user_id));
        }
        let (subject, key, key_row) = match key {
            RecordKey::NewSubject => {
                let (row, key) = self.inner.keys.new_subject_key(id, entity, self.now_ms())?;
                (Some(id), Some(key), Some(row))
            }
            RecordKey::Subject(subject, key) => (Some(subject), Some(key), None),
            RecordKey::None => (None, None, None),
        };
        let touched: BTreeSet<DataCategory> = values
            .keys()
            .filter_map(|n| inventory::field(entity, n))
            .map(|f| f.category)
            .collect();
        let mut columns = Vec::new();
        let mut blind = Vec::new();
        self.seal_new(
            entity,
            id,
            subject,
            key.as_deref(),
            &values,
            &mut columns,
            &mut blind,
        )?;
        let fields: Vec<&str> = values
            .keys()
            .copied()
            .filter(|n| !n.ends_with("_at") || *n == "occurred_at")
            .collect();
        let event = Event::new(p, format!("{}.create", entity.name()))
            .subject(subject)
            .record(entity, id)
            .categories(touched)
            .detail(format!("fields={}", fields.join(",")));
        Ok(SealedRecord {
            entity,
            row: StoredRow {
                id,
                subject_id: subject,
                columns,
            },
            new_key: key_row.is_some().then_some(key).flatten(),
            key_row,
            blind,
            event,
        })
    }

    /// The last step of [`Custos::prepare_new`]: the sealed record joins
    /// `batch`, and its audit leaf is appended to `tx`.
    pub(crate) async fn add_sealed(
        &self,
        tx: &mut dyn Tx,
        sealed: SealedRecord,
        batch: &mut NewRecords,
    ) -> Result<NewRecord> {
        let made = NewRecord {
            id: sealed.row.id,
            subject: sealed.row.subject_id,
            new_key: sealed.new_key,
        };
        batch.keys.extend(sealed.key_row);
        batch.rows.push((sealed.entity, sealed.row));
        batch.blind.extend(sealed.blind);
        self.append(tx, sealed.event).await?;
        Ok(made)
    }

    /// Opens a row with full rights (for internal use cases such as sign-in).
    pub(crate) async fn open_internal(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        row: &StoredRow,
    ) -> Result<Record> {
        let tenant = self.inner.keys.tenant();
        let id = row.id.to_string();
        let subject = row.subject_id.map(|s| s.to_string()).unwrap_or_default();
        let mut record = Record::new(entity, row.id);
        let keys = self.subject_keys_for(tx, entity, row.subject_id).await?;
        for f in inventory::fields(entity) {
            if f.name == "id" {
                continue;
            }
            let stored = row.get(f.name);
            if !f.protection.is_sealed() {
                record.set(f.name, from_sql(f.kind, stored)?);
            } else if let (SqlValue::Blob(b), Some(keys)) = (stored, keys.as_ref()) {
                let k = keys.get(sealed_key_version(b)?)?;
                let plain = open(k, &ctx(tenant, entity, f.name, &id, &subject), b)?;
                record.set(
                    f.name,
                    Value::from_plaintext(f.kind, &plain).unwrap_or(Value::Null),
                );
            }
        }
        Ok(record)
    }
}
