//! Invitations: an administrator creates an account without choosing its
//! password and hands the person a one-time link; the person sets their own
//! password through it, then signs in and enrols a second factor. The link's
//! token is stored hashed, works once and ends after [`INVITE_TTL_MS`].

use crate::identity::passwords::check_password;
use crate::identity::users::NewUser;
use crate::ledger::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, UserView};
use custos_crypto::{hash_token, new_token};
use custos_store::ChallengeRow;
use secrecy::SecretString;
use uuid::Uuid;

/// How long an invitation link works: seven days.
pub const INVITE_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const INVITE_PREFIX: &str = "csi_";
const PURPOSE: &str = "invite";

/// A new account and the secret of its invitation link (shown once).
#[derive(Debug)]
pub struct Invitation {
    /// The account.
    pub user: UserView,
    /// The token to put in the link (`/invite/TOKEN`).
    pub token: SecretString,
    /// When the link stops working (Unix ms).
    pub expires_at: i64,
}

impl Custos {
    /// Creates an account for `email` with `role` (built-in or custom) and an
    /// invitation to set its password (administrators, with step-up).
    pub async fn invite_user(
        &self,
        p: &Principal,
        email: &str,
        role: &str,
        display_name: Option<&str>,
        team: Option<&str>,
    ) -> Result<Invitation> {
        self.require_admin(p, "user.invite").await?;
        self.require_step_up(p, "user.invite").await?;
        let mut tx = self.inner.store.begin().await?;
        let new = NewUser {
            email,
            role,
            display_name,
            team,
        };
        let user = self.create_user_in(tx.as_mut(), p, &new, None).await?;
        let (token, hash) = new_token(INVITE_PREFIX)?;
        let now = self.now_ms();
        let expires_at = now + INVITE_TTL_MS;
        tx.insert_challenge(&ChallengeRow {
            id: Uuid::now_v7(),
            token_hash: hash.to_vec(),
            user_id: user.id,
            purpose: PURPOSE.into(),
            session_id: None,
            challenge: None,
            attempts: 0,
            created_at: now,
            expires_at,
        })
        .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "user.invite").subject(Some(user.id)),
        )
        .await?;
        tx.commit().await?;
        Ok(Invitation {
            user,
            token,
            expires_at,
        })
    }

    /// Whether an invitation token is live (for the page that asks for the
    /// new password). Unknown, used and expired tokens all answer `false`.
    pub async fn invitation_live(&self, token: &str) -> Result<bool> {
        if token.len() > 200 {
            return Ok(false);
        }
        let mut tx = self.inner.store.begin().await?;
        Ok(tx
            .find_challenge(&hash_token(token))
            .await?
            .is_some_and(|c| c.purpose == PURPOSE && c.expires_at > self.now_ms()))
    }

    /// Sets the invited person's password and ends the invitation. A token
    /// that is unknown, used or expired gets the same refusal.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        let dead = || {
            ServiceError::Forbidden(
                "this invitation link is not valid: it was used, has expired or was mistyped; ask an administrator for a new one".into(),
            )
        };
        if token.len() > 200 {
            return Err(dead());
        }
        check_password(password)?;
        let mut tx = self.inner.store.begin().await?;
        let Some(c) = tx.find_challenge(&hash_token(token)).await? else {
            return Err(dead());
        };
        let now = self.now_ms();
        if c.purpose != PURPOSE || c.expires_at <= now {
            return Err(dead());
        }
        self.store_password(tx.as_mut(), c.user_id, password)
            .await?;
        tx.delete_challenge(c.id, now).await?;
        let ev = Event::anonymous(meta, "user.invite_accept")
            .actor(format!("user:{}", c.user_id))
            .subject(Some(c.user_id));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(())
    }
}
