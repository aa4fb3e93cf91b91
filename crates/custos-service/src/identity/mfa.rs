//! Second factors: authenticator apps (RFC 6238 TOTP), WebAuthn passkeys and
//! security keys, and single-use recovery codes; the second step of sign-in,
//! step-up before sensitive actions, and enrolment.
//!
//! TOTP secrets are sealed in the user's record (category credentials); each
//! code is accepted once (the last accepted time step is kept, older or equal
//! steps are replays, refused and recorded). Recovery codes are stored as
//! SHA-256 hashes. Any change of factors ends every session of the user; the
//! caller continues in a new one.

use crate::identity::sessions::{LoginResult, MFA_ATTEMPTS};
use crate::ledger::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, Via};
use custos_crypto::webauthn::{self, CredentialKey, RelyingParty};
use custos_crypto::{hash_token, sha256, totp};
use custos_domain::{Entity, Role, Value};
use custos_store::{ChallengeRow, CredentialRow, Tx, UserAuthRow};
use secrecy::SecretString;
use std::collections::BTreeMap;
use uuid::Uuid;

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;
const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;

/// A started authenticator-app enrolment: show the QR code of `otpauth_uri`
/// (or the secret, to type in), then confirm with a code.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, as apps take it.
    pub secret: SecretString,
    /// The `otpauth://` URI.
    pub otpauth_uri: SecretString,
}

/// A confirmed second factor.
#[derive(Debug)]
pub struct TotpConfirmed {
    /// Ten new single-use recovery codes, shown once.
    pub recovery_codes: Vec<String>,
    /// The caller's new session (every other one ended), if they used one.
    pub session: Option<LoginResult>,
}

/// A registered passkey or security key, as listed to its owner.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyView {
    /// Id (to remove it).
    pub id: Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// Registered (RFC 3339).
    pub created_at: String,
    /// Last used (RFC 3339).
    pub last_used_at: Option<String>,
}

enum FactorCheck {
    Ok(&'static str),
    Replay,
    Wrong,
}

fn recovery_hash(user: Uuid, code: &str) -> [u8; 32] {
    sha256(
        format!(
            "custos/recovery/v1:{user}:{}",
            totp::normalize_recovery_code(code)
        )
        .as_bytes(),
    )
}

fn ceremony_hash(purpose: &str, id: Uuid) -> [u8; 32] {
    hash_token(&format!("custos/ceremony/{purpose}:{id}"))
}

fn bad_response() -> ServiceError {
    ServiceError::invalid("credential", "is not a valid WebAuthn response")
}

/// One credential in an allow or exclude list of WebAuthn options.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialDescriptor {
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The credential id (base64url).
    pub id: String,
}

impl CredentialDescriptor {
    fn of(credential_id: &[u8]) -> Self {
        CredentialDescriptor {
            kind: "public-key",
            id: webauthn::b64url(credential_id),
        }
    }
}

/// Options for `navigator.credentials.get` (WebAuthn `PublicKeyCredentialRequestOptions`,
/// in the JSON form the browser script decodes).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AssertionOptions {
    /// The options proper.
    #[serde(rename = "publicKey")]
    pub public_key: RequestOptions,
}

/// The request options of an assertion.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptions {
    /// The credentials that may answer.
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// A fresh random challenge (base64url).
    pub challenge: String,
    /// The relying party id (the host name users sign in at).
    pub rp_id: String,
    /// Milliseconds the browser waits.
    pub timeout: u32,
    /// `preferred`: a PIN or biometric check where the authenticator has one.
    pub user_verification: &'static str,
}

/// Options for `navigator.credentials.create` (WebAuthn
/// `PublicKeyCredentialCreationOptions`, in JSON form).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreationOptions {
    /// The options proper.
    #[serde(rename = "publicKey")]
    pub public_key: CreationPublicKey,
}

/// The creation options of a registration.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationPublicKey {
    /// `none`: Custos does not ask who made the authenticator.
    pub attestation: &'static str,
    /// Resident key and user verification preferences.
    pub authenticator_selection: AuthenticatorSelection,
    /// A fresh random challenge (base64url).
    pub challenge: String,
    /// The credentials the account already has, not to register twice.
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// The signature algorithms accepted, in order of preference.
    pub pub_key_cred_params: Vec<CredentialParameter>,
    /// The relying party.
    pub rp: RelyingPartyInfo,
    /// Milliseconds the browser waits.
    pub timeout: u32,
    /// The account.
    pub user: UserEntity,
}

/// WebAuthn `AuthenticatorSelectionCriteria`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `preferred`: a passkey kept on the authenticator where it can.
    pub resident_key: &'static str,
    /// `preferred`.
    pub user_verification: &'static str,
}

/// One accepted algorithm (`PublicKeyCredentialParameters`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialParameter {
    /// COSE algorithm number.
    pub alg: i64,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The relying party of a registration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelyingPartyInfo {
    /// Its id (host name).
    pub id: String,
    /// Its name as authenticators show it.
    pub name: &'static str,
}

/// The account a passkey is registered for.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// The name authenticators show.
    pub display_name: String,
    /// The user id (base64url of its UUID bytes).
    pub id: String,
    /// The email address.
    pub name: String,
}

/// How long the browser waits for an authenticator (milliseconds).
const CEREMONY_TIMEOUT_MS: u32 = 120_000;

fn b64_field(v: &serde_json::Value, path: &[&str]) -> Result<Vec<u8>> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p).ok_or_else(bad_response)?;
    }
    let s = cur.as_str().ok_or_else(bad_response)?;
    if s.len() > 16_384 {
        return Err(bad_response());
    }
    webauthn::b64url_decode(s).map_err(|_| bad_response())
}

impl Custos {
    fn relying_party(&self) -> RelyingParty {
        RelyingParty {
            id: self.inner.config.webauthn_rp_id.clone(),
            origins: self.inner.config.webauthn_origins.clone(),
        }
    }

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    async fn totp_secret(
        &self,
        rec: &custos_domain::Record,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        match rec.get("totp_secret").as_text() {
            Some(s) => Ok(Some(totp::decode_secret(s)?)),
            None => Ok(None),
        }
    }

    /// Checks a typed code: a TOTP code (accepted once) or a recovery code
    /// (consumed). Updates `auth` in place; the caller stores it.
    async fn check_code(
        &self,
        rec: &custos_domain::Record,
        auth: &mut UserAuthRow,
        code: &str,
    ) -> Result<FactorCheck> {
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == totp::DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()) {
            let Some(secret) = self.totp_secret(rec).await? else {
                return Ok(FactorCheck::Wrong);
            };
            return Ok(match totp::verify(&secret, &digits, self.now_secs()) {
                Some(step) if auth.totp_last_step.is_some_and(|last| step <= last) => {
                    FactorCheck::Replay
                }
                Some(step) => {
                    auth.totp_last_step = Some(step);
                    FactorCheck::Ok("totp")
                }
                None => FactorCheck::Wrong,
            });
        }
        let h = recovery_hash(rec.id, code);
        let pos = auth
            .recovery_codes
            .chunks(32)
            .position(|c| custos_crypto::constant_time_eq(c, &h));
        Ok(match pos {
            Some(i) => {
                auth.recovery_codes.drain(i * 32..i * 32 + 32);
                FactorCheck::Ok("recovery_code")
            }
            None => FactorCheck::Wrong,
        })
    }

    /// The pending sign-in of an `mfa_token`, if it is live.
    async fn signin_ceremony(&self, tx: &mut dyn Tx, mfa_token: &str) -> Result<ChallengeRow> {
        if mfa_token.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        match tx.find_challenge(&hash_token(mfa_token)).await? {
            Some(c)
                if c.purpose == "signin"
                    && c.expires_at > self.now_ms()
                    && c.attempts < MFA_ATTEMPTS =>
            {
                Ok(c)
            }
            _ => Err(ServiceError::Unauthenticated),
        }
    }

    async fn live_user(&self, tx: &mut dyn Tx, id: Uuid) -> Result<custos_domain::Record> {
        let rec = self
            .user_record(tx, id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        if matches!(rec.get("disabled"), Value::Bool(true)) {
            return Err(ServiceError::Unauthenticated);
        }
        Ok(rec)
    }

    /// Records a failed second factor of a pending sign-in (it counts against
    /// the account's throttling like a wrong password) and ends the pending
    /// sign-in after too many.
    async fn mfa_failed(
        &self,
        mut tx: Box<dyn Tx>,
        meta: &RequestMeta,
        c: &ChallengeRow,
        rec: &custos_domain::Record,
        reason: &str,
    ) -> ServiceError {
        let r = async {
            let email = rec.get("email").as_text().unwrap_or_default().to_string();
            let acct = self
                .inner
                .keys
                .throttle_key("account", &custos_crypto::normalize::email(&email));
            let addr = meta
                .client
                .as_deref()
                .map(|a| self.inner.keys.throttle_key("address", a));
            self.record_failure(tx.as_mut(), &acct, addr.as_deref(), Some(rec.id))
                .await?;
            if c.attempts + 1 >= MFA_ATTEMPTS {
                tx.delete_challenge(c.id, self.now_ms()).await?;
            } else {
                tx.update_challenge(c.id, c.attempts + 1, c.challenge.as_deref())
                    .await?;
            }
            let ev = Event::anonymous(meta, "auth.mfa")
                .actor(format!("user:{}", rec.id))
                .subject(Some(rec.id))
                .outcome("failed")
                .detail(format!("reason={reason}"));
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await.map_err(ServiceError::from)
        };
        match r.await {
            Ok(()) => ServiceError::Unauthenticated,
            Err(e) => e,
        }
    }

    /// The second step of sign-in with a code from the authenticator app or a
    /// recovery code. A code already used is refused (and recorded as a replay).
    pub async fn complete_mfa(
        &self,
        meta: &RequestMeta,
        mfa_token: &str,
        code: &str,
    ) -> Result<LoginResult> {
        let mut tx = self.inner.store.begin().await?;
        let c = self.signin_ceremony(tx.as_mut(), mfa_token).await?;
        let rec = self.live_user(tx.as_mut(), c.user_id).await?;
        let mut auth = self.user_auth(tx.as_mut(), rec.id).await?;
        match self.check_code(&rec, &mut auth, code).await? {
            FactorCheck::Ok(method) => {
                tx.put_user_auth(&auth).await?;
                tx.delete_challenge(c.id, self.now_ms()).await?;
                let res = self
                    .open_session(tx.as_mut(), meta, &rec, "full", Some(self.now_ms()), method)
                    .await?;
                tx.commit().await?;
                Ok(res)
            }
            FactorCheck::Replay => Err(self.mfa_failed(tx, meta, &c, &rec, "replay").await),
            FactorCheck::Wrong => Err(self.mfa_failed(tx, meta, &c, &rec, "code").await),
        }
    }

    /// Options for `navigator.credentials.get` in the second step of sign-in.
    pub async fn webauthn_signin_options(&self, mfa_token: &str) -> Result<AssertionOptions> {
        let mut tx = self.inner.store.begin().await?;
        let c = self.signin_ceremony(tx.as_mut(), mfa_token).await?;
        let options = self.assertion_options(tx.as_mut(), &c).await?;
        tx.commit().await?;
        Ok(options)
    }

    async fn assertion_options(
        &self,
        tx: &mut dyn Tx,
        c: &ChallengeRow,
    ) -> Result<AssertionOptions> {
        let creds = tx.list_credentials(c.user_id).await?;
        if creds.is_empty() {
            return Err(ServiceError::Conflict(
                "this account has no passkey or security key".into(),
            ));
        }
        let challenge: [u8; 32] = custos_crypto::random_bytes()?;
        tx.update_challenge(c.id, c.attempts, Some(&challenge))
            .await?;
        Ok(AssertionOptions {
            public_key: RequestOptions {
                allow_credentials: creds
                    .iter()
                    .map(|k| CredentialDescriptor::of(&k.credential_id))
                    .collect(),
                challenge: webauthn::b64url(&challenge),
                rp_id: self.inner.config.webauthn_rp_id.clone(),
                timeout: CEREMONY_TIMEOUT_MS,
                user_verification: "preferred",
            },
        })
    }

    /// Verifies an assertion for the user of `c` against its challenge;
    /// returns the credential used.
    async fn check_assertion(
        &self,
        tx: &mut dyn Tx,
        c: &ChallengeRow,
        credential: &serde_json::Value,
    ) -> Result<Option<CredentialRow>> {
        let Some(challenge) = c.challenge.as_deref() else {
            return Ok(None);
        };
        let raw_id = b64_field(credential, &["rawId"])?;
        let client_data = b64_field(credential, &["response", "clientDataJSON"])?;
        let auth_data = b64_field(credential, &["response", "authenticatorData"])?;
        let sig = b64_field(credential, &["response", "signature"])?;
        let Some(cred) = tx
            .list_credentials(c.user_id)
            .await?
            .into_iter()
            .find(|k| k.credential_id == raw_id)
        else {
            return Ok(None);
        };
        let key = CredentialKey::from_bytes(&cred.public_key)?;
        match webauthn::verify_assertion(
            &self.relying_party(),
            challenge,
            &key,
            u32::try_from(cred.sign_count).unwrap_or(0),
            &client_data,
            &auth_data,
            &sig,
            false,
        ) {
            Ok(count) => {
                tx.touch_credential(cred.id, i64::from(count), self.now_ms())
                    .await?;
                Ok(Some(cred))
            }
            Err(_) => Ok(None),
        }
    }

    /// The second step of sign-in with a passkey or security key.
    pub async fn complete_mfa_webauthn(
        &self,
        meta: &RequestMeta,
        mfa_token: &str,
        credential: &serde_json::Value,
    ) -> Result<LoginResult> {
        let mut tx = self.inner.store.begin().await?;
        let c = self.signin_ceremony(tx.as_mut(), mfa_token).await?;
        let rec = self.live_user(tx.as_mut(), c.user_id).await?;
        match self.check_assertion(tx.as_mut(), &c, credential).await? {
            Some(_) => {
                tx.delete_challenge(c.id, self.now_ms()).await?;
                let res = self
                    .open_session(
                        tx.as_mut(),
                        meta,
                        &rec,
                        "full",
                        Some(self.now_ms()),
                        "webauthn",
                    )
                    .await?;
                tx.commit().await?;
                Ok(res)
            }
            None => Err(self.mfa_failed(tx, meta, &c, &rec, "webauthn").await),
        }
    }

    /// Step-up: proves the second factor again in the current session (a code
    /// from the app, a recovery code, or, for accounts without a second factor
    /// when the policy allows that, the password).
    pub async fn step_up(&self, p: &Principal, code: &str) -> Result<()> {
        let Via::Session(sid) = p.via else {
            return Err(ServiceError::Conflict(
                "step-up is for sessions; API tokens carry their scopes".into(),
            ));
        };
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        let mut auth = self.user_auth(tx.as_mut(), p.user_id).await?;
        let has_factor = !self.mfa_methods(tx.as_mut(), &rec).await?.is_empty();
        let outcome = if has_factor {
            self.check_code(&rec, &mut auth, code).await?
        } else {
            let phc = rec.get("password_hash").as_text().unwrap_or_default();
            if custos_crypto::verify_password(phc, &SecretString::from(code.to_string())) {
                FactorCheck::Ok("password")
            } else {
                FactorCheck::Wrong
            }
        };
        match outcome {
            FactorCheck::Ok(method) => {
                tx.put_user_auth(&auth).await?;
                tx.set_session_verified(sid, self.now_ms(), "full").await?;
                let ev = Event::new(p, "auth.step_up")
                    .subject(Some(p.user_id))
                    .detail(format!("method={method}"));
                self.append(tx.as_mut(), ev).await?;
                tx.commit().await?;
                Ok(())
            }
            other => {
                let reason = if matches!(other, FactorCheck::Replay) {
                    "replay"
                } else {
                    "code"
                };
                drop(tx);
                let ev = Event::new(p, "auth.step_up")
                    .subject(Some(p.user_id))
                    .outcome("failed")
                    .detail(format!("reason={reason}"));
                self.append_alone(ev).await?;
                Err(ServiceError::invalid(
                    "code",
                    "is not right (or was already used)",
                ))
            }
        }
    }

    /// Options for `navigator.credentials.get` to step up with a passkey.
    pub async fn webauthn_step_up_options(&self, p: &Principal) -> Result<AssertionOptions> {
        let Via::Session(sid) = p.via else {
            return Err(ServiceError::Conflict("step-up is for sessions".into()));
        };
        let mut tx = self.inner.store.begin().await?;
        let c = self
            .fresh_ceremony(tx.as_mut(), "stepup", sid, p.user_id)
            .await?;
        let options = self.assertion_options(tx.as_mut(), &c).await?;
        tx.commit().await?;
        Ok(options)
    }

    /// Step-up with a passkey.
    pub async fn step_up_webauthn(
        &self,
        p: &Principal,
        credential: &serde_json::Value,
    ) -> Result<()> {
        let Via::Session(sid) = p.via else {
            return Err(ServiceError::Conflict("step-up is for sessions".into()));
        };
        let mut tx = self.inner.store.begin().await?;
        let c = tx
            .find_challenge(&ceremony_hash("stepup", sid))
            .await?
            .filter(|c| c.expires_at > self.now_ms())
            .ok_or_else(|| ServiceError::Conflict("start the step-up again".into()))?;
        if self
            .check_assertion(tx.as_mut(), &c, credential)
            .await?
            .is_none()
        {
            drop(tx);
            let ev = Event::new(p, "auth.step_up")
                .subject(Some(p.user_id))
                .outcome("failed")
                .detail("reason=webauthn");
            self.append_alone(ev).await?;
            return Err(bad_response());
        }
        tx.delete_challenge(c.id, self.now_ms()).await?;
        tx.set_session_verified(sid, self.now_ms(), "full").await?;
        let ev = Event::new(p, "auth.step_up")
            .subject(Some(p.user_id))
            .detail("method=webauthn");
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new ceremony of `purpose` for `owner` (replacing an older one).
    async fn fresh_ceremony(
        &self,
        tx: &mut dyn Tx,
        purpose: &str,
        owner: Uuid,
        user: Uuid,
    ) -> Result<ChallengeRow> {
        let hash = ceremony_hash(purpose, owner);
        if let Some(old) = tx.find_challenge(&hash).await? {
            tx.delete_challenge(old.id, self.now_ms()).await?;
        }
        let now = self.now_ms();
        let c = ChallengeRow {
            id: Uuid::now_v7(),
            token_hash: hash.to_vec(),
            user_id: user,
            purpose: purpose.to_string(),
            session_id: None,
            challenge: None,
            attempts: 0,
            created_at: now,
            expires_at: now + CEREMONY_TTL_MS,
        };
        tx.insert_challenge(&c).await?;
        Ok(c)
    }

    /// Adding a factor when one exists needs step-up (a stolen session must not
    /// add its own); the first one does not.
    async fn guard_new_factor(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        rec: &custos_domain::Record,
        action: &str,
    ) -> Result<()> {
        if !self.mfa_methods(tx, rec).await?.is_empty() {
            self.require_step_up(p, action).await?;
        }
        Ok(())
    }

    /// Starts enrolling an authenticator app: a new secret, kept (sealed)
    /// until a code from it is confirmed.
    pub async fn begin_totp(&self, p: &Principal) -> Result<TotpEnrolment> {
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        self.guard_new_factor(tx.as_mut(), p, &rec, "mfa.totp.begin")
            .await?;
        let secret = totp::new_secret()?;
        let c = self
            .fresh_ceremony(tx.as_mut(), "totp", p.user_id, p.user_id)
            .await?;
        let sealed = self
            .seal_for_user(tx.as_mut(), p.user_id, "totp_pending", c.id, &secret)
            .await?;
        tx.update_challenge(c.id, 0, Some(&sealed)).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "mfa.totp.begin").subject(Some(p.user_id)),
        )
        .await?;
        tx.commit().await?;
        let account = rec.get("email").as_text().unwrap_or_default().to_string();
        Ok(TotpEnrolment {
            secret: SecretString::from(totp::base32(&secret)),
            otpauth_uri: SecretString::from(totp::otpauth_uri(&secret, "Custos", &account)),
        })
    }

    /// Confirms the authenticator app with a code from it: the secret is
    /// sealed into the user's record, ten recovery codes are made, every
    /// session of the user ends and the caller gets a new, full one.
    pub async fn confirm_totp(
        &self,
        p: &Principal,
        meta: &RequestMeta,
        code: &str,
    ) -> Result<TotpConfirmed> {
        let mut tx = self.inner.store.begin().await?;
        self.live_user(tx.as_mut(), p.user_id).await?;
        let c = tx
            .find_challenge(&ceremony_hash("totp", p.user_id))
            .await?
            .filter(|c| c.expires_at > self.now_ms())
            .ok_or_else(|| {
                ServiceError::Conflict("start the authenticator set-up first (or again)".into())
            })?;
        let sealed = c.challenge.clone().unwrap_or_default();
        let secret = zeroize::Zeroizing::new(
            self.open_raw_for_user(tx.as_mut(), p.user_id, c.id, &sealed)
                .await?,
        );
        let Some(step) = totp::verify(&secret, code, self.now_secs()) else {
            drop(tx);
            let ev = Event::new(p, "mfa.totp.enrol")
                .subject(Some(p.user_id))
                .outcome("failed")
                .detail("reason=code");
            self.append_alone(ev).await?;
            return Err(ServiceError::invalid(
                "code",
                "is not the code your authenticator app shows now",
            ));
        };
        tx.delete_challenge(c.id, self.now_ms()).await?;
        let mut v = BTreeMap::new();
        v.insert(
            "totp_secret",
            Value::Text(totp::encode_secret(&secret).to_string()),
        );
        v.insert("updated_at", Value::Timestamp(self.now()));
        self.write_system_fields(tx.as_mut(), Entity::User, p.user_id, Some(p.user_id), &v)
            .await?;
        let mut auth = self.user_auth(tx.as_mut(), p.user_id).await?;
        auth.totp_last_step = Some(step);
        let codes = self.new_recovery_codes(&mut auth)?;
        tx.put_user_auth(&auth).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "mfa.totp.enrol").subject(Some(p.user_id)),
        )
        .await?;
        let session = self
            .after_factor_change(tx.as_mut(), p, meta, "mfa_change")
            .await?;
        tx.commit().await?;
        Ok(TotpConfirmed {
            recovery_codes: codes,
            session,
        })
    }

    async fn open_raw_for_user(
        &self,
        tx: &mut dyn Tx,
        user: Uuid,
        record: Uuid,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let keys = self.inner.keys.subject_keys(tx, user, "user").await?;
        let k = keys.get(custos_crypto::sealed_key_version(sealed)?)?;
        let (u, r) = (user.to_string(), record.to_string());
        let ctx = custos_crypto::SealContext {
            tenant: self.inner.keys.tenant(),
            entity: "user",
            field: "totp_pending",
            record_id: &r,
            subject_id: &u,
        };
        Ok(custos_crypto::open(k, &ctx, sealed)?.to_vec())
    }

    fn new_recovery_codes(&self, auth: &mut UserAuthRow) -> Result<Vec<String>> {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES * 32);
        for _ in 0..RECOVERY_CODES {
            let c = totp::new_recovery_code()?;
            hashes.extend_from_slice(&recovery_hash(auth.user_id, &c));
            codes.push(c);
        }
        auth.recovery_codes = hashes;
        Ok(codes)
    }

    /// Every session of the caller ends (their factors changed); a session
    /// caller continues in a new, full one.
    async fn after_factor_change(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        meta: &RequestMeta,
        why: &str,
    ) -> Result<Option<LoginResult>> {
        self.end_sessions(tx, p, p.user_id, why).await?;
        match p.via {
            Via::Session(_) => {
                let rec = self.live_user(tx, p.user_id).await?;
                let res = self
                    .open_session(tx, meta, &rec, "full", Some(self.now_ms()), why)
                    .await?;
                Ok(Some(res))
            }
            _ => Ok(None),
        }
    }

    /// New recovery codes (the old ones stop working), after step-up.
    pub async fn regenerate_recovery_codes(&self, p: &Principal) -> Result<Vec<String>> {
        self.require_step_up(p, "mfa.recovery_codes").await?;
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        if self.mfa_methods(tx.as_mut(), &rec).await?.is_empty() {
            return Err(ServiceError::Conflict(
                "set up an authenticator app or a passkey first".into(),
            ));
        }
        let mut auth = self.user_auth(tx.as_mut(), p.user_id).await?;
        let codes = self.new_recovery_codes(&mut auth)?;
        tx.put_user_auth(&auth).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "mfa.recovery_codes").subject(Some(p.user_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// How many unused recovery codes the caller has.
    pub async fn recovery_codes_left(&self, p: &Principal) -> Result<usize> {
        let mut tx = self.inner.store.begin().await?;
        Ok(self
            .user_auth(tx.as_mut(), p.user_id)
            .await?
            .recovery_codes
            .len()
            / 32)
    }

    /// Options for `navigator.credentials.create` to register a passkey.
    pub async fn webauthn_register_options(&self, p: &Principal) -> Result<CreationOptions> {
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        self.guard_new_factor(tx.as_mut(), p, &rec, "mfa.webauthn.begin")
            .await?;
        let c = self
            .fresh_ceremony(tx.as_mut(), "register", p.user_id, p.user_id)
            .await?;
        let challenge: [u8; 32] = custos_crypto::random_bytes()?;
        tx.update_challenge(c.id, 0, Some(&challenge)).await?;
        let exclude: Vec<_> = tx
            .list_credentials(p.user_id)
            .await?
            .iter()
            .map(|k| CredentialDescriptor::of(&k.credential_id))
            .collect();
        tx.commit().await?;
        let email = rec.get("email").as_text().unwrap_or_default().to_string();
        let display = rec
            .get("display_name")
            .as_text()
            .map(str::to_string)
            .unwrap_or_else(|| email.clone());
        Ok(CreationOptions {
            public_key: CreationPublicKey {
                attestation: "none",
                authenticator_selection: AuthenticatorSelection {
                    resident_key: "preferred",
                    user_verification: "preferred",
                },
                challenge: webauthn::b64url(&challenge),
                exclude_credentials: exclude,
                pub_key_cred_params: [webauthn::ALG_ES256, webauthn::ALG_EDDSA]
                    .into_iter()
                    .map(|alg| CredentialParameter {
                        alg,
                        kind: "public-key",
                    })
                    .collect(),
                rp: RelyingPartyInfo {
                    id: self.inner.config.webauthn_rp_id.clone(),
                    name: "Custos",
                },
                timeout: CEREMONY_TIMEOUT_MS,
                user: UserEntity {
                    display_name: display,
                    id: webauthn::b64url(p.user_id.as_bytes()),
                    name: email,
                },
            },
        })
    }

    /// Registers a passkey from a `navigator.credentials.create` response.
    /// Like any factor change it ends the user's sessions and gives the caller
    /// a new one; the first factor also brings recovery codes.
    pub async fn webauthn_register(
        &self,
        p: &Principal,
        meta: &RequestMeta,
        name: &str,
        credential: &serde_json::Value,
    ) -> Result<(PasskeyView, TotpConfirmed)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be 1 to 60 characters on one line",
            ));
        }
        let client_data = b64_field(credential, &["response", "clientDataJSON"])?;
        let attestation = b64_field(credential, &["response", "attestationObject"])?;
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        let had_factor = !self.mfa_methods(tx.as_mut(), &rec).await?.is_empty();
        let c = tx
            .find_challenge(&ceremony_hash("register", p.user_id))
            .await?
            .filter(|c| c.expires_at > self.now_ms())
            .ok_or_else(|| ServiceError::Conflict("start the passkey set-up again".into()))?;
        let challenge = c.challenge.clone().unwrap_or_default();
        let reg = match webauthn::verify_registration(
            &self.relying_party(),
            &challenge,
            &client_data,
            &attestation,
            false,
        ) {
            Ok(r) => r,
            Err(e) => {
                drop(tx);
                let ev = Event::new(p, "mfa.webauthn.register")
                    .subject(Some(p.user_id))
                    .outcome("failed")
                    .detail(format!("reason={}", e.to_string().replace(' ', "_")));
                self.append_alone(ev).await?;
                return Err(bad_response());
            }
        };
        tx.delete_challenge(c.id, self.now_ms()).await?;
        let id = Uuid::now_v7();
        let now = self.now_ms();
        let sealed_name = self
            .seal_for_user(tx.as_mut(), p.user_id, "passkey_name", id, name.as_bytes())
            .await?;
        tx.insert_credential(&CredentialRow {
            id,
            user_id: p.user_id,
            credential_id: reg.credential_id,
            public_key: reg.key.to_bytes(),
            sign_count: i64::from(reg.sign_count),
            name: Some(sealed_name),
            created_at: now,
            last_used_at: None,
        })
        .await?;
        let mut codes = Vec::new();
        if !had_factor {
            let mut auth = self.user_auth(tx.as_mut(), p.user_id).await?;
            codes = self.new_recovery_codes(&mut auth)?;
            tx.put_user_auth(&auth).await?;
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "mfa.webauthn.register")
                .subject(Some(p.user_id))
                .detail(format!("passkey={id}")),
        )
        .await?;
        let session = self
            .after_factor_change(tx.as_mut(), p, meta, "mfa_change")
            .await?;
        tx.commit().await?;
        Ok((
            PasskeyView {
                id,
                name: name.to_string(),
                created_at: crate::identity::ms_text(now),
                last_used_at: None,
            },
            TotpConfirmed {
                recovery_codes: codes,
                session,
            },
        ))
    }

    /// The caller's passkeys and security keys.
    pub async fn list_passkeys(&self, p: &Principal) -> Result<Vec<PasskeyView>> {
        let mut tx = self.inner.store.begin().await?;
        let mut out = Vec::new();
        for k in tx.list_credentials(p.user_id).await? {
            let name = match &k.name {
                Some(b) => {
                    self.open_for_user(tx.as_mut(), p.user_id, "passkey_name", k.id, b)
                        .await
                }
                None => None,
            };
            out.push(PasskeyView {
                id: k.id,
                name: name.unwrap_or_else(|| "Passkey".into()),
                created_at: crate::identity::ms_text(k.created_at),
                last_used_at: k.last_used_at.map(crate::identity::ms_text),
            });
        }
        Ok(out)
    }

    /// Removes a second factor of the caller (`totp` or a passkey id), after
    /// step-up. With the MFA policy on, the last one cannot be removed.
    pub async fn remove_factor(
        &self,
        p: &Principal,
        meta: &RequestMeta,
        which: Option<Uuid>,
    ) -> Result<Option<LoginResult>> {
        self.require_step_up(p, "mfa.remove").await?;
        let mut tx = self.inner.store.begin().await?;
        let rec = self.live_user(tx.as_mut(), p.user_id).await?;
        let creds = tx.list_credentials(p.user_id).await?;
        let has_totp = !rec.get("totp_secret").is_null();
        let left = match which {
            Some(id) => {
                if !creds.iter().any(|k| k.id == id) {
                    return Err(ServiceError::NotFound("passkey"));
                }
                creds.len() - 1 + usize::from(has_totp)
            }
            None if has_totp => creds.len(),
            None => return Err(ServiceError::NotFound("authenticator app")),
        };
        if left == 0 && self.mfa_required_in(tx.as_mut()).await? {
            return Err(ServiceError::Conflict(
                "every account needs a second factor: add another before removing this one".into(),
            ));
        }
        match which {
            Some(id) => {
                tx.delete_credentials(p.user_id, Some(id)).await?;
            }
            None => {
                let mut v = BTreeMap::new();
                v.insert("totp_secret", Value::Null);
                v.insert("updated_at", Value::Timestamp(self.now()));
                self.write_system_fields(tx.as_mut(), Entity::User, p.user_id, Some(p.user_id), &v)
                    .await?;
            }
        }
        if left == 0 {
            let mut auth = self.user_auth(tx.as_mut(), p.user_id).await?;
            auth.recovery_codes.clear();
            tx.put_user_auth(&auth).await?;
        }
        let what = which.map_or("totp".to_string(), |id| format!("passkey={id}"));
        self.append(
            tx.as_mut(),
            Event::new(p, "mfa.remove")
                .subject(Some(p.user_id))
                .detail(what),
        )
        .await?;
        let session = self
            .after_factor_change(tx.as_mut(), p, meta, "mfa_change")
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Forces a user to enrol their second factors again (administrators,
    /// after step-up): their app secret, passkeys and recovery codes are
    /// deleted and their sessions end.
    pub async fn reset_mfa(&self, p: &Principal, user: Uuid) -> Result<()> {
        if p.role != Role::Admin {
            return Err(self
                .refuse(
                    p,
                    "user.reset_mfa",
                    "only administrators may do this".into(),
                )
                .await);
        }
        self.require_step_up(p, "user.reset_mfa").await?;
        let mut tx = self.inner.store.begin().await?;
        if tx.get_record(Entity::User, user).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        let mut v = BTreeMap::new();
        v.insert("totp_secret", Value::Null);
        v.insert("updated_at", Value::Timestamp(self.now()));
        self.write_system_fields(tx.as_mut(), Entity::User, user, Some(user), &v)
            .await?;
        tx.delete_credentials(user, None).await?;
        let mut auth = self.user_auth(tx.as_mut(), user).await?;
        auth.recovery_codes.clear();
        auth.totp_last_step = None;
        tx.put_user_auth(&auth).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "user.reset_mfa").subject(Some(user)),
        )
        .await?;
        self.end_sessions(tx.as_mut(), p, user, "mfa_reset").await?;
        tx.commit().await?;
        Ok(())
    }
}
