//! Roles over the API (administrators): the built-in set and custom roles
//! with their permission matrix. Changing roles needs a recent second factor
//! in a session, like every sensitive action.

use super::ApiResult;
use super::{only_fields, string_field};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiCaller, JsonBody};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custos_domain::{Permissions, Role};
use custos_service::{RoleInput, RoleView};
use serde_json::{Value, json};

/// The role routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/v1/roles", get(list).post(create))
        .route("/api/v1/roles/{name}", get(one).put(update).delete(remove))
}

/// The JSON of a role.
pub fn role_json(r: &RoleView) -> Value {
    json!({
        "name": r.name, "label": r.label, "base": r.base.name(), "builtin": r.builtin,
        "scope": r.permissions.scope.name(), "categories": r.permissions.categories,
        "users": r.users,
    })
}

fn input(body: &Value, name: String) -> ApiResult<RoleInput> {
    only_fields(body, &["name", "label", "base", "scope", "categories"])?;
    let label = string_field(body, "label", 60)?;
    let base_name = string_field(body, "base", 40)?;
    let base = Role::from_name(&base_name).ok_or_else(|| {
        ApiError::invalid(
            "base",
            "must be a built-in role: manager, sales, support, privacy_officer or auditor",
        )
    })?;
    let perms = json!({
        "scope": body.get("scope").cloned().unwrap_or(Value::String("all".into())),
        "categories": body.get("categories").cloned().unwrap_or(json!({})),
    });
    let permissions: Permissions = serde_json::from_value(perms).map_err(|e| {
        ApiError::invalid(
            "categories",
            format!("scope must be own, team or all; each category maps to {{read: none|masked|full, write, export, erase}} ({e})"),
        )
    })?;
    Ok(RoleInput {
        name,
        label,
        base,
        permissions,
    })
}

async fn list(State(st): State<AppState>, ApiCaller(p): ApiCaller) -> ApiResult<Response> {
    let roles = st.custos.list_roles(&p).await?;
    let items: Vec<Value> = roles.iter().map(role_json).collect();
    Ok(Json(json!({ "items": items })).into_response())
}

async fn one(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(role_json(&st.custos.get_role(&p, &name).await?)).into_response())
}

async fn create(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let name = string_field(&body, "name", 40)?;
    let r = st.custos.save_role(&p, input(&body, name)?, true).await?;
    Ok((StatusCode::CREATED, Json(role_json(&r))).into_response())
}

async fn update(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if let Some(n) = body.get("name")
        && n.as_str() != Some(name.as_str())
    {
        return Err(ApiError::invalid("name", "a role cannot be renamed"));
    }
    let r = st.custos.save_role(&p, input(&body, name)?, false).await?;
    Ok(Json(role_json(&r)).into_response())
}

async fn remove(
    State(st): State<AppState>,
    ApiCaller(p): ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    st.custos.delete_role(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
