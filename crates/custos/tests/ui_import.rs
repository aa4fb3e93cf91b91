//! Import from the web UI: upload a CSV file, see the preview (columns, first
//! rows, every rejected row with its reason, a CSV of them), then import the
//! valid rows or nothing; a progress page while it runs. Only the uploader
//! sees their import; roles that may not create records get 403.

#![allow(clippy::unwrap_used)]

mod common;

use common::ui::sign_in;
use custos_domain::{Entity, Role};
use custos_service::{ListParams, Principal};
use custos_testkit::TestServer;
use std::time::{Duration, Instant};

/// Uploads `csv` as `what`; returns the status and the Location (or body).
async fn upload(
    b: &reqwest::Client,
    s: &TestServer,
    csrf: &str,
    what: &str,
    csv: &[u8],
) -> (u16, String) {
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_string())
        .text("what", what.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.to_vec())
                .file_name("people.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = b
        .post(s.url("/app/import/preview"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    match r.headers().get("location") {
        Some(l) => (status, l.to_str().unwrap().to_string()),
        None => (status, r.text().await.unwrap()),
    }
}

async fn page(b: &reqwest::Client, s: &TestServer, path: &str) -> (u16, String) {
    let r = b.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(
            r.headers()["content-security-policy"].to_str().unwrap(),
            custos_web::security::CSP
        );
    }
    (status, r.text().await.unwrap())
}

/// Starts the import and waits for its result page.
async fn run(b: &reqwest::Client, s: &TestServer, csrf: &str, job: &str, skip: bool) -> String {
    let mut form = vec![("csrf", csrf)];
    if skip {
        form.push(("skip_invalid", "on"));
    }
    let r = b.post(s.url(job)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, html) = page(b, s, job).await;
        assert_eq!(status, 200);
        if !html.contains("Importing") {
            return html;
        }
        assert!(html.contains("<progress") && html.contains("http-equiv=\"refresh\""));
        assert!(Instant::now() < deadline, "the import never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn contacts(s: &TestServer) -> usize {
    let params = ListParams::parse(Entity::Contact, &[("limit".into(), "100".into())]).unwrap();
    s.custos
        .list(&Principal::cli(), Entity::Contact, &params)
        .await
        .unwrap()
        .items
        .len()
}

const FILE: &str = "First name,Last name,Email,company,tags\n\
Ada,Lovelace,ada@engines.example,Analytical Engines,vip\n\
Charles,Babbage,charles@engines.example,Analytical Engines,\n\
Grace,Hopper,not-an-email,Navy,\n\
Alan,Turing,ada@engines.example,,\n\
Edsger,Dijkstra,edsger@example.org,,pioneer;dutch\n";

#[tokio::test]
async fn a_csv_is_previewed_then_imported_with_or_without_the_bad_rows() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Sales, "sam@custos.example").await;
    let (status, html) = page(&b, &s, "/app/import").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("enctype=\"multipart/form-data\"") && html.contains("href=\"/app/import\"")
    );

    // The preview: columns, first rows, rejected rows with line and reason.
    let (status, job) = upload(&b, &s, &csrf, "contacts", FILE.as_bytes()).await;
    assert_eq!(status, 303, "{job}");
    assert!(job.starts_with("/app/import/"));
    let (status, html) = page(&b, &s, &job).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("5 rows of contacts. 3 can be imported; 2 problem(s)"),
        "{html}"
    );
    assert!(html.contains("<td>First name</td><td>First name</td>"));
    assert!(html.contains("Company (by name; created if new)"));
    assert!(html.contains("<td>Hopper</td>"), "the first rows are shown");
    assert!(
        html.contains("<td>4</td><td>email</td>"),
        "line 4's bad email"
    );
    assert!(html.contains("duplicate of line 2 in this file"));
    let r = b
        .get(s.url(&format!("{job}/rejected.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report = r.text().await.unwrap();
    assert_eq!(report.lines().count(), 3, "{report}");
    assert!(report.starts_with("line,field,reason\n4,email,"));
    assert_eq!(contacts(&s).await, 0, "a preview writes nothing");

    // Not skipping the bad rows: nothing is imported.
    let html = run(&b, &s, &csrf, &job, false).await;
    assert!(html.contains("Nothing was imported"), "{html}");
    assert_eq!(contacts(&s).await, 0);

    // Again, skipping them: the three good rows, with their company.
    let (_, job) = upload(&b, &s, &csrf, "contacts", FILE.as_bytes()).await;
    let html = run(&b, &s, &csrf, &job, true).await;
    assert!(
        html.contains("3 contacts imported") && html.contains("1 companies named"),
        "{html}"
    );
    assert_eq!(contacts(&s).await, 3);
    // The same file once more: every row is now a duplicate of Custos's data.
    let (_, job) = upload(&b, &s, &csrf, "contacts", FILE.as_bytes()).await;
    let (_, html) = page(&b, &s, &job).await;
    assert!(html.contains("0 can be imported"), "{html}");
    assert!(html.contains("a contact with this email already exists"));

    // Orders name their contact by email.
    let orders = "contact_email,status,total,currency,placed_at\n\
ada@engines.example,paid,120.00,GBP,2026-03-01T10:00:00Z\n\
nobody@example.com,paid,5.00,GBP,2026-03-01T10:00:00Z\n";
    let (_, job) = upload(&b, &s, &csrf, "orders", orders.as_bytes()).await;
    let (_, html) = page(&b, &s, &job).await;
    assert!(
        html.contains("Contact (by email)") && html.contains("no contact has this email"),
        "{html}"
    );
    let html = run(&b, &s, &csrf, &job, true).await;
    assert!(html.contains("1 orders imported"), "{html}");

    // Another user cannot see or start Sam's import.
    let (other, other_csrf) = sign_in(&s, Role::Manager, "mo@custos.example").await;
    let (_, job) = upload(&b, &s, &csrf, "companies", b"name\nBell Labs\n").await;
    assert_eq!(page(&other, &s, &job).await.0, 404);
    let r = other
        .post(s.url(&job))
        .form(&[("csrf", other_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        other
            .get(s.url(&format!("{job}/rejected.csv")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn bad_uploads_get_a_clear_message_and_change_nothing() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Sales, "sam@custos.example").await;
    for (what, file, expect) in [
        (
            "contacts",
            &b"first_name,shoe size\nAda,38\n"[..],
            "shoe size",
        ),
        ("contacts", &b"\xff\xfe\x00bad"[..], "not UTF-8"),
        ("contacts", &b"first_name,last_name\n"[..], "no data rows"),
        ("contacts", &b""[..], "Choose a CSV file"),
        (
            "planets",
            &b"name\nMars\n"[..],
            "contacts, companies or orders",
        ),
    ] {
        let (status, html) = upload(&b, &s, &csrf, what, file).await;
        assert_eq!(status, 422, "{expect}");
        assert!(html.contains(expect), "{expect}: {html}");
    }
    let (status, _) = upload(&b, &s, "forged", "contacts", FILE.as_bytes()).await;
    assert_eq!(status, 403, "a forged CSRF token");
    assert_eq!(contacts(&s).await, 0);
    assert_eq!(page(&b, &s, "/app/import/not-a-job").await.0, 404);

    // Support may not create contacts: no Import page, no link.
    let (support, _) = sign_in(&s, Role::Support, "sue@custos.example").await;
    let (status, _) = page(&support, &s, "/app/import").await;
    assert_eq!(status, 403);
    let (_, html) = page(&support, &s, "/app/contacts").await;
    assert!(!html.contains("href=\"/app/import\""));
}

/// Confirming an import is POST → redirect → GET, and the confirmation sent
/// again (a reload of the POST, Back then Import again) imports nothing more:
/// it goes to the same job's page.
#[tokio::test]
async fn an_import_confirmed_twice_imports_once() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Sales, "twice@custos.example").await;
    let file = "first_name,last_name,email\nAda,Lovelace,ada@twice.example\nAlan,Turing,alan@twice.example\n";
    let (status, job) = upload(&b, &s, &csrf, "contacts", file.as_bytes()).await;
    assert_eq!(status, 303, "{job}");
    let html = run(&b, &s, &csrf, &job, false).await;
    assert!(html.contains("2 contacts imported"), "{html}");
    assert_eq!(contacts(&s).await, 2);
    let r = b
        .post(s.url(&job))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), job);
    let (status, _) = page(&b, &s, &job).await;
    assert_eq!(status, 200);
    assert_eq!(
        contacts(&s).await,
        2,
        "the second confirmation imported nothing"
    );
}
