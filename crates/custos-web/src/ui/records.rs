//! Pages for the CRM entities, one code path for all five: list (search,
//! filters, sortable columns, keyset pagination, row count, empty state),
//! detail (facts, related records, timeline), new/edit forms and delete with
//! confirmation. Every call goes through the service, which authorises and
//! audits; the role checks here only decide which buttons to show.

use super::fields::{self, FormField};
use super::shell::{Ctx, Section, Shell, redirect_with_flash};
use super::widgets::Names;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::inventory::{self, FieldDecl, FieldKind, Protection};
use custos_domain::policy::{self, Operation};
use custos_domain::{Entity, Value};
use custos_service::{ListParams, ListSize, Principal, RecordView, ServiceError};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows per list page.
pub const PAGE_SIZE: u32 = 25;
/// Related records shown per section of a detail page.
const RELATED: u32 = 10;

type Pairs = Vec<(String, String)>;

/// The routes of every CRM entity.
pub fn routes(mut r: Router<AppState>) -> Router<AppState> {
    for e in Entity::CRM {
        let base = format!("/app/{}", e.plural());
        r = r
            .route(
                &base,
                get(move |s: State<AppState>, c: Ctx, q: RawQuery| list_get(s, c, q, e)),
            )
            .route(
                &format!("{base}/find"),
                post(move |s: State<AppState>, c: Ctx, f: Form<Pairs>| list_post(s, c, f, e)),
            )
            .route(
                &format!("{base}/new"),
                get(move |s: State<AppState>, c: Ctx, q: RawQuery| new_form(s, c, q, e))
                    .post(move |s: State<AppState>, c: Ctx, f: Form<Pairs>| create(s, c, f, e)),
            )
            .route(
                &format!("{base}/{{id}}"),
                get(move |s: State<AppState>, c: Ctx, id: Path<String>| detail(s, c, id, e)),
            )
            .route(
                &format!("{base}/{{id}}/edit"),
                get(move |s: State<AppState>, c: Ctx, id: Path<String>| edit_form(s, c, id, e))
                    .post(
                        move |s: State<AppState>, c: Ctx, id: Path<String>, f: Form<Pairs>| {
                            update(s, c, id, f, e)
                        },
                    ),
            )
            .route(
                &format!("{base}/{{id}}/delete"),
                get(move |s: State<AppState>, c: Ctx, id: Path<String>| delete_page(s, c, id, e))
                    .post(
                        move |s: State<AppState>, c: Ctx, id: Path<String>, f: Form<Pairs>| {
                            delete(s, c, id, f, e)
                        },
                    ),
            );
    }
    r
}

/// What a list page is for, said in its empty state.
pub fn about(entity: Entity) -> &'static str {
    match entity {
        Entity::Contact => {
            "Contacts are the people you sell to and support. Their personal details are encrypted with a key of their own, so each person can be erased on request."
        }
        Entity::Company => {
            "Companies are the organisations your contacts work for and your deals are with."
        }
        Entity::Deal => {
            "Deals are the opportunities in your sales pipeline, from first lead to won or lost."
        }
        Entity::Activity => {
            "Activities are the notes, calls, emails, meetings and tasks logged about a contact."
        }
        Entity::Order => {
            "Orders are purchases by contacts. They are kept for two years after completion, for accounting."
        }
        Entity::User | Entity::Request | Entity::Consent => "",
    }
}

fn plural_label(entity: Entity) -> &'static str {
    match entity {
        Entity::Contact => "Contacts",
        Entity::Company => "Companies",
        Entity::Deal => "Deals",
        Entity::Activity => "Activities",
        Entity::Order => "Orders",
        Entity::User => "Users",
        Entity::Request => "Requests",
        Entity::Consent => "Consents",
    }
}

fn parse_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

fn parse_query(raw: Option<String>) -> Pairs {
    serde_urlencoded::from_str::<Pairs>(raw.as_deref().unwrap_or_default()).unwrap_or_default()
}

fn get_pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn href(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{path}?{q}")
}

// ---------------------------------------------------------------- cells

/// One cell of a table or one fact of a detail page.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The column's label (tables become cards on a phone).
    pub label: String,
    /// What it says.
    pub text: String,
    /// A link, for references.
    pub href: Option<String>,
    /// Why the value is hidden, when it is masked.
    pub masked: Option<String>,
    /// A state badge class (stage, status), if any.
    pub badge: Option<String>,
}

/// The cell for one field of a record.
pub async fn cell(f: &FieldDecl, view: &RecordView, names: &mut Names<'_>, p: &Principal) -> Cell {
    let mut c = Cell {
        label: f.label.to_string(),
        text: String::new(),
        href: None,
        masked: None,
        badge: None,
    };
    if view.masked.contains(&f.name) {
        c.masked = Some(fields::masked_reason(p, f));
        c.text = match view.shapes.get(f.name) {
            Some(shape) => shape.clone(),
            None => "Hidden".into(),
        };
        return c;
    }
    match (f.kind, view.record.get(f.name)) {
        (FieldKind::Ref { entity }, Value::Uuid(id)) if entity != Entity::User => {
            c.text = names.name_or_unavailable(entity, *id).await;
            c.href = Some(format!("/app/{}/{id}", entity.plural()));
        }
        (FieldKind::Ref { .. }, Value::Uuid(id)) => {
            c.text = if *id == p.user_id {
                "You".into()
            } else {
                "A colleague".into()
            };
        }
        (FieldKind::Stage | FieldKind::Enum { .. }, Value::Text(s)) => {
            c.text = fields::humanize(s);
            c.badge = Some(format!("badge badge-{}", s.replace('_', "-")));
        }
        _ => c.text = fields::display(f, &view.record),
    }
    c
}

/// A row of a table: the record's name (a link) and the other columns.
#[derive(Debug, Clone)]
pub struct Row {
    /// The record's name.
    pub title: String,
    /// Its detail page.
    pub href: String,
    /// The other columns.
    pub cells: Vec<Cell>,
}

/// Builds the rows of a table.
pub async fn rows(
    entity: Entity,
    items: &[RecordView],
    columns: &[&'static FieldDecl],
    names: &mut Names<'_>,
    p: &Principal,
) -> Vec<Row> {
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        names.know(v);
    }
    names.preload(items, columns).await;
    for v in items {
        let title = match entity {
            Entity::Activity => {
                fields::humanize(v.record.get("kind").as_text().unwrap_or("activity"))
            }
            Entity::Order => match v.record.get("placed_at") {
                Value::Timestamp(t) => fields::when(*t),
                _ => "Order".into(),
            },
            _ => fields::title(v),
        };
        let mut cells = Vec::with_capacity(columns.len());
        for f in columns {
            cells.push(cell(f, v, names, p).await);
        }
        out.push(Row {
            title,
            href: format!("/app/{}/{}", entity.plural(), v.id()),
            cells,
        });
    }
    out
}

// ---------------------------------------------------------------- lists

/// A column heading, with the link that sorts by it.
#[derive(Debug, Clone)]
pub struct Column {
    /// The heading.
    pub label: String,
    /// Link that sorts by this column (toggling the direction), if sortable.
    pub sort_href: Option<String>,
    /// `ascending`, `descending` or `none`.
    pub aria_sort: &'static str,
}

/// A filter control in the row above a list.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Parameter name.
    pub name: String,
    /// Label.
    pub label: String,
    /// `select`, `search`, `email`, `tel` or `text`.
    pub control: &'static str,
    /// Current value.
    pub value: String,
    /// Choices for selects: (value, label); the first is "any".
    pub options: Vec<(String, String)>,
}

impl Filter {
    /// Whether option `v` is chosen.
    pub fn selected(&self, v: &str) -> bool {
        self.value == v
    }
}

/// Pagination controls.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    /// Hidden fields of the "Previous" form, if there is a previous page.
    pub prev: Option<Pairs>,
    /// Hidden fields of the "Next" form, if there is a next page.
    pub next: Option<Pairs>,
    /// Links for pages reached by GET.
    pub prev_href: Option<String>,
    /// Links for pages reached by GET.
    pub next_href: Option<String>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    shell: Shell,
    entity_label: &'static str,
    plural: &'static str,
    about: &'static str,
    new_href: Option<String>,
    filters: Vec<Filter>,
    fixed: Vec<(String, String, String, String)>,
    filter_method: &'static str,
    filter_action: String,
    filtered: bool,
    /// The page stopped short of a full page (see `Page::partial`): "Next"
    /// searches further.
    partial: bool,
    title_column: Column,
    columns: Vec<Column>,
    rows: Vec<Row>,
    count_text: String,
    pager: Pager,
    posted: bool,
    errors: Vec<String>,
    board: bool,
}

/// Parameters the UI adds to the service's list parameters.
const UI_PARAMS: [&str; 4] = ["back", "csrf", "cursor", "shown"];

/// Whether a filter matches on personal data and so must not travel in a URL.
fn personal_filter(entity: Entity, name: &str) -> bool {
    if name == "q" {
        return entity == Entity::Contact;
    }
    inventory::field(entity, name).is_some_and(|f| f.category.is_personal())
}

async fn list_get(
    State(st): State<AppState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
    entity: Entity,
) -> Response {
    let pairs: Pairs = parse_query(q)
        .into_iter()
        .filter(|(k, _)| !personal_filter(entity, k))
        .collect();
    list_page(&st, &ctx, entity, pairs, false).await
}

async fn list_post(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
    entity: Entity,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    list_page(&st, &ctx, entity, form, true).await
}

async fn list_page(
    st: &AppState,
    ctx: &Ctx,
    entity: Entity,
    pairs: Pairs,
    posted: bool,
) -> Response {
    let p = &ctx.caller.principal;
    let base = format!("/app/{}", entity.plural());
    // The user's filters: everything but sorting and paging, without empty values.
    let filters_in: Pairs = pairs
        .iter()
        .filter(|(k, v)| !v.trim().is_empty() && !UI_PARAMS.contains(&k.as_str()) && k != "sort")
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    let sort = get_pair(&pairs, "sort")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let cursor = get_pair(&pairs, "cursor")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let back: Vec<String> = get_pair(&pairs, "back")
        .filter(|s| !s.is_empty())
        .map(|s| s.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    // How many records the pages before this one showed: a page that stops
    // short (a rare filter, see `Page::partial`) shows fewer than a page.
    let shown: u64 = get_pair(&pairs, "shown")
        .and_then(|s| s.parse().ok())
        .unwrap_or(back.len() as u64 * u64::from(PAGE_SIZE));
    let mut service_pairs = filters_in.clone();
    if let Some(s) = &sort {
        service_pairs.push(("sort".into(), s.clone()));
    }
    service_pairs.push(("limit".into(), PAGE_SIZE.to_string()));
    let mut count_pairs = service_pairs.clone();
    if let Some(c) = &cursor {
        service_pairs.push(("cursor".into(), c.clone()));
    }
    count_pairs.retain(|(k, _)| k != "limit");

    let mut errors = Vec::new();
    let (items, next_cursor, partial, count) = match ListParams::parse(entity, &service_pairs) {
        Ok(params) => match st.custos.list(p, entity, &params).await {
            Ok(page) => {
                let count = match ListParams::parse(entity, &count_pairs) {
                    Ok(cp) => st.custos.count(p, entity, &cp).await.ok().flatten(),
                    Err(_) => None,
                };
                (page.items, page.next_cursor, page.partial, count)
            }
            Err(ServiceError::Invalid(errs)) => {
                errors.extend(errs.into_iter().map(|e| describe_error(entity, &e)));
                (Vec::new(), None, false, None)
            }
            Err(e) => return ctx.error(st, e).await,
        },
        Err(ServiceError::Invalid(errs)) => {
            errors.extend(errs.into_iter().map(|e| describe_error(entity, &e)));
            (Vec::new(), None, false, None)
        }
        Err(e) => return ctx.error(st, e).await,
    };

    // Column headings; sorting links keep the filters (GET lists only: a list
    // filtered on personal data is posted, and its headings do not sort).
    let (sort_field, descending) = match &sort {
        Some(s) => match s.strip_prefix('-') {
            Some(n) => (n.to_string(), true),
            None => (s.clone(), false),
        },
        None => ("created_at".to_string(), true),
    };
    let column = |label: &str, field: Option<&str>| -> Column {
        // Only the links the role may follow: sorting by data it may not
        // read is refused by the service, so no heading offers it.
        let sortable = field.filter(|f| {
            inventory::field(entity, f).is_some_and(|d| d.sortable && p.can_read(d.category))
        });
        let current = sortable.is_some_and(|f| f == sort_field);
        let aria_sort = match (current, descending) {
            (true, true) => "descending",
            (true, false) => "ascending",
            _ => "none",
        };
        let sort_href = match (sortable, posted) {
            (Some(f), false) => {
                let dir = if current && !descending {
                    format!("-{f}")
                } else {
                    f.to_string()
                };
                let mut q = filters_in.clone();
                q.push(("sort".into(), dir));
                Some(href(&base, &q))
            }
            _ => None,
        };
        Column {
            label: label.to_string(),
            sort_href,
            aria_sort,
        }
    };
    let title_column = column(fields::title_label(entity), fields::title_sort(entity));
    let field_columns = fields::table_columns(entity);
    let columns: Vec<Column> = field_columns
        .iter()
        .map(|f| {
            let label = if f.name == "created_at" {
                "Added"
            } else {
                f.label
            };
            column(label, Some(f.name))
        })
        .collect();

    let mut names = Names::new(st, p);
    let rows = rows(entity, &items, &field_columns, &mut names, p).await;

    // Keyset pagination: "back" holds the cursors of the pages before this one
    // ("~" for the first page), each with how many records the pages before
    // it showed ("cursor~shown"), so Previous needs no reversed query.
    let here = match &cursor {
        Some(c) => format!("{c}~{shown}"),
        None => "~".to_string(),
    };
    let mut keep = filters_in.clone();
    if let Some(s) = &sort {
        keep.push(("sort".into(), s.clone()));
    }
    let mut pager = Pager::default();
    if let Some(next) = &next_cursor {
        let mut q = keep.clone();
        q.push(("cursor".into(), next.clone()));
        let mut b = back.clone();
        b.push(here.clone());
        q.push(("back".into(), b.join(".")));
        let through = shown.saturating_add(items.len() as u64);
        q.push(("shown".into(), through.to_string()));
        pager.next = Some(q);
    }
    if let Some((prev, rest)) = back.split_last() {
        let mut q = keep.clone();
        if prev != "~" {
            let (c, before) = match prev.rsplit_once('~') {
                Some((c, n)) => (c.to_string(), n.parse::<u64>().ok()),
                None => (prev.clone(), None),
            };
            q.push(("cursor".into(), c));
            let before = before.unwrap_or(rest.len() as u64 * u64::from(PAGE_SIZE));
            q.push(("shown".into(), before.to_string()));
        }
        if !rest.is_empty() {
            q.push(("back".into(), rest.join(".")));
        }
        pager.prev = Some(q);
    }
    if !posted {
        pager.next_href = pager.next.as_ref().map(|q| href(&base, q));
        pager.prev_href = pager.prev.as_ref().map(|q| href(&base, q));
    }
    // `shown` comes from the address: saturating, so no number overflows.
    let first = shown.saturating_add(1);
    let last = shown.saturating_add(items.len() as u64);
    let label = plural_label(entity).to_lowercase();
    let count_text = match (items.is_empty(), count) {
        (true, _) => String::new(),
        // Rare matches: the page stopped where one request stops reading.
        (false, _) if partial => format!(
            "Showing {first}–{last} {label}: this filter matches few of them, so Custos \
             searched part of the list. “Search further” looks through the next part."
        ),
        (false, Some(ListSize::Exactly(1))) => format!("Showing 1 of 1 {}", entity.name()),
        (false, Some(n)) => format!("Showing {first}–{last} of {} {label}", fields::size_text(n)),
        // Matches on sealed data are confirmed one by one, so there is no total.
        (false, None) if back.is_empty() && next_cursor.is_none() => {
            format!("{} found", fields_count(items.len() as u64, entity))
        }
        (false, None) => format!("Showing {first}–{last} {label}"),
    };

    let (filters, fixed) = filter_controls(st, ctx, entity, &filters_in, posted).await;
    let has_personal = filters.iter().any(|f| personal_filter(entity, &f.name));
    let page = ListPage {
        shell: ctx
            .shell(st, plural_label(entity), Section::Entity(entity))
            .await,
        entity_label: entity.label(),
        plural: entity.plural(),
        about: about(entity),
        new_href: ctx
            .may(Operation::Create, entity)
            .then(|| href(&format!("{base}/new"), &fixed_prefill(&filters_in))),
        filters,
        fixed,
        filter_method: if has_personal { "post" } else { "get" },
        filter_action: if has_personal {
            format!("{base}/find")
        } else {
            base.clone()
        },
        filtered: !filters_in.is_empty(),
        partial,
        title_column,
        columns,
        rows,
        count_text,
        pager,
        posted,
        board: entity == Entity::Deal,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ctx.page(&page, status)
}

/// The prefill a "New" button carries from a list filtered by a reference.
fn fixed_prefill(filters: &[(String, String)]) -> Pairs {
    filters
        .iter()
        .filter(|(k, v)| k.ends_with("_id") && parse_id(v).is_some())
        .cloned()
        .collect()
}

/// "1 contact", "3 contacts".
fn fields_count(n: u64, entity: Entity) -> String {
    if n == 1 {
        format!("1 {}", entity.name())
    } else {
        format!("{n} {}", plural_label(entity).to_lowercase())
    }
}

fn describe_error(entity: Entity, e: &custos_domain::FieldError) -> String {
    let label = inventory::field(entity, &e.field)
        .map(|f| f.label.to_string())
        .unwrap_or_else(|| match e.field.as_str() {
            "q" => "Search".to_string(),
            other => fields::humanize(other),
        });
    format!("{label}: {}", e.message)
}

/// The filter row of a list, derived from the inventory: free-text search where
/// the service has one, selects for enums, stages, yes/no and companies, exact
/// match boxes for blind-indexed fields the role may read. Filters on other
/// references (e.g. a contact) are shown as fixed facts with a way to clear them.
async fn filter_controls(
    st: &AppState,
    ctx: &Ctx,
    entity: Entity,
    current: &[(String, String)],
    posted: bool,
) -> (Vec<Filter>, Vec<(String, String, String, String)>) {
    let p = &ctx.caller.principal;
    let value = |n: &str| get_pair(current, n).unwrap_or_default().to_string();
    let mut out = Vec::new();
    let q_label = match entity {
        Entity::Contact => Some("Name or company"),
        Entity::Company => Some("Name or domain"),
        Entity::Deal => Some("Title"),
        _ => None,
    };
    if let Some(label) = q_label
        && (entity != Entity::Contact || p.can_read(custos_domain::DataCategory::Identity))
    {
        out.push(Filter {
            name: "q".into(),
            label: label.into(),
            control: "search",
            value: value("q"),
            options: Vec::new(),
        });
    }
    let mut fixed = Vec::new();
    for f in inventory::fields(entity) {
        if !p.can_read(f.category) || f.name == "owner_id" {
            continue;
        }
        let any = || (String::new(), "Any".to_string());
        let filter = match (f.kind, f.protection) {
            (FieldKind::Enum { values }, _) => Some(Filter {
                name: f.name.into(),
                label: f.label.into(),
                control: "select",
                value: value(f.name),
                options: std::iter::once(any())
                    .chain(values.iter().map(|v| (v.to_string(), fields::humanize(v))))
                    .collect(),
            }),
            (FieldKind::Stage, _) => {
                let stages = st.custos.pipeline_stages(p).await.unwrap_or_default();
                Some(Filter {
                    name: f.name.into(),
                    label: f.label.into(),
                    control: "select",
                    value: value(f.name),
                    options: std::iter::once(any())
                        .chain(stages.iter().map(|s| (s.clone(), fields::humanize(s))))
                        .collect(),
                })
            }
            (FieldKind::Bool, _) => Some(Filter {
                name: f.name.into(),
                label: f.label.into(),
                control: "select",
                value: value(f.name),
                options: vec![
                    any(),
                    ("true".into(), "Yes".into()),
                    ("false".into(), "No".into()),
                ],
            }),
            (
                FieldKind::Ref {
                    entity: Entity::Company,
                },
                _,
            ) => Some(Filter {
                name: f.name.into(),
                label: f.label.into(),
                control: "select",
                value: value(f.name),
                options: std::iter::once(any())
                    .chain(company_options(st, p).await)
                    .collect(),
            }),
            (FieldKind::Ref { entity: target }, _) if target != Entity::User => {
                if let Some(id) = get_pair(current, f.name).and_then(parse_id) {
                    let mut names = Names::new(st, p);
                    let name = names.name_or_unavailable(target, id).await;
                    let mut rest: Pairs = current
                        .iter()
                        .filter(|(k, _)| k != f.name)
                        .cloned()
                        .collect();
                    rest.retain(|(k, _)| !personal_filter(entity, k));
                    fixed.push((
                        f.name.to_string(),
                        format!("{}: {name}", f.label),
                        id.to_string(),
                        href(&format!("/app/{}", entity.plural()), &rest),
                    ));
                }
                None
            }
            (_, Protection::SealedIndexed { .. })
                if f.name != "first_name" && f.name != "last_name" =>
            {
                Some(Filter {
                    name: f.name.into(),
                    label: match f.kind {
                        FieldKind::Tags => "Tag".to_string(),
                        _ => format!("{} (exact)", f.label),
                    },
                    control: match f.kind {
                        FieldKind::Email => "email",
                        FieldKind::Phone => "tel",
                        _ => "text",
                    },
                    value: value(f.name),
                    options: Vec::new(),
                })
            }
            _ => None,
        };
        if let Some(fl) = filter {
            out.push(fl);
        }
    }
    let _ = posted;
    (out, fixed)
}

/// Companies as (id, name) choices, by name.
async fn company_options(st: &AppState, p: &Principal) -> Vec<(String, String)> {
    let pairs = vec![
        ("sort".to_string(), "name".to_string()),
        ("limit".to_string(), "500".to_string()),
    ];
    let Ok(params) = ListParams::parse(Entity::Company, &pairs) else {
        return Vec::new();
    };
    match st.custos.list(p, Entity::Company, &params).await {
        Ok(page) => page
            .items
            .iter()
            .map(|v| (v.id().to_string(), fields::title(v)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------- forms

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    shell: Shell,
    /// A create form's idempotency key (the id the record will get); empty
    /// on edit forms.
    form_id: String,
    heading: String,
    intro: String,
    action: String,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    submit: String,
    cancel_href: String,
    return_to: String,
}

impl FormPage {
    /// Whether a field is a picker (the page then loads `picker.js`).
    fn has_picker(&self) -> bool {
        self.fields.iter().any(|f| f.picker.is_some())
    }
}

/// Builds the fields of a form with their values, choices and errors.
pub async fn build_form(
    st: &AppState,
    p: &Principal,
    entity: Entity,
    editing: bool,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
) -> Vec<FormField> {
    let mut out = Vec::new();
    // Fields the privacy officer stopped collecting leave the form.
    let stopped = st.custos.not_collected(entity).await.unwrap_or_default();
    for f in fields::form_fields(entity, p, editing) {
        if stopped.contains(&f.name) {
            continue;
        }
        let (control, maxlength) = fields::control(f);
        let value = values.get(f.name).cloned().unwrap_or_default();
        let mut field = FormField {
            name: f.name,
            label: f.label.to_string(),
            help: f.description,
            required: f.presence == custos_domain::inventory::Presence::Required,
            control,
            value,
            options: Vec::new(),
            maxlength,
            error: errors.get(f.name).cloned(),
            shown_as: String::new(),
            ..Default::default()
        };
        let choose = |what: &str| (String::new(), format!("Choose {what}…"));
        let none = || (String::new(), "None".to_string());
        match f.kind {
            FieldKind::Enum { values } => {
                if field.required {
                    field.options.push(choose("one"));
                } else {
                    field.options.push(none());
                }
                field
                    .options
                    .extend(values.iter().map(|v| (v.to_string(), fields::humanize(v))));
            }
            FieldKind::Stage => {
                field.options.push(choose("a stage"));
                let stages = st.custos.pipeline_stages(p).await.unwrap_or_default();
                field
                    .options
                    .extend(stages.iter().map(|s| (s.clone(), fields::humanize(s))));
            }
            FieldKind::Ref { entity: target } => {
                // Prefilled from the contact's page (no search box was
                // shown): the contact is shown, not chosen.
                let fixed = entity.subject_field() == Some(f.name)
                    && !field.value.is_empty()
                    && !values.contains_key(&fields::find_name(f.name));
                if fixed {
                    let id = parse_id(&field.value);
                    let mut names = Names::new(st, p);
                    field.shown_as = match id {
                        Some(id) => names.name_or_unavailable(target, id).await,
                        None => String::new(),
                    };
                    field.control = "hidden";
                } else if matches!(target, Entity::Contact | Entity::Company) {
                    super::picker::fill(st, p, &mut field, target, values).await;
                }
            }
            _ => {}
        }
        if editing {
            field.orig = Some(
                values
                    .get(&fields::orig_name(f.name))
                    .cloned()
                    .unwrap_or_else(|| field.value.clone()),
            );
        }
        out.push(field);
    }
    out
}

fn summary(fields: &[FormField], extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = fields
        .iter()
        .filter_map(|f| {
            f.error.as_ref().map(|e| {
                let target = if f.control == "hidden" {
                    String::new()
                } else {
                    format!("#f-{}", f.name)
                };
                (target, format!("{}: {e}", f.label))
            })
        })
        .collect();
    s.extend(extra.iter().cloned());
    s
}

/// Where to go after a form that came from another page (only a contact's page).
fn return_target(form: &[(String, String)]) -> Option<String> {
    let raw = get_pair(form, "return_to")?;
    let (kind, id) = raw.split_once(':')?;
    let entity = Entity::from_name(kind).filter(|e| Entity::CRM.contains(e))?;
    let id = parse_id(id)?;
    Some(format!("/app/{}/{id}", entity.plural()))
}

async fn new_form(
    State(st): State<AppState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
    entity: Entity,
) -> Response {
    let p = &ctx.caller.principal;
    if !ctx.may(Operation::Create, entity) {
        return ctx
            .error(
                &st,
                ServiceError::Forbidden(format!("creating {} is not allowed", entity.plural())),
            )
            .await;
    }
    // Prefill only ids (from a contact's or company's page) and sensible defaults.
    let mut values: HashMap<String, String> = parse_query(q)
        .into_iter()
        .filter(|(k, v)| k.ends_with("_id") && parse_id(v).is_some())
        .collect();
    let now = fields::datetime_input(st.custos.clock().now());
    match entity {
        Entity::Activity => {
            values.insert("occurred_at".into(), now);
            values.insert("kind".into(), "note".into());
        }
        Entity::Order => {
            values.insert("placed_at".into(), now);
            values.insert("status".into(), "pending".into());
        }
        Entity::Deal => {
            if let Some(first) = st
                .custos
                .pipeline_stages(p)
                .await
                .ok()
                .and_then(|s| s.into_iter().next())
            {
                values.insert("stage".into(), first);
            }
        }
        _ => {}
    }
    let return_to = values
        .get("contact_id")
        .filter(|_| matches!(entity, Entity::Activity | Entity::Order))
        .map(|id| format!("contact:{id}"))
        .unwrap_or_default();
    let fields = build_form(&st, p, entity, false, &values, &HashMap::new()).await;
    let page = FormPage {
        shell: ctx
            .shell(
                &st,
                format!("New {}", entity.name()),
                Section::Entity(entity),
            )
            .await,
        form_id: crate::ui::shell::new_form_id(),
        heading: format!("New {}", entity.name()),
        intro: about(entity).to_string(),
        action: format!("/app/{}/new", entity.plural()),
        fields,
        summary: Vec::new(),
        submit: format!("Create {}", entity.name()),
        cancel_href: return_target(&[("return_to".into(), return_to.clone())])
            .unwrap_or_else(|| format!("/app/{}", entity.plural())),
        return_to,
    };
    ctx.page(&page, StatusCode::OK)
}

fn error_map(
    entity: Entity,
    errs: &[custos_domain::FieldError],
    shown: &[FormField],
) -> (HashMap<String, String>, Vec<(String, String)>) {
    let mut map = HashMap::new();
    let mut extra = Vec::new();
    for e in errs {
        let decl = inventory::field(entity, &e.field);
        let msg = fields::form_message(decl, &e.message);
        if shown.iter().any(|f| f.name == e.field) {
            map.entry(e.field.clone()).or_insert(msg);
        } else {
            extra.push((
                String::new(),
                describe_error(
                    entity,
                    &custos_domain::FieldError::new(e.field.clone(), msg),
                ),
            ));
        }
    }
    (map, extra)
}

async fn create(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
    entity: Entity,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let decls = fields::form_fields(entity, p, false);
    let json = fields::form_json(&decls, &form, false);
    // The form's key is the new record's id: sent twice (Back, then Create
    // again), it creates one record and goes where the first did.
    let form_id = crate::ui::shell::posted_form_id(&form, st.custos.clock().now())
        .unwrap_or_else(uuid::Uuid::now_v7);
    if get_pair(&form, "find").is_some() {
        // A picker's Find button: the same form with the matches, nothing saved.
        return form_again(&st, &ctx, entity, None, &form, &[], form_id.to_string()).await;
    }
    match st.custos.create_once(p, entity, form_id, &json).await {
        Ok(custos_service::Submission::Created(view)) => {
            let to = return_target(&form)
                .unwrap_or_else(|| format!("/app/{}/{}", entity.plural(), view.id()));
            redirect_with_flash(&to, &format!("{}.created", entity.name()))
        }
        Ok(custos_service::Submission::Replayed(id)) => {
            let to =
                return_target(&form).unwrap_or_else(|| format!("/app/{}/{id}", entity.plural()));
            redirect_with_flash(&to, &format!("{}.created", entity.name()))
        }
        Err(ServiceError::Invalid(errs)) => {
            form_again(&st, &ctx, entity, None, &form, &errs, form_id.to_string()).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

/// A new or edit form again, with what was posted: after a picker's Find
/// button (no errors, 200) or with the service's errors by field (422).
async fn form_again(
    st: &AppState,
    ctx: &Ctx,
    entity: Entity,
    editing: Option<Uuid>,
    form: &[(String, String)],
    errs: &[custos_domain::FieldError],
    form_id: String,
) -> Response {
    let p = &ctx.caller.principal;
    let values: HashMap<String, String> = form.iter().cloned().collect();
    let probe = build_form(st, p, entity, editing.is_some(), &values, &HashMap::new()).await;
    let (errors, extra) = error_map(entity, errs, &probe);
    let fields: Vec<FormField> = probe
        .into_iter()
        .map(|mut f| {
            f.error = errors.get(f.name).cloned();
            f
        })
        .collect();
    let (heading, action, submit, cancel_href, return_to) = match editing {
        None => (
            format!("New {}", entity.name()),
            format!("/app/{}/new", entity.plural()),
            format!("Create {}", entity.name()),
            return_target(form).unwrap_or_else(|| format!("/app/{}", entity.plural())),
            get_pair(form, "return_to").unwrap_or_default().to_string(),
        ),
        Some(id) => {
            let title = match st.custos.get(p, entity, id).await {
                Ok(v) => fields::title(&v),
                Err(_) => entity.name().to_string(),
            };
            (
                format!("Edit {title}"),
                format!("/app/{}/{id}/edit", entity.plural()),
                "Save changes".to_string(),
                format!("/app/{}/{id}", entity.plural()),
                String::new(),
            )
        }
    };
    let status = if errs.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = FormPage {
        shell: ctx
            .shell(st, heading.clone(), Section::Entity(entity))
            .await,
        form_id,
        heading,
        intro: if editing.is_none() {
            about(entity).to_string()
        } else {
            String::new()
        },
        action,
        summary: summary(&fields, &extra),
        fields,
        submit,
        cancel_href,
        return_to,
    };
    ctx.page(&page, status)
}

async fn edit_form(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    entity: Entity,
) -> Response {
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound(entity.name())).await;
    };
    if !ctx.may(Operation::Update, entity) {
        return ctx
            .error(
                &st,
                ServiceError::Forbidden(format!("changing {} is not allowed", entity.plural())),
            )
            .await;
    }
    let view = match st.custos.get(p, entity, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let values: HashMap<String, String> = fields::form_fields(entity, p, true)
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                fields::input_value(view.record.get(f.name)),
            )
        })
        .collect();
    let fields = build_form(&st, p, entity, true, &values, &HashMap::new()).await;
    let title = fields::title(&view);
    let page = FormPage {
        shell: ctx
            .shell(&st, format!("Edit {title}"), Section::Entity(entity))
            .await,
        form_id: String::new(),
        heading: format!("Edit {title}"),
        intro: String::new(),
        action: format!("/app/{}/{id}/edit", entity.plural()),
        fields,
        summary: Vec::new(),
        submit: "Save changes".into(),
        cancel_href: format!("/app/{}/{id}", entity.plural()),
        return_to: String::new(),
    };
    ctx.page(&page, StatusCode::OK)
}

async fn update(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
    entity: Entity,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound(entity.name())).await;
    };
    if get_pair(&form, "find").is_some() {
        if !ctx.may(Operation::Update, entity) {
            return ctx
                .error(
                    &st,
                    ServiceError::Forbidden(format!("changing {} is not allowed", entity.plural())),
                )
                .await;
        }
        return form_again(&st, &ctx, entity, Some(id), &form, &[], String::new()).await;
    }
    let decls = fields::form_fields(entity, p, true);
    let json = fields::form_json(&decls, &form, true);
    match st.custos.update(p, entity, id, &json).await {
        Ok(_) => redirect_with_flash(
            &format!("/app/{}/{id}", entity.plural()),
            &format!("{}.updated", entity.name()),
        ),
        Err(ServiceError::Invalid(errs)) => {
            form_again(&st, &ctx, entity, Some(id), &form, &errs, String::new()).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

// ---------------------------------------------------------------- detail

/// A section of related records on a detail page.
#[derive(Debug, Clone)]
pub struct Related {
    /// Heading.
    pub heading: String,
    /// Anchor id.
    pub id: String,
    /// Column headings after the name.
    pub columns: Vec<String>,
    /// Name column heading.
    pub title_label: &'static str,
    /// The rows.
    pub rows: Vec<Row>,
    /// What to say when there are none.
    pub empty: String,
    /// Link to the full list, when there may be more.
    pub more_href: Option<String>,
    /// Link to create one here.
    pub new_href: Option<String>,
    /// Label of that link.
    pub new_label: String,
}

/// One entry of a contact's timeline.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Sort key (Unix ms).
    pub at: i64,
    /// When, for people.
    pub when: String,
    /// When, machine-readable.
    pub iso: String,
    /// What happened.
    pub text: String,
    /// More detail (activity text), if readable.
    pub detail: String,
    /// Link to the record.
    pub href: String,
}

/// An inline form on a detail page (log an activity, add an order).
#[derive(Debug, Clone)]
pub struct InlineForm {
    /// Heading.
    pub heading: String,
    /// Anchor id.
    pub id: String,
    /// Where it posts.
    pub action: String,
    /// Its fields.
    pub fields: Vec<FormField>,
    /// Button text.
    pub submit: String,
    /// The `return_to` value.
    pub return_to: String,
}

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    shell: Shell,
    entity_label: &'static str,
    list_href: String,
    list_label: &'static str,
    title: String,
    facts: Vec<Cell>,
    long_facts: Vec<Cell>,
    edit_href: Option<String>,
    delete_href: Option<String>,
    stage_form: Option<FormField>,
    stage_action: String,
    sections: Vec<Related>,
    timeline: Option<Vec<Moment>>,
    forms: Vec<InlineForm>,
    /// "Who accessed this contact", for roles that read the audit ledger.
    who: Option<super::audit::WhoAccessed>,
    /// Consent and processing flags, for roles that may record consent.
    privacy: Option<super::privacy::ContactPrivacy>,
}

async fn related(
    st: &AppState,
    p: &Principal,
    names: &mut Names<'_>,
    entity: Entity,
    filter: (&str, Uuid),
    sort: Option<&str>,
    heading: &str,
) -> Result<(Related, Vec<RecordView>), ServiceError> {
    let mut pairs = vec![
        (filter.0.to_string(), filter.1.to_string()),
        ("limit".to_string(), RELATED.to_string()),
    ];
    if let Some(s) = sort {
        pairs.push(("sort".into(), s.into()));
    }
    let params = ListParams::parse(entity, &pairs)?;
    let page = st.custos.list(p, entity, &params).await?;
    let cols: Vec<&'static FieldDecl> = fields::table_columns(entity)
        .into_iter()
        .filter(|f| f.name != filter.0)
        .collect();
    let rows = rows(entity, &page.items, &cols, names, p).await;
    let list = href(
        &format!("/app/{}", entity.plural()),
        &[(filter.0.to_string(), filter.1.to_string())],
    );
    let new_href = policy::allows(p.role, Operation::Create, entity).then(|| {
        href(
            &format!("/app/{}/new", entity.plural()),
            &[(filter.0.to_string(), filter.1.to_string())],
        )
    });
    Ok((
        Related {
            heading: heading.to_string(),
            id: entity.plural().to_string(),
            columns: cols
                .iter()
                .map(|f| {
                    if f.name == "created_at" {
                        "Added".to_string()
                    } else {
                        f.label.to_string()
                    }
                })
                .collect(),
            title_label: fields::title_label(entity),
            rows,
            empty: format!("No {} yet.", entity.plural()),
            more_href: page.next_cursor.as_ref().map(|_| list.clone()),
            new_href,
            new_label: format!("New {}", entity.name()),
        },
        page.items,
    ))
}

async fn detail(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    entity: Entity,
) -> Response {
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound(entity.name())).await;
    };
    let view = match st.custos.get(p, entity, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let mut names = Names::new(&st, p);
    names.know(&view);
    let mut facts = Vec::new();
    let mut long_facts = Vec::new();
    for f in fields::detail_fields(entity) {
        let c = cell(f, &view, &mut names, p).await;
        let long = matches!(
            f.kind,
            FieldKind::Text {
                multiline: true,
                ..
            }
        );
        if long {
            long_facts.push(c);
        } else {
            facts.push(c);
        }
    }
    let title = fields::title(&view);
    let mut sections = Vec::new();
    let mut timeline = None;
    let mut forms = Vec::new();
    let result: Result<(), ServiceError> = async {
        match entity {
            Entity::Contact => {
                let mut moments = vec![moment(&view, "Added to Custos", "created_at", "")];
                let (deals, deal_items) = related(
                    &st,
                    p,
                    &mut names,
                    Entity::Deal,
                    ("contact_id", id),
                    None,
                    "Deals",
                )
                .await?;
                for d in &deal_items {
                    moments.push(moment(
                        d,
                        &format!("Deal “{}” opened", fields::title(d)),
                        "created_at",
                        "",
                    ));
                }
                let (acts, act_items) = related(
                    &st,
                    p,
                    &mut names,
                    Entity::Activity,
                    ("contact_id", id),
                    Some("-occurred_at"),
                    "Activities",
                )
                .await?;
                for a in &act_items {
                    let body = a.record.get("body").display();
                    let detail = if a.masked.contains(&"body") {
                        "Details hidden from your role.".to_string()
                    } else {
                        body.chars().take(200).collect()
                    };
                    let kind =
                        fields::humanize(a.record.get("kind").as_text().unwrap_or("activity"));
                    moments.push(moment(a, &kind, "occurred_at", &detail));
                }
                let (orders, order_items) = related(
                    &st,
                    p,
                    &mut names,
                    Entity::Order,
                    ("contact_id", id),
                    Some("-placed_at"),
                    "Orders",
                )
                .await?;
                for o in &order_items {
                    let total = fields::display(
                        inventory::field(Entity::Order, "total")
                            .ok_or(ServiceError::NotFound("field"))?,
                        &o.record,
                    );
                    let total = if o.masked.contains(&"total") {
                        "hidden amount".to_string()
                    } else {
                        total
                    };
                    moments.push(moment(
                        o,
                        &format!("Order placed ({total})"),
                        "placed_at",
                        "",
                    ));
                }
                moments.sort_by_key(|m| std::cmp::Reverse(m.at));
                timeline = Some(moments);
                sections.push(deals);
                sections.push(acts);
                sections.push(orders);
                for (e, heading, submit) in [
                    (Entity::Activity, "Log an activity", "Log activity"),
                    (Entity::Order, "Add an order", "Add order"),
                ] {
                    if !ctx.may(Operation::Create, e) {
                        continue;
                    }
                    let mut values = HashMap::new();
                    values.insert("contact_id".to_string(), id.to_string());
                    let now = fields::datetime_input(st.custos.clock().now());
                    if e == Entity::Activity {
                        values.insert("occurred_at".into(), now);
                        values.insert("kind".into(), "note".into());
                    } else {
                        values.insert("placed_at".into(), now);
                        values.insert("status".into(), "pending".into());
                    }
                    let mut fs = build_form(&st, p, e, false, &values, &HashMap::new()).await;
                    for f in &mut fs {
                        f.shown_as.clear(); // the page already names the contact
                    }
                    forms.push(InlineForm {
                        heading: heading.into(),
                        id: format!("add-{}", e.name()),
                        action: format!("/app/{}/new", e.plural()),
                        fields: fs,
                        submit: submit.into(),
                        return_to: format!("contact:{id}"),
                    });
                }
            }
            Entity::Company => {
                sections.push(
                    related(
                        &st,
                        p,
                        &mut names,
                        Entity::Contact,
                        ("company_id", id),
                        None,
                        "Contacts",
                    )
                    .await?
                    .0,
                );
                sections.push(
                    related(
                        &st,
                        p,
                        &mut names,
                        Entity::Deal,
                        ("company_id", id),
                        None,
                        "Deals",
                    )
                    .await?
                    .0,
                );
            }
            _ => {}
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        return ctx.error(&st, e).await;
    }
    let stage_form = if entity == Entity::Deal && ctx.may(Operation::Update, Entity::Deal) {
        let stages = st.custos.pipeline_stages(p).await.unwrap_or_default();
        Some(FormField {
            name: "stage",
            label: "Move to stage".into(),
            help: "",
            required: true,
            control: "select",
            value: view.record.get("stage").display(),
            options: stages
                .iter()
                .map(|s| (s.clone(), fields::humanize(s)))
                .collect(),
            maxlength: 0,
            error: None,
            shown_as: String::new(),
            ..Default::default()
        })
    } else {
        None
    };
    let privacy = if entity == Entity::Contact {
        super::privacy::contact_section(&st, &ctx, id).await
    } else {
        None
    };
    let who = if entity == Entity::Contact {
        super::audit::who_accessed(&st, &ctx, id).await
    } else {
        None
    };
    let page = DetailPage {
        shell: ctx.shell(&st, title.clone(), Section::Entity(entity)).await,
        entity_label: entity.label(),
        list_href: format!("/app/{}", entity.plural()),
        list_label: plural_label(entity),
        title,
        facts,
        long_facts,
        edit_href: ctx
            .may(Operation::Update, entity)
            .then(|| format!("/app/{}/{id}/edit", entity.plural())),
        delete_href: ctx
            .may(Operation::Delete, entity)
            .then(|| format!("/app/{}/{id}/delete", entity.plural())),
        stage_form,
        stage_action: format!("/app/deals/{id}/stage"),
        sections,
        timeline,
        forms,
        who,
        privacy,
    };
    ctx.page(&page, StatusCode::OK)
}

fn moment(v: &RecordView, text: &str, field: &str, detail: &str) -> Moment {
    let t = match v.record.get(field) {
        Value::Timestamp(t) => *t,
        _ => match v.record.get("created_at") {
            Value::Timestamp(t) => *t,
            _ => time::OffsetDateTime::UNIX_EPOCH,
        },
    };
    Moment {
        at: custos_domain::value::to_unix_ms(t),
        when: fields::when(t),
        iso: custos_domain::value::format_timestamp(t),
        text: text.to_string(),
        detail: detail.to_string(),
        href: format!("/app/{}/{}", v.record.entity.plural(), v.id()),
    }
}

// ---------------------------------------------------------------- delete

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    shell: Shell,
    title: String,
    action: String,
    consequences: Vec<String>,
    blocked: Option<String>,
    cancel_href: String,
}

async fn count_of(
    st: &AppState,
    p: &Principal,
    entity: Entity,
    field: &str,
    id: Uuid,
) -> Result<ListSize, ServiceError> {
    let params = ListParams::parse(entity, &[(field.to_string(), id.to_string())])?;
    Ok(st
        .custos
        .count(p, entity, &params)
        .await?
        .unwrap_or(ListSize::Exactly(0)))
}

async fn delete_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    entity: Entity,
) -> Response {
    let p = &ctx.caller.principal;
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound(entity.name())).await;
    };
    if !ctx.may(Operation::Delete, entity) {
        return ctx
            .error(
                &st,
                ServiceError::Forbidden(format!("deleting {} is not allowed", entity.plural())),
            )
            .await;
    }
    let view = match st.custos.get(p, entity, id).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let title = fields::title(&view);
    let mut consequences = Vec::new();
    let mut blocked = None;
    let facts: Result<(), ServiceError> = async {
        match entity {
            Entity::Contact => {
                let orders = count_of(&st, p, Entity::Order, "contact_id", id).await?;
                let acts = count_of(&st, p, Entity::Activity, "contact_id", id).await?;
                let deals = count_of(&st, p, Entity::Deal, "contact_id", id).await?;
                if orders.at_least() > 0 {
                    blocked = Some(format!(
                        "{title} has {} kept for accounting, so this contact cannot be deleted. To remove the person, erase them through a data-subject request: their personal details are then destroyed while the orders stay, no longer linked to a readable identity.",
                        fields::n_things(orders, "order", "orders")
                    ));
                } else {
                    consequences.push(format!("{title} and their personal details are deleted, and their encryption key is destroyed."));
                    consequences.push(format!("Their {} deleted with them.", if acts == ListSize::Exactly(1) { "1 activity is".to_string() } else { format!("{} activities are", fields::size_text(acts)) }));
                    if deals.at_least() > 0 {
                        consequences.push(format!("{} stay, no longer linked to this contact.", fields::n_things(deals, "deal", "deals")));
                    }
                }
            }
            Entity::Company => {
                let contacts = count_of(&st, p, Entity::Contact, "company_id", id).await?;
                let deals = count_of(&st, p, Entity::Deal, "company_id", id).await?;
                consequences.push(format!("The company {title} is deleted."));
                consequences.push(format!(
                    "{} and {} stay, no longer linked to it.",
                    fields::n_things(contacts, "contact", "contacts"),
                    fields::n_things(deals, "deal", "deals")
                ));
            }
            _ => consequences.push(format!("{} “{title}” is deleted.", entity.label())),
        }
        Ok(())
    }
    .await;
    if let Err(e) = facts {
        return ctx.error(&st, e).await;
    }
    if blocked.is_none() {
        consequences.push("This cannot be undone.".into());
    }
    let page = DeletePage {
        shell: ctx
            .shell(&st, format!("Delete {title}"), Section::Entity(entity))
            .await,
        title,
        action: format!("/app/{}/{id}/delete", entity.plural()),
        consequences,
        blocked,
        cancel_href: format!("/app/{}/{id}", entity.plural()),
    };
    ctx.page(&page, StatusCode::OK)
}

async fn delete(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
    entity: Entity,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound(entity.name())).await;
    };
    match st.custos.delete(&ctx.caller.principal, entity, id).await {
        Ok(()) => redirect_with_flash(
            &format!("/app/{}", entity.plural()),
            &format!("{}.deleted", entity.name()),
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}
