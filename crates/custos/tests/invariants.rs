//! DESIGN.md invariants 1, 2 and 3, checked against a real server over HTTPS,
//! on the suite's backend (the scan of files at rest on SQLite only).

#![allow(clippy::unwrap_used)]

use custos_domain::Role;
use custos_testkit::{TestServer, find_in_files};
use serde_json::{Value, json};

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let r = s
        .client()
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "POST {path}");
    r.json().await.unwrap()
}

/// Invariant 1: seed 1,000 contacts with known values (plus activities and
/// orders); no byte sequence of any personal value may be found in any file
/// under the data directory: database, WAL, certificate, anything. SQLite
/// only, by nature: it scans the files the embedded database writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_personal_data_at_rest() {
    let s = TestServer::start_sqlite().await;
    let token = s.token_for(Role::Admin).await;
    let company = post(
        &s,
        &token,
        "/api/v1/companies",
        json!({"name": "Plainly Visible Holdings"}),
    )
    .await;
    let company_id = company["id"].as_str().unwrap().to_string();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let mut tasks = Vec::new();
    let chunks = 4;
    for c in 0..chunks {
        let client = s.client().clone();
        let base = s.base.clone();
        let token = token.clone();
        let company_id = company_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (c..1000).step_by(chunks) {
                let first = format!("Qzfirst{i:04}x");
                let last = format!("Qzlast{i:04}y");
                let email = format!("qz.person{i:04}@mailbox{i:04}.example");
                let phone = format!("+44 7700 9{i:05}");
                let body = json!({
                    "first_name": first, "last_name": last, "email": email, "phone": phone,
                    "tags": [format!("qztag{i:04}")], "company_id": company_id,
                });
                let r = client.post(format!("{base}/api/v1/contacts")).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201);
                let created: Value = r.json().await.unwrap();
                let id = created["id"].as_str().unwrap().to_string();
                let mut values = vec![first, last, email, phone, format!("qztag{i:04}")];
                if i % 10 == 0 {
                    let note = format!("Qznote {i:04}: prefers calls after lunch");
                    let act = json!({"contact_id": id, "kind": "call", "body": note, "occurred_at": "2026-03-01T10:00:00Z"});
                    let r = client.post(format!("{base}/api/v1/activities")).bearer_auth(&token).json(&act).send().await.unwrap();
                    assert_eq!(r.status(), 201);
                    let addr = format!("{i:04} Qzaddress Lane, Springfield");
                    let order = json!({"contact_id": id, "status": "completed", "total": "99.90", "currency": "EUR",
                        "shipping_address": addr, "placed_at": "2026-03-01T10:00:00Z", "completed_at": "2026-03-02T10:00:00Z"});
                    let r = client.post(format!("{base}/api/v1/orders")).bearer_auth(&token).json(&order).send().await.unwrap();
                    assert_eq!(r.status(), 201);
                    values.push(note);
                    values.push(addr);
                }
                made.extend(values);
            }
            made
        }));
    }
    for t in tasks {
        for v in t.await.unwrap() {
            needles.push(v.into_bytes());
        }
    }
    // Exercise reads and searches too, so nothing they write leaks either.
    let r = s
        .client()
        .get(s.url("/api/v1/contacts?email=QZ.PERSON0007@mailbox0007.example"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["first_name"], "Qzfirst0007x");
    assert!(needles.len() >= 5000);
    let dir = s.stop().await;
    // Also look for normalised (lower-case) forms, which blind indexes hash.
    let lower: Vec<Vec<u8>> = needles
        .iter()
        .map(|n| String::from_utf8_lossy(n).to_lowercase().into_bytes())
        .collect();
    needles.extend(lower);
    let found = find_in_files(dir.path(), &needles);
    assert!(
        found.is_empty(),
        "personal values found at rest: {:?}",
        &found[..found.len().min(5)]
    );
    // The scan is real: a plain business value is found where it was written.
    let control = find_in_files(dir.path(), &[b"Plainly Visible Holdings".to_vec()]);
    assert!(
        !control.is_empty(),
        "the scan did not see the plain company name; is it reading the database?"
    );
}

async fn me(s: &TestServer, token: &str) -> String {
    let r = s
        .client()
        .get(s.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn events_after(s: &TestServer, start: u64) -> Vec<custos_service::AuditEntry> {
    s.custos
        .audit_entries(&custos_service::Principal::cli(), start, u64::MAX)
        .await
        .unwrap()
}

async fn ledger_size(s: &TestServer) -> u64 {
    s.custos
        .ledger_status(&custos_service::Principal::cli())
        .await
        .unwrap()
        .size
}

/// Invariants 2 and 3: every route that reads or changes personal data leaves a
/// ledger event naming actor, action and subject, and no leaf holds a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_personal_data_route_is_audited_without_values() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let actor = format!("user:{}", me(&s, &token).await);
    let c = s.client();
    let values = [
        "Ottoline",
        "Morrell-Garsington",
        "otto.m@garsington.example",
        "+44 1865 000111",
        "Asked about renewals",
        "1 Garsington Manor",
    ];

    // Each step: (method, path, body, expected action).
    let start = ledger_size(&s).await;
    let contact = post(&s, &token, "/api/v1/contacts", json!({"first_name": values[0], "last_name": values[1], "email": values[2], "phone": values[3]})).await;
    let cid = contact["id"].as_str().unwrap().to_string();
    let mut expect: Vec<(u64, &str)> = Vec::new();
    expect.push((start, "contact.create"));

    let mut step = |action: &'static str, from: u64| expect.push((from, action));
    let n = ledger_size(&s).await;
    assert_eq!(
        c.get(s.url(&format!("/api/v1/contacts/{cid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    step("contact.read", n);
    let n = ledger_size(&s).await;
    assert_eq!(
        c.get(s.url("/api/v1/contacts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    step("contact.list", n);
    let n = ledger_size(&s).await;
    let r = c
        .get(s.url(&format!("/api/v1/contacts?email={}", values[2])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    step("contact.list", n);
    let n = ledger_size(&s).await;
    let r = c
        .patch(s.url(&format!("/api/v1/contacts/{cid}")))
        .bearer_auth(&token)
        .json(&json!({"phone": "+44 1865 999999"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    step("contact.update", n);
    let n = ledger_size(&s).await;
    let act = post(&s, &token, "/api/v1/activities", json!({"contact_id": cid, "kind": "note", "body": values[4], "occurred_at": "2026-01-05T09:00:00Z"})).await;
    step("activity.create", n);
    let aid = act["id"].as_str().unwrap().to_string();
    let n = ledger_size(&s).await;
    assert_eq!(
        c.get(s.url(&format!("/api/v1/activities/{aid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    step("activity.read", n);
    let n = ledger_size(&s).await;
    assert_eq!(
        c.get(s.url(&format!("/api/v1/activities?contact_id={cid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    step("activity.list", n);
    let n = ledger_size(&s).await;
    let order = post(&s, &token, "/api/v1/orders", json!({"contact_id": cid, "status": "paid", "total": "12.50", "currency": "GBP", "shipping_address": values[5], "placed_at": "2026-01-05T09:00:00Z"})).await;
    step("order.create", n);
    let oid = order["id"].as_str().unwrap().to_string();
    let n = ledger_size(&s).await;
    assert_eq!(
        c.get(s.url(&format!("/api/v1/orders/{oid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    step("order.read", n);
    let n = ledger_size(&s).await;
    let r = c
        .patch(s.url(&format!("/api/v1/orders/{oid}")))
        .bearer_auth(&token)
        .json(&json!({"status": "shipped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    step("order.update", n);
    let n = ledger_size(&s).await;
    assert_eq!(
        c.delete(s.url(&format!("/api/v1/activities/{aid}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    step("activity.delete", n);

    let events = events_after(&s, 0).await;
    for (from, action) in &expect {
        let e = events
            .iter()
            .find(|e| e.index >= *from && e.event.action == *action)
            .unwrap_or_else(|| panic!("no {action} event at or after leaf {from}"));
        assert_eq!(e.event.actor, actor, "{action}: actor");
        assert_eq!(
            e.event.subject_id.as_deref(),
            Some(cid.as_str()),
            "{action}: subject"
        );
        assert_eq!(e.event.outcome, "success", "{action}: outcome");
        assert!(e.event.request_id.is_some(), "{action}: request id");
        assert_eq!(
            e.event.client.as_deref(),
            Some("127.0.0.1"),
            "{action}: client address"
        );
    }
    // Reads record which categories were disclosed.
    let read = events
        .iter()
        .find(|e| e.event.action == "contact.read")
        .unwrap();
    assert!(read.event.categories.iter().any(|c| c == "identity"));
    assert!(read.event.categories.iter().any(|c| c == "contact_details"));

    // Invariant 3: no leaf holds a personal value.
    let leaves = s
        .custos
        .audit_leaf_bytes(&custos_service::Principal::cli(), 0, 10_000)
        .await
        .unwrap();
    assert!(leaves.len() as u64 >= ledger_size(&s).await.min(1000));
    for (i, data) in &leaves {
        let text = String::from_utf8_lossy(data).to_lowercase();
        for v in values.iter().chain(["+44 1865 999999"].iter()) {
            assert!(
                !text.contains(&v.to_lowercase()),
                "leaf {i} holds a personal value"
            );
        }
    }
    // A refused attempt is on record too.
    let support = s.token_for(Role::Support).await;
    let n = ledger_size(&s).await;
    let r = c
        .delete(s.url(&format!("/api/v1/contacts/{cid}")))
        .bearer_auth(&support)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let events = events_after(&s, n).await;
    assert!(
        events
            .iter()
            .any(|e| e.event.action == "contact.delete" && e.event.outcome == "denied")
    );
    // And the whole ledger still verifies.
    let report = s.custos.audit_verify(|_, _| {}).await.unwrap();
    assert!(
        matches!(report, custos_service::VerifyReport::Ok { .. }),
        "{report:?}"
    );
}

/// Sign-ins, good and bad, are audited without the email or password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_audited() {
    let s = TestServer::start().await;
    s.token_for_email(Role::Sales, "grace@sales.example").await;
    let n = ledger_size(&s).await;
    let bad = s
        .client()
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": "grace@sales.example", "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let unknown = s
        .client()
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": "nobody@nowhere.example", "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let good = s
        .client()
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": "grace@sales.example", "password": custos_testkit::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let events = events_after(&s, n).await;
    let logins: Vec<_> = events
        .iter()
        .filter(|e| e.event.action == "auth.login")
        .collect();
    assert_eq!(logins.len(), 3);
    assert_eq!(
        logins
            .iter()
            .filter(|e| e.event.outcome == "failed")
            .count(),
        2
    );
    assert_eq!(
        logins
            .iter()
            .filter(|e| e.event.outcome == "success")
            .count(),
        1
    );
    for e in &logins {
        let bytes = serde_json::to_string(&e.event).unwrap();
        assert!(
            !bytes.contains("grace@")
                && !bytes.contains("nobody@")
                && !bytes.contains("wrong wrong")
        );
    }
}
