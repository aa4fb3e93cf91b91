//! Changing a retention policy's period: the policy's page shows its rule,
//! its versions with their reasons, and a form for a new period. A change
//! that would purge more records on the next run is shown with the number
//! first, and saved only once the privacy officer confirms it.

use super::retention::{entity_words, period_words, then_words};
use super::*;
use crate::AppState;
use crate::ui::fields::FormField;
use crate::ui::shell::{Ctx, Section, Shell, redirect_with_flash};
use crate::ui::widgets::request_form::place_errors;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::retention::{self, Policy};
use custos_service::{PolicyImpact, PolicyView, ServiceError};
use serde_json::json;

const RETENTION: &str = "/app/privacy/retention";

/// One version in the history table.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// Its number.
    pub version: u32,
    /// The period, in words.
    pub change: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When.
    pub when: String,
    /// The ledger entry's page.
    pub leaf_href: String,
}

#[derive(Template)]
#[template(path = "privacy_policy.html")]
pub(super) struct PolicyPage {
    shell: Shell,
    key: String,
    what: String,
    period: String,
    then: String,
    version: u32,
    default_years: u32,
    history: Vec<VersionRow>,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    can_edit: bool,
}

#[derive(Template)]
#[template(path = "privacy_policy_confirm.html")]
pub(super) struct ConfirmPage {
    shell: Shell,
    key: String,
    what: String,
    impact: PolicyImpact,
    years: String,
    reason: String,
}

fn years_words(y: u32) -> String {
    format!("{y} {}", if y == 1 { "year" } else { "years" })
}

fn policy_fields(years: &str, reason: &str) -> Vec<FormField> {
    let mut f = vec![
        form_field(
            "years",
            "New period in years",
            "Whole years, 1 to 100. The next run applies it; a shorter period purges records sooner.",
            "text",
            true,
            3,
        ),
        form_field(
            "reason",
            "Reason for the change",
            "The law, contract or decision behind it. It is kept with the version; the audit ledger records the change itself.",
            "textarea",
            true,
            custos_service::POLICY_REASON_MAX,
        ),
    ];
    f[0].value = years.to_string();
    f[1].value = reason.to_string();
    f
}

/// The policy of `key` in force, with its view, or the error page.
async fn policy_of(st: &AppState, ctx: &Ctx, key: &str) -> Result<(Policy, PolicyView), Response> {
    let views = match st.custos.retention_policies(&ctx.caller.principal).await {
        Ok(v) => v,
        Err(e) => return Err(ctx.error(st, e).await),
    };
    let Some(view) = views.into_iter().find(|v| v.key == key) else {
        return Err(ctx
            .error(st, ServiceError::NotFound("retention policy"))
            .await);
    };
    let mut policy = match retention::policies().into_iter().find(|p| p.key() == key) {
        Some(p) => p,
        None => {
            return Err(ctx
                .error(st, ServiceError::NotFound("retention policy"))
                .await);
        }
    };
    policy.years = view.years;
    policy.version = view.version;
    Ok((policy, view))
}

async fn policy_page(
    st: &AppState,
    ctx: &Ctx,
    key: &str,
    fields: Vec<FormField>,
    summary: Vec<(String, String)>,
    status: StatusCode,
) -> Response {
    let (policy, view) = match policy_of(st, ctx, key).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let what = entity_words(policy.entity);
    let page = PolicyPage {
        shell: ctx
            .shell(
                st,
                &format!("Retention of {}", what.to_lowercase()),
                Section::Privacy(RETENTION),
            )
            .await,
        key: view.key.clone(),
        period: period_words(&policy),
        then: then_words(&policy),
        what,
        version: view.version,
        default_years: view.default_years,
        history: view
            .history
            .iter()
            .rev()
            .map(|h| VersionRow {
                version: h.version,
                change: format!(
                    "{} → {}",
                    years_words(h.previous_years),
                    years_words(h.years)
                ),
                reason: h.reason.clone(),
                by: super::retention::actor_words(&h.by, ctx.caller.principal.user_id),
                when: when_text(&h.at),
                leaf_href: format!("/app/audit/events/{}", h.leaf),
            })
            .collect(),
        fields,
        summary,
        can_edit: ctx.caller.principal.role != custos_domain::Role::Auditor,
    };
    ctx.page(&page, status)
}

pub(super) async fn policy(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(key): Path<String>,
) -> Response {
    policy_page(
        &st,
        &ctx,
        &key,
        policy_fields("", ""),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

pub(super) async fn save_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(key): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let years = get_pair(&form, "years").unwrap_or_default().to_string();
    let reason = form
        .iter()
        .find(|(k, _)| k == "reason")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let confirmed = get_pair(&form, "confirm") == Some("yes");
    // Before saving a period that purges more, show how many it would.
    if !confirmed
        && let Ok(y) = retention::parse_years(&years)
        && !reason.trim().is_empty()
    {
        match st.custos.retention_policy_impact(p, &key, y).await {
            Ok(impact) if impact.more > 0 && impact.years_now != y => {
                return confirm_page(&st, &ctx, &key, impact, &years, &reason).await;
            }
            Ok(_) => {}
            Err(e) => return ctx.error(&st, e).await,
        }
    }
    let body = json!({"years": years, "reason": reason, "confirm": confirmed});
    match st.custos.retention_policy_set(p, &key, &body).await {
        Ok(_) => redirect_with_flash(
            &format!("{RETENTION}/policies/{key}"),
            "privacy.policy_saved",
        ),
        Err(ServiceError::Invalid(errs)) => {
            let mut fields = policy_fields(&years, &reason);
            let summary = place_errors(&mut fields, &errs);
            policy_page(
                &st,
                &ctx,
                &key,
                fields,
                summary,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        // More became due between the count and the save: count again.
        Err(ServiceError::Conflict(_)) => {
            let Ok(y) = retention::parse_years(&years) else {
                return ctx
                    .error(&st, ServiceError::NotFound("retention policy"))
                    .await;
            };
            match st.custos.retention_policy_impact(p, &key, y).await {
                Ok(impact) => confirm_page(&st, &ctx, &key, impact, &years, &reason).await,
                Err(e) => ctx.error(&st, e).await,
            }
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

async fn confirm_page(
    st: &AppState,
    ctx: &Ctx,
    key: &str,
    impact: PolicyImpact,
    years: &str,
    reason: &str,
) -> Response {
    let what = match retention::policies().into_iter().find(|p| p.key() == key) {
        Some(p) => entity_words(p.entity),
        None => key.to_string(),
    };
    let page = ConfirmPage {
        shell: ctx
            .shell(st, "Confirm the new period", Section::Privacy(RETENTION))
            .await,
        key: key.to_string(),
        what,
        impact,
        years: years.to_string(),
        reason: reason.to_string(),
    };
    ctx.page(&page, StatusCode::OK)
}
