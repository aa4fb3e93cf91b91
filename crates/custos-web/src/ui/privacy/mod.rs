//! The privacy officer's pages: the request queue with its legal clocks, a
//! request's page (verification, matching, extension, fulfilment with a
//! confirmation, lifting a restriction, the result, the package and evidence
//! downloads, the printable access report, the timeline from the ledger), the
//! "New request" form any staff member may use, the privacy tiles of the
//! dashboard, and the consent section of a contact's page. Every call goes
//! through the service, which authorises and audits; the role checks here
//! only decide which links and buttons to show.

use super::fields::{self};
use super::widgets::request_form::form_field;
use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use custos_domain::dsar::{Flag, Kind, State as ReqState};
use custos_domain::value::parse_timestamp;
use custos_service::RequestView;
use time::{Duration, OffsetDateTime};

mod consent;
mod dashboard;
pub mod map;
mod minimisation;
mod new;
mod policy;
pub mod processing;
mod queue;
mod report;
mod request;
mod retention;

use consent::*;
pub use consent::{ContactPrivacy, contact_section};
pub use dashboard::dashboard_tiles;
use dashboard::*;
use new::*;
use queue::*;
use report::*;
use request::*;

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
        .route("/app/privacy/retention", get(retention::retention))
        .route("/app/privacy/retention/run", post(retention::run))
        .route(
            "/app/privacy/retention/policies/{key}",
            get(policy::policy).post(policy::save_policy),
        )
        .route(
            "/app/privacy/retention/runs/{id}",
            get(retention::certificate_page),
        )
        .route(
            "/app/privacy/retention/runs/{id}/certificate.json",
            get(retention::certificate_json),
        )
        .route("/app/privacy/holds", post(retention::place_hold))
        .route(
            "/app/privacy/holds/{id}/lift",
            get(retention::lift_page).post(retention::lift_hold),
        )
        .route("/app/privacy/map", get(processing::map_page))
        .route("/app/privacy/processing", get(processing::processing_page))
        .route(
            "/app/privacy/processing.json",
            get(processing::processing_json),
        )
        .route(
            "/app/privacy/processing.csv",
            get(processing::processing_csv),
        )
        .route(
            "/app/privacy/processors",
            get(processing::processors).post(processing::processor_create),
        )
        .route(
            "/app/privacy/processors/{id}",
            get(processing::processor_edit).post(processing::processor_update),
        )
        .route(
            "/app/privacy/processors/{id}/delete",
            get(processing::processor_delete_page).post(processing::processor_delete),
        )
        .route("/app/privacy/minimisation", get(minimisation::page))
        .route(
            "/app/privacy/minimisation/decide",
            post(minimisation::decide),
        )
        .route(
            "/app/privacy/minimisation/reviewed",
            post(minimisation::reviewed),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

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
}
