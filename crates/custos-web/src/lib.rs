//! The web layer of Custos: the JSON API, the HTML UI, and HTTPS serving. It
//! calls only the service layer; errors become RFC 9457 problem details here.

pub mod api;
pub mod error;
pub mod extract;
pub mod security;
pub mod tls;
pub mod ui;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custos_service::Custos;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body accepted (1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The service.
    pub custos: Custos,
    /// Whether the server runs on its generated self-signed certificate (the UI
    /// shows a warning banner).
    pub self_signed: bool,
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(extract::RequestId(id.clone()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

#[derive(askama::Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    if path.starts_with("/api/") {
        error::ApiError::not_found("this path").into_response()
    } else if path == "/privacy" || path.starts_with("/privacy/") {
        ui::portal::not_found(req.headers())
    } else {
        let mut res = ui::widgets::render(&NotFoundPage);
        *res.status_mut() = StatusCode::NOT_FOUND;
        res
    }
}

async fn method_not_allowed() -> Response {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this path does not accept this method; see /api/openapi.json",
    )
    .into_response()
}

/// `GET /healthz`: public liveness, always 200 while the process serves.
/// `status` is `degraded` when a background job's latest run failed (a
/// checkpoint that could not be signed, a scheduled backup that failed), and
/// `jobs` says which and why, so a monitor sees it, not only the log. Each
/// job also shows its schedule (`every_seconds`) and when it last ran.
async fn healthz(State(st): State<AppState>) -> Json<serde_json::Value> {
    let jobs = st.custos.job_statuses();
    let healthy = jobs.iter().all(|j| j.healthy());
    let jobs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            serde_json::json!({
                "name": j.name,
                "status": if j.healthy() { "ok" } else { "failing" },
                "every_seconds": j.every_secs,
                "runs": j.runs,
                "last_run": j.last_run_ms.and_then(rfc3339_ms),
                "last_success": j.last_success_ms.and_then(rfc3339_ms),
                "failing_since": j.failing_since_ms.and_then(rfc3339_ms),
                "error": j.error,
            })
        })
        .collect();
    Json(serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "jobs": jobs,
    }))
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    custos_domain::value::from_unix_ms(ms).map(custos_domain::value::format_timestamp)
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api::router())
        .merge(ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(security::headers))
        .layer(middleware::from_fn(request_id))
}

/// Serves the application over HTTPS on an already bound listener until
/// `handle` is told to shut down.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    serve_with(listener, config, state, handle).await
}

/// Like [`serve`], with a TLS configuration the caller keeps a clone of, so it
/// can swap in a renewed certificate without a restart
/// (`RustlsConfig::reload_from_config`).
pub async fn serve_with(
    listener: std::net::TcpListener,
    config: axum_server::tls_rustls::RustlsConfig,
    state: AppState,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(app(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// The plain-HTTP side: every request is permanently redirected to the same
/// path on HTTPS (on `https_port`); nothing else is served in the clear.
pub fn redirect_app(https_port: u16) -> Router {
    Router::new()
        .fallback(move |req: Request| async move {
            let host = req
                .headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| match h.rsplit_once(':') {
                    // "[::1]" has colons but no port; "[::1]:80" and "host:80" have one.
                    Some((name, port))
                        if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        name.to_string()
                    }
                    _ => h.to_string(),
                })
                .filter(|h| {
                    !h.is_empty()
                        && h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
                })
                .unwrap_or_else(|| "localhost".to_string());
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = if https_port == 443 {
                format!("https://{host}{path}")
            } else {
                format!("https://{host}:{https_port}{path}")
            };
            axum::response::Redirect::permanent(&target)
        })
        .layer(middleware::from_fn(security::headers))
}
