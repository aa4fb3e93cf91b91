//! The Retention page over plain HTTP, as the privacy officer uses it: the
//! policies with what is due, a hold placed from a contact's page (a bad
//! form is refused with the values kept), a run that needs its confirmation
//! and leaves a certificate page and JSON, the hold lifted after its own
//! confirmation page; other roles are refused, and a form without the
//! session's token changes nothing. The API gives the same.

#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{api_get, api_post};
use common::ui::{hidden_csrf, sign_in_new};
use custos_domain::Role;
use custos_testkit::TestServer;
use serde_json::json;

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_page_runs_the_purge_and_places_and_lifts_holds() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let po_token = s.token_for(Role::PrivacyOfficer).await;
    let person = |first: &str| json!({"first_name": first, "last_name": "Shopper", "email": format!("{first}@shop.example")});
    let ann = api_post(&s, &admin, "/api/v1/contacts", person("ann")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = api_post(&s, &admin, "/api/v1/contacts", person("bob")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = |who: &str| {
        json!({"contact_id": who, "status": "completed", "total": "5.00", "currency": "EUR",
            "shipping_address": "9 Old Road", "placed_at": "2020-01-01T00:00:00Z", "completed_at": "2020-01-02T00:00:00Z"})
    };
    let ann_order = api_post(&s, &admin, "/api/v1/orders", old(&ann)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_order = api_post(&s, &admin, "/api/v1/orders", old(&bob)).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Other roles are refused the page.
    let (sales, _) = sign_in_new(&s, Role::Sales).await;
    let r = sales
        .get(s.url("/app/privacy/retention"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let (b, csrf) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let html = text(b.get(s.url("/app/privacy/retention")).send().await.unwrap()).await;
    for want in [
        "orders.completed_at.2y",
        "activities.occurred_at.2y",
        "requests.closed_at.3y",
        "2 records are due",
        "No legal hold is in force",
        "No run yet",
    ] {
        assert!(html.contains(want), "{want}: {html}");
    }
    // The preview lists ids and dates, never values.
    assert!(!html.contains("9 Old Road"));
    assert!(html.contains(&format!("/app/orders/{ann_order}")));

    // A hold from Bob's page: the link, the form, a refusal, then the hold.
    let page = text(
        b.get(s.url(&format!("/app/contacts/{bob}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let link = format!("/app/privacy/retention?subject={bob}#hold");
    assert!(page.contains(&link), "the contact page links to the form");
    let form = text(b.get(s.url(&link)).send().await.unwrap()).await;
    assert!(form.contains("Place a legal hold on bob Shopper"), "{form}");
    let r = b
        .post(s.url("/app/privacy/holds"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("subject_id", bob.as_str()),
            ("reason", "  "),
            ("review_on", "2001-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(html.contains("nothing was saved") && html.contains("2001-01-01"));
    assert_eq!(
        api_get(&s, &po_token, "/api/v1/holds").await["items"],
        json!([])
    );
    let r = b
        .post(s.url("/app/privacy/holds"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("subject_id", bob.as_str()),
            ("reason", "Dispute over the 2020 delivery"),
            ("review_on", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let holds = api_get(&s, &po_token, "/api/v1/holds").await;
    assert_eq!(
        holds["items"][0]["reason"],
        "Dispute over the 2020 delivery"
    );
    let hold = holds["items"][0]["id"].as_str().unwrap().to_string();

    // The run needs its confirmation, and the session's token.
    let r = b
        .post(s.url("/app/privacy/retention/run"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(text(r).await.contains("Tick the box to confirm"));
    let r = b
        .post(s.url("/app/privacy/retention/run"))
        .form(&[("csrf", "wrong"), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let order = |id: &str| format!("/api/v1/orders/{id}");
    assert_eq!(
        api_get(&s, &po_token, &order(&ann_order)).await["shipping_address"],
        "9 Old Road",
        "nothing purged yet"
    );
    let r = b
        .post(s.url("/app/privacy/retention/run"))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let at = r.headers()["location"].to_str().unwrap().to_string();
    assert!(at.starts_with("/app/privacy/retention/runs/"), "{at}");
    let cert_page = text(b.get(s.url(&at)).send().await.unwrap()).await;
    assert!(cert_page.contains("Retention run finished"));
    assert!(cert_page.contains("verify_certificate.py"));
    let json: serde_json::Value = b
        .get(s.url(&format!("{at}/certificate.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["format"], "custos-purge-certificate/1");
    let orders = json["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == "orders.completed_at.2y")
        .unwrap()
        .clone();
    assert_eq!(
        (orders["purged"].clone(), orders["held"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        api_get(&s, &po_token, &order(&ann_order)).await["shipping_address"].is_null(),
        "Ann's order is anonymised"
    );
    assert_eq!(
        api_get(&s, &po_token, &order(&bob_order)).await["shipping_address"],
        "9 Old Road",
        "Bob's is held"
    );

    // Lifting asks first, then the hold is gone.
    let lift = format!("/app/privacy/holds/{hold}/lift");
    let html = text(b.get(s.url(&lift)).send().await.unwrap()).await;
    assert!(
        html.contains("This is the last hold on this person"),
        "{html}"
    );
    let csrf2 = hidden_csrf(&html);
    let r = b
        .post(s.url(&lift))
        .form(&[("csrf", csrf2.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        api_get(&s, &po_token, "/api/v1/holds").await["items"],
        json!([])
    );
    let r = b.get(s.url(&lift)).send().await.unwrap();
    assert_eq!(r.status(), 404, "a lifted hold has no lift page");

    // The API: preview and runs, and a run over it.
    let preview = api_get(&s, &po_token, "/api/v1/retention/preview").await;
    let due: u64 = preview["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purged"].as_u64().unwrap())
        .sum();
    assert_eq!(due, 1, "Bob's order is due now: {preview}");
    let run = api_post(&s, &po_token, "/api/v1/retention/runs", json!({})).await;
    assert_eq!(run["resumed"], false);
    let runs = api_get(&s, &po_token, "/api/v1/retention/runs").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 2);
    let r = s
        .client()
        .post(s.url("/api/v1/retention/runs"))
        .bearer_auth(&po_token)
        .json(&json!({"batch": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let sales_token = s.token_for(Role::Sales).await;
    let r = s
        .client()
        .get(s.url("/api/v1/retention/preview"))
        .bearer_auth(&sales_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_period_is_confirmed_with_its_count_and_shows_everywhere_as_a_new_version() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let po_token = s.token_for(Role::PrivacyOfficer).await;
    let ann = api_post(
        &s,
        &admin,
        "/api/v1/contacts",
        json!({"first_name": "ann", "last_name": "Shopper"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Completed well within two years of today, but more than one ago.
    let completed =
        custos_domain::value::format_timestamp(custos_domain::retention::months_before(
            custos_domain::Clock::now(&custos_domain::SystemClock),
            18,
        ));
    api_post(
        &s,
        &admin,
        "/api/v1/orders",
        json!({"contact_id": ann, "status": "completed", "total": "5.00", "currency": "EUR",
            "placed_at": completed, "completed_at": completed, "shipping_address": "1 Lane"}),
    )
    .await;
    let page = "/app/privacy/retention/policies/orders.completed_at";
    let (b, _) = sign_in_new(&s, Role::PrivacyOfficer).await;
    let html = text(b.get(s.url("/app/privacy/retention")).send().await.unwrap()).await;
    assert!(html.contains(&format!("href=\"{page}\"")), "{html}");
    let html = text(b.get(s.url(page)).send().await.unwrap()).await;
    assert!(html.contains("No change yet"), "{html}");
    let csrf = hidden_csrf(&html);

    // Bad input: the form again with the error and the values; nothing saved.
    let r = b
        .post(s.url(page))
        .form(&[
            ("csrf", csrf.as_str()),
            ("years", "soon"),
            ("reason", "tax"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(html.contains("whole number of years"), "{html}");
    assert!(html.contains("value=\"soon\""), "{html}");

    // Shorter: the count first, nothing saved yet.
    let r = b
        .post(s.url(page))
        .form(&[
            ("csrf", csrf.as_str()),
            ("years", "1"),
            ("reason", "tax rule"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = text(r).await;
    assert!(html.contains("would purge 1 more record"), "{html}");
    let policies = api_get(&s, &po_token, "/api/v1/retention/policies").await;
    let orders = |v: &serde_json::Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == "orders.completed_at")
            .cloned()
            .unwrap()
    };
    assert_eq!(orders(&policies)["version"], 1);
    let impact = api_get(
        &s,
        &po_token,
        "/api/v1/retention/policies/orders.completed_at/impact?years=1",
    )
    .await;
    assert_eq!(
        (impact["more"].as_u64(), impact["due_then"].as_u64()),
        (Some(1), Some(1))
    );
    // A wrong token changes nothing; the confirmation saves version 2.
    let r = b
        .post(s.url(page))
        .form(&[
            ("csrf", "wrong"),
            ("years", "1"),
            ("reason", "tax rule"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let csrf = hidden_csrf(&html);
    let r = b
        .post(s.url(page))
        .form(&[
            ("csrf", csrf.as_str()),
            ("years", "1"),
            ("reason", "tax rule"),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = text(b.get(s.url(page)).send().await.unwrap()).await;
    assert!(
        html.contains("tax rule") && html.contains("2 years → 1 year"),
        "{html}"
    );
    let v = orders(&api_get(&s, &po_token, "/api/v1/retention/policies").await);
    assert_eq!(
        (v["version"].as_u64(), v["years"].as_u64()),
        (Some(2), Some(1))
    );

    // The public notice and the record of processing say the new period.
    let notice = text(s.client().get(s.url("/privacy")).send().await.unwrap()).await;
    assert!(
        notice.contains("1 year after the order is completed"),
        "{notice}"
    );
    assert!(!notice.contains("2 years after the order is completed"));

    // The API: shorter again without confirm is 409 with the count; longer
    // is saved; a sales user is refused; unknown fields are 422.
    let put = |token: String, body: serde_json::Value| {
        let s = &s;
        async move {
            s.client()
                .put(s.url("/api/v1/retention/policies/orders.completed_at"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(po_token.clone(), json!({"years": 4, "reason": "auditor"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["version"], 3);
    let r = put(po_token.clone(), json!({"years": 1, "reason": "again"})).await;
    assert_eq!(r.status(), 409);
    assert!(text(r).await.contains("1 more record"));
    let r = put(
        po_token.clone(),
        json!({"years": 1, "reason": "x", "why": "y"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let sales = s.token_for(Role::Sales).await;
    let r = put(sales, json!({"years": 9, "reason": "x"})).await;
    assert_eq!(r.status(), 403);
    let v = orders(&api_get(&s, &po_token, "/api/v1/retention/policies").await);
    assert_eq!(
        (v["version"].as_u64(), v["years"].as_u64()),
        (Some(3), Some(4))
    );
    let r = b
        .get(s.url("/app/privacy/retention/policies/orders.nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
