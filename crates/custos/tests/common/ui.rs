//! Signing in to the web UI over plain HTTP, as a browser would: the
//! sign-in form's CSRF token from its pre-session cookie, then the session's
//! own token read from a signed-in page.

#![allow(dead_code, clippy::unwrap_used)]

use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};

/// The value of the first `csrf` hidden field of a page.
pub fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// Signs an existing user in through the sign-in form; returns the
/// cookie-keeping client and the session's CSRF token (read from `/app`).
pub async fn sign_in_existing(s: &TestServer, email: &str) -> (reqwest::Client, String) {
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

/// Creates a user with `role` and `email`, then signs them in.
pub async fn sign_in(s: &TestServer, role: Role, email: &str) -> (reqwest::Client, String) {
    s.token_for_email(role, email).await;
    sign_in_existing(s, email).await
}

/// Creates a user with `role` (a fresh email) and signs them in.
pub async fn sign_in_new(s: &TestServer, role: Role) -> (reqwest::Client, String) {
    let email = format!(
        "{}-{}@staff.example",
        role.name(),
        uuid::Uuid::now_v7().simple()
    );
    sign_in(s, role, &email).await
}

/// The body of a page the signed-in `client` fetches.
pub async fn page_text(client: &reqwest::Client, s: &TestServer, path: &str) -> String {
    client
        .get(s.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
