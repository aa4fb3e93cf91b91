//! The public page where an invited person sets their password. The link
//! carries a one-time token; the form is protected like the sign-in form (a
//! CSRF token in a pre-session cookie, and the same-origin check).

use super::widgets::{PRE_COOKIE, cookie_header, new_pre_token, pre_form_ok, render};
use crate::AppState;
use crate::extract::request_meta;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use custos_service::ServiceError;
use secrecy::SecretString;
use serde::Deserialize;

/// The invitation routes (public).
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/invite/{token}", get(page).post(accept))
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    token: String,
    csrf: String,
    live: bool,
    done: bool,
    error: Option<String>,
}

async fn show(st: &AppState, token: &str, error: Option<String>, status: StatusCode) -> Response {
    let live = st.custos.invitation_live(token).await.unwrap_or(false);
    let Some(pre) = new_pre_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    let page = InvitePage {
        token: token.to_string(),
        csrf: pre.clone(),
        live,
        done: false,
        error,
    };
    let mut res = render(&page);
    *res.status_mut() = if live { status } else { StatusCode::NOT_FOUND };
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(PRE_COOKIE, &pre, Some(3600)),
    );
    res
}

async fn page(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    show(&st, &token, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct AcceptForm {
    csrf: String,
    password: String,
    confirm: String,
}

async fn accept(
    State(st): State<AppState>,
    Path(token): Path<String>,
    parts: axum::http::request::Parts,
    Form(form): Form<AcceptForm>,
) -> Response {
    if !pre_form_ok(&parts, &form.csrf) {
        let msg = "The form expired. Please try again.".to_string();
        return show(&st, &token, Some(msg), StatusCode::FORBIDDEN).await;
    }
    if form.password != form.confirm {
        let msg = "The two passwords differ. Type the same password twice.".to_string();
        return show(&st, &token, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let meta = request_meta(&parts);
    let pw = SecretString::from(form.password);
    match st.custos.accept_invitation(&token, &pw, &meta).await {
        Ok(()) => {
            let page = InvitePage {
                token: String::new(),
                csrf: String::new(),
                live: true,
                done: true,
                error: None,
            };
            render(&page)
        }
        Err(ServiceError::Invalid(errors)) => {
            let msg = errors
                .iter()
                .map(|e| format!("Password {}", e.message))
                .collect::<Vec<_>>()
                .join("; ");
            show(&st, &token, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(ServiceError::Forbidden(_)) => show(&st, &token, None, StatusCode::NOT_FOUND).await,
        Err(e) => {
            tracing::error!(error = %e, "accepting an invitation failed");
            let msg = "This is unavailable right now. Try again later.".to_string();
            show(&st, &token, Some(msg), StatusCode::SERVICE_UNAVAILABLE).await
        }
    }
}
