//! The Admin pages over plain HTTP: administrators list, create, disable and
//! enable users, force MFA re-enrolment, reset passwords, and revoke sessions
//! and API tokens, each a CSRF-checked post answered by a redirect with a
//! flash message; pages send the strict CSP; other roles get 403 and no
//! Admin group in the sidebar.

#![allow(clippy::unwrap_used)]

use custos_domain::Role;
use custos_service::Principal;
use custos_testkit::{PASSWORD, TestServer};

fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

async fn sign_in(s: &TestServer, role: Role, email: &str) -> (reqwest::Client, String) {
    s.token_for_email(role, email).await;
    sign_in_existing(s, email).await
}

async fn sign_in_existing(s: &TestServer, email: &str) -> (reqwest::Client, String) {
    let b = s.browser();
    let html = b
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pre = hidden_csrf(&html);
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("csrf", pre.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in of {email}");
    let html = b
        .get(s.url("/app"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&html);
    (b, csrf)
}

async fn get(b: &reqwest::Client, s: &TestServer, path: &str) -> (u16, String) {
    let r = b.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(
            r.headers()["content-security-policy"].to_str().unwrap(),
            custos_web::security::CSP,
            "{path} sends the CSP"
        );
    }
    (status, r.text().await.unwrap())
}

/// Posts a form; expects a redirect to `back` and returns the next page.
async fn post_ok(
    b: &reqwest::Client,
    s: &TestServer,
    path: &str,
    form: &[(&str, &str)],
    back: &str,
) -> String {
    let r = b.post(s.url(path)).form(form).send().await.unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    assert_eq!(
        (status.as_u16(), location.as_deref()),
        (303, Some(back)),
        "{path}: {}",
        r.text().await.unwrap_or_default()
    );
    get(b, s, back).await.1
}

async fn user_id(s: &TestServer, email: &str) -> uuid::Uuid {
    s.custos
        .list_users(&Principal::cli())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == email)
        .unwrap()
        .id
}

#[tokio::test]
async fn administrators_manage_users_sessions_and_tokens_from_the_admin_pages() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Admin, "root@custos.example").await;
    let (status, html) = get(&b, &s, "/app").await;
    assert_eq!(status, 200);
    for href in [
        "/app/admin/users",
        "/app/admin/sessions",
        "/app/admin/tokens",
    ] {
        assert!(
            html.contains(&format!("href=\"{href}\"")),
            "sidebar links {href}"
        );
    }
    assert!(
        html.contains(">Admin</h2>"),
        "the sidebar has an Admin group"
    );

    // Create a user through the form; a weak password is refused, values kept.
    let (status, html) = get(&b, &s, "/app/admin/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("root@custos.example") && html.contains("aria-current=\"page\""));
    let r = b
        .post(s.url("/app/admin/users"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "lin@custos.example"),
            ("role", "support"),
            ("password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("error-summary") && html.contains("value=\"lin@custos.example\""));
    let html = post_ok(
        &b,
        &s,
        "/app/admin/users",
        &[
            ("csrf", csrf.as_str()),
            ("email", "lin@custos.example"),
            ("display_name", "Lin"),
            ("role", "support"),
            ("password", PASSWORD),
        ],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("User created.") && html.contains("lin@custos.example"));
    let lin = user_id(&s, "lin@custos.example").await;

    // Lin signs in; the admin sees and revokes that session.
    let (lin_b, _) = sign_in_existing(&s, "lin@custos.example").await;
    let (status, html) = get(&b, &s, "/app/admin/sessions").await;
    assert_eq!(status, 200);
    assert!(html.contains("lin@custos.example") && html.contains("this session"));
    let lin_session = s
        .custos
        .list_sessions(&Principal::cli(), true)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.user_id == lin)
        .unwrap()
        .id;
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/sessions/{lin_session}/revoke"),
        &[("csrf", csrf.as_str())],
        "/app/admin/sessions",
    )
    .await;
    assert!(html.contains("Session revoked.") && !html.contains("lin@custos.example"));
    let r = lin_b.get(s.url("/app")).send().await.unwrap();
    assert_eq!(r.status(), 303, "Lin's revoked session is signed out");

    // Disable and enable.
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/users/{lin}/disable"),
        &[("csrf", csrf.as_str())],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("User disabled."));
    assert!(html.contains(&format!("/app/admin/users/{lin}/enable")));
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/users/{lin}/enable"),
        &[("csrf", csrf.as_str())],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("User enabled."));

    // Reset the password, and force MFA re-enrolment.
    let new_pw = "a brand new passphrase for lin";
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/users/{lin}/reset-password"),
        &[("csrf", csrf.as_str()), ("password", new_pw)],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("Password reset."));
    let signed = s
        .custos
        .sign_in(
            &Default::default(),
            "lin@custos.example",
            &secrecy::SecretString::from(new_pw),
        )
        .await;
    assert!(signed.is_ok(), "the new password works: {signed:?}");
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/users/{lin}/reset-mfa"),
        &[("csrf", csrf.as_str())],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("Second factors removed"));

    // API tokens: listed with their owner, revoked.
    let token = s.token_for_email(Role::Sales, "bot@custos.example").await;
    let (status, html) = get(&b, &s, "/app/admin/tokens").await;
    assert_eq!(status, 200);
    assert!(html.contains("bot@custos.example"));
    let bot = user_id(&s, "bot@custos.example").await;
    let token_id = s
        .custos
        .list_api_tokens(&Principal::cli(), true)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.user_id == bot)
        .unwrap()
        .id;
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/tokens/{token_id}/revoke"),
        &[("csrf", csrf.as_str())],
        "/app/admin/tokens",
    )
    .await;
    assert!(html.contains("API token revoked.") && html.contains("revoked 20"));
    let r = s
        .client()
        .get(s.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the revoked token is refused");

    // Without the session's CSRF token nothing changes.
    let r = b
        .post(s.url(&format!("/app/admin/users/{lin}/disable")))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let disabled = s
        .custos
        .list_users(&Principal::cli())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.id == lin)
        .unwrap()
        .disabled;
    assert!(!disabled, "a forged form changed nothing");
}

#[tokio::test]
async fn other_roles_get_no_admin_pages() {
    let s = TestServer::start().await;
    let target = {
        s.token_for_email(Role::Sales, "target@custos.example")
            .await;
        user_id(&s, "target@custos.example").await
    };
    for role in [
        Role::Manager,
        Role::Sales,
        Role::Support,
        Role::PrivacyOfficer,
        Role::Auditor,
    ] {
        let email = format!("{}@custos.example", role.name());
        let (b, csrf) = sign_in(&s, role, &email).await;
        let (_, html) = get(&b, &s, "/app/search").await;
        assert!(
            !html.contains("/app/admin/"),
            "{role:?} sees no Admin group"
        );
        for path in [
            "/app/admin/users",
            "/app/admin/sessions",
            "/app/admin/tokens",
        ] {
            let (status, _) = get(&b, &s, path).await;
            assert_eq!(status, 403, "{role:?} GET {path}");
        }
        let r = b
            .post(s.url(&format!("/app/admin/users/{target}/disable")))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{role:?} may not disable users");
    }
    let users = s.custos.list_users(&Principal::cli()).await.unwrap();
    assert!(users.iter().all(|u| !u.disabled));
}
