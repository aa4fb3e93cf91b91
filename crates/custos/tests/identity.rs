//! The sign-in API (CONTRACT.md "Sign-in API") over HTTPS with the MFA policy
//! on, against an independent TOTP implementation: `oathtool` (Debian package
//! `oathtool`). Codes it makes sign in once; the same code again and a wrong
//! code are refused.

use custos_domain::Role;
use custos_service::{Config, Principal};
use custos_testkit::{PASSWORD, TestServer};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::process::Command;

/// `oathtool --totp -b SECRET` at `unix` seconds, or `None` when oathtool is
/// not installed (outside CI the test then says it skipped).
fn oathtool(secret: &str, unix: i64) -> Option<String> {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{unix}")])
        .output()
        .ok()?;
    assert!(out.status.success(), "oathtool failed: {out:?}");
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

fn now() -> i64 {
    use custos_domain::Clock;
    custos_domain::SystemClock.now().unix_timestamp()
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut rb = s.client().post(s.url(path)).json(&body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oathtool_codes_sign_in_once() {
    if oathtool("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59).is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "oathtool is required in CI (apt-get install oathtool)"
        );
        println!("skipped: oathtool is not installed");
        return;
    }
    // RFC 6238 Appendix B, SHA-1, T = 59: oathtool agrees with the RFC.
    assert_eq!(
        oathtool("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59).as_deref(),
        Some("287082")
    );
    let s = TestServer::start_with(Config::default()).await;
    let email = "otp@staff.example";
    s.custos
        .create_user(
            &Principal::cli(),
            email,
            Role::Sales,
            &SecretString::from(PASSWORD),
            None,
        )
        .await
        .expect("user");
    let login = json!({"email": email, "password": PASSWORD});

    // No second factor yet: an enrolment session that can only enrol.
    let (st, body) = post(&s, "/api/v1/auth/login", None, login.clone()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["mfa_enrolment_required"], true);
    let enrol = body["token"].as_str().expect("token").to_string();
    let r = s
        .client()
        .get(s.url("/api/v1/contacts"))
        .bearer_auth(&enrol)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
    let problem: Value = r.json().await.expect("problem");
    assert_eq!(problem["type"], "/problems/mfa-enrolment-required");

    let (st, body) = post(&s, "/api/v1/me/totp", Some(&enrol), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let secret = body["secret"].as_str().expect("secret").to_string();
    assert!(
        body["otpauth_uri"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("secret={secret}")))
    );
    let code = oathtool(&secret, now()).expect("oathtool");
    let (st, body) = post(
        &s,
        "/api/v1/me/totp/confirm",
        Some(&enrol),
        json!({"code": code}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["recovery_codes"].as_array().map(Vec::len), Some(10));
    let (st, _) = post(&s, "/api/v1/auth/logout", Some(&enrol), json!({})).await;
    assert_eq!(st, 401, "the enrolment session ended with the MFA change");

    // Password, then a code oathtool makes for the next time step (the one
    // used to confirm is spent).
    let (st, body) = post(&s, "/api/v1/auth/login", None, login.clone()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "mfa_required");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_string();
    let next = oathtool(&secret, now() + 30).expect("oathtool");
    let wrong = if next == "000000" { "111111" } else { "000000" };
    let (st, _) = post(
        &s,
        "/api/v1/auth/mfa",
        None,
        json!({"mfa_token": mfa_token, "code": wrong}),
    )
    .await;
    assert_eq!(st, 401, "a wrong code is refused");
    let (st, body) = post(
        &s,
        "/api/v1/auth/mfa",
        None,
        json!({"mfa_token": mfa_token, "code": next}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["failed_attempts_since_last_sign_in"], 1);
    let token = body["token"].as_str().expect("token").to_string();
    let r = s
        .client()
        .get(s.url("/api/v1/contacts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // The same code a second time is refused, with a fresh mfa_token too.
    let (_, body) = post(&s, "/api/v1/auth/login", None, login).await;
    let again = body["mfa_token"].as_str().expect("mfa_token").to_string();
    let (st, body) = post(
        &s,
        "/api/v1/auth/mfa",
        None,
        json!({"mfa_token": again, "code": next}),
    )
    .await;
    assert_eq!(st, 401, "replay: {body}");
    let replays = s
        .custos
        .audit_entries(&Principal::cli(), 0, 10_000)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|e| {
            e.event.action == "auth.mfa" && e.event.detail.as_deref() == Some("reason=replay")
        })
        .count();
    assert_eq!(replays, 1, "the replay is recorded");
}
