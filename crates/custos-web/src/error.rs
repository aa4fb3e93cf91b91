//! RFC 9457 problem details: the one place errors become HTTP responses.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_domain::FieldError;
use custos_service::ServiceError;
use serde::Serialize;

/// An HTTP error, rendered as `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    /// A problem with the given status and words.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400 for a body or parameter that cannot be read at all.
    pub fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            slug: "malformed-request",
            title: "Malformed request",
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// 422 naming one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::from(ServiceError::invalid(field, message))
    }

    /// 404 for an unknown path.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        match e {
            ServiceError::Unauthenticated => ApiError::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "Sign-in required",
                "send a valid bearer token (Authorization: Bearer …) or sign in",
            ),
            ServiceError::StepUpRequired => ApiError::new(
                S::FORBIDDEN,
                "step-up-required",
                "Confirm your identity",
                custos_service::STEP_UP_REQUIRED,
            ),
            ServiceError::EnrolmentRequired => ApiError::new(
                S::FORBIDDEN,
                "mfa-enrolment-required",
                "Set up a second factor",
                custos_service::ENROLMENT_REQUIRED,
            ),
            ServiceError::Forbidden(d) => {
                ApiError::new(S::FORBIDDEN, "forbidden", "Not allowed", d)
            }
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Gone(what) => ApiError::new(
                S::GONE,
                "erased",
                "Erased",
                format!("this {what} belonged to a person whose data was erased"),
            ),
            ServiceError::Conflict(d) => ApiError::new(S::CONFLICT, "conflict", "Conflict", d),
            ServiceError::Invalid(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ApiError {
                    status: S::UNPROCESSABLE_ENTITY,
                    slug: "validation",
                    title: "Invalid input",
                    detail,
                    errors,
                }
            }
            ServiceError::RateLimited => ApiError::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                "try again later",
            ),
            ServiceError::Internal(detail) => {
                // The detail goes to the operator's log only; it never holds personal
                // values (the service layer never puts any in errors).
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something failed inside Custos; the operator's log has the details",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("/problems/{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 section 15.5.2: a 401 names the scheme to use.
            return (
                self.status,
                [
                    (header::CONTENT_TYPE, "application/problem+json"),
                    (header::WWW_AUTHENTICATE, "Bearer realm=\"custos\""),
                ],
                json,
            )
                .into_response();
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}
