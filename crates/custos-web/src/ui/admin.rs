//! The Admin pages (administrators only): users (create, disable and enable,
//! force MFA re-enrolment, reset password), sessions (revoke) and API tokens
//! (revoke). Every change is a posted form with the session's CSRF token,
//! answered by a redirect with a flash message (POST → redirect → GET); the
//! service decides again and audits. Sensitive changes need a recent second
//! factor: without one the browser is sent to the step-up page.

use super::shell::{Ctx, Section, Shell, redirect_with_flash};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::Role;
use custos_service::{ServiceError, SessionView, TokenView, UserView};
use secrecy::SecretString;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The Admin routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/admin/users", get(users).post(user_create))
        .route("/app/admin/users/{id}/{action}", post(user_action))
        .route("/app/admin/sessions", get(sessions))
        .route("/app/admin/sessions/{id}/revoke", post(session_revoke))
        .route("/app/admin/tokens", get(tokens))
        .route("/app/admin/tokens/{id}/revoke", post(token_revoke))
}

/// The words of an `admin.*` flash code.
pub fn flash_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "admin.created" => "User created.",
        "admin.disabled" => "User disabled. Their sessions have ended.",
        "admin.enabled" => "User enabled.",
        "admin.mfa_reset" => {
            "Second factors removed: the user must enrol one again at next sign-in."
        }
        "admin.password" => "Password reset. The user's sessions have ended.",
        "admin.session_revoked" => "Session revoked.",
        "admin.token_revoked" => "API token revoked.",
        _ => return None,
    })
}

/// The sidebar group, for administrators.
pub fn nav_group(role: Role, section: Section) -> Option<super::shell::NavGroup> {
    (role == Role::Admin).then(|| super::shell::NavGroup {
        name: "Admin",
        items: [
            ("Users", "/app/admin/users"),
            ("Sessions", "/app/admin/sessions"),
            ("API tokens", "/app/admin/tokens"),
        ]
        .into_iter()
        .map(|(label, href)| super::shell::NavItem {
            label,
            href,
            current: section == Section::Admin(href),
        })
        .collect(),
    })
}

/// A role choice of the create form.
pub struct RoleOption {
    name: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    shell: Shell,
    users: Vec<UserView>,
    roles: Vec<RoleOption>,
    email: String,
    role: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct SessionsPage {
    shell: Shell,
    sessions: Vec<(SessionView, String)>,
}

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<(TokenView, String)>,
}

/// Non-administrators get a 403 page before anything is read.
async fn admin_only(st: &AppState, ctx: &Ctx) -> Result<(), Response> {
    if ctx.role() == Role::Admin {
        Ok(())
    } else {
        Err(ctx
            .message(
                st,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Only administrators manage users, sessions and API tokens.",
            )
            .await)
    }
}

/// A service refusal: step-up goes to the step-up page and back.
async fn failed(st: &AppState, ctx: &Ctx, back: &str, e: ServiceError) -> Response {
    match e {
        ServiceError::Forbidden(m) if m == custos_service::STEP_UP_REQUIRED => {
            Redirect::to(&format!("/app/security/step-up?return_to={back}")).into_response()
        }
        e => ctx.error(st, e).await,
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

async fn emails(st: &AppState, ctx: &Ctx) -> BTreeMap<Uuid, String> {
    st.custos
        .list_users(&ctx.caller.principal)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect()
}

async fn users_page(
    st: &AppState,
    ctx: &Ctx,
    email: String,
    role: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let users = match st.custos.list_users(&ctx.caller.principal).await {
        Ok(u) => u,
        Err(e) => return ctx.error(st, e).await,
    };
    let page = UsersPage {
        shell: ctx
            .shell(st, "Users", Section::Admin("/app/admin/users"))
            .await,
        users,
        roles: Role::ALL
            .iter()
            .map(|r| RoleOption {
                name: r.name(),
                label: r.label(),
            })
            .collect(),
        email,
        role,
        error,
    };
    ctx.page(&page, status)
}

async fn users(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    users_page(
        &st,
        &ctx,
        String::new(),
        "sales".into(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn user_create(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let email = field(&form, "email").trim().to_string();
    let role_name = field(&form, "role").to_string();
    let Some(role) = Role::from_name(&role_name) else {
        let msg = "Choose one of the roles.".to_string();
        return users_page(
            &st,
            &ctx,
            email,
            role_name,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let password = SecretString::from(field(&form, "password").to_string());
    let name = Some(field(&form, "display_name").trim()).filter(|n| !n.is_empty());
    match st
        .custos
        .create_user(&ctx.caller.principal, &email, role, &password, name)
        .await
    {
        Ok(_) => redirect_with_flash("/app/admin/users", "admin.created"),
        Err(ServiceError::Invalid(errors)) => {
            let msg = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            users_page(
                &st,
                &ctx,
                email,
                role_name,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(ServiceError::Conflict(msg)) => {
            users_page(&st, &ctx, email, role_name, Some(msg), StatusCode::CONFLICT).await
        }
        Err(e) => failed(&st, &ctx, "/app/admin/users", e).await,
    }
}

async fn user_action(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return ctx.error(&st, ServiceError::NotFound("user")).await;
    };
    let p = &ctx.caller.principal;
    let (result, code) = match action.as_str() {
        "disable" => (
            st.custos.set_user_disabled(p, id, true).await,
            "admin.disabled",
        ),
        "enable" => (
            st.custos.set_user_disabled(p, id, false).await,
            "admin.enabled",
        ),
        "reset-mfa" => (st.custos.reset_mfa(p, id).await, "admin.mfa_reset"),
        "reset-password" => {
            let pw = SecretString::from(field(&form, "password").to_string());
            (st.custos.reset_password(p, id, &pw).await, "admin.password")
        }
        _ => return ctx.error(&st, ServiceError::NotFound("action")).await,
    };
    match result {
        Ok(()) => redirect_with_flash("/app/admin/users", code),
        Err(e) => failed(&st, &ctx, "/app/admin/users", e).await,
    }
}

async fn sessions(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let list = match st.custos.list_sessions(&ctx.caller.principal, true).await {
        Ok(l) => l,
        Err(e) => return ctx.error(&st, e).await,
    };
    let who = emails(&st, &ctx).await;
    let page = SessionsPage {
        shell: ctx
            .shell(&st, "Sessions", Section::Admin("/app/admin/sessions"))
            .await,
        sessions: list
            .into_iter()
            .map(|s| {
                let e = who.get(&s.user_id).cloned().unwrap_or_default();
                (s, e)
            })
            .collect(),
    };
    ctx.page(&page, StatusCode::OK)
}

async fn session_revoke(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return ctx.error(&st, ServiceError::NotFound("session")).await;
    };
    match st.custos.revoke_session(&ctx.caller.principal, id).await {
        Ok(()) => redirect_with_flash("/app/admin/sessions", "admin.session_revoked"),
        Err(e) => failed(&st, &ctx, "/app/admin/sessions", e).await,
    }
}

async fn tokens(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let list = match st.custos.list_api_tokens(&ctx.caller.principal, true).await {
        Ok(l) => l,
        Err(e) => return ctx.error(&st, e).await,
    };
    let who = emails(&st, &ctx).await;
    let page = TokensPage {
        shell: ctx
            .shell(&st, "API tokens", Section::Admin("/app/admin/tokens"))
            .await,
        tokens: list
            .into_iter()
            .map(|t| {
                let e = who.get(&t.user_id).cloned().unwrap_or_default();
                (t, e)
            })
            .collect(),
    };
    ctx.page(&page, StatusCode::OK)
}

async fn token_revoke(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return ctx.error(&st, ServiceError::NotFound("token")).await;
    };
    match st.custos.revoke_api_token(&ctx.caller.principal, id).await {
        Ok(()) => redirect_with_flash("/app/admin/tokens", "admin.token_revoked"),
        Err(e) => failed(&st, &ctx, "/app/admin/tokens", e).await,
    }
}
