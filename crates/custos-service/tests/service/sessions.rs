//! Sign-in, sessions (idle and absolute timeouts, logout) and API tokens.

use crate::common::*;
use custos_domain::Role;
use custos_service::{Config, RequestMeta, ServiceError, Via};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

const EMAIL: &str = "sales@custos.test";

async fn with_user() -> TestResult<(Env, uuid::Uuid)> {
    let env = Env::new().await?;
    let pw = SecretString::from(PASSWORD);
    let u = env
        .custos
        .create_user(&env.admin, EMAIL, Role::Sales, &pw, Some("Sam Sales"))
        .await?;
    assert_eq!(u.email, EMAIL);
    assert_eq!(u.role, "sales");
    assert!(!u.disabled);
    Ok((env, u.id))
}

fn meta() -> RequestMeta {
    RequestMeta::default()
}

fn assert_unauthenticated<T: std::fmt::Debug>(r: Result<T, ServiceError>, what: &str) {
    assert!(
        matches!(r, Err(ServiceError::Unauthenticated)),
        "{what}: expected Unauthenticated, got {r:?}"
    );
}

#[tokio::test]
async fn a_session_authenticates_as_its_user() -> TestResult {
    let (env, user) = with_user().await?;
    let login = env
        .custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    assert_eq!(login.user.id, user);
    let p = env
        .custos
        .authenticate(login.token.expose_secret(), &meta())
        .await?;
    assert_eq!(p.user_id, user);
    assert_eq!(p.role, Role::Sales);
    assert_eq!(p.via, Via::Session(login.session_id));
    let me = env.custos.me(&p).await?;
    assert_eq!(
        (me.email.as_str(), me.display_name.as_deref()),
        (EMAIL, Some("Sam Sales"))
    );
    // Email is matched after normalisation.
    let again = env
        .custos
        .login(
            &meta(),
            " SALES@Custos.Test ",
            &SecretString::from(PASSWORD),
        )
        .await?;
    assert_eq!(again.user.id, user);
    assert_ne!(
        again.session_id, login.session_id,
        "each sign-in opens its own session"
    );
    assert_ne!(again.token.expose_secret(), login.token.expose_secret());
    Ok(())
}

#[tokio::test]
async fn a_session_ends_after_the_idle_timeout() -> TestResult {
    let (env, _) = with_user().await?;
    let idle = Config::default().session_idle;
    let login = env
        .custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    let token = login.token.expose_secret().to_string();
    // Activity keeps it alive: two periods just under the timeout, each ended by a request.
    for _ in 0..2 {
        env.clock.advance(idle - Duration::from_secs(60));
        env.custos.authenticate(&token, &meta()).await?;
    }
    env.clock.advance(idle + Duration::from_secs(1));
    assert_unauthenticated(
        env.custos.authenticate(&token, &meta()).await,
        "idle session",
    );
    // And it stays dead: the failed request did not revive it.
    assert_unauthenticated(
        env.custos.authenticate(&token, &meta()).await,
        "idle session again",
    );
    Ok(())
}

#[tokio::test]
async fn a_busy_session_still_ends_at_the_absolute_limit() -> TestResult {
    let (env, _) = with_user().await?;
    let absolute = Config::default().session_absolute;
    let step = Duration::from_secs(20 * 60);
    let login = env
        .custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    let token = login.token.expose_secret().to_string();
    let mut elapsed = Duration::ZERO;
    while elapsed + step < absolute {
        env.clock.advance(step);
        elapsed += step;
        env.custos.authenticate(&token, &meta()).await?;
    }
    env.clock
        .advance(absolute - elapsed + Duration::from_secs(60));
    assert_unauthenticated(
        env.custos.authenticate(&token, &meta()).await,
        "past the absolute limit",
    );
    Ok(())
}

#[tokio::test]
async fn logout_ends_the_session_only() -> TestResult {
    let (env, user) = with_user().await?;
    let pw = SecretString::from(PASSWORD);
    let one = env.custos.login(&meta(), EMAIL, &pw).await?;
    let two = env.custos.login(&meta(), EMAIL, &pw).await?;
    let p = env
        .custos
        .authenticate(one.token.expose_secret(), &meta())
        .await?;
    let start = env.ledger_size().await?;
    env.custos.logout(&p).await?;
    assert_unauthenticated(
        env.custos
            .authenticate(one.token.expose_secret(), &meta())
            .await,
        "after logout",
    );
    env.custos
        .authenticate(two.token.expose_secret(), &meta())
        .await?;
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.action, "auth.logout");
    assert_eq!(events[0].event.actor, format!("user:{user}"));
    Ok(())
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer_on_record() -> TestResult {
    let (env, user) = with_user().await?;
    let start = env.ledger_size().await?;
    assert_unauthenticated(
        env.custos
            .login(&meta(), EMAIL, &SecretString::from("a wrong password 123"))
            .await,
        "wrong password",
    );
    assert_unauthenticated(
        env.custos
            .login(&meta(), "nobody@custos.test", &SecretString::from(PASSWORD))
            .await,
        "unknown email",
    );
    assert_unauthenticated(
        env.custos
            .login(&meta(), "", &SecretString::from(PASSWORD))
            .await,
        "empty email",
    );
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 3, "every failed sign-in is on record");
    for e in &events {
        assert_eq!(
            (e.event.action.as_str(), e.event.outcome.as_str()),
            ("auth.login", "failed")
        );
        assert_eq!(e.event.actor, "anonymous");
    }
    assert_eq!(
        events[0].event.subject_id,
        Some(user.to_string()),
        "the account attacked is named by id"
    );
    assert_eq!(events[1].event.subject_id, None);
    // A good sign-in afterwards still works and is on record as success.
    let start = env.ledger_size().await?;
    env.custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].event.outcome.as_str(),
            events[0].event.actor.clone()
        ),
        ("success", format!("user:{user}"))
    );
    Ok(())
}

#[tokio::test]
async fn garbage_tokens_are_unauthenticated() -> TestResult {
    let (env, _) = with_user().await?;
    let long = "css_".to_string() + &"a".repeat(300);
    for t in [
        "",
        "css_",
        "cst_",
        "css_not-a-real-token",
        "cst_not-a-real-token",
        "Bearer x",
        long.as_str(),
    ] {
        assert_unauthenticated(env.custos.authenticate(t, &meta()).await, t);
    }
    // A session token is not an API token and vice versa: the prefix decides.
    let login = env
        .custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    let swapped = login.token.expose_secret().replacen("css_", "cst_", 1);
    assert_unauthenticated(
        env.custos.authenticate(&swapped, &meta()).await,
        "session token used as API token",
    );
    Ok(())
}

#[tokio::test]
async fn an_api_token_authenticates_and_expires() -> TestResult {
    let (env, user) = with_user().await?;
    let forever = env
        .custos
        .create_api_token(&env.admin, EMAIL, "ci", None)
        .await?;
    let p = env
        .custos
        .authenticate(forever.token.expose_secret(), &meta())
        .await?;
    assert_eq!(
        (p.user_id, p.role, p.via),
        (user, Role::Sales, Via::ApiToken(forever.id))
    );
    // API tokens do not idle out like sessions.
    env.clock.advance(Config::default().session_idle * 4);
    env.custos
        .authenticate(forever.token.expose_secret(), &meta())
        .await?;

    let hour = env
        .custos
        .create_api_token(&env.admin, EMAIL, "short", Some(Duration::from_secs(3600)))
        .await?;
    env.clock.advance(Duration::from_secs(3599));
    env.custos
        .authenticate(hour.token.expose_secret(), &meta())
        .await?;
    env.clock.advance(Duration::from_secs(2));
    assert_unauthenticated(
        env.custos
            .authenticate(hour.token.expose_secret(), &meta())
            .await,
        "expired token",
    );
    env.custos
        .authenticate(forever.token.expose_secret(), &meta())
        .await?;
    Ok(())
}

#[tokio::test]
async fn users_make_tokens_for_themselves_only() -> TestResult {
    let (env, _) = with_user().await?;
    let other = env.user("other@custos.test", Role::Support).await?;
    let sales = {
        let login = env
            .custos
            .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
            .await?;
        env.custos
            .authenticate(login.token.expose_secret(), &meta())
            .await?
    };
    let own = env
        .custos
        .create_api_token(&sales, EMAIL, "mine", None)
        .await?;
    assert_eq!(
        env.custos
            .authenticate(own.token.expose_secret(), &meta())
            .await?
            .user_id,
        sales.user_id
    );
    let start = env.ledger_size().await?;
    let err = env
        .custos
        .create_api_token(&sales, "other@custos.test", "theirs", None)
        .await
        .expect_err("not for others");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].event.action.as_str(),
            events[0].event.outcome.as_str()
        ),
        ("token.create", "denied")
    );
    assert_eq!(events[0].event.actor, format!("user:{}", sales.user_id));
    assert_ne!(other.user_id, sales.user_id);
    assert_eq!(
        invalid_fields(
            env.custos
                .create_api_token(&env.admin, "nobody@custos.test", "x", None)
                .await
        ),
        ["email"]
    );
    assert_eq!(
        invalid_fields(
            env.custos
                .create_api_token(&env.admin, EMAIL, "  ", None)
                .await
        ),
        ["name"]
    );
    Ok(())
}

/// Recognising a caller writes their session's last-seen time or their
/// token's last use at most once a minute, so most requests write nothing;
/// after a minute it is written again (the idle timeout is measured from it).
#[tokio::test]
async fn last_use_is_written_at_most_once_a_minute() -> TestResult {
    let (env, user) = with_user().await?;
    let now_ms = || custos_domain::value::to_unix_ms(custos_domain::Clock::now(&*env.clock));
    let t0 = now_ms();
    let login = env
        .custos
        .login(&meta(), EMAIL, &SecretString::from(PASSWORD))
        .await?;
    let token = env
        .custos
        .create_api_token(&env.admin, EMAIL, "ci", None)
        .await?;
    let last_use = || async {
        let mut tx = env.store.begin().await?;
        let s = tx.list_sessions(Some(user), now_ms(), 10).await?;
        let t = tx.list_api_tokens(Some(user)).await?;
        Ok::<_, Box<dyn std::error::Error>>((s[0].last_seen_at, t[0].last_used_at))
    };
    let both = |label: &str| {
        let label = label.to_string();
        let env = &env;
        let session = login.token.expose_secret().to_string();
        let api = token.token.expose_secret().to_string();
        async move {
            env.custos.authenticate(&session, &meta()).await?;
            env.custos
                .authenticate(&api, &meta())
                .await
                .map_err(|e| Box::<dyn std::error::Error>::from(format!("{label}: {e}")))?;
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    both("first use").await?;
    assert_eq!(
        last_use().await?,
        (t0, Some(t0)),
        "the first use is written"
    );
    env.clock.advance(Duration::from_secs(30));
    both("30 s later").await?;
    assert_eq!(
        last_use().await?,
        (t0, Some(t0)),
        "not again within a minute"
    );
    env.clock.advance(Duration::from_secs(31));
    both("61 s later").await?;
    let now = t0 + 61_000;
    assert_eq!(
        last_use().await?,
        (now, Some(now)),
        "written again after a minute"
    );
    Ok(())
}
