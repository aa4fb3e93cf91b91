//! The Admin pages over plain HTTP: administrators list, create, disable and
//! enable users, force MFA re-enrolment, reset passwords, and revoke sessions
//! and API tokens, each a CSRF-checked post answered by a redirect with a
//! flash message; pages send the strict CSP; other roles get 403 and no
//! Admin group in the sidebar.

#![allow(clippy::unwrap_used)]

mod common;

use common::ui::{hidden_csrf, sign_in, sign_in_existing};
use custos_domain::Role;
use custos_service::Principal;
use custos_testkit::{PASSWORD, TestServer};

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
            "/app/admin/roles",
            "/app/admin/roles/new",
            "/app/admin/roles/sales",
            "/app/admin/roles/sales/delete",
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
        let r = b
            .post(s.url("/app/admin/roles"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "sneaky"),
                ("label", "Sneaky"),
                ("base", "manager"),
                ("scope", "all"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{role:?} may not create roles");
    }
    assert_eq!(
        s.custos.list_roles(&Principal::cli()).await.unwrap().len(),
        Role::ALL.len(),
        "no role was created"
    );
    let users = s.custos.list_users(&Principal::cli()).await.unwrap();
    assert!(users.iter().all(|u| !u.disabled));
}

/// The role editor's form for a role based on sales: identity in full,
/// contact details masked, the rest as the built-in sales role.
fn role_form<'a>(
    csrf: &'a str,
    name: &'a str,
    scope: &'a str,
    cd_read: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("csrf", csrf),
        ("name", name),
        ("label", "North sales"),
        ("base", "sales"),
        ("scope", scope),
        ("read.identity", "full"),
        ("write.identity", "on"),
        ("read.contact_details", cd_read),
        ("read.business", "full"),
        ("write.business", "on"),
        ("read.identifiers", "full"),
        ("read.system", "full"),
        ("read.communications", "full"),
        ("write.communications", "on"),
    ];
    if cd_read == "none" {
        // Writing without reading: the editor must refuse it.
        f.push(("write.contact_details", "on"));
    }
    f
}

#[tokio::test]
async fn administrators_edit_roles_invite_users_and_create_scoped_tokens() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Admin, "root@custos.example").await;

    // The roles page lists the built-in set; a built-in role is read-only.
    let (status, html) = get(&b, &s, "/app/admin/roles").await;
    assert_eq!(status, 200);
    for r in Role::ALL {
        assert!(
            html.contains(&format!("href=\"/app/admin/roles/{}\"", r.name())),
            "{r}"
        );
    }
    let (status, html) = get(&b, &s, "/app/admin/roles/auditor").await;
    assert_eq!(status, 200);
    assert!(html.contains("built-in role") && !html.contains("Save role"));
    let (status, html) = get(&b, &s, "/app/admin/roles/new?from=support").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"read.contact_details\"") && html.contains("Create role"));

    // A role that writes what it cannot read is refused, with the reason, and nothing is saved.
    let r = b
        .post(s.url("/app/admin/roles"))
        .form(&role_form(&csrf, "north_sales", "team", "none"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("writing needs full read"), "{html}");
    assert_eq!(
        s.custos.list_roles(&Principal::cli()).await.unwrap().len(),
        Role::ALL.len()
    );

    let html = post_ok(
        &b,
        &s,
        "/app/admin/roles",
        &role_form(&csrf, "north_sales", "team", "masked"),
        "/app/admin/roles/north_sales",
    )
    .await;
    assert!(html.contains("Role created.") && html.contains("Save role"));
    let saved = s
        .custos
        .get_role(&Principal::cli(), "north_sales")
        .await
        .unwrap();
    assert_eq!(saved.base, Role::Sales);
    assert_eq!(saved.permissions.scope, custos_domain::RecordScope::Team);
    assert_eq!(
        saved
            .permissions
            .read_level(custos_domain::DataCategory::ContactDetails),
        custos_domain::ReadLevel::Masked
    );
    assert!(
        !saved
            .permissions
            .can_read(custos_domain::DataCategory::Financial)
    );

    // Invite a user with it: the page shows a one-time link.
    let r = b
        .post(s.url("/app/admin/users"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "nora@custos.example"),
            ("role", "north_sales"),
            ("team", "north"),
            ("how", "invite"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let start = html.find("/invite/csi_").expect("an invitation link");
    let end = html[start..].find('"').unwrap() + start;
    let link = html[start..end].to_string();

    // Nora opens it in her own browser and sets a password.
    let nora = s.browser();
    let page = nora.get(s.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let pre = hidden_csrf(&page.text().await.unwrap());
    let r = nora
        .post(s.url(&link))
        .form(&[
            ("csrf", pre.as_str()),
            ("password", PASSWORD),
            ("confirm", "something else entirely"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "mismatched passwords");
    // The form comes back with a fresh CSRF token.
    let pre = hidden_csrf(&r.text().await.unwrap());
    let r = nora
        .post(s.url(&link))
        .form(&[
            ("csrf", pre.as_str()),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Your password is set"));
    let again = nora.get(s.url(&link)).send().await.unwrap();
    assert_eq!(again.status(), 404, "the link works once");

    // Nora sees contact details masked in shape, and only her team's records.
    let ada = s
        .custos
        .create(
            &Principal::cli(),
            custos_domain::Entity::Contact,
            &serde_json::json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}),
        )
        .await
        .unwrap()
        .id();
    let nora_id = user_id(&s, "nora@custos.example").await;
    let (nb, _) = sign_in_existing(&s, "nora@custos.example").await;
    let (status, _) = get(&nb, &s, &format!("/app/contacts/{ada}")).await;
    assert_eq!(status, 403, "a contact owned outside her team");
    s.custos
        .update(
            &Principal::cli(),
            custos_domain::Entity::Contact,
            ada,
            &serde_json::json!({"owner_id": nora_id.to_string()}),
        )
        .await
        .unwrap();
    let (status, html) = get(&nb, &s, &format!("/app/contacts/{ada}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("a•••@example.com") && !html.contains("ada@example.com"));
    assert!(html.contains("Lovelace"));

    // The role is in use: it cannot be deleted until Nora has another.
    let r = b
        .post(s.url("/app/admin/roles/north_sales/delete"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let html = post_ok(
        &b,
        &s,
        &format!("/app/admin/users/{nora_id}/role"),
        &[
            ("csrf", csrf.as_str()),
            ("role", "support"),
            ("team", "north"),
        ],
        "/app/admin/users",
    )
    .await;
    assert!(html.contains("Role and team changed."));
    let (status, html) = get(&b, &s, "/app/admin/roles/north_sales/delete").await;
    assert_eq!(status, 200);
    assert!(html.contains("Delete role"));
    let html = post_ok(
        &b,
        &s,
        "/app/admin/roles/north_sales/delete",
        &[("csrf", csrf.as_str())],
        "/app/admin/roles",
    )
    .await;
    assert!(html.contains("Role deleted.") && !html.contains("north_sales"));

    // A scoped, expiring API token made from the tokens page; the form sent
    // twice (a reload of the page showing the secret) makes one token.
    let (_, page) = get(&b, &s, "/app/admin/tokens").await;
    let m = "name=\"form_id\" value=\"";
    let at = page.find(m).expect("the token form has a key") + m.len();
    let form_id = page[at..at + 36].to_string();
    let token_form = [
        ("csrf", csrf.as_str()),
        ("form_id", form_id.as_str()),
        ("email", "nora@custos.example"),
        ("name", "read-only report"),
        ("scope", "read"),
        ("days", "30"),
    ];
    let r = b
        .post(s.url("/app/admin/tokens"))
        .form(&token_form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let again = b
        .post(s.url("/app/admin/tokens"))
        .form(&token_form)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again = again.text().await.unwrap();
    assert!(again.contains("Token already created") && !again.contains("cst_"));
    let nora = user_id(&s, "nora@custos.example").await;
    let noras = s
        .custos
        .list_api_tokens(&Principal::cli(), true)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.user_id == nora && t.name == "read-only report")
        .count();
    assert_eq!(noras, 1, "one token for two sendings");
    let start = html.find("cst_").expect("the token is shown once");
    let end = html[start..].find('"').unwrap() + start;
    let token = &html[start..end];
    let api = |method: reqwest::Method, path: &str| {
        s.client().request(method, s.url(path)).bearer_auth(token)
    };
    assert_eq!(
        api(reqwest::Method::GET, "/api/v1/contacts")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = api(reqwest::Method::POST, "/api/v1/contacts")
        .json(&serde_json::json!({"first_name": "No", "last_name": "Write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the read scope does not write");
    let t = s
        .custos
        .list_api_tokens(&Principal::cli(), true)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "read-only report")
        .unwrap();
    assert_eq!(t.scopes, Some(vec!["read".to_string()]));
    assert!(t.expires_at.is_some());
    // No scope chosen: refused, nothing created.
    let r = b
        .post(s.url("/app/admin/tokens"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "nora@custos.example"),
            ("name", "nothing"),
            ("days", "30"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        s.custos
            .list_api_tokens(&Principal::cli(), true)
            .await
            .unwrap()
            .len(),
        2
    );
}
