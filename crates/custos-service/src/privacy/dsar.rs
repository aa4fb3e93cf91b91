//! Data-subject requests (GDPR Art. 15–22, CCPA 1798.100–.125): opening with
//! the legal due date, identity verification, matching to a person by blind
//! index, fulfilment driven by the data inventory, and the evidence pack.

use crate::ledger::audit::Event;

use crate::privacy::outcome::{
    DataNotice, DsarEvidence, DsarPackage, DsarSummary, EvidenceStep, KeptItem, MonthClosed,
    PackageRecord, Rejection, RequestOutcome,
};
use crate::{Custos, Principal, RequestMeta, Result, ServiceError};
use custos_domain::dsar::{self, Flag, Kind, Regime, State};
use custos_domain::inventory::{self};
use custos_domain::value::format_timestamp;
use custos_domain::{Entity, Record, Role, Value};
use custos_store::{Condition, ListQuery, Sort, SqlValue, StoredRow, Tx};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who opens a request.
#[derive(Debug, Clone)]
pub enum Opener {
    /// A staff member (logged on the person's behalf), or an API client.
    Staff(Principal),
    /// The person, through the public privacy portal.
    Portal(RequestMeta),
}

/// A request as the privacy officer sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestView {
    /// Request id.
    pub id: Uuid,
    /// What is asked.
    pub kind: Kind,
    /// gdpr or ccpa.
    pub regime: String,
    /// Where the request is in its life.
    pub state: State,
    /// api, staff or portal.
    pub channel: String,
    /// The requester's email.
    pub subject_email: String,
    /// The contact it was matched to, once known.
    pub contact_id: Option<Uuid>,
    /// Contacts that match the requester's email (more than one is ambiguous).
    pub candidates: Vec<Uuid>,
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// The legal due date (RFC 3339), after any extension.
    pub due_at: String,
    /// on_track, due_soon, overdue or closed.
    pub clock: &'static str,
    /// Why it was extended, if it was.
    pub extension_reason: Option<String>,
    /// How identity was verified.
    pub verification: String,
    /// When identity was verified.
    pub verified_at: Option<String>,
    /// The operator's account of how they checked the requester's identity
    /// (operator-attested verification only).
    pub verification_reason: Option<String>,
    /// What the person wrote with the request (for rectification, the
    /// corrected fields as a JSON object).
    pub details: Option<String>,
    /// The one-time code to send the person at `subject_email` (until Custos
    /// sends mail itself), while identity is unverified and the code is live:
    /// they prove they hold that address by giving it back.
    pub verification_code: Option<String>,
    /// Wrong codes still accepted before the code is void, while a code is
    /// live (`None`: used, void, or the request is past verification).
    pub code_attempts_left: Option<u32>,
    /// What was done, what was kept and why.
    pub result: Option<RequestOutcome>,
    /// When it was closed.
    pub closed_at: Option<String>,
}

/// What opening a request returns: the view, and secrets shown once.
#[derive(Debug, Clone)]
pub struct OpenedRequest {
    /// The request.
    pub view: RequestView,
    /// The one-time code the operator sends the person (shown once).
    pub verification_code: String,
    /// The token of the person's status link (shown once).
    pub status_token: String,
}

/// What the public status page may show: no personal data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicStatus {
    /// What was asked.
    pub kind: Kind,
    /// The state.
    pub state: State,
    /// Received (RFC 3339).
    pub received_at: String,
    /// Due (RFC 3339).
    pub due_at: String,
    /// Closed (RFC 3339).
    pub closed_at: Option<String>,
    /// For a refused request, the ground (one of [`dsar::REJECT_GROUNDS`]);
    /// the explanation itself is sent to the person, not shown here.
    pub rejection_ground: Option<String>,
}

/// What an access package holds, in its order.
const PACKAGE_ENTITIES: [Entity; 5] = [
    Entity::Contact,
    Entity::Activity,
    Entity::Order,
    Entity::Consent,
    Entity::Deal,
];

fn text(r: &Record, f: &str) -> String {
    r.get(f).as_text().unwrap_or_default().to_string()
}

/// The processing flags in force on `subjects`. A name this version does
/// not know (written by a later one) is passed over.
pub(crate) async fn flags_in_force(
    tx: &mut dyn Tx,
    subjects: &[Uuid],
) -> Result<Vec<(Uuid, Flag)>> {
    Ok(tx
        .active_flags(subjects)
        .await?
        .into_iter()
        .filter_map(|(s, f)| Flag::from_name(&f).map(|f| (s, f)))
        .collect())
}

/// The stored state of a request (written only from [`State`], so another
/// name means a damaged record).
fn state_of(r: &Record) -> Result<State> {
    State::from_name(r.get("state").as_text().unwrap_or_default())
        .ok_or_else(|| ServiceError::Internal(format!("request {} has no known state", r.id)))
}

/// The stored kind of a request, like [`state_of`].
fn kind_of(r: &Record) -> Result<Kind> {
    Kind::from_name(r.get("kind").as_text().unwrap_or_default())
        .ok_or_else(|| ServiceError::Internal(format!("request {} has no known kind", r.id)))
}

fn ts(r: &Record, f: &str) -> Option<String> {
    match r.get(f) {
        Value::Timestamp(t) => Some(format_timestamp(*t)),
        _ => None,
    }
}

fn secrets_of(r: &Record) -> BTreeMap<String, String> {
    r.get("secrets")
        .as_text()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The check of a reason the person is told (an extension, a refusal):
/// 5 to 2,000 characters, after trimming.
fn told_why(field: &str, text: &str) -> Option<custos_domain::FieldError> {
    let n = text.chars().count();
    (!(5..=2000).contains(&n)).then(|| {
        custos_domain::FieldError::new(field, "say why (5 to 2,000 characters); the person is told")
    })
}

/// Where the secrets keep the code itself, sealed like the rest, so the
/// operator can pass it on (a request from the portal would otherwise have a
/// code nobody ever saw); removed once the code is used or void.
const OPERATOR_CODE: &str = "operator_code";

/// Who opened a request from a staff form (their user id), for its receipt.
const OPENED_BY: &str = "opened_by";

/// The person's status-link token, kept sealed for the receipt page.
const STATUS_TOKEN: &str = "status_token";

/// How long after opening a request its receipt page answers the one who
/// opened it.
pub const RECEIPT_WINDOW_MS: i64 = 3_600_000;

/// Wrong codes tried so far on a request.
fn code_attempts(secrets: &BTreeMap<String, String>) -> u32 {
    secrets
        .get("attempts")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

/// A fresh six-digit one-time code.
fn new_code() -> Result<String> {
    Ok(format!(
        "{:06}",
        u32::from_be_bytes(custos_crypto::random_bytes::<4>()?) % 1_000_000
    ))
}

fn secrets_value(secrets: &BTreeMap<String, String>) -> Value {
    Value::Text(serde_json::to_string(secrets).unwrap_or_default())
}

fn code_hash(code: &str) -> String {
    hex::encode(custos_crypto::sha256(
        format!("custos/dsar-code:{code}").as_bytes(),
    ))
}

/// Submissions through the public privacy portal accepted from one address
/// per hour; more are refused (`RateLimited`) until the hour has passed.
pub const PORTAL_PER_HOUR: u64 = 20;

impl Custos {
    /// The public privacy portal's flood guard: counts a submission from the
    /// request's address and refuses it past [`PORTAL_PER_HOUR`] in an hour.
    /// Only a keyed hash of the address is stored (like sign-in throttling),
    /// and the count is forgotten after a day. Call it first in every portal
    /// handler that writes.
    pub async fn portal_gate(&self, meta: &RequestMeta) -> Result<()> {
        let Some(client) = meta.client.as_deref() else {
            return Ok(());
        };
        let key = self.inner.keys.throttle_key("portal", client);
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let (n, _) = tx.auth_failures(&key, now - 3_600_000).await?;
        if n >= PORTAL_PER_HOUR {
            drop(tx);
            let ev = Event::anonymous(meta, "portal.throttled").outcome("denied");
            self.append_alone(ev).await?;
            return Err(ServiceError::RateLimited);
        }
        tx.record_auth_failure(&key, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) fn require_privacy(p: &Principal) -> bool {
        matches!(p.role, Role::Admin | Role::PrivacyOfficer)
    }

    async fn load_request(&self, tx: &mut dyn Tx, id: Uuid) -> Result<Record> {
        let row = tx
            .get_record(Entity::Request, id)
            .await?
            .ok_or(ServiceError::NotFound("request"))?;
        self.open_internal(tx, Entity::Request, &row).await
    }

    async fn save_request(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        values: BTreeMap<&'static str, Value>,
    ) -> Result<()> {
        let mut values = values;
        values.insert("updated_at", Value::Timestamp(self.now()));
        self.write_system_fields(tx, Entity::Request, id, Some(id), &values)
            .await
    }

    /// Contacts whose email matches the requester's, confirmed after opening.
    pub(crate) async fn match_contacts(&self, tx: &mut dyn Tx, email: &str) -> Result<Vec<Uuid>> {
        Ok(self
            .find_by_email(tx, Entity::Contact, email, 100)
            .await?
            .into_iter()
            .map(|(row, _)| row.id)
            .collect())
    }

    async fn view_of(&self, tx: &mut dyn Tx, r: &Record) -> Result<RequestView> {
        let email = text(r, "requester_email");
        let candidates = if r.get("contact_id").is_null() && !email.is_empty() {
            self.match_contacts(tx, &email).await?
        } else {
            Vec::new()
        };
        let state = state_of(r)?;
        let secrets = secrets_of(r);
        let code_live = state == State::Received && secrets.contains_key("code");
        // Requests opened before the code was kept for the operator have a
        // live code nobody can show again.
        let live_code = secrets.get(OPERATOR_CODE).filter(|_| code_live).cloned();
        let clock = match (state.is_closed(), r.get("due_at")) {
            (true, _) => "closed",
            (_, Value::Timestamp(due)) => match dsar::clock(*due, self.now()) {
                dsar::Clock::OnTrack => "on_track",
                dsar::Clock::DueSoon => "due_soon",
                dsar::Clock::Overdue => "overdue",
            },
            _ => "on_track",
        };
        Ok(RequestView {
            id: r.id,
            kind: kind_of(r)?,
            regime: text(r, "regime"),
            state,
            channel: text(r, "channel"),
            subject_email: email,
            contact_id: r.get("contact_id").as_uuid(),
            candidates,
            received_at: ts(r, "received_at").unwrap_or_default(),
            due_at: ts(r, "due_at").unwrap_or_default(),
            clock,
            extension_reason: r.get("extension_reason").as_text().map(str::to_string),
            verification: text(r, "verification"),
            verified_at: ts(r, "verified_at"),
            verification_reason: r.get("verification_reason").as_text().map(str::to_string),
            details: r.get("details").as_text().map(str::to_string),
            verification_code: live_code.clone(),
            code_attempts_left: code_live
                .then(|| dsar::CODE_ATTEMPTS.saturating_sub(code_attempts(&secrets))),
            result: r
                .get("result")
                .as_text()
                .and_then(RequestOutcome::from_stored),
            closed_at: ts(r, "closed_at"),
        })
    }

    /// Opens a request and computes its legal due date. `input`:
    /// `{kind, regime, subject_email, details?}`; for rectification `details`
    /// may be an object of corrected contact fields.
    pub async fn dsar_open(&self, opener: &Opener, input: &Json) -> Result<OpenedRequest> {
        match self.dsar_open_as(opener, input, None).await? {
            crate::Submission::Created(o) => Ok(o),
            crate::Submission::Replayed(id) => Err(ServiceError::Conflict(format!(
                "request {id} already exists"
            ))),
        }
    }

    /// Like [`Custos::dsar_open`], with the request's id chosen by the form
    /// it came from (its idempotency key): a form sent twice opens one
    /// request, and the second sending is told which.
    pub async fn dsar_open_once(
        &self,
        opener: &Opener,
        input: &Json,
        id: Uuid,
    ) -> Result<crate::Submission<OpenedRequest>> {
        self.dsar_open_as(opener, input, Some(id)).await
    }

    async fn dsar_open_as(
        &self,
        opener: &Opener,
        input: &Json,
        chosen: Option<Uuid>,
    ) -> Result<crate::Submission<OpenedRequest>> {
        let mut errors = Vec::new();
        let obj = input
            .as_object()
            .ok_or_else(|| ServiceError::invalid("", "the body must be a JSON object"))?;
        for k in obj.keys() {
            if !["kind", "regime", "subject_email", "details"].contains(&k.as_str()) {
                errors.push(custos_domain::FieldError::new(k, "unknown field"));
            }
        }
        let kind = Kind::from_name(obj.get("kind").and_then(Json::as_str).unwrap_or_default());
        if kind.is_none() {
            errors.push(custos_domain::FieldError::new(
                "kind",
                format!("must be one of: {}", dsar::KINDS.join(", ")),
            ));
        }
        let regime_name = obj
            .get("regime")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let regime = Regime::from_name(&regime_name);
        if regime.is_none() {
            errors.push(custos_domain::FieldError::new(
                "regime",
                "must be gdpr or ccpa",
            ));
        }
        let email = match obj.get("subject_email") {
            Some(v) => match custos_domain::validate::parse_value(
                custos_domain::FieldKind::Email,
                v,
                &Default::default(),
            ) {
                Ok(Value::Text(e)) => e,
                Ok(_) | Err(_) => {
                    errors.push(custos_domain::FieldError::new(
                        "subject_email",
                        "must be an email address such as name@example.com",
                    ));
                    String::new()
                }
            },
            None => {
                errors.push(custos_domain::FieldError::new(
                    "subject_email",
                    "is required",
                ));
                String::new()
            }
        };
        let details = match obj.get("details") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if s.chars().count() <= 10_000 => Some(s.clone()),
            Some(Json::Object(o)) if kind == Some(Kind::Rectification) => {
                // Validate the corrections now, so a bad request fails at once.
                if let Err(errs) = custos_domain::validate::parse_input(
                    Entity::Contact,
                    &Json::Object(o.clone()),
                    custos_domain::validate::Mode::Patch,
                    &Default::default(),
                ) {
                    for e in errs {
                        errors.push(custos_domain::FieldError::new(
                            format!("details.{}", e.field),
                            e.message,
                        ));
                    }
                }
                Some(Json::Object(o.clone()).to_string())
            }
            Some(_) => {
                errors.push(custos_domain::FieldError::new(
                    "details",
                    "must be text (at most 10,000 characters), or for rectification an object of corrected fields",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let (Some(kind), Some(regime)) = (kind, regime) else {
            return Err(ServiceError::invalid("kind", "must be a kind of request"));
        };
        let (channel, event) = match opener {
            Opener::Staff(p) => {
                if !custos_domain::policy::allows(
                    p.role,
                    custos_domain::Operation::Create,
                    Entity::Request,
                ) {
                    let msg = format!("the {} role may not open requests", p.role_name);
                    return Err(self.refuse(p, "request.create", msg).await);
                }
                let channel = if matches!(p.via, crate::Via::ApiToken(_)) {
                    "api"
                } else {
                    "staff"
                };
                (channel, Event::new(p, "request.create"))
            }
            Opener::Portal(meta) => ("portal", Event::anonymous(meta, "request.create")),
        };
        let id = chosen.unwrap_or_else(Uuid::now_v7);
        let mut tx = self.inner.store.begin().await?;
        if chosen.is_some() && tx.get_record(Entity::Request, id).await?.is_some() {
            return Ok(crate::Submission::Replayed(id));
        }
        let now = self.now();
        let code = new_code()?;
        let token = custos_crypto::new_token("cds_")?.0;
        let mut secrets = BTreeMap::new();
        secrets.insert("code".to_string(), code_hash(&code));
        secrets.insert(OPERATOR_CODE.to_string(), code.clone());
        secrets.insert(
            "status".to_string(),
            hex::encode(custos_crypto::hash_token(
                secrecy::ExposeSecret::expose_secret(&token),
            )),
        );
        if let Opener::Staff(p) = opener {
            // For the receipt page the opener is sent to (and may reload)
            // after the form: see `dsar_receipt`.
            secrets.insert(OPENED_BY.into(), p.user_id.to_string());
            secrets.insert(
                STATUS_TOKEN.into(),
                secrecy::ExposeSecret::expose_secret(&token).to_string(),
            );
        }
        let mut values: BTreeMap<&'static str, Value> = BTreeMap::new();
        values.insert("kind", Value::Text(kind.as_str().into()));
        values.insert("regime", Value::Text(regime_name));
        values.insert("state", Value::Text(State::Received.as_str().into()));
        values.insert("channel", Value::Text(channel.into()));
        values.insert("requester_email", Value::Text(email.clone()));
        values.insert("details", details.map(Value::Text).unwrap_or(Value::Null));
        values.insert("received_at", Value::Timestamp(now));
        values.insert("due_at", Value::Timestamp(regime.due(now)));
        values.insert("verification", Value::Text("none".into()));
        values.insert("secrets", secrets_value(&secrets));
        values.insert("created_at", Value::Timestamp(now));
        values.insert("updated_at", Value::Timestamp(now));
        let key = self
            .inner
            .keys
            .create_subject_key(tx.as_mut(), id, Entity::Request, self.now_ms())
            .await?;
        let mut columns = Vec::new();
        self.seal_values(
            tx.as_mut(),
            Entity::Request,
            id,
            Some(id),
            Some(&key),
            &values,
            &mut columns,
        )
        .await?;
        tx.insert_record(
            Entity::Request,
            &StoredRow {
                id,
                subject_id: Some(id),
                columns,
            },
        )
        .await?;
        let ev = event
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail(format!("kind={kind} channel={channel}"));
        self.append(tx.as_mut(), ev).await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        Ok(crate::Submission::Created(OpenedRequest {
            view,
            verification_code: code,
            status_token: secrecy::ExposeSecret::expose_secret(&token).to_string(),
        }))
    }

    /// What the staff member who opened a request saw when they opened it
    /// (its one-time code and the person's status link), for the page the
    /// form redirects to: so a reload shows the page again rather than
    /// sending the form again. Only for the one who opened it, within
    /// [`RECEIPT_WINDOW_MS`] of opening, and while identity is unverified.
    pub async fn dsar_receipt(&self, p: &Principal, id: Uuid) -> Result<OpenedRequest> {
        let mut tx = self.inner.store.begin().await?;
        let not_found = ServiceError::NotFound("request");
        let rec = match self.load_request(tx.as_mut(), id).await {
            Ok(r) => r,
            Err(ServiceError::NotFound(_)) => return Err(not_found),
            Err(e) => return Err(e),
        };
        let secrets = secrets_of(&rec);
        let opened_at = match rec.get("received_at") {
            Value::Timestamp(t) => custos_domain::value::to_unix_ms(*t),
            _ => 0,
        };
        let mine = secrets.get(OPENED_BY).map(String::as_str) == Some(&p.user_id.to_string())
            && p.user_id != Uuid::nil();
        let (Some(code), Some(token)) = (secrets.get(OPERATOR_CODE), secrets.get(STATUS_TOKEN))
        else {
            return Err(not_found);
        };
        if !mine
            || self.now_ms() - opened_at > RECEIPT_WINDOW_MS
            || state_of(&rec)? != State::Received
        {
            return Err(not_found);
        }
        let (code, token) = (code.clone(), token.clone());
        let view = self.view_of(tx.as_mut(), &rec).await?;
        let ev = Event::new(p, "request.read")
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail("receipt");
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(OpenedRequest {
            view,
            verification_code: code,
            status_token: token,
        })
    }

    async fn privacy_tx(&self, p: &Principal, action: &str) -> Result<Box<dyn Tx>> {
        if !Self::require_privacy(p) {
            let msg = "data-subject requests are handled by the privacy officer".to_string();
            return Err(self.refuse(p, action, msg).await);
        }
        Ok(self.inner.store.begin().await?)
    }

    /// One request.
    pub async fn dsar_get(&self, p: &Principal, id: Uuid) -> Result<RequestView> {
        let mut tx = self.privacy_tx(p, "request.read").await?;
        let rec = match self.load_request(tx.as_mut(), id).await {
            Err(ServiceError::NotFound(_)) => {
                return Err(self
                    .not_found_in(tx, p, Entity::Request, "request.read", id)
                    .await);
            }
            other => other?,
        };
        let view = self.view_of(tx.as_mut(), &rec).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "request.read")
                .subject(Some(id))
                .record(Entity::Request, id),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// The request queue, soonest due first, optionally of one state.
    pub async fn dsar_list(
        &self,
        p: &Principal,
        state: Option<State>,
        limit: u32,
    ) -> Result<Vec<RequestView>> {
        let mut tx = self.privacy_tx(p, "request.list").await?;
        let mut conditions = Vec::new();
        if let Some(s) = state {
            conditions.push(Condition::Eq("state", SqlValue::Text(s.as_str().into())));
        }
        let q = ListQuery {
            entity: Entity::Request,
            conditions,
            sort: Sort {
                field: "due_at",
                descending: false,
            },
            after: None,
            limit: limit.clamp(1, 500),
        };
        let mut out = Vec::new();
        for row in tx.list_records(&q).await? {
            let rec = self
                .open_internal(tx.as_mut(), Entity::Request, &row)
                .await?;
            out.push(self.view_of(tx.as_mut(), &rec).await?);
        }
        let ev = Event::new(p, "request.list").detail(format!("count={}", out.len()));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Records identity verification: `operator_attested` with a reason, or
    /// `code` with the one-time code the person received. If exactly one
    /// contact matches the requester's email, the request is matched to it.
    pub async fn dsar_verify(&self, p: &Principal, id: Uuid, input: &Json) -> Result<RequestView> {
        let method = input
            .get("method")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let reason = input
            .get("reason")
            .and_then(Json::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        let code = input
            .get("code")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(k) = input.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["method", "reason", "code"].contains(&k.as_str()))
        }) {
            return Err(ServiceError::invalid(k, "unknown field"));
        }
        match method.as_str() {
            "operator_attested" if reason.chars().count() < 5 => {
                return Err(ServiceError::invalid(
                    "reason",
                    "say how you checked the person's identity (at least 5 characters)",
                ));
            }
            "operator_attested" if reason.chars().count() > 2000 => {
                return Err(ServiceError::invalid(
                    "reason",
                    "must be at most 2,000 characters",
                ));
            }
            "code" if code.is_empty() => return Err(ServiceError::invalid("code", "is required")),
            "operator_attested" | "code" => {}
            _ => {
                return Err(ServiceError::invalid(
                    "method",
                    "must be operator_attested or code",
                ));
            }
        }
        let mut tx = self.privacy_tx(p, "request.verify").await?;
        let rec = match self.load_request(tx.as_mut(), id).await {
            Err(ServiceError::NotFound(_)) => {
                return Err(self
                    .not_found_in(tx, p, Entity::Request, "request.verify", id)
                    .await);
            }
            other => other?,
        };
        let state = state_of(&rec)?;
        if state != State::Received {
            return Err(ServiceError::Conflict(format!(
                "the request is already {state}"
            )));
        }
        let mut secrets = secrets_of(&rec);
        let mut values = BTreeMap::new();
        if method == "code" {
            let failed = |detail: String| {
                Event::new(p, "request.verify")
                    .subject(Some(id))
                    .record(Entity::Request, id)
                    .outcome("failed")
                    .detail(detail)
            };
            let Some(expected) = secrets.get("code").cloned() else {
                drop(tx);
                self.append_alone(failed("reason=code_void".into())).await?;
                return Err(ServiceError::invalid(
                    "code",
                    format!(
                        "this request's code is void after {} wrong codes: issue a new code and send it to the person",
                        dsar::CODE_ATTEMPTS
                    ),
                ));
            };
            if !custos_crypto::constant_time_eq(
                expected.as_bytes(),
                code_hash(code.trim()).as_bytes(),
            ) {
                // Counted in the request itself, in the same transaction as
                // the attempt's audit leaf, so no guess goes uncounted.
                let attempts = code_attempts(&secrets) + 1;
                secrets.insert("attempts".into(), attempts.to_string());
                let void = attempts >= dsar::CODE_ATTEMPTS;
                if void {
                    secrets.remove("code");
                    secrets.remove(OPERATOR_CODE);
                }
                values.insert("secrets", secrets_value(&secrets));
                self.save_request(tx.as_mut(), id, values).await?;
                let ev = failed(format!("reason=wrong_code attempts={attempts}"));
                self.append(tx.as_mut(), ev).await?;
                tx.commit().await?;
                let left = dsar::CODE_ATTEMPTS.saturating_sub(attempts);
                let message = if void {
                    format!(
                        "is not the code sent for this request; after {} wrong codes the code is void: issue a new code and send it to the person",
                        dsar::CODE_ATTEMPTS
                    )
                } else {
                    format!(
                        "is not the code sent for this request ({left} {} left before the code is void)",
                        if left == 1 { "try" } else { "tries" }
                    )
                };
                return Err(ServiceError::invalid("code", message));
            }
        }
        // Used (or passed over for the operator's word): the code is spent.
        secrets.remove("code");
        secrets.remove(OPERATOR_CODE);
        values.insert("secrets", secrets_value(&secrets));
        values.insert("state", Value::Text(State::Verified.as_str().into()));
        values.insert("verification", Value::Text(method.clone()));
        values.insert("verified_at", Value::Timestamp(self.now()));
        if method == "operator_attested" {
            values.insert("verification_reason", Value::Text(reason));
        }
        let matches = self
            .match_contacts(tx.as_mut(), &text(&rec, "requester_email"))
            .await?;
        if matches.len() == 1 {
            values.insert("contact_id", Value::Uuid(matches[0]));
        }
        self.save_request(tx.as_mut(), id, values).await?;
        let ev = Event::new(p, "request.verify")
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail(format!("method={method} matches={}", matches.len()));
        self.append(tx.as_mut(), ev).await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Issues a new one-time code for a request whose identity is not yet
    /// verified (the old one was lost, or is void after too many wrong
    /// codes): the old code stops working and the count of wrong codes
    /// starts again. Returns the request (its `verification_code` is the new
    /// code, to send the person).
    pub async fn dsar_new_code(&self, p: &Principal, id: Uuid) -> Result<RequestView> {
        let mut tx = self.privacy_tx(p, "request.code").await?;
        let rec = match self.load_request(tx.as_mut(), id).await {
            Err(ServiceError::NotFound(_)) => {
                return Err(self
                    .not_found_in(tx, p, Entity::Request, "request.code", id)
                    .await);
            }
            other => other?,
        };
        let state = state_of(&rec)?;
        if state != State::Received {
            return Err(ServiceError::Conflict(format!(
                "the request is already {state}: a code is only needed to verify identity"
            )));
        }
        let code = new_code()?;
        let mut secrets = secrets_of(&rec);
        secrets.insert("code".into(), code_hash(&code));
        secrets.insert(OPERATOR_CODE.into(), code);
        secrets.remove("attempts");
        let mut values = BTreeMap::new();
        values.insert("secrets", secrets_value(&secrets));
        self.save_request(tx.as_mut(), id, values).await?;
        let ev = Event::new(p, "request.code")
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail("issued");
        self.append(tx.as_mut(), ev).await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Resolves an ambiguous match: the operator names the contact.
    pub async fn dsar_match(&self, p: &Principal, id: Uuid, contact: Uuid) -> Result<RequestView> {
        let mut tx = self.privacy_tx(p, "request.match").await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        if state_of(&rec)?.is_closed() {
            return Err(ServiceError::Conflict("the request is closed".into()));
        }
        let candidates = self
            .match_contacts(tx.as_mut(), &text(&rec, "requester_email"))
            .await?;
        if !candidates.contains(&contact) {
            return Err(ServiceError::invalid(
                "contact_id",
                "is not a contact with the requester's email",
            ));
        }
        let mut values = BTreeMap::new();
        values.insert("contact_id", Value::Uuid(contact));
        let ev = Event::new(p, "request.match")
            .subject(Some(id))
            .record(Entity::Request, id);
        self.save_step(tx, id, values, ev).await
    }

    /// Saves a step's changes to a request and its audit leaf, commits, and
    /// answers with the request as it now stands.
    async fn save_step(
        &self,
        mut tx: Box<dyn Tx>,
        id: Uuid,
        values: BTreeMap<&'static str, Value>,
        ev: Event,
    ) -> Result<RequestView> {
        self.save_request(tx.as_mut(), id, values).await?;
        self.append(tx.as_mut(), ev).await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Extends the due date once, as the law allows, with a recorded reason.
    pub async fn dsar_extend(&self, p: &Principal, id: Uuid, reason: &str) -> Result<RequestView> {
        let reason = reason.trim();
        if let Some(e) = told_why("reason", reason) {
            return Err(ServiceError::Invalid(vec![e]));
        }
        let mut tx = self.privacy_tx(p, "request.extend").await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        if !rec.get("extension_reason").is_null() {
            return Err(ServiceError::Conflict(
                "the due date was already extended once; the law allows no more".into(),
            ));
        }
        if state_of(&rec)?.is_closed() {
            return Err(ServiceError::Conflict("the request is closed".into()));
        }
        let regime = Regime::from_name(&text(&rec, "regime"))
            .ok_or_else(|| ServiceError::Internal("request regime".into()))?;
        let Value::Timestamp(due) = rec.get("due_at") else {
            return Err(ServiceError::Internal("request without a due date".into()));
        };
        let mut values = BTreeMap::new();
        values.insert("due_at", Value::Timestamp(regime.extended(*due)));
        values.insert("extension_reason", Value::Text(reason.to_string()));
        let ev = Event::new(p, "request.extend")
            .subject(Some(id))
            .record(Entity::Request, id);
        self.save_step(tx, id, values, ev).await
    }

    /// Refuses a request that is still open, on one of the grounds the law
    /// gives ([`dsar::REJECT_GROUNDS`]), with the explanation the person is
    /// sent. The request is closed; nothing about the person is changed.
    pub async fn dsar_reject(
        &self,
        p: &Principal,
        id: Uuid,
        ground: &str,
        explanation: &str,
    ) -> Result<RequestView> {
        let explanation = explanation.trim();
        let mut errors = Vec::new();
        if dsar::reject_ground(ground).is_none() {
            let names: Vec<&str> = dsar::REJECT_GROUNDS.iter().map(|(g, _)| *g).collect();
            errors.push(custos_domain::FieldError::new(
                "ground",
                format!("must be one of {}", names.join(", ")),
            ));
        }
        errors.extend(told_why("explanation", explanation));
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let mut tx = self.privacy_tx(p, "request.reject").await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        if state_of(&rec)?.is_closed() {
            return Err(ServiceError::Conflict("the request is closed".into()));
        }
        let result = RequestOutcome {
            note: Some("the request was refused".into()),
            rejected: Some(Rejection {
                ground: ground.to_string(),
                explanation: explanation.to_string(),
            }),
            ..Default::default()
        };
        let mut values = BTreeMap::new();
        values.insert("state", Value::Text(State::Rejected.as_str().into()));
        values.insert("closed_at", Value::Timestamp(self.now()));
        values.insert("result", Value::Text(result.to_stored()));
        let ev = Event::new(p, "request.reject")
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail(format!("ground={ground}"));
        self.save_step(tx, id, values, ev).await
    }

    /// Carries out a verified request, driven by the inventory; the result says
    /// what was done, what was kept and why.
    pub async fn dsar_fulfil(&self, p: &Principal, id: Uuid) -> Result<RequestView> {
        let mut tx = self.privacy_tx(p, "request.fulfil").await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        match state_of(&rec)? {
            State::Verified => {}
            State::Received => {
                return Err(ServiceError::Conflict(
                    "verify the requester's identity first".into(),
                ));
            }
            s @ (State::Fulfilled | State::Rejected) => {
                return Err(ServiceError::Conflict(format!(
                    "the request is already {s}"
                )));
            }
        }
        let kind = kind_of(&rec)?;
        let missing = match kind {
            Kind::Erasure if !p.can_erase_personal() => Some("erase"),
            k if k.has_package() && !p.can_export_personal() => Some("export"),
            _ => None,
        };
        if let Some(what) = missing {
            let msg = format!(
                "the {} role may not {what} every personal category, which this request needs",
                p.role_name
            );
            return Err(self.refuse_in(tx, p, "request.fulfil", msg).await);
        }
        // Step-up (issue 4): erasing is sensitive; a session needs a recent
        // second-factor check. API tokens and the CLI are exempt.
        if kind == Kind::Erasure && !self.step_up_fresh(p) {
            drop(tx);
            return Err(self.step_up_refused(p, "request.fulfil").await);
        }
        let contact = rec.get("contact_id").as_uuid();
        let result = match contact {
            None => {
                let n = self
                    .match_contacts(tx.as_mut(), &text(&rec, "requester_email"))
                    .await?
                    .len();
                if n > 1 {
                    return Err(ServiceError::Conflict(format!(
                        "{n} contacts share the requester's email: choose one first (POST /api/v1/dsar/{id}/match)"
                    )));
                }
                RequestOutcome {
                    note: Some("no personal data about this person is held".into()),
                    ..Default::default()
                }
            }
            Some(c) => self.carry_out(tx.as_mut(), p, id, kind, c, &rec).await?,
        };
        let mut values = BTreeMap::new();
        values.insert("state", Value::Text(State::Fulfilled.as_str().into()));
        values.insert("closed_at", Value::Timestamp(self.now()));
        values.insert("result", Value::Text(result.to_stored()));
        self.save_request(tx.as_mut(), id, values).await?;
        let ev = Event::new(p, "request.fulfil")
            .subject(Some(id))
            .record(Entity::Request, id)
            .detail(format!("kind={kind}"));
        self.append(tx.as_mut(), ev).await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        if kind == Kind::Erasure
            && let Some(c) = contact
        {
            self.inner.keys.forget(&c);
            self.journal_erasure(c);
        }
        Ok(view)
    }

    async fn carry_out(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        request: Uuid,
        kind: Kind,
        contact: Uuid,
        rec: &Record,
    ) -> Result<RequestOutcome> {
        match kind {
            Kind::Access | Kind::Portability => Ok(RequestOutcome {
                done: vec![format!("the {kind} package is ready")],
                package: Some(format!("/api/v1/dsar/{request}/package")),
                ..Default::default()
            }),
            Kind::Erasure => {
                let flags = flags_in_force(tx, &[contact]).await?;
                if flags.iter().any(|(_, f)| *f == Flag::LegalHold) {
                    return Ok(RequestOutcome {
                        kept: vec![KeptItem {
                            what: "all records".into(),
                            why: "a legal hold is in force; erasure follows when it is lifted"
                                .into(),
                        }],
                        ..Default::default()
                    });
                }
                let report = self.shred_in(tx, contact).await?;
                let ev = Event::new(p, "subject.erase")
                    .subject(Some(contact))
                    .detail(format!("request={request}"));
                self.append(tx, ev).await?;
                let done: Vec<String> = report
                    .shredded
                    .iter()
                    .map(|(e, n)| format!("{n} {e}: personal fields destroyed (crypto-shredded)"))
                    .collect();
                let kept = report
                    .kept
                    .iter()
                    .map(|(e, n, why)| KeptItem {
                        what: format!("{n} {e}, anonymised (amounts and dates only)"),
                        why: why.to_string(),
                    })
                    .collect();
                Ok(RequestOutcome {
                    done,
                    kept,
                    ..Default::default()
                })
            }
            Kind::Rectification => {
                let changes: Json = rec
                    .get("details")
                    .as_text()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Json::Null);
                if !changes.is_object() {
                    return Err(ServiceError::Conflict(
                        "a rectification request needs the corrected fields as details".into(),
                    ));
                }
                let fields: Vec<String> = changes
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                let vctx = Self::validation_context(tx, Entity::Contact).await?;
                let values = custos_domain::validate::parse_input(
                    Entity::Contact,
                    &changes,
                    custos_domain::validate::Mode::Patch,
                    &vctx,
                )
                .map_err(ServiceError::Invalid)?;
                let mut all = values;
                all.insert("updated_at", Value::Timestamp(self.now()));
                self.write_system_fields(tx, Entity::Contact, contact, Some(contact), &all)
                    .await?;
                let ev = Event::new(p, "contact.update")
                    .subject(Some(contact))
                    .record(Entity::Contact, contact)
                    .detail(format!("fields={} request={request}", fields.join(",")));
                self.append(tx, ev).await?;
                Ok(RequestOutcome {
                    done: vec![format!("corrected: {}", fields.join(", "))],
                    ..Default::default()
                })
            }
            Kind::Restriction | Kind::Objection | Kind::OptOutSale | Kind::LimitSensitive => {
                let flag = kind.flag().ok_or_else(|| {
                    ServiceError::Internal(format!("request kind {kind} sets no flag"))
                })?;
                let new = tx
                    .set_flag(contact, flag.as_str(), Some(request), self.now_ms())
                    .await?;
                let ev = Event::new(p, "subject.flag")
                    .subject(Some(contact))
                    .detail(format!("flag={flag} request={request}"));
                self.append(tx, ev).await?;
                if kind == Kind::OptOutSale {
                    self.consent_in(
                        tx,
                        Some(p),
                        contact,
                        "sale_share",
                        "withdrawn",
                        "dsar",
                        &format!("request {request}"),
                    )
                    .await?;
                }
                let effect = match flag {
                    Flag::Restricted => {
                        "only the privacy officer may process this person's records; they are left out of lists, searches and exports until the restriction is lifted"
                    }
                    Flag::Objected => "left out of direct marketing and profiling from now on",
                    Flag::OptedOutSale => "left out of every sale or sharing export from now on",
                    Flag::LimitSensitive | Flag::LegalHold => {
                        "sensitive personal information is used only as needed for the service asked for"
                    }
                };
                Ok(RequestOutcome {
                    done: vec![effect.to_string()],
                    already_in_force: Some(!new),
                    ..Default::default()
                })
            }
        }
    }

    /// Lifts a restriction (or another flag) set by a request.
    pub async fn dsar_lift(&self, p: &Principal, id: Uuid) -> Result<RequestView> {
        let mut tx = self.privacy_tx(p, "request.lift").await?;
        let rec = self.load_request(tx.as_mut(), id).await?;
        let contact = rec
            .get("contact_id")
            .as_uuid()
            .ok_or_else(|| ServiceError::Conflict("the request names no contact".into()))?;
        let flag = match kind_of(&rec)? {
            Kind::Restriction => Flag::Restricted,
            _ => {
                return Err(ServiceError::Conflict(
                    "only a restriction is lifted this way".into(),
                ));
            }
        };
        if !tx.lift_flag(contact, flag.as_str(), self.now_ms()).await? {
            return Err(ServiceError::Conflict("no restriction is in force".into()));
        }
        let ev = Event::new(p, "subject.unflag")
            .subject(Some(contact))
            .detail(format!("flag={flag} request={id}"));
        self.append(tx.as_mut(), ev).await?;
        let view = self.view_of(tx.as_mut(), &rec).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// The access or portability package: every field of every record about
    /// the person, with what the inventory says about each category (Art. 15).
    pub async fn dsar_package(&self, p: &Principal, id: Uuid) -> Result<DsarPackage> {
        let mut tx = self.privacy_tx(p, "request.package").await?;
        if !p.can_export_personal() {
            let msg = format!(
                "the {} role may not export every personal category",
                p.role_name
            );
            return Err(self.refuse_in(tx, p, "request.package", msg).await);
        }
        let rec = self.load_request(tx.as_mut(), id).await?;
        let kind = kind_of(&rec)?;
        if !kind.has_package() {
            return Err(ServiceError::Conflict(
                "only access and portability requests have a package".into(),
            ));
        }
        if state_of(&rec)? != State::Fulfilled {
            return Err(ServiceError::Conflict(
                "the package is available once the request is fulfilled".into(),
            ));
        }
        let mut package = DsarPackage {
            schema: "custos.dsar-package/v1",
            request_id: id,
            kind,
            generated_at: format_timestamp(self.now()),
            subject_id: rec.get("contact_id").as_uuid(),
            note: None,
            records: BTreeMap::new(),
            processing_restrictions: Vec::new(),
            about_the_data: Vec::new(),
        };
        let Some(contact) = package.subject_id else {
            package.note = Some("no personal data about this person is held".into());
            return Ok(package);
        };
        let mut categories = std::collections::BTreeSet::new();
        for entity in PACKAGE_ENTITIES {
            let cond = if entity == Entity::Contact {
                Condition::Eq("id", SqlValue::Text(contact.to_string()))
            } else {
                Condition::Eq("contact_id", SqlValue::Text(contact.to_string()))
            };
            let mut items = Vec::new();
            // The rows as listed: no second read per record.
            for row in self.rows_where(tx.as_mut(), entity, cond).await? {
                let rid = row.id;
                let record = match self.open_internal(tx.as_mut(), entity, &row).await {
                    Ok(r) => r,
                    Err(ServiceError::Gone(_)) => continue,
                    Err(e) => return Err(e),
                };
                let mut fields = Vec::new();
                let mut disclosed = std::collections::BTreeSet::new();
                for f in inventory::fields(entity) {
                    if !DataNotice::disclosed(f) {
                        continue;
                    }
                    let v = record.get(f.name);
                    if !v.is_null() {
                        categories.insert(f.category);
                        disclosed.insert(f.category);
                    }
                    fields.push((f, v.clone()));
                }
                items.push(PackageRecord { fields });
                let ev = Event::new(p, format!("{}.export", entity.name()))
                    .subject(Some(contact))
                    .record(entity, rid)
                    .categories(disclosed)
                    .detail(format!("request={id}"));
                self.append(tx.as_mut(), ev).await?;
            }
            if !items.is_empty() {
                package.records.insert(entity.plural(), items);
            }
        }
        let periods = Self::periods_in(tx.as_mut()).await?;
        for entity in PACKAGE_ENTITIES {
            for f in inventory::fields(entity) {
                if categories.contains(&f.category) && DataNotice::disclosed(f) {
                    package
                        .about_the_data
                        .push(DataNotice::of(entity, f, &periods));
                }
            }
        }
        package.processing_restrictions = flags_in_force(tx.as_mut(), &[contact])
            .await?
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        tx.commit().await?;
        Ok(package)
    }

    /// The evidence pack: the request, its timeline from the ledger with an
    /// inclusion proof of each step against a fresh signed checkpoint.
    pub async fn dsar_evidence(&self, p: &Principal, id: Uuid) -> Result<DsarEvidence> {
        let view = self.dsar_get(p, id).await?;
        let checkpoint = self.ledger_checkpoint().await?;
        let cp_size: u64 = checkpoint
            .lines()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut filter = custos_store::EventFilter {
            subject_id: Some(id.to_string()),
            ..Default::default()
        };
        filter.before_index = Some(cp_size);
        let mut steps = Vec::new();
        let (mut events, _) = self
            .audit_events(p, &crate::EventQuery { filter, limit: 500 })
            .await?;
        if let Some(c) = view.contact_id {
            let f2 = custos_store::EventFilter {
                subject_id: Some(c.to_string()),
                before_index: Some(cp_size),
                ..Default::default()
            };
            let (more, _) = self
                .audit_events(
                    p,
                    &crate::EventQuery {
                        filter: f2,
                        limit: 500,
                    },
                )
                .await?;
            events.extend(more.into_iter().filter(|e| {
                e.event
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains(&id.to_string()))
            }));
        }
        events.sort_by_key(|e| e.index);
        use base64::Engine;
        let b64 = |h: &[u8]| base64::engine::general_purpose::STANDARD.encode(h);
        for e in events {
            let proof = self.inclusion_proof(p, e.index, cp_size).await?;
            steps.push(EvidenceStep::of(
                e,
                b64(&proof.leaf_hash),
                proof.proof.iter().map(|h| b64(h)).collect(),
            ));
        }
        Ok(DsarEvidence {
            schema: "custos.dsar-evidence/v1",
            request: view,
            timeline: steps,
            checkpoint,
            verifier_key: self.ledger_verifier_key()?,
            how_to_verify: "each leaf hash is SHA-256(0x00 || leaf bytes); verify each inclusion proof (RFC 9162 2.1.3.2) against the root in the checkpoint, and the checkpoint's Ed25519 signature against verifier_key (C2SP signed note)",
        })
    }

    /// The public status of a request, for the person's status link.
    pub async fn dsar_public_status(&self, id: Uuid, token: &str) -> Result<PublicStatus> {
        let mut tx = self.inner.store.begin().await?;
        let rec = self
            .load_request(tx.as_mut(), id)
            .await
            .map_err(|_| ServiceError::NotFound("request"))?;
        let expected = secrets_of(&rec).get("status").cloned().unwrap_or_default();
        if !custos_crypto::constant_time_eq(
            expected.as_bytes(),
            hex::encode(custos_crypto::hash_token(token)).as_bytes(),
        ) {
            return Err(ServiceError::NotFound("request"));
        }
        Ok(PublicStatus {
            kind: kind_of(&rec)?,
            state: state_of(&rec)?,
            received_at: ts(&rec, "received_at").unwrap_or_default(),
            due_at: ts(&rec, "due_at").unwrap_or_default(),
            closed_at: ts(&rec, "closed_at"),
            rejection_ground: rec
                .get("result")
                .as_text()
                .and_then(RequestOutcome::from_stored)
                .and_then(|r| r.rejected)
                .map(|r| r.ground),
        })
    }

    /// Appends a consent-ledger entry inside a transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn consent_in(
        &self,
        tx: &mut dyn Tx,
        by: Option<&Principal>,
        contact: Uuid,
        purpose: &str,
        state: &str,
        method: &str,
        evidence: &str,
    ) -> Result<Uuid> {
        let id = Uuid::now_v7();
        let now = self.now();
        let mut values: BTreeMap<&'static str, Value> = BTreeMap::new();
        values.insert("contact_id", Value::Uuid(contact));
        values.insert("purpose", Value::Text(purpose.to_string()));
        values.insert("state", Value::Text(state.to_string()));
        values.insert("method", Value::Text(method.to_string()));
        values.insert(
            "notice_version",
            Value::Text(crate::privacy::consent::NOTICE_VERSION.to_string()),
        );
        values.insert(
            "recorded_by",
            by.filter(|p| p.user_id != Uuid::nil())
                .map(|p| Value::Uuid(p.user_id))
                .unwrap_or(Value::Null),
        );
        values.insert("recorded_at", Value::Timestamp(now));
        values.insert(
            "evidence",
            if evidence.is_empty() {
                Value::Null
            } else {
                Value::Text(evidence.to_string())
            },
        );
        values.insert("created_at", Value::Timestamp(now));
        values.insert("updated_at", Value::Timestamp(now));
        let key = self
            .inner
            .keys
            .write_key(tx, contact, "contact", self.now_ms())
            .await?;
        let mut columns = Vec::new();
        self.seal_values(
            tx,
            Entity::Consent,
            id,
            Some(contact),
            Some(&key),
            &values,
            &mut columns,
        )
        .await?;
        tx.insert_record(
            Entity::Consent,
            &StoredRow {
                id,
                subject_id: Some(contact),
                columns,
            },
        )
        .await?;
        let ev = match by {
            Some(p) => Event::new(p, "consent.create"),
            None => Event::anonymous(&RequestMeta::default(), "consent.create"),
        };
        self.append(
            tx,
            ev.subject(Some(contact))
                .record(Entity::Consent, id)
                .detail(format!("purpose={purpose} method={method}")),
        )
        .await?;
        Ok(id)
    }

    /// The request queue, soonest due first, one page at a time (keyset
    /// pagination on the due date). `filter` is `all`, `open`, `due_soon`,
    /// `overdue`, or a state (`received`, `verified`, `fulfilled`,
    /// `rejected`). Returns the page and how many requests the filter holds.
    pub async fn dsar_queue(
        &self,
        p: &Principal,
        filter: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(crate::Page<RequestView>, u64)> {
        let conditions = self.queue_conditions(filter)?;
        let mut pairs = vec![
            ("sort".to_string(), "due_at".to_string()),
            ("limit".to_string(), limit.clamp(1, 500).to_string()),
        ];
        if let Some(c) = cursor {
            pairs.push(("cursor".to_string(), c.to_string()));
        }
        let params = crate::ListParams::parse(Entity::Request, &pairs)?;
        let mut tx = self.privacy_tx(p, "request.list").await?;
        let q = ListQuery {
            entity: Entity::Request,
            conditions: conditions.clone(),
            sort: params.sort,
            after: params.after.clone(),
            limit: params.limit + 1,
        };
        let rows = tx.list_records(&q).await?;
        let more = rows.len() as u32 > params.limit;
        let mut items = Vec::new();
        let mut next_cursor = None;
        for row in rows.iter().take(params.limit as usize) {
            let rec = self
                .open_internal(tx.as_mut(), Entity::Request, row)
                .await?;
            items.push(self.view_of(tx.as_mut(), &rec).await?);
            if more {
                next_cursor = Some(params.cursor_after(row.get("due_at"), row.id));
            }
        }
        let total = tx.count_records(Entity::Request, &conditions).await?;
        let ev =
            Event::new(p, "request.list").detail(format!("filter={filter} count={}", items.len()));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        let page = crate::Page {
            items,
            next_cursor,
            partial: false,
        };
        Ok((page, total))
    }

    /// The store conditions of a queue filter; the clocks follow
    /// [`dsar::clock`]: overdue once past due, due soon within seven days.
    fn queue_conditions(&self, filter: &str) -> Result<Vec<Condition>> {
        let now = self.now_ms();
        let week = now + 7 * 86_400_000;
        let open = Condition::IsNull("closed_at");
        Ok(match filter {
            "all" => Vec::new(),
            "open" => vec![open],
            "overdue" => vec![open, Condition::Before("due_at", SqlValue::Int(now))],
            "due_soon" => vec![
                open,
                Condition::AtLeast("due_at", SqlValue::Int(now)),
                Condition::Before("due_at", SqlValue::Int(week + 1)),
            ],
            s if State::from_name(s).is_some() => {
                vec![Condition::Eq("state", SqlValue::Text(filter.to_string()))]
            }
            _ => {
                return Err(ServiceError::invalid(
                    "filter",
                    "must be all, open, due_soon, overdue, received, verified, fulfilled or rejected",
                ));
            }
        })
    }

    /// Dashboard figures for the privacy officer: open, due soon, overdue, and
    /// the median days to close of closed requests, overall and for each of
    /// the last six months (`closed_by_month`, oldest first). Counted in the
    /// store, so they hold however many requests there are.
    pub async fn dsar_summary(&self, p: &Principal) -> Result<DsarSummary> {
        let mut tx = self.privacy_tx(p, "request.list").await?;
        let mut figures = BTreeMap::new();
        for filter in ["open", "due_soon", "overdue"] {
            let conditions = self.queue_conditions(filter)?;
            figures.insert(
                filter,
                tx.count_records(Entity::Request, &conditions).await?,
            );
        }
        // Closing times come from plain columns: no request is opened.
        let mut durations: Vec<(i64, f64)> = Vec::new();
        let mut after = None;
        loop {
            let q = ListQuery {
                entity: Entity::Request,
                conditions: vec![Condition::AtLeast("closed_at", SqlValue::Int(i64::MIN))],
                sort: Sort {
                    field: "closed_at",
                    descending: false,
                },
                after: after.clone(),
                limit: 500,
            };
            let rows = tx.list_records(&q).await?;
            for row in &rows {
                if let (SqlValue::Int(received), SqlValue::Int(closed)) =
                    (row.get("received_at"), row.get("closed_at"))
                {
                    durations.push((*closed, (closed - received) as f64 / 86_400_000.0));
                }
                after = Some((row.get("closed_at").clone(), row.id));
            }
            if rows.len() < 500 {
                break;
            }
        }
        let mut flags_in_force: BTreeMap<Flag, u64> = Flag::ALL.iter().map(|f| (*f, 0)).collect();
        for (name, n) in tx.flag_counts().await? {
            if let Some(f) = Flag::from_name(&name) {
                flags_in_force.insert(f, n);
            }
        }
        let ev = Event::new(p, "request.list").detail("summary");
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        let now = self.now();
        let mut months = Vec::new();
        for back in (0..6u32).rev() {
            let start = minus_months(now, back);
            let end = dsar::add_months(start, 1);
            let (a, b) = (
                custos_domain::value::to_unix_ms(start),
                custos_domain::value::to_unix_ms(end),
            );
            let days: Vec<f64> = durations
                .iter()
                .filter(|(at, _)| *at >= a && *at < b)
                .map(|(_, d)| *d)
                .collect();
            months.push(MonthClosed {
                month: format!("{:04}-{:02}", start.year(), u8::from(start.month())),
                closed: days.len() as u64,
                median_days_to_close: median(days),
            });
        }
        let all: Vec<f64> = durations.iter().map(|(_, d)| *d).collect();
        Ok(DsarSummary {
            open: figures["open"],
            due_soon: figures["due_soon"],
            overdue: figures["overdue"],
            closed: all.len() as u64,
            median_days_to_close: median(all),
            closed_by_month: months,
            flags_in_force,
        })
    }
}

/// The median of some numbers, `None` when there are none.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The first day of the month `months` before the month of `t`.
fn minus_months(t: time::OffsetDateTime, months: u32) -> time::OffsetDateTime {
    let d = t.date();
    let total = d.year() * 12 + (u8::from(d.month()) as i32 - 1) - months as i32;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let month = time::Month::try_from(month0 as u8 + 1).unwrap_or(time::Month::January);
    match time::Date::from_calendar_date(year, month, 1) {
        Ok(first) => first.midnight().assume_utc(),
        Err(_) => t,
    }
}
