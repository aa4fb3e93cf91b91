//! The JSON API under `/api/v1`, and its OpenAPI document.

pub mod identity;
pub mod openapi;
mod openapi_identity;
pub mod privacy;
pub mod processing;
pub mod retention;
pub mod roles;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, EnrolCaller, JsonBody, PathId, QueryPairs};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_domain::Entity;
use custos_service::ListParams;
use serde_json::json;
use uuid::Uuid;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The API routes.
pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/api/openapi.json", get(openapi_doc))
        .route("/api/v1/auth/login", post(identity::login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/pipeline/stages", get(get_stages).put(put_stages))
        .route("/api/v1/audit/checkpoint", get(checkpoint))
        .route("/api/v1/audit/verifier-key", get(verifier_key))
        .route("/api/v1/audit/leaves", get(leaves))
        .route("/api/v1/audit/events", get(events))
        .route("/api/v1/audit/proof/inclusion", get(inclusion))
        .route("/api/v1/audit/proof/consistency", get(consistency))
        .route("/api/v1/audit/status", get(ledger_status))
        .merge(privacy::router())
        .merge(retention::router())
        .merge(processing::router());
    r = identity::routes(r);
    r = roles::routes(r);
    for entity in Entity::CRM {
        let collection = format!("/api/v1/{}", entity.plural());
        let item = format!("/api/v1/{}/{{id}}", entity.plural());
        r = r
            .route(
                &collection,
                get(move |s: State<AppState>, c: ApiCaller, q: QueryPairs| list(s, c, q, entity))
                    .post(move |s: State<AppState>, c: ApiCaller, b: JsonBody| {
                        create(s, c, b, entity)
                    }),
            )
            .route(
                &item,
                get(move |s: State<AppState>, c: ApiCaller, id: PathId| read(s, c, id, entity))
                    .patch(
                        move |s: State<AppState>, c: ApiCaller, id: PathId, b: JsonBody| {
                            update(s, c, id, b, entity)
                        },
                    )
                    .delete(move |s: State<AppState>, c: ApiCaller, id: PathId| {
                        remove(s, c, id, entity)
                    }),
            );
    }
    r
}

pub(crate) fn parse_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("id", "must be an id (a UUID)"))
}

async fn list(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
    entity: Entity,
) -> ApiResult<Response> {
    let params = ListParams::parse(entity, &q)?;
    let page = st.custos.list(&p, entity, &params).await?;
    let items = &page.items;
    Ok(
        Json(json!({"items": items, "next_cursor": page.next_cursor, "partial": page.partial}))
            .into_response(),
    )
}

async fn create(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
    entity: Entity,
) -> ApiResult<Response> {
    let view = st.custos.create(&p, entity, &body).await?;
    let location = format!("/api/v1/{}/{}", entity.plural(), view.id());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

async fn read(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    entity: Entity,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(Json(st.custos.get(&p, entity, id).await?).into_response())
}

async fn update(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
    entity: Entity,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(Json(st.custos.update(&p, entity, id, &body).await?).into_response())
}

async fn remove(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    entity: Entity,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    st.custos.delete(&p, entity, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn openapi_doc() -> Response {
    Json(openapi::document()).into_response()
}

pub(crate) fn string_field(body: &serde_json::Value, name: &str, max: usize) -> ApiResult<String> {
    match body.get(name) {
        Some(serde_json::Value::String(s)) if s.chars().count() <= max => Ok(s.clone()),
        Some(serde_json::Value::String(_)) => Err(ApiError::invalid(
            name,
            format!("must be at most {max} characters"),
        )),
        Some(_) => Err(ApiError::invalid(name, "must be a string")),
        None => Err(ApiError::invalid(name, "is required")),
    }
}

pub(crate) fn only_fields(body: &serde_json::Value, allowed: &[&str]) -> ApiResult<()> {
    if let Some(obj) = body.as_object()
        && let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(k, "unknown field"));
    }
    Ok(())
}

async fn logout(State(st): State<AppState>, EnrolCaller(p): EnrolCaller) -> ApiResult<Response> {
    st.custos.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(st): State<AppState>, EnrolCaller(p): EnrolCaller) -> ApiResult<Response> {
    let u = st.custos.me(&p).await?;
    let mut v = identity::user_json(&u);
    v["passkeys"] = json!(st.custos.list_passkeys(&p).await?.len());
    v["recovery_codes_left"] = json!(st.custos.recovery_codes_left(&p).await?);
    v["mfa_required"] = json!(st.custos.mfa_required().await?);
    Ok(Json(v).into_response())
}

async fn get_stages(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({"stages": st.custos.pipeline_stages(&p).await?})).into_response())
}

async fn put_stages(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["stages"])?;
    let stages: Vec<String> = match body.get("stages") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid("stages", "must be a list of strings"))
            })
            .collect::<ApiResult<_>>()?,
        _ => return Err(ApiError::invalid("stages", "must be a list of strings")),
    };
    Ok(Json(json!({"stages": st.custos.set_pipeline_stages(&p, stages).await?})).into_response())
}

async fn checkpoint(State(st): State<AppState>, ApiCaller(_p): ApiCaller) -> ApiResult<Response> {
    let note = st.custos.ledger_checkpoint().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

async fn verifier_key(State(st): State<AppState>, ApiCaller(_p): ApiCaller) -> ApiResult<Response> {
    let key = st.custos.ledger_verifier_key()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], key).into_response())
}

fn u64_param(q: &[(String, String)], name: &str) -> ApiResult<Option<u64>> {
    match q.iter().find(|(k, _)| k == name) {
        Some((_, v)) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, "must be a whole number")),
        None => Ok(None),
    }
}

async fn leaves(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    use base64::Engine;
    let start = u64_param(&q, "start")?.ok_or_else(|| ApiError::invalid("start", "is required"))?;
    let end = u64_param(&q, "end")?.ok_or_else(|| ApiError::invalid("end", "is required"))?;
    if end < start {
        return Err(ApiError::invalid("end", "must not be less than start"));
    }
    let entries = st.custos.audit_leaf_bytes(&p, start, end).await?;
    let leaves: Vec<_> = entries
        .into_iter()
        .map(|(i, d)| json!({"index": i, "data": base64::engine::general_purpose::STANDARD.encode(d)}))
        .collect();
    Ok(Json(json!({"leaves": leaves})).into_response())
}

fn b64(h: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

fn time_param(q: &[(String, String)], name: &str) -> ApiResult<Option<i64>> {
    match q.iter().find(|(k, _)| k == name) {
        Some((_, v)) => custos_domain::value::parse_timestamp(v)
            .map(|t| Some(custos_domain::value::to_unix_ms(t)))
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    "must be an RFC 3339 time such as 2026-01-31T09:30:00Z",
                )
            }),
        None => Ok(None),
    }
}

/// The `limit` query parameter of a list: 1 to 500, `default` when absent.
pub(crate) fn limit_param(q: &[(String, String)], default: u32) -> ApiResult<u32> {
    match q
        .iter()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| v.parse::<u32>())
    {
        Some(Ok(n)) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            "must be a whole number from 1 to 500",
        )),
        None => Ok(default),
    }
}

pub(crate) fn known_params(q: &[(String, String)], allowed: &[&str]) -> ApiResult<()> {
    match q.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::invalid(k, "unknown query parameter")),
        None => Ok(()),
    }
}

async fn events(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(
        &q,
        &[
            "subject_id",
            "actor_id",
            "action",
            "from",
            "to",
            "limit",
            "before",
        ],
    )?;
    let uuid = |name: &str| -> ApiResult<Option<Uuid>> {
        q.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Uuid::parse_str(v).map_err(|_| ApiError::invalid(name, "must be a UUID")))
            .transpose()
    };
    let action = q
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.clone());
    if action
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 100)
    {
        return Err(ApiError::invalid("action", "must be 1 to 100 characters"));
    }
    let limit = match u64_param(&q, "limit")? {
        Some(n) if (1..=500).contains(&n) => n as u32,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                "must be a whole number from 1 to 500",
            ));
        }
        None => 100,
    };
    let filter = custos_store_filter(
        uuid("subject_id")?,
        uuid("actor_id")?,
        action,
        time_param(&q, "from")?,
        time_param(&q, "to")?,
        u64_param(&q, "before")?,
    );
    let query = custos_service::EventQuery { filter, limit };
    let (entries, next) = st.custos.audit_events(&p, &query).await?;
    Ok(Json(json!({"events": entries, "next_before": next})).into_response())
}

fn custos_store_filter(
    subject: Option<Uuid>,
    actor: Option<Uuid>,
    action: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    before: Option<u64>,
) -> custos_service::EventFilter {
    custos_service::EventFilter {
        subject_id: subject.map(|s| s.to_string()),
        actor: actor.map(|a| format!("user:{a}")),
        action,
        record: None,
        from_ms,
        to_ms,
        before_index: before,
    }
}

async fn inclusion(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["index", "size"])?;
    let index = u64_param(&q, "index")?.ok_or_else(|| ApiError::invalid("index", "is required"))?;
    let size = u64_param(&q, "size")?.ok_or_else(|| ApiError::invalid("size", "is required"))?;
    let proof = st.custos.inclusion_proof(&p, index, size).await?;
    let path: Vec<String> = proof.proof.iter().map(|h| b64(h)).collect();
    Ok(Json(json!({"index": proof.index, "size": proof.size, "leaf_hash": b64(&proof.leaf_hash), "proof": path})).into_response())
}

async fn consistency(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["from", "to"])?;
    let from = u64_param(&q, "from")?.ok_or_else(|| ApiError::invalid("from", "is required"))?;
    let to = u64_param(&q, "to")?.ok_or_else(|| ApiError::invalid("to", "is required"))?;
    let proof = st.custos.consistency_proof(&p, from, to).await?;
    let path: Vec<String> = proof.iter().map(|h| b64(h)).collect();
    Ok(Json(json!({"from": from, "to": to, "proof": path})).into_response())
}

async fn ledger_status(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(st.custos.ledger_status(&p).await?).into_response())
}
