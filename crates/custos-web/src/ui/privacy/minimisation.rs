//! The data-minimisation review: per field of the CRM's records, how often
//! it was read, exported and written in the window, how many records hold
//! a value, whether it has a purpose; the flags; the decision per field
//! (keep with a reason, or stop collecting); marking the review done.

use super::*;
use crate::AppState;
use crate::ui::fields::humanize;
use crate::ui::shell::{Ctx, Section, Shell, redirect_with_flash};
use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::Entity;
use custos_service::{
    DECISION_REASON_MAX, DecisionKind, FieldUsage, MinimisationReport, REVIEW_MONTHS, ServiceError,
    UsageFlag,
};
use serde_json::json;

const HREF: &str = "/app/privacy/minimisation";

/// One field as the page shows it.
pub struct UsageRow {
    /// Anchor and form target (`contact.phone`).
    pub key: String,
    /// `contact-phone`: the row's id part.
    pub anchor: String,
    /// Entity in words.
    pub entity: String,
    /// Label.
    pub label: &'static str,
    /// Category in words.
    pub category: String,
    /// Purposes in words.
    pub purposes: String,
    /// Counts.
    pub reads: u64,
    /// Exports.
    pub exports: u64,
    /// Writes.
    pub writes: u64,
    /// Records holding a value, of records.
    pub held: u64,
    /// Records.
    pub records: u64,
    /// Flags in words.
    pub flags: Vec<&'static str>,
    /// The decision in words, with who and when.
    pub decision: Option<(String, String, String)>,
    /// Whether it can stop being collected.
    pub optional: bool,
    /// The error of a decision form sent for this field.
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "privacy_minimisation.html")]
pub(super) struct MinimisationPage {
    shell: Shell,
    report: MinimisationReport,
    rows: Vec<UsageRow>,
    flagged: usize,
    from: String,
    reason_max: usize,
    months_options: Vec<(u32, bool)>,
}

fn flag_words(f: UsageFlag) -> &'static str {
    match f {
        UsageFlag::NoPurpose => "No declared purpose",
        UsageFlag::Unread => "Not read in the period",
        UsageFlag::HeldUnused => "Values held but unused",
    }
}

fn row_of(f: &FieldUsage) -> UsageRow {
    UsageRow {
        key: format!("{}.{}", f.entity.name(), f.field),
        anchor: format!("{}-{}", f.entity.name(), f.field),
        entity: humanize(f.entity.plural()),
        label: f.label,
        category: humanize(f.category),
        purposes: f
            .purposes
            .iter()
            .map(|p| humanize(p))
            .collect::<Vec<_>>()
            .join(", "),
        reads: f.reads,
        exports: f.exports,
        writes: f.writes,
        held: f.held,
        records: f.records,
        flags: f.flags.iter().map(|x| flag_words(*x)).collect(),
        decision: f.decision.as_ref().map(|d| {
            (
                match d.decision {
                    DecisionKind::Keep => "Keep".to_string(),
                    DecisionKind::StopCollecting => "Stop collecting".to_string(),
                },
                d.reason.clone(),
                when_text(&d.decided_at),
            )
        }),
        optional: f.optional,
        error: None,
    }
}

fn months_of(query: &Option<String>) -> Result<u32, ServiceError> {
    let pairs: Pairs = query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    match get_pair(&pairs, "months") {
        None | Some("") => Ok(REVIEW_MONTHS),
        Some(m) => m.parse().map_err(|_| {
            ServiceError::invalid("months", "must be a number of months from 1 to 120")
        }),
    }
}

async fn render_page(
    st: &AppState,
    ctx: &Ctx,
    months: u32,
    error: Option<(String, String)>,
) -> Response {
    let report = match st
        .custos
        .minimisation_report(&ctx.caller.principal, months)
        .await
    {
        Ok(r) => r,
        Err(e) => return ctx.error(st, e).await,
    };
    let mut rows: Vec<UsageRow> = report.fields.iter().map(row_of).collect();
    let status = match &error {
        Some((key, msg)) => {
            if let Some(r) = rows.iter_mut().find(|r| &r.key == key) {
                r.error = Some(msg.clone());
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    let page = MinimisationPage {
        shell: ctx
            .shell(st, "Minimisation review", Section::Privacy(HREF))
            .await,
        flagged: rows.iter().filter(|r| !r.flags.is_empty()).count(),
        from: when_text(&report.from),
        rows,
        reason_max: DECISION_REASON_MAX,
        months_options: [1, 3, 6, 12, 24, 36]
            .into_iter()
            .map(|m| (m, m == report.months))
            .collect(),
        report,
    };
    ctx.page(&page, status)
}

pub(super) async fn page(
    State(st): State<AppState>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Response {
    match months_of(&query) {
        Ok(m) => render_page(&st, &ctx, m, None).await,
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn decide(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let key = get_pair(&form, "field").unwrap_or_default().to_string();
    let target = key.split_once('.').and_then(|(e, f)| {
        Entity::CRM
            .into_iter()
            .find(|x| x.name() == e)
            .map(|e| (e, f.to_string()))
    });
    let Some((entity, field)) = target else {
        return ctx.error(&st, ServiceError::NotFound("field")).await;
    };
    let body = json!({
        "decision": get_pair(&form, "decision").unwrap_or_default(),
        "reason": get_pair(&form, "reason").unwrap_or_default(),
    });
    match st
        .custos
        .minimisation_decide(&ctx.caller.principal, entity, &field, &body)
        .await
    {
        Ok(_) => redirect_with_flash(
            &format!("{HREF}#field-{}", key.replace('.', "-")),
            "privacy.decided",
        ),
        Err(ServiceError::Invalid(errs)) => {
            let msg = errs
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            render_page(&st, &ctx, REVIEW_MONTHS, Some((key, msg))).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn reviewed(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    match st.custos.minimisation_reviewed(&ctx.caller.principal).await {
        Ok(()) => redirect_with_flash(HREF, "privacy.reviewed"),
        Err(e) => ctx.error(&st, e).await,
    }
}
