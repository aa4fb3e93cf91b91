//! Opening a request from the staff side ("New request", any staff role that
//! may log one) and the receipt page with the one-time code and status link.

use super::*;
use crate::AppState;
use crate::ui::fields::FormField;
use crate::ui::shell::{Ctx, Section, Shell};
use crate::ui::widgets::{place_errors, request_fields};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custos_domain::Entity;
use custos_domain::policy::Operation;
use custos_service::{Opener, ServiceError};
use serde_json::{Value as Json, json};
use uuid::Uuid;

#[derive(Template)]
#[template(path = "privacy_new.html")]
pub(super) struct NewPage {
    shell: Shell,
    /// The form's idempotency key (the id the request will get).
    form_id: String,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    cancel_href: &'static str,
}

pub(super) async fn new_form(State(st): State<AppState>, ctx: Ctx) -> Response {
    if !ctx.may(Operation::Create, Entity::Request) {
        return ctx
            .error(
                &st,
                ServiceError::Forbidden("logging privacy requests is not allowed".into()),
            )
            .await;
    }
    let page = NewPage {
        shell: ctx
            .shell(&st, "New privacy request", new_section(&ctx))
            .await,
        form_id: crate::ui::shell::new_form_id(),
        fields: request_fields(&Vec::new(), true),
        summary: Vec::new(),
        cancel_href: cancel_href(&ctx),
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) fn new_section(ctx: &Ctx) -> Section {
    if ctx.may(Operation::Read, Entity::Request) {
        Section::Privacy("/app/privacy/requests")
    } else {
        Section::Privacy("/app/privacy/requests/new")
    }
}

pub(super) fn cancel_href(ctx: &Ctx) -> &'static str {
    if ctx.may(Operation::Read, Entity::Request) {
        "/app/privacy/requests"
    } else {
        "/app"
    }
}

#[derive(Template)]
#[template(path = "privacy_opened.html")]
pub(super) struct OpenedPage {
    shell: Shell,
    kind: &'static str,
    email: String,
    code: String,
    status_url: String,
    clock: ClockView,
    detail_href: Option<String>,
}

/// The request's own address on this server, for the status link.
pub(super) fn origin(ctx: &Ctx) -> String {
    let host = ctx
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| ctx.uri.authority().map(|a| a.to_string()))
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("https://{host}")
}

/// `POST /app/privacy/requests/new`, then (POST → redirect → GET) the
/// receipt page with the one-time code and the status link: a reload shows
/// the receipt again, and the form sent twice opens one request (its
/// `form_id` is the request's id).
pub(super) async fn open(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let mut body = serde_json::Map::new();
    for name in ["kind", "regime", "subject_email"] {
        body.insert(
            name.into(),
            json!(get_pair(&form, name).unwrap_or_default().trim()),
        );
    }
    if let Some(d) = get_pair(&form, "details").filter(|d| !d.trim().is_empty()) {
        body.insert("details".into(), json!(d));
    }
    let form_id = crate::ui::shell::posted_form_id(&form, st.custos.clock().now())
        .unwrap_or_else(Uuid::now_v7);
    match st
        .custos
        .dsar_open_once(&Opener::Staff(p.clone()), &Json::Object(body), form_id)
        .await
    {
        Ok(custos_service::Submission::Created(opened)) => {
            Redirect::to(&format!("/app/privacy/requests/{}/opened", opened.view.id))
                .into_response()
        }
        Ok(custos_service::Submission::Replayed(id)) => {
            Redirect::to(&format!("/app/privacy/requests/{id}/opened")).into_response()
        }
        Err(ServiceError::Invalid(errs)) => {
            let mut fields = request_fields(&form, true);
            let summary = place_errors(&mut fields, &errs);
            let page = NewPage {
                shell: ctx
                    .shell(&st, "New privacy request", new_section(&ctx))
                    .await,
                form_id: form_id.to_string(),
                fields,
                summary,
                cancel_href: cancel_href(&ctx),
            };
            ctx.page(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

/// `GET /app/privacy/requests/{id}/opened`: the receipt of a request this
/// user just opened. Past its hour, or to anyone else, it says so and points
/// to the request (for those who may read it).
pub(super) async fn opened(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("request")).await;
    };
    let receipt = match st.custos.dsar_receipt(&ctx.caller.principal, id).await {
        Ok(r) => r,
        Err(ServiceError::NotFound(_)) if ctx.may(Operation::Read, Entity::Request) => {
            return Redirect::to(&format!("/app/privacy/requests/{id}")).into_response();
        }
        Err(ServiceError::NotFound(_)) => {
            return ctx
                .message(
                    &st,
                    StatusCode::NOT_FOUND,
                    "Request opened",
                    "This request was opened. Its one-time code and status link are shown only to whoever opened it, for an hour, and until identity is verified; ask the privacy officer if you need them.",
                )
                .await;
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    let now = st.custos.clock().now();
    let v = &receipt.view;
    let page = OpenedPage {
        shell: ctx.shell(&st, "Request opened", new_section(&ctx)).await,
        kind: kind_label(v.kind),
        email: v.subject_email.clone(),
        code: receipt.verification_code.clone(),
        status_url: format!(
            "{}/privacy/requests/{}?token={}",
            origin(&ctx),
            v.id,
            receipt.status_token
        ),
        clock: clock_view(v, now),
        detail_href: ctx
            .may(Operation::Read, Entity::Request)
            .then(|| format!("/app/privacy/requests/{}", v.id)),
    };
    ctx.page(&page, StatusCode::OK)
}
