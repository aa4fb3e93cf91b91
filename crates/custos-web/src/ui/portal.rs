//! The public privacy portal at `/privacy`: no staff account, its own simple
//! layout, and everything works without JavaScript. A person reads the
//! privacy notice (written from the data inventory), makes a request and
//! follows it with a status link, opts out of the sale and sharing of their
//! data, and withdraws consent. Opt-outs and withdrawals answer the same
//! whether or not the email is known, so the portal does not reveal who is a
//! customer. A form sent with Global Privacy Control (`Sec-GPC: 1`) also
//! records the opt-out of sale and sharing, and the page says so.
//!
//! The forms have no session to hang a CSRF token on: like the sign-in page,
//! the token lives in a pre-session cookie (`SameSite=Strict`, `__Host-`)
//! and every form carries it back, checked in constant time beside the
//! Origin.

use super::fields::FormField;
use super::widgets::{
    FLASH_COOKIE, Flash, Notice, customer_notice, person_kind_choice, place_errors, purpose_label,
    request_fields,
};
use super::widgets::{cookie_header, render};
use crate::AppState;
use crate::api::privacy::gpc;
use crate::extract::{cookie, request_meta};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::FieldKind;
use custos_domain::dsar::{CONSENT_PURPOSES, State as ReqState};
use custos_service::{NOTICE_VERSION, Opener, ServiceError};
use serde_json::{Value as Json, json};

type Pairs = Vec<(String, String)>;

/// The cookie that carries the portal forms' CSRF token (no session exists).
const PORTAL_COOKIE: &str = "__Host-custos_portal";

/// The portal's routes.
pub fn routes(r: axum::Router<AppState>) -> Router<AppState> {
    r.route("/privacy", get(home))
        .route("/privacy/requests/new", get(request_form))
        .route("/privacy/requests", post(request_submit))
        .route("/privacy/requests/{id}", get(status))
        .route("/privacy/opt-out", get(opt_out_form).post(opt_out_submit))
        .route("/privacy/consent", get(consent_form).post(consent_submit))
        .route("/privacy/thanks", get(thanks))
}

fn state_words(state: ReqState) -> (&'static str, &'static str) {
    match state {
        ReqState::Received => (
            "Received",
            "We have your request. Before we act on it we confirm it is you: we will write to you at the email address you gave.",
        ),
        ReqState::Verified => (
            "In progress",
            "We have confirmed it is you and are working on your request.",
        ),
        ReqState::Fulfilled => (
            "Done",
            "We have answered your request and written to you with the result.",
        ),
        ReqState::Rejected => (
            "Closed without action",
            "We could not act on this request; we have written to you to explain why.",
        ),
    }
}

// ---------------------------------------------------------------- layout

/// What the portal's layout needs on every page.
#[derive(Debug, Clone)]
pub struct PortalShell {
    /// Page title.
    pub title: String,
    /// The navigation entry of this page.
    pub current: &'static str,
    /// Whether the browser sends Global Privacy Control.
    pub gpc: bool,
    /// A message from the previous request.
    pub flash: Option<Flash>,
    /// The notice version in force.
    pub notice_version: &'static str,
    /// The CSRF token for the page's forms.
    pub csrf: String,
}

impl PortalShell {
    /// Whether `href` is the page shown.
    pub fn is(&self, href: &str) -> bool {
        self.current == href
    }
}

/// The token of the portal forms: the one the browser already holds, so
/// several tabs keep working, or a new one.
fn portal_token(headers: &HeaderMap) -> (String, bool) {
    if let Some(t) = cookie(headers, PORTAL_COOKIE).filter(|t| {
        t.len() == 32
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return (t, false);
    }
    use base64::Engine;
    let t = custos_crypto::random_bytes::<24>()
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
        .unwrap_or_default();
    (t, true)
}

fn flash_code(headers: &HeaderMap) -> Option<String> {
    cookie(headers, FLASH_COOKIE).filter(|c| {
        c.starts_with("portal.")
            && c.len() <= 40
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
    })
}

fn flash_words(code: &str) -> Option<Flash> {
    let ok = |t: &str| {
        Some(Flash {
            ok: true,
            text: t.to_string(),
        })
    };
    match code {
        "portal.received" => ok("We have received your request."),
        "portal.received_gpc" => ok(
            "We have received your request. Your browser also sent Global Privacy Control: we have recorded it as your opt-out of the sale and sharing of your personal information.",
        ),
        _ => None,
    }
}

fn shell(headers: &HeaderMap, title: &str, current: &'static str) -> (PortalShell, bool) {
    let (csrf, new) = portal_token(headers);
    let flash = flash_code(headers).and_then(|c| flash_words(&c));
    (
        PortalShell {
            title: title.to_string(),
            current,
            gpc: gpc(headers),
            flash,
            notice_version: NOTICE_VERSION,
            csrf,
        },
        new,
    )
}

/// Renders a portal page: sets the CSRF cookie when new, clears a flash.
fn page(
    t: &impl Template,
    headers: &HeaderMap,
    new_token: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut res = render(t);
    if res.status() == StatusCode::OK {
        *res.status_mut() = status;
    }
    if let Some(tok) = new_token {
        res.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(PORTAL_COOKIE, tok, Some(7200)),
        );
    }
    if cookie(headers, FLASH_COOKIE).is_some() {
        res.headers_mut()
            .append(header::SET_COOKIE, cookie_header(FLASH_COOKIE, "", Some(0)));
    }
    res
}

fn redirect_flash(to: &str, code: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(FLASH_COOKIE, code, Some(60)),
    );
    r
}

/// The CSRF token and Origin of a portal form post.
fn form_ok(parts: &Parts, form: &[(String, String)]) -> bool {
    let held = cookie(&parts.headers, PORTAL_COOKIE).unwrap_or_default();
    let sent = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    !held.is_empty()
        && custos_crypto::constant_time_eq(held.as_bytes(), sent.as_bytes())
        && super::widgets::same_origin(&parts.headers, &parts.uri)
}

const EXPIRED: &str =
    "This form expired, so nothing was sent. Please check your answers and send it again.";

fn get_pair<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage {
    portal: PortalShell,
    notice: Vec<Notice>,
    consent_purposes: Vec<&'static str>,
    controller: custos_service::Controller,
}

async fn home(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let (portal, new) = shell(&headers, "Privacy notice", "/privacy");
    let tok = new.then(|| portal.csrf.clone());
    // Unset (or unreadable) details leave the section out, not the notice.
    let controller = st.custos.controller().await.unwrap_or_default();
    let periods = match st.custos.retention_periods().await {
        Ok(p) => p,
        Err(e) => return unavailable(&headers, e),
    };
    let p = HomePage {
        portal,
        controller,
        notice: customer_notice(&periods),
        consent_purposes: CONSENT_PURPOSES
            .iter()
            .filter(|p| custos_domain::dsar::needs_opt_in(p))
            .map(|p| purpose_label(p))
            .collect(),
    };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

#[derive(Template)]
#[template(path = "portal_request.html")]
struct RequestFormPage {
    portal: PortalShell,
    /// The form's idempotency key (the id the request will get).
    form_id: String,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
}

async fn request_form(headers: HeaderMap) -> Response {
    let (portal, new) = shell(&headers, "Make a privacy request", "/privacy/requests/new");
    let tok = new.then(|| portal.csrf.clone());
    let p = RequestFormPage {
        portal,
        form_id: crate::ui::shell::new_form_id(),
        fields: request_fields(&Vec::new(), false),
        summary: Vec::new(),
    };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

async fn request_submit(
    State(st): State<AppState>,
    parts: Parts,
    Form(form): Form<Pairs>,
) -> Response {
    let title = "Make a privacy request";
    let current = "/privacy/requests/new";
    if !form_ok(&parts, &form) {
        let (portal, new) = shell(&parts.headers, title, current);
        let tok = new.then(|| portal.csrf.clone());
        let p = RequestFormPage {
            portal,
            form_id: get_pair(&form, "form_id").to_string(),
            fields: request_fields(&form, false),
            summary: vec![(String::new(), EXPIRED.to_string())],
        };
        return page(&p, &parts.headers, tok.as_deref(), StatusCode::FORBIDDEN);
    }
    let meta = request_meta(&parts);
    if let Err(e) = st.custos.portal_gate(&meta).await {
        return unavailable(&parts.headers, e);
    }
    let mut body = serde_json::Map::new();
    for name in ["kind", "regime", "subject_email"] {
        body.insert(name.into(), json!(get_pair(&form, name).trim()));
    }
    let details = get_pair(&form, "details");
    if !details.trim().is_empty() {
        body.insert("details".into(), json!(details));
    }
    let form_id = crate::ui::shell::posted_form_id(&form, st.custos.clock().now())
        .unwrap_or_else(uuid::Uuid::now_v7);
    match st
        .custos
        .dsar_open_once(&Opener::Portal(meta.clone()), &Json::Object(body), form_id)
        .await
    {
        Ok(custos_service::Submission::Replayed(_)) => message(
            &parts.headers,
            StatusCode::OK,
            "Request already received",
            "We already have this request: the form was sent twice, and only the first counts. Follow it with the status link on the page you saw after sending it.",
        ),
        Ok(custos_service::Submission::Created(opened)) => {
            let mut code = "portal.received";
            if gpc(&parts.headers) {
                // Global Privacy Control is a valid opt-out of sale and sharing (CCPA regs § 7025).
                if let Err(e) = st
                    .custos
                    .record_opt_out(&meta, &opened.view.subject_email, "gpc")
                    .await
                {
                    tracing::error!(error = %e, "recording a GPC opt-out failed");
                } else {
                    code = "portal.received_gpc";
                }
            }
            let to = format!(
                "/privacy/requests/{}?token={}",
                opened.view.id, opened.status_token
            );
            redirect_flash(&to, code)
        }
        Err(ServiceError::Invalid(errs)) => {
            let (portal, new) = shell(&parts.headers, title, current);
            let tok = new.then(|| portal.csrf.clone());
            let mut fields = request_fields(&form, false);
            let summary = place_errors(&mut fields, &errs);
            let p = RequestFormPage {
                portal,
                form_id: form_id.to_string(),
                fields,
                summary,
            };
            page(
                &p,
                &parts.headers,
                tok.as_deref(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => unavailable(&parts.headers, e),
    }
}

#[derive(Template)]
#[template(path = "portal_status.html")]
struct StatusPage {
    portal: PortalShell,
    kind: &'static str,
    state: &'static str,
    meaning: &'static str,
    state_class: String,
    received: String,
    received_iso: String,
    due: String,
    due_iso: String,
    closed: String,
    closed_iso: String,
    /// For a refused request: the ground, in a sentence.
    ground: &'static str,
}

#[derive(Template)]
#[template(path = "portal_message.html")]
struct MessagePage {
    portal: PortalShell,
    text: String,
}

fn message(headers: &HeaderMap, status: StatusCode, title: &str, text: &str) -> Response {
    let (portal, new) = shell(headers, title, "");
    let tok = new.then(|| portal.csrf.clone());
    let p = MessagePage {
        portal,
        text: text.to_string(),
    };
    page(&p, headers, tok.as_deref(), status)
}

/// The portal's page for an address it does not have (404), with the
/// portal's landmarks, heading and navigation.
pub(crate) fn not_found(headers: &HeaderMap) -> Response {
    message(
        headers,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address. Check the address, or start again from the privacy notice.",
    )
}

fn unavailable(headers: &HeaderMap, e: ServiceError) -> Response {
    tracing::error!(error = %e, "privacy portal");
    let (status, text) = match e {
        ServiceError::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests from here. Wait a moment and try again.",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The privacy portal cannot take this right now. Please try again later; nothing was recorded.",
        ),
    };
    message(headers, status, "Please try again later", text)
}

async fn status(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs: Pairs =
        serde_urlencoded::from_str(q.as_deref().unwrap_or_default()).unwrap_or_default();
    let token = get_pair(&pairs, "token");
    let found = match uuid::Uuid::parse_str(&id) {
        Ok(id) if !token.is_empty() => st.custos.dsar_public_status(id, token).await,
        _ => Err(ServiceError::NotFound("request")),
    };
    let s = match found {
        Ok(s) => s,
        Err(ServiceError::NotFound(_)) => {
            return message(
                &headers,
                StatusCode::NOT_FOUND,
                "Request not found",
                "No request matches this link. Check that you copied the whole link from the page you saw when you sent the request.",
            );
        }
        Err(e) => return unavailable(&headers, e),
    };
    let (portal, new) = shell(&headers, "Your privacy request", "");
    let tok = new.then(|| portal.csrf.clone());
    let when = |t: &str| {
        custos_domain::value::parse_timestamp(t)
            .map(|t| custos_domain::value::format_date(t.date()))
            .unwrap_or_default()
    };
    let (state, meaning) = state_words(s.state);
    let p = StatusPage {
        portal,
        kind: person_kind_choice(s.kind),
        state,
        meaning,
        state_class: format!("badge badge-{}", s.state),
        received: when(&s.received_at),
        received_iso: s.received_at.clone(),
        due: when(&s.due_at),
        due_iso: s.due_at.clone(),
        closed: s.closed_at.as_deref().map(when).unwrap_or_default(),
        closed_iso: s.closed_at.clone().unwrap_or_default(),
        ground: s
            .rejection_ground
            .as_deref()
            .and_then(custos_domain::dsar::reject_ground)
            .unwrap_or_default(),
    };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

// ---------------------------------------------------------------- opt-out and consent

#[derive(Template)]
#[template(path = "portal_opt_out.html")]
struct OptOutPage {
    portal: PortalShell,
    email: FormField,
    summary: Vec<(String, String)>,
}

fn email_field(value: &str) -> FormField {
    FormField {
        name: "email",
        label: "Your email address".into(),
        help: "The address you use with us. We do not tell anyone whether it is in our records.",
        required: true,
        control: "email",
        value: value.to_string(),
        options: Vec::new(),
        maxlength: 254,
        error: None,
        shown_as: String::new(),
        ..Default::default()
    }
}

/// Checks an email typed into a portal form; the error goes next to it.
fn check_email(f: &mut FormField) -> Vec<(String, String)> {
    let v = f.value.trim().to_string();
    let ok = matches!(
        custos_domain::validate::parse_value(FieldKind::Email, &json!(v), &Default::default()),
        Ok(custos_domain::Value::Text(_))
    );
    if ok {
        return Vec::new();
    }
    let text = "Your email address must look like name@example.com".to_string();
    f.error = Some(text.clone());
    vec![("#f-email".to_string(), text)]
}

async fn opt_out_form(headers: HeaderMap) -> Response {
    let (portal, new) = shell(
        &headers,
        "Do not sell or share my personal information",
        "/privacy/opt-out",
    );
    let tok = new.then(|| portal.csrf.clone());
    let p = OptOutPage {
        portal,
        email: email_field(""),
        summary: Vec::new(),
    };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

async fn opt_out_submit(
    State(st): State<AppState>,
    parts: Parts,
    Form(form): Form<Pairs>,
) -> Response {
    let title = "Do not sell or share my personal information";
    let mut email = email_field(get_pair(&form, "email"));
    let (summary, status) = if !form_ok(&parts, &form) {
        (
            vec![(String::new(), EXPIRED.to_string())],
            StatusCode::FORBIDDEN,
        )
    } else {
        (check_email(&mut email), StatusCode::UNPROCESSABLE_ENTITY)
    };
    if !summary.is_empty() {
        let (portal, new) = shell(&parts.headers, title, "/privacy/opt-out");
        let tok = new.then(|| portal.csrf.clone());
        let p = OptOutPage {
            portal,
            email,
            summary,
        };
        return page(&p, &parts.headers, tok.as_deref(), status);
    }
    let meta = request_meta(&parts);
    if let Err(e) = st.custos.portal_gate(&meta).await {
        return unavailable(&parts.headers, e);
    }
    let gpc_sent = gpc(&parts.headers);
    let signal = if gpc_sent { "gpc" } else { "portal" };
    // The answer is the same whether or not the email is known.
    if let Err(e) = st
        .custos
        .record_opt_out(&meta, email.value.trim(), signal)
        .await
    {
        return unavailable(&parts.headers, e);
    }
    redirect_flash(
        "/privacy/thanks",
        if gpc_sent {
            "portal.opted_out_gpc"
        } else {
            "portal.opted_out"
        },
    )
}

#[derive(Template)]
#[template(path = "portal_consent.html")]
struct ConsentPage {
    portal: PortalShell,
    email: FormField,
    purpose: FormField,
    summary: Vec<(String, String)>,
}

fn purpose_field(value: &str) -> FormField {
    FormField {
        name: "purpose",
        label: "What you no longer agree to".into(),
        help: "",
        required: true,
        control: "select",
        value: value.to_string(),
        options: std::iter::once((String::new(), "Choose one…".to_string()))
            .chain(CONSENT_PURPOSES.iter().map(|p| {
                let words = match *p {
                    "marketing_email" => "Marketing emails",
                    "profiling" => "Profiling: analysing my data to predict my interests",
                    "sharing_partners" => "Sharing my data with partners",
                    _ => "The sale or sharing of my personal information",
                };
                (p.to_string(), words.to_string())
            }))
            .collect(),
        maxlength: 0,
        error: None,
        shown_as: String::new(),
        ..Default::default()
    }
}

async fn consent_form(headers: HeaderMap) -> Response {
    let (portal, new) = shell(&headers, "Withdraw your consent", "/privacy/consent");
    let tok = new.then(|| portal.csrf.clone());
    let p = ConsentPage {
        portal,
        email: email_field(""),
        purpose: purpose_field(""),
        summary: Vec::new(),
    };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

async fn consent_submit(
    State(st): State<AppState>,
    parts: Parts,
    Form(form): Form<Pairs>,
) -> Response {
    let mut email = email_field(get_pair(&form, "email"));
    let mut purpose = purpose_field(get_pair(&form, "purpose"));
    let (mut summary, status) = if !form_ok(&parts, &form) {
        (
            vec![(String::new(), EXPIRED.to_string())],
            StatusCode::FORBIDDEN,
        )
    } else {
        (check_email(&mut email), StatusCode::UNPROCESSABLE_ENTITY)
    };
    if status != StatusCode::FORBIDDEN && !CONSENT_PURPOSES.contains(&purpose.value.as_str()) {
        let text = "Choose what you no longer agree to".to_string();
        purpose.error = Some(text.clone());
        summary.push(("#f-purpose".into(), text));
    }
    if !summary.is_empty() {
        let (portal, new) = shell(&parts.headers, "Withdraw your consent", "/privacy/consent");
        let tok = new.then(|| portal.csrf.clone());
        let p = ConsentPage {
            portal,
            email,
            purpose,
            summary,
        };
        return page(&p, &parts.headers, tok.as_deref(), status);
    }
    let meta = request_meta(&parts);
    if let Err(e) = st.custos.portal_gate(&meta).await {
        return unavailable(&parts.headers, e);
    }
    let gpc_sent = gpc(&parts.headers);
    let e = email.value.trim();
    let mut done = if gpc_sent && purpose.value == "sale_share" {
        st.custos.record_opt_out(&meta, e, "gpc").await
    } else {
        st.custos
            .withdraw_consent_by_email(&meta, e, &purpose.value)
            .await
    };
    if gpc_sent && purpose.value != "sale_share" && done.is_ok() {
        done = st.custos.record_opt_out(&meta, e, "gpc").await;
    }
    if let Err(e) = done {
        return unavailable(&parts.headers, e);
    }
    redirect_flash(
        "/privacy/thanks",
        if gpc_sent {
            "portal.withdrawn_gpc"
        } else {
            "portal.withdrawn"
        },
    )
}

#[derive(Template)]
#[template(path = "portal_thanks.html")]
struct ThanksPage {
    portal: PortalShell,
    lines: Vec<&'static str>,
}

async fn thanks(headers: HeaderMap) -> Response {
    let code = flash_code(&headers).unwrap_or_default();
    let mut lines = match code.trim_end_matches("_gpc") {
        "portal.opted_out" => vec![
            "If we hold personal information linked to this email address, we have recorded your opt-out, and we will leave it out of every sale or sharing from now on.",
        ],
        "portal.withdrawn" => vec![
            "If we hold personal information linked to this email address, we have recorded that you withdrew your consent, and we stop that use of your data from now on.",
            "Withdrawing consent does not affect what we did with your consent before.",
        ],
        _ => vec!["Your choice has been recorded if it was sent from this page."],
    };
    if code.ends_with("_gpc") {
        lines.push("Your browser also sent Global Privacy Control: we have recorded it as your opt-out of the sale and sharing of your personal information.");
    }
    let (portal, new) = shell(&headers, "Thank you", "");
    let tok = new.then(|| portal.csrf.clone());
    let p = ThanksPage { portal, lines };
    page(&p, &headers, tok.as_deref(), StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_covers_every_kind_of_customer_data_with_basis_and_retention() {
        let n = customer_notice(&Default::default());
        let names: Vec<&str> = n.iter().map(|s| s.id).collect();
        for c in [
            "identity",
            "contact_details",
            "financial",
            "communications",
            "behavioural",
        ] {
            assert!(names.contains(&c), "the notice lacks {c}: {names:?}");
        }
        assert!(!names.contains(&"credentials"));
        for s in &n {
            assert!(
                !s.purposes.is_empty() && !s.retention.is_empty(),
                "{}",
                s.id
            );
        }
        let contact = n
            .iter()
            .find(|s| s.id == "contact_details")
            .expect("contact details");
        assert!(contact.recipients.iter().any(|r| r == "shipping carrier"));
        assert!(contact.what.iter().any(|w| w.contains("shipping address")));
    }
}
