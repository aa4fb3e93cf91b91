//! The downloads of a fulfilled request (package JSON and CSV, evidence) and
//! the printable access report for the person.

use super::*;
use crate::AppState;
use crate::ui::fields::{self};
use crate::ui::shell::Ctx;
use crate::ui::widgets::{Notice, notice_from};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custos_domain::Entity;
use custos_service::ServiceError;

pub(super) fn attachment(content_type: &'static str, filename: String, body: String) -> Response {
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

pub(super) async fn package_json(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
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

pub(super) async fn package_csv(
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

pub(super) async fn evidence(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
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
pub(super) struct ReportPage {
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
pub(super) fn value_text(
    f: &custos_domain::inventory::FieldDecl,
    v: &custos_domain::Value,
) -> String {
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

pub(super) async fn report(
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
    let decls: Vec<_> = pkg
        .about_the_data
        .iter()
        .map(|a| (a.decl, a.retention))
        .collect();
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
        about: notice_from(&decls),
        restrictions,
        notice_version: custos_service::NOTICE_VERSION,
    };
    crate::ui::widgets::render(&page)
}
