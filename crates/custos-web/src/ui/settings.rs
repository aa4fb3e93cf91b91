//! Admin › Settings: the controller and data protection officer, entered
//! once and named by the record of processing and the public privacy notice.

use super::fields::FormField;
use super::shell::{Ctx, Section, Shell, redirect_with_flash};
use super::widgets::request_form::{form_field, place_errors};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use custos_service::{Controller, ServiceError};
use serde_json::json;

const HREF: &str = "/app/admin/settings";

/// The Settings routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route(HREF, get(page).post(save))
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage {
    shell: Shell,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
}

fn controller_fields(c: &Controller) -> Vec<FormField> {
    let specs: [(
        &'static str,
        &str,
        &'static str,
        &'static str,
        bool,
        usize,
        &str,
    ); 5] = [
        (
            "name",
            "Organisation",
            "The controller's legal name, as the privacy notice names it.",
            "text",
            true,
            200,
            &c.name,
        ),
        (
            "address",
            "Postal address",
            "Where people and authorities can write to you.",
            "textarea",
            false,
            500,
            &c.address,
        ),
        (
            "email",
            "Privacy contact email",
            "Where people write about their data.",
            "email",
            true,
            254,
            &c.email,
        ),
        (
            "dpo_name",
            "Data protection officer",
            "Leave empty if none is appointed.",
            "text",
            false,
            200,
            &c.dpo_name,
        ),
        (
            "dpo_email",
            "DPO's email",
            "Required when a DPO is named.",
            "email",
            false,
            254,
            &c.dpo_email,
        ),
    ];
    specs
        .into_iter()
        .map(|(name, label, help, control, required, max, value)| {
            let mut f = form_field(name, label, help, control, required, max);
            f.value = value.to_string();
            f
        })
        .collect()
}

async fn admin_only(st: &AppState, ctx: &Ctx) -> Result<(), Response> {
    super::admin::admin_only_for(st, ctx, "Only administrators change the settings.").await
}

async fn render_page(
    st: &AppState,
    ctx: &Ctx,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    status: StatusCode,
) -> Response {
    let page = SettingsPage {
        shell: ctx.shell(st, "Settings", Section::Admin(HREF)).await,
        fields,
        summary,
    };
    ctx.page(&page, status)
}

async fn page(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    match st.custos.controller().await {
        Ok(c) => render_page(&st, &ctx, controller_fields(&c), Vec::new(), StatusCode::OK).await,
        Err(e) => ctx.error(&st, e).await,
    }
}

async fn save(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = json!({
        "name": get("name"),
        "address": get("address"),
        "email": get("email"),
        "dpo_name": get("dpo_name"),
        "dpo_email": get("dpo_email"),
    });
    match st.custos.set_controller(&ctx.caller.principal, &body).await {
        Ok(_) => redirect_with_flash(HREF, "admin.controller_saved"),
        Err(ServiceError::Invalid(errs)) => {
            let entered = Controller {
                name: get("name"),
                address: get("address"),
                email: get("email"),
                dpo_name: get("dpo_name"),
                dpo_email: get("dpo_email"),
            };
            let mut fields = controller_fields(&entered);
            let summary = place_errors(&mut fields, &errs);
            render_page(&st, &ctx, fields, summary, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}
