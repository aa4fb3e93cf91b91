//! Data map & record of processing: the map drawn from the inventory with
//! its table alternative, the record of processing (GDPR Art. 30) as a
//! printable page, CSV and JSON, and the processor register the privacy
//! officer keeps (add, change, remove after a confirmation).

use super::map::{self, entity_anchor, field_anchor, purpose_anchor};
use super::*;
use crate::AppState;
use crate::ui::fields::{FormField, humanize};
use crate::ui::shell::{Ctx, Section, Shell, redirect_with_flash};
use crate::ui::widgets::notice::{basis_words, purpose_words, retention_words};
use crate::ui::widgets::request_form::place_errors;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::Entity;
use custos_domain::inventory::{self, LawfulBasis, Protection, Purpose};
use custos_domain::retention::Periods;
use custos_service::{Processor, RecordOfProcessing, ServiceError, Transfer};
use serde_json::json;

const MAP_HREF: &str = "/app/privacy/map";

/// One field of the inventory table.
pub struct InventoryRow {
    /// Its anchor.
    pub anchor: String,
    /// Label and name.
    pub label: &'static str,
    /// `entity.field`.
    pub name: String,
    /// Category in words.
    pub category: String,
    /// How it is stored, with the key.
    pub stored: &'static str,
    /// Purposes in words.
    pub purposes: String,
    /// Basis in words.
    pub basis: &'static str,
    /// Recipients.
    pub recipients: String,
    /// Retention in words.
    pub retention: String,
}

/// One entity's section of the inventory table.
pub struct InventorySection {
    /// Its anchor.
    pub anchor: String,
    /// The entity in words.
    pub title: String,
    /// Its fields.
    pub rows: Vec<InventoryRow>,
}

#[derive(Template)]
#[template(path = "privacy_map.html")]
pub(super) struct MapPage {
    shell: Shell,
    svg: String,
    sections: Vec<InventorySection>,
    recipients: Vec<String>,
    processors: Vec<Processor>,
}

fn stored_words(p: Protection) -> &'static str {
    match p {
        Protection::Sealed => "Sealed (AES-256-GCM) under the person's data key",
        Protection::SealedIndexed { .. } => {
            "Sealed under the person's data key; keyed blind index for exact search"
        }
        Protection::Plain { .. } => "Plain column",
    }
}

fn inventory_sections(periods: &Periods) -> Vec<InventorySection> {
    Entity::ALL
        .into_iter()
        .map(|e| InventorySection {
            anchor: entity_anchor(e),
            title: humanize(e.plural()),
            rows: inventory::fields(e)
                .map(|f| InventoryRow {
                    anchor: field_anchor(f),
                    label: f.label,
                    name: format!("{}.{}", e.name(), f.name),
                    category: humanize(f.category.name()),
                    stored: stored_words(f.protection),
                    purposes: f
                        .purposes
                        .iter()
                        .map(|p| humanize(p.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    basis: basis_words(f.lawful_basis).unwrap_or("not personal data"),
                    recipients: f.recipients.join(", "),
                    retention: retention_words(periods.retention(f)),
                })
                .collect(),
        })
        .collect()
}

pub(super) async fn map_page(State(st): State<AppState>, ctx: Ctx) -> Response {
    let processors = match st.custos.processors(&ctx.caller.principal).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let periods = match st.custos.retention_periods().await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let page = MapPage {
        shell: ctx.shell(&st, "Data map", Section::Privacy(MAP_HREF)).await,
        svg: map::svg(&map::build(&processors, &periods)),
        sections: inventory_sections(&periods),
        recipients: custos_domain::processing::recipients()
            .into_iter()
            .map(str::to_string)
            .collect(),
        processors,
    };
    ctx.page(&page, StatusCode::OK)
}

/// One activity of the record as the page words it.
pub struct ActivityRow {
    /// Anchor.
    pub anchor: String,
    /// The purpose, short.
    pub title: String,
    /// The purpose in words.
    pub words: &'static str,
    /// Subjects.
    pub subjects: String,
    /// Categories.
    pub categories: String,
    /// Bases in words.
    pub bases: Vec<&'static str>,
    /// Recipients and processors.
    pub recipients: String,
    /// Retention in words.
    pub retention: Vec<String>,
    /// Fields.
    pub fields: String,
}

#[derive(Template)]
#[template(path = "privacy_processing.html")]
pub(super) struct ProcessingPage {
    shell: Shell,
    record: RecordOfProcessing,
    activities: Vec<ActivityRow>,
    generated: String,
}

fn json_words<T: serde::Serialize>(x: &T) -> String {
    humanize(&snake(x))
}

fn joined<T: serde::Serialize>(xs: &[T]) -> String {
    xs.iter().map(json_words).collect::<Vec<_>>().join(", ")
}

fn purpose_of(name: &str) -> Option<Purpose> {
    Purpose::ALL.into_iter().find(|p| p.name() == name)
}

fn activity_rows(r: &RecordOfProcessing) -> Vec<ActivityRow> {
    r.activities
        .iter()
        .map(|a| {
            let purpose = purpose_of(a.purpose);
            let mut recipients: Vec<String> = a.recipients.iter().map(|x| x.to_string()).collect();
            recipients.extend(a.processors.iter().map(|x| format!("{x} (processor)")));
            ActivityRow {
                anchor: purpose
                    .map(purpose_anchor)
                    .unwrap_or_else(|| a.purpose.to_string()),
                title: humanize(a.purpose),
                words: purpose.map(purpose_words).unwrap_or_default(),
                subjects: joined(&a.subjects),
                categories: a
                    .categories
                    .iter()
                    .map(|c| humanize(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                bases: a
                    .lawful_bases
                    .iter()
                    .filter_map(|b: &LawfulBasis| basis_words(*b))
                    .collect(),
                recipients: if recipients.is_empty() {
                    "None outside the organisation".to_string()
                } else {
                    recipients.join(", ")
                },
                retention: a.retention.iter().map(|x| retention_words(*x)).collect(),
                fields: a.fields.join(", "),
            }
        })
        .collect()
}

async fn record_of(st: &AppState, ctx: &Ctx) -> Result<RecordOfProcessing, Response> {
    match st.custos.record_of_processing(&ctx.caller.principal).await {
        Ok(r) => Ok(r),
        Err(e) => Err(ctx.error(st, e).await),
    }
}

pub(super) async fn processing_page(State(st): State<AppState>, ctx: Ctx) -> Response {
    let record = match record_of(&st, &ctx).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let page = ProcessingPage {
        shell: ctx
            .shell(&st, "Record of processing", Section::Privacy(MAP_HREF))
            .await,
        activities: activity_rows(&record),
        generated: when_text(&record.generated_at),
        record,
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) async fn processing_json(State(st): State<AppState>, ctx: Ctx) -> Response {
    match record_of(&st, &ctx).await {
        Ok(r) => attachment(
            "application/json",
            "record-of-processing.json".to_string(),
            serde_json::to_string_pretty(&r).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

/// The record as CSV: one row per processing activity, the columns of
/// Art. 30(1), then the controller, the transfers and the measures as rows
/// of their own kind.
pub fn record_csv(r: &RecordOfProcessing) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let names = |xs: Vec<String>| xs.join("; ");
    let _ = w.write_record([
        "section",
        "purpose",
        "data_subjects",
        "data_categories",
        "lawful_bases",
        "recipients",
        "processors",
        "retention",
        "fields",
    ]);
    let c = &r.controller;
    let _ = w.write_record([
        "controller",
        &c.name,
        &c.address.replace('\n', ", "),
        &c.email,
        &c.dpo_name,
        &c.dpo_email,
        "",
        "",
        "",
    ]);
    for a in &r.activities {
        let _ = w.write_record([
            "activity".to_string(),
            a.purpose.to_string(),
            names(a.subjects.iter().map(snake).collect()),
            names(a.categories.iter().map(|x| x.to_string()).collect()),
            names(a.lawful_bases.iter().map(snake).collect()),
            names(a.recipients.iter().map(|x| x.to_string()).collect()),
            names(a.processors.clone()),
            names(a.retention.iter().map(|x| retention_words(*x)).collect()),
            names(a.fields.clone()),
        ]);
    }
    for t in &r.transfers {
        let _ = w.write_record([
            "transfer",
            &t.processor,
            &t.country,
            t.mechanism.as_str(),
            "",
            "",
            "",
            "",
            "",
        ]);
    }
    for m in &r.security {
        let _ = w.write_record([
            "security_measure",
            m.measure,
            &m.state,
            "",
            "",
            "",
            "",
            "",
            "",
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The snake-case name of one of the inventory's enums, for the CSV.
fn snake<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) async fn processing_csv(State(st): State<AppState>, ctx: Ctx) -> Response {
    match record_of(&st, &ctx).await {
        Ok(r) => attachment(
            "text/csv; charset=utf-8",
            "record-of-processing.csv".to_string(),
            record_csv(&r),
        ),
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "privacy_processors.html")]
pub(super) struct ProcessorsPage {
    shell: Shell,
    processors: Vec<Processor>,
    /// The add or edit form.
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    /// The processor being edited.
    editing: Option<Processor>,
}

#[derive(Template)]
#[template(path = "privacy_processor_delete.html")]
pub(super) struct ProcessorDeletePage {
    shell: Shell,
    processor: Processor,
}

fn processor_fields(values: Option<&Processor>) -> Vec<FormField> {
    let mut name = form_field(
        "name",
        "Company",
        "The processor's legal name.",
        "text",
        true,
        200,
    );
    let mut service = form_field(
        "service",
        "Service",
        "What it does for you, e.g. email delivery, hosting, payments.",
        "text",
        true,
        200,
    );
    let mut categories = form_field(
        "categories",
        "Data categories it receives",
        "Comma-separated: identity, contact_details, financial, communications, behavioural, special_category, business, identifiers, system.",
        "text",
        true,
        300,
    );
    let mut country = form_field(
        "country",
        "Country",
        "Where it processes the data: a two-letter code such as IE, DE or US.",
        "text",
        true,
        2,
    );
    let mut transfer = form_field(
        "transfer",
        "Transfer mechanism",
        "Needed when the country is outside the EEA.",
        "select",
        true,
        0,
    );
    transfer.options = Transfer::ALL
        .into_iter()
        .map(|t| (t.as_str().to_string(), t.words().to_string()))
        .collect();
    let mut dpa = form_field(
        "dpa_signed_on",
        "Data processing agreement signed on",
        "The date of the Art. 28 agreement. Leave empty if none is signed yet.",
        "date",
        false,
        10,
    );
    let mut review = form_field(
        "review_on",
        "Review on",
        "When to look at this entry again. Leave empty for one year from today.",
        "date",
        false,
        10,
    );
    if let Some(p) = values {
        name.value = p.name.clone();
        service.value = p.service.clone();
        categories.value = p.categories.join(", ");
        country.value = p.country.clone();
        transfer.value = p.transfer.as_str().to_string();
        dpa.value = p.dpa_signed_on.clone().unwrap_or_default();
        review.value = p.review_on.clone();
    }
    vec![name, service, categories, country, transfer, dpa, review]
}

fn form_body(form: &Pairs) -> serde_json::Value {
    let get = |k| get_pair(form, k).unwrap_or_default();
    json!({
        "name": get("name"),
        "service": get("service"),
        "categories": get("categories"),
        "country": get("country"),
        "transfer": get("transfer"),
        "dpa_signed_on": get("dpa_signed_on"),
        "review_on": get("review_on"),
    })
}

async fn processors_page(
    st: &AppState,
    ctx: &Ctx,
    editing: Option<Processor>,
    form: Option<(&Pairs, Vec<custos_domain::FieldError>)>,
) -> Response {
    let processors = match st.custos.processors(&ctx.caller.principal).await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let mut fields = processor_fields(editing.as_ref());
    let mut summary = Vec::new();
    let status = match form {
        Some((values, errors)) => {
            for f in &mut fields {
                f.value = get_pair(values, f.name).unwrap_or_default().to_string();
            }
            summary = place_errors(&mut fields, &errors);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    let page = ProcessorsPage {
        shell: ctx
            .shell(st, "Processor register", Section::Privacy(MAP_HREF))
            .await,
        processors,
        fields,
        summary,
        editing,
    };
    ctx.page(&page, status)
}

pub(super) async fn processors(State(st): State<AppState>, ctx: Ctx) -> Response {
    processors_page(&st, &ctx, None, None).await
}

async fn processor_of(st: &AppState, ctx: &Ctx, id: &str) -> Result<Processor, Response> {
    let Some(id) = parse_id(id) else {
        return Err(ctx.error(st, ServiceError::NotFound("processor")).await);
    };
    match st.custos.processor(&ctx.caller.principal, id).await {
        Ok(p) => Ok(p),
        Err(e) => Err(ctx.error(st, e).await),
    }
}

pub(super) async fn processor_edit(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    match processor_of(&st, &ctx, &id).await {
        Ok(p) => processors_page(&st, &ctx, Some(p), None).await,
        Err(r) => r,
    }
}

pub(super) async fn processor_create(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    match st
        .custos
        .processor_create(&ctx.caller.principal, &form_body(&form))
        .await
    {
        Ok(p) => redirect_with_flash(
            &format!("/app/privacy/processors#processor-{}", p.id),
            "privacy.processor_saved",
        ),
        Err(ServiceError::Invalid(errs)) => {
            processors_page(&st, &ctx, None, Some((&form, errs))).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn processor_update(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let existing = match processor_of(&st, &ctx, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match st
        .custos
        .processor_update(&ctx.caller.principal, existing.id, &form_body(&form))
        .await
    {
        Ok(p) => redirect_with_flash(
            &format!("/app/privacy/processors#processor-{}", p.id),
            "privacy.processor_saved",
        ),
        Err(ServiceError::Invalid(errs)) => {
            processors_page(&st, &ctx, Some(existing), Some((&form, errs))).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn processor_delete_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let processor = match processor_of(&st, &ctx, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let page = ProcessorDeletePage {
        shell: ctx
            .shell(&st, "Remove a processor", Section::Privacy(MAP_HREF))
            .await,
        processor,
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) async fn processor_delete(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("processor")).await;
    };
    match st.custos.processor_delete(&ctx.caller.principal, id).await {
        Ok(()) => redirect_with_flash("/app/privacy/processors", "privacy.processor_removed"),
        Err(e) => ctx.error(&st, e).await,
    }
}
