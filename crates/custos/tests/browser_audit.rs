//! The auditor's view of the ledger in a real browser: headless Chromium
//! driven through WebDriver (chromedriver). An auditor signs in, reads the
//! ledger page (status, the activity chart and its table), searches events
//! about a contact, opens one event and a user's timeline, sees "who accessed
//! this contact" on the contact's page, and fills in the export form (once
//! wrongly). axe-core runs on every page (no serious or critical violation),
//! nothing is requested from another host, the pages send the CSP, and
//! screenshots at 1,280 px (and one at phone width) go to
//! `target/screenshots/audit-*.png`.
//!
//! The harness is shared (`tests/common/browser.rs`). Needs Debian's
//! `chromium` and `chromium-driver`, and axe-core installed with `npm install`
//! in `crates/custos/tests/axe`. Without them the test says "skipped: …" and
//! passes, except in CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::browser::{network_requests, open};
use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn api(s: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let req = match method {
        "POST" => s.client().post(s.url(path)),
        _ => s.client().get(s.url(path)),
    };
    let req = req.bearer_auth(token);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_the_ledger_in_the_browser() {
    let started = Instant::now();
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let sales = s.token_for(Role::Sales).await;
    s.token_for_email(Role::Auditor, "ida@custos.example").await;
    let contact = api(
        &s,
        &admin,
        "POST",
        "/api/v1/contacts",
        Some(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@engines.example"})),
    )
    .await;
    let contact_id = contact["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        api(
            &s,
            &sales,
            "GET",
            &format!("/api/v1/contacts/{contact_id}"),
            None,
        )
        .await;
    }
    // A refusal, so the ledger shows one.
    let r = s
        .client()
        .get(s.url("/api/v1/audit/status"))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let Some((mut run, driver, _profile)) = open(&s).await else {
        return;
    };

    // Sign in as the auditor; the sidebar has the ledger.
    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "ida@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    // The sign-in page has a <main> too: wait for the signed-in sidebar itself.
    run.wait_for("href=\"/app/audit\"").await;
    run.click("nav.sidebar a[href='/app/audit']").await;
    let html = run.wait_for("Signed checkpoints").await;
    assert!(html.contains("<svg") && html.contains("Denied"));
    run.check("audit ledger", Some("audit-01-ledger"), true)
        .await;
    // The chart's figures as a table.
    run.click("details.chart-data summary").await;
    run.wait_for("details class=\"chart-data\" open").await;
    run.check("audit ledger, chart table open", None, false)
        .await;
    run.go("/app/audit?hours=48").await;
    run.wait_for("last 48 hours").await;
    run.check("audit ledger, 48 hours", None, true).await;

    // Search the events about the contact, by its id.
    run.go("/app/audit").await;
    run.wait_for("Signed checkpoints").await;
    run.fill("#filter-subject", &contact_id).await;
    run.click("form.filters button[type=submit]").await;
    let html = run.wait_for("Clear all").await;
    assert!(html.contains("contact.read") && html.contains("contact.create"));
    assert!(
        !run.c
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("engines"),
        "no personal data in the URL"
    );
    run.check("audit search", Some("audit-02-search"), true)
        .await;
    // Personal data never reaches the address: the form refuses an email.
    let url = run.c.current_url().await.unwrap();
    run.fill("#filter-subject", "ada@engines.example").await;
    run.click("form.filters button[type=submit]").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run.c.current_url().await.unwrap(), url, "the form was sent");
    let invalid = run
        .c
        .execute(
            "return document.getElementById('filter-subject').matches(':invalid');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(invalid, json!(true));
    // A wrong filter that reaches the server is named.
    run.go("/app/audit?subject=ada&from=soon").await;
    run.wait_for("This search cannot be run").await;
    run.check("audit search with an error", None, false).await;

    // One event in full, then the timeline of the user who did it.
    run.go(&format!(
        "/app/audit?subject={contact_id}&action=contact.read"
    ))
    .await;
    run.wait_for("Clear all").await;
    run.click("table.events tbody tr th a").await;
    run.wait_for("Leaf bytes").await;
    run.check("audit event", Some("audit-03-event"), true).await;
    run.click("dl.facts a[href^='/app/audit/users/']").await;
    let html = run.wait_for("User activity").await;
    assert!(html.contains("<ol class=\"timeline\">"));
    run.check("user activity timeline", Some("audit-04-user"), true)
        .await;

    // Who accessed the contact, on her page.
    run.go(&format!("/app/contacts/{contact_id}#who-accessed"))
        .await;
    let html = run.wait_for("Who accessed this contact").await;
    assert!(html.contains("contact.read"));
    run.check(
        "contact with who accessed",
        Some("audit-05-contact-who"),
        true,
    )
    .await;
    run.c
        .find(Locator::Css("#who-accessed a.button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    run.wait_for("Clear all").await;
    assert_eq!(run.path().await, "/app/audit");

    // The export form and its recipe; a wrong range is refused next to the field.
    run.go("/app/audit/export").await;
    run.wait_for("How to verify it").await;
    run.check("export form", Some("audit-06-export"), true)
        .await;
    run.fill("#f-first", "9").await;
    run.fill("#f-last", "2").await;
    run.click("form.form button.primary").await;
    let html = run.wait_for("error-summary").await;
    assert!(html.contains("id=\"e-last\"") && html.contains("value=\"9\""));
    run.check(
        "export form with an error",
        Some("audit-07-export-error"),
        false,
    )
    .await;

    // A phone-sized window: the events become cards, nothing scrolls sideways.
    run.c.set_window_size(390, 844).await.unwrap();
    run.go(&format!("/app/audit?subject={contact_id}#events"))
        .await;
    run.wait_for("Clear all").await;
    let overflow = run
        .c
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(false),
        "the ledger page scrolls sideways on a phone"
    );
    run.check("audit ledger on a phone", Some("audit-08-phone"), false)
        .await;
    run.c.set_window_size(1280, 1000).await.unwrap();

    // The browser's own network log: every request went to this server.
    let (urls, foreign) = network_requests(&run, &driver, &s.base).await;
    assert!(urls.len() > 10, "the network log holds the test's requests");
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");

    run.c.close().await.unwrap();
    eprintln!(
        "audit browser test: {} pages checked with axe in {:.1}s; screenshots in {}",
        run.checked.len(),
        started.elapsed().as_secs_f64(),
        run.shots.display()
    );
}
