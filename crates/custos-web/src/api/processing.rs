//! The record of processing, the processor register, the controller
//! details and the minimisation review.

use super::{ApiResult, known_params, only_fields, parse_id};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, JsonBody, PathId, QueryPairs};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use custos_domain::Entity;
use serde_json::json;

const PROCESSOR_FIELDS: [&str; 7] = [
    "name",
    "service",
    "categories",
    "country",
    "transfer",
    "dpa_signed_on",
    "review_on",
];

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/processing", get(record))
        .route("/api/v1/processors", get(processors).post(create))
        .route(
            "/api/v1/processors/{id}",
            get(processor).put(update).delete(remove),
        )
        .route(
            "/api/v1/settings/controller",
            get(controller).put(set_controller),
        )
        .route("/api/v1/minimisation", get(report))
        .route("/api/v1/minimisation/{entity}/{field}", put(decide))
}

async fn record(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(st.custos.record_of_processing(&p).await?).into_response())
}

async fn processors(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(json!({ "items": st.custos.processors(&p).await? })).into_response())
}

async fn processor(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.processor(&p, parse_id(&id)?).await?).into_response())
}

async fn create(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &PROCESSOR_FIELDS)?;
    let x = st.custos.processor_create(&p, &body).await?;
    Ok((StatusCode::CREATED, Json(x)).into_response())
}

async fn update(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &PROCESSOR_FIELDS)?;
    Ok(Json(
        st.custos
            .processor_update(&p, parse_id(&id)?, &body)
            .await?,
    )
    .into_response())
}

async fn remove(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    st.custos.processor_delete(&p, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn controller(State(st): State<AppState>, ApiCaller(_p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(st.custos.controller().await?).into_response())
}

async fn set_controller(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(
        &body,
        &["name", "address", "email", "dpo_name", "dpo_email"],
    )?;
    Ok(Json(st.custos.set_controller(&p, &body).await?).into_response())
}

async fn report(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["months"])?;
    let months = match q.iter().find(|(k, _)| k == "months") {
        None => custos_service::REVIEW_MONTHS,
        Some((_, v)) => v
            .parse()
            .map_err(|_| ApiError::invalid("months", "must be a number of months from 1 to 120"))?,
    };
    Ok(Json(st.custos.minimisation_report(&p, months).await?).into_response())
}

async fn decide(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    Path((entity, field)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    only_fields(&body, &["decision", "reason"])?;
    let entity = Entity::CRM
        .into_iter()
        .find(|e| e.name() == entity || e.plural() == entity)
        .ok_or_else(|| ApiError::not_found("entity"))?;
    Ok(Json(
        st.custos
            .minimisation_decide(&p, entity, &field, &body)
            .await?,
    )
    .into_response())
}
