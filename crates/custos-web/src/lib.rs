//! The web layer of Custos: the JSON API, the HTML UI, and HTTPS serving. It
//! calls only the service layer; errors become RFC 9457 problem details here.

pub mod api;
pub mod error;
pub mod extract;
pub mod security;
pub mod tls;
pub mod ui;

use axum::extract::Request;
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

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        error::ApiError::not_found("this path").into_response()
    } else {
        (StatusCode::NOT_FOUND, axum::response::Html("<!doctype html><title>Not found</title><p>Not found. <a href=\"/\">Go to Custos</a></p>")).into_response()
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

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
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
/// `shutdown` resolves.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(app(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}
