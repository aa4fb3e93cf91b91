//! Data-subject requests, the consent ledger, exports, and the public
//! endpoints of the privacy portal.

use super::{ApiResult, known_params, limit_param, only_fields, parse_id, string_field};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, JsonBody, PathId, QueryPairs, request_meta};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_domain::dsar::State as ReqState;
use custos_service::Opener;
use serde_json::json;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dsar", get(list).post(open))
        .route("/api/v1/dsar/summary", get(summary))
        .route("/api/v1/dsar/{id}", get(read))
        .route("/api/v1/dsar/{id}/verify", post(verify))
        .route("/api/v1/dsar/{id}/code", post(new_code))
        .route("/api/v1/dsar/{id}/match", post(match_contact))
        .route("/api/v1/dsar/{id}/extend", post(extend))
        .route("/api/v1/dsar/{id}/reject", post(reject))
        .route("/api/v1/dsar/{id}/fulfil", post(fulfil))
        .route("/api/v1/dsar/{id}/lift", post(lift))
        .route("/api/v1/dsar/{id}/package", get(package))
        .route("/api/v1/dsar/{id}/evidence", get(evidence))
        .route("/api/v1/consents", get(consents).post(record_consent))
        .route("/api/v1/exports/contacts", get(export_contacts))
        .route("/api/v1/privacy/requests", post(portal_open))
        .route("/api/v1/privacy/requests/{id}", get(portal_status))
        .route("/api/v1/privacy/opt-out", post(portal_opt_out))
}

/// Whether the browser sent Global Privacy Control (`Sec-GPC: 1`).
pub fn gpc(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        == Some("1")
}

async fn open(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let opened = st.custos.dsar_open(&Opener::Staff(p), &body).await?;
    let id = opened.view.id;
    let mut v = serde_json::to_value(&opened.view).unwrap_or_default();
    v["verification_code"] = json!(opened.verification_code);
    v["status_url"] = json!(format!(
        "/privacy/requests/{id}?token={}",
        opened.status_token
    ));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/dsar/{id}"))],
        Json(v),
    )
        .into_response())
}

async fn list(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["state", "limit"])?;
    let state = match q.iter().find(|(k, _)| k == "state") {
        None => None,
        Some((_, v)) => Some(ReqState::from_name(v).ok_or_else(|| {
            ApiError::invalid("state", "must be received, verified, fulfilled or rejected")
        })?),
    };
    let limit = limit_param(&q, 50)?;
    let items = st.custos.dsar_list(&p, state, limit).await?;
    Ok(Json(json!({"items": items, "next_cursor": null})).into_response())
}

async fn summary(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_summary(&p).await?).into_response())
}

async fn read(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_get(&p, parse_id(&id)?).await?).into_response())
}

async fn verify(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_verify(&p, parse_id(&id)?, &b).await?).into_response())
}

async fn new_code(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_new_code(&p, parse_id(&id)?).await?).into_response())
}

async fn match_contact(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    only_fields(&b, &["contact_id"])?;
    let contact = string_field(&b, "contact_id", 64)?;
    let contact = uuid::Uuid::parse_str(&contact)
        .map_err(|_| ApiError::invalid("contact_id", "must be a UUID"))?;
    Ok(Json(st.custos.dsar_match(&p, parse_id(&id)?, contact).await?).into_response())
}

async fn extend(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    only_fields(&b, &["reason"])?;
    let reason = string_field(&b, "reason", 2000)?;
    Ok(Json(st.custos.dsar_extend(&p, parse_id(&id)?, &reason).await?).into_response())
}

async fn reject(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    only_fields(&b, &["ground", "explanation"])?;
    let ground = string_field(&b, "ground", 64)?;
    let explanation = string_field(&b, "explanation", 2000)?;
    let view = st
        .custos
        .dsar_reject(&p, parse_id(&id)?, &ground, &explanation)
        .await?;
    Ok(Json(view).into_response())
}

async fn fulfil(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_fulfil(&p, parse_id(&id)?).await?).into_response())
}

async fn lift(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(st.custos.dsar_lift(&p, parse_id(&id)?).await?).into_response())
}

fn csv_escape(s: &str) -> String {
    // Leading = + - @ would be run as formulas by spreadsheets: neutralise them.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One entity of an access package as CSV: a header row of the field names,
/// then one row per record (formula-like cells neutralised). Empty when the
/// package holds no record of that entity.
pub(crate) fn package_csv(pkg: &custos_service::DsarPackage, entity: &str) -> String {
    let rows = pkg
        .records
        .get(entity)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = String::new();
    if let Some(first) = rows.first() {
        // Columns in name order, as every package's JSON has them.
        let mut cols: Vec<&str> = first.fields.iter().map(|(f, _)| f.name).collect();
        cols.sort_unstable();
        out.push_str(
            &cols
                .iter()
                .map(|c| csv_escape(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
        for r in rows {
            let line: Vec<String> = cols
                .iter()
                .map(|c| {
                    let v = r.fields.iter().find(|(f, _)| f.name == *c).map(|(_, v)| v);
                    match v.map(|v| v.to_json()) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => csv_escape(&s),
                        Some(other) => csv_escape(&other.to_string()),
                    }
                })
                .collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}

async fn package(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["format", "entity"])?;
    let format = q
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
        .unwrap_or("json");
    let pkg = st.custos.dsar_package(&p, parse_id(&id)?).await?;
    match format {
        "json" => Ok((
            [(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"dsar-{id}.json\""),
            )],
            Json(pkg),
        )
            .into_response()),
        "csv" => {
            let entity = q
                .iter()
                .find(|(k, _)| k == "entity")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "entity",
                        "is required with format=csv (e.g. contacts, activities, orders)",
                    )
                })?;
            let out = package_csv(&pkg, &entity);
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"dsar-{id}-{entity}.csv\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
        _ => Err(ApiError::invalid("format", "must be json or csv")),
    }
}

async fn evidence(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let pack = st.custos.dsar_evidence(&p, parse_id(&id)?).await?;
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"dsar-{id}-evidence.json\""),
        )],
        Json(pack),
    )
        .into_response())
}

async fn consents(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["contact_id"])?;
    let contact = q
        .iter()
        .find(|(k, _)| k == "contact_id")
        .map(|(_, v)| parse_id(v).map_err(|_| ApiError::invalid("contact_id", "must be a UUID")))
        .transpose()?
        .ok_or_else(|| ApiError::invalid("contact_id", "is required"))?;
    Ok(Json(st.custos.consent_history(&p, contact).await?).into_response())
}

async fn record_consent(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    let v = st.custos.consent_record(&p, &b).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn export_contacts(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["purpose"])?;
    let purpose = q
        .iter()
        .find(|(k, _)| k == "purpose")
        .map(|(_, v)| v.as_str());
    let export = st.custos.export_contacts(&p, purpose).await?;
    let items = &export.items;
    Ok(
        Json(json!({"purpose": purpose, "items": items, "excluded": export.excluded}))
            .into_response(),
    )
}

async fn portal_open(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let meta = request_meta(&parts);
    st.custos.portal_gate(&meta).await?;
    let opened = st
        .custos
        .dsar_open(&Opener::Portal(meta.clone()), &body)
        .await?;
    let id = opened.view.id;
    let mut gpc_recorded = 0;
    if gpc(&parts.headers) {
        // Global Privacy Control is a valid opt-out of sale and sharing (CCPA regs § 7025).
        gpc_recorded = st
            .custos
            .record_opt_out(&meta, &opened.view.subject_email, "gpc")
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "state": opened.view.state,
            "due_at": opened.view.due_at,
            "status_url": format!("/privacy/requests/{id}?token={}", opened.status_token),
            "status_token": opened.status_token,
            "gpc_opt_out_recorded": gpc_recorded > 0,
        })),
    )
        .into_response())
}

async fn portal_status(
    State(st): State<AppState>,
    PathId(id): PathId,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    known_params(&q, &["token"])?;
    let token = q
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::invalid("token", "is required"))?;
    Ok(Json(st.custos.dsar_public_status(parse_id(&id)?, token).await?).into_response())
}

async fn portal_opt_out(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
    JsonBody(b): JsonBody,
) -> ApiResult<Response> {
    only_fields(&b, &["email"])?;
    let email = string_field(&b, "email", 254)?;
    let meta = request_meta(&parts);
    st.custos.portal_gate(&meta).await?;
    let signal = if gpc(&parts.headers) { "gpc" } else { "portal" };
    // The answer is the same whether or not the email is known: it must not
    // reveal who is a customer.
    st.custos.record_opt_out(&meta, &email, signal).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "recorded"}))).into_response())
}
