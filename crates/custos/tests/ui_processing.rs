//! Data map, record of processing, processor register, controller details
//! and the minimisation review, over HTTP as the privacy officer and the
//! administrator use them: the record lists exactly the inventory's
//! categories, purposes and recipients; bad register entries are refused
//! and change nothing; the controller reaches the public notice; the
//! minimisation review flags a field never read and counts it once read; a
//! field no longer collected is refused; every box of the data map links
//! somewhere that exists.

#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{api_get, api_post};
use common::ui::{page_text, sign_in_new};
use custos_domain::Role;
use custos_domain::inventory;
use custos_testkit::TestServer;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_of_processing_matches_the_inventory_exactly() {
    let s = TestServer::start().await;
    let po = s.token_for(Role::PrivacyOfficer).await;
    let r = api_get(&s, &po, "/api/v1/processing").await;
    assert_eq!(r["format"], "custos-record-of-processing/1");
    let acts = r["activities"].as_array().unwrap();
    // The inventory's own sets, read from the declarations.
    let want_purposes: BTreeSet<String> = inventory::FIELDS
        .iter()
        .flat_map(|f| f.purposes.iter().map(|p| p.name().to_string()))
        .collect();
    let want_categories: BTreeSet<String> = inventory::FIELDS
        .iter()
        .filter(|f| !f.purposes.is_empty())
        .map(|f| f.category.name().to_string())
        .collect();
    let want_recipients: BTreeSet<String> = inventory::FIELDS
        .iter()
        .flat_map(|f| f.recipients.iter().map(|r| r.to_string()))
        .collect();
    let got_purposes: BTreeSet<String> = acts
        .iter()
        .map(|a| a["purpose"].as_str().unwrap().to_string())
        .collect();
    let got_categories: BTreeSet<String> = acts
        .iter()
        .flat_map(|a| strings(&a["categories"]))
        .collect();
    let got_recipients: BTreeSet<String> = acts
        .iter()
        .flat_map(|a| strings(&a["recipients"]))
        .collect();
    assert_eq!(got_purposes, want_purposes);
    assert_eq!(got_categories, want_categories);
    assert_eq!(got_recipients, want_recipients);
    // Per purpose, exactly the fields declaring it.
    for a in acts {
        let purpose = a["purpose"].as_str().unwrap();
        let want: BTreeSet<String> = inventory::FIELDS
            .iter()
            .filter(|f| f.purposes.iter().any(|p| p.name() == purpose))
            .map(|f| format!("{}.{}", f.entity.name(), f.name))
            .collect();
        assert_eq!(strings(&a["fields"]), want, "{purpose}");
    }
    assert_eq!(r["without_purpose"], json!([]));
    // The measures are read from the installation: this test server runs
    // with the MFA requirement off, and the record says so.
    let measures = r["security"].as_array().unwrap();
    let mfa = measures
        .iter()
        .find(|m| m["measure"] == "Multi-factor authentication")
        .unwrap();
    assert!(
        mfa["state"].as_str().unwrap().starts_with("optional"),
        "{mfa}"
    );
    assert!(measures.iter().any(|m| m["measure"] == "Encryption at rest"
        && m["state"].as_str().unwrap().contains("AES-256-GCM")));
    // Sales staff are refused it.
    let sales = s.token_for(Role::Sales).await;
    let r = s
        .client()
        .get(s.url("/api/v1/processing"))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The CSV has one activity row per purpose, and the HTML names them.
    let (b, _) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let csv = page_text(&b, &s, "/app/privacy/processing.csv").await;
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let purposes_in_csv: BTreeSet<String> = rows
        .iter()
        .filter(|r| &r[0] == "activity")
        .map(|r| r[1].to_string())
        .collect();
    assert_eq!(purposes_in_csv, want_purposes);
    let html = page_text(&b, &s, "/app/privacy/processing").await;
    assert!(html.contains("details are not entered yet"), "{html}");
    for p in &want_purposes {
        assert!(html.contains(&format!("id=\"purpose-{p}\"")), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_and_the_controller_are_kept_checked_and_named() {
    let s = TestServer::start().await;
    let po = s.token_for(Role::PrivacyOfficer).await;
    let admin = s.token_for(Role::Admin).await;
    let put = |token: String, path: &'static str, body: Value| {
        let s = &s;
        async move {
            s.client()
                .put(s.url(path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // A processor outside the EEA must name its transfer mechanism; a bad
    // category is refused; neither is saved.
    for (body, field) in [
        (
            json!({"name": "MailCo", "service": "email delivery", "categories": ["contact_details"], "country": "US"}),
            "transfer",
        ),
        (
            json!({"name": "MailCo", "service": "email delivery", "categories": ["postcodes"], "country": "IE"}),
            "categories",
        ),
        (
            json!({"name": "MailCo", "service": "email delivery", "categories": ["identity"], "country": "Ireland"}),
            "country",
        ),
    ] {
        let r = s
            .client()
            .post(s.url("/api/v1/processors"))
            .bearer_auth(&po)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let j: Value = r.json().await.unwrap();
        assert!(j.to_string().contains(field), "{j}");
    }
    assert_eq!(
        api_get(&s, &po, "/api/v1/processors").await["items"],
        json!([])
    );
    let mail = api_post(
        &s,
        &po,
        "/api/v1/processors",
        json!({"name": "MailCo", "service": "email delivery", "categories": ["contact_details", "identity"],
               "country": "us", "transfer": "sccs", "dpa_signed_on": "2026-01-15"}),
    )
    .await;
    assert_eq!(mail["country"], "US");
    assert_eq!(mail["categories"], json!(["identity", "contact_details"]));
    let host = api_post(
        &s,
        &po,
        "/api/v1/processors",
        json!({"name": "HostCo", "service": "hosting", "categories": ["identity", "financial"], "country": "DE"}),
    )
    .await;
    // Sales staff cannot add one.
    let sales = s.token_for(Role::Sales).await;
    let r = s
        .client()
        .post(s.url("/api/v1/processors"))
        .bearer_auth(&sales)
        .json(&json!({"name": "X", "service": "y", "categories": ["identity"], "country": "DE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The record names them: a transfer for MailCo only, and each as a
    // processor of the activities whose categories it receives.
    let r = api_get(&s, &po, "/api/v1/processing").await;
    assert_eq!(
        r["transfers"],
        json!([{"processor": "MailCo", "country": "US", "mechanism": "sccs"}])
    );
    let orders = r["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["purpose"] == "accounting")
        .unwrap();
    assert!(strings(&orders["processors"]).contains("HostCo"));

    // The controller: refused without an email, then saved, then on the
    // public notice and in the record.
    let r = put(
        admin.clone(),
        "/api/v1/settings/controller",
        json!({"name": "Acme Ltd"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = put(
        po.clone(),
        "/api/v1/settings/controller",
        json!({"name": "Acme Ltd", "email": "privacy@acme.example"}),
    )
    .await;
    assert_eq!(r.status(), 403, "only administrators set it");
    let r = put(
        admin.clone(),
        "/api/v1/settings/controller",
        json!({"name": "Acme Ltd", "address": "1 Main St\nDublin", "email": "privacy@acme.example",
               "dpo_name": "Dana Officer", "dpo_email": "dpo@acme.example"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let notice = s
        .client()
        .get(s.url("/privacy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("Acme Ltd"));
    assert!(notice.contains("dpo@acme.example"));
    let r = api_get(&s, &po, "/api/v1/processing").await;
    assert_eq!(r["controller"]["dpo_name"], "Dana Officer");

    // Removing a processor: the page asks first, then it is gone.
    let (b, csrf) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let id = host["id"].as_str().unwrap();
    let confirm = page_text(&b, &s, &format!("/app/privacy/processors/{id}/delete")).await;
    assert!(confirm.contains("Remove HostCo from the register"));
    let r = b
        .post(s.url(&format!("/app/privacy/processors/{id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection() || r.status().is_success());
    let left = api_get(&s, &po, "/api/v1/processors").await;
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(left["items"][0]["name"], "MailCo");
    // Each change is in the ledger.
    let events = api_get(&s, &admin, "/api/v1/audit/events?action=processor.delete").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}

fn field<'a>(report: &'a Value, key: &str) -> &'a Value {
    let (entity, name) = key.split_once('.').unwrap();
    report["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["entity"] == entity && f["field"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimisation_review_flags_unread_fields_and_stops_collecting() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let po = s.token_for(Role::PrivacyOfficer).await;
    let ann = api_post(
        &s,
        &admin,
        "/api/v1/contacts",
        json!({"first_name": "Ann", "last_name": "Shopper", "email": "ann@shop.example"}),
    )
    .await;
    let ann_id = ann["id"].as_str().unwrap();
    let order = api_post(
        &s,
        &admin,
        "/api/v1/orders",
        json!({"contact_id": ann_id, "status": "paid", "total": "5.00", "currency": "EUR",
               "shipping_address": "9 Road", "placed_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let report = api_get(&s, &po, "/api/v1/minimisation").await;
    let addr = field(&report, "order.shipping_address");
    assert_eq!(addr["reads"], 0);
    assert_eq!(addr["held"], 1);
    assert_eq!(addr["writes"], 1);
    assert_eq!(addr["flags"], json!(["unread", "held_unused"]));
    // A field nobody filled in is unread but holds nothing.
    let phone = field(&report, "contact.phone");
    assert_eq!(phone["held"], 0);
    assert_eq!(phone["flags"], json!(["unread"]));

    // Reading the order counts as a read of its shipping address.
    api_get(
        &s,
        &admin,
        &format!("/api/v1/orders/{}", order["id"].as_str().unwrap()),
    )
    .await;
    let report = api_get(&s, &po, "/api/v1/minimisation").await;
    let addr = field(&report, "order.shipping_address");
    assert_eq!(addr["reads"], 1);
    assert_eq!(addr["flags"], json!([]));
    // The review is due: it never happened.
    assert_eq!(report["review_overdue"], true);

    // Stop collecting phone numbers: a reason is required; required fields
    // cannot stop; then a new phone number is refused, clearing is not.
    let put = |path: String, body: Value| {
        let s = &s;
        let po = po.clone();
        async move {
            s.client()
                .put(s.url(&path))
                .bearer_auth(po)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(
        "/api/v1/minimisation/contact/phone".into(),
        json!({"decision": "stop_collecting", "reason": ""}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = put(
        "/api/v1/minimisation/contact/last_name".into(),
        json!({"decision": "stop_collecting", "reason": "no"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = put(
        "/api/v1/minimisation/contact/phone".into(),
        json!({"decision": "stop_collecting", "reason": "we never call"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = s
        .client()
        .post(s.url("/api/v1/contacts"))
        .bearer_auth(&admin)
        .json(&json!({"first_name": "Bo", "last_name": "B", "phone": "+44 20 7946 0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("no longer collected"));
    let r = s
        .client()
        .patch(s.url(&format!("/api/v1/contacts/{ann_id}")))
        .bearer_auth(&admin)
        .json(&json!({"phone": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The contact form leaves the field out.
    let (b, csrf) = sign_in_new(&s, Role::Admin).await;
    let form = page_text(&b, &s, "/app/contacts/new").await;
    assert!(!form.contains("name=\"phone\""));
    assert!(form.contains("name=\"email\""));
    let report = api_get(&s, &po, "/api/v1/minimisation").await;
    assert_eq!(
        field(&report, "contact.phone")["decision"]["decision"],
        "stop_collecting"
    );
    // The UI page shows the flags, and marking the review done clears the
    // overdue state.
    let (pb, pcsrf) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let html = page_text(&pb, &s, "/app/privacy/minimisation").await;
    assert!(html.contains("Not read in the period"));
    assert!(html.contains("we never call"));
    // The overview reminds of the review until it is done.
    let overview = page_text(&pb, &s, "/app/privacy").await;
    assert!(
        overview.contains("minimisation review is due"),
        "{overview}"
    );
    pb.post(s.url("/app/privacy/minimisation/reviewed"))
        .form(&[("csrf", pcsrf.as_str())])
        .send()
        .await
        .unwrap();
    let report = api_get(&s, &po, "/api/v1/minimisation").await;
    assert_eq!(report["review_overdue"], false);
    let overview = page_text(&pb, &s, "/app/privacy").await;
    assert!(!overview.contains("minimisation review is due"));
    // Sales staff cannot see it; a form without the token changes nothing.
    let (sales, _) = sign_in_new(&s, Role::Sales).await;
    let r = sales
        .get(s.url("/app/privacy/minimisation"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = pb
        .post(s.url("/app/privacy/minimisation/decide"))
        .form(&[
            ("field", "contact.phone"),
            ("decision", "keep"),
            ("reason", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let report = api_get(&s, &po, "/api/v1/minimisation").await;
    assert_eq!(
        field(&report, "contact.phone")["decision"]["decision"],
        "stop_collecting"
    );
    let _ = csrf;
}

/// Every `href` inside the SVG of a page.
fn svg_links(html: &str) -> Vec<String> {
    let start = html.find("<svg class=\"data-map\"").unwrap();
    let end = html[start..].find("</svg>").unwrap() + start;
    html[start..end]
        .split("<a href=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_box_of_the_data_map_links_somewhere_that_exists() {
    let s = TestServer::start().await;
    let po = s.token_for(Role::PrivacyOfficer).await;
    api_post(
        &s,
        &po,
        "/api/v1/processors",
        json!({"name": "HostCo", "service": "hosting", "categories": ["identity"], "country": "DE"}),
    )
    .await;
    let (b, _) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let html = page_text(&b, &s, "/app/privacy/map").await;
    let links = svg_links(&html);
    assert!(links.len() > 20, "{} boxes", links.len());
    assert!(html.contains("HostCo"));
    let mut pages = std::collections::HashMap::new();
    for link in links {
        let (path, anchor) = match link.split_once('#') {
            Some((p, a)) => (if p.is_empty() { "/app/privacy/map" } else { p }, Some(a)),
            None => (link.as_str(), None),
        };
        if !pages.contains_key(path) {
            let r = b.get(s.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{link}");
            pages.insert(path.to_string(), r.text().await.unwrap());
        }
        if let Some(a) = anchor {
            assert!(
                pages[path].contains(&format!("id=\"{a}\"")),
                "{link}: no element with that id"
            );
        }
    }
    // Sales staff are refused the map.
    let (sales, _) = sign_in_new(&s, Role::Sales).await;
    let r = sales.get(s.url("/app/privacy/map")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}
