//! The dashboard at `/app`: four tiles, each a number, a trend, a small chart
//! made on the server and a link to the list behind it.

use super::charts::{Bar, hbars, vbars};
use super::fields::{self, n_things, plural, size_text};
use super::shell::{Ctx, Section, Shell};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::Value;
use custos_domain::value::format_date;
use custos_service::{Amounts, Dashboard, ListSize, RecordView};
use time::Duration;

pub use super::widgets::{Item, Tile};

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    shell: Shell,
    tiles: Vec<Tile>,
    as_of: String,
}

/// The currency with the most money in it: charts use it, the text names all.
fn main_currency(all: &[&Amounts]) -> Option<Option<String>> {
    let mut totals: std::collections::BTreeMap<Option<String>, i64> = Default::default();
    for a in all {
        for (c, v) in a.iter() {
            *totals.entry(c.clone()).or_default() += v.abs();
        }
    }
    totals.into_iter().max_by_key(|(_, v)| *v).map(|(c, _)| c)
}

fn amounts_text(a: &Amounts) -> String {
    if a.is_empty() {
        return "no amount".into();
    }
    a.iter()
        .map(|(c, v)| {
            format!("{} {}", fields::money(*v), c.as_deref().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The trend from `before` to `now` in words. A count past the counting
/// limit is only known to be more than it: the trend says no more than the
/// counts show.
fn trend(now: ListSize, before: ListSize, period: &str) -> (String, &'static str) {
    use ListSize::*;
    let was = size_text(before);
    match (now, before) {
        (Exactly(a) | MoreThan(a), Exactly(b))
            if a > b || (a == b && matches!(now, MoreThan(_))) =>
        {
            (format!("Up from {was} {period}"), "up")
        }
        (Exactly(a), Exactly(b) | MoreThan(b))
            if a < b || (a == b && matches!(before, MoreThan(_))) =>
        {
            (format!("Down from {was} {period}"), "down")
        }
        (Exactly(_), Exactly(_)) => (format!("Same as {period} ({was})"), "flat"),
        // Capitalised: a number or "more than …" (no underscores to turn).
        _ => (format!("{} {period}", fields::humanize(&was)), "flat"),
    }
}

fn activity_item(v: &RecordView, field: &str, now: time::OffsetDateTime) -> Item {
    let kind = fields::humanize(v.record.get("kind").as_text().unwrap_or("activity"));
    let body = if v.masked.contains(&"body") {
        String::new()
    } else {
        v.record
            .get("body")
            .display()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect()
    };
    let (when, note) = match v.record.get(field) {
        Value::Timestamp(t) => (
            fields::when(*t),
            if field == "due_at" && *t < now {
                "Overdue".to_string()
            } else {
                String::new()
            },
        ),
        _ => (String::new(), String::new()),
    };
    Item {
        text: if body.is_empty() {
            kind
        } else {
            format!("{kind}: {body}")
        },
        when,
        note,
        href: format!("/app/activities/{}", v.id()),
    }
}

fn tiles(d: &Dashboard) -> Vec<Tile> {
    let mut out = Vec::new();
    if let Some(p) = &d.pipeline {
        let open: Vec<_> = p
            .stages
            .iter()
            .filter(|s| s.stage != "won" && s.stage != "lost")
            .collect();
        let open_count: u64 = open.iter().map(|s| s.count).sum();
        let money: Vec<&Amounts> = p
            .stages
            .iter()
            .filter_map(|s| s.amounts.as_ref())
            .chain(p.won_by_month.iter().filter_map(|m| m.amounts.as_ref()))
            .collect();
        let main = main_currency(&money);
        let value_of = |a: &Option<Amounts>| -> f64 {
            match (a, &main) {
                (Some(a), Some(c)) => a.get(c).copied().unwrap_or(0) as f64,
                _ => 0.0,
            }
        };
        let use_money = main.is_some();
        // The chart shows the open pipeline; won and lost deals have their own words.
        let bars: Vec<Bar> = open
            .iter()
            .map(|s| Bar {
                label: fields::humanize(&s.stage),
                value: if use_money {
                    value_of(&s.amounts)
                } else {
                    s.count as f64
                },
                text: match &s.amounts {
                    Some(a) => format!("{}, {}", plural(s.count, "deal", "deals"), amounts_text(a)),
                    None => plural(s.count, "deal", "deals"),
                },
            })
            .collect();
        let mut open_amounts = Amounts::new();
        for s in &open {
            if let Some(a) = &s.amounts {
                for (c, v) in a {
                    *open_amounts.entry(c.clone()).or_default() += v;
                }
            }
        }
        let visible = open.iter().any(|s| s.amounts.is_some());
        let (number, unit) = if visible && !open_amounts.is_empty() {
            (
                amounts_text(&open_amounts),
                format!("in {} open", plural(open_count, "deal", "deals")),
            )
        } else {
            (open_count.to_string(), "open deals".to_string())
        };
        let chart_title = if use_money {
            format!(
                "Open pipeline value by stage ({})",
                main.clone().flatten().unwrap_or_default()
            )
        } else {
            "Open deals by stage".to_string()
        };
        out.push(Tile {
            heading: "Pipeline by stage",
            id: "pipeline",
            number,
            unit,
            trend: format!(
                "{} won and {} lost in all",
                plural(
                    p.stages
                        .iter()
                        .filter(|s| s.stage == "won")
                        .map(|s| s.count)
                        .sum(),
                    "deal",
                    "deals"
                ),
                plural(
                    p.stages
                        .iter()
                        .filter(|s| s.stage == "lost")
                        .map(|s| s.count)
                        .sum(),
                    "deal",
                    "deals"
                )
            ),

            trend_dir: "flat",
            chart: hbars("chart-pipeline", &chart_title, &bars),
            items: Vec::new(),
            href: "/app/deals/board".into(),
            link: "Open the deals board",
        });

        let this = p.won_by_month.last();
        let before = p
            .won_by_month
            .len()
            .checked_sub(2)
            .and_then(|i| p.won_by_month.get(i));
        let (t, dir) = trend(
            ListSize::Exactly(this.map(|m| m.count).unwrap_or(0)),
            ListSize::Exactly(before.map(|m| m.count).unwrap_or(0)),
            "last month",
        );
        let bars: Vec<Bar> = p
            .won_by_month
            .iter()
            .map(|m| Bar {
                label: m.month.month().to_string().chars().take(3).collect(),
                value: if use_money {
                    value_of(&m.amounts)
                } else {
                    m.count as f64
                },
                text: match &m.amounts {
                    Some(a) => format!("{}, {}", plural(m.count, "deal", "deals"), amounts_text(a)),
                    None => plural(m.count, "deal", "deals"),
                },
            })
            .collect();
        let won_unit = match this.and_then(|m| m.amounts.as_ref()) {
            Some(a) if !a.is_empty() => format!("deals won, {}", amounts_text(a)),
            _ => "deals won".to_string(),
        };
        out.push(Tile {
            heading: "Won this month",
            id: "won",
            number: this.map(|m| m.count).unwrap_or(0).to_string(),
            unit: won_unit,
            trend: t,
            trend_dir: dir,
            chart: vbars(
                "chart-won",
                "Deals won per month, last six months",
                &bars,
                Some(bars.len().saturating_sub(1)),
            ),
            items: Vec::new(),
            href: "/app/deals?stage=won&sort=-close_date".into(),
            link: "See won deals",
        });
    }
    if let Some(due) = &d.due {
        let today = d.now.date();
        let bars: Vec<Bar> = due
            .by_day
            .iter()
            .enumerate()
            .map(|(i, n)| Bar {
                label: if i == 0 {
                    "Late".into()
                } else if i == 1 {
                    "Today".into()
                } else {
                    format!("{}", (today + Duration::days(i as i64 - 1)).day())
                },
                value: n.at_least() as f64,
                text: n_things(*n, "task", "tasks"),
            })
            .collect();
        let overdue = due.overdue.at_least() > 0;
        out.push(Tile {
            heading: "Activities due",
            id: "due",
            number: size_text(due.count),
            unit: "open tasks due within a week".into(),
            trend: if overdue {
                format!("{} overdue", n_things(due.overdue, "task is", "tasks are"))
            } else {
                "Nothing overdue".into()
            },
            trend_dir: if overdue { "down" } else { "flat" },
            chart: vbars(
                "chart-due",
                "Open tasks by due day: overdue, today and the next seven days",
                &bars,
                None,
            ),
            items: due
                .items
                .iter()
                .map(|v| activity_item(v, "due_at", d.now))
                .collect(),
            href: "/app/activities?kind=task&done=false&sort=due_at".into(),
            link: "See all open tasks",
        });
    }
    if let Some(r) = &d.recent {
        let n = r.by_day.len();
        let sum = |days: &[ListSize]| {
            days.iter()
                .fold(ListSize::Exactly(0), |all, d| all.plus(*d))
        };
        let week = sum(&r.by_day[n.saturating_sub(7)..]);
        let before = sum(&r.by_day[..n.saturating_sub(7)]);
        let (t, dir) = trend(week, before, "the week before");
        let today = d.now.date();
        let bars: Vec<Bar> = r
            .by_day
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let day = today - Duration::days((n - 1 - i) as i64);
                Bar {
                    label: day.day().to_string(),
                    value: c.at_least() as f64,
                    text: format!(
                        "{} on {}",
                        n_things(*c, "activity", "activities"),
                        format_date(day)
                    ),
                }
            })
            .collect();
        out.push(Tile {
            heading: "Recent activity",
            id: "recent",
            number: size_text(week),
            unit: "activities logged in the last 7 days".into(),
            trend: t,
            trend_dir: dir,
            chart: vbars(
                "chart-recent",
                "Activities logged per day, last fourteen days",
                &bars,
                Some(n.saturating_sub(1)),
            ),
            items: r
                .items
                .iter()
                .map(|v| activity_item(v, "occurred_at", d.now))
                .collect(),
            href: "/app/activities".into(),
            link: "See all activities",
        });
    }
    out
}

/// `GET /app`.
pub async fn page(State(st): State<AppState>, ctx: Ctx) -> Response {
    let d = match st.custos.dashboard(&ctx.caller.principal).await {
        Ok(d) => d,
        Err(e) => return ctx.error(&st, e).await,
    };
    // The privacy officer's clocks come first: they are legal deadlines.
    let mut all = super::privacy::dashboard_tiles(&st, &ctx).await;
    all.extend(tiles(&d));
    let page = DashboardPage {
        shell: ctx.shell(&st, "Dashboard", Section::Dashboard).await,
        tiles: all,
        as_of: fields::when(d.now),
    };
    ctx.page(&page, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ListSize::*;

    #[test]
    fn a_trend_claims_no_more_than_its_counts_show() {
        let t = |now, before| trend(now, before, "last week");
        assert_eq!(
            t(Exactly(5), Exactly(3)),
            ("Up from 3 last week".into(), "up")
        );
        assert_eq!(
            t(Exactly(3), Exactly(5)),
            ("Down from 5 last week".into(), "down")
        );
        assert_eq!(
            t(Exactly(4), Exactly(4)),
            ("Same as last week (4)".into(), "flat")
        );
        // More than 10,000 now, 10,000 or fewer before: up.
        assert_eq!(
            t(MoreThan(10_000), Exactly(10_000)),
            ("Up from 10,000 last week".into(), "up")
        );
        assert_eq!(
            t(Exactly(9), MoreThan(9)),
            ("Down from more than 9 last week".into(), "down")
        );
        // Both past the limit, or the exact one above the bound: unknown.
        for (now, before) in [
            (MoreThan(10_000), MoreThan(10_000)),
            (Exactly(12_000), MoreThan(10_000)),
            (MoreThan(10_000), Exactly(12_000)),
        ] {
            let (words, dir) = t(now, before);
            assert_eq!(dir, "flat", "{now:?} {before:?}");
            assert!(words.ends_with(" last week"), "{words}");
            assert!(
                !words.starts_with("Up") && !words.starts_with("Down"),
                "{words}"
            );
        }
    }
}
