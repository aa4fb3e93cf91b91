//! Identity routes: sign-in with a second factor, step-up, the caller's own
//! factors, sessions, password and API tokens, and the administrators' user,
//! session, token and MFA-policy routes. Documented in `openapi_identity.rs`.

use super::{ApiResult, only_fields, parse_id, string_field};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, EnrolCaller, JsonBody, PathId, request_meta};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use custos_domain::{Entity, Role};
use custos_service::{LoginResult, SignIn, UserView};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

/// The identity routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/v1/auth/mfa", post(mfa))
        .route("/api/v1/auth/mfa/webauthn", post(mfa_webauthn_options))
        .route("/api/v1/auth/step-up", post(step_up))
        .route(
            "/api/v1/auth/step-up/webauthn",
            post(step_up_webauthn_options),
        )
        .route("/api/v1/me/totp", post(totp_begin).delete(totp_remove))
        .route("/api/v1/me/totp/confirm", post(totp_confirm))
        .route("/api/v1/me/recovery-codes", post(recovery_codes))
        .route("/api/v1/me/passkeys", get(passkeys).post(passkey_register))
        .route("/api/v1/me/passkeys/options", post(passkey_options))
        .route("/api/v1/me/passkeys/{id}", delete(passkey_remove))
        .route("/api/v1/me/sessions", get(my_sessions))
        .route("/api/v1/me/sessions/{id}", delete(my_session_revoke))
        .route("/api/v1/me/sessions/revoke-others", post(revoke_others))
        .route("/api/v1/me/password", put(password_change))
        .route("/api/v1/me/tokens", get(my_tokens).post(token_create))
        .route("/api/v1/me/tokens/{id}", delete(token_revoke))
        .route("/api/v1/users", get(users).post(user_create))
        .route("/api/v1/users/{id}", axum::routing::patch(user_update))
        .route(
            "/api/v1/users/{id}/reset-password",
            post(user_reset_password),
        )
        .route("/api/v1/users/{id}/reset-mfa", post(user_reset_mfa))
        .route("/api/v1/sessions", get(all_sessions))
        .route("/api/v1/sessions/{id}", delete(session_revoke))
        .route("/api/v1/tokens", get(all_tokens))
        .route("/api/v1/tokens/{id}", delete(token_revoke))
        .route("/api/v1/settings/mfa", get(mfa_policy).put(set_mfa_policy))
}

/// The body of a completed sign-in.
pub fn session_json(r: &LoginResult) -> Value {
    let mut v = json!({
        "status": "ok",
        "token": r.token.expose_secret(),
        "failed_attempts_since_last_sign_in": r.failed_attempts,
    });
    if r.enrol_only {
        v["mfa_enrolment_required"] = json!(true);
    }
    v
}

/// `POST /api/v1/auth/login`.
pub async fn login(
    State(st): State<AppState>,
    parts: Parts,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["email", "password"])?;
    let email = string_field(&body, "email", 254)?;
    let password = SecretString::from(string_field(&body, "password", 1024)?);
    let meta = request_meta(&parts);
    Ok(match st.custos.sign_in(&meta, &email, &password).await? {
        SignIn::Session(r) => Json(session_json(&r)).into_response(),
        SignIn::SecondFactor { mfa_token, methods } => Json(json!({
            "status": "mfa_required",
            "mfa_token": mfa_token.expose_secret(),
            "methods": methods,
        }))
        .into_response(),
    })
}

async fn mfa(
    State(st): State<AppState>,
    parts: Parts,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["mfa_token", "code", "credential"])?;
    let token = string_field(&body, "mfa_token", 200)?;
    let meta = request_meta(&parts);
    let res = match body.get("credential") {
        Some(c) if body.get("code").is_none() => {
            st.custos.complete_mfa_webauthn(&meta, &token, c).await?
        }
        _ => {
            let code = string_field(&body, "code", 40)?;
            st.custos.complete_mfa(&meta, &token, &code).await?
        }
    };
    Ok(Json(session_json(&res)).into_response())
}

async fn mfa_webauthn_options(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["mfa_token"])?;
    let token = string_field(&body, "mfa_token", 200)?;
    Ok(Json(st.custos.webauthn_signin_options(&token).await?).into_response())
}

async fn step_up(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["code", "credential"])?;
    match body.get("credential") {
        Some(c) if body.get("code").is_none() => st.custos.step_up_webauthn(&p, c).await?,
        _ => {
            let code = string_field(&body, "code", 1024)?;
            st.custos.step_up(&p, &code).await?
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn step_up_webauthn_options(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
) -> ApiResult<Response> {
    Ok(Json(st.custos.webauthn_step_up_options(&p).await?).into_response())
}

async fn totp_begin(
    State(st): State<AppState>,
    EnrolCaller(p): EnrolCaller,
) -> ApiResult<Response> {
    let e = st.custos.begin_totp(&p).await?;
    Ok(Json(json!({
        "secret": e.secret.expose_secret(),
        "otpauth_uri": e.otpauth_uri.expose_secret(),
    }))
    .into_response())
}

fn confirmed_json(c: &custos_service::TotpConfirmed) -> Value {
    let mut v = json!({"recovery_codes": c.recovery_codes});
    if let Some(s) = &c.session {
        v["token"] = json!(s.token.expose_secret());
    }
    v
}

async fn totp_confirm(
    State(st): State<AppState>,
    parts: Parts,
    EnrolCaller(p): EnrolCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["code"])?;
    let code = string_field(&body, "code", 20)?;
    let c = st
        .custos
        .confirm_totp(&p, &request_meta(&parts), &code)
        .await?;
    Ok(Json(confirmed_json(&c)).into_response())
}

async fn totp_remove(
    State(st): State<AppState>,
    parts: Parts,
    ApiCaller(p): ApiCaller,
) -> ApiResult<Response> {
    let s = st
        .custos
        .remove_factor(&p, &request_meta(&parts), None)
        .await?;
    Ok(Json(json!({"token": s.map(|s| s.token.expose_secret().to_string())})).into_response())
}

async fn recovery_codes(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
) -> ApiResult<Response> {
    let codes = st.custos.regenerate_recovery_codes(&p).await?;
    Ok(Json(json!({"recovery_codes": codes})).into_response())
}

async fn passkeys(State(st): State<AppState>, EnrolCaller(p): EnrolCaller) -> ApiResult<Response> {
    Ok(Json(json!({"items": st.custos.list_passkeys(&p).await?})).into_response())
}

async fn passkey_options(
    State(st): State<AppState>,
    EnrolCaller(p): EnrolCaller,
) -> ApiResult<Response> {
    Ok(Json(st.custos.webauthn_register_options(&p).await?).into_response())
}

async fn passkey_register(
    State(st): State<AppState>,
    parts: Parts,
    EnrolCaller(p): EnrolCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["name", "credential"])?;
    let name = string_field(&body, "name", 60)?;
    let cred = body
        .get("credential")
        .filter(|c| c.is_object())
        .ok_or_else(|| ApiError::invalid("credential", "is required"))?;
    let (key, confirmed) = st
        .custos
        .webauthn_register(&p, &request_meta(&parts), &name, cred)
        .await?;
    let mut v = confirmed_json(&confirmed);
    v["passkey"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn passkey_remove(
    State(st): State<AppState>,
    parts: Parts,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let s = st
        .custos
        .remove_factor(&p, &request_meta(&parts), Some(id))
        .await?;
    Ok(Json(json!({"token": s.map(|s| s.token.expose_secret().to_string())})).into_response())
}

async fn my_sessions(
    State(st): State<AppState>,
    EnrolCaller(p): EnrolCaller,
) -> ApiResult<Response> {
    Ok(Json(json!({"items": st.custos.list_sessions(&p, false).await?})).into_response())
}

async fn my_session_revoke(
    State(st): State<AppState>,
    EnrolCaller(p): EnrolCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    st.custos.revoke_session(&p, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_others(
    State(st): State<AppState>,
    EnrolCaller(p): EnrolCaller,
) -> ApiResult<Response> {
    let n = st.custos.revoke_other_sessions(&p).await?;
    Ok(Json(json!({"revoked": n})).into_response())
}

async fn password_change(
    State(st): State<AppState>,
    parts: Parts,
    EnrolCaller(p): EnrolCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["current_password", "new_password"])?;
    let current = SecretString::from(string_field(&body, "current_password", 1024)?);
    let new = SecretString::from(string_field(&body, "new_password", 1024)?);
    let r = st
        .custos
        .change_password(&p, &request_meta(&parts), &current, &new)
        .await?;
    Ok(Json(json!({"token": r.map(|s| s.token.expose_secret().to_string())})).into_response())
}

async fn my_tokens(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({"items": st.custos.list_api_tokens(&p, false).await?})).into_response())
}

async fn token_create(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["name", "expires_days", "scopes", "email"])?;
    let name = string_field(&body, "name", 100)?;
    let ttl = match body.get("expires_days") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=366).contains(&d) => Some(Duration::from_secs(d * 86_400)),
            _ => return Err(ApiError::invalid("expires_days", "must be 1 to 366")),
        },
    };
    let scopes = match body.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::invalid("scopes", "must be a list of strings"))
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(ApiError::invalid("scopes", "must be a list of strings")),
    };
    let email = match body.get("email") {
        Some(_) => string_field(&body, "email", 254)?,
        None => st.custos.me(&p).await?.email,
    };
    let t = st
        .custos
        .create_scoped_token(&p, &email, &name, ttl, scopes)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": t.id, "token": t.token.expose_secret()})),
    )
        .into_response())
}

async fn token_revoke(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    st.custos.revoke_api_token(&p, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The JSON of a staff account.
pub fn user_json(u: &UserView) -> Value {
    json!({
        "id": u.id, "email": u.email, "display_name": u.display_name, "role": u.role,
        "disabled": u.disabled, "team": u.team, "totp": u.totp,
    })
}

async fn users(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    let us = st.custos.list_users(&p).await?;
    let items: Vec<_> = us.iter().map(user_json).collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn user_create(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["email", "role", "password", "display_name"])?;
    let email = string_field(&body, "email", 254)?;
    let role_name = string_field(&body, "role", 40)?;
    let role = Role::from_name(&role_name).ok_or_else(|| {
        ApiError::invalid(
            "role",
            "must be one of admin, manager, sales, support, privacy_officer, auditor",
        )
    })?;
    let password = SecretString::from(string_field(&body, "password", 1024)?);
    let display = match body.get("display_name") {
        Some(_) => Some(string_field(&body, "display_name", 100)?),
        None => None,
    };
    let u = st
        .custos
        .create_user(&p, &email, role, &password, display.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&u))).into_response())
}

async fn user_update(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["role", "disabled", "team", "display_name"])?;
    let id = parse_id(&id)?;
    let v = st.custos.update(&p, Entity::User, id, &body).await?;
    Ok(Json(v).into_response())
}

async fn user_reset_password(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["password"])?;
    let id = parse_id(&id)?;
    let pw = SecretString::from(string_field(&body, "password", 1024)?);
    st.custos.reset_password(&p, id, &pw).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user_reset_mfa(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    st.custos.reset_mfa(&p, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn all_sessions(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({"items": st.custos.list_sessions(&p, true).await?})).into_response())
}

async fn session_revoke(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    st.custos.revoke_session(&p, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn all_tokens(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({"items": st.custos.list_api_tokens(&p, true).await?})).into_response())
}

async fn mfa_policy(State(st): State<AppState>, ApiCaller(_p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({"required": st.custos.mfa_required().await?})).into_response())
}

async fn set_mfa_policy(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["required"])?;
    let required = body
        .get("required")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::invalid("required", "must be true or false"))?;
    let r = st.custos.set_mfa_required(&p, required).await?;
    Ok(Json(json!({"required": r})).into_response())
}
