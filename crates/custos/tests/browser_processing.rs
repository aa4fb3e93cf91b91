//! The data map, the record of processing, the processor register, the
//! minimisation review and Admin › Settings in a real browser (headless
//! Chromium through WebDriver): axe-core finds no serious or critical
//! violation on any of them, the map's SVG is rendered with a box for every
//! link, and every box's link, followed in the browser, reaches a page that
//! exists and an element with its anchor. Screenshots go to
//! `target/screenshots/processing-*.png`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::browser::{api_post, open};
use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_map_and_the_record_of_processing_in_the_browser() {
    let s = TestServer::start().await;
    let Some((mut run, _driver, _profile)) = open(&s).await else {
        return;
    };
    let po = s
        .token_for_email(Role::PrivacyOfficer, "petra@custos.example")
        .await;
    s.token_for_email(Role::Admin, "ada@custos.example").await;
    api_post(
        &s,
        &po,
        "/api/v1/processors",
        json!({"name": "MailCo", "service": "email delivery", "categories": ["contact_details"],
               "country": "US", "transfer": "sccs", "dpa_signed_on": "2026-01-15"}),
    )
    .await;

    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "petra@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    run.wait_for("Open privacy requests").await;

    run.go("/app/privacy/map").await;
    run.wait_for("The inventory, field by field").await;
    run.check("data map", Some("processing-01-map"), true).await;
    // The SVG is drawn: each box has a size, and the hrefs as the browser
    // resolves them.
    let boxes: Value = run
        .c
        .execute(
            "return [...document.querySelectorAll('svg.data-map a')].map(a => {
                 const r = a.querySelector('rect').getBBox();
                 return { href: a.href.baseVal !== undefined ? new URL(a.getAttribute('href'), location.href).href : a.href,
                          w: r.width, h: r.height };
             });",
            vec![],
        )
        .await
        .unwrap();
    let boxes = boxes.as_array().unwrap();
    assert!(boxes.len() > 20, "{} boxes", boxes.len());
    assert!(
        boxes
            .iter()
            .all(|b| b["w"].as_f64().unwrap() > 10.0 && b["h"].as_f64().unwrap() > 10.0)
    );
    let mut hrefs: Vec<String> = boxes
        .iter()
        .map(|b| b["href"].as_str().unwrap().to_string())
        .collect();
    hrefs.sort();
    hrefs.dedup();
    for href in hrefs {
        run.c.goto(&href).await.unwrap();
        let found: Value = run
            .c
            .execute(
                "const id = decodeURIComponent(location.hash.slice(1));
                 return { title: document.title, missing: id !== '' && !document.getElementById(id),
                          notFound: document.querySelector('h1') ? document.querySelector('h1').textContent : '' };",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(found["missing"], false, "{href}: no element with that id");
        let h1 = found["notFound"].as_str().unwrap_or_default();
        assert!(
            !h1.contains("not found") && !h1.contains("Not allowed"),
            "{href}: {h1}"
        );
    }

    run.go("/app/privacy/processing").await;
    run.wait_for("Record of processing activities").await;
    run.check("record of processing", Some("processing-02-record"), true)
        .await;
    run.go("/app/privacy/processors").await;
    run.wait_for("MailCo").await;
    run.check("processor register", Some("processing-03-register"), true)
        .await;
    // A bad entry comes back with its errors and the values kept.
    run.fill("#f-name", "HostCo").await;
    run.fill("#f-service", "hosting").await;
    run.fill("#f-categories", "identity").await;
    run.fill("#f-country", "US").await;
    run.click("#form button.primary").await;
    let html = run.wait_for("nothing was changed").await;
    assert!(html.contains("outside the EEA"));
    assert!(html.contains("value=\"HostCo\""));
    run.check("processor register, refused", None, false).await;

    run.go("/app/privacy/minimisation").await;
    run.wait_for("Minimisation review").await;
    run.check(
        "minimisation review",
        Some("processing-04-minimisation"),
        true,
    )
    .await;

    // The administrator enters the controller; the public notice names it.
    run.c.delete_all_cookies().await.unwrap();
    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "ada@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    run.wait_for("Dashboard").await;
    run.go("/app/admin/settings").await;
    run.wait_for("Controller and data protection officer").await;
    run.check("admin settings", Some("processing-05-settings"), true)
        .await;
    run.fill("#f-name", "Engines Ltd").await;
    run.fill("#f-email", "privacy@engines.example").await;
    run.click("form.form button.primary").await;
    run.wait_for("Controller details saved").await;
    run.go("/privacy").await;
    run.wait_for("Engines Ltd").await;
    run.check("portal notice with the controller", None, true)
        .await;
    run.c.clone().close().await.unwrap();
    eprintln!(
        "processing browser test: {} pages checked",
        run.checked.len()
    );
}
