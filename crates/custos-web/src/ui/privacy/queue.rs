//! The request queue: filters, the legal clock of each request, keyset pages.

use super::*;
use crate::AppState;
use crate::ui::shell::{Ctx, Section, Shell};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custos_domain::Entity;
use custos_domain::policy::Operation;
use custos_service::{RequestView, ServiceError};
use time::OffsetDateTime;

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

pub(super) fn queue_row(v: &RequestView, now: OffsetDateTime) -> QueueRow {
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
pub(super) struct QueuePage {
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

pub(super) fn get_pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub(super) fn queue_href(filter: &str, cursor: Option<&str>, back: &[String]) -> String {
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

pub(super) async fn queue(State(st): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> Response {
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
