//! The auditor's view of the audit ledger (Security › Audit ledger), for the
//! roles that may read it (admin, auditor, privacy officer):
//!
//! - `/app/audit`: the ledger's status (size, root, bytes, checkpoints), an
//!   hourly activity chart by action (SVG made here, with a text alternative
//!   and the figures as a table), and event search by subject, actor, action
//!   and time with keyset paging, newest first;
//! - `/app/audit/events/{index}`: one event in full, with its leaf bytes;
//! - `/app/audit/users/{id}`: one user's activity as a timeline;
//! - `/app/audit/export`: a CSV of an event range in which every leaf carries
//!   its inclusion proof against a checkpoint signed for the export, and whose
//!   last two rows carry that checkpoint and the verifier key, so a third
//!   party can verify it offline (the page gives the recipe);
//! - "who accessed this contact" on contact pages ([`who_accessed`]).
//!
//! The ledger holds ids, never personal values, and only ids and action names
//! go into URLs. Every read goes through the service, which checks the role
//! again (and records refusals).

use super::charts::esc;
use super::fields::FormField;
use super::shell::{Ctx, Section, Shell};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use custos_domain::Entity;
use custos_domain::value::{from_unix_ms, parse_timestamp, to_unix_ms};
use custos_service::{
    AuditActivity, AuditEntry, EXPORT_MAX_EVENTS, EventFilter, EventQuery, LedgerExport,
    ServiceError, reads_ledger,
};
use std::fmt::Write;
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

/// Events per page of the search and the user timeline.
const PAGE: u32 = 50;
/// Events shown in "who accessed this contact".
const WHO_LATEST: usize = 10;
/// Action rows of the activity chart (the rest are summed as "other").
const CHART_ACTIONS: usize = 6;
const HOUR_MS: i64 = 3_600_000;

/// The ledger routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/audit", get(index))
        .route("/app/audit/events/{index}", get(event))
        .route("/app/audit/users/{id}", get(user))
        .route("/app/audit/export", get(export_form).post(export))
        .route("/app/audit/checkpoint", get(checkpoint))
        .route("/app/audit/verifier-key", get(verifier_key))
}

// ---------------------------------------------------------------- helpers

fn parse_query(raw: Option<String>) -> Pairs {
    serde_urlencoded::from_str::<Pairs>(raw.as_deref().unwrap_or_default()).unwrap_or_default()
}

fn value<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .unwrap_or_default()
}

fn href(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

use super::fields::{grouped, plural};

fn bytes_text(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if f < K {
        plural(b, "byte", "bytes")
    } else if f < K * K {
        format!("{:.1} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / K / K)
    } else {
        format!("{:.2} GiB", f / K / K / K)
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The start of the hour a time falls in.
fn hour_floor(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// `2026-01-31 09:30:12 UTC` from the ledger's RFC 3339 time.
fn when(iso: &str) -> String {
    match parse_timestamp(iso) {
        Some(t) => format!(
            "{} {:02}:{:02}:{:02} UTC",
            custos_domain::value::format_date(t.date()),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => iso.to_string(),
    }
}

fn hour_label(ms: i64) -> String {
    match from_unix_ms(ms) {
        Some(t) => format!("{:02}:00", t.hour()),
        None => String::new(),
    }
}

fn day_hour_label(ms: i64) -> String {
    match from_unix_ms(ms) {
        Some(t) => format!(
            "{} {:02}:00",
            custos_domain::value::format_date(t.date()),
            t.hour()
        ),
        None => String::new(),
    }
}

/// The first eight characters of an id, for tables; pages of one event show it whole.
fn short(id: &str) -> String {
    if id.chars().count() > 9 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_string()
    }
}

/// A time from a search form: a `datetime-local` value (UTC), a date, or RFC 3339.
fn parse_time(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let full = match raw.len() {
        10 => format!("{raw}T00:00:00Z"),
        16 if raw.as_bytes().get(10) == Some(&b'T') => format!("{raw}:00Z"),
        19 if raw.as_bytes().get(10) == Some(&b'T') => format!("{raw}Z"),
        _ => raw.to_string(),
    };
    parse_timestamp(&full).map(to_unix_ms)
}

/// The ledger's actor for what a search form names: a user id (bare or as
/// `user:<id>`), `token:<id>`, or `cli`, `system`, `anonymous`.
fn actor_filter(raw: &str) -> Option<String> {
    let r = raw.trim();
    if let Ok(u) = Uuid::parse_str(r) {
        return Some(format!("user:{u}"));
    }
    for prefix in ["user:", "token:"] {
        if let Some(rest) = r.strip_prefix(prefix) {
            return Uuid::parse_str(rest).ok().map(|u| format!("{prefix}{u}"));
        }
    }
    matches!(r, "cli" | "system" | "anonymous").then(|| r.to_string())
}

fn valid_action(a: &str) -> bool {
    (1..=100).contains(&a.len())
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

// ---------------------------------------------------------------- criteria

/// What a search (or an export) asks for, as entered.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// Subject id.
    pub subject: String,
    /// Actor (user id, or cli/system/anonymous).
    pub actor: String,
    /// Action name.
    pub action: String,
    /// From (UTC), inclusive.
    pub from: String,
    /// To (UTC), exclusive.
    pub to: String,
}

impl Criteria {
    fn read(q: &[(String, String)]) -> Criteria {
        Criteria {
            subject: value(q, "subject").to_string(),
            actor: value(q, "actor").to_string(),
            action: value(q, "action").to_string(),
            from: value(q, "from").to_string(),
            to: value(q, "to").to_string(),
        }
    }

    fn pairs(&self) -> Pairs {
        [
            ("subject", &self.subject),
            ("actor", &self.actor),
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// The store filter; problems go to `errors` as (field, message).
    fn filter(&self, errors: &mut Vec<(&'static str, String)>) -> EventFilter {
        let mut f = EventFilter::default();
        if !self.subject.is_empty() {
            match Uuid::parse_str(&self.subject) {
                Ok(u) => f.subject_id = Some(u.to_string()),
                Err(_) => errors.push((
                    "subject",
                    "Subject: enter the id of a person (a UUID such as 0190a1b2-…).".into(),
                )),
            }
        }
        if !self.actor.is_empty() {
            match actor_filter(&self.actor) {
                Some(a) => f.actor = Some(a),
                None => errors.push((
                    "actor",
                    "Actor: enter a user id (a UUID), or cli, system or anonymous.".into(),
                )),
            }
        }
        if !self.action.is_empty() {
            if valid_action(&self.action) {
                f.action = Some(self.action.clone());
            } else {
                errors.push(("action", "Action: use an action name such as contact.read (letters, digits, dots, dashes).".into()));
            }
        }
        for (name, raw, slot) in [
            ("from", &self.from, &mut f.from_ms),
            ("to", &self.to, &mut f.to_ms),
        ] {
            if !raw.is_empty() {
                match parse_time(raw) {
                    Some(ms) => *slot = Some(ms),
                    None => errors.push((
                        name,
                        format!(
                            "{}: enter a date and time such as 2026-01-31T09:30 (UTC).",
                            if name == "from" { "From" } else { "To" }
                        ),
                    )),
                }
            }
        }
        if let (Some(a), Some(b)) = (f.from_ms, f.to_ms)
            && a >= b
        {
            errors.push(("to", "To: must be later than From.".into()));
        }
        f
    }
}

/// Keyset paging newest first: `before` is the cursor, `back` the cursors of
/// the pages before this one (`~` for the first page), so Previous needs no
/// reversed query.
struct Paging {
    before: Option<u64>,
    back: Vec<String>,
}

impl Paging {
    fn read(q: &[(String, String)]) -> Paging {
        let before = value(q, "before").parse().ok();
        let back = value(q, "back")
            .split('.')
            .filter(|s| *s == "~" || s.parse::<u64>().is_ok())
            .take(200)
            .map(str::to_string)
            .collect();
        Paging { before, back }
    }

    /// (previous, next) links.
    fn links(
        &self,
        path: &str,
        keep: &Pairs,
        next: Option<u64>,
    ) -> (Option<String>, Option<String>) {
        let here = self
            .before
            .map(|b| b.to_string())
            .unwrap_or_else(|| "~".into());
        let next_href = next.map(|n| {
            let mut q = keep.clone();
            q.push(("before".into(), n.to_string()));
            let mut b = self.back.clone();
            b.push(here.clone());
            q.push(("back".into(), b.join(".")));
            href(path, &q)
        });
        let prev_href = self.back.split_last().map(|(prev, rest)| {
            let mut q = keep.clone();
            if prev != "~" {
                q.push(("before".into(), prev.clone()));
            }
            if !rest.is_empty() {
                q.push(("back".into(), rest.join(".")));
            }
            href(path, &q)
        });
        (prev_href, next_href)
    }

    fn page_number(&self) -> usize {
        self.back.len() + 1
    }
}

// ---------------------------------------------------------------- event rows

/// An id shown short, with a link and the whole id.
#[derive(Debug, Clone)]
pub struct Ref {
    /// What the table shows.
    pub text: String,
    /// The whole value.
    pub full: String,
    /// Where it leads, if anywhere.
    pub href: Option<String>,
}

/// One decoded event, ready for a table or a timeline.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Leaf index.
    pub index: u64,
    /// The event's own page.
    pub href: String,
    /// When, for people (seconds, UTC).
    pub when: String,
    /// When, RFC 3339.
    pub iso: String,
    /// Who.
    pub actor: Ref,
    /// What was done, e.g. `contact.read`.
    pub action: String,
    /// Search for this action.
    pub action_href: String,
    /// The data subject concerned.
    pub subject: Option<Ref>,
    /// The record concerned.
    pub record: Option<Ref>,
    /// Data categories touched.
    pub categories: String,
    /// Processing purpose, if any.
    pub purpose: String,
    /// Outcome in words.
    pub outcome: &'static str,
    /// Outcome code (`success`, `denied`, …), for the badge.
    pub outcome_code: String,
    /// Client address.
    pub client: String,
    /// Request id.
    pub request_id: String,
    /// Request id, shortened for tables.
    pub request_short: String,
    /// Non-personal note.
    pub detail: String,
}

fn actor_ref(actor: &str, me: Uuid) -> Ref {
    let full = actor.to_string();
    if let Some(id) = actor.strip_prefix("user:") {
        let text = if id == me.to_string() {
            "You".to_string()
        } else {
            format!("User {}", short(id))
        };
        return Ref {
            text,
            full,
            href: Some(format!("/app/audit/users/{id}")),
        };
    }
    if let Some(id) = actor.strip_prefix("token:") {
        return Ref {
            text: format!("API token {}", short(id)),
            href: Some(href("/app/audit", &[("actor".into(), actor.to_string())])),
            full,
        };
    }
    let text = match actor {
        "cli" => "Command line",
        "system" => "System",
        "anonymous" => "Anonymous",
        other => other,
    };
    Ref {
        text: text.to_string(),
        href: Some(href("/app/audit", &[("actor".into(), actor.to_string())])),
        full,
    }
}

fn record_ref(record: &str) -> Ref {
    let (name, id) = record.split_once(':').unwrap_or((record, ""));
    let entity = Entity::from_name(name);
    let page = entity
        .filter(|e| Entity::CRM.contains(e))
        .zip(Uuid::parse_str(id).ok())
        .map(|(e, id)| format!("/app/{}/{id}", e.plural()));
    Ref {
        text: format!(
            "{} {}",
            entity.map(|e| e.label()).unwrap_or(name),
            short(id)
        )
        .trim()
        .to_string(),
        full: record.to_string(),
        href: page,
    }
}

fn outcome_words(o: &str) -> &'static str {
    match o {
        "success" => "Success",
        "denied" => "Denied",
        "failed" => "Failed",
        "not_found" => "Not found",
        _ => "Other",
    }
}

/// The row of one ledger entry, as seen by the user `me`.
pub fn event_row(e: &AuditEntry, me: Uuid) -> EventRow {
    let ev = &e.event;
    EventRow {
        index: e.index,
        href: format!("/app/audit/events/{}", e.index),
        when: when(&ev.time),
        iso: ev.time.clone(),
        actor: actor_ref(&ev.actor, me),
        action: ev.action.clone(),
        action_href: href("/app/audit", &[("action".into(), ev.action.clone())]),
        subject: ev.subject_id.as_ref().map(|s| Ref {
            text: short(s),
            full: s.clone(),
            href: Some(href("/app/audit", &[("subject".into(), s.clone())])),
        }),
        record: ev.record.as_deref().map(record_ref),
        categories: ev.categories.join(", "),
        purpose: ev.purpose.clone().unwrap_or_default(),
        outcome: outcome_words(&ev.outcome),
        outcome_code: ev.outcome.clone(),
        client: ev.client.clone().unwrap_or_default(),
        request_id: ev.request_id.clone().unwrap_or_default(),
        request_short: short(ev.request_id.as_deref().unwrap_or_default()),
        detail: ev.detail.clone().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- the chart

/// The activity chart's figures as a table (its text alternative).
#[derive(Debug, Clone, Default)]
pub struct ChartTable {
    /// Column headings after the hour.
    pub columns: Vec<String>,
    /// (hour, counts per column).
    pub rows: Vec<(String, Vec<u64>)>,
}

/// Small multiples: one row of hourly bars per action (the busiest first,
/// the rest summed as "other actions"), under a row of all events. Action rows
/// share one scale; the all-events row has its own. No colour carries meaning.
fn activity_chart(a: &AuditActivity) -> (String, ChartTable, String) {
    let mut series: Vec<(String, Vec<u64>)> = vec![("All events".into(), a.total.clone())];
    for (name, counts) in a.actions.iter().take(CHART_ACTIONS) {
        series.push((name.clone(), counts.clone()));
    }
    if a.actions.len() > CHART_ACTIONS {
        let mut other = vec![0u64; a.hours as usize];
        for (_, counts) in a.actions.iter().skip(CHART_ACTIONS) {
            for (o, c) in other.iter_mut().zip(counts) {
                *o += c;
            }
        }
        series.push((
            format!("{} other actions", a.actions.len() - CHART_ACTIONS),
            other,
        ));
    }
    let hours = a.hours as usize;
    let start = |h: usize| a.from_ms + h as i64 * HOUR_MS;
    let total: u64 = a.total.iter().sum();
    let busiest = a
        .total
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
        .filter(|(_, c)| **c > 0);

    let title = format!("Ledger events per hour by action, last {hours} hours (UTC)");
    let mut desc = format!(
        "{} from {} to {} UTC.",
        plural(total, "event", "events"),
        day_hour_label(start(0)),
        day_hour_label(start(hours))
    );
    if let Some((h, c)) = busiest {
        let _ = write!(
            desc,
            " Busiest hour: {} with {}.",
            day_hour_label(start(h)),
            plural(*c, "event", "events")
        );
    }
    for (name, counts) in series.iter().skip(1) {
        let _ = write!(desc, " {name}: {}.", grouped(counts.iter().sum::<u64>()));
    }

    let width = 960.0;
    let label_w = 210.0;
    let plot_w = width - label_w - 8.0;
    let row_h = 34.0;
    let bar_max = 24.0;
    let slot = plot_w / hours.max(1) as f64;
    let bw = (slot * 0.7).max(1.0);
    let height = series.len() as f64 * row_h + 22.0;
    let action_max = series
        .iter()
        .skip(1)
        .flat_map(|(_, c)| c.iter().copied())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart chart-wide\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-labelledby=\"chart-activity-t chart-activity-d\" focusable=\"false\">\
<title id=\"chart-activity-t\">{}</title><desc id=\"chart-activity-d\">{}</desc>",
        esc(&title),
        esc(&desc)
    );
    for (r, (name, counts)) in series.iter().enumerate() {
        let top = r as f64 * row_h;
        let base = top + 4.0 + bar_max;
        let max = if r == 0 {
            counts.iter().copied().max().unwrap_or(0)
        } else {
            action_max
        };
        let shown: String = if name.chars().count() > 26 {
            format!("{}…", name.chars().take(25).collect::<String>())
        } else {
            name.clone()
        };
        let class = if r == 0 {
            "chart-label chart-label-strong"
        } else {
            "chart-label"
        };
        let _ = write!(
            s,
            "<text class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} · {}</text>\
<line class=\"chart-axis\" x1=\"{label_w}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"></line>",
            label_w - 8.0,
            base - 4.0,
            esc(&shown),
            grouped(counts.iter().sum::<u64>()),
            width - 8.0,
        );
        for (h, c) in counts.iter().enumerate() {
            if *c == 0 || max == 0 {
                continue;
            }
            let bh = (*c as f64 / max as f64 * bar_max).max(2.0);
            let x = label_w + h as f64 * slot + (slot - bw) / 2.0;
            let bar = if r == 0 {
                "chart-bar chart-now"
            } else {
                "chart-bar"
            };
            let _ = write!(
                s,
                "<rect class=\"{bar}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" rx=\"1\"></rect>",
                base - bh
            );
        }
    }
    let axis_y = series.len() as f64 * row_h + 14.0;
    for h in (0..hours).step_by(6) {
        let x = label_w + h as f64 * slot + slot / 2.0;
        let _ = write!(
            s,
            "<text class=\"chart-label\" x=\"{x:.1}\" y=\"{axis_y:.1}\" text-anchor=\"middle\">{}</text>",
            hour_label(start(h))
        );
    }
    s.push_str("</svg>");

    let table = ChartTable {
        columns: series.iter().map(|(n, _)| n.clone()).collect(),
        rows: (0..hours)
            .map(|h| {
                (
                    day_hour_label(start(h)),
                    series.iter().map(|(_, c)| c[h]).collect(),
                )
            })
            .collect(),
    };
    (s, table, desc)
}

// ---------------------------------------------------------------- /app/audit

/// A background job whose latest run failed, as the audit page warns of it.
#[derive(Debug, Clone)]
pub struct JobWarning {
    /// What the job does, in words.
    pub name: String,
    /// When it started failing.
    pub since: String,
    /// When it last succeeded, in words.
    pub last: String,
    /// Why the latest run failed.
    pub error: String,
}

fn job_label(name: &str) -> String {
    match name {
        "checkpoint" => "Signing ledger checkpoints".into(),
        "backup" => "Scheduled backups".into(),
        "certificate" => "Reloading the TLS certificate".into(),
        other => crate::ui::fields::humanize(other),
    }
}

#[derive(Template)]
#[template(path = "audit_index.html")]
struct IndexPage {
    shell: Shell,
    failing_jobs: Vec<JobWarning>,
    facts: Vec<(&'static str, String)>,
    root_hex: String,
    verifier_key: String,
    hours: u32,
    windows: Vec<(String, String, bool)>,
    chart: String,
    chart_summary: String,
    chart_table: ChartTable,
    chart_note: String,
    criteria: Criteria,
    actions: Vec<String>,
    errors: Vec<(&'static str, String)>,
    rows: Vec<EventRow>,
    count_text: String,
    prev_href: Option<String>,
    next_href: Option<String>,
    filtered: bool,
    export_href: String,
}

async fn index(State(st): State<AppState>, ctx: Ctx, RawQuery(raw): RawQuery) -> Response {
    let p = &ctx.caller.principal;
    let status = match st.custos.ledger_status(p).await {
        Ok(s) => s,
        Err(e) => return ctx.error(&st, e).await,
    };
    let q = parse_query(raw);
    let hours: u32 = if value(&q, "hours") == "48" { 48 } else { 24 };
    let now = to_unix_ms(st.custos.clock().now());
    let from_ms = hour_floor(now) - i64::from(hours - 1) * HOUR_MS;
    let activity = match st.custos.audit_activity(p, from_ms, hours).await {
        Ok(a) => a,
        Err(e) => return ctx.error(&st, e).await,
    };
    let (chart, chart_table, chart_summary) = activity_chart(&activity);
    let chart_note = if activity.truncated {
        format!(
            "Only the newest {} events of this window are counted.",
            grouped(u64::from(custos_service::ACTIVITY_MAX_EVENTS))
        )
    } else {
        String::new()
    };
    let mut actions: Vec<String> = activity.actions.iter().map(|(a, _)| a.clone()).collect();
    actions.sort();

    let criteria = Criteria::read(&q);
    let paging = Paging::read(&q);
    let mut errors = Vec::new();
    let mut filter = criteria.filter(&mut errors);
    filter.before_index = paging.before;
    let mut keep = criteria.pairs();
    if hours != 24 {
        keep.push(("hours".into(), hours.to_string()));
    }
    let (mut rows, mut prev_href, mut next_href) = (Vec::new(), None, None);
    if errors.is_empty() {
        let query = EventQuery {
            filter,
            limit: PAGE,
        };
        match st.custos.audit_events(p, &query).await {
            Ok((entries, next)) => {
                rows = entries
                    .iter()
                    .map(|e| event_row(e, p.user_id))
                    .collect::<Vec<_>>();
                (prev_href, next_href) = paging.links("/app/audit", &keep, next);
                prev_href = prev_href.map(|h| format!("{h}#events"));
                next_href = next_href.map(|h| format!("{h}#events"));
            }
            Err(ServiceError::Invalid(errs)) => {
                errors.extend(errs.into_iter().map(|e| ("subject", e.message)));
            }
            Err(e) => return ctx.error(&st, e).await,
        }
    }
    let count_text = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "Page {}: {}, newest first (entries {} to {})",
            paging.page_number(),
            plural(rows.len() as u64, "event", "events"),
            grouped(rows.last().map(|r| r.index).unwrap_or(0)),
            grouped(rows.first().map(|r| r.index).unwrap_or(0)),
        )
    };
    let latest = match status.latest_checkpoint_size {
        Some(n) if n == status.size => format!("{} entries (all of them)", grouped(n)),
        Some(n) => format!(
            "{} entries; {} newer not yet signed",
            grouped(n),
            grouped(status.size - n)
        ),
        None => "None yet".into(),
    };
    let facts = vec![
        ("Entries", grouped(status.size)),
        ("Stored size", bytes_text(status.bytes)),
        ("Signed checkpoints", grouped(status.checkpoints)),
        ("Latest checkpoint", latest),
    ];
    let windows = [24u32, 48]
        .into_iter()
        .map(|h| {
            let mut q = criteria.pairs();
            if h != 24 {
                q.push(("hours".into(), h.to_string()));
            }
            (
                format!("Last {h} hours"),
                format!("{}#activity", href("/app/audit", &q)),
                h == hours,
            )
        })
        .collect();
    let failing_jobs = st
        .custos
        .job_statuses()
        .into_iter()
        .filter(|j| !j.healthy())
        .map(|j| {
            let since = j
                .failing_since_ms
                .and_then(custos_domain::value::from_unix_ms)
                .map(crate::ui::fields::when)
                .unwrap_or_default();
            let last = j
                .last_success_ms
                .and_then(custos_domain::value::from_unix_ms)
                .map(|t| format!("last succeeded {}", crate::ui::fields::when(t)))
                .unwrap_or_else(|| "has not succeeded since the server started".into());
            JobWarning {
                name: job_label(&j.name),
                since,
                last,
                error: j.error.unwrap_or_default(),
            }
        })
        .collect();
    let page = IndexPage {
        shell: ctx.shell(&st, "Audit ledger", Section::Audit).await,
        failing_jobs,
        facts,
        root_hex: status.root_hex,
        verifier_key: st.custos.ledger_verifier_key().unwrap_or_default(),
        hours,
        windows,
        chart,
        chart_summary,
        chart_table,
        chart_note,
        filtered: !criteria.is_empty(),
        export_href: href("/app/audit/export", &criteria.pairs()),
        criteria,
        actions,
        errors,
        rows,
        count_text,
        prev_href,
        next_href,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ctx.page(&page, status)
}

// ---------------------------------------------------------------- one event

#[derive(Template)]
#[template(path = "audit_event.html")]
struct EventPage {
    shell: Shell,
    row: EventRow,
    leaf: String,
    prev_href: Option<String>,
    next_href: Option<String>,
}

async fn event(State(st): State<AppState>, ctx: Ctx, Path(raw): Path<String>) -> Response {
    let p = &ctx.caller.principal;
    let Ok(index) = raw.parse::<u64>() else {
        return ctx.error(&st, ServiceError::NotFound("ledger entry")).await;
    };
    let entries = match st.custos.audit_entries(p, index, index + 1).await {
        Ok(e) => e,
        Err(e) => return ctx.error(&st, e).await,
    };
    let Some(entry) = entries.first() else {
        return ctx.error(&st, ServiceError::NotFound("ledger entry")).await;
    };
    let leaf = match st.custos.audit_leaf_bytes(p, index, index + 1).await {
        Ok(l) => l
            .first()
            .map(|(_, d)| String::from_utf8_lossy(d).to_string())
            .unwrap_or_default(),
        Err(e) => return ctx.error(&st, e).await,
    };
    let size = match st.custos.ledger_status(p).await {
        Ok(s) => s.size,
        Err(e) => return ctx.error(&st, e).await,
    };
    let page = EventPage {
        shell: ctx
            .shell(
                &st,
                format!("Ledger entry {}", grouped(index)),
                Section::Audit,
            )
            .await,
        row: event_row(entry, p.user_id),
        leaf,
        prev_href: index
            .checked_sub(1)
            .map(|i| format!("/app/audit/events/{i}")),
        next_href: (index + 1 < size).then(|| format!("/app/audit/events/{}", index + 1)),
    };
    ctx.page(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- a user's timeline

/// A day of a user's timeline.
#[derive(Debug, Clone)]
pub struct Day {
    /// The date, `YYYY-MM-DD`.
    pub date: String,
    /// Its events, newest first.
    pub events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "audit_user.html")]
struct UserPage {
    shell: Shell,
    user_id: String,
    is_me: bool,
    days: Vec<Day>,
    count_text: String,
    prev_href: Option<String>,
    next_href: Option<String>,
    search_href: String,
    export_href: String,
}

async fn user(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = &ctx.caller.principal;
    let Ok(id) = Uuid::parse_str(&raw) else {
        return ctx.error(&st, ServiceError::NotFound("user")).await;
    };
    let q = parse_query(q);
    let paging = Paging::read(&q);
    let query = EventQuery {
        filter: EventFilter {
            actor: Some(format!("user:{id}")),
            before_index: paging.before,
            ..Default::default()
        },
        limit: PAGE,
    };
    let (entries, next) = match st.custos.audit_events(p, &query).await {
        Ok(r) => r,
        Err(e) => return ctx.error(&st, e).await,
    };
    let path = format!("/app/audit/users/{id}");
    let (prev_href, next_href) = paging.links(&path, &Vec::new(), next);
    let mut days: Vec<Day> = Vec::new();
    for e in &entries {
        let row = event_row(e, p.user_id);
        let date = row.iso.get(..10).unwrap_or_default().to_string();
        match days.last_mut() {
            Some(d) if d.date == date => d.events.push(row),
            _ => days.push(Day {
                date,
                events: vec![row],
            }),
        }
    }
    let count_text = if entries.is_empty() {
        String::new()
    } else {
        format!(
            "Page {}: {}, newest first",
            paging.page_number(),
            plural(entries.len() as u64, "event", "events")
        )
    };
    let actor = vec![("actor".to_string(), id.to_string())];
    let page = UserPage {
        shell: ctx
            .shell(
                &st,
                format!("Activity of user {}", short(&id.to_string())),
                Section::Audit,
            )
            .await,
        user_id: id.to_string(),
        is_me: id == p.user_id,
        days,
        count_text,
        prev_href,
        next_href,
        search_href: href("/app/audit", &actor),
        export_href: href("/app/audit/export", &actor),
    };
    ctx.page(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- who accessed

/// "Who accessed this contact": the latest ledger events about a person.
#[derive(Debug, Clone)]
pub struct WhoAccessed {
    /// The latest events, newest first.
    pub rows: Vec<EventRow>,
    /// Search for every event about them.
    pub all_href: String,
    /// Why the ledger could not be read, if it could not.
    pub problem: Option<String>,
}

/// The section for a contact page, for roles that read the ledger (others get
/// `None`, and nothing is asked of the ledger for them).
pub async fn who_accessed(st: &AppState, ctx: &Ctx, subject: Uuid) -> Option<WhoAccessed> {
    let p = &ctx.caller.principal;
    if !reads_ledger(p.role) {
        return None;
    }
    let all_href = href("/app/audit", &[("subject".into(), subject.to_string())]);
    Some(
        match st
            .custos
            .audit_events_for_subject(p, subject, WHO_LATEST)
            .await
        {
            Ok(entries) => WhoAccessed {
                rows: entries.iter().map(|e| event_row(e, p.user_id)).collect(),
                all_href,
                problem: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "who accessed: ledger read failed");
                WhoAccessed {
                    rows: Vec::new(),
                    all_href,
                    problem: Some("The audit ledger could not be read just now.".into()),
                }
            }
        },
    )
}

// ---------------------------------------------------------------- export

#[derive(Template)]
#[template(path = "audit_export.html")]
struct ExportPage {
    shell: Shell,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    max: String,
    verifier_key: String,
}

fn export_fields(q: &[(String, String)], errors: &[(&'static str, String)]) -> Vec<FormField> {
    let field =
        |name: &'static str, label: &str, help: &'static str, control: &'static str| FormField {
            name,
            label: label.into(),
            help,
            required: false,
            control,
            value: value(q, name).to_string(),
            options: Vec::new(),
            maxlength: 100,
            error: errors.iter().find(|(f, _)| *f == name).map(|(_, m)| {
                let words = m.split_once(": ").map_or(m.as_str(), |x| x.1);
                let mut c = words.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }),
            shown_as: String::new(),
            ..Default::default()
        };
    vec![
        field(
            "first",
            "First entry (index)",
            "The lowest ledger index to include; leave empty to start at the beginning.",
            "text",
        ),
        field(
            "last",
            "Last entry (index)",
            "The highest ledger index to include; leave empty for the newest.",
            "text",
        ),
        field(
            "from",
            "From",
            "Only events at or after this time; leave empty for no limit.",
            "datetime-local",
        ),
        field(
            "to",
            "To",
            "Only events before this time; leave empty for no limit.",
            "datetime-local",
        ),
        field(
            "subject",
            "Subject id",
            "Only events about this person (a UUID).",
            "text",
        ),
        field(
            "actor",
            "Actor",
            "Only events by this user id (a UUID), or cli, system or anonymous.",
            "text",
        ),
        field(
            "action",
            "Action",
            "Only events of this action, e.g. contact.read.",
            "text",
        ),
    ]
}

async fn export_page(
    st: &AppState,
    ctx: &Ctx,
    q: &[(String, String)],
    errors: &[(&'static str, String)],
    status: StatusCode,
) -> Response {
    let page = ExportPage {
        shell: ctx
            .shell(st, "Export events with proofs", Section::Audit)
            .await,
        fields: export_fields(q, errors),
        summary: errors
            .iter()
            .map(|(f, m)| {
                let target = if *f == "range" {
                    String::new()
                } else {
                    format!("#f-{f}")
                };
                (target, m.clone())
            })
            .collect(),
        max: grouped(u64::from(EXPORT_MAX_EVENTS)),
        verifier_key: st.custos.ledger_verifier_key().unwrap_or_default(),
    };
    ctx.page(&page, status)
}

async fn export_form(State(st): State<AppState>, ctx: Ctx, RawQuery(raw): RawQuery) -> Response {
    // Only ledger readers get the form (the status call checks and records refusals).
    if let Err(e) = st.custos.ledger_status(&ctx.caller.principal).await {
        return ctx.error(&st, e).await;
    }
    let q = parse_query(raw);
    export_page(&st, &ctx, &q, &[], StatusCode::OK).await
}

async fn export(State(st): State<AppState>, ctx: Ctx, Form(form): Form<Pairs>) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let mut errors = Vec::new();
    let mut filter = Criteria::read(&form).filter(&mut errors);
    let mut index = |name: &'static str, label: &str| -> Option<u64> {
        let raw = value(&form, name).replace([',', ' '], "");
        if raw.is_empty() {
            return None;
        }
        let n = raw.parse::<u64>().ok();
        if n.is_none() {
            errors.push((
                name,
                format!("{label}: enter a whole number (a ledger index)."),
            ));
        }
        n
    };
    let first = index("first", "First entry");
    let last = index("last", "Last entry");
    if let (Some(a), Some(b)) = (first, last)
        && a > b
    {
        errors.push((
            "last",
            "Last entry: must not be lower than the first.".into(),
        ));
    }
    if !errors.is_empty() {
        return export_page(&st, &ctx, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    filter.before_index = last.map(|l| l.saturating_add(1));
    match st.custos.audit_export(p, &filter, first.unwrap_or(0)).await {
        Ok(x) => {
            let first = x.leaves.first().map(|l| l.index).unwrap_or(0);
            let last = x.leaves.last().map(|l| l.index).unwrap_or(0);
            let name = format!("custos-audit-{first}-{last}-checkpoint-{}.csv", x.size);
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                export_csv(&x),
            )
                .into_response()
        }
        Err(ServiceError::Invalid(errs)) => {
            let errors: Vec<(&'static str, String)> = errs
                .into_iter()
                .map(|e| {
                    let m = e.message;
                    ("range", format!("{}{}", m[..1].to_uppercase(), &m[1..]))
                })
                .collect();
            export_page(&st, &ctx, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

/// The CSV columns of an export.
pub const EXPORT_COLUMNS: [&str; 17] = [
    "row",
    "index",
    "time",
    "actor",
    "action",
    "subject_id",
    "record",
    "categories",
    "purpose",
    "outcome",
    "client",
    "request_id",
    "detail",
    "leaf_hash",
    "tree_size",
    "inclusion_proof",
    "data",
];

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// A decoded value for people: a spreadsheet would run a value that starts
/// with `=`, `+`, `-` or `@` as a formula, so such values get a leading `'`.
/// The `data` column keeps the exact leaf bytes, which are what is verified.
fn readable(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    }
}

fn csv_row(out: &mut String, cells: &[String]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, c);
    }
    out.push_str("\r\n");
}

/// The export as CSV (RFC 4180, CRLF line ends): a header, one `leaf` row per
/// event (decoded columns for people; `data` holds the exact leaf bytes, the
/// canonical JSON that was hashed; `leaf_hash` and the `inclusion_proof`
/// hashes, bottom up and separated by spaces, are hex), then a `checkpoint`
/// row whose `data` is the signed checkpoint note and a `verifier_key` row
/// whose `data` is the key that verifies it.
pub fn export_csv(x: &LedgerExport) -> String {
    let mut out = String::new();
    csv_row(&mut out, &EXPORT_COLUMNS.map(str::to_string));
    let size = x.size.to_string();
    for l in &x.leaves {
        let e = &l.event;
        let opt = |v: &Option<String>| readable(v.as_deref().unwrap_or_default());
        csv_row(
            &mut out,
            &[
                "leaf".into(),
                l.index.to_string(),
                readable(&e.time),
                readable(&e.actor),
                readable(&e.action),
                opt(&e.subject_id),
                opt(&e.record),
                readable(&e.categories.join(" ")),
                opt(&e.purpose),
                readable(&e.outcome),
                opt(&e.client),
                opt(&e.request_id),
                opt(&e.detail),
                hex(&l.leaf_hash),
                size.clone(),
                l.proof.iter().map(|h| hex(h)).collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&l.data).to_string(),
            ],
        );
    }
    let trailer = |kind: &str, data: &str| {
        let mut cells = vec![String::new(); EXPORT_COLUMNS.len()];
        cells[0] = kind.to_string();
        cells[14] = size.clone();
        cells[16] = data.to_string();
        cells
    };
    csv_row(&mut out, &trailer("checkpoint", &x.checkpoint));
    csv_row(&mut out, &trailer("verifier_key", &x.verifier_key));
    out
}

// ---------------------------------------------------------------- checkpoint text

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The latest signed checkpoint (a new one is signed first if the ledger grew).
async fn checkpoint(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(e) = st.custos.ledger_status(&ctx.caller.principal).await {
        return ctx.error(&st, e).await;
    }
    match st.custos.ledger_checkpoint().await {
        Ok(note) => text(note),
        Err(e) => ctx.error(&st, e).await,
    }
}

async fn verifier_key(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(e) = st.custos.ledger_status(&ctx.caller.principal).await {
        return ctx.error(&st, e).await;
    }
    match st.custos.ledger_verifier_key() {
        Ok(k) => text(format!("{k}\n")),
        Err(e) => ctx.error(&st, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_and_times_from_search_forms() {
        let u = "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B";
        assert_eq!(
            actor_filter(u).as_deref(),
            Some("user:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(actor_filter("cli").as_deref(), Some("cli"));
        assert!(actor_filter("ada@example.com").is_none());
        assert_eq!(
            parse_time("2026-01-31T09:30"),
            parse_time("2026-01-31T09:30:00Z")
        );
        assert_eq!(parse_time("2026-01-31"), parse_time("2026-01-31T00:00:00Z"));
        assert!(parse_time("yesterday").is_none());
        assert!(valid_action("contact.read") && !valid_action("a b"));
    }

    #[test]
    fn csv_quotes_and_guards_formulas() {
        let mut s = String::new();
        csv_field(&mut s, "a,\"b\"\nc");
        assert_eq!(s, "\"a,\"\"b\"\"\nc\"");
        assert_eq!(readable("=cmd()"), "'=cmd()");
        assert_eq!(readable("contact.read"), "contact.read");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(short("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), "0190a1b2…");
    }

    #[test]
    fn the_activity_chart_has_words_and_a_table() {
        let a = AuditActivity {
            from_ms: 0,
            hours: 24,
            total: (0..24).map(|h| h as u64).collect(),
            actions: (0..8)
                .map(|i| (format!("act{i}.<x>"), (0..24).map(|_| i as u64).collect()))
                .collect(),
            truncated: false,
        };
        let (svg, table, desc) = activity_chart(&a);
        assert!(svg.contains("<title id=\"chart-activity-t\">"));
        assert!(svg.contains("act0.&lt;x&gt;"), "labels are escaped");
        assert!(!svg.contains("style="));
        assert!(desc.contains("Busiest hour: 1970-01-01 23:00 with 23 events"));
        assert!(desc.contains("2 other actions"));
        assert_eq!(table.rows.len(), 24);
        assert_eq!(table.columns.len(), 1 + CHART_ACTIONS + 1);
    }
}
