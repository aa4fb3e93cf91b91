//! The checks a use case makes of its caller beyond the role matrix:
//! administrator only, a fresh second factor (step-up) for sensitive
//! actions, and an API token's scopes.

use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError, Via};
use custos_domain::Role;

/// Why [`ServiceError::StepUpRequired`] refuses: the client re-authenticates
/// (`POST /api/v1/auth/step-up`) and tries again.
pub const STEP_UP_REQUIRED: &str =
    "this action needs a fresh second factor: confirm your identity (step-up) and try again";
/// Why [`ServiceError::EnrolmentRequired`] refuses anything but enrolment.
pub const ENROLMENT_REQUIRED: &str = "a second factor is required for every account: set one up first (authenticator app or passkey)";

impl Custos {
    pub(crate) async fn require_admin(&self, p: &Principal, action: &str) -> Result<()> {
        if p.role != Role::Admin {
            Err(self
                .refuse(p, action, "only administrators may do this".into())
                .await)
        } else if !p.has_scope("admin") {
            Err(self
                .refuse(p, action, "this API token lacks the admin scope".into())
                .await)
        } else {
            Ok(())
        }
    }

    /// Refuses (and records) a sensitive action in a session whose last
    /// second-factor check is older than the step-up window. API tokens were
    /// minted after a step-up and are limited by their scopes; the local CLI
    /// operator holds the data directory and key.
    pub async fn require_step_up(&self, p: &Principal, action: &str) -> Result<()> {
        if self.step_up_fresh(p) {
            return Ok(());
        }
        Err(self.step_up_refused(p, action).await)
    }

    /// Whether `p` may do a sensitive action now without a new second-factor
    /// check: API tokens and the CLI always, sessions within the step-up window.
    pub(crate) fn step_up_fresh(&self, p: &Principal) -> bool {
        let Via::Session(_) = p.via else {
            return true;
        };
        let window = self.inner.config.step_up_window.as_millis() as i64;
        p.verified_at.is_some_and(|v| self.now_ms() - v <= window)
    }

    /// Records a sensitive action refused for want of a step-up and returns
    /// the error to give back. Call it with no transaction open.
    pub(crate) async fn step_up_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let ev = Event::new(p, action)
            .outcome("denied")
            .detail("reason=step_up");
        match self.append_alone(ev).await {
            Ok(_) => ServiceError::StepUpRequired,
            Err(e) => e,
        }
    }

    /// Refuses (and records) what an API token's scopes do not cover.
    pub async fn require_scope(&self, p: &Principal, scope: &str, action: &str) -> Result<()> {
        let Via::ApiToken(id) = p.via else {
            return Ok(());
        };
        let mut tx = self.inner.store.begin().await?;
        let tokens = tx.list_api_tokens(Some(p.user_id)).await?;
        drop(tx);
        let scopes = tokens
            .iter()
            .find(|t| t.id == id)
            .and_then(|t| t.scopes.clone());
        match scopes {
            None => Ok(()),
            Some(s) if s.split(',').any(|x| x == scope) => Ok(()),
            Some(_) => Err(self
                .refuse(p, action, format!("this API token lacks the {scope} scope"))
                .await),
        }
    }
}
