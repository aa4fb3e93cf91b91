//! The server-rendered web UI: the sign-in page, the signed-in shell and the
//! CRM pages. Everything is rendered on the server from askama templates; the
//! only scripts are optional enhancements (drag and drop on the deals board,
//! typeahead in the contact and company pickers) and the passkey ceremony.

pub mod account;
pub mod admin;
pub mod audit;
pub mod board;
pub mod charts;
pub mod dashboard;
pub mod fields;
pub mod import;
pub mod invite;
pub mod picker;
pub mod portal;
pub mod privacy;
pub mod records;
pub mod search;
pub mod settings;
pub mod shell;
pub mod widgets;

use crate::AppState;
use crate::extract::{SESSION_COOKIE, UiCaller, cookie, request_meta};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use widgets::{
    CSS, JS, PRE_COOKIE, cookie_header, new_pre_token, pre_form_ok, render, same_origin,
    static_file,
};

/// The UI routes.
pub fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/", get(signin_page))
        .route("/login", post(signin))
        .route("/logout", post(signout))
        .route("/app", get(dashboard::page))
        .route(
            "/static/custos.css",
            get(|| static_file(include_str!("../../static/custos.css"), CSS)),
        )
        .route(
            "/static/print.css",
            get(|| static_file(include_str!("../../static/print.css"), CSS)),
        )
        .route(
            "/favicon.ico",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/x-icon"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    &include_bytes!("../../static/favicon.ico")[..],
                )
                    .into_response()
            }),
        )
        .route(
            "/static/board.js",
            get(|| static_file(include_str!("../../static/board.js"), JS)),
        )
        .route(
            "/static/picker.js",
            get(|| static_file(include_str!("../../static/picker.js"), JS)),
        );
    let r = account::routes(r);
    let r = admin::routes(r);
    let r = settings::routes(r);
    let r = invite::routes(r);
    let r = import::routes(r);
    let r = audit::routes(r);
    let r = privacy::routes(r);
    let r = portal::routes(r);
    let r = records::routes(r);
    let r = picker::routes(r);
    let r = board::routes(r);
    search::routes(r)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
    first_run: bool,
    self_signed: bool,
}

async fn login_page(
    st: &AppState,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let Some(pre) = new_pre_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    let first_run = st
        .custos
        .user_count()
        .await
        .map(|n| n == 0)
        .unwrap_or(false);
    let page = LoginPage {
        csrf: pre.clone(),
        email,
        error,
        first_run,
        self_signed: st.self_signed,
    };
    let mut res = render(&page);
    *res.status_mut() = status;
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(PRE_COOKIE, &pre, Some(3600)),
    );
    res
}

async fn signin_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        match st
            .custos
            .authenticate_for_enrolment(&token, &Default::default())
            .await
        {
            Ok((_, false)) => return Redirect::to("/app").into_response(),
            Ok((_, true)) => return Redirect::to("/app/security").into_response(),
            Err(_) => {}
        }
    }
    login_page(&st, String::new(), None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct SigninForm {
    csrf: String,
    email: String,
    password: String,
}

async fn signin(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
    Form(form): Form<SigninForm>,
) -> Response {
    if !pre_form_ok(&parts, &form.csrf) {
        let msg = "Your sign-in form expired. Please try again.".to_string();
        return login_page(&st, form.email, Some(msg), StatusCode::FORBIDDEN).await;
    }
    let meta = request_meta(&parts);
    let password = SecretString::from(form.password);
    match st.custos.sign_in(&meta, &form.email, &password).await {
        Ok(outcome) => account::after_password(&form.csrf, outcome),
        Err(custos_service::ServiceError::RateLimited) => {
            let msg = "Too many sign-in attempts. Wait a minute and try again.".to_string();
            login_page(&st, form.email, Some(msg), StatusCode::TOO_MANY_REQUESTS).await
        }
        Err(custos_service::ServiceError::Unauthenticated) => {
            let msg = "The email or password is not right.".to_string();
            login_page(&st, form.email, Some(msg), StatusCode::UNAUTHORIZED).await
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            login_page(
                &st,
                form.email,
                Some("Sign-in is unavailable right now.".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn signout(
    State(st): State<AppState>,
    caller: UiCaller,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !custos_crypto::constant_time_eq(caller.csrf.as_bytes(), form.csrf.as_bytes())
        || !same_origin(&headers, &uri)
    {
        return (
            StatusCode::FORBIDDEN,
            "The form expired; go back and try again.",
        )
            .into_response();
    }
    if let Err(e) = st.custos.logout(&caller.principal).await {
        tracing::error!(error = %e, "sign-out failed");
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, "", Some(0)),
    );
    r
}
