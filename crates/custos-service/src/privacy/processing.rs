//! The record of processing (GDPR Art. 30) and what it is made from: the
//! processing activities of the inventory ([`custos_domain::processing`]),
//! the controller and DPO details an administrator enters once, the
//! processor register the privacy officer keeps, and the security measures
//! read from the running installation (never written as prose). The public
//! privacy notice names the controller from the same settings.

use crate::ledger::audit::{Event, format_timestamp_ms};
use crate::privacy::retention::time_of;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::inventory::{DataCategory, LawfulBasis, Retention, Source, SubjectType};
use custos_domain::processing;
use custos_domain::validate::{check_email, check_text, parse_date};
use custos_store::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

const CONTROLLER_KEY: &str = "privacy.controller";
const PROCESSOR_PREFIX: &str = "privacy.processor.";
/// The format name of the record's JSON.
pub const RECORD_FORMAT: &str = "custos-record-of-processing/1";
/// Most processors the register holds.
pub const PROCESSORS_MAX: usize = 200;

/// Countries of the European Economic Area (ISO 3166-1 alpha-2): a
/// processor elsewhere is a transfer to a third country (GDPR Chapter V).
pub const EEA: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Who is responsible for the processing, as the record and the privacy
/// notice name them. Set once by an administrator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controller {
    /// The organisation's legal name.
    pub name: String,
    /// Its postal address (several lines).
    pub address: String,
    /// Where people write about their data.
    pub email: String,
    /// The data protection officer's name, if one is appointed.
    pub dpo_name: String,
    /// The DPO's email.
    pub dpo_email: String,
}

impl Controller {
    /// Whether the details were entered.
    pub fn is_set(&self) -> bool {
        !self.name.is_empty()
    }
}

/// How personal data reaches a processor outside the EEA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transfer {
    /// No transfer: the processor is in the EEA.
    None,
    /// An adequacy decision (Art. 45).
    Adequacy,
    /// Standard contractual clauses (Art. 46(2)(c)).
    Sccs,
    /// Binding corporate rules (Art. 47).
    Bcrs,
    /// A derogation for a specific situation (Art. 49).
    Derogation,
}

impl Transfer {
    /// Every mechanism, in display order.
    pub const ALL: [Transfer; 5] = [
        Transfer::None,
        Transfer::Adequacy,
        Transfer::Sccs,
        Transfer::Bcrs,
        Transfer::Derogation,
    ];

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transfer::None => "none",
            Transfer::Adequacy => "adequacy",
            Transfer::Sccs => "sccs",
            Transfer::Bcrs => "bcrs",
            Transfer::Derogation => "derogation",
        }
    }

    /// In words, with its article.
    pub fn words(self) -> &'static str {
        match self {
            Transfer::None => "none (within the EEA)",
            Transfer::Adequacy => "adequacy decision (GDPR Art. 45)",
            Transfer::Sccs => "standard contractual clauses (GDPR Art. 46(2)(c))",
            Transfer::Bcrs => "binding corporate rules (GDPR Art. 47)",
            Transfer::Derogation => "derogation for a specific situation (GDPR Art. 49)",
        }
    }
}

/// One processor (or other recipient under contract) of the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processor {
    /// Its id.
    pub id: Uuid,
    /// The company's name.
    pub name: String,
    /// What it does for us, e.g. "email delivery".
    pub service: String,
    /// The data categories it receives (snake-case names).
    pub categories: Vec<String>,
    /// Where it processes the data (ISO 3166-1 alpha-2).
    pub country: String,
    /// How data reaches it when that is outside the EEA.
    pub transfer: Transfer,
    /// When the data processing agreement (Art. 28) was signed (YYYY-MM-DD).
    pub dpa_signed_on: Option<String>,
    /// When the entry is to be reviewed (YYYY-MM-DD).
    pub review_on: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl Processor {
    /// Whether it is a transfer to a third country.
    pub fn third_country(&self) -> bool {
        !EEA.contains(&self.country.as_str())
    }
}

/// One activity of the record of processing.
#[derive(Debug, Clone, Serialize)]
pub struct ActivityRecord {
    /// The purpose (snake-case name).
    pub purpose: &'static str,
    /// Categories of data subjects.
    pub subjects: Vec<SubjectType>,
    /// Categories of personal and other data.
    pub categories: Vec<&'static str>,
    /// Lawful bases (Art. 6).
    pub lawful_bases: Vec<LawfulBasis>,
    /// Recipients the inventory declares.
    pub recipients: Vec<&'static str>,
    /// Processors of the register that receive one of its categories.
    pub processors: Vec<String>,
    /// Retention rules.
    pub retention: Vec<Retention>,
    /// Sources of the data.
    pub sources: Vec<Source>,
    /// The fields, as `entity.field`.
    pub fields: Vec<String>,
}

/// One security measure in force, read from the installation.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// What it is, e.g. "Encryption at rest".
    pub measure: &'static str,
    /// How it stands now, in words with figures.
    pub state: String,
}

/// A transfer to a third country.
#[derive(Debug, Clone, Serialize)]
pub struct TransferRecord {
    /// The processor.
    pub processor: String,
    /// The country.
    pub country: String,
    /// The mechanism.
    pub mechanism: Transfer,
}

/// The record of processing activities (GDPR Art. 30(1)).
#[derive(Debug, Clone, Serialize)]
pub struct RecordOfProcessing {
    /// Always [`RECORD_FORMAT`].
    pub format: &'static str,
    /// When it was generated (RFC 3339).
    pub generated_at: String,
    /// The controller and DPO.
    pub controller: Controller,
    /// One per purpose.
    pub activities: Vec<ActivityRecord>,
    /// Fields declaring no purpose (should be none).
    pub without_purpose: Vec<String>,
    /// The processor register.
    pub processors: Vec<Processor>,
    /// Transfers to third countries (Art. 30(1)(e)).
    pub transfers: Vec<TransferRecord>,
    /// Technical and organisational measures in force (Art. 30(1)(g)).
    pub security: Vec<Measure>,
}

fn text<'a>(input: &'a Json, name: &str) -> Result<&'a str> {
    match input.get(name) {
        None | Some(Json::Null) => Ok(""),
        Some(Json::String(s)) => Ok(s.trim()),
        Some(_) => Err(ServiceError::invalid(name, "must be a string")),
    }
}

/// Records the error of free text too long or with control characters.
fn bounded(
    errors: &mut Vec<custos_domain::FieldError>,
    name: &str,
    value: &str,
    max: usize,
    multiline: bool,
) {
    if let Err(m) = check_text(value, max, multiline) {
        errors.push(custos_domain::FieldError::new(name, m));
    }
}

fn words_of_ms(ms: i64) -> String {
    format_timestamp_ms(time_of(ms))
}

impl Custos {
    /// The controller and DPO details (empty until an administrator enters
    /// them). Public: the privacy notice shows them to anyone.
    pub async fn controller(&self) -> Result<Controller> {
        let mut tx = self.inner.store.begin_read().await?;
        Self::controller_in(tx.as_mut()).await
    }

    async fn controller_in(tx: &mut dyn Tx) -> Result<Controller> {
        Ok(tx
            .get_setting(CONTROLLER_KEY)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default())
    }

    /// Sets the controller and DPO details (administrators):
    /// `{"name", "address", "email", "dpo_name", "dpo_email"}`; the name
    /// and email are required, the DPO's email when a DPO is named.
    pub async fn set_controller(&self, p: &Principal, input: &Json) -> Result<Controller> {
        self.require_admin(p, "settings.controller").await?;
        if !input.is_object() {
            return Err(ServiceError::invalid("body", "must be a JSON object"));
        }
        let c = Controller {
            name: text(input, "name")?.to_string(),
            address: text(input, "address")?.replace("\r\n", "\n"),
            email: text(input, "email")?.to_string(),
            dpo_name: text(input, "dpo_name")?.to_string(),
            dpo_email: text(input, "dpo_email")?.to_string(),
        };
        let mut errors = Vec::new();
        if c.name.is_empty() {
            errors.push(custos_domain::FieldError::new(
                "name",
                "give the organisation's legal name",
            ));
        }
        bounded(&mut errors, "name", &c.name, 200, false);
        bounded(&mut errors, "address", &c.address, 500, true);
        bounded(&mut errors, "dpo_name", &c.dpo_name, 200, false);
        for (field, value, required) in [
            ("email", &c.email, true),
            ("dpo_email", &c.dpo_email, !c.dpo_name.is_empty()),
        ] {
            if value.is_empty() {
                if required {
                    errors.push(custos_domain::FieldError::new(
                        field,
                        "give the address people write to about their data",
                    ));
                }
            } else if let Err(m) = check_email(value) {
                errors.push(custos_domain::FieldError::new(field, m));
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let json = serde_json::to_string(&c).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut tx = self.inner.store.begin().await?;
        tx.put_setting(CONTROLLER_KEY, &json).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "settings.controller").detail("fields=name,address,email,dpo"),
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    async fn processors_in(tx: &mut dyn Tx) -> Result<Vec<Processor>> {
        let mut out: Vec<Processor> = tx
            .list_settings(PROCESSOR_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_str(&v).ok())
            .collect();
        out.sort_by_key(|a| a.name.to_lowercase());
        Ok(out)
    }

    async fn register_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let msg = "the processor register is kept by the privacy officer".to_string();
        self.refuse(p, action, msg).await
    }

    /// The processor register, by name (privacy officer, administrators and
    /// auditors).
    pub async fn processors(&self, p: &Principal) -> Result<Vec<Processor>> {
        if !Self::require_privacy(p) && p.role != custos_domain::Role::Auditor {
            return Err(self.register_refused(p, "processor.list").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        Self::processors_in(tx.as_mut()).await
    }

    /// One processor.
    pub async fn processor(&self, p: &Principal, id: Uuid) -> Result<Processor> {
        if !Self::require_privacy(p) && p.role != custos_domain::Role::Auditor {
            return Err(self.register_refused(p, "processor.read").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        tx.get_setting(&format!("{PROCESSOR_PREFIX}{id}"))
            .await?
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or(ServiceError::NotFound("processor"))
    }

    fn parse_processor(&self, input: &Json, id: Uuid) -> Result<Processor> {
        if !input.is_object() {
            return Err(ServiceError::invalid("body", "must be a JSON object"));
        }
        let mut errors = Vec::new();
        let name = text(input, "name")?.to_string();
        let service = text(input, "service")?.to_string();
        for (field, value, what) in [
            ("name", &name, "the processor's company name"),
            (
                "service",
                &service,
                "what it does for you, e.g. email delivery",
            ),
        ] {
            if value.is_empty() {
                errors.push(custos_domain::FieldError::new(
                    field,
                    format!("give {what}"),
                ));
            }
            bounded(&mut errors, field, value, 200, false);
        }
        let categories: Vec<String> = match input.get("categories") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| v.as_str().unwrap_or_default().trim().to_string())
                .collect(),
            Some(Json::String(s)) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            Some(_) => {
                return Err(ServiceError::invalid(
                    "categories",
                    "must be a list of data categories",
                ));
            }
        };
        let mut cats = Vec::new();
        for c in DataCategory::ALL {
            if categories.iter().any(|x| x == c.name()) {
                cats.push(c.name().to_string());
            }
        }
        if let Some(bad) = categories
            .iter()
            .find(|x| !DataCategory::ALL.iter().any(|c| c.name() == x.as_str()))
        {
            let names: Vec<&str> = DataCategory::ALL.iter().map(|c| c.name()).collect();
            errors.push(custos_domain::FieldError::new(
                "categories",
                format!("{bad:?} is not a data category; use {}", names.join(", ")),
            ));
        } else if cats.is_empty() {
            errors.push(custos_domain::FieldError::new(
                "categories",
                "name at least one data category it receives",
            ));
        }
        let country = text(input, "country")?.to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(custos_domain::FieldError::new(
                "country",
                "must be a two-letter ISO 3166 country code such as IE or US",
            ));
        }
        let transfer_name = text(input, "transfer")?;
        let transfer = if transfer_name.is_empty() {
            Some(Transfer::None)
        } else {
            Transfer::ALL
                .into_iter()
                .find(|t| t.as_str() == transfer_name)
        };
        let transfer = match transfer {
            Some(t) => t,
            None => {
                errors.push(custos_domain::FieldError::new(
                    "transfer",
                    "must be one of: none, adequacy, sccs, bcrs, derogation",
                ));
                Transfer::None
            }
        };
        let in_eea = EEA.contains(&country.as_str());
        if country.len() == 2 && !in_eea && transfer == Transfer::None {
            errors.push(custos_domain::FieldError::new(
                "transfer",
                format!(
                    "{country} is outside the EEA: name the transfer mechanism (adequacy, SCCs, BCRs or a derogation)"
                ),
            ));
        }
        if in_eea && transfer != Transfer::None {
            errors.push(custos_domain::FieldError::new(
                "transfer",
                format!("{country} is in the EEA: there is no transfer to name"),
            ));
        }
        let today = self.now().date();
        let dpa = text(input, "dpa_signed_on")?;
        let dpa_signed_on = if dpa.is_empty() {
            None
        } else {
            match parse_date(dpa) {
                Some(d) if d <= today => Some(d.to_string()),
                Some(_) => {
                    errors.push(custos_domain::FieldError::new(
                        "dpa_signed_on",
                        "cannot be in the future",
                    ));
                    None
                }
                None => {
                    errors.push(custos_domain::FieldError::new(
                        "dpa_signed_on",
                        "must be a date such as 2026-03-31",
                    ));
                    None
                }
            }
        };
        let review = text(input, "review_on")?;
        let review_on = if review.is_empty() {
            today.replace_year(today.year() + 1).unwrap_or(today)
        } else {
            match parse_date(review) {
                Some(d) => d,
                None => {
                    errors.push(custos_domain::FieldError::new(
                        "review_on",
                        "must be a date such as 2027-03-31",
                    ));
                    today
                }
            }
        };
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        Ok(Processor {
            id,
            name,
            service,
            categories: cats,
            country,
            transfer,
            dpa_signed_on,
            review_on: review_on.to_string(),
            updated_at: format_timestamp_ms(self.now()),
        })
    }

    /// Adds a processor to the register (privacy officer): `{"name",
    /// "service", "categories": [...], "country", "transfer",
    /// "dpa_signed_on", "review_on"}`.
    pub async fn processor_create(&self, p: &Principal, input: &Json) -> Result<Processor> {
        self.processor_save(p, input, None).await
    }

    /// Changes a processor of the register (privacy officer).
    pub async fn processor_update(
        &self,
        p: &Principal,
        id: Uuid,
        input: &Json,
    ) -> Result<Processor> {
        self.processor_save(p, input, Some(id)).await
    }

    async fn processor_save(
        &self,
        p: &Principal,
        input: &Json,
        existing: Option<Uuid>,
    ) -> Result<Processor> {
        let action = if existing.is_some() {
            "processor.update"
        } else {
            "processor.create"
        };
        if !Self::require_privacy(p) {
            return Err(self.register_refused(p, action).await);
        }
        let proc = self.parse_processor(input, existing.unwrap_or_else(Uuid::now_v7))?;
        let key = format!("{PROCESSOR_PREFIX}{}", proc.id);
        let mut tx = self.inner.store.begin().await?;
        match existing {
            Some(_) => {
                if tx.get_setting(&key).await?.is_none() {
                    return Err(ServiceError::NotFound("processor"));
                }
            }
            None => {
                if tx.list_settings(PROCESSOR_PREFIX).await?.len() >= PROCESSORS_MAX {
                    return Err(ServiceError::Conflict(format!(
                        "the register holds at most {PROCESSORS_MAX} processors"
                    )));
                }
            }
        }
        let json =
            serde_json::to_string(&proc).map_err(|e| ServiceError::Internal(e.to_string()))?;
        tx.put_setting(&key, &json).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, action).detail(format!(
                "processor={} categories={} country={} transfer={}",
                proc.id,
                proc.categories.join(","),
                proc.country,
                proc.transfer.as_str()
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(proc)
    }

    /// Removes a processor from the register (privacy officer).
    pub async fn processor_delete(&self, p: &Principal, id: Uuid) -> Result<()> {
        if !Self::require_privacy(p) {
            return Err(self.register_refused(p, "processor.delete").await);
        }
        let mut tx = self.inner.store.begin().await?;
        if !tx
            .delete_setting(&format!("{PROCESSOR_PREFIX}{id}"))
            .await?
        {
            return Err(ServiceError::NotFound("processor"));
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "processor.delete").detail(format!("processor={id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Says how this process serves the network, for the record's security
    /// measures (set by `custos serve`).
    pub fn set_transport(&self, words: String) {
        *self
            .inner
            .transport
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(words);
    }

    async fn measures(&self, tx: &mut dyn Tx) -> Result<Vec<Measure>> {
        let keys = self.inner.keys.status();
        let config = &self.inner.config;
        let mfa = self.mfa_required_in(tx).await?;
        let head = tx.ledger_head().await?;
        let latest = tx.latest_checkpoint().await?;
        let last_run = tx
            .list_retention_runs(10)
            .await?
            .into_iter()
            .find(|r| r.finished_at.is_some());
        let holds = tx.legal_holds_in_force(1000).await?.len();
        let transport = self
            .inner
            .transport
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "not served over the network by this process".to_string());
        let days = |d: std::time::Duration| d.as_secs() / 86_400;
        Ok(vec![
            Measure {
                measure: "Encryption at rest",
                state: format!(
                    "AES-256-GCM with a data key per person, wrapped by master key version {} (versions held: {}); data keys older than {} days are rotated; erasure destroys the person's key (crypto-shredding)",
                    keys.active_version,
                    keys.master_versions
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    days(config.dek_max_age)
                ),
            },
            Measure {
                measure: "Search on sealed data",
                state: format!(
                    "keyed HMAC-SHA-256 blind indexes truncated to {} bits, for exact search only",
                    keys.blind_index_bits
                ),
            },
            Measure {
                measure: "Encryption in transit",
                state: transport,
            },
            Measure {
                measure: "Multi-factor authentication",
                state: if mfa {
                    "required for every staff account (TOTP or a passkey)".to_string()
                } else {
                    "optional: an administrator has turned the requirement off".to_string()
                },
            },
            Measure {
                measure: "Sessions",
                state: format!(
                    "signed out after {} minutes idle and {} hours in all; sensitive actions ask for the second factor again after {} minutes",
                    config.session_idle.as_secs() / 60,
                    config.session_absolute.as_secs() / 3600,
                    config.step_up_window.as_secs() / 60
                ),
            },
            Measure {
                measure: "Access control",
                state: "roles grant read and write per data category and record scope; every refusal is audited".to_string(),
            },
            Measure {
                measure: "Audit ledger",
                state: format!(
                    "every read and write appended to an RFC 9162 Merkle tree ({} entries); {}",
                    head.size,
                    match latest {
                        Some(c) => format!(
                            "last signed checkpoint at size {} ({})",
                            c.size,
                            words_of_ms(c.created_at)
                        ),
                        None => "no signed checkpoint yet".to_string(),
                    }
                ),
            },
            Measure {
                measure: "Retention",
                state: format!(
                    "{}; {}",
                    match last_run.and_then(|r| r.finished_at) {
                        Some(t) => format!("last purge finished {}", words_of_ms(t)),
                        None => "no purge has run yet".to_string(),
                    },
                    match holds {
                        0 => "no legal hold in force".to_string(),
                        1 => "1 legal hold in force".to_string(),
                        n => format!("{n} legal holds in force"),
                    }
                ),
            },
        ])
    }

    /// The record of processing activities (privacy officer, administrators
    /// and auditors), generated now from the inventory, the settings, the
    /// register and the running installation.
    pub async fn record_of_processing(&self, p: &Principal) -> Result<RecordOfProcessing> {
        if !Self::require_privacy(p) && p.role != custos_domain::Role::Auditor {
            let msg =
                "the record of processing is for the privacy officer, administrators and auditors"
                    .to_string();
            return Err(self.refuse(p, "processing.record", msg).await);
        }
        let mut tx = self.inner.store.begin().await?;
        let controller = Self::controller_in(tx.as_mut()).await?;
        let processors = Self::processors_in(tx.as_mut()).await?;
        let security = self.measures(tx.as_mut()).await?;
        let periods = Self::periods_in(tx.as_mut()).await?;
        let activities = processing::activities_with(&periods)
            .into_iter()
            .map(|a| {
                let categories: Vec<&'static str> = a.categories.iter().map(|c| c.name()).collect();
                ActivityRecord {
                    purpose: a.purpose.name(),
                    processors: processors
                        .iter()
                        .filter(|x| {
                            x.categories
                                .iter()
                                .any(|c| categories.contains(&c.as_str()))
                        })
                        .map(|x| x.name.clone())
                        .collect(),
                    subjects: a.subjects,
                    categories,
                    lawful_bases: a.bases,
                    recipients: a.recipients,
                    retention: a.retention,
                    sources: a.sources,
                    fields: a
                        .fields
                        .iter()
                        .map(|f| format!("{}.{}", f.entity.name(), f.name))
                        .collect(),
                }
            })
            .collect();
        let transfers = processors
            .iter()
            .filter(|x| x.third_country())
            .map(|x| TransferRecord {
                processor: x.name.clone(),
                country: x.country.clone(),
                mechanism: x.transfer,
            })
            .collect();
        self.append(tx.as_mut(), Event::new(p, "processing.record"))
            .await?;
        tx.commit().await?;
        Ok(RecordOfProcessing {
            format: RECORD_FORMAT,
            generated_at: format_timestamp_ms(self.now()),
            controller,
            activities,
            without_purpose: processing::without_purpose()
                .map(|f| format!("{}.{}", f.entity.name(), f.name))
                .collect(),
            processors,
            transfers,
            security,
        })
    }
}
