//! Retention and legal holds: the preview of what is due, runs and their
//! purge certificates, and holds on people.

use super::{ApiResult, known_params, limit_param, only_fields, parse_id};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, JsonBody, PathId, QueryPairs};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use custos_service::RunOptions;
use serde_json::json;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/retention/preview", get(preview))
        .route("/api/v1/retention/runs", get(runs).post(run))
        .route("/api/v1/retention/runs/{id}/certificate", get(certificate))
        .route("/api/v1/retention/policies", get(policies))
        .route("/api/v1/retention/policies/{key}", put(set_policy))
        .route("/api/v1/retention/policies/{key}/impact", get(impact))
        .route("/api/v1/holds", get(holds).post(place))
        .route("/api/v1/holds/{id}/lift", post(lift))
}

async fn preview(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(st.custos.retention_preview(&p).await?).into_response())
}

async fn runs(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["limit"])?;
    let limit = limit_param(&q, 50)?;
    let items = st.custos.retention_runs(&p, limit).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn run(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["batch"])?;
    let batch = match body.get("batch") {
        None | Some(serde_json::Value::Null) => custos_service::RETENTION_BATCH,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10_000).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::invalid("batch", "must be a whole number from 1 to 10000"))?,
    };
    let options = RunOptions {
        batch,
        ..Default::default()
    };
    let report = st.custos.retention_run(&p, options, |_, _| {}).await?;
    let id = report.id;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/retention/runs/{id}/certificate"),
        )],
        Json(report),
    )
        .into_response())
}

async fn certificate(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.retention_certificate(&p, parse_id(&id)?).await?).into_response())
}

async fn policies(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    let items = st.custos.retention_policies(&p).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn impact(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(key): PathId,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["years"])?;
    let years = q
        .iter()
        .find(|(k, _)| k == "years")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::invalid("years", "give the period to count, in years"))?;
    let years =
        custos_domain::retention::parse_years(years).map_err(|m| ApiError::invalid("years", m))?;
    Ok(Json(st.custos.retention_policy_impact(&p, &key, years).await?).into_response())
}

async fn set_policy(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(key): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["years", "reason", "confirm"])?;
    Ok(Json(st.custos.retention_policy_set(&p, &key, &body).await?).into_response())
}

async fn holds(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["subject_id"])?;
    let items = match q.iter().find(|(k, _)| k == "subject_id") {
        Some((_, v)) => {
            let subject = uuid::Uuid::parse_str(v)
                .map_err(|_| ApiError::invalid("subject_id", "must be a contact id"))?;
            st.custos.holds_of(&p, subject).await?
        }
        None => st.custos.holds_in_force(&p).await?,
    };
    Ok(Json(json!({ "items": items })).into_response())
}

async fn place(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["subject_id", "reason", "review_on", "owner_id"])?;
    let hold = st.custos.hold_place(&p, &body).await?;
    Ok((StatusCode::CREATED, Json(hold)).into_response())
}

async fn lift(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.hold_lift(&p, parse_id(&id)?).await?).into_response())
}
