//! The privacy officer's overview page and the privacy tiles of the dashboard.

use super::*;
use crate::AppState;
use crate::ui::charts::{Bar, hbars, vbars};
use crate::ui::fields::{self, plural};
use crate::ui::shell::{Ctx, Section, Shell};
use crate::ui::widgets::{Item, Tile};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::Entity;
use custos_domain::policy::Operation;
use custos_domain::value::parse_timestamp;
use custos_service::{DsarSummary, RequestView};
use time::Duration;

/// The privacy tiles: open requests, due within a week, overdue, and the
/// median time to close. Empty for roles that do not handle requests.
pub async fn dashboard_tiles(st: &AppState, ctx: &Ctx) -> Vec<Tile> {
    if !ctx.may(Operation::Read, Entity::Request) {
        return Vec::new();
    }
    let Ok(s) = st.custos.dsar_summary(&ctx.caller.principal).await else {
        return Vec::new();
    };
    tiles_of(st, ctx, &s).await
}

/// The privacy tiles of these figures.
async fn tiles_of(st: &AppState, ctx: &Ctx, s: &DsarSummary) -> Vec<Tile> {
    let p = &ctx.caller.principal;
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
pub(super) struct OverviewPage {
    shell: Shell,
    tiles: Vec<Tile>,
    /// The processing flags in force: (words, how many people).
    flags: Vec<(&'static str, String)>,
    /// Legal holds in force past their review date.
    holds_to_review: u64,
    /// The minimisation review's due date, while it is due.
    review_due: Option<String>,
    as_of: String,
    new_href: Option<String>,
}

pub(super) async fn overview(State(st): State<AppState>, ctx: Ctx) -> Response {
    // A role that does not handle requests is refused (and audited as such)
    // by the service.
    let s = match st.custos.dsar_summary(&ctx.caller.principal).await {
        Ok(s) => s,
        Err(e) => return ctx.error(&st, e).await,
    };
    let flags = s
        .flags_in_force
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| (flag_label(*f), plural(*n, "person", "people")))
        .collect();
    let page = OverviewPage {
        shell: ctx
            .shell(&st, "Privacy", Section::Privacy("/app/privacy"))
            .await,
        tiles: tiles_of(&st, &ctx, &s).await,
        flags,
        holds_to_review: match ctx.role() {
            custos_domain::Role::Admin | custos_domain::Role::PrivacyOfficer => st
                .custos
                .holds_due_for_review(&ctx.caller.principal)
                .await
                .unwrap_or(0),
            _ => 0,
        },
        review_due: st
            .custos
            .minimisation_review_due(&ctx.caller.principal)
            .await
            .unwrap_or(None),
        as_of: fields::when(st.custos.clock().now()),
        new_href: ctx
            .may(Operation::Create, Entity::Request)
            .then(|| "/app/privacy/requests/new".to_string()),
    };
    ctx.page(&page, StatusCode::OK)
}
