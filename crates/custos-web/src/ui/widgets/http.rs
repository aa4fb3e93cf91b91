//! The HTTP pieces every page uses: rendering a template, cookies, static
//! files, and the same-origin and pre-session CSRF checks of form posts.

use crate::extract::cookie;
use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The cookie that carries the sign-in form's CSRF token before a session exists.
pub(crate) const PRE_COOKIE: &str = "__Host-custos_pre";

/// The content type of the style sheet.
pub(crate) const CSS: &str = "text/css; charset=utf-8";
/// The content type of scripts.
pub(crate) const JS: &str = "text/javascript; charset=utf-8";

/// A file built into the binary, cached for an hour.
pub(crate) async fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A rendered page, or a bare 500 when the template fails.
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A `Set-Cookie` value: host-only, secure, HTTP-only, SameSite=Strict.
pub(crate) fn cookie_header(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A fresh CSRF token for a form shown before any session exists (sign-in,
/// invitation); it is also set in the [`PRE_COOKIE`] cookie.
pub(crate) fn new_pre_token() -> Option<String> {
    use base64::Engine;
    custos_crypto::random_bytes::<24>()
        .ok()
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Whether a pre-session form carries the token of its [`PRE_COOKIE`] and
/// comes from this site.
pub(crate) fn pre_form_ok(parts: &axum::http::request::Parts, sent: &str) -> bool {
    let held = cookie(&parts.headers, PRE_COOKIE).unwrap_or_default();
    !held.is_empty()
        && custos_crypto::constant_time_eq(held.as_bytes(), sent.as_bytes())
        && same_origin(&parts.headers, &parts.uri)
}

/// Refuses form posts that come from another site (defence in depth beside
/// SameSite=Strict cookies and CSRF tokens). Over HTTP/2 (what browsers
/// negotiate) there is no Host header: the request's authority says where it
/// was sent. Because every page is served with `Referrer-Policy: no-referrer`,
/// browsers send `Origin: null` on form posts; then the Fetch Metadata header
/// `Sec-Fetch-Site` decides.
pub(crate) fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("origin") {
        Some(origin) if origin != "null" => {
            let host = text("host")
                .or_else(|| uri.authority().map(|a| a.as_str()))
                .unwrap_or_default();
            origin.strip_prefix("https://").is_some_and(|o| o == host)
        }
        // No usable Origin: browsers that send Fetch Metadata say where the
        // request came from; clients without it are judged by the CSRF token.
        _ => text("sec-fetch-site").is_none_or(|site| site == "same-origin"),
    }
}
