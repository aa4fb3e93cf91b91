//! Data-subject requests, consent and exports end to end over HTTPS.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use custos_domain::Role;
use custos_testkit::{TestServer, find_in_files};
use serde_json::{Value, json};

struct Api<'a> {
    s: &'a TestServer,
    token: String,
}

impl Api<'_> {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .s
            .client()
            .post(self.s.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .s
            .client()
            .get(self.s.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

struct Person {
    id: String,
    values: Vec<String>,
    order: String,
    activity: String,
}

async fn person(a: &Api<'_>, tag: &str, email: &str) -> Person {
    let first = format!("First{tag}");
    let last = format!("Last{tag}");
    let phone = format!("+44 20 7946 {:04}", tag.bytes().map(u32::from).sum::<u32>());
    let (st, c) = a.post("/api/v1/contacts", json!({"first_name": first, "last_name": last, "email": email, "phone": phone, "tags": ["newsletter"]})).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let note = format!("Spoke with {tag} about renewals");
    let (st, act) = a.post("/api/v1/activities", json!({"contact_id": id, "kind": "call", "body": note, "occurred_at": "2026-01-10T10:00:00Z"})).await;
    assert_eq!(st, 201);
    let addr = format!("{tag} House, 1 High Street");
    let (st, order) = a
        .post("/api/v1/orders", json!({"contact_id": id, "status": "completed", "total": "120.00", "currency": "GBP", "shipping_address": addr, "placed_at": "2026-01-10T10:00:00Z", "completed_at": "2026-01-11T10:00:00Z"}))
        .await;
    assert_eq!(st, 201);
    Person {
        id,
        values: vec![first, last, email.to_string(), phone, note, addr],
        order: order["id"].as_str().unwrap().to_string(),
        activity: act["id"].as_str().unwrap().to_string(),
    }
}

async fn request(po: &Api<'_>, kind: &str, email: &str, details: Option<Value>) -> String {
    let mut body = json!({"kind": kind, "regime": "gdpr", "subject_email": email});
    if let Some(d) = details {
        body["details"] = d;
    }
    let (st, r) = po.post("/api/v1/dsar", body).await;
    assert_eq!(st, 201, "{r}");
    assert!(r["verification_code"].as_str().unwrap().len() == 6);
    let id = r["id"].as_str().unwrap().to_string();
    let (st, v) = po
        .post(
            &format!("/api/v1/dsar/{id}/verify"),
            json!({"method": "operator_attested", "reason": "called back on the number we hold"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "verified");
    let (st, v) = po
        .post(&format!("/api/v1/dsar/{id}/fulfil"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "fulfilled");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_package_holds_every_field_about_the_person_and_nothing_else() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let ada = person(&sales, "Ada", "ada@dsar.example").await;
    let other = person(&sales, "Bob", "bob@dsar.example").await;
    let (st, _) = po.post("/api/v1/consents", json!({"contact_id": ada.id, "purpose": "marketing_email", "state": "given", "method": "form"})).await;
    assert_eq!(st, 201);
    let id = request(&po, "access", "ADA@dsar.example", None).await;
    let (st, pkg) = po.get(&format!("/api/v1/dsar/{id}/package")).await;
    assert_eq!(st, 200, "{pkg}");
    let text = pkg.to_string();
    for v in &ada.values {
        assert!(text.contains(v.as_str()), "the package lacks {v}");
    }
    for v in &other.values {
        assert!(
            !text.contains(v.as_str()),
            "the package holds another person's {v}"
        );
    }
    assert!(text.contains(&ada.order) && text.contains(&ada.activity) && !text.contains(&other.id));
    assert_eq!(pkg["records"]["consents"][0]["purpose"], "marketing_email");
    // Each category comes with its purposes, basis, recipients, retention, source.
    let about = pkg["about_the_data"].as_array().unwrap();
    let addr = about
        .iter()
        .find(|a| a["field"] == "shipping_address")
        .unwrap();
    assert_eq!(addr["recipients"][0], "shipping carrier");
    assert!(
        addr["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "order_fulfilment")
    );
    // CSV per entity.
    let r = s
        .client()
        .get(s.url(&format!(
            "/api/v1/dsar/{id}/package?format=csv&entity=activities"
        )))
        .bearer_auth(&po.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    assert!(
        csv.contains(&ada.values[4]) && csv.lines().count() == 2,
        "{csv}"
    );
    // Sales may not read requests or packages.
    let (st, _) = sales.get(&format!("/api/v1/dsar/{id}/package")).await;
    assert_eq!(st, 403);
    // The evidence pack's proofs verify against its signed checkpoint.
    let (st, ev) = po.get(&format!("/api/v1/dsar/{id}/evidence")).await;
    assert_eq!(st, 200, "{ev}");
    let cp = custos_ledger::checkpoint::verify_checkpoint(
        ev["checkpoint"].as_str().unwrap(),
        ev["verifier_key"].as_str().unwrap(),
    )
    .unwrap();
    let steps = ev["timeline"].as_array().unwrap();
    let actions: Vec<&str> = steps
        .iter()
        .map(|e| e["event"]["action"].as_str().unwrap())
        .collect();
    for a in ["request.create", "request.verify", "request.fulfil"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    for e in steps {
        let leaf: [u8; 32] = b64(&e["leaf_hash"]).try_into().unwrap();
        let proof: Vec<[u8; 32]> = e["inclusion_proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| b64(h).try_into().unwrap())
            .collect();
        custos_ledger::merkle::verify_inclusion(
            &leaf,
            e["index"].as_u64().unwrap(),
            cp.size,
            &proof,
            &cp.root,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_request_shreds_keeps_orders_and_says_why() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let gone = person(&sales, "Erin", "erin@dsar.example").await;
    let kept = person(&sales, "Kim", "kim@dsar.example").await;
    let id = request(&po, "erasure", "erin@dsar.example", None).await;
    let (_, v) = po.get(&format!("/api/v1/dsar/{id}")).await;
    assert!(
        v["result"]["kept"][0]["why"]
            .as_str()
            .unwrap()
            .contains("accounting"),
        "{v}"
    );
    assert_eq!(
        sales.get(&format!("/api/v1/contacts/{}", gone.id)).await.0,
        410
    );
    assert_eq!(
        sales
            .get(&format!("/api/v1/activities/{}", gone.activity))
            .await
            .0,
        410
    );
    let (st, order) = sales.get(&format!("/api/v1/orders/{}", gone.order)).await;
    assert_eq!(st, 200);
    assert_eq!(order["total"], "120.00");
    assert!(order["shipping_address"].is_null());
    assert_eq!(
        sales.get(&format!("/api/v1/contacts/{}", kept.id)).await.0,
        200
    );
    let report = s.custos.audit_verify(|_, _| {}).await.unwrap();
    assert!(matches!(report, custos_service::VerifyReport::Ok { .. }));
    let dir = s.stop().await;
    let needles: Vec<Vec<u8>> = gone.values.iter().map(|v| v.clone().into_bytes()).collect();
    assert!(find_in_files(dir.path(), &needles).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restriction_objection_opt_out_and_consent_govern_lists_and_exports() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let manager = Api {
        s: &s,
        token: s.token_for(Role::Manager).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let r = person(&sales, "Rita", "rita@dsar.example").await;
    let o = person(&sales, "Otto", "otto@dsar.example").await;
    let c = person(&sales, "Cleo", "cleo@dsar.example").await;
    for p in [&r, &o, &c] {
        let (st, _) = sales
            .post(
                "/api/v1/consents",
                json!({"contact_id": p.id, "purpose": "marketing_email", "state": "given"}),
            )
            .await;
        assert_eq!(st, 201);
    }
    let export = |purpose: &'static str| {
        let m = &manager;
        async move {
            let (st, e) = m
                .get(&format!("/api/v1/exports/contacts?purpose={purpose}"))
                .await;
            assert_eq!(st, 200, "{e}");
            let ids: Vec<String> = e["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect();
            (ids, e["excluded"].clone())
        }
    };
    let (ids, _) = export("marketing_email").await;
    assert_eq!(ids.len(), 3);

    // Restriction: gone from sales' lists, searches and every export; readable by the privacy officer.
    request(&po, "restriction", "rita@dsar.example", None).await;
    let (_, list) = sales.get("/api/v1/contacts").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != r.id.as_str())
    );
    let (_, found) = sales.get("/api/v1/contacts?email=rita@dsar.example").await;
    assert!(found["items"].as_array().unwrap().is_empty());
    assert_eq!(
        sales.get(&format!("/api/v1/contacts/{}", r.id)).await.0,
        403
    );
    assert_eq!(po.get(&format!("/api/v1/contacts/{}", r.id)).await.0, 200);
    let (ids, excluded) = export("marketing_email").await;
    assert!(
        !ids.contains(&r.id) && excluded["restricted"] == 1,
        "{excluded}"
    );
    let (ids, _) = {
        let (st, e) = manager.get("/api/v1/exports/contacts").await;
        assert_eq!(st, 200);
        (
            e["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
            (),
        )
    };
    assert!(!ids.contains(&r.id));

    // Objection: out of marketing, still in other exports.
    request(&po, "objection", "otto@dsar.example", None).await;
    let (ids, excluded) = export("marketing_email").await;
    assert!(
        !ids.contains(&o.id) && excluded["objected"] == 1,
        "{excluded}"
    );
    let (ids, _) = export("sale_share").await;
    assert!(ids.contains(&o.id));

    // Opt-out of sale/sharing: out of sale_share exports only.
    request(&po, "opt_out_sale", "cleo@dsar.example", None).await;
    let (ids, excluded) = export("sale_share").await;
    assert!(
        !ids.contains(&c.id) && excluded["opted_out"] == 1,
        "{excluded}"
    );
    let (ids, _) = export("marketing_email").await;
    assert!(ids.contains(&c.id));

    // Withdrawing consent: out of marketing; the history keeps both entries.
    let (st, _) = sales.post("/api/v1/consents", json!({"contact_id": c.id, "purpose": "marketing_email", "state": "withdrawn", "method": "staff"})).await;
    assert_eq!(st, 201);
    let (ids, excluded) = export("marketing_email").await;
    assert!(
        !ids.contains(&c.id) && excluded["no_consent"] == 1,
        "{excluded}"
    );
    let (_, h) = sales
        .get(&format!("/api/v1/consents?contact_id={}", c.id))
        .await;
    let entries = h["entries"].as_array().unwrap();
    let marketing: Vec<&Value> = entries
        .iter()
        .filter(|e| e["purpose"] == "marketing_email")
        .collect();
    assert_eq!(marketing.len(), 2);
    assert_eq!(h["current"]["marketing_email"]["state"], "withdrawn");
    assert_eq!(h["current"]["sale_share"]["state"], "withdrawn");
    assert!(marketing[0]["receipt"]["notice"]["version"].is_string());

    // The privacy figures count the people each limit is in force on.
    let (st, summary) = po.get("/api/v1/dsar/summary").await;
    assert_eq!(st, 200, "{summary}");
    assert_eq!(summary["flags_in_force"]["restricted"], 1, "{summary}");
    assert_eq!(summary["flags_in_force"]["legal_hold"], 0, "{summary}");
    // Lifting the restriction brings Rita back.
    let (_, q) = po.get("/api/v1/dsar?state=fulfilled").await;
    let rid = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "restriction")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = po
        .post(&format!("/api/v1/dsar/{rid}/lift"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (_, summary) = po.get("/api/v1/dsar/summary").await;
    assert_eq!(summary["flags_in_force"]["restricted"], 0, "{summary}");
    assert_eq!(
        sales.get(&format!("/api/v1/contacts/{}", r.id)).await.0,
        200
    );
    // Sales may not export at all.
    assert_eq!(sales.get("/api/v1/exports/contacts").await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_portal_honours_global_privacy_control() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let manager = Api {
        s: &s,
        token: s.token_for(Role::Manager).await,
    };
    let g = person(&sales, "Gina", "gina@dsar.example").await;
    let r = s
        .client()
        .post(s.url("/api/v1/privacy/requests"))
        .header("Sec-GPC", "1")
        .json(&json!({"kind": "access", "regime": "ccpa", "subject_email": "gina@dsar.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["gpc_opt_out_recorded"], true);
    let (_, e) = manager
        .get("/api/v1/exports/contacts?purpose=sale_share")
        .await;
    assert!(
        e["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != g.id.as_str())
    );
    let (_, h) = sales
        .get(&format!("/api/v1/consents?contact_id={}", g.id))
        .await;
    assert_eq!(h["entries"][0]["method"], "gpc");
    // The status link works with its token, and only with it.
    let id = v["id"].as_str().unwrap();
    let token = v["status_token"].as_str().unwrap();
    let ok = s
        .client()
        .get(s.url(&format!("/api/v1/privacy/requests/{id}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let st: Value = ok.json().await.unwrap();
    assert_eq!(st["state"], "received");
    assert!(
        !st.to_string().contains("gina"),
        "the public status shows no personal data"
    );
    let bad = s
        .client()
        .get(s.url(&format!("/api/v1/privacy/requests/{id}?token=cds_wrong")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);
    // CCPA requests are due 45 days later.
    let received =
        custos_domain::value::parse_timestamp(st["received_at"].as_str().unwrap()).unwrap();
    let due = custos_domain::value::parse_timestamp(st["due_at"].as_str().unwrap()).unwrap();
    assert_eq!((due - received).whole_days(), 45);
    // An opt-out without GPC answers the same for unknown emails.
    let r = s
        .client()
        .post(s.url("/api/v1/privacy/opt-out"))
        .json(&json!({"email": "nobody@nowhere.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_by_code_ambiguity_extension_and_rectification() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let a = person(&sales, "Twin", "twin@dsar.example").await;
    let b = person(&sales, "Twinb", "twin@dsar.example").await;
    let (st, r) = po.post("/api/v1/dsar", json!({"kind": "rectification", "regime": "gdpr", "subject_email": "twin@dsar.example", "details": {"last_name": "Corrected"}})).await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    let code = r["verification_code"].as_str().unwrap();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (st, e) = po
        .post(
            &format!("/api/v1/dsar/{id}/verify"),
            json!({"method": "code", "code": wrong}),
        )
        .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "code");
    let (st, v) = po
        .post(
            &format!("/api/v1/dsar/{id}/verify"),
            json!({"method": "code", "code": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["candidates"].as_array().unwrap().len(),
        2,
        "two contacts share the email"
    );
    let (st, _) = po
        .post(&format!("/api/v1/dsar/{id}/fulfil"), json!({}))
        .await;
    assert_eq!(st, 409, "ambiguous: the operator must choose");
    let (st, _) = po
        .post(
            &format!("/api/v1/dsar/{id}/match"),
            json!({"contact_id": b.id}),
        )
        .await;
    assert_eq!(st, 200);
    // Extension: once, with a reason, two months for the GDPR.
    let (st, x) = po
        .post(
            &format!("/api/v1/dsar/{id}/extend"),
            json!({"reason": "complex: records in two systems"}),
        )
        .await;
    assert_eq!(st, 200);
    let before = custos_domain::value::parse_timestamp(r["due_at"].as_str().unwrap()).unwrap();
    let after = custos_domain::value::parse_timestamp(x["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(after, custos_domain::dsar::add_months(before, 2));
    assert_eq!(x["extension_reason"], "complex: records in two systems");
    assert_eq!(
        po.post(
            &format!("/api/v1/dsar/{id}/extend"),
            json!({"reason": "once more please"})
        )
        .await
        .0,
        409
    );
    let (st, v) = po
        .post(&format!("/api/v1/dsar/{id}/fulfil"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, bb) = sales.get(&format!("/api/v1/contacts/{}", b.id)).await;
    assert_eq!(bb["last_name"], "Corrected");
    let (_, aa) = sales.get(&format!("/api/v1/contacts/{}", a.id)).await;
    assert_eq!(
        aa["last_name"],
        a.values[1].as_str(),
        "the other contact is untouched"
    );
    // Bad input: unknown kind, bad regime, bad email, bad correction.
    let (st, e) = po
        .post(
            "/api/v1/dsar",
            json!({"kind": "nope", "regime": "eu", "subject_email": "x"}),
        )
        .await;
    assert_eq!(st, 422);
    let fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["kind", "regime", "subject_email"]);
    let (st, e) = po.post("/api/v1/dsar", json!({"kind": "rectification", "regime": "gdpr", "subject_email": "twin@dsar.example", "details": {"email": "not an email"}})).await;
    assert_eq!(st, 422);
    assert_eq!(e["errors"][0]["field"], "details.email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_portal_refuses_a_flood_from_one_address() {
    let s = TestServer::start().await;
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let limit = custos_service::PORTAL_PER_HOUR;
    let open = |i: u64| {
        s.client()
            .post(s.url("/api/v1/privacy/requests"))
            .json(&json!({"kind": "access", "regime": "gdpr", "subject_email": format!("p{i}@flood.example")}))
            .send()
    };
    for i in 0..limit {
        assert_eq!(open(i).await.unwrap().status(), 201, "submission {i}");
    }
    let r = open(limit).await.unwrap();
    assert_eq!(r.status(), 429, "one past the hourly limit");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    // The opt-out form shares the address's allowance.
    let r = s
        .client()
        .post(s.url("/api/v1/privacy/opt-out"))
        .json(&json!({"email": "p1@flood.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Nothing was recorded past the limit, and the refusal is on record.
    let (_, list) = po.get("/api/v1/dsar?state=received").await;
    assert_eq!(list["items"].as_array().unwrap().len() as u64, limit);
    let (_, events) = po.get("/api/v1/audit/events?action=portal.throttled").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_refused_on_a_legal_ground_and_closed() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let p = person(&sales, "Refused", "refused@dsar.example").await;
    let (st, r) = po
        .post(
            "/api/v1/dsar",
            json!({"kind": "erasure", "regime": "gdpr", "subject_email": "refused@dsar.example"}),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    let status_url = r["status_url"]
        .as_str()
        .unwrap()
        .replace("/privacy/requests/", "/api/v1/privacy/requests/");
    let reject = format!("/api/v1/dsar/{id}/reject");

    // Bad input names its fields and changes nothing.
    let (st, e) = po
        .post(&reject, json!({"ground": "because", "explanation": "no"}))
        .await;
    assert_eq!(st, 422, "{e}");
    let fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["ground", "explanation"]);
    let (st, e) = po
        .post(
            &reject,
            json!({"ground": "exemption", "explanation": "long enough", "extra": 1}),
        )
        .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(
        po.get(&format!("/api/v1/dsar/{id}")).await.1["state"],
        "received"
    );

    // Only the privacy officer may refuse.
    let body = json!({"ground": "identity_not_verified", "explanation": "The code was never read back to us."});
    assert_eq!(sales.post(&reject, body.clone()).await.0, 403);

    // Refused while still unverified: closed, with the ground and explanation.
    let (st, v) = po.post(&reject, body.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "rejected");
    assert_eq!(v["clock"], "closed");
    assert!(v["closed_at"].is_string());
    assert_eq!(v["result"]["rejected"]["ground"], "identity_not_verified");
    assert_eq!(
        v["result"]["rejected"]["explanation"],
        "The code was never read back to us."
    );

    // A closed request takes no further step.
    assert_eq!(po.post(&reject, body).await.0, 409);
    let verify =
        json!({"method": "operator_attested", "reason": "called back on the number we hold"});
    let (st, _) = po.post(&format!("/api/v1/dsar/{id}/verify"), verify).await;
    assert_eq!(st, 409, "a refused request is not verified afterwards");
    assert_eq!(
        po.post(&format!("/api/v1/dsar/{id}/fulfil"), json!({}))
            .await
            .0,
        409
    );
    let (st, _) = po
        .post(
            &format!("/api/v1/dsar/{id}/extend"),
            json!({"reason": "more time please"}),
        )
        .await;
    assert_eq!(st, 409);

    // Nothing about the person changed: the erasure was not carried out.
    let (st, c) = sales.get(&format!("/api/v1/contacts/{}", p.id)).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["email"], "refused@dsar.example");

    // The person's status link shows the ground, not the explanation.
    let got = s.client().get(s.url(&status_url)).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let public: Value = got.json().await.unwrap();
    assert_eq!(public["state"], "rejected");
    assert_eq!(public["rejection_ground"], "identity_not_verified");
    assert!(!public.to_string().contains("never read back"));

    // The refusal is on record, with its ground.
    let (st, ev) = po.get(&format!("/api/v1/dsar/{id}/evidence")).await;
    assert_eq!(st, 200, "{ev}");
    let steps = ev["timeline"].as_array().unwrap();
    let refusal = steps
        .iter()
        .find(|e| e["event"]["action"] == "request.reject")
        .expect("the refusal is in the evidence pack");
    assert_eq!(refusal["event"]["outcome"], "success", "{refusal}");
    assert!(
        refusal["event"]["detail"]
            .as_str()
            .unwrap()
            .contains("ground=identity_not_verified")
    );
    // Matching a contact to a closed request is refused too.
    let (st, _) = po
        .post(
            &format!("/api/v1/dsar/{id}/match"),
            json!({"contact_id": p.id}),
        )
        .await;
    assert_eq!(st, 409);
}

/// Leaves of the ledger with this action about this subject, oldest first.
async fn verify_outcomes(s: &TestServer, id: &str) -> Vec<String> {
    let q = custos_service::EventQuery {
        filter: custos_service::EventFilter {
            subject_id: Some(id.to_string()),
            action: Some("request.verify".into()),
            ..Default::default()
        },
        limit: 100,
    };
    let (events, _) = s
        .custos
        .audit_events(&custos_service::Principal::cli(), &q)
        .await
        .unwrap();
    events
        .into_iter()
        .rev()
        .map(|e| e.event.outcome.clone())
        .collect()
}

/// A request's six-digit code cannot be guessed: five wrong codes in a row
/// void it (each attempt audited), the right code then fails too, and only
/// a newly issued code verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_void_the_code_until_a_new_one_is_issued() {
    let s = TestServer::start().await;
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let (st, r) = po
        .post(
            "/api/v1/dsar",
            json!({"kind": "access", "regime": "gdpr", "subject_email": "guess@dsar.example"}),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let code = r["verification_code"].as_str().unwrap().to_string();
    assert_eq!(r["code_attempts_left"], 5, "{r}");
    let wrong = |n: u32| {
        let w = format!("{:06}", (code.parse::<u32>().unwrap() + n) % 1_000_000);
        assert_ne!(w, code);
        w
    };
    let verify = |c: String| {
        let po = &po;
        let id = id.clone();
        async move {
            po.post(
                &format!("/api/v1/dsar/{id}/verify"),
                json!({"method": "code", "code": c}),
            )
            .await
        }
    };
    for n in 1..=5u32 {
        let (st, e) = verify(wrong(n)).await;
        assert_eq!(st, 422, "{e}");
        assert_eq!(e["errors"][0]["field"], "code", "{e}");
        let msg = e["errors"][0]["message"].as_str().unwrap();
        if n < 5 {
            assert!(msg.contains(&format!("{} ", 5 - n)), "attempt {n}: {msg}");
        } else {
            assert!(msg.contains("void"), "attempt {n}: {msg}");
        }
    }
    let (_, v) = po.get(&format!("/api/v1/dsar/{id}")).await;
    assert!(v["verification_code"].is_null(), "{v}");
    assert!(v["code_attempts_left"].is_null(), "{v}");
    // The right code no longer works either.
    let (st, e) = verify(code.clone()).await;
    assert_eq!(st, 422, "{e}");
    assert!(
        e["errors"][0]["message"].as_str().unwrap().contains("void"),
        "{e}"
    );
    let (_, v) = po.get(&format!("/api/v1/dsar/{id}")).await;
    assert_eq!(v["state"], "received");
    assert_eq!(
        verify_outcomes(&s, &id).await,
        vec!["failed"; 6],
        "every attempt is on record"
    );

    // A new code starts the count again and verifies.
    let (st, v) = po.post(&format!("/api/v1/dsar/{id}/code"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let fresh = v["verification_code"].as_str().unwrap().to_string();
    assert_eq!(fresh.len(), 6);
    assert_eq!(v["code_attempts_left"], 5, "{v}");
    let (st, v) = verify(fresh.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "verified");
    assert!(v["verification_code"].is_null(), "a used code is gone: {v}");
    // No new code once verified; other roles may not issue one.
    let (st, _) = po.post(&format!("/api/v1/dsar/{id}/code"), json!({})).await;
    assert_eq!(st, 409);
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let (st, _) = sales
        .post(&format!("/api/v1/dsar/{id}/code"), json!({}))
        .await;
    assert_eq!(st, 403);
}

/// A request sent through the public portal has a code the privacy officer
/// can see (to send to the person until Custos mails it), and that code
/// verifies the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_request_shows_its_code_to_the_privacy_officer() {
    let s = TestServer::start().await;
    let r = s
        .client()
        .post(s.url("/api/v1/privacy/requests"))
        .json(&json!({"kind": "access", "regime": "gdpr", "subject_email": "portal@dsar.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let opened: Value = r.json().await.unwrap();
    assert!(
        opened.get("verification_code").is_none() || opened["verification_code"].is_null(),
        "the public answer does not carry the code: {opened}"
    );
    let id = opened["id"].as_str().unwrap().to_string();
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let (st, v) = po.get(&format!("/api/v1/dsar/{id}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["channel"], "portal");
    let code = v["verification_code"].as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let (st, v) = po
        .post(
            &format!("/api/v1/dsar/{id}/verify"),
            json!({"method": "code", "code": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["verification"], "code");
}
