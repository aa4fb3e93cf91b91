//! The privacy officer's pages: the request queue with its legal clocks, a
//! request's page (verification, matching, extension, fulfilment with a
//! confirmation, lifting a restriction, the result, the package and evidence
//! downloads, the printable access report, the timeline from the ledger), the
//! "New request" form any staff member may use, the privacy tiles of the
//! dashboard, and the consent section of a contact's page. Every call goes
//! through the service, which authorises and audits; the role checks here
//! only decide which links and buttons to show.

use super::charts::{Bar, hbars, vbars};
use super::dashboard::{Item, Tile};
use super::fields::{self, FormField, plural};
use super::portal::{self, Notice};
use super::records::Names;
use super::shell::{Ctx, Flash, NavGroup, NavItem, Section, Shell, redirect_with_flash};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::dsar::{CONSENT_PURPOSES, Flag, Kind, Regime, State as ReqState};
use custos_domain::policy::{self, Operation};
use custos_domain::value::parse_timestamp;
use custos_domain::{Entity, Role};
use custos_service::{Opener, Principal, RequestView, ServiceError};
use serde_json::{Value as Json, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

/// Requests per page of the queue.
const PAGE_SIZE: u32 = 25;

/// The queue's filters: (value, words).
const FILTERS: [(&str, &str); 8] = [
    ("open", "Open (received or verified)"),
    ("due_soon", "Due within a week"),
    ("overdue", "Overdue"),
    ("received", "Received, identity not verified"),
    ("verified", "Verified, to fulfil"),
    ("fulfilled", "Fulfilled"),
    ("rejected", "Rejected"),
    ("all", "All requests"),
];

/// The entities of an access package, as the package names them.
const PACKAGE_ENTITIES: [&str; 5] = ["contacts", "activities", "orders", "consents", "deals"];

/// The Privacy routes of the staff side.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/privacy", get(overview))
        .route("/app/privacy/requests", get(queue))
        .route("/app/privacy/requests/new", get(new_form).post(open))
        .route("/app/privacy/requests/{id}", get(detail))
        .route("/app/privacy/requests/{id}/opened", get(opened))
        .route("/app/privacy/requests/{id}/verify", post(verify))
        .route("/app/privacy/requests/{id}/code", post(new_code))
        .route("/app/privacy/requests/{id}/match", post(match_contact))
        .route("/app/privacy/requests/{id}/extend", post(extend))
        .route("/app/privacy/requests/{id}/reject", post(reject))
        .route(
            "/app/privacy/requests/{id}/fulfil",
            get(fulfil_page).post(fulfil),
        )
        .route("/app/privacy/requests/{id}/lift", post(lift))
        .route("/app/privacy/requests/{id}/package.json", get(package_json))
        .route(
            "/app/privacy/requests/{id}/package/{entity}",
            get(package_csv),
        )
        .route("/app/privacy/requests/{id}/report", get(report))
        .route("/app/privacy/requests/{id}/evidence.json", get(evidence))
        .route("/app/contacts/{id}/consent", post(record_consent))
}

// ---------------------------------------------------------------- words

/// What a request kind asks, in a few words.
pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Access => "Access",
        Kind::Portability => "Portability",
        Kind::Erasure => "Erasure",
        Kind::Rectification => "Rectification",
        Kind::Restriction => "Restriction",
        Kind::Objection => "Objection",
        Kind::OptOutSale => "Opt-out of sale or sharing",
        Kind::LimitSensitive => "Limit use of sensitive data",
    }
}

/// A request kind as the person put it (forms).
pub fn kind_choice(kind: Kind) -> &'static str {
    match kind {
        Kind::Access => "Access: a copy of the personal data held about the person",
        Kind::Portability => "Portability: the data in a machine-readable file",
        Kind::Erasure => "Erasure: delete the person's data",
        Kind::Rectification => "Rectification: correct the person's data",
        Kind::Restriction => "Restriction: stop using the data for now",
        Kind::Objection => "Objection: no more direct marketing or profiling",
        Kind::OptOutSale => "Opt-out of sale or sharing (CCPA)",
        Kind::LimitSensitive => "Limit the use of sensitive data (CPRA)",
    }
}

fn regime_label(regime: &str) -> &'static str {
    match regime {
        "gdpr" => "GDPR: one month, extendable once by two more",
        "ccpa" => "CCPA: 45 days, extendable once by 45 more",
        _ => "Unknown",
    }
}

fn regime_short(regime: &str) -> &'static str {
    match regime {
        "gdpr" => "GDPR",
        "ccpa" => "CCPA",
        _ => "—",
    }
}

fn state_label(state: ReqState) -> &'static str {
    match state {
        ReqState::Received => "Received",
        ReqState::Verified => "Verified",
        ReqState::Fulfilled => "Fulfilled",
        ReqState::Rejected => "Rejected",
    }
}

fn channel_label(channel: &str) -> &'static str {
    match channel {
        "portal" => "Privacy portal",
        "staff" => "Logged by staff",
        "api" => "API",
        _ => "Unknown",
    }
}

/// A consent purpose in words.
pub fn purpose_label(purpose: &str) -> &'static str {
    match purpose {
        "marketing_email" => "Marketing emails",
        "profiling" => "Profiling",
        "sharing_partners" => "Sharing with partners",
        "sale_share" => "Sale or sharing (CCPA)",
        _ => "Other purpose",
    }
}

fn consent_state_label(state: &str) -> &'static str {
    match state {
        "given" => "Given",
        "withdrawn" => "Withdrawn",
        "not_given" => "Not given",
        "not_opted_out" => "Not opted out",
        _ => "Unknown",
    }
}

fn method_label(method: &str) -> &'static str {
    match method {
        "form" => "Form",
        "staff" => "Told a staff member",
        "import" => "Import",
        "api" => "API",
        "portal" => "Privacy portal",
        "gpc" => "Global Privacy Control",
        "dsar" => "Privacy request",
        _ => "Other",
    }
}

fn flag_label(flag: Flag) -> &'static str {
    match flag {
        Flag::Restricted => {
            "Processing restricted (GDPR Art. 18): only the privacy officer may use these records"
        }
        Flag::Objected => "Objected to direct marketing and profiling (GDPR Art. 21)",
        Flag::OptedOutSale => "Opted out of the sale and sharing of their data (CCPA)",
        Flag::LimitSensitive => "Limited the use of sensitive data (CPRA)",
        Flag::LegalHold => "Legal hold: erasure waits until it is lifted",
    }
}

/// The flash messages of the Privacy pages.
pub fn flash_text(code: &str) -> Option<Flash> {
    let ok = |t: &str| {
        Some(Flash {
            ok: true,
            text: t.to_string(),
        })
    };
    match code {
        "privacy.verified" => ok("Identity verified."),
        "privacy.code_issued" => ok(
            "A new one-time code was issued; the old one no longer works. Send the new code to the person.",
        ),
        "privacy.matched" => ok("Request matched to the contact."),
        "privacy.extended" => ok("Due date extended. Tell the person why."),
        "privacy.rejected" => ok(
            "Request refused and closed. Write to the person with the explanation and their right to complain to a supervisory authority.",
        ),
        "privacy.fulfilled" => ok("Request fulfilled."),
        "privacy.lifted" => ok("Restriction lifted."),
        "privacy.consent" => ok("Consent recorded."),
        "privacy.consent_bad" => Some(Flash {
            ok: false,
            text: "The consent could not be recorded: choose a purpose, a state and a method, and keep the evidence under 2,000 characters.".into(),
        }),
        _ => None,
    }
}

/// The Privacy group of the sidebar: the queue for those who handle requests,
/// the "New request" form for other staff who may log one, and the public
/// portal people are sent to.
pub fn nav_group(role: Role, section: Section) -> Option<NavGroup> {
    let item = |label, href| NavItem {
        label,
        href,
        current: section == Section::Privacy(href),
    };
    let mut items = Vec::new();
    if policy::allows(role, Operation::Read, Entity::Request) {
        items.push(item("Overview", "/app/privacy"));
        items.push(item("Requests", "/app/privacy/requests"));
    } else if policy::allows(role, Operation::Create, Entity::Request) {
        items.push(item("New request", "/app/privacy/requests/new"));
    }
    if items.is_empty() {
        return None;
    }
    items.push(item("Public privacy portal", "/privacy"));
    Some(NavGroup {
        name: "Privacy",
        items,
    })
}

// ---------------------------------------------------------------- clocks

/// A legal clock as a page shows it: the state in words and colour, the time
/// left, and the date itself.
#[derive(Debug, Clone)]
pub struct ClockView {
    /// `clock-on-track`, `clock-due-soon`, `clock-overdue` or `clock-closed`.
    pub class: &'static str,
    /// The state in words.
    pub state: &'static str,
    /// Time left (or overdue, or when it closed).
    pub left: String,
    /// The due date, for people.
    pub due: String,
    /// The due date, machine-readable.
    pub iso: String,
}

fn when_text(rfc3339: &str) -> String {
    parse_timestamp(rfc3339)
        .map(fields::when)
        .unwrap_or_default()
}

fn span(d: Duration) -> String {
    let days = d.whole_days();
    let hours = d.whole_hours();
    match (days, hours) {
        (2.., _) => format!("{days} days"),
        (1, _) => "1 day".into(),
        (_, 2..) => format!("{hours} hours"),
        (_, 1) => "1 hour".into(),
        _ => "less than an hour".into(),
    }
}

/// The clock of a request at `now`.
pub fn clock_view(v: &RequestView, now: OffsetDateTime) -> ClockView {
    let due_t = parse_timestamp(&v.due_at).unwrap_or(now);
    let (class, state, left) = match v.clock {
        "closed" => (
            "clock-closed",
            "Closed",
            match v.closed_at.as_deref().and_then(parse_timestamp) {
                Some(c) if c > due_t => format!("answered {} late", span(c - due_t)),
                _ => "answered on time".to_string(),
            },
        ),
        "overdue" => (
            "clock-overdue",
            "Overdue",
            format!("{} overdue", span(now - due_t)),
        ),
        "due_soon" => (
            "clock-due-soon",
            "Due soon",
            format!("{} left", span(due_t - now)),
        ),
        _ => (
            "clock-on-track",
            "On track",
            format!("{} left", span(due_t - now)),
        ),
    };
    ClockView {
        class,
        state,
        left,
        due: fields::when(due_t),
        iso: v.due_at.clone(),
    }
}

// ---------------------------------------------------------------- queue

/// One row of the queue.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The request's page.
    pub href: String,
    /// What is asked.
    pub kind: &'static str,
    /// Who asked.
    pub email: String,
    /// GDPR or CCPA.
    pub regime: &'static str,
    /// The state in words.
    pub state: &'static str,
    /// Its badge class.
    pub state_class: String,
    /// Where it came from.
    pub channel: &'static str,
    /// When it arrived.
    pub received: String,
    /// When it arrived (RFC 3339).
    pub received_iso: String,
    /// The clock.
    pub clock: ClockView,
}

fn queue_row(v: &RequestView, now: OffsetDateTime) -> QueueRow {
    QueueRow {
        href: format!("/app/privacy/requests/{}", v.id),
        kind: kind_label(v.kind),
        email: v.subject_email.clone(),
        regime: regime_short(&v.regime),
        state: state_label(v.state),
        state_class: format!("badge badge-{}", v.state),
        channel: channel_label(&v.channel),
        received: when_text(&v.received_at),
        received_iso: v.received_at.clone(),
        clock: clock_view(v, now),
    }
}

#[derive(Template)]
#[template(path = "privacy_queue.html")]
struct QueuePage {
    shell: Shell,
    filter: String,
    filters: Vec<(String, String)>,
    rows: Vec<QueueRow>,
    count_text: String,
    prev_href: Option<String>,
    next_href: Option<String>,
    new_href: Option<String>,
    filtered: bool,
}

impl QueuePage {
    fn selected(&self, v: &str) -> bool {
        self.filter == v
    }
}

fn get_pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn queue_href(filter: &str, cursor: Option<&str>, back: &[String]) -> String {
    let mut q: Pairs = vec![("filter".into(), filter.to_string())];
    if let Some(c) = cursor {
        q.push(("cursor".into(), c.to_string()));
    }
    if !back.is_empty() {
        q.push(("back".into(), back.join(".")));
    }
    format!(
        "/app/privacy/requests?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

async fn queue(State(st): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let pairs: Pairs =
        serde_urlencoded::from_str(q.as_deref().unwrap_or_default()).unwrap_or_default();
    let filter = get_pair(&pairs, "filter")
        .filter(|f| FILTERS.iter().any(|(v, _)| v == f))
        .unwrap_or("open")
        .to_string();
    let cursor = get_pair(&pairs, "cursor");
    let back: Vec<String> = get_pair(&pairs, "back")
        .map(|b| b.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    let p = &ctx.caller.principal;
    let (page, total) = match st.custos.dsar_queue(p, &filter, cursor, PAGE_SIZE).await {
        Ok(x) => x,
        // A cursor from another filter or a stale link: start again.
        Err(ServiceError::Invalid(_)) if cursor.is_some() => {
            return axum::response::Redirect::to(&queue_href(&filter, None, &[])).into_response();
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    let now = st.custos.clock().now();
    let rows: Vec<QueueRow> = page.items.iter().map(|v| queue_row(v, now)).collect();
    let first = back.len() as u64 * u64::from(PAGE_SIZE) + 1;
    let last = first + rows.len() as u64 - 1;
    let count_text = if rows.is_empty() {
        String::new()
    } else if total == 1 {
        "1 request".to_string()
    } else {
        format!("Showing {first}–{last} of {total} requests")
    };
    let here = cursor.unwrap_or("~").to_string();
    let next_href = page.next_cursor.as_deref().map(|c| {
        let mut b = back.clone();
        b.push(here.clone());
        queue_href(&filter, Some(c), &b)
    });
    let prev_href = back.split_last().map(|(prev, rest)| {
        let c = (prev != "~").then_some(prev.as_str());
        queue_href(&filter, c, rest)
    });
    let page = QueuePage {
        shell: ctx
            .shell(
                &st,
                "Privacy requests",
                Section::Privacy("/app/privacy/requests"),
            )
            .await,
        filtered: filter != "all",
        filter,
        filters: FILTERS
            .iter()
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .collect(),
        rows,
        count_text,
        prev_href,
        next_href,
        new_href: ctx
            .may(Operation::Create, Entity::Request)
            .then(|| "/app/privacy/requests/new".to_string()),
    };
    ctx.page(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- new request

#[derive(Template)]
#[template(path = "privacy_new.html")]
struct NewPage {
    shell: Shell,
    /// The form's idempotency key (the id the request will get).
    form_id: String,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    cancel_href: &'static str,
}

fn form_field(
    name: &'static str,
    label: &str,
    help: &'static str,
    control: &'static str,
    required: bool,
    maxlength: usize,
) -> FormField {
    FormField {
        name,
        label: label.to_string(),
        help,
        required,
        control,
        value: String::new(),
        options: Vec::new(),
        maxlength,
        error: None,
        shown_as: String::new(),
        ..Default::default()
    }
}

/// The fields of a request form (staff and portal word them differently).
pub fn request_fields(values: &Pairs, staff: bool) -> Vec<FormField> {
    let mut kind = form_field(
        "kind",
        if staff {
            "What the person asks"
        } else {
            "What do you want us to do?"
        },
        "",
        "select",
        true,
        0,
    );
    kind.options.push((String::new(), "Choose one…".into()));
    for k in Kind::ALL {
        let label = if staff {
            kind_choice(k)
        } else {
            portal::kind_choice(k)
        };
        kind.options
            .push((k.as_str().to_string(), label.to_string()));
    }
    let mut regime = form_field(
        "regime",
        if staff {
            "Law it is made under"
        } else {
            "Where do you live?"
        },
        if staff {
            "Sets the legal due date: GDPR one month (extendable by two), CCPA 45 days (extendable by 45)."
        } else {
            "This decides which law applies and how long we have to answer."
        },
        "select",
        true,
        0,
    );
    regime.options = vec![
        (String::new(), "Choose one…".into()),
        (
            "gdpr".into(),
            if staff {
                "GDPR (EU and UK)"
            } else {
                "In the EU or the UK (GDPR)"
            }
            .into(),
        ),
        (
            "ccpa".into(),
            if staff {
                "CCPA (California)"
            } else {
                "In California (CCPA)"
            }
            .into(),
        ),
    ];
    let email = form_field(
        "subject_email",
        if staff {
            "The person's email"
        } else {
            "Your email address"
        },
        if staff {
            "Custos matches the request to contacts with this email and sends nothing itself."
        } else {
            "We use it to find your data and to write to you about this request."
        },
        "email",
        true,
        254,
    );
    let details = form_field(
        "details",
        if staff {
            "Details"
        } else {
            "Anything we should know (optional)"
        },
        if staff {
            "What the person said, in their words (optional)."
        } else {
            "For a correction, tell us what is wrong and what is right."
        },
        "textarea",
        false,
        10_000,
    );
    let mut out = vec![kind, regime, email, details];
    for f in &mut out {
        if let Some(v) = get_pair(values, f.name) {
            f.value = v.to_string();
        }
    }
    out
}

/// Puts the service's field errors next to the fields; returns the summary.
pub fn place_errors(
    fields: &mut [FormField],
    errors: &[custos_domain::FieldError],
) -> Vec<(String, String)> {
    let mut summary = Vec::new();
    for e in errors {
        let name = e.field.split('.').next().unwrap_or_default();
        let msg = &e.message;
        match fields.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                let text = format!("{} {msg}", f.label);
                f.error.get_or_insert(text.clone());
                summary.push((format!("#f-{}", f.name), text));
            }
            None => summary.push((String::new(), format!("{}: {msg}", e.field))),
        }
    }
    summary
}

async fn new_form(State(st): State<AppState>, ctx: Ctx) -> Response {
    if !ctx.may(Operation::Create, Entity::Request) {
        return ctx
            .error(
                &st,
                ServiceError::Forbidden("logging privacy requests is not allowed".into()),
            )
            .await;
    }
    let page = NewPage {
        shell: ctx
            .shell(&st, "New privacy request", new_section(&ctx))
            .await,
        form_id: crate::ui::shell::new_form_id(),
        fields: request_fields(&Vec::new(), true),
        summary: Vec::new(),
        cancel_href: cancel_href(&ctx),
    };
    ctx.page(&page, StatusCode::OK)
}

fn new_section(ctx: &Ctx) -> Section {
    if ctx.may(Operation::Read, Entity::Request) {
        Section::Privacy("/app/privacy/requests")
    } else {
        Section::Privacy("/app/privacy/requests/new")
    }
}

fn cancel_href(ctx: &Ctx) -> &'static str {
    if ctx.may(Operation::Read, Entity::Request) {
        "/app/privacy/requests"
    } else {
        "/app"
    }
}

#[derive(Template)]
#[template(path = "privacy_opened.html")]
struct OpenedPage {
    shell: Shell,
    kind: &'static str,
    email: String,
    code: String,
    status_url: String,
    clock: ClockView,
    detail_href: Option<String>,
}

/// The request's own address on this server, for the status link.
fn origin(ctx: &Ctx) -> String {
    let host = ctx
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| ctx.uri.authority().map(|a| a.to_string()))
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("https://{host}")
}

/// `POST /app/privacy/requests/new`, then (POST → redirect → GET) the
/// receipt page with the one-time code and the status link: a reload shows
/// the receipt again, and the form sent twice opens one request (its
/// `form_id` is the request's id).
async fn open(State(st): State<AppState>, ctx: Ctx, Form(form): Form<Pairs>) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let mut body = serde_json::Map::new();
    for name in ["kind", "regime", "subject_email"] {
        body.insert(
            name.into(),
            json!(get_pair(&form, name).unwrap_or_default().trim()),
        );
    }
    if let Some(d) = get_pair(&form, "details").filter(|d| !d.trim().is_empty()) {
        body.insert("details".into(), json!(d));
    }
    let form_id = crate::ui::shell::posted_form_id(&form, st.custos.clock().now())
        .unwrap_or_else(Uuid::now_v7);
    match st
        .custos
        .dsar_open_once(&Opener::Staff(p.clone()), &Json::Object(body), form_id)
        .await
    {
        Ok(custos_service::Submission::Created(opened)) => {
            Redirect::to(&format!("/app/privacy/requests/{}/opened", opened.view.id))
                .into_response()
        }
        Ok(custos_service::Submission::Replayed(id)) => {
            Redirect::to(&format!("/app/privacy/requests/{id}/opened")).into_response()
        }
        Err(ServiceError::Invalid(errs)) => {
            let mut fields = request_fields(&form, true);
            let summary = place_errors(&mut fields, &errs);
            let page = NewPage {
                shell: ctx
                    .shell(&st, "New privacy request", new_section(&ctx))
                    .await,
                form_id: form_id.to_string(),
                fields,
                summary,
                cancel_href: cancel_href(&ctx),
            };
            ctx.page(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

/// `GET /app/privacy/requests/{id}/opened`: the receipt of a request this
/// user just opened. Past its hour, or to anyone else, it says so and points
/// to the request (for those who may read it).
async fn opened(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    let receipt = match st.custos.dsar_receipt(&ctx.caller.principal, id).await {
        Ok(r) => r,
        Err(ServiceError::NotFound(_)) if ctx.may(Operation::Read, Entity::Request) => {
            return Redirect::to(&format!("/app/privacy/requests/{id}")).into_response();
        }
        Err(ServiceError::NotFound(_)) => {
            return ctx
                .message(
                    &st,
                    StatusCode::NOT_FOUND,
                    "Request opened",
                    "This request was opened. Its one-time code and status link are shown only to whoever opened it, for an hour, and until identity is verified; ask the privacy officer if you need them.",
                )
                .await;
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    let now = st.custos.clock().now();
    let v = &receipt.view;
    let page = OpenedPage {
        shell: ctx.shell(&st, "Request opened", new_section(&ctx)).await,
        kind: kind_label(v.kind),
        email: v.subject_email.clone(),
        code: receipt.verification_code.clone(),
        status_url: format!(
            "{}/privacy/requests/{}?token={}",
            origin(&ctx),
            v.id,
            receipt.status_token
        ),
        clock: clock_view(v, now),
        detail_href: ctx
            .may(Operation::Read, Entity::Request)
            .then(|| format!("/app/privacy/requests/{}", v.id)),
    };
    ctx.page(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- detail

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
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn outcome_of(result: Option<&custos_service::RequestOutcome>) -> Option<Outcome> {
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
struct Rejected {
    form: &'static str,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "privacy_request.html")]
struct RequestPage {
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

fn parse_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// Who an actor of the ledger is, in words, without naming anyone.
fn actor_words(actor: &str, p: &Principal) -> String {
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

fn step_text(action: &str, outcome: &str, detail: &str) -> String {
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

async fn timeline(st: &AppState, p: &Principal, v: &RequestView) -> Vec<Step> {
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

fn verify_fields() -> (FormField, FormField) {
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
fn reject_fields() -> Vec<FormField> {
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

fn extend_field() -> FormField {
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
async fn form_refused(
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

async fn detail_page(
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

async fn detail(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    detail_page(&st, &ctx, id, None, StatusCode::OK).await
}

/// The request a step's form was posted for: the form's CSRF token checked
/// first, then the id in the path (an unknown one is "not found").
async fn posted_request(
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

async fn verify(
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
async fn new_code(
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

async fn match_contact(
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

async fn extend(
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

async fn reject(
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
struct FulfilPage {
    shell: Shell,
    id: String,
    title: String,
    consequences: Vec<String>,
    blocked: Option<String>,
    irreversible: bool,
    button: String,
}

async fn fulfil_page(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
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

async fn fulfil(
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

async fn lift(
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

// ---------------------------------------------------------------- downloads

fn attachment(content_type: &'static str, filename: String, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn package_json(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    match st.custos.dsar_package(&ctx.caller.principal, id).await {
        Ok(pkg) => attachment(
            "application/json",
            format!("dsar-{id}.json"),
            serde_json::to_string_pretty(&pkg).unwrap_or_default(),
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}

async fn package_csv(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let entity = file.strip_suffix(".csv").unwrap_or_default();
    let (Some(id), true) = (parse_id(&id), PACKAGE_ENTITIES.contains(&entity)) else {
        return ctx.error(&st, ServiceError::NotFound("package file")).await;
    };
    match st.custos.dsar_package(&ctx.caller.principal, id).await {
        Ok(pkg) => attachment(
            "text/csv; charset=utf-8",
            format!("dsar-{id}-{entity}.csv"),
            crate::api::privacy::package_csv(&pkg, entity),
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}

async fn evidence(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    match st.custos.dsar_evidence(&ctx.caller.principal, id).await {
        Ok(pack) => attachment(
            "application/json",
            format!("dsar-{id}-evidence.json"),
            serde_json::to_string_pretty(&pack).unwrap_or_default(),
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}

/// One record of the report: (label, value) pairs in the inventory's order.
#[derive(Debug, Clone)]
pub struct ReportRecord {
    /// Its heading.
    pub heading: String,
    /// Its fields.
    pub fields: Vec<(String, String)>,
}

/// The records of one entity in the report.
#[derive(Debug, Clone)]
pub struct ReportSection {
    /// Heading.
    pub heading: String,
    /// Anchor id.
    pub id: String,
    /// The records.
    pub records: Vec<ReportRecord>,
}

#[derive(Template)]
#[template(path = "privacy_report.html")]
struct ReportPage {
    title: String,
    id: String,
    kind: &'static str,
    regime: &'static str,
    received: String,
    closed: String,
    generated: String,
    subject_id: String,
    sections: Vec<ReportSection>,
    about: Vec<Notice>,
    restrictions: Vec<&'static str>,
    notice_version: &'static str,
}

/// A package value as the report shows it.
fn value_text(f: &custos_domain::inventory::FieldDecl, v: &custos_domain::Value) -> String {
    use custos_domain::Value;
    use custos_domain::inventory::FieldKind;
    match v {
        Value::Null => "Not set".into(),
        Value::Bool(b) => if *b { "Yes" } else { "No" }.into(),
        Value::Timestamp(t) => fields::when(*t),
        Value::Text(t) if matches!(f.kind, FieldKind::Enum { .. }) => fields::humanize(t),
        other => other.display(),
    }
}

async fn report(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    let v = match st.custos.dsar_get(p, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let pkg = match st.custos.dsar_package(p, id).await {
        Ok(pkg) => pkg,
        Err(e) => return ctx.error(&st, e).await,
    };
    let mut sections = Vec::new();
    for plural in PACKAGE_ENTITIES {
        let Some(entity) = Entity::ALL.into_iter().find(|e| e.plural() == plural) else {
            continue;
        };
        let items = pkg.records_of(entity);
        if items.is_empty() {
            continue;
        }
        let mut records = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let fs = item
                .fields
                .iter()
                .map(|(f, val)| (f.label.to_string(), value_text(f, val)))
                .collect();
            records.push(ReportRecord {
                heading: format!("{} {}", entity.label(), i + 1),
                fields: fs,
            });
        }
        sections.push(ReportSection {
            heading: fields::humanize(plural),
            id: plural.to_string(),
            records,
        });
    }
    // What the package says about each kind of data, in the notice's words.
    let decls: Vec<_> = pkg.about_the_data.iter().map(|a| a.decl).collect();
    let restrictions = pkg
        .processing_restrictions
        .iter()
        .map(|f| flag_label(*f))
        .collect();
    let page = ReportPage {
        title: format!(
            "Your personal data: {} request",
            kind_label(v.kind).to_lowercase()
        ),
        id: id.to_string(),
        kind: kind_label(v.kind),
        regime: regime_short(&v.regime),
        received: when_text(&v.received_at),
        closed: v.closed_at.as_deref().map(when_text).unwrap_or_default(),
        generated: when_text(&pkg.generated_at),
        subject_id: pkg.subject_id.map(|s| s.to_string()).unwrap_or_default(),
        sections,
        about: portal::notice_from(&decls),
        restrictions,
        notice_version: custos_service::NOTICE_VERSION,
    };
    super::render(&page)
}

// ---------------------------------------------------------------- dashboard

/// The privacy tiles: open requests, due within a week, overdue, and the
/// median time to close. Empty for roles that do not handle requests.
pub async fn dashboard_tiles(st: &AppState, ctx: &Ctx) -> Vec<Tile> {
    if !ctx.may(Operation::Read, Entity::Request) {
        return Vec::new();
    }
    let p = &ctx.caller.principal;
    let Ok(s) = st.custos.dsar_summary(p).await else {
        return Vec::new();
    };
    let now = st.custos.clock().now();
    let (open, soon, overdue) = (s.open, s.due_soon, s.overdue);
    let item = |v: &RequestView| {
        let c = clock_view(v, now);
        Item {
            text: format!("{} ({})", kind_label(v.kind), regime_short(&v.regime)),
            when: format!("Due {}", c.due),
            note: if v.clock == "overdue" {
                c.left.clone()
            } else {
                String::new()
            },
            href: format!("/app/privacy/requests/{}", v.id),
        }
    };
    let soon_items = st
        .custos
        .dsar_queue(p, "due_soon", None, 100)
        .await
        .map(|(pg, _)| pg.items)
        .unwrap_or_default();
    let overdue_items = st
        .custos
        .dsar_queue(p, "overdue", None, 100)
        .await
        .map(|(pg, _)| pg.items)
        .unwrap_or_default();
    let mut tiles = Vec::new();
    let on_track = open.saturating_sub(soon + overdue);
    tiles.push(Tile {
        heading: "Open privacy requests",
        id: "dsar-open",
        number: open.to_string(),
        unit: "open requests".into(),
        trend: format!(
            "{} on track, {} due within a week, {} overdue",
            on_track, soon, overdue
        ),
        trend_dir: if overdue > 0 { "down" } else { "flat" },
        chart: hbars(
            "chart-dsar-open",
            "Open requests by legal clock",
            &[
                Bar {
                    label: "On track".into(),
                    value: on_track as f64,
                    text: plural(on_track, "request", "requests"),
                },
                Bar {
                    label: "Due soon".into(),
                    value: soon as f64,
                    text: plural(soon, "request", "requests"),
                },
                Bar {
                    label: "Overdue".into(),
                    value: overdue as f64,
                    text: plural(overdue, "request", "requests"),
                },
            ],
        ),
        items: Vec::new(),
        href: "/app/privacy/requests?filter=open".into(),
        link: "Open the request queue",
    });
    let today = now.date();
    let days: Vec<Bar> = (0..8)
        .map(|i| {
            let day = today + Duration::days(i);
            let count = soon_items
                .iter()
                .filter(|v| parse_timestamp(&v.due_at).is_some_and(|d| d.date() == day))
                .count() as u64;
            Bar {
                label: if i == 0 {
                    "Today".into()
                } else {
                    day.day().to_string()
                },
                value: count as f64,
                text: format!(
                    "{} due on {}",
                    plural(count, "request", "requests"),
                    custos_domain::value::format_date(day)
                ),
            }
        })
        .collect();
    tiles.push(Tile {
        heading: "Due within a week",
        id: "dsar-soon",
        number: soon.to_string(),
        unit: "requests due in the next 7 days".into(),
        trend: if soon > 0 {
            "Answer these first, soonest due on top".into()
        } else {
            "Nothing due this week".into()
        },
        trend_dir: "flat",
        chart: vbars(
            "chart-dsar-soon",
            "Requests due per day, today and the next seven days",
            &days,
            Some(0),
        ),
        items: soon_items.iter().take(3).map(item).collect(),
        href: "/app/privacy/requests?filter=due_soon".into(),
        link: "See requests due soon",
    });
    let buckets = [
        ("Up to 7 days", 0, 7),
        ("8 to 30 days", 8, 30),
        ("Over 30 days", 31, i64::MAX),
    ];
    let late: Vec<Bar> = buckets
        .iter()
        .map(|(label, lo, hi)| {
            let count = overdue_items
                .iter()
                .filter(|v| {
                    parse_timestamp(&v.due_at).is_some_and(|d| {
                        let late = (now - d).whole_days();
                        late >= *lo && late <= *hi
                    })
                })
                .count() as u64;
            Bar {
                label: label.to_string(),
                value: count as f64,
                text: format!(
                    "{} overdue by {}",
                    plural(count, "request", "requests"),
                    label.to_lowercase()
                ),
            }
        })
        .collect();
    tiles.push(Tile {
        heading: "Overdue requests",
        id: "dsar-overdue",
        number: overdue.to_string(),
        unit: "requests past their legal due date".into(),
        trend: if overdue > 0 {
            format!(
                "{} past due: answer now and tell the person why",
                plural(overdue, "request is", "requests are")
            )
        } else {
            "Nothing overdue".into()
        },
        trend_dir: if overdue > 0 { "down" } else { "flat" },
        chart: hbars(
            "chart-dsar-overdue",
            "Overdue requests by how late they are",
            &late,
        ),
        items: overdue_items.iter().take(3).map(item).collect(),
        href: "/app/privacy/requests?filter=overdue".into(),
        link: "See overdue requests",
    });
    let months: Vec<Bar> = s
        .closed_by_month
        .iter()
        .map(|m| {
            let label = m
                .month
                .split_once('-')
                .and_then(|(_, mm)| mm.parse::<u8>().ok())
                .and_then(|mm| time::Month::try_from(mm).ok())
                .map(|mm| mm.to_string().chars().take(3).collect())
                .unwrap_or_default();
            let (closed, median) = (m.closed, m.median_days_to_close);
            Bar {
                label,
                value: median.unwrap_or(0.0),
                text: match median {
                    Some(d) => format!(
                        "median {d:.1} days over {}",
                        plural(closed, "closed request", "closed requests")
                    ),
                    None => "no request closed".into(),
                },
            }
        })
        .collect();
    let median = s.median_days_to_close;
    tiles.push(Tile {
        heading: "Time to close",
        id: "dsar-close",
        number: median
            .map(|d| format!("{d:.1}"))
            .unwrap_or_else(|| "–".into()),
        unit: format!(
            "median days from receipt to answer, over {}",
            plural(s.closed, "closed request", "closed requests")
        ),
        trend: "The law allows one month (GDPR) or 45 days (CCPA)".into(),
        trend_dir: "flat",
        chart: vbars(
            "chart-dsar-close",
            "Median days to close per month, last six months",
            &months,
            Some(months.len().saturating_sub(1)),
        ),
        items: Vec::new(),
        href: "/app/privacy/requests?filter=fulfilled".into(),
        link: "See fulfilled requests",
    });
    tiles
}

#[derive(Template)]
#[template(path = "privacy_overview.html")]
struct OverviewPage {
    shell: Shell,
    tiles: Vec<Tile>,
    as_of: String,
    new_href: Option<String>,
}

async fn overview(State(st): State<AppState>, ctx: Ctx) -> Response {
    if !ctx.may(Operation::Read, Entity::Request) {
        // Audited as a refusal by the service.
        if let Err(e) = st.custos.dsar_summary(&ctx.caller.principal).await {
            return ctx.error(&st, e).await;
        }
    }
    let page = OverviewPage {
        shell: ctx
            .shell(&st, "Privacy", Section::Privacy("/app/privacy"))
            .await,
        tiles: dashboard_tiles(&st, &ctx).await,
        as_of: fields::when(st.custos.clock().now()),
        new_href: ctx
            .may(Operation::Create, Entity::Request)
            .then(|| "/app/privacy/requests/new".to_string()),
    };
    ctx.page(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- contact page

/// A consent purpose's current state.
#[derive(Debug, Clone)]
pub struct ConsentNow {
    /// The purpose in words.
    pub purpose: &'static str,
    /// The state in words.
    pub state: &'static str,
    /// Badge class.
    pub class: String,
    /// Since when.
    pub since: String,
}

/// One entry of the consent ledger with its receipt.
#[derive(Debug, Clone)]
pub struct ConsentEntry {
    /// When.
    pub when: String,
    /// When (RFC 3339).
    pub iso: String,
    /// The purpose in words.
    pub purpose: &'static str,
    /// Given or withdrawn.
    pub state: &'static str,
    /// How.
    pub method: &'static str,
    /// The notice version shown.
    pub notice: String,
    /// Who recorded it.
    pub by: String,
    /// Evidence given.
    pub evidence: String,
    /// The ISO/IEC 27560 receipt fields (name, value).
    pub receipt: Vec<(String, String)>,
}

/// The consent and processing-flags section of a contact's page.
#[derive(Debug, Clone)]
pub struct ContactPrivacy {
    /// The contact.
    pub contact_id: String,
    /// Flags in force, in words.
    pub flags: Vec<&'static str>,
    /// Current state per purpose.
    pub current: Vec<ConsentNow>,
    /// The ledger, newest first.
    pub entries: Vec<ConsentEntry>,
    /// Purposes for the form.
    pub purposes: Vec<(String, String)>,
    /// Whether the form is shown.
    pub can_record: bool,
    /// The privacy notice version recorded with new entries.
    pub notice_version: &'static str,
}

/// The section for a contact's page, for roles that may record consent.
pub async fn contact_section(st: &AppState, ctx: &Ctx, contact: Uuid) -> Option<ContactPrivacy> {
    if !ctx.may(Operation::Create, Entity::Consent) {
        return None;
    }
    let p = &ctx.caller.principal;
    let h = st.custos.consent_history(p, contact).await.ok()?;
    let flags = h.processing_flags.iter().map(|f| flag_label(*f)).collect();
    let current = CONSENT_PURPOSES
        .iter()
        .map(|pu| {
            let c = h.current.get(pu);
            let state = c.map(|c| c.state.as_str()).unwrap_or_default();
            ConsentNow {
                purpose: purpose_label(pu),
                state: consent_state_label(state),
                class: format!("badge badge-consent-{}", state.replace('_', "-")),
                since: c
                    .and_then(|c| c.since.as_deref())
                    .map(when_text)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let entries = h
        .entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.text(k).unwrap_or_default();
            let by = match e.view.record.get("recorded_by").as_uuid() {
                Some(u) if u == p.user_id => "You".to_string(),
                Some(_) => "A colleague".to_string(),
                None => "The person".to_string(),
            };
            let receipt = e
                .receipt
                .rows()
                .into_iter()
                .map(|(k, text)| (fields::humanize(k), text))
                .collect();
            ConsentEntry {
                when: when_text(&s("recorded_at")),
                iso: s("recorded_at"),
                purpose: purpose_label(&s("purpose")),
                state: consent_state_label(&s("state")),
                method: method_label(&s("method")),
                notice: s("notice_version"),
                by,
                evidence: s("evidence"),
                receipt,
            }
        })
        .collect();
    Some(ContactPrivacy {
        contact_id: contact.to_string(),
        flags,
        current,
        entries,
        purposes: CONSENT_PURPOSES
            .iter()
            .map(|p| (p.to_string(), purpose_label(p).to_string()))
            .collect(),
        can_record: ctx.may(Operation::Create, Entity::Consent),
        notice_version: custos_service::NOTICE_VERSION,
    })
}

async fn record_consent(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("contact")).await;
    };
    let mut body = json!({
        "contact_id": id,
        "purpose": get_pair(&form, "purpose").unwrap_or_default(),
        "state": get_pair(&form, "state").unwrap_or_default(),
        "method": get_pair(&form, "method").unwrap_or_default(),
    });
    if let Some(e) = get_pair(&form, "evidence").filter(|e| !e.trim().is_empty()) {
        body["evidence"] = json!(e.trim());
    }
    let to = format!("/app/contacts/{id}#consent");
    match st.custos.consent_record(&ctx.caller.principal, &body).await {
        Ok(_) => redirect_with_flash(&to, "privacy.consent"),
        Err(ServiceError::Invalid(_)) => redirect_with_flash(&to, "privacy.consent_bad"),
        Err(e) => ctx.error(&st, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn view(clock: &'static str, due: &str) -> RequestView {
        RequestView {
            id: Uuid::nil(),
            kind: Kind::Access,
            regime: "gdpr".into(),
            state: ReqState::Received,
            channel: "portal".into(),
            subject_email: "a@b.example".into(),
            contact_id: None,
            candidates: Vec::new(),
            received_at: "2026-01-31T09:00:00Z".into(),
            due_at: due.into(),
            clock,
            extension_reason: None,
            verification: "none".into(),
            verified_at: None,
            verification_reason: None,
            details: None,
            verification_code: None,
            code_attempts_left: None,
            result: None,
            closed_at: None,
        }
    }

    #[test]
    fn clocks_say_the_time_left_in_words_and_give_the_date() {
        let now = datetime!(2026-02-25 09:00 UTC);
        let c = clock_view(&view("due_soon", "2026-02-28T09:00:00Z"), now);
        assert_eq!((c.class, c.state), ("clock-due-soon", "Due soon"));
        assert_eq!(c.left, "3 days left");
        assert_eq!(c.due, "2026-02-28 09:00 UTC");
        let c = clock_view(&view("overdue", "2026-02-24T08:00:00Z"), now);
        assert_eq!(c.left, "1 day overdue");
        let c = clock_view(&view("on_track", "2026-02-25T10:30:00Z"), now);
        assert_eq!(c.left, "1 hour left");
        let mut late = view("closed", "2026-02-20T09:00:00Z");
        late.closed_at = Some("2026-02-23T10:00:00Z".into());
        assert_eq!(clock_view(&late, now).left, "answered 3 days late");
        late.closed_at = Some("2026-02-19T10:00:00Z".into());
        assert_eq!(clock_view(&late, now).left, "answered on time");
    }

    #[test]
    fn every_role_that_may_log_a_request_has_a_privacy_group() {
        for role in Role::ALL {
            let g = nav_group(role, Section::Dashboard);
            assert_eq!(
                g.is_some(),
                policy::allows(role, Operation::Create, Entity::Request),
                "{role}"
            );
            if let Some(g) = g {
                let queue = g.items.iter().any(|i| i.href == "/app/privacy/requests");
                assert_eq!(
                    queue,
                    matches!(role, Role::Admin | Role::PrivacyOfficer),
                    "{role}"
                );
            }
        }
    }

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
