//! Step-up before erasing and exporting, on a manual clock: a session whose
//! last second-factor check is older than the step-up window may not fulfil
//! an erasure request or export contacts (refused and recorded), while other
//! request kinds, fresh sessions, API tokens and the CLI go through.

#![allow(clippy::unwrap_used)]

use custos_domain::{ManualClock, Role};
use custos_service::{Config, Custos, Opener, Principal, RequestMeta, ServiceError, SignIn};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

const EMAIL: &str = "erin@custos.test";
const PASSWORD: &str = "correct horse battery staple";

fn is_step_up<T: std::fmt::Debug>(r: &Result<T, ServiceError>) -> bool {
    matches!(r, Err(ServiceError::StepUpRequired))
}

async fn session(c: &Custos) -> String {
    let SignIn::Session(s) = c
        .sign_in(
            &RequestMeta::default(),
            EMAIL,
            &SecretString::from(PASSWORD),
        )
        .await
        .unwrap()
    else {
        panic!("MFA is off: the password alone opens a session");
    };
    s.token.expose_secret().to_string()
}

async fn verified(c: &Custos, kind: &str) -> uuid::Uuid {
    let cli = Principal::cli();
    let r = c
        .dsar_open(
            &Opener::Staff(cli.clone()),
            &json!({"kind": kind, "regime": "gdpr", "subject_email": "ada@people.example"}),
        )
        .await
        .unwrap();
    c.dsar_verify(
        &cli,
        r.view.id,
        &json!({"method": "operator_attested", "reason": "checked by phone"}),
    )
    .await
    .unwrap();
    r.view.id
}

#[tokio::test]
async fn erasure_and_contact_exports_need_a_recent_second_factor_in_a_session() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let store = custos_testkit::test_store().await;
    let ring =
        custos_crypto::MasterKeyring::new(vec![custos_crypto::MasterKey::generate(1).unwrap()])
            .unwrap();
    // Password-only sign-in counts as the check (verified at sign-in).
    let config = Config {
        mfa_required: false,
        ..Config::default()
    };
    let c = Custos::open(store, clock.clone(), ring, config)
        .await
        .unwrap();
    let cli = Principal::cli();
    c.create_user(
        &cli,
        EMAIL,
        Role::Admin,
        &SecretString::from(PASSWORD),
        None,
    )
    .await
    .unwrap();
    let meta = RequestMeta::default();
    let token = session(&c).await;
    let erase_a = verified(&c, "erasure").await;
    let erase_b = verified(&c, "erasure").await;
    let access = verified(&c, "access").await;

    // Within the window: export goes through.
    let fresh = c.authenticate(&token, &meta).await.unwrap();
    c.export_contacts(&fresh, None).await.unwrap();

    // Eleven minutes later (window ten, idle timeout thirty): the same session is stale.
    clock.advance(Duration::from_secs(11 * 60));
    let stale = c.authenticate(&token, &meta).await.unwrap();
    let r = c.dsar_fulfil(&stale, erase_a).await;
    assert!(is_step_up(&r), "erasure without step-up: {r:?}");
    assert_eq!(
        c.dsar_get(&cli, erase_a).await.unwrap().state,
        "verified",
        "nothing was erased"
    );
    let r = c.export_contacts(&stale, None).await;
    assert!(is_step_up(&r), "export without step-up: {r:?}");
    // Other kinds of request are not gated.
    let done = c.dsar_fulfil(&stale, access).await.unwrap();
    assert_eq!(done.state, "fulfilled");

    // The refusals are recorded.
    let log = format!("{:?}", c.audit_entries(&cli, 0, 1000).await.unwrap());
    assert!(log.contains("reason=step_up"), "{log}");

    // An API token of the same user is exempt, as the CLI is.
    let t = c
        .create_api_token(&cli, EMAIL, "script", None)
        .await
        .unwrap();
    let via_token = c
        .authenticate(t.token.expose_secret(), &meta)
        .await
        .unwrap();
    c.export_contacts(&via_token, None).await.unwrap();
    let done = c.dsar_fulfil(&via_token, erase_a).await.unwrap();
    assert_eq!(done.state, "fulfilled");
    c.export_contacts(&cli, None).await.unwrap();

    // A new sign-in (a fresh check) may erase again.
    let token = session(&c).await;
    let fresh = c.authenticate(&token, &meta).await.unwrap();
    let done = c.dsar_fulfil(&fresh, erase_b).await.unwrap();
    assert_eq!(done.state, "fulfilled");
}
