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
//! The harness is a copy of the one in `browser.rs`. Needs Debian's
//! `chromium` and `chromium-driver`, and axe-core installed with `npm install`
//! in `crates/custos/tests/axe`. Without them the test says "skipped: …" and
//! passes, except in CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];
const CHROMEDRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js")
}

/// Where screenshots go: `target/screenshots/` of this workspace.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// Returns the tools, or `None` after saying why the test is skipped. In CI a
/// missing tool fails the test instead.
fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let chromium = first_existing(&CHROMIUM);
    let driver = first_existing(&CHROMEDRIVER);
    let axe = Some(axe_path()).filter(|p| p.exists());
    let missing: Vec<&str> = [
        (chromium.is_none(), "chromium (apt-get install chromium)"),
        (
            driver.is_none(),
            "chromedriver (apt-get install chromium-driver)",
        ),
        (
            axe.is_none(),
            "axe-core (npm install in crates/custos/tests/axe)",
        ),
    ]
    .into_iter()
    .filter(|(m, _)| *m)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return Some((chromium?, driver?, axe?));
    }
    let msg = format!("skipped: browser tests need {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so this is a failure)");
    }
    eprintln!("{msg}");
    None
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Driver { child, port };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--no-first-run",
                "--no-default-browser-check", "--ignore-certificate-errors",
                "--window-size=1280,1000", "--lang=en-GB",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"performance": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap();
    c.set_window_size(1280, 1000).await.unwrap();
    c
}

/// Everything the checks of one page need.
struct Run {
    c: Client,
    base: String,
    axe: String,
    shots: PathBuf,
    checked: Vec<String>,
    http: reqwest::Client,
}

impl Run {
    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn source(&self) -> String {
        self.c.source().await.unwrap()
    }

    /// Waits until the page holds `text` (after a click that navigates).
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let html = self.source().await;
            if html.contains(text) {
                return html;
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {text:?}; it shows:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The current path.
    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// axe-core on the page (no serious or critical violation), nothing from
    /// another host, the page's CSP header (fetched again with the session
    /// cookie when the page is a GET), and a screenshot if named.
    async fn check(&mut self, what: &str, shot: Option<&str>, refetch: bool) {
        self.c.execute(&self.axe, vec![]).await.unwrap();
        let raw = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(JSON.stringify(r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + (n.failureSummary || ''))
                   })))))
                   .catch(e => done(JSON.stringify([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }])));",
                vec![],
            )
            .await
            .unwrap();
        let violations: Vec<Value> = serde_json::from_str(raw.as_str().unwrap()).unwrap();
        let serious: Vec<&Value> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            serious.is_empty(),
            "axe found serious or critical violations on {what}: {}",
            serde_json::to_string_pretty(&serious).unwrap()
        );
        for v in &violations {
            eprintln!("axe ({what}): {} {}: {}", v["impact"], v["id"], v["help"]);
        }
        let foreign = self
            .c
            .execute(
                "const o = location.origin; const bad = [];
                 for (const e of performance.getEntriesByType('resource')) { if (!e.name.startsWith(o)) bad.push(e.name); }
                 for (const el of document.querySelectorAll('[src],[href],[action],[srcset]')) {
                   for (const a of ['src', 'href', 'action', 'srcset']) {
                     const v = el.getAttribute(a);
                     if (v && /^([a-z]+:)?\\/\\//i.test(v) && !v.startsWith(o)) bad.push(a + '=' + v);
                   }
                 }
                 return bad;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(foreign, json!([]), "{what} refers to another host");
        if refetch {
            let url = self.c.current_url().await.unwrap();
            let cookies = self.c.get_all_cookies().await.unwrap();
            let header = cookies
                .iter()
                .map(|c| format!("{}={}", c.name(), c.value()))
                .collect::<Vec<_>>()
                .join("; ");
            let r = self
                .http
                .get(url.as_str())
                .header("cookie", header)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{what} fetched again");
            assert_eq!(
                r.headers()["content-security-policy"].to_str().unwrap(),
                custos_web::security::CSP,
                "{what} sends the CSP"
            );
        }
        if let Some(name) = shot {
            let png = self.c.screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        }
        self.checked.push(what.to_string());
    }
}

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
    let Some((chromium, driver_path, axe)) = tools() else {
        return;
    };
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

    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let cert = std::fs::read(s.data_dir().join("cert.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut run = Run {
        c,
        base: s.base.clone(),
        axe: std::fs::read_to_string(axe).unwrap(),
        shots,
        checked: Vec::new(),
        http,
    };

    // Sign in as the auditor; the sidebar has the ledger.
    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "ida@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    run.wait_for("<main").await;
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
    let session = run.c.session_id().await.unwrap().unwrap();
    let log: Value = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.port
        ))
        .json(&json!({"type": "performance"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut urls = Vec::new();
    for e in log["value"].as_array().expect("performance log") {
        let m: Value =
            serde_json::from_str(e["message"].as_str().unwrap_or("{}")).unwrap_or_default();
        if m["message"]["method"] == "Network.requestWillBeSent" {
            urls.push(
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert!(urls.len() > 10, "the network log holds the test's requests");
    let foreign: Vec<&String> = urls
        .iter()
        .filter(|u| {
            let network = ["http:", "https:", "ws:", "wss:", "ftp:"]
                .iter()
                .any(|scheme| u.starts_with(scheme));
            network && !u.starts_with(&format!("{}/", s.base))
        })
        .collect();
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");

    run.c.close().await.unwrap();
    eprintln!(
        "audit browser test: {} pages checked with axe in {:.1}s; screenshots in {}",
        run.checked.len(),
        started.elapsed().as_secs_f64(),
        run.shots.display()
    );
}
