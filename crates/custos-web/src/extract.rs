//! Extractors: a handler that takes [`ApiCaller`] or [`UiCaller`] cannot forget
//! authentication; [`JsonBody`] turns unreadable bodies into problem+json.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use custos_service::{Principal, RequestMeta};
use std::net::SocketAddr;

/// The session cookie. `__Host-` pins it to this host, Secure, Path=/.
pub const SESSION_COOKIE: &str = "__Host-custos_session";

/// The request id set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where a request came from, for the audit ledger.
pub fn request_meta(parts: &Parts) -> RequestMeta {
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    RequestMeta {
        client,
        request_id,
        user_agent,
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// An API caller that may also be in an enrolment session (the MFA policy
/// requires a second factor and they have none yet): for the routes that set
/// one up, the account itself and sign-out.
#[derive(Debug, Clone)]
pub struct EnrolCaller(pub Principal);

impl<S> FromRequestParts<S> for EnrolCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let meta = request_meta(parts);
        let token = bearer(parts).ok_or(custos_service::ServiceError::Unauthenticated)?;
        let (p, _) = state
            .custos
            .authenticate_for_enrolment(token, &meta)
            .await?;
        Ok(EnrolCaller(p))
    }
}

/// Reads a cookie by name.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

/// An API caller authenticated by `Authorization: Bearer TOKEN`.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Principal);

impl<S> FromRequestParts<S> for ApiCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let meta = request_meta(parts);
        let token = bearer(parts).ok_or(custos_service::ServiceError::Unauthenticated)?;
        let p = state.custos.authenticate(token, &meta).await?;
        Ok(ApiCaller(p))
    }
}

/// A signed-in web user (session cookie), with the CSRF token of their session.
#[derive(Debug, Clone)]
pub struct UiCaller {
    /// Who.
    pub principal: Principal,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// The CSRF token of a session: derived from the session token, so it needs no
/// storage and cannot be guessed without the cookie.
pub fn csrf_for(session_token: &str) -> String {
    use base64::Engine;
    let digest = custos_crypto::sha256(format!("custos/csrf/v1:{session_token}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24])
}

/// Rejection of [`UiCaller`]: back to the sign-in page (or, in an enrolment
/// session, to the page that sets up a second factor).
#[derive(Debug)]
pub struct SignInFirst(pub &'static str);

impl SignInFirst {
    /// Where the rejection of this authentication error leads.
    pub fn from_error(e: &custos_service::ServiceError) -> SignInFirst {
        match e {
            custos_service::ServiceError::EnrolmentRequired => SignInFirst("/app/security"),
            _ => SignInFirst("/"),
        }
    }
}

impl axum::response::IntoResponse for SignInFirst {
    fn into_response(self) -> axum::response::Response {
        axum::response::Redirect::to(self.0).into_response()
    }
}

impl<S> FromRequestParts<S> for UiCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let meta = request_meta(parts);
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(SignInFirst("/"))?;
        let principal = state
            .custos
            .authenticate(&token, &meta)
            .await
            .map_err(|e| SignInFirst::from_error(&e))?;
        Ok(UiCaller {
            principal,
            csrf: csrf_for(&token),
        })
    }
}

/// A JSON object body. Wrong content type → 415; unreadable JSON → 400 naming
/// where it broke.
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = ct.split(';').next().unwrap_or_default().trim();
        // Media types are case-insensitive (RFC 9110 section 8.3.1).
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "too-large",
                        "Request too large",
                        format!("the body is larger than {} bytes", crate::BODY_LIMIT),
                    )
                } else {
                    ApiError::bad_request("body", format!("could not read the body: {e}"))
                }
            })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "body",
                format!("malformed JSON at line {} column {}", e.line(), e.column()),
            )
        })?;
        if !v.is_object() {
            return Err(ApiError::bad_request("body", "must be a JSON object"));
        }
        Ok(JsonBody(v))
    }
}

/// Query pairs, in order. Malformed query strings give 400.
#[derive(Debug)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map(QueryPairs)
            .map_err(|e| ApiError::bad_request("query", e.to_string()))
    }
}

/// A record id from the path. Ids that are not text at all (bad percent
/// encoding) get a problem naming `id`, like ids that are not UUIDs.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathId(p.0))
            .map_err(|_| ApiError::invalid("id", "must be an id (a UUID)"))
    }
}
