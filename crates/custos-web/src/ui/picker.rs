//! The contact and company picker of the CRM forms. A form field that
//! refers to a contact or a company is a search, not a list of the newest
//! few hundred: it finds any record by name, email or phone (companies by
//! name or domain) however many there are.
//!
//! Without scripts it is a search step: the field's Find button posts the
//! form back to itself with `find=NAME`, and the form comes back with what
//! was typed kept and the matches as radio buttons. `picker.js` turns the
//! search box into a typeahead against `POST /app/pick/{contacts|companies}`.
//! Both search through the service's list, so every search is authorised
//! and on the audit record like any other list.

use super::fields::{self, FormField, Picker};
use super::shell::Ctx;
use super::widgets::Names;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use custos_domain::{Entity, Value};
use custos_service::{ListParams, Principal, SearchKind, ServiceError, search_kind};
use std::collections::HashMap;
use uuid::Uuid;

/// Matches shown at most, in the search step and the typeahead.
pub const PICK_LIMIT: u32 = 20;

/// The picker's endpoint.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/pick/{kind}", post(pick_json))
}

/// The entity a picker path names.
fn target_of(kind: &str) -> Option<Entity> {
    match kind {
        "contacts" => Some(Entity::Contact),
        "companies" => Some(Entity::Company),
        _ => None,
    }
}

/// What a search found.
#[derive(Debug, Default)]
pub struct Found {
    /// (id, name, detail) of each match, at most [`PICK_LIMIT`].
    pub matches: Vec<(String, String, String)>,
    /// Whether there are more than those (or the search stopped short).
    pub more: bool,
}

/// How to search a picker, for the help under an empty search.
fn how_to_search(target: Entity) -> &'static str {
    match target {
        Entity::Contact => {
            "Type a first or last name (whole words), an email address or a phone number."
        }
        _ => "Type part of the company's name or web domain.",
    }
}

/// Searches contacts (by email, phone or name, as the global search reads
/// the query) or companies (by name or domain) through the audited list.
pub async fn search(
    st: &AppState,
    p: &Principal,
    target: Entity,
    q: &str,
) -> Result<Found, String> {
    let q = q.trim();
    if q.is_empty() {
        return Err(how_to_search(target).to_string());
    }
    if q.chars().count() > 200 {
        return Err("The search can be at most 200 characters.".to_string());
    }
    let (param, value) = match (target, search_kind(q)) {
        (Entity::Contact, SearchKind::Email) => ("email", q.to_string()),
        (Entity::Contact, SearchKind::Phone) => ("phone", q.to_string()),
        // A company is found by the domain of an email typed in its box.
        (_, SearchKind::Email) => ("q", q.rsplit('@').next().unwrap_or(q).to_string()),
        _ => ("q", q.to_string()),
    };
    let pairs = vec![
        (param.to_string(), value),
        ("limit".to_string(), PICK_LIMIT.to_string()),
    ];
    let params = ListParams::parse(target, &pairs).map_err(|e| describe(&e))?;
    let page = st
        .custos
        .list(p, target, &params)
        .await
        .map_err(|e| describe(&e))?;
    let detail_field = match target {
        Entity::Contact => "email",
        _ => "domain",
    };
    let matches = page
        .items
        .iter()
        .map(|v| {
            let detail = if v.masked.contains(&detail_field) {
                String::new()
            } else {
                match v.record.get(detail_field) {
                    Value::Null => String::new(),
                    other => other.display(),
                }
            };
            (v.id().to_string(), fields::title(v), detail)
        })
        .collect();
    Ok(Found {
        matches,
        more: page.next_cursor.is_some() || page.partial,
    })
}

/// A service error in the words of the picker.
fn describe(e: &ServiceError) -> String {
    match e {
        ServiceError::Forbidden(why) => format!("Searching is not allowed: {why}."),
        ServiceError::Invalid(errs) => errs
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        _ => "The search failed; try again.".to_string(),
    }
}

/// Makes `field` (a reference to `target`) a picker: the chosen record's
/// name, what was typed in its search box and, when the form is the answer
/// to this picker's Find button, the matches.
pub async fn fill(
    st: &AppState,
    p: &Principal,
    field: &mut FormField,
    target: Entity,
    values: &HashMap<String, String>,
) {
    let kind = match target {
        Entity::Contact => "contacts",
        _ => "companies",
    };
    field.control = "picker";
    field.shown_as = match Uuid::parse_str(field.value.trim()) {
        Ok(id) => Names::new(st, p).name_or_unavailable(target, id).await,
        Err(_) => String::new(),
    };
    if field.shown_as.is_empty() {
        field.value.clear();
    }
    let query = values
        .get(&fields::find_name(field.name))
        .cloned()
        .unwrap_or_default();
    let searched = values.get("find").is_some_and(|f| f == field.name);
    let mut picker = Picker {
        kind,
        noun: target.name(),
        query,
        searched,
        matches: Vec::new(),
        note: String::new(),
    };
    if searched {
        match search(st, p, target, &picker.query).await {
            Ok(found) => {
                picker.note = match (found.matches.is_empty(), found.more) {
                    (true, _) => format!(
                        "No {} matches “{}”. {}",
                        target.name(),
                        picker.query.trim(),
                        how_to_search(target)
                    ),
                    (false, true) => format!(
                        "Showing the first {PICK_LIMIT} matches; type more to narrow the search."
                    ),
                    (false, false) => String::new(),
                };
                // The one chosen already is offered as "keep", not twice.
                let keep = field.value.clone();
                picker.matches = found
                    .matches
                    .into_iter()
                    .filter(|(id, _, _)| *id != keep)
                    .collect();
            }
            Err(note) => picker.note = note,
        }
    }
    field.picker = Some(picker);
}

#[derive(serde::Serialize)]
struct PickItem {
    id: String,
    name: String,
    detail: String,
}

#[derive(serde::Serialize)]
struct PickAnswer {
    items: Vec<PickItem>,
    more: bool,
    note: String,
}

/// `POST /app/pick/{contacts|companies}` with the session's CSRF token and
/// `q`: the matches as JSON, for the typeahead. A POST, so that what is
/// typed (an email, a phone number) never appears in a URL or a log.
async fn pick_json(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(kind): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(target) = target_of(&kind) else {
        return (StatusCode::NOT_FOUND, "no such picker").into_response();
    };
    let q = form
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let p = &ctx.caller.principal;
    if !ctx.may(custos_domain::policy::Operation::Read, target) {
        let answer = PickAnswer {
            items: Vec::new(),
            more: false,
            note: format!(
                "Your role ({}) may not read {}.",
                p.role_label,
                target.plural()
            ),
        };
        return (StatusCode::FORBIDDEN, Json(answer)).into_response();
    }
    let (status, answer) = match search(&st, p, target, q).await {
        Ok(found) => (
            StatusCode::OK,
            PickAnswer {
                note: if found.matches.is_empty() {
                    format!("No {} matches. {}", target.name(), how_to_search(target))
                } else {
                    String::new()
                },
                more: found.more,
                items: found
                    .matches
                    .into_iter()
                    .map(|(id, name, detail)| PickItem { id, name, detail })
                    .collect(),
            },
        ),
        Err(note) => (
            if q.trim().is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            PickAnswer {
                items: Vec::new(),
                more: false,
                note,
            },
        ),
    };
    (status, Json(answer)).into_response()
}
