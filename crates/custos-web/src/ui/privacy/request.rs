//! A request's page and its steps: verification, matching, extension,
//! refusal, fulfilment with a confirmation, lifting a restriction, and the
//! timeline read from the ledger.

use super::*;
use crate::AppState;
use crate::ui::fields::{self, FormField};
use crate::ui::shell::{Ctx, Section, Shell, redirect_with_flash};
use crate::ui::widgets::{Names, kind_choice, place_errors};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custos_domain::Entity;
use custos_domain::dsar::{Flag, Kind, Regime, State as ReqState};
use custos_domain::value::parse_timestamp;
use custos_service::{Principal, RequestView, ServiceError};
use serde_json::{Value as Json, json};
use uuid::Uuid;

/// A contact a request may be about.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Contact id.
    pub id: String,
    /// Name, as the caller may read it.
    pub name: String,
    /// The contact's page.
    pub href: String,
}

/// One step of a request's timeline, from the audit ledger.
#[derive(Debug, Clone)]
pub struct Step {
    /// When, for people.
    pub when: String,
    /// When (RFC 3339).
    pub iso: String,
    /// What happened.
    pub text: String,
    /// Who did it.
    pub who: String,
    /// The ledger entry.
    pub index: u64,
}

/// What a fulfilled request did and kept.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// What was done.
    pub done: Vec<String>,
    /// What was kept, and why.
    pub kept: Vec<(String, String)>,
    /// A note (e.g. no data held).
    pub note: String,
    /// Whether the flag was already in force.
    pub already: bool,
    /// For a refused request: the ground, in words, and the explanation.
    pub rejection: Option<(String, String)>,
}

/// A sentence's first letter in upper case, the rest untouched.
pub(super) fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(super) fn outcome_of(result: Option<&custos_service::RequestOutcome>) -> Option<Outcome> {
    let r = result?;
    Some(Outcome {
        done: r.done.iter().map(|d| upper_first(d)).collect(),
        kept: r
            .kept
            .iter()
            .map(|k| (upper_first(&k.what), k.why.clone()))
            .collect(),
        note: upper_first(r.note.as_deref().unwrap_or_default()),
        already: r.already_in_force.unwrap_or(false),
        rejection: r.rejected.as_ref().map(|rj| {
            (
                custos_domain::dsar::reject_ground(&rj.ground)
                    .unwrap_or("No ground recorded.")
                    .to_string(),
                rj.explanation.clone(),
            )
        }),
    })
}

/// Values and errors of a form on the request page after a refusal.
#[derive(Debug, Clone, Default)]
pub(super) struct Rejected {
    form: &'static str,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "privacy_request.html")]
pub(super) struct RequestPage {
    shell: Shell,
    id: String,
    title: String,
    kind_text: &'static str,
    email: String,
    regime: &'static str,
    state: &'static str,
    state_class: String,
    channel: &'static str,
    received: String,
    received_iso: String,
    closed: String,
    closed_iso: String,
    clock: ClockView,
    verification: String,
    details: String,
    extension_reason: String,
    contact: Option<Candidate>,
    contact_note: String,
    candidates: Vec<Candidate>,
    verify_open: bool,
    /// The live one-time code to send the person, if any.
    verification_code: Option<String>,
    /// "3 wrong codes left before it is void", while a code is live.
    attempts_text: String,
    /// Whether a code is live (shown or not).
    code_live: bool,
    code_field: FormField,
    reason_field: FormField,
    extend_field: Option<FormField>,
    extended_due: String,
    /// The refusal form (empty once the request is closed).
    reject_fields: Vec<FormField>,
    can_fulfil: bool,
    fulfil_note: String,
    can_lift: bool,
    outcome: Option<Outcome>,
    package: bool,
    package_entities: Vec<(String, String)>,
    steps: Vec<Step>,
    summary: Vec<(String, String)>,
}

pub(super) fn parse_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// Who an actor of the ledger is, in words, without naming anyone.
pub(super) fn actor_words(actor: &str, p: &Principal) -> String {
    if actor == format!("user:{}", p.user_id) {
        "You".into()
    } else if actor.starts_with("user:") {
        "A colleague".into()
    } else if actor.starts_with("token:") {
        "An API client".into()
    } else if actor == "anonymous" {
        "The person (privacy portal)".into()
    } else {
        "Custos".into()
    }
}

pub(super) fn step_text(action: &str, outcome: &str, detail: &str) -> String {
    let kv = |k: &str| {
        detail
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    if outcome == "denied" {
        return format!("Refused: {}", fields::humanize(&action.replace('.', " ")));
    }
    match (action, outcome) {
        ("request.create", _) => format!("Request received ({})", channel_label(&kv("channel"))),
        ("request.verify", "failed") => "A wrong verification code was entered".into(),
        ("request.verify", _) => match kv("method").as_str() {
            "code" => "Identity verified with the one-time code".into(),
            _ => "Identity attested by the operator".into(),
        },
        ("request.match", _) => "Matched to a contact".into(),
        ("request.extend", _) => "Due date extended, with a reason".into(),
        ("request.reject", _) => format!(
            "Request refused: {}",
            custos_domain::dsar::reject_ground(&kv("ground"))
                .unwrap_or("no ground recorded")
                .trim_end_matches('.')
        ),
        ("request.fulfil", _) => "Request fulfilled".into(),
        ("subject.erase", _) => "The person's data key was destroyed (erasure)".into(),
        ("subject.flag", _) => format!("Processing flag set: {}", kv("flag").replace('_', " ")),
        ("subject.unflag", _) => {
            format!("Processing flag lifted: {}", kv("flag").replace('_', " "))
        }
        ("consent.create", _) => "Consent ledger entry recorded".into(),
        ("contact.update", _) => format!("Contact corrected: {}", kv("fields").replace(',', ", ")),
        (a, _) if a.ends_with(".export") => format!(
            "{} included in the package",
            fields::humanize(a.trim_end_matches(".export"))
        ),
        (a, _) => fields::humanize(&a.replace('.', " ")),
    }
}

pub(super) async fn timeline(st: &AppState, p: &Principal, v: &RequestView) -> Vec<Step> {
    let mut entries = st
        .custos
        .audit_events_for_subject(p, v.id, 500)
        .await
        .unwrap_or_default();
    if let Some(c) = v.contact_id {
        let id = v.id.to_string();
        let more = st
            .custos
            .audit_events_for_subject(p, c, 500)
            .await
            .unwrap_or_default();
        entries.extend(
            more.into_iter()
                .filter(|e| e.event.detail.as_deref().is_some_and(|d| d.contains(&id))),
        );
    }
    entries.retain(|e| !matches!(e.event.action.as_str(), "request.read" | "request.list"));
    entries.sort_by_key(|e| std::cmp::Reverse(e.index));
    entries
        .iter()
        .map(|e| Step {
            when: when_text(&e.event.time),
            iso: e.event.time.clone(),
            text: step_text(
                &e.event.action,
                &e.event.outcome,
                e.event.detail.as_deref().unwrap_or_default(),
            ),
            who: actor_words(&e.event.actor, p),
            index: e.index,
        })
        .collect()
}

pub(super) fn verify_fields() -> (FormField, FormField) {
    let mut code = form_field(
        "code",
        "One-time code",
        "The six digits the person read back to you from the message you sent them.",
        "text",
        true,
        12,
    );
    code.maxlength = 12;
    let reason = form_field(
        "reason",
        "How you checked who they are",
        "For example: called back on the phone number we hold and they confirmed their last order.",
        "textarea",
        true,
        2000,
    );
    (code, reason)
}

/// The fields of the refusal form: the ground, and what the person is told.
pub(super) fn reject_fields() -> Vec<FormField> {
    let mut ground = form_field(
        "ground",
        "Ground for refusing",
        "The law allows a refusal only on one of these grounds.",
        "select",
        true,
        0,
    );
    ground.options = custos_domain::dsar::REJECT_GROUNDS
        .iter()
        .map(|(g, text)| (g.to_string(), text.trim_end_matches('.').to_string()))
        .collect();
    if let Some((g, _)) = custos_domain::dsar::REJECT_GROUNDS.first() {
        ground.value = g.to_string();
    }
    let explanation = form_field(
        "explanation",
        "Explanation for the person",
        "What you will write to them: why, in plain words. They must also be told they may complain to a supervisory authority.",
        "textarea",
        true,
        2000,
    );
    vec![ground, explanation]
}

pub(super) fn extend_field() -> FormField {
    form_field(
        "extension_reason",
        "Why more time is needed",
        "The law allows one extension; the person must be told the reason within the first period.",
        "textarea",
        true,
        2000,
    )
}

/// The request page again, with a form's values and its errors by field.
pub(super) async fn form_refused(
    st: &AppState,
    ctx: &Ctx,
    id: Uuid,
    form: &'static str,
    mut fields: Vec<FormField>,
    errors: &[custos_domain::FieldError],
) -> Response {
    let summary = place_errors(&mut fields, errors);
    let rejected = Rejected {
        form,
        fields,
        summary,
    };
    detail_page(
        st,
        ctx,
        id,
        Some(rejected),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

pub(super) async fn detail_page(
    st: &AppState,
    ctx: &Ctx,
    id: Uuid,
    rejected: Option<Rejected>,
    status: StatusCode,
) -> Response {
    let p = &ctx.caller.principal;
    let v = match st.custos.dsar_get(p, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let now = st.custos.clock().now();
    let mut names = Names::new(st, p);
    let candidate = |cid: Uuid| (cid, format!("/app/contacts/{cid}"));
    let mut contact = None;
    let mut contact_note = String::new();
    if let Some(c) = v.contact_id {
        let (cid, href) = candidate(c);
        let name = match names.name(Entity::Contact, cid).await {
            Some(n) => n,
            None => "Contact (erased or not readable)".to_string(),
        };
        contact = Some(Candidate {
            id: cid.to_string(),
            name,
            href,
        });
    } else if v.state == ReqState::Rejected {
        contact_note = "Not matched: the request was refused first.".into();
    } else if v.candidates.is_empty() {
        contact_note = "No contact holds this email. Fulfilling the request answers that no personal data about the person is held.".into();
    } else if v.candidates.len() == 1 {
        contact_note =
            "One contact holds this email; verifying identity matches the request to it.".into();
    } else {
        contact_note = format!(
            "{} contacts hold this email. Choose the one the person is before fulfilling.",
            v.candidates.len()
        );
    }
    let mut candidates = Vec::new();
    if v.contact_id.is_none() && v.candidates.len() > 1 {
        for c in &v.candidates {
            let (cid, href) = candidate(*c);
            let name = names
                .name(Entity::Contact, cid)
                .await
                .unwrap_or_else(|| "Contact not readable".to_string());
            candidates.push(Candidate {
                id: cid.to_string(),
                name,
                href,
            });
        }
    }
    let closed = v.state.is_closed();
    let (mut code_field, mut reason_field) = verify_fields();
    let mut extend = (!closed && v.extension_reason.is_none()).then(extend_field);
    let mut reject = if closed { Vec::new() } else { reject_fields() };
    let mut summary = Vec::new();
    if let Some(r) = rejected {
        summary = r.summary;
        if r.form == "reject" {
            reject = r.fields;
        } else {
            for f in r.fields {
                match (r.form, f.name) {
                    ("verify", "code") => code_field = f,
                    ("verify", "reason") => reason_field = f,
                    ("extend", _) => extend = Some(f),
                    _ => {}
                }
            }
        }
    }
    let extended_due = Regime::from_name(&v.regime)
        .zip(parse_timestamp(&v.due_at))
        .map(|(r, d)| fields::when(r.extended(d)))
        .unwrap_or_default();
    let verification = match (v.verification.as_str(), v.verified_at.as_deref()) {
        ("code", Some(at)) => format!("Verified with the one-time code on {}", when_text(at)),
        ("operator_attested", Some(at)) => format!(
            "Attested by the operator on {}: {}",
            when_text(at),
            v.verification_reason.clone().unwrap_or_default()
        ),
        _ if v.state == ReqState::Rejected => "Not verified: the request was refused first.".into(),
        _ => "Not verified yet. Nothing is disclosed or erased before it is.".into(),
    };
    let (can_fulfil, fulfil_note) = match v.state {
        ReqState::Verified if v.contact_id.is_none() && v.candidates.len() > 1 => (
            false,
            "Choose which contact the person is before fulfilling.".to_string(),
        ),
        ReqState::Verified => (true, String::new()),
        ReqState::Received => (
            false,
            "Verify the requester's identity first: nothing is disclosed or erased before.".into(),
        ),
        ReqState::Fulfilled | ReqState::Rejected => (false, String::new()),
    };
    let mut can_lift = false;
    if v.kind == Kind::Restriction
        && v.state == ReqState::Fulfilled
        && let Some(c) = v.contact_id
        && let Ok(h) = st.custos.consent_history(p, c).await
    {
        can_lift = h.processing_flags.contains(&Flag::Restricted);
    }
    let package = v.state == ReqState::Fulfilled && v.kind.has_package() && v.contact_id.is_some();
    let steps = timeline(st, p, &v).await;
    let title = format!("{} request", kind_label(v.kind));
    let page = RequestPage {
        shell: ctx
            .shell(st, title.clone(), Section::Privacy("/app/privacy/requests"))
            .await,
        id: v.id.to_string(),
        title,
        kind_text: kind_choice(v.kind),
        email: v.subject_email.clone(),
        regime: regime_label(&v.regime),
        state: state_label(v.state),
        state_class: format!("badge badge-{}", v.state),
        channel: channel_label(&v.channel),
        received: when_text(&v.received_at),
        received_iso: v.received_at.clone(),
        closed: v.closed_at.as_deref().map(when_text).unwrap_or_default(),
        closed_iso: v.closed_at.clone().unwrap_or_default(),
        clock: clock_view(&v, now),
        verification,
        details: v.details.clone().unwrap_or_default(),
        extension_reason: v.extension_reason.clone().unwrap_or_default(),
        contact,
        contact_note,
        candidates,
        verify_open: v.state == ReqState::Received,
        verification_code: v.verification_code.clone(),
        attempts_text: match v.code_attempts_left {
            Some(1) => "1 wrong code left before it is void".into(),
            Some(n) => format!("{n} wrong codes left before it is void"),
            None => String::new(),
        },
        code_live: v.code_attempts_left.is_some(),
        code_field,
        reason_field,
        extend_field: extend,
        extended_due,
        reject_fields: reject,
        can_fulfil,
        fulfil_note,
        can_lift,
        outcome: outcome_of(v.result.as_ref()),
        package,
        package_entities: PACKAGE_ENTITIES
            .iter()
            .map(|e| (e.to_string(), fields::humanize(e)))
            .collect(),
        steps,
        summary,
    };
    ctx.page(&page, status)
}

pub(super) async fn detail(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    detail_page(&st, &ctx, id, None, StatusCode::OK).await
}

/// The request a step's form was posted for: the form's CSRF token checked
/// first, then the id in the path (an unknown one is "not found").
pub(super) async fn posted_request(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
    form: &Pairs,
) -> Result<Uuid, Response> {
    ctx.check_form(st, form).await?;
    match parse_id(id) {
        Some(id) => Ok(id),
        None => Err(ctx.error(st, ServiceError::NotFound("request")).await),
    }
}

pub(super) async fn verify(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let method = get_pair(&form, "method").unwrap_or_default();
    let body = match method {
        "code" => json!({"method": "code", "code": get_pair(&form, "code").unwrap_or_default()}),
        _ => {
            json!({"method": "operator_attested", "reason": get_pair(&form, "reason").unwrap_or_default()})
        }
    };
    match st
        .custos
        .dsar_verify(&ctx.caller.principal, id, &body)
        .await
    {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.verified"),
        Err(ServiceError::Invalid(errs)) => {
            let (mut code, mut reason) = verify_fields();
            code.value = get_pair(&form, "code").unwrap_or_default().to_string();
            reason.value = get_pair(&form, "reason").unwrap_or_default().to_string();
            let fs = vec![code, reason];
            form_refused(&st, &ctx, id, "verify", fs, &errs).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

/// `POST /app/privacy/requests/{id}/code`: a new one-time code (the old one
/// was lost, or is void after too many wrong codes).
pub(super) async fn new_code(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    match st.custos.dsar_new_code(&ctx.caller.principal, id).await {
        Ok(_) => redirect_with_flash(
            &format!("/app/privacy/requests/{id}#verify"),
            "privacy.code_issued",
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn match_contact(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(contact) = get_pair(&form, "contact_id").and_then(parse_id) else {
        return ctx
            .error(
                &st,
                ServiceError::invalid("contact_id", "choose one of the contacts listed"),
            )
            .await;
    };
    match st
        .custos
        .dsar_match(&ctx.caller.principal, id, contact)
        .await
    {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.matched"),
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn extend(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let reason = get_pair(&form, "extension_reason").unwrap_or_default();
    match st
        .custos
        .dsar_extend(&ctx.caller.principal, id, reason)
        .await
    {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.extended"),
        Err(ServiceError::Invalid(errs)) => {
            let mut f = extend_field();
            f.value = reason.to_string();
            let errs: Vec<_> = errs
                .into_iter()
                .map(|e| custos_domain::FieldError::new("extension_reason", e.message))
                .collect();
            let fs = vec![f];
            form_refused(&st, &ctx, id, "extend", fs, &errs).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn reject(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let ground = get_pair(&form, "ground").unwrap_or_default();
    let explanation = get_pair(&form, "explanation").unwrap_or_default();
    match st
        .custos
        .dsar_reject(&ctx.caller.principal, id, ground, explanation)
        .await
    {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.rejected"),
        Err(ServiceError::Invalid(errs)) => {
            let mut fs = reject_fields();
            for f in &mut fs {
                f.value = match f.name {
                    "ground" => ground.to_string(),
                    _ => explanation.to_string(),
                };
            }
            form_refused(&st, &ctx, id, "reject", fs, &errs).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

#[derive(Template)]
#[template(path = "privacy_fulfil.html")]
pub(super) struct FulfilPage {
    shell: Shell,
    id: String,
    title: String,
    consequences: Vec<String>,
    blocked: Option<String>,
    irreversible: bool,
    button: String,
}

pub(super) async fn fulfil_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    let v = match st.custos.dsar_get(p, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let mut names = Names::new(&st, p);
    let who = match v.contact_id {
        Some(c) => names
            .name(Entity::Contact, c)
            .await
            .unwrap_or_else(|| "the contact".to_string()),
        None => "the person".to_string(),
    };
    let mut blocked = None;
    let mut consequences = Vec::new();
    match v.state {
        ReqState::Received => {
            blocked = Some("Verify the requester's identity first: nothing is disclosed or erased before it is verified.".to_string())
        }
        ReqState::Fulfilled | ReqState::Rejected => {
            blocked = Some(format!("This request is already {}.", v.state));
        }
        ReqState::Verified => {}
    }
    if v.contact_id.is_none() && v.candidates.len() > 1 {
        blocked = Some(format!(
            "{} contacts hold the requester's email. Choose which one the person is on the request's page first.",
            v.candidates.len()
        ));
    }
    let mut flags = Vec::new();
    if let Some(c) = v.contact_id
        && let Ok(h) = st.custos.consent_history(p, c).await
    {
        flags = h.processing_flags.into_iter().collect();
    }
    if v.contact_id.is_none() && v.candidates.is_empty() {
        consequences.push("No contact holds the requester's email. The request is closed with the answer that no personal data about them is held.".to_string());
    } else {
        match v.kind {
            Kind::Access | Kind::Portability => {
                consequences.push(format!("A package of every record about {who} is prepared: their contact record, activities, orders, consents and deals, with the purposes, lawful basis, recipients, retention and source of each kind of data."));
                consequences.push("You can then download it as JSON and CSV, and print the report for the person. Each download is recorded in the audit ledger.".into());
            }
            Kind::Erasure if flags.contains(&Flag::LegalHold) => {
                consequences.push(format!("A legal hold is in force on {who}: nothing is erased now. The request is closed saying so, and erasure follows when the hold is lifted."));
            }
            Kind::Erasure => {
                consequences.push(format!("The encryption key of {who} is destroyed (crypto-shredding): their contact record, activities and consents can never be read again, in backups too. Their pages will answer “erased”."));
                consequences.push("Orders kept for accounting stay, anonymised: amounts and dates are kept, the name and shipping address are gone.".into());
                consequences.push("The reply says what was kept and why. The audit ledger keeps the steps, with no personal data.".into());
                consequences.push("If you have not confirmed your second factor in the last minutes, you will be asked to first.".into());
            }
            Kind::Rectification => {
                let fields_named = v
                    .details
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Json>(d).ok())
                    .and_then(|j| j.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()));
                match fields_named {
                    Some(f) => consequences.push(format!(
                        "The corrected values are written to {who}'s record ({}); the audit ledger records the change.",
                        f.join(", ")
                    )),
                    None => {
                        blocked = blocked.or(Some("This request holds no corrected fields, only text. Correct the contact's record on their page (the ledger records the change); the request itself cannot be fulfilled from here.".into()))
                    }
                }
            }
            Kind::Restriction => consequences.push(format!("Processing of {who}'s data is restricted: only the privacy officer may open their records, and they are left out of lists, searches and exports until the restriction is lifted.")),
            Kind::Objection => consequences.push(format!("{who} is left out of direct marketing and profiling from now on.")),
            Kind::OptOutSale => consequences.push(format!("{who} is left out of every sale or sharing export from now on, and the consent ledger records the opt-out.")),
            Kind::LimitSensitive => consequences.push(format!("Sensitive data about {who} is used only as needed for the service they asked for.")),
        }
    }
    let irreversible =
        v.kind == Kind::Erasure && v.contact_id.is_some() && !flags.contains(&Flag::LegalHold);
    if irreversible {
        consequences.push("This cannot be undone.".into());
    }
    let title = format!("Fulfil the {} request?", kind_label(v.kind).to_lowercase());
    let page = FulfilPage {
        shell: ctx
            .shell(
                &st,
                title.clone(),
                Section::Privacy("/app/privacy/requests"),
            )
            .await,
        id: id.to_string(),
        title,
        consequences,
        blocked,
        irreversible,
        button: if irreversible {
            format!("Erase {who}")
        } else {
            "Fulfil the request".to_string()
        },
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) async fn fulfil(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    match st.custos.dsar_fulfil(&ctx.caller.principal, id).await {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.fulfilled"),
        // Erasure needs a fresh second factor: confirm it, then come back to
        // the confirmation page (nothing was done).
        Err(ServiceError::StepUpRequired) => axum::response::Redirect::to(&format!(
            "/app/security/step-up?return_to=/app/privacy/requests/{id}/fulfil"
        ))
        .into_response(),
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn lift(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let id = match posted_request(&st, &ctx, &id, &form).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    match st.custos.dsar_lift(&ctx.caller.principal, id).await {
        Ok(_) => redirect_with_flash(&format!("/app/privacy/requests/{id}"), "privacy.lifted"),
        Err(e) => ctx.error(&st, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_steps_read_as_sentences() {
        assert_eq!(
            step_text("request.create", "ok", "kind=access channel=portal"),
            "Request received (Privacy portal)"
        );
        assert_eq!(
            step_text("request.verify", "failed", ""),
            "A wrong verification code was entered"
        );
        assert_eq!(
            step_text("activity.export", "ok", "request=x"),
            "Activity included in the package"
        );
    }
}
