//! The service layer's one error type. The web layer maps it to problem+json and
//! the CLI to one line, each in one place.

use custos_domain::FieldError;

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No valid credentials.
    #[error("sign-in required")]
    Unauthenticated,
    /// Signed in, but not allowed.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// A sensitive action in a session whose last second-factor check is
    /// too old: the client confirms its identity again (step-up) and retries.
    #[error("not allowed: {}", crate::STEP_UP_REQUIRED)]
    StepUpRequired,
    /// An enrolment session may do nothing but set up a second factor.
    #[error("not allowed: {}", crate::ENROLMENT_REQUIRED)]
    EnrolmentRequired,
    /// No such record.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The record belonged to a person whose data was erased.
    #[error("this {0} was erased")]
    Gone(&'static str),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Input failed validation; nothing changed.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Too many attempts.
    #[error("too many attempts; try again later")]
    RateLimited,
    /// Something failed inside Custos (storage, keys). The detail is for logs only.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    /// A validation error on one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<custos_store::StoreError> for ServiceError {
    fn from(e: custos_store::StoreError) -> Self {
        match e {
            custos_store::StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<custos_crypto::CryptoError> for ServiceError {
    fn from(e: custos_crypto::CryptoError) -> Self {
        ServiceError::Internal(format!("crypto: {e}"))
    }
}

/// Result of a use case.
pub type Result<T> = std::result::Result<T, ServiceError>;
