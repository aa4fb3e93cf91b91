//! The role × endpoint matrix: for every route and every built-in role, the
//! allowed ones succeed and the others answer 403 — or, for reads, succeed
//! with the fields the role may not see masked. The expected table is written
//! out here by hand from the role descriptions, not derived from the policy
//! code under test.

#![allow(clippy::unwrap_used)]

mod common;

use custos_domain::Role;
use custos_testkit::TestServer;
use serde_json::{Value, json};

/// (operation, resource, method, path, body, status when allowed)
type Check = (
    &'static str,
    &'static str,
    &'static str,
    String,
    Option<Value>,
    u16,
);

const ROLES: [Role; 6] = [
    Role::Admin,
    Role::Manager,
    Role::Sales,
    Role::Support,
    Role::PrivacyOfficer,
    Role::Auditor,
];

/// The table: which roles may do what. A = admin, M = manager, S = sales,
/// U = support, P = privacy officer, D = auditor.
fn allowed(op: &str, resource: &str) -> &'static str {
    match (op, resource) {
        ("read", "contacts" | "companies" | "deals" | "activities" | "orders") => "AMSUPD",
        ("create", "contacts" | "companies" | "deals" | "orders") => "AMS",
        ("create", "activities") => "AMSU",
        ("update", "contacts") => "AMSP",
        ("update", "companies" | "deals" | "orders") => "AMSP",
        ("update", "activities") => "AMSUP",
        ("delete", "contacts" | "companies" | "orders") => "AM",
        ("delete", "deals" | "activities") => "AMS",
        ("export", "contacts") => "AMP",
        ("read", "dsar") => "AP",
        ("create", "dsar") => "AMSUP",
        ("read", "ledger") => "ADP",
        ("update", "pipeline") => "AM",
        ("create", "consents") => "AMSUP",
        ("read" | "create", "admin") => "A",
        _ => "",
    }
}

fn letter(r: Role) -> char {
    match r {
        Role::Admin => 'A',
        Role::Manager => 'M',
        Role::Sales => 'S',
        Role::Support => 'U',
        Role::PrivacyOfficer => 'P',
        Role::Auditor => 'D',
    }
}

async fn call(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = s.client();
    let req = match method {
        "GET" => c.get(s.url(path)),
        "POST" => c.post(s.url(path)),
        "PATCH" => c.patch(s.url(path)),
        "PUT" => c.put(s.url(path)),
        "DELETE" => c.delete(s.url(path)),
        _ => unreachable!(),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_on_every_route() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let mut tokens = Vec::new();
    let mut emails = Vec::new();
    for r in ROLES {
        let email = format!("matrix-{}@staff.example", r.name());
        tokens.push((r, s.token_for_email(r, &email).await));
        emails.push((r, email));
    }
    // Fixtures the routes act on, made by the admin.
    let (_, company) = call(
        &s,
        &admin,
        "POST",
        "/api/v1/companies",
        Some(json!({"name": "Matrix Ltd"})),
    )
    .await;
    let company = company["id"].as_str().unwrap().to_string();
    let mut failures = Vec::new();
    for (role, token) in &tokens {
        let may = |op: &str, res: &str| allowed(op, res).contains(letter(*role));
        // Each role gets its own records to update and delete.
        let (_, contact) = call(&s, &admin, "POST", "/api/v1/contacts", Some(json!({"first_name": "Mat", "last_name": "Rix", "email": "mat@rix.example", "phone": "+1 555 0100"}))).await;
        let contact = contact["id"].as_str().unwrap().to_string();
        let bodies: Vec<(&str, Value)> = vec![
            (
                "contacts",
                json!({"first_name": "New", "last_name": "Person"}),
            ),
            ("companies", json!({"name": "New Co"})),
            (
                "deals",
                json!({"title": "Deal", "stage": "lead", "company_id": company}),
            ),
            (
                "activities",
                json!({"contact_id": contact, "kind": "note", "body": "n", "occurred_at": "2026-01-01T00:00:00Z"}),
            ),
            (
                "orders",
                json!({"contact_id": contact, "status": "paid", "total": "1.00", "currency": "EUR", "placed_at": "2026-01-01T00:00:00Z"}),
            ),
        ];
        let patches: Vec<(&str, Value)> = vec![
            ("contacts", json!({"last_name": "Changed"})),
            ("companies", json!({"domain": "changed.example"})),
            ("deals", json!({"title": "Changed"})),
            ("activities", json!({"done": true})),
            ("orders", json!({"status": "shipped"})),
        ];
        for ((res, body), (_, patch)) in bodies.iter().zip(&patches) {
            // Fixture of this resource owned by the admin, for read/update/delete.
            let (st, fx) = call(
                &s,
                &admin,
                "POST",
                &format!("/api/v1/{res}"),
                Some(body.clone()),
            )
            .await;
            assert_eq!(st, 201, "fixture {res}: {fx}");
            let id = fx["id"].as_str().unwrap().to_string();
            let checks = [
                ("read", "GET", format!("/api/v1/{res}/{id}"), None, 200),
                ("read", "GET", format!("/api/v1/{res}"), None, 200),
                (
                    "create",
                    "POST",
                    format!("/api/v1/{res}"),
                    Some(body.clone()),
                    201,
                ),
                (
                    "update",
                    "PATCH",
                    format!("/api/v1/{res}/{id}"),
                    Some(patch.clone()),
                    200,
                ),
            ];
            for (op, method, path, b, ok) in checks {
                let (st, v) = call(&s, token, method, &path, b).await;
                let expect = if may(op, res) { ok } else { 403 };
                if st != expect {
                    failures.push(format!(
                        "{role} {method} {path}: {st}, expected {expect}: {v}"
                    ));
                }
            }
            let (st, v) = call(&s, token, "DELETE", &format!("/api/v1/{res}/{id}"), None).await;
            // A contact with an order cannot be deleted (409); contacts here have none.
            let expect = if may("delete", res) { 204 } else { 403 };
            if st != expect {
                failures.push(format!("{role} DELETE {res}: {st}, expected {expect}: {v}"));
            }
        }
        // Reads of personal data: masked for the auditor, clear for the others.
        let (st, v) = call(
            &s,
            token,
            "GET",
            &format!("/api/v1/contacts/{contact}"),
            None,
        )
        .await;
        if st == 200 {
            let masked = v["email"] == "•••";
            if masked != (*role == Role::Auditor) {
                failures.push(format!("{role} reads email masked={masked}"));
            }
        }
        let mut others: Vec<Check> = vec![
            (
                "export",
                "contacts",
                "GET",
                "/api/v1/exports/contacts".into(),
                None,
                200,
            ),
            ("read", "dsar", "GET", "/api/v1/dsar".into(), None, 200),
            (
                "create",
                "dsar",
                "POST",
                "/api/v1/dsar".into(),
                Some(
                    json!({"kind": "access", "regime": "gdpr", "subject_email": "mat@rix.example"}),
                ),
                201,
            ),
            (
                "read",
                "ledger",
                "GET",
                "/api/v1/audit/status".into(),
                None,
                200,
            ),
            (
                "read",
                "ledger",
                "GET",
                "/api/v1/audit/leaves?start=0&end=5".into(),
                None,
                200,
            ),
            (
                "update",
                "pipeline",
                "PUT",
                "/api/v1/pipeline/stages".into(),
                Some(
                    json!({"stages": ["lead", "qualified", "proposal", "negotiation", "won", "lost"]}),
                ),
                200,
            ),
            (
                "create",
                "consents",
                "POST",
                "/api/v1/consents".into(),
                Some(json!({"contact_id": contact, "purpose": "profiling", "state": "given"})),
                201,
            ),
        ];
        // Administration: users, roles, sessions, tokens, settings.
        let admin_checks: Vec<Check> = vec![
            ("read", "admin", "GET", "/api/v1/users".into(), None, 200),
            ("read", "admin", "GET", "/api/v1/roles".into(), None, 200),
            (
                "read",
                "admin",
                "GET",
                "/api/v1/roles/sales".into(),
                None,
                200,
            ),
            ("read", "admin", "GET", "/api/v1/sessions".into(), None, 200),
            ("read", "admin", "GET", "/api/v1/tokens".into(), None, 200),
            (
                "create",
                "admin",
                "POST",
                "/api/v1/roles".into(),
                Some(
                    json!({"name": format!("made_by_{}", role.name()), "label": "Made", "base": "sales", "scope": "own"}),
                ),
                201,
            ),
        ];
        others.extend(admin_checks);
        for (op, res, method, path, b, ok) in others {
            let (st, v) = call(&s, token, method, &path, b).await;
            let expect = if may(op, res) { ok } else { 403 };
            if st != expect {
                failures.push(format!(
                    "{role} {method} {path}: {st}, expected {expect}: {v}"
                ));
            }
        }
        // Everyone may read the pipeline and the consent history; nobody changes the consent ledger.
        assert_eq!(
            call(&s, token, "GET", "/api/v1/pipeline/stages", None)
                .await
                .0,
            200
        );
    }
    // The admin pages of the web UI, signed in through the sign-in form.
    for (role, email) in &emails {
        let (b, _) = common::ui::sign_in_existing(&s, email).await;
        for path in [
            "/app/admin/users",
            "/app/admin/roles",
            "/app/admin/roles/sales",
            "/app/admin/roles/new",
            "/app/admin/sessions",
            "/app/admin/tokens",
        ] {
            let st = b.get(s.url(path)).send().await.unwrap().status().as_u16();
            let expect = if *role == Role::Admin { 200 } else { 403 };
            if st != expect {
                failures.push(format!("{role} GET {path}: {st}, expected {expect}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
