//! Identity on a manual clock: brute-force throttling, TOTP enrolment and
//! replay, the MFA policy (enrolment sessions), step-up, and sessions that
//! expire, are revoked, or predate a password change.

use crate::common::*;
use custos_crypto::totp;
use custos_domain::{Entity, Role};
use custos_service::{Config, Principal, RequestMeta, ServiceError, SignIn, Throttle};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

const EMAIL: &str = "sam@custos.test";

fn meta(addr: &str) -> RequestMeta {
    RequestMeta {
        client: Some(addr.to_string()),
        ..Default::default()
    }
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

async fn env_with(mfa: bool) -> TestResult<Env> {
    let store = custos_testkit::test_store().await;
    let config = Config {
        mfa_required: mfa,
        ..Config::default()
    };
    let env = Env::with_config(store, config).await?;
    env.custos
        .create_user(&env.admin, EMAIL, Role::Sales, &pw(PASSWORD), None)
        .await?;
    Ok(env)
}

fn now_secs(env: &Env) -> i64 {
    custos_domain::value::to_unix_ms(env.custos.clock().now()) / 1000
}

/// Enrols an authenticator app for a freshly signed-in user (MFA policy on);
/// returns the secret and the full session principal.
async fn enrol_totp(env: &Env) -> TestResult<(Vec<u8>, Principal)> {
    let SignIn::Session(s) = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected an enrolment session".into());
    };
    assert!(s.enrol_only);
    let (p, enrol) = env
        .custos
        .authenticate_for_enrolment(s.token.expose_secret(), &meta("10.0.0.1"))
        .await?;
    assert!(enrol);
    let e = env.custos.begin_totp(&p).await?;
    let secret = totp::from_base32(e.secret.expose_secret())?.to_vec();
    assert!(
        e.otpauth_uri
            .expose_secret()
            .starts_with("otpauth://totp/Custos:")
    );
    let code = totp::code_at(&secret, now_secs(env));
    let done = env
        .custos
        .confirm_totp(&p, &meta("10.0.0.1"), &code)
        .await?;
    assert_eq!(done.recovery_codes.len(), 10);
    // The enrolment session ended with the change; a full one replaces it.
    let r = env
        .custos
        .authenticate_for_enrolment(s.token.expose_secret(), &meta("10.0.0.1"))
        .await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    let session = done.session.ok_or("a new session")?;
    assert!(!session.enrol_only);
    let p = env
        .custos
        .authenticate(session.token.expose_secret(), &meta("10.0.0.1"))
        .await?;
    Ok((secret, p))
}

#[tokio::test]
async fn the_101st_wrong_password_in_an_hour_is_refused_unchecked_and_the_owner_gets_back_in()
-> TestResult {
    let env = env_with(false).await?;
    let start = env.ledger_size().await?;
    let mut checked = 0;
    // Attackers from many addresses, each waiting out the account's back-off.
    for i in 0..Throttle::ACCOUNT_PER_HOUR {
        env.clock
            .advance(Duration::from_secs(Throttle::MAX_BACKOFF_SECS as u64 + 1));
        let r = env
            .custos
            .login(
                &meta(&format!("192.0.2.{}", i % 250)),
                EMAIL,
                &pw("wrong password 0000"),
            )
            .await;
        assert!(
            matches!(r, Err(ServiceError::Unauthenticated)),
            "attempt {i}: {r:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 100);
    let elapsed = 100 * (Throttle::MAX_BACKOFF_SECS + 1);
    assert!(elapsed < 3600, "all within one hour ({elapsed} s)");
    env.clock
        .advance(Duration::from_secs(Throttle::MAX_BACKOFF_SECS as u64 + 1));
    // The 101st is refused without being checked: even the right password is.
    for guess in ["wrong password 0000", PASSWORD] {
        let r = env
            .custos
            .login(&meta("198.51.100.7"), EMAIL, &pw(guess))
            .await;
        assert!(matches!(r, Err(ServiceError::RateLimited)), "{r:?}");
    }
    // An unknown account is throttled the same way (no enumeration).
    for i in 0..Throttle::FREE_FAILURES {
        let r = env
            .custos
            .login(
                &meta(&format!("203.0.113.{i}")),
                "nobody@custos.test",
                &pw("x"),
            )
            .await;
        assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    }
    let r = env
        .custos
        .login(&meta("203.0.113.99"), "nobody@custos.test", &pw("x"))
        .await;
    assert!(matches!(r, Err(ServiceError::RateLimited)), "{r:?}");
    let events = env.events_since(start).await?;
    let throttled = events
        .iter()
        .filter(|e| e.event.detail.as_deref() == Some("reason=throttled"))
        .count();
    assert_eq!(throttled, 3, "each refusal is audited");
    // After the window slides, the owner signs in and is told.
    env.clock.advance(Duration::from_secs(3600));
    let ok = env
        .custos
        .login(&meta("198.51.100.7"), EMAIL, &pw(PASSWORD))
        .await?;
    assert_eq!(ok.failed_attempts, 100);
    let again = env
        .custos
        .login(&meta("198.51.100.7"), EMAIL, &pw(PASSWORD))
        .await?;
    assert_eq!(
        again.failed_attempts, 0,
        "the count restarts after a sign-in"
    );
    Ok(())
}

#[tokio::test]
async fn back_off_grows_and_a_short_wait_lets_the_owner_in() -> TestResult {
    let env = env_with(false).await?;
    for _ in 0..Throttle::FREE_FAILURES {
        let r = env
            .custos
            .login(&meta("192.0.2.1"), EMAIL, &pw("nope nope nope"))
            .await;
        assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    }
    // Back-off: refused right away, accepted after the wait.
    let r = env
        .custos
        .login(&meta("192.0.2.2"), EMAIL, &pw(PASSWORD))
        .await;
    assert!(matches!(r, Err(ServiceError::RateLimited)), "{r:?}");
    env.clock.advance(Duration::from_secs(2));
    let ok = env
        .custos
        .login(&meta("192.0.2.2"), EMAIL, &pw(PASSWORD))
        .await?;
    assert_eq!(ok.failed_attempts, Throttle::FREE_FAILURES as i64);
    assert_eq!(Throttle::backoff_secs(5, 5, 30), 1);
    assert_eq!(Throttle::backoff_secs(9, 5, 30), 16);
    assert_eq!(Throttle::backoff_secs(60, 5, 30), 30);
    Ok(())
}

#[tokio::test]
async fn totp_codes_sign_in_once_and_replays_and_wrong_codes_are_refused() -> TestResult {
    let env = env_with(true).await?;
    let start = env.ledger_size().await?;
    let (secret, _p) = enrol_totp(&env).await?;
    env.clock.advance(Duration::from_secs(30));
    let SignIn::SecondFactor { mfa_token, methods } = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected a second factor".into());
    };
    assert_eq!(methods, vec!["totp", "recovery_code"]);
    let code = totp::code_at(&secret, now_secs(&env));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = env
        .custos
        .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), wrong)
        .await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    let s = env
        .custos
        .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), &code)
        .await?;
    env.custos
        .authenticate(s.token.expose_secret(), &meta("10.0.0.1"))
        .await?;
    // The token was used up; the same code with a new sign-in is a replay.
    let SignIn::SecondFactor { mfa_token, .. } = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected a second factor".into());
    };
    let r = env
        .custos
        .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), &code)
        .await;
    assert!(
        matches!(r, Err(ServiceError::Unauthenticated)),
        "replay: {r:?}"
    );
    let events = env.events_since(start).await?;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| e.event.action == "auth.mfa")
        .filter_map(|e| e.event.detail.clone())
        .collect();
    assert_eq!(reasons, vec!["reason=code", "reason=replay"]);
    // After five wrong codes the mfa_token is dead, even for the right one.
    env.clock.advance(Duration::from_secs(30));
    for _ in 0..5 {
        let _ = env
            .custos
            .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), wrong)
            .await;
    }
    let code = totp::code_at(&secret, now_secs(&env));
    let r = env
        .custos
        .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), &code)
        .await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn recovery_codes_work_once_and_the_secret_is_sealed() -> TestResult {
    let env = env_with(true).await?;
    let store = env.store.clone();
    let (secret, p) = enrol_totp(&env).await?;
    // Regenerating needs a fresh second factor: the enrolment just gave one.
    let codes = env.custos.regenerate_recovery_codes(&p).await?;
    assert_eq!(codes.len(), 10);
    let SignIn::SecondFactor { mfa_token, .. } = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected a second factor".into());
    };
    env.custos
        .complete_mfa(
            &meta("10.0.0.1"),
            mfa_token.expose_secret(),
            &codes[0].to_uppercase(),
        )
        .await?;
    let SignIn::SecondFactor { mfa_token, .. } = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected a second factor".into());
    };
    let r = env
        .custos
        .complete_mfa(&meta("10.0.0.1"), mfa_token.expose_secret(), &codes[0])
        .await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    // The stored row holds ciphertext, not the secret in any encoding.
    let mut tx = custos_store::Store::begin(store.as_ref()).await?;
    let row = tx
        .get_record(Entity::User, p.user_id)
        .await?
        .ok_or("user")?;
    let custos_store::SqlValue::Blob(b) = row.get("totp_secret") else {
        return Err("totp_secret is not sealed".into());
    };
    for plain in [
        secret.clone(),
        totp::base32(&secret).into_bytes(),
        totp::encode_secret(&secret).as_bytes().to_vec(),
    ] {
        assert!(!contains_bytes(b, &plain));
    }
    Ok(())
}

#[tokio::test]
async fn with_mfa_required_a_new_account_can_only_enrol() -> TestResult {
    let env = env_with(true).await?;
    let SignIn::Session(s) = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected an enrolment session".into());
    };
    assert!(s.enrol_only);
    let r = env
        .custos
        .authenticate(s.token.expose_secret(), &meta("10.0.0.1"))
        .await;
    assert!(matches!(&r, Err(ServiceError::EnrolmentRequired)), "{r:?}");
    // Policy off: the same account signs in fully with a password.
    env.custos.set_mfa_required(&env.admin, false).await?;
    let SignIn::Session(s) = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected a session".into());
    };
    assert!(!s.enrol_only);
    Ok(())
}

#[tokio::test]
async fn sensitive_actions_need_a_recent_second_factor() -> TestResult {
    let env = env_with(true).await?;
    let (secret, p) = enrol_totp(&env).await?;
    env.custos
        .create_api_token(&p, EMAIL, "fresh", None)
        .await?;
    env.clock.advance(Duration::from_secs(11 * 60));
    let r = env.custos.create_api_token(&p, EMAIL, "stale", None).await;
    assert!(matches!(&r, Err(ServiceError::StepUpRequired)), "{r:?}");
    env.custos
        .step_up(&p, &totp::code_at(&secret, now_secs(&env)))
        .await?;
    // The principal carries the time it was resolved with; resolve it again.
    let sessions = env.custos.list_sessions(&p, false).await?;
    assert_eq!(sessions.len(), 1);
    let r = env
        .custos
        .step_up(&p, &totp::code_at(&secret, now_secs(&env)))
        .await;
    assert!(r.is_err(), "the same code cannot step up twice");
    Ok(())
}

#[tokio::test]
async fn expired_revoked_and_pre_password_change_sessions_are_refused() -> TestResult {
    let env = env_with(false).await?;
    let m = meta("10.0.0.1");
    let password = pw(PASSWORD);
    let sign_in = || env.custos.login(&m, EMAIL, &password);
    let cfg = Config::default();

    // Idle timeout.
    let idle = sign_in().await?;
    env.clock.advance(cfg.session_idle + Duration::from_secs(1));
    let r = env
        .custos
        .authenticate(idle.token.expose_secret(), &m)
        .await;
    assert!(
        matches!(r, Err(ServiceError::Unauthenticated)),
        "idle: {r:?}"
    );

    // Absolute lifetime, even when used all the time.
    let busy = sign_in().await?;
    let mut waited = Duration::ZERO;
    while waited < cfg.session_absolute {
        env.clock.advance(Duration::from_secs(20 * 60));
        waited += Duration::from_secs(20 * 60);
        let _ = env
            .custos
            .authenticate(busy.token.expose_secret(), &m)
            .await;
    }
    let r = env
        .custos
        .authenticate(busy.token.expose_secret(), &m)
        .await;
    assert!(
        matches!(r, Err(ServiceError::Unauthenticated)),
        "absolute: {r:?}"
    );

    // Revoked by its user from another session.
    let a = sign_in().await?;
    let b = sign_in().await?;
    let pb = env.custos.authenticate(b.token.expose_secret(), &m).await?;
    env.custos.revoke_session(&pb, a.session_id).await?;
    let r = env.custos.authenticate(a.token.expose_secret(), &m).await;
    assert!(
        matches!(r, Err(ServiceError::Unauthenticated)),
        "revoked: {r:?}"
    );
    let mine = env.custos.list_sessions(&pb, false).await?;
    assert_eq!(
        mine.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![b.session_id]
    );
    assert!(mine[0].current);
    assert_eq!(mine[0].address.as_deref(), Some("10.0.0.1"));

    // A password change ends every session; the changer gets a new one.
    let c = sign_in().await?;
    let pc = env.custos.authenticate(c.token.expose_secret(), &m).await?;
    let r = env
        .custos
        .change_password(
            &pc,
            &m,
            &pw("not my password"),
            &pw("a new long password 456"),
        )
        .await;
    assert!(matches!(r, Err(ServiceError::Invalid(_))), "{r:?}");
    let r = env
        .custos
        .change_password(&pc, &m, &pw(PASSWORD), &pw("password1234"))
        .await;
    assert!(
        matches!(r, Err(ServiceError::Invalid(_))),
        "common password: {r:?}"
    );
    let fresh = env
        .custos
        .change_password(&pc, &m, &pw(PASSWORD), &pw("a new long password 456"))
        .await?
        .ok_or("new session")?;
    for old in [&b, &c] {
        let r = env.custos.authenticate(old.token.expose_secret(), &m).await;
        assert!(
            matches!(r, Err(ServiceError::Unauthenticated)),
            "pre-change: {r:?}"
        );
    }
    env.custos
        .authenticate(fresh.token.expose_secret(), &m)
        .await?;
    let r = env.custos.login(&m, EMAIL, &pw(PASSWORD)).await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    env.custos
        .login(&m, EMAIL, &pw("a new long password 456"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_admin_reset_forces_re_enrolment_and_ends_sessions() -> TestResult {
    let env = env_with(true).await?;
    let (_secret, p) = enrol_totp(&env).await?;
    env.custos.reset_mfa(&env.admin, p.user_id).await?;
    let r = env.custos.me(&p).await;
    assert!(r.is_ok(), "principal objects are not sessions");
    let sessions = env.custos.list_sessions(&env.admin, true).await?;
    assert!(sessions.iter().all(|s| s.user_id != p.user_id));
    let SignIn::Session(s) = env
        .custos
        .sign_in(&meta("10.0.0.1"), EMAIL, &pw(PASSWORD))
        .await?
    else {
        return Err("expected an enrolment session again".into());
    };
    assert!(s.enrol_only);
    Ok(())
}
