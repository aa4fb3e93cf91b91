//! The browser-test harness: headless Chromium driven through WebDriver
//! (chromedriver), axe-core run in each page checked (no serious or critical
//! violation), a check that nothing is requested from another host, the
//! page's CSP, and screenshots at 1,280 px under `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core installed with
//! `npm install` in `crates/custos/tests/axe` (`.ci/run` does both). Without
//! them [`tools`] says "skipped: …" and the test passes, except in CI (`CI`
//! set), where it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use custos_testkit::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];
pub const CHROMEDRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

pub fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

pub fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js")
}

/// Where screenshots go: `target/screenshots/` of this workspace.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// Returns the tools, or `None` after saying why the test is skipped. In CI a
/// missing tool fails the test instead.
pub fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
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
pub struct Driver {
    child: Child,
    /// The port chromedriver listens on (loopback, plain HTTP).
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_driver(path: &Path) -> Driver {
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

pub async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
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
pub struct Run {
    /// The WebDriver session.
    pub c: Client,
    /// The server's base URL.
    pub base: String,
    /// axe-core's source, injected into each page checked.
    pub axe: String,
    /// Where screenshots go.
    pub shots: PathBuf,
    /// What was checked, for the summary line.
    pub checked: Vec<String>,
    /// A client trusting the server's certificate, for refetching pages.
    pub http: reqwest::Client,
}

impl Run {
    pub async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    pub async fn source(&self) -> String {
        self.c.source().await.unwrap()
    }

    /// Waits until the page holds `text` (after a click that navigates).
    pub async fn wait_for(&self, text: &str) -> String {
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

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn choose(&self, css: &str, value: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.select_by_value(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The current path.
    pub async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// axe-core on the page (no serious or critical violation), nothing from
    /// another host, the page's CSP header (fetched again with the session
    /// cookie when the page is a GET), and a screenshot if named.
    pub async fn check(&mut self, what: &str, shot: Option<&str>, refetch: bool) {
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

/// GET of an API path with a bearer token; the answer must be 200.
pub async fn api_get(s: &TestServer, token: &str, path: &str) -> Value {
    let r = s
        .client()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

pub async fn api_post(s: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let r = s
        .client()
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// A browser on a running server, ready for [`Run::check`]: `None` (after
/// saying why) when the tools are missing outside CI. Keep the driver and the
/// profile until the session is closed.
pub async fn open(s: &TestServer) -> Option<(Run, Driver, tempfile::TempDir)> {
    let (chromium, driver_path, axe) = tools()?;
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
    let run = Run {
        c,
        base: s.base.clone(),
        axe: std::fs::read_to_string(axe).unwrap(),
        shots,
        checked: Vec::new(),
        http,
    };
    Some((run, driver, profile))
}

/// Runs a Chrome DevTools Protocol command in the session (chromedriver's
/// `goog/cdp/execute`), e.g. to send extra request headers.
pub async fn cdp(run: &Run, driver: &Driver, cmd: &str, params: Value) -> Value {
    let session = run.c.session_id().await.unwrap().unwrap();
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/goog/cdp/execute",
            driver.port
        ))
        .json(&json!({"cmd": cmd, "params": params}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "CDP {cmd}: {}", r.status());
    r.json().await.unwrap()
}

/// Every network request the browser sent in this session (from its
/// performance log), and those that went anywhere but `base`.
pub async fn network_requests(
    run: &Run,
    driver: &Driver,
    base: &str,
) -> (Vec<String>, Vec<String>) {
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
    let entries = log["value"].as_array().expect("performance log");
    let mut urls = Vec::new();
    for e in entries {
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
    // Browser-internal pages (the first blank tab is chrome://new-tab-page…)
    // fetch nothing from the network; every network scheme must reach this server.
    let foreign = urls
        .iter()
        .filter(|u| {
            let network = ["http:", "https:", "ws:", "wss:", "ftp:"]
                .iter()
                .any(|scheme| u.starts_with(scheme));
            network && !u.starts_with(&format!("{base}/"))
        })
        .cloned()
        .collect();
    (urls, foreign)
}
