//! The Privacy pages and the public portal in a real browser (headless
//! Chromium through WebDriver, the harness of `tests/common/browser.rs`): the
//! privacy officer opens an access request for a contact, verifies it with the
//! one-time code, fulfils it and opens the printable report (checked under the
//! print stylesheet too); opens an erasure request, fulfils it after the
//! confirmation, and the contact's page then answers "erased"; records consent
//! on a contact's page. A person submits a request on the portal, sees its
//! status page, and opts out with Global Privacy Control on. axe-core runs on
//! every page (no serious or critical violation), nothing is requested from
//! another host, and screenshots go to `target/screenshots/privacy-*.png`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::browser::{api_get, api_post, cdp, network_requests, open};
use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};
use fantoccini::Locator;
use serde_json::json;
use std::time::Instant;

/// A contact with an activity and an order kept for accounting.
async fn person(s: &TestServer, token: &str, first: &str, last: &str, email: &str) -> String {
    let c = api_post(
        s,
        token,
        "/api/v1/contacts",
        json!({"first_name": first, "last_name": last, "email": email}),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_string();
    api_post(s, token, "/api/v1/activities", json!({"contact_id": id, "kind": "call", "body": format!("Called {first} about the engine"), "occurred_at": "2026-01-10T10:00:00Z"})).await;
    api_post(s, token, "/api/v1/orders", json!({"contact_id": id, "status": "completed", "total": "120.00", "currency": "GBP", "shipping_address": format!("{first} House, 1 High Street"), "placed_at": "2026-01-10T10:00:00Z", "completed_at": "2026-01-11T10:00:00Z"})).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_requests_and_the_portal_in_the_browser() {
    let started = Instant::now();
    let s = TestServer::start().await;
    let Some((mut run, driver, _profile)) = open(&s).await else {
        return;
    };
    let sales = s.token_for(Role::Sales).await;
    let po = s
        .token_for_email(Role::PrivacyOfficer, "petra@custos.example")
        .await;
    let ada = person(&s, &sales, "Ada", "Lovelace", "ada@engines.example").await;
    let charles = person(&s, &sales, "Charles", "Babbage", "charles@engines.example").await;

    // The privacy officer signs in: the dashboard leads with the legal clocks.
    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "petra@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    run.wait_for("Open privacy requests").await;
    run.check(
        "dashboard (privacy officer)",
        Some("privacy-01-dashboard"),
        true,
    )
    .await;
    run.go("/app/privacy/requests").await;
    run.wait_for("No open requests").await;
    run.check("request queue, empty", Some("privacy-02-queue-empty"), true)
        .await;
    // An objection Ada sent through the API stays open: the queue and the
    // dashboard show its clock.
    api_post(
        &s,
        &po,
        "/api/v1/dsar",
        json!({"kind": "objection", "regime": "gdpr", "subject_email": "ada@engines.example"}),
    )
    .await;

    // An access request for Ada, logged from a phone call.
    run.c
        .find(Locator::LinkText("New request"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Open the request").await;
    run.check("new request form", Some("privacy-03-new-request"), true)
        .await;
    run.choose("#f-kind", "access").await;
    run.choose("#f-regime", "gdpr").await;
    run.fill("#f-subject_email", "ADA@engines.example").await;
    run.fill("#f-details", "Asked by phone for everything we hold.")
        .await;
    run.click("form.form button.primary").await;
    run.wait_for("Request opened").await;
    run.check(
        "request opened (code shown once)",
        Some("privacy-04-opened"),
        false,
    )
    .await;
    let code = run
        .c
        .find(Locator::Css("#verification-code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(code.len(), 6, "{code}");
    run.c
        .find(Locator::LinkText("Open the request"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Verify the requester").await;
    run.check("request page, received", Some("privacy-05-request"), true)
        .await;
    let request_path = run.path().await;
    run.fill("#f-code", &code).await;
    run.click("#verify-code-form button").await;
    let html = run.wait_for("Identity verified.").await;
    assert!(html.contains("Ada Lovelace"), "matched to her contact");
    run.click("#fulfil a.button").await;
    let html = run.wait_for("What will happen").await;
    assert!(html.contains("package of every record about Ada Lovelace"));
    run.check(
        "fulfil confirmation (access)",
        Some("privacy-06-fulfil-access"),
        true,
    )
    .await;
    run.click("form.actions button[type=submit]").await;
    run.wait_for("Request fulfilled.").await;
    assert_eq!(run.path().await, request_path);
    run.check(
        "request page, fulfilled",
        Some("privacy-07-fulfilled"),
        true,
    )
    .await;

    // The printable report: every record, and what the data is for.
    run.c
        .find(Locator::LinkText("Printable report"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let html = run.wait_for("What we use this data for").await;
    for part in [
        "Called Ada about the engine",
        "Ada House, 1 High Street",
        "shipping carrier",
        "ada@engines.example",
    ] {
        assert!(html.contains(part), "the report lacks {part}");
    }
    assert!(!html.contains("Charles"), "nothing about anyone else");
    run.check("access report", Some("privacy-08-report"), true)
        .await;
    // Printed, it is a plain A4 document: no navigation, no links styled.
    cdp(
        &run,
        &driver,
        "Emulation.setEmulatedMedia",
        json!({"media": "print"}),
    )
    .await;
    let hidden = run
        .c
        .execute(
            "return getComputedStyle(document.querySelector('.report-head')).display;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        hidden,
        json!("none"),
        "the print stylesheet hides the header"
    );
    std::fs::write(
        run.shots.join("privacy-09-report-print.png"),
        run.c.screenshot().await.unwrap(),
    )
    .unwrap();
    cdp(
        &run,
        &driver,
        "Emulation.setEmulatedMedia",
        json!({"media": ""}),
    )
    .await;

    // An erasure request for Charles: confirmed, then his page answers "erased".
    run.go("/app/privacy/requests/new").await;
    run.wait_for("Open the request").await;
    run.choose("#f-kind", "erasure").await;
    run.choose("#f-regime", "ccpa").await;
    run.fill("#f-subject_email", "charles@engines.example")
        .await;
    run.click("form.form button.primary").await;
    run.wait_for("Request opened").await;
    run.c
        .find(Locator::LinkText("Open the request"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Verify the requester").await;
    run.fill("#f-reason", "Called back on the phone number we hold")
        .await;
    run.click("#verify-attest-form button").await;
    run.wait_for("Identity verified.").await;
    run.click("#fulfil a.button").await;
    let html = run.wait_for("What will happen").await;
    assert!(html.contains("cannot be undone") && html.contains("Erase Charles Babbage"));
    run.check(
        "fulfil confirmation (erasure)",
        Some("privacy-10-erasure-confirm"),
        true,
    )
    .await;
    run.click("button.danger").await;
    let html = run.wait_for("Request fulfilled.").await;
    assert!(html.contains("What was kept, and why") && html.contains("accounting"));
    run.check("erasure result", Some("privacy-11-erasure-result"), true)
        .await;
    run.go(&format!("/app/contacts/{charles}")).await;
    run.wait_for("Erased").await;
    run.check("erased contact", Some("privacy-12-erased"), false)
        .await;
    let r = s
        .client()
        .get(s.url(&format!("/api/v1/contacts/{charles}")))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);

    // Consent on Ada's page: recorded with its receipt.
    run.go(&format!("/app/contacts/{ada}")).await;
    run.wait_for("Consent and privacy").await;
    run.choose("#consent-purpose", "marketing_email").await;
    run.choose("#consent-state", "given").await;
    run.choose("#consent-method", "form").await;
    run.fill("#consent-evidence", "Web form of 10 January")
        .await;
    run.click("form.consent-form button.primary").await;
    let html = run.wait_for("Consent recorded.").await;
    assert!(html.contains("Web form of 10 January"));
    run.c
        .execute(
            "document.getElementById('consent').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    run.check(
        "contact with consent",
        Some("privacy-13-contact-consent"),
        true,
    )
    .await;
    run.go("/app/privacy/requests?filter=all").await;
    let html = run.wait_for("Showing 1–3 of 3 requests").await;
    assert!(html.contains("clock-on-track") && html.contains("days left"));
    assert!(html.contains("answered on time"));
    run.check("request queue", Some("privacy-14-queue"), true)
        .await;
    run.go("/app").await;
    let html = run.wait_for("Open privacy requests").await;
    assert!(html.contains("1 on track, 0 due within a week, 0 overdue"));
    run.check(
        "dashboard with requests",
        Some("privacy-16-dashboard-data"),
        true,
    )
    .await;
    run.go("/app/privacy").await;
    run.wait_for("Time to close").await;
    run.check("privacy overview", Some("privacy-15-overview"), true)
        .await;

    // Retention: Grace's order, completed long ago, is purged by a run from
    // the page; Ada's, as old but under a legal hold placed from her page,
    // is kept; the run's certificate is a page of its own.
    let grace = person(&s, &sales, "Grace", "Hopper", "grace@navy.example").await;
    let old_order = |who: &str, address: &str| {
        json!({"contact_id": who, "status": "completed", "total": "10.00", "currency": "GBP",
            "shipping_address": address, "placed_at": "2020-01-01T10:00:00Z", "completed_at": "2020-01-02T10:00:00Z"})
    };
    let graces = api_post(
        &s,
        &sales,
        "/api/v1/orders",
        old_order(&grace, "1 Navy Yard"),
    )
    .await;
    let adas = api_post(
        &s,
        &sales,
        "/api/v1/orders",
        old_order(&ada, "2 Ockham Park"),
    )
    .await;
    run.go(&format!("/app/contacts/{ada}")).await;
    run.wait_for("Place a legal hold").await;
    run.c
        .find(Locator::LinkText("Place a legal hold"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Place a legal hold on Ada Lovelace").await;
    run.check("retention: hold form", Some("privacy-18-hold-form"), true)
        .await;
    run.fill("#f-reason", "Claim 2026/17: keep the order records")
        .await;
    run.click("#hold button.primary").await;
    run.wait_for("Legal hold placed").await;
    run.go("/app/privacy/retention").await;
    let html = run.wait_for("Legal holds in force").await;
    assert!(html.contains("Claim 2026/17"), "the hold is listed");
    run.check("retention", Some("privacy-19-retention"), true)
        .await;
    run.click("#f-confirm").await;
    run.click("#run button.danger").await;
    let html = run.wait_for("Retention run finished").await;
    assert!(html.contains("orders.completed_at.2y"));
    run.check("purge certificate", Some("privacy-19b-certificate"), true)
        .await;
    let path = |o: &serde_json::Value| format!("/api/v1/orders/{}", o["id"].as_str().unwrap());
    let purged = api_get(&s, &po, &path(&graces)).await;
    assert!(purged["shipping_address"].is_null(), "purged: {purged}");
    let held = api_get(&s, &po, &path(&adas)).await;
    assert_eq!(held["shipping_address"], "2 Ockham Park", "held: {held}");

    // A request refused on a legal ground, from its page.
    let r = api_post(
        &s,
        &po,
        "/api/v1/dsar",
        json!({"kind": "erasure", "regime": "gdpr", "subject_email": "ada@engines.example"}),
    )
    .await;
    run.go(&format!(
        "/app/privacy/requests/{}",
        r["id"].as_str().unwrap()
    ))
    .await;
    run.wait_for("Refuse the request").await;
    run.click("#reject summary").await;
    run.choose("#f-ground", "manifestly_unfounded").await;
    run.fill(
        "#f-explanation",
        "The same request arrived four times this week; we answered it on Monday.",
    )
    .await;
    run.click("#reject button.danger").await;
    let html = run.wait_for("Request refused and closed").await;
    assert!(html.contains("The request is manifestly unfounded or excessive."));
    run.check("request refused", Some("privacy-17-refused"), true)
        .await;

    // The public portal: no account, the notice, a request and its status.
    run.c.delete_all_cookies().await.unwrap();
    run.go("/privacy").await;
    run.wait_for("What we hold, and why").await;
    run.check(
        "portal: privacy notice",
        Some("privacy-20-portal-notice"),
        true,
    )
    .await;
    run.c
        .find(Locator::LinkText("Make a request"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Send my request").await;
    run.check(
        "portal: request form",
        Some("privacy-21-portal-request"),
        true,
    )
    .await;
    run.choose("#f-kind", "portability").await;
    run.choose("#f-regime", "gdpr").await;
    run.fill("#f-subject_email", "ada@engines.example").await;
    run.click("form.form button.primary").await;
    let html = run.wait_for("We have received your request.").await;
    assert!(html.contains("Send me my data in a machine-readable file"));
    assert!(
        !html.contains("ada@engines.example"),
        "no personal data on the status page"
    );
    let status_url = run.c.current_url().await.unwrap();
    assert!(
        status_url
            .query()
            .unwrap_or_default()
            .starts_with("token=cds_")
    );
    run.check(
        "portal: status page",
        Some("privacy-22-portal-status"),
        true,
    )
    .await;

    // Global Privacy Control on: the opt-out form records it, and says so.
    cdp(&run, &driver, "Network.enable", json!({})).await;
    cdp(
        &run,
        &driver,
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Sec-GPC": "1"}}),
    )
    .await;
    run.go("/privacy/opt-out").await;
    run.wait_for("Global Privacy Control is on").await;
    run.check(
        "portal: opt-out form with GPC",
        Some("privacy-23-portal-opt-out"),
        true,
    )
    .await;
    run.fill("#f-email", "ada@engines.example").await;
    run.click("form.form button.primary").await;
    let html = run.wait_for("Thank you").await;
    assert!(html.contains("we have recorded it as your opt-out of the sale and sharing"));
    run.check("portal: thanks", Some("privacy-24-portal-thanks"), false)
        .await;
    let h = api_get(&s, &po, &format!("/api/v1/consents?contact_id={ada}")).await;
    assert_eq!(h["entries"][0]["method"], "gpc");
    assert_eq!(h["current"]["sale_share"]["state"], "withdrawn");
    run.go("/privacy/consent").await;
    run.wait_for("Withdraw my consent").await;
    run.check(
        "portal: consent withdrawal form",
        Some("privacy-25-portal-consent"),
        true,
    )
    .await;

    // The browser's own network log: every request went to this server.
    let (urls, foreign) = network_requests(&run, &driver, &s.base).await;
    assert!(
        urls.len() > 20,
        "the network log holds the test's requests ({})",
        urls.len()
    );
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");

    run.c.clone().close().await.unwrap();
    eprintln!(
        "privacy browser test: {} pages checked with axe in {:.1}s; screenshots in {}",
        run.checked.len(),
        started.elapsed().as_secs_f64(),
        run.shots.display()
    );
}
