//! What the privacy use cases hand back, as types: the outcome of a closed
//! request (stored with it as JSON), the access package, the evidence pack,
//! the request figures and a person's consent history. The API serialises
//! them; the web pages read their fields.

use crate::crm::records::RecordView;
use crate::ledger::audit::AuditEntry;
use crate::privacy::dsar::RequestView;
use custos_domain::inventory::{FieldDecl, LawfulBasis, Protection, Retention, Source};
use custos_domain::{DataCategory, Entity, Value};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What a closed request did, what was kept and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestOutcome {
    /// What was done, a sentence each.
    #[serde(default)]
    pub done: Vec<String>,
    /// What was kept, and why.
    #[serde(default)]
    pub kept: Vec<KeptItem>,
    /// For a restriction, objection or opt-out: whether the flag was in force
    /// already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already_in_force: Option<bool>,
    /// About the whole answer: no personal data is held, or the request was
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a refused request, the ground and the explanation sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// For access and portability: the API path of the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// Something kept when a request was carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptItem {
    /// What was kept.
    pub what: String,
    /// Why.
    pub why: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// One of [`custos_domain::dsar::REJECT_GROUNDS`].
    pub ground: String,
    /// What the person is told.
    pub explanation: String,
}

impl RequestOutcome {
    /// Reads an outcome as stored with a request. Outcomes stored before the
    /// package had a field of its own named its path in the sentence
    /// (`the access package is ready: GET /api/…`): that path is moved to
    /// [`RequestOutcome::package`], so both read the same.
    pub(crate) fn from_stored(text: &str) -> Option<RequestOutcome> {
        let mut outcome: RequestOutcome = serde_json::from_str(text).ok()?;
        for done in &mut outcome.done {
            if let Some((sentence, path)) = done.split_once(": GET ") {
                outcome.package = Some(path.to_string());
                *done = sentence.to_string();
            }
        }
        Some(outcome)
    }

    /// The stored form.
    pub(crate) fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The access or portability package (GDPR Art. 15 and 20): every field of
/// every record about the person, and what the inventory says about each
/// kind of data in it.
#[derive(Debug, Clone, Serialize)]
pub struct DsarPackage {
    /// `custos.dsar-package/v1`.
    pub schema: &'static str,
    /// The request.
    pub request_id: Uuid,
    /// `access` or `portability`.
    pub kind: custos_domain::dsar::Kind,
    /// When the package was made (RFC 3339).
    pub generated_at: String,
    /// The person (absent when no contact holds their email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<Uuid>,
    /// Set when nothing about the person is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The records, by entity (plural name), in the order read.
    pub records: BTreeMap<&'static str, Vec<PackageRecord>>,
    /// The processing flags in force (restricted, objected, …).
    pub processing_restrictions: Vec<custos_domain::dsar::Flag>,
    /// Purposes, lawful basis, recipients, retention and source of each
    /// field that holds something.
    pub about_the_data: Vec<DataNotice>,
}

impl DsarPackage {
    /// The records of one entity (empty when there are none).
    pub fn records_of(&self, entity: Entity) -> &[PackageRecord] {
        self.records
            .get(entity.plural())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// One record in a package: each field of the inventory (credentials never)
/// with its value.
#[derive(Debug, Clone)]
pub struct PackageRecord {
    /// The fields in inventory order, with their values.
    pub fields: Vec<(&'static FieldDecl, Value)>,
}

impl Serialize for PackageRecord {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, serde_json::Value> = self
            .fields
            .iter()
            .map(|(f, v)| (f.name, v.to_json()))
            .collect();
        map.serialize(s)
    }
}

/// What the inventory says about one field of the data held.
#[derive(Debug, Clone, Serialize)]
pub struct DataNotice {
    /// The entity.
    pub entity: &'static str,
    /// The field.
    pub field: &'static str,
    /// Its data category.
    pub category: &'static str,
    /// What it is used for.
    pub purposes: Vec<&'static str>,
    /// The lawful basis of that use.
    pub lawful_basis: LawfulBasis,
    /// Who receives it.
    pub recipients: &'static [&'static str],
    /// How long it is kept.
    pub retention: Retention,
    /// Where it comes from.
    pub source: Source,
    /// `sealed` (encrypted with the person's key) or `plain`.
    pub protection: &'static str,
    /// The declaration itself, for pages.
    #[serde(skip)]
    pub decl: &'static FieldDecl,
}

impl DataNotice {
    /// The notice of a declared field.
    pub(crate) fn of(
        entity: Entity,
        f: &'static FieldDecl,
        periods: &custos_domain::retention::Periods,
    ) -> DataNotice {
        DataNotice {
            entity: entity.name(),
            field: f.name,
            category: f.category.name(),
            purposes: f.purposes.iter().map(|p| p.name()).collect(),
            lawful_basis: f.lawful_basis,
            recipients: f.recipients,
            retention: periods.retention(f),
            source: f.source,
            protection: match f.protection {
                Protection::Plain { .. } => "plain",
                _ => "sealed",
            },
            decl: f,
        }
    }

    /// Whether a field belongs in a package at all (credentials never do).
    pub(crate) fn disclosed(f: &FieldDecl) -> bool {
        f.category != DataCategory::Credentials
    }
}

/// The evidence pack of a request: its timeline from the ledger, with an
/// inclusion proof of each step against a fresh signed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct DsarEvidence {
    /// `custos.dsar-evidence/v1`.
    pub schema: &'static str,
    /// The request.
    pub request: RequestView,
    /// The steps, oldest first.
    pub timeline: Vec<EvidenceStep>,
    /// The signed checkpoint (C2SP signed note) the proofs lead to.
    pub checkpoint: String,
    /// The ledger's verifier key (C2SP note verifier).
    pub verifier_key: String,
    /// How a third party checks the pack.
    pub how_to_verify: &'static str,
}

/// One step of a request's timeline, with its proof.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceStep {
    /// The leaf index.
    pub index: u64,
    /// The audit event.
    pub event: custos_ledger::event::AuditEvent,
    /// SHA-256(0x00 ‖ leaf bytes), base64.
    pub leaf_hash: String,
    /// The RFC 9162 inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

impl EvidenceStep {
    pub(crate) fn of(entry: AuditEntry, leaf_hash: String, inclusion_proof: Vec<String>) -> Self {
        EvidenceStep {
            index: entry.index,
            event: entry.event,
            leaf_hash,
            inclusion_proof,
        }
    }
}

/// Request figures for the privacy officer's dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct DsarSummary {
    /// Requests not yet closed.
    pub open: u64,
    /// Open and due within seven days.
    pub due_soon: u64,
    /// Open and past due.
    pub overdue: u64,
    /// Requests closed, ever.
    pub closed: u64,
    /// The median days from receipt to answer of those.
    pub median_days_to_close: Option<f64>,
    /// The same for each of the last six months, oldest first.
    pub closed_by_month: Vec<MonthClosed>,
    /// How many people each processing flag is in force on (restriction,
    /// objection, opt-outs, legal hold), every flag listed.
    pub flags_in_force: std::collections::BTreeMap<custos_domain::dsar::Flag, u64>,
}

/// Requests closed in one month.
#[derive(Debug, Clone, Serialize)]
pub struct MonthClosed {
    /// `YYYY-MM`.
    pub month: String,
    /// How many were closed in it.
    pub closed: u64,
    /// Their median days to close.
    pub median_days_to_close: Option<f64>,
}

/// The state of consent to one purpose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentState {
    /// `given` or `withdrawn`; with no entry, `not_given` for a purpose that
    /// needs opt-in and `not_opted_out` for one that does not.
    pub state: String,
    /// Since when (RFC 3339), when an entry set it.
    pub since: Option<String>,
}

/// A person's consent history.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentHistory {
    /// The person.
    pub contact_id: Uuid,
    /// The state per purpose.
    pub current: BTreeMap<&'static str, ConsentState>,
    /// Every entry, newest first.
    pub entries: Vec<ConsentEntry>,
    /// The processing flags in force.
    pub processing_flags: BTreeSet<custos_domain::dsar::Flag>,
}

/// One consent-ledger entry, with its receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentEntry {
    /// The entry as the caller may see it.
    #[serde(flatten)]
    pub view: RecordView,
    /// Its receipt.
    pub receipt: ConsentReceipt,
}

impl ConsentEntry {
    /// A field's text as shown to the caller (masked where it must be).
    pub fn text(&self, field: &str) -> Option<String> {
        self.view.shown_text(field)
    }
}

/// A consent receipt with the fields of ISO/IEC 27560 that Custos holds.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentReceipt {
    /// What this is.
    pub schema: &'static str,
    /// The entry.
    pub record_id: Uuid,
    /// The person.
    pub data_subject: Option<String>,
    /// The purpose.
    pub purpose: Option<String>,
    /// `given` or `withdrawn`.
    pub state: Option<String>,
    /// When (RFC 3339).
    pub event_time: Option<String>,
    /// How it was collected.
    pub collection_method: Option<String>,
    /// The privacy notice shown.
    pub notice: NoticeRef,
    /// The legal basis.
    pub legal_basis: &'static str,
    /// Who the controller is.
    pub controller: &'static str,
}

/// The privacy notice a consent was given under.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeRef {
    /// Its version.
    pub version: Option<String>,
}

impl ConsentReceipt {
    pub(crate) fn of(v: &RecordView) -> ConsentReceipt {
        ConsentReceipt {
            schema: "ISO/IEC 27560 consent record (subset)",
            record_id: v.id(),
            data_subject: v.shown_text("contact_id"),
            purpose: v.shown_text("purpose"),
            state: v.shown_text("state"),
            event_time: v.shown_text("recorded_at"),
            collection_method: v.shown_text("method"),
            notice: NoticeRef {
                version: v.shown_text("notice_version"),
            },
            legal_basis: "GDPR Art. 6(1)(a) consent",
            controller: "the organisation running this Custos",
        }
    }

    /// The receipt as label and text rows, for pages.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            ("collection_method", o(&self.collection_method)),
            ("controller", self.controller.to_string()),
            ("data_subject", o(&self.data_subject)),
            ("event_time", o(&self.event_time)),
            ("legal_basis", self.legal_basis.to_string()),
            ("notice", format!("version: {}", o(&self.notice.version))),
            ("purpose", o(&self.purpose)),
            ("record_id", self.record_id.to_string()),
            ("schema", self.schema.to_string()),
            ("state", o(&self.state)),
        ]
    }
}

/// A consent entry just recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentRecorded {
    /// The entry.
    pub id: Uuid,
    /// The person.
    pub contact_id: Uuid,
    /// The purpose.
    pub purpose: String,
    /// `given` or `withdrawn`.
    pub state: String,
    /// How it was collected.
    pub method: String,
    /// The privacy notice version recorded.
    pub notice_version: &'static str,
    /// The state per purpose after it.
    pub current: BTreeMap<&'static str, ConsentState>,
}
