//! The Admin pages (administrators only): users (create or invite, change
//! role and team, disable and enable, force MFA re-enrolment, reset password),
//! roles (the built-in set, and custom roles with their permission matrix),
//! sessions (revoke) and API tokens (create scoped and expiring, revoke). Every change is a posted form with the session's CSRF token,
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
use custos_domain::{DataCategory, Grant, Permissions, ReadLevel, RecordScope, Role};
use custos_service::{RoleInput, RoleView, ServiceError, SessionView, TokenView, UserView};
use secrecy::SecretString;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The Admin routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/admin/users", get(users).post(user_create))
        .route("/app/admin/users/{id}/{action}", post(user_action))
        .route("/app/admin/sessions", get(sessions))
        .route("/app/admin/sessions/{id}/revoke", post(session_revoke))
        .route("/app/admin/tokens", get(tokens).post(token_create))
        .route("/app/admin/tokens/{id}/revoke", post(token_revoke))
        .route("/app/admin/roles", get(roles).post(role_create))
        .route("/app/admin/roles/new", get(role_new))
        .route("/app/admin/roles/{name}", get(role_show).post(role_update))
        .route(
            "/app/admin/roles/{name}/delete",
            get(role_delete_confirm).post(role_delete),
        )
}

/// A role choice of a form.
pub struct RoleOption {
    name: String,
    label: String,
}

/// A user row: the account and its role in words.
pub struct UserRow {
    user: UserView,
    role_label: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    shell: Shell,
    users: Vec<UserRow>,
    roles: Vec<RoleOption>,
    email: String,
    role: String,
    team: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_secret.html")]
struct SecretPage {
    shell: Shell,
    lead: String,
    label: String,
    secret: String,
    note: String,
    back: &'static str,
    back_label: &'static str,
}

/// One row of the permission matrix.
pub struct MatrixRow {
    category: &'static str,
    label: String,
    personal: bool,
    grant: Grant,
}

impl MatrixRow {
    fn read_is(&self, level: &str) -> bool {
        self.grant.read.name() == level
    }
}

#[derive(Template)]
#[template(path = "admin_roles.html")]
struct RolesPage {
    shell: Shell,
    roles: Vec<RoleView>,
}

#[derive(Template)]
#[template(path = "admin_role.html")]
struct RolePage {
    shell: Shell,
    /// Creating a new role (else editing or viewing one).
    creating: bool,
    /// A built-in role: shown, not editable.
    builtin: bool,
    name: String,
    label: String,
    base: String,
    scope: String,
    users: u64,
    bases: Vec<RoleOption>,
    scopes: Vec<(&'static str, &'static str)>,
    levels: Vec<(&'static str, &'static str)>,
    matrix: Vec<MatrixRow>,
    errors: Vec<String>,
}

impl RolePage {
    fn action(&self) -> String {
        if self.creating {
            "/app/admin/roles".to_string()
        } else {
            format!("/app/admin/roles/{}", self.name)
        }
    }
}

#[derive(Template)]
#[template(path = "admin_role_delete.html")]
struct RoleDeletePage {
    shell: Shell,
    name: String,
    label: String,
    users: u64,
}

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct SessionsPage {
    shell: Shell,
    sessions: Vec<(SessionView, String)>,
}

/// Non-administrators get a 403 page before anything is read.
async fn admin_only(st: &AppState, ctx: &Ctx) -> Result<(), Response> {
    admin_only_for(
        st,
        ctx,
        "Only administrators manage users, sessions and API tokens.",
    )
    .await
}

/// An administrator, or the "Not allowed" page saying `why`.
pub(super) async fn admin_only_for(st: &AppState, ctx: &Ctx, why: &str) -> Result<(), Response> {
    if ctx.role() == Role::Admin {
        Ok(())
    } else {
        Err(ctx
            .message(st, StatusCode::FORBIDDEN, "Not allowed", why)
            .await)
    }
}

/// A posted admin form: the session's CSRF token and same origin, then an
/// administrator.
async fn admin_form(st: &AppState, ctx: &Ctx, form: &[(String, String)]) -> Result<(), Response> {
    ctx.check_form(st, form).await?;
    admin_only(st, ctx).await
}

/// A service refusal: step-up goes to the step-up page and back.
async fn failed(st: &AppState, ctx: &Ctx, back: &str, e: ServiceError) -> Response {
    match e {
        ServiceError::StepUpRequired => {
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

async fn role_options(st: &AppState, ctx: &Ctx) -> Vec<RoleOption> {
    match st.custos.list_roles(&ctx.caller.principal).await {
        Ok(list) => list
            .into_iter()
            .map(|r| RoleOption {
                name: r.name,
                label: r.label,
            })
            .collect(),
        Err(_) => Role::ALL
            .iter()
            .map(|r| RoleOption {
                name: r.name().to_string(),
                label: r.label().to_string(),
            })
            .collect(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn users_page(
    st: &AppState,
    ctx: &Ctx,
    email: String,
    role: String,
    team: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let users = match st.custos.list_users(&ctx.caller.principal).await {
        Ok(u) => u,
        Err(e) => return ctx.error(st, e).await,
    };
    let roles = role_options(st, ctx).await;
    let users = users
        .into_iter()
        .map(|u| {
            let role_label = roles
                .iter()
                .find(|r| r.name == u.role)
                .map(|r| r.label.clone())
                .unwrap_or_else(|| u.role.clone());
            UserRow {
                user: u,
                role_label,
            }
        })
        .collect();
    let page = UsersPage {
        shell: ctx
            .shell(st, "Users", Section::Admin("/app/admin/users"))
            .await,
        users,
        roles,
        email,
        role,
        team,
        error,
    };
    ctx.page(&page, status)
}

fn error_text(errors: &[custos_domain::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The address people reach this server at, for links shown to copy.
fn base_url(ctx: &Ctx) -> String {
    let host = ctx
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| ctx.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if host.is_empty() {
        String::new()
    } else {
        format!("https://{host}")
    }
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
        String::new(),
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
    if let Err(r) = admin_form(&st, &ctx, &form).await {
        return r;
    }
    let email = field(&form, "email").trim().to_string();
    let role_name = field(&form, "role").to_string();
    let team = field(&form, "team").trim().to_string();
    let name = Some(field(&form, "display_name").trim()).filter(|n| !n.is_empty());
    // Invite unless an initial password is chosen (the default when the
    // form names no method and gives no password).
    let invite = match field(&form, "how") {
        "invite" => true,
        "password" => false,
        _ => field(&form, "password").is_empty(),
    };
    let p = &ctx.caller.principal;
    let again = |msg: String, status: StatusCode| {
        users_page(
            &st,
            &ctx,
            email.clone(),
            role_name.clone(),
            team.clone(),
            Some(msg),
            status,
        )
    };
    if invite {
        let team_opt = Some(team.as_str()).filter(|t| !t.is_empty());
        return match st
            .custos
            .invite_user(p, &email, &role_name, name, team_opt)
            .await
        {
            Ok(inv) => {
                let days = custos_service::INVITE_TTL_MS / 86_400_000;
                let link = format!(
                    "{}/invite/{}",
                    base_url(&ctx),
                    secrecy::ExposeSecret::expose_secret(&inv.token)
                );
                let page = SecretPage {
                    shell: ctx
                        .shell(&st, "Invitation created", Section::Admin("/app/admin/users"))
                        .await,
                    lead: format!(
                        "The account for {} exists. Send them this link: it lets them set their own password, works once, and ends in {days} days.",
                        inv.user.email
                    ),
                    label: "Invitation link".into(),
                    secret: link,
                    note: "The link is shown only now. If it is lost, disable the account and invite again.".into(),
                    back: "/app/admin/users",
                    back_label: "Back to users",
                };
                ctx.page(&page, StatusCode::CREATED)
            }
            Err(ServiceError::Invalid(errors)) => {
                again(error_text(&errors), StatusCode::UNPROCESSABLE_ENTITY).await
            }
            Err(ServiceError::Conflict(msg)) => again(msg, StatusCode::CONFLICT).await,
            Err(e) => failed(&st, &ctx, "/app/admin/users", e).await,
        };
    }
    let Some(role) = Role::from_name(&role_name) else {
        let msg = "A user created with a password gets a built-in role; invite them to give a custom role, or change the role afterwards.".to_string();
        return again(msg, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let password = SecretString::from(field(&form, "password").to_string());
    let created = st
        .custos
        .create_user(p, &email, role, &password, name)
        .await;
    let created = match created {
        Ok(u) if !team.is_empty() => st
            .custos
            .set_user_role(p, u.id, &role_name, Some(&team))
            .await
            .map(|_| u),
        other => other,
    };
    match created {
        Ok(_) => redirect_with_flash("/app/admin/users", "admin.created"),
        Err(ServiceError::Invalid(errors)) => {
            again(error_text(&errors), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(ServiceError::Conflict(msg)) => again(msg, StatusCode::CONFLICT).await,
        Err(e) => failed(&st, &ctx, "/app/admin/users", e).await,
    }
}

async fn user_action(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_form(&st, &ctx, &form).await {
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
        "role" => {
            let team = field(&form, "team");
            let r = st
                .custos
                .set_user_role(p, id, field(&form, "role"), Some(team))
                .await;
            if let Err(ServiceError::Invalid(errors)) = r {
                return users_page(
                    &st,
                    &ctx,
                    String::new(),
                    "sales".into(),
                    String::new(),
                    Some(error_text(&errors)),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            (r, "admin.role_changed")
        }
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
    if let Err(r) = admin_form(&st, &ctx, &form).await {
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

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<(TokenView, String)>,
    users: Vec<String>,
    scopes: Vec<&'static str>,
    error: Option<String>,
    /// The create form's idempotency key (the id the token will get).
    form_id: String,
}

async fn tokens_page(
    st: &AppState,
    ctx: &Ctx,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let list = match st.custos.list_api_tokens(&ctx.caller.principal, true).await {
        Ok(l) => l,
        Err(e) => return ctx.error(st, e).await,
    };
    let who = emails(st, ctx).await;
    let page = TokensPage {
        shell: ctx
            .shell(st, "API tokens", Section::Admin("/app/admin/tokens"))
            .await,
        tokens: list
            .into_iter()
            .map(|t| {
                let e = who.get(&t.user_id).cloned().unwrap_or_default();
                (t, e)
            })
            .collect(),
        users: who.into_values().collect(),
        scopes: custos_service::TOKEN_SCOPES.to_vec(),
        error,
        form_id: crate::ui::shell::new_form_id(),
    };
    ctx.page(&page, status)
}

async fn tokens(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    tokens_page(&st, &ctx, None, StatusCode::OK).await
}

async fn token_revoke(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_form(&st, &ctx, &form).await {
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

async fn token_create(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_form(&st, &ctx, &form).await {
        return r;
    }
    let email = field(&form, "email").trim().to_string();
    let name = field(&form, "name").trim().to_string();
    let scopes: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let days = field(&form, "days");
    let ttl = match days {
        "never" => None,
        d => match d.parse::<u64>() {
            Ok(n) if (1..=366).contains(&n) => Some(std::time::Duration::from_secs(n * 86_400)),
            _ => {
                let msg = "Choose how long the token works: 1 to 366 days, or never.";
                return tokens_page(
                    &st,
                    &ctx,
                    Some(msg.into()),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        },
    };
    if scopes.is_empty() {
        let msg = "Choose at least one scope: a token does only what its scopes allow.";
        return tokens_page(
            &st,
            &ctx,
            Some(msg.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let p = &ctx.caller.principal;
    // The form's key is the token's id: sent twice (a reload of the page
    // that shows the secret), the second makes no second token.
    let form_id = crate::ui::shell::posted_form_id(&form, st.custos.clock().now())
        .unwrap_or_else(Uuid::now_v7);
    match st
        .custos
        .create_scoped_token_once(p, &email, &name, ttl, Some(scopes.clone()), form_id)
        .await
    {
        Ok(custos_service::Submission::Replayed(_)) => {
            ctx.message(
                &st,
                StatusCode::OK,
                "Token already created",
                "This form was sent before and the token exists: it appears in the list of API tokens. Its secret was shown only once, when it was created; if it is lost, revoke the token and create another.",
            )
            .await
        }
        Ok(custos_service::Submission::Created(t)) => {
            let ends = match ttl {
                Some(d) => format!("ends in {} days", d.as_secs() / 86_400),
                None => "never ends (revoke it when no longer needed)".to_string(),
            };
            let page = SecretPage {
                shell: ctx
                    .shell(
                        &st,
                        "API token created",
                        Section::Admin("/app/admin/tokens"),
                    )
                    .await,
                lead: format!(
                    "The token “{name}” for {email} may {} and {ends}. Scripts send it as “Authorization: Bearer …”.",
                    scopes.join(", ")
                ),
                label: "API token".into(),
                secret: secrecy::ExposeSecret::expose_secret(&t.token).to_string(),
                note: "The token is shown only now and stored hashed. Keep it in a secret store."
                    .into(),
                back: "/app/admin/tokens",
                back_label: "Back to API tokens",
            };
            ctx.page(&page, StatusCode::CREATED)
        }
        Err(ServiceError::Invalid(errors)) => {
            tokens_page(
                &st,
                &ctx,
                Some(error_text(&errors)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => failed(&st, &ctx, "/app/admin/tokens", e).await,
    }
}

fn category_label(c: DataCategory) -> String {
    let mut s = c.name().replace('_', " ");
    if let Some(first) = s.get(0..1) {
        let up = first.to_uppercase();
        s.replace_range(0..1, &up);
    }
    s
}

fn matrix(perms: &Permissions) -> Vec<MatrixRow> {
    DataCategory::ALL
        .into_iter()
        .filter(|c| *c != DataCategory::Credentials)
        .map(|c| MatrixRow {
            category: c.name(),
            label: category_label(c),
            personal: c.is_personal(),
            grant: perms.grant(c),
        })
        .collect()
}

fn role_page(shell: Shell, r: &RoleView, creating: bool, errors: Vec<String>) -> RolePage {
    RolePage {
        shell,
        creating,
        builtin: r.builtin,
        name: r.name.clone(),
        label: r.label.clone(),
        base: r.base.name().to_string(),
        scope: r.permissions.scope.name().to_string(),
        users: r.users,
        bases: Role::ALL
            .into_iter()
            .filter(|b| *b != Role::Admin)
            .map(|b| RoleOption {
                name: b.name().to_string(),
                label: b.label().to_string(),
            })
            .collect(),
        scopes: RecordScope::ALL
            .into_iter()
            .map(|s| (s.name(), s.label()))
            .collect(),
        levels: vec![
            (ReadLevel::None.name(), "No access"),
            (ReadLevel::Masked.name(), "Masked"),
            (ReadLevel::Full.name(), "Full"),
        ],
        matrix: matrix(&r.permissions),
        errors,
    }
}

/// Reads the role form: name, label, base, scope and the matrix
/// (`read.CATEGORY`, `write.CATEGORY`, `export.CATEGORY`, `erase.CATEGORY`).
fn role_input(form: &[(String, String)], name: &str) -> Result<RoleInput, Vec<String>> {
    let mut errors = Vec::new();
    let base = Role::from_name(field(form, "base"));
    if base.is_none() {
        errors.push("Based on: choose one of the built-in roles.".to_string());
    }
    let scope = RecordScope::from_name(field(form, "scope"));
    if scope.is_none() {
        errors.push("Records: choose own, team or all.".to_string());
    }
    let mut categories = std::collections::BTreeMap::new();
    for c in DataCategory::ALL {
        if c == DataCategory::Credentials {
            continue;
        }
        let n = c.name();
        let read_raw = field(form, &format!("read.{n}"));
        let read = if read_raw.is_empty() {
            Some(ReadLevel::None)
        } else {
            ReadLevel::from_name(read_raw)
        };
        let Some(read) = read else {
            errors.push(format!("{}: choose a read level.", category_label(c)));
            continue;
        };
        let on = |what: &str| field(form, &format!("{what}.{n}")) == "on";
        categories.insert(
            n.to_string(),
            Grant {
                read,
                write: on("write"),
                export: on("export"),
                erase: on("erase"),
            },
        );
    }
    match (base, scope) {
        (Some(base), Some(scope)) if errors.is_empty() => Ok(RoleInput {
            name: name.to_string(),
            label: field(form, "label").to_string(),
            base,
            permissions: Permissions { scope, categories },
        }),
        _ => Err(errors),
    }
}

/// A role form sent back with its errors and what was typed.
async fn role_form_again(
    st: &AppState,
    ctx: &Ctx,
    form: &[(String, String)],
    name: &str,
    creating: bool,
    errors: Vec<String>,
    status: StatusCode,
) -> Response {
    let title = if creating { "New role" } else { "Edit role" };
    let shell = ctx
        .shell(st, title, Section::Admin("/app/admin/roles"))
        .await;
    let typed = role_input(form, name).ok();
    let view = RoleView {
        name: name.to_string(),
        label: field(form, "label").to_string(),
        base: typed.as_ref().map(|t| t.base).unwrap_or(Role::Sales),
        builtin: false,
        permissions: typed
            .map(|t| t.permissions)
            .unwrap_or_else(|| Permissions::builtin(Role::Sales)),
        users: 0,
    };
    ctx.page(&role_page(shell, &view, creating, errors), status)
}

fn service_errors(e: &ServiceError) -> Option<Vec<String>> {
    match e {
        ServiceError::Invalid(errors) => Some(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        ),
        ServiceError::Conflict(m) => Some(vec![m.clone()]),
        _ => None,
    }
}

async fn roles(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let roles = match st.custos.list_roles(&ctx.caller.principal).await {
        Ok(r) => r,
        Err(e) => return ctx.error(&st, e).await,
    };
    let page = RolesPage {
        shell: ctx
            .shell(&st, "Roles", Section::Admin("/app/admin/roles"))
            .await,
        roles,
    };
    ctx.page(&page, StatusCode::OK)
}

async fn role_new(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    // Start from a built-in role's permissions (`?from=sales`).
    let from = Role::from_name(field(&q, "from"))
        .filter(|r| *r != Role::Admin)
        .unwrap_or(Role::Sales);
    let view = RoleView {
        name: String::new(),
        label: String::new(),
        base: from,
        builtin: false,
        permissions: Permissions::builtin(from),
        users: 0,
    };
    let shell = ctx
        .shell(&st, "New role", Section::Admin("/app/admin/roles"))
        .await;
    ctx.page(&role_page(shell, &view, true, Vec::new()), StatusCode::OK)
}

async fn role_create(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let name = field(&form, "name").trim().to_string();
    role_save(&st, &ctx, &form, &name, true).await
}

/// Creates (`creating`) or changes a custom role from the editor's form; on
/// a refusal the form comes back with the reasons and what was typed.
async fn role_save(
    st: &AppState,
    ctx: &Ctx,
    form: &[(String, String)],
    name: &str,
    creating: bool,
) -> Response {
    if let Err(r) = admin_form(st, ctx, form).await {
        return r;
    }
    let again = |errors| {
        role_form_again(
            st,
            ctx,
            form,
            name,
            creating,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let input = match role_input(form, name) {
        Ok(i) => i,
        Err(errors) => return again(errors).await,
    };
    match st
        .custos
        .save_role(&ctx.caller.principal, input, creating)
        .await
    {
        Ok(r) if creating => redirect_with_flash(
            &format!("/app/admin/roles/{}", r.name),
            "admin.role_created",
        ),
        Ok(r) => redirect_with_flash(&format!("/app/admin/roles/{}", r.name), "admin.role_saved"),
        Err(e) => match service_errors(&e) {
            Some(errors) => again(errors).await,
            None if creating => failed(st, ctx, "/app/admin/roles/new", e).await,
            None => failed(st, ctx, &format!("/app/admin/roles/{name}"), e).await,
        },
    }
}

async fn role_show(State(st): State<AppState>, ctx: Ctx, Path(name): Path<String>) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let r = match st.custos.get_role(&ctx.caller.principal, &name).await {
        Ok(r) => r,
        Err(e) => return ctx.error(&st, e).await,
    };
    let shell = ctx
        .shell(&st, r.label.clone(), Section::Admin("/app/admin/roles"))
        .await;
    ctx.page(&role_page(shell, &r, false, Vec::new()), StatusCode::OK)
}

async fn role_update(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    role_save(&st, &ctx, &form, &name, false).await
}

async fn role_delete_confirm(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = admin_only(&st, &ctx).await {
        return r;
    }
    let r = match st.custos.get_role(&ctx.caller.principal, &name).await {
        Ok(r) if !r.builtin => r,
        Ok(_) => {
            return ctx
                .message(
                    &st,
                    StatusCode::CONFLICT,
                    "Built-in role",
                    "Built-in roles cannot be deleted.",
                )
                .await;
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    let page = RoleDeletePage {
        shell: ctx
            .shell(&st, "Delete role", Section::Admin("/app/admin/roles"))
            .await,
        name: r.name,
        label: r.label,
        users: r.users,
    };
    ctx.page(&page, StatusCode::OK)
}

async fn role_delete(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin_form(&st, &ctx, &form).await {
        return r;
    }
    match st.custos.delete_role(&ctx.caller.principal, &name).await {
        Ok(()) => redirect_with_flash("/app/admin/roles", "admin.role_deleted"),
        Err(ServiceError::Conflict(m)) => {
            ctx.message(&st, StatusCode::CONFLICT, "The role is in use", &m)
                .await
        }
        Err(e) => failed(&st, &ctx, &format!("/app/admin/roles/{name}/delete"), e).await,
    }
}
