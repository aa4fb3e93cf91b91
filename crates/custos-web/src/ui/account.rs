//! The second step of sign-in and the account's security page: second
//! factors (authenticator app with a QR code made on the server, passkeys),
//! recovery codes, sessions, password, step-up. Enrolment sessions (the MFA
//! policy requires a factor the account does not have yet) reach only this.

use super::shell::{Section, Shell, navigation};
use super::widgets::{FAILED_COOKIE, PRE_COOKIE, cookie_header, render, same_origin};
use crate::AppState;
use crate::extract::{SESSION_COOKIE, cookie, csrf_for, request_meta};
use askama::Template;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use custos_service::{LoginResult, PasskeyView, Principal, ServiceError, SessionView, SignIn};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

/// The account routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/login/mfa", post(mfa_code))
        .route("/login/mfa/webauthn/options", post(mfa_webauthn_options))
        .route("/login/mfa/webauthn", post(mfa_webauthn))
        .route("/app/security", get(security_page))
        .route("/app/security/totp", post(totp_begin))
        .route("/app/security/totp/confirm", post(totp_confirm))
        .route("/app/security/passkeys/options", post(passkey_options))
        .route("/app/security/passkeys", post(passkey_register))
        .route("/app/security/sessions/{id}/revoke", post(session_revoke))
        .route("/app/security/password", post(password_change))
        .route("/app/security/step-up", get(step_up_page).post(step_up))
        .route(
            "/static/webauthn.js",
            get(|| {
                super::widgets::static_file(
                    include_str!("../../static/webauthn.js"),
                    super::widgets::JS,
                )
            }),
        )
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    csrf: String,
    mfa_token: String,
    totp: bool,
    passkey: bool,
    error: Option<String>,
}

/// The second-factor page of sign-in.
pub(crate) fn mfa_page(
    csrf: &str,
    mfa_token: &str,
    methods: &[&str],
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = MfaPage {
        csrf: csrf.to_string(),
        mfa_token: mfa_token.to_string(),
        totp: methods.contains(&"totp"),
        passkey: methods.contains(&"webauthn"),
        error,
    };
    let mut r = render(&page);
    *r.status_mut() = status;
    r
}

/// Where a signed-in browser goes, with the session cookie set.
pub(crate) fn signed_in(res: &LoginResult) -> Response {
    let to = if res.enrol_only {
        "/app/security"
    } else {
        "/app"
    };
    let mut r = Redirect::to(to).into_response();
    set_session(&mut r, res);
    if res.failed_attempts > 0 {
        let n = res.failed_attempts.clamp(0, 100_000).to_string();
        r.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(FAILED_COOKIE, &n, Some(300)),
        );
    }
    r
}

fn set_session(r: &mut Response, res: &LoginResult) {
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, res.token.expose_secret(), None),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, cookie_header(PRE_COOKIE, "", Some(0)));
}

fn pre_ok(headers: &HeaderMap, uri: &axum::http::Uri, csrf: &str) -> bool {
    let pre = cookie(headers, PRE_COOKIE).unwrap_or_default();
    !pre.is_empty()
        && custos_crypto::constant_time_eq(pre.as_bytes(), csrf.as_bytes())
        && same_origin(headers, uri)
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    mfa_token: String,
    code: String,
}

async fn mfa_code(State(st): State<AppState>, parts: Parts, Form(f): Form<CodeForm>) -> Response {
    if !pre_ok(&parts.headers, &parts.uri, &f.csrf) {
        return Redirect::to("/").into_response();
    }
    let meta = request_meta(&parts);
    match st.custos.complete_mfa(&meta, &f.mfa_token, &f.code).await {
        Ok(res) => signed_in(&res),
        Err(ServiceError::RateLimited) => mfa_page(
            &f.csrf,
            &f.mfa_token,
            &["totp"],
            Some("Too many attempts. Wait a minute, then start again.".into()),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(_) => mfa_page(
            &f.csrf,
            &f.mfa_token,
            &["totp"],
            Some("That code is not right, or was already used. Wait for the next one.".into()),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

fn json_error(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

async fn mfa_webauthn_options(
    State(st): State<AppState>,
    parts: Parts,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let csrf = body["csrf"].as_str().unwrap_or_default();
    if !pre_ok(&parts.headers, &parts.uri, csrf) {
        return json_error(StatusCode::FORBIDDEN, "the form expired; start again");
    }
    let token = body["mfa_token"].as_str().unwrap_or_default();
    match st.custos.webauthn_signin_options(token).await {
        Ok(o) => Json(o).into_response(),
        Err(_) => json_error(StatusCode::UNAUTHORIZED, "start the sign-in again"),
    }
}

async fn mfa_webauthn(
    State(st): State<AppState>,
    parts: Parts,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let csrf = body["csrf"].as_str().unwrap_or_default();
    if !pre_ok(&parts.headers, &parts.uri, csrf) {
        return json_error(StatusCode::FORBIDDEN, "the form expired; start again");
    }
    let token = body["mfa_token"].as_str().unwrap_or_default();
    let meta = request_meta(&parts);
    match st
        .custos
        .complete_mfa_webauthn(&meta, token, &body["credential"])
        .await
    {
        Ok(res) => {
            let mut r = Json(json!({"redirect": "/app"})).into_response();
            set_session(&mut r, &res);
            r
        }
        Err(_) => json_error(StatusCode::UNAUTHORIZED, "the passkey was not accepted"),
    }
}

/// A signed-in browser on the account pages, enrolment sessions included.
pub struct AccountCtx {
    principal: Principal,
    csrf: String,
    enrol: bool,
    headers: HeaderMap,
    uri: axum::http::Uri,
}

impl<S> FromRequestParts<S> for AccountCtx
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::extract::SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let meta = request_meta(parts);
        let token =
            cookie(&parts.headers, SESSION_COOKIE).ok_or(crate::extract::SignInFirst("/"))?;
        let (principal, enrol) = state
            .custos
            .authenticate_for_enrolment(&token, &meta)
            .await
            .map_err(|_| crate::extract::SignInFirst("/"))?;
        Ok(AccountCtx {
            principal,
            csrf: csrf_for(&token),
            enrol,
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
        })
    }
}

impl AccountCtx {
    async fn shell(&self, st: &AppState, title: &str) -> Shell {
        let user = st
            .custos
            .me(&self.principal)
            .await
            .map(|u| u.email)
            .unwrap_or_default();
        let mut banners = Vec::new();
        if st.self_signed {
            banners.push(
                "This server uses a self-signed certificate. Install a real one before going live."
                    .to_string(),
            );
        }
        Shell {
            title: title.to_string(),
            user,
            role: self.principal.role.label().to_string(),
            csrf: self.csrf.clone(),
            nav: if self.enrol {
                Vec::new()
            } else {
                navigation(self.principal.role, Section::Search)
            },
            flash: None,
            banners,
        }
    }

    fn form_ok(&self, csrf: &str) -> bool {
        custos_crypto::constant_time_eq(self.csrf.as_bytes(), csrf.as_bytes())
            && same_origin(&self.headers, &self.uri)
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    shell: Shell,
    enrol: bool,
    totp: bool,
    codes_left: usize,
    passkeys: Vec<PasskeyView>,
    sessions: Vec<SessionView>,
    failed_attempts: i64,
    message: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct SecurityQuery {
    done: Option<String>,
}

async fn account_page(
    st: &AppState,
    ctx: &AccountCtx,
    failed: i64,
    message: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let p = &ctx.principal;
    let me = st.custos.me(p).await;
    let totp = me.as_ref().map(|u| u.totp).unwrap_or(false);
    let page = AccountPage {
        shell: ctx.shell(st, "Security").await,
        enrol: ctx.enrol,
        totp,
        codes_left: st.custos.recovery_codes_left(p).await.unwrap_or(0),
        passkeys: st.custos.list_passkeys(p).await.unwrap_or_default(),
        sessions: if ctx.enrol {
            Vec::new()
        } else {
            st.custos.list_sessions(p, false).await.unwrap_or_default()
        },
        failed_attempts: failed,
        message,
        error,
    };
    let mut r = render(&page);
    *r.status_mut() = status;
    r
}

async fn security_page(
    State(st): State<AppState>,
    ctx: AccountCtx,
    axum::extract::Query(q): axum::extract::Query<SecurityQuery>,
) -> Response {
    let message = match q.done.as_deref() {
        Some("revoked") => Some("The session was signed out.".to_string()),
        Some("password") => Some("Password changed. Every other session has ended.".to_string()),
        Some("passkey") => Some("Passkey added. Every other session has ended.".to_string()),
        _ => None,
    };
    let failed = cookie(&ctx.headers, FAILED_COOKIE)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut r = account_page(&st, &ctx, failed, message, None, StatusCode::OK).await;
    if failed > 0 {
        r.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(FAILED_COOKIE, "", Some(0)),
        );
    }
    r
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

#[derive(Template)]
#[template(path = "account_totp.html")]
struct TotpPage {
    shell: Shell,
    qr_svg: String,
    secret: String,
    error: Option<String>,
}

/// The otpauth URI as an SVG QR code, made here: nothing leaves the server.
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build();
            let svg = svg
                .split_once("?>")
                .map(|(_, rest)| rest.to_string())
                .unwrap_or(svg);
            svg.replacen(
                "<svg ",
                "<svg role=\"img\" aria-label=\"QR code of your authenticator key\" ",
                1,
            )
        }
        Err(_) => String::new(),
    }
}

async fn totp_begin(
    State(st): State<AppState>,
    ctx: AccountCtx,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !ctx.form_ok(&f.csrf) {
        return Redirect::to("/app/security").into_response();
    }
    match st.custos.begin_totp(&ctx.principal).await {
        Ok(e) => {
            let page = TotpPage {
                shell: ctx.shell(&st, "Set up an authenticator app").await,
                qr_svg: qr_svg(e.otpauth_uri.expose_secret()),
                secret: e.secret.expose_secret().to_string(),
                error: None,
            };
            no_store(render(&page))
        }
        Err(ServiceError::StepUpRequired | ServiceError::Forbidden(_)) => {
            step_up_redirect("/app/security")
        }
        Err(e) => {
            account_page(
                &st,
                &ctx,
                0,
                None,
                Some(e.to_string()),
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

fn step_up_redirect(back: &str) -> Response {
    Redirect::to(&format!("/app/security/step-up?return_to={back}")).into_response()
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    code: String,
}

#[derive(Template)]
#[template(path = "account_codes.html")]
struct CodesPage {
    shell: Shell,
    codes: Vec<String>,
}

async fn totp_confirm(
    State(st): State<AppState>,
    parts: Parts,
    ctx: AccountCtx,
    Form(f): Form<ConfirmForm>,
) -> Response {
    if !ctx.form_ok(&f.csrf) {
        return Redirect::to("/app/security").into_response();
    }
    match st
        .custos
        .confirm_totp(&ctx.principal, &request_meta(&parts), &f.code)
        .await
    {
        Ok(c) => {
            let mut shell = ctx.shell(&st, "Your recovery codes").await;
            if let Some(s) = &c.session {
                shell.csrf = csrf_for(s.token.expose_secret());
                shell.nav = navigation(ctx.principal.role, Section::Search);
            }
            let page = CodesPage {
                shell,
                codes: c.recovery_codes.clone(),
            };
            let mut r = no_store(render(&page));
            if let Some(s) = &c.session {
                set_session(&mut r, s);
            }
            r
        }
        Err(e) => {
            let msg = match e {
                ServiceError::Invalid(_) => {
                    "That is not the code your app shows now. Scan the code again and retry."
                }
                _ => "Start the set-up again.",
            };
            account_page(
                &st,
                &ctx,
                0,
                None,
                Some(msg.into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn passkey_options(
    State(st): State<AppState>,
    ctx: AccountCtx,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if !ctx.form_ok(body["csrf"].as_str().unwrap_or_default()) {
        return json_error(StatusCode::FORBIDDEN, "reload the page and try again");
    }
    match st.custos.webauthn_register_options(&ctx.principal).await {
        Ok(o) => Json(o).into_response(),
        Err(ServiceError::StepUpRequired | ServiceError::Forbidden(_)) => json_error(
            StatusCode::FORBIDDEN,
            "confirm your identity first (Security → step-up)",
        ),
        Err(e) => json_error(StatusCode::CONFLICT, &e.to_string()),
    }
}

async fn passkey_register(
    State(st): State<AppState>,
    parts: Parts,
    ctx: AccountCtx,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if !ctx.form_ok(body["csrf"].as_str().unwrap_or_default()) {
        return json_error(StatusCode::FORBIDDEN, "reload the page and try again");
    }
    let name = body["name"].as_str().unwrap_or("Passkey");
    match st
        .custos
        .webauthn_register(
            &ctx.principal,
            &request_meta(&parts),
            name,
            &body["credential"],
        )
        .await
    {
        Ok((_, confirmed)) => {
            let mut r = Json(json!({"redirect": "/app/security?done=passkey"})).into_response();
            if let Some(s) = &confirmed.session {
                set_session(&mut r, s);
            }
            r
        }
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

async fn session_revoke(
    State(st): State<AppState>,
    ctx: AccountCtx,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !ctx.form_ok(&f.csrf) {
        return Redirect::to("/app/security").into_response();
    }
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return Redirect::to("/app/security").into_response();
    };
    match st.custos.revoke_session(&ctx.principal, id).await {
        Ok(()) => Redirect::to("/app/security?done=revoked").into_response(),
        Err(e) => {
            account_page(
                &st,
                &ctx,
                0,
                None,
                Some(e.to_string()),
                StatusCode::NOT_FOUND,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
}

async fn password_change(
    State(st): State<AppState>,
    parts: Parts,
    ctx: AccountCtx,
    Form(f): Form<PasswordForm>,
) -> Response {
    if !ctx.form_ok(&f.csrf) {
        return Redirect::to("/app/security").into_response();
    }
    let (cur, new) = (
        SecretString::from(f.current_password),
        SecretString::from(f.new_password),
    );
    match st
        .custos
        .change_password(&ctx.principal, &request_meta(&parts), &cur, &new)
        .await
    {
        Ok(Some(res)) => {
            let mut r = Redirect::to("/app/security?done=password").into_response();
            set_session(&mut r, &res);
            r
        }
        Ok(None) => Redirect::to("/").into_response(),
        Err(ServiceError::Invalid(errs)) => {
            let text = errs
                .iter()
                .map(|e| format!("{}: {}", e.field.replace('_', " "), e.message))
                .collect::<Vec<_>>()
                .join("; ");
            account_page(
                &st,
                &ctx,
                0,
                None,
                Some(text),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => {
            account_page(
                &st,
                &ctx,
                0,
                None,
                Some(e.to_string()),
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "stepup.html")]
struct StepUpPage {
    shell: Shell,
    return_to: String,
    has_factor: bool,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct ReturnTo {
    return_to: Option<String>,
}

/// Only local paths, never another site.
fn safe_return(r: Option<&str>) -> String {
    match r {
        Some(p) if p.starts_with("/app") && !p.contains("//") && !p.contains('\\') => p.to_string(),
        _ => "/app/security".to_string(),
    }
}

async fn step_up_form(
    st: &AppState,
    ctx: &AccountCtx,
    return_to: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let me = st.custos.me(&ctx.principal).await.ok();
    let has_factor = me.as_ref().is_some_and(|u| u.totp)
        || !st
            .custos
            .list_passkeys(&ctx.principal)
            .await
            .unwrap_or_default()
            .is_empty();
    let page = StepUpPage {
        shell: ctx.shell(st, "Confirm it is you").await,
        return_to,
        has_factor,
        error,
    };
    let mut r = render(&page);
    *r.status_mut() = status;
    r
}

async fn step_up_page(
    State(st): State<AppState>,
    ctx: AccountCtx,
    axum::extract::Query(q): axum::extract::Query<ReturnTo>,
) -> Response {
    step_up_form(
        &st,
        &ctx,
        safe_return(q.return_to.as_deref()),
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
struct StepUpForm {
    csrf: String,
    code: String,
    return_to: Option<String>,
}

async fn step_up(
    State(st): State<AppState>,
    ctx: AccountCtx,
    Form(f): Form<StepUpForm>,
) -> Response {
    let back = safe_return(f.return_to.as_deref());
    if !ctx.form_ok(&f.csrf) {
        return Redirect::to("/app/security").into_response();
    }
    match st.custos.step_up(&ctx.principal, &f.code).await {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(_) => {
            step_up_form(
                &st,
                &ctx,
                back,
                Some("That is not right, or the code was already used.".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// What the sign-in form does with the password step's outcome.
pub(crate) fn after_password(csrf: &str, outcome: SignIn) -> Response {
    match outcome {
        SignIn::Session(res) => signed_in(&res),
        SignIn::SecondFactor { mfa_token, methods } => no_store(mfa_page(
            csrf,
            mfa_token.expose_secret(),
            &methods,
            None,
            StatusCode::OK,
        )),
    }
}
