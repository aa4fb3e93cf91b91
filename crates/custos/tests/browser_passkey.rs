//! A passkey in a real browser: headless Chromium, driven through WebDriver
//! (chromedriver), with its virtual authenticator (W3C WebAuthn Level 2 §11,
//! the WebDriver extension commands) standing in for a platform authenticator
//! with user verification. On a server where every account needs a second
//! factor, a new user signs in with a password, lands on the enrolment page,
//! registers a passkey there, signs out, and signs in again with the passkey
//! as the second factor.
//!
//! WebAuthn refuses pages with certificate errors, so the browser does not
//! ignore them: the server's self-signed certificate is trusted through an
//! NSS database in a temporary `HOME` (`certutil` from `libnss3-tools`).
//!
//! Needs Debian's `chromium`, `chromium-driver` and `libnss3-tools`
//! (`.ci/run` installs them). Without them the test says "skipped: …" and
//! passes, except in CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use custos_domain::Role;
use custos_service::{Config, Principal};
use custos_testkit::{PASSWORD, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use secrecy::SecretString;
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
const CERTUTIL: [&str; 1] = ["/usr/bin/certutil"];

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Chromium, chromedriver and certutil, or `None` after saying why the test
/// is skipped. In CI a missing tool fails the test instead.
fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let chromium = first_existing(&CHROMIUM);
    let driver = first_existing(&CHROMEDRIVER);
    let certutil = first_existing(&CERTUTIL);
    let missing: Vec<&str> = [
        (chromium.is_none(), "chromium (apt-get install chromium)"),
        (
            driver.is_none(),
            "chromedriver (apt-get install chromium-driver)",
        ),
        (
            certutil.is_none(),
            "certutil (apt-get install libnss3-tools)",
        ),
    ]
    .into_iter()
    .filter(|(m, _)| *m)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return Some((chromium?, driver?, certutil?));
    }
    let msg = format!(
        "skipped: the passkey browser test needs {}",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so this is a failure)");
    }
    eprintln!("{msg}");
    None
}

/// A new NSS database under `home/.pki/nssdb` that trusts `cert` as a peer:
/// Chromium on Linux reads it from `$HOME`.
fn trust_in_nss(certutil: &Path, home: &Path, cert: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = Command::new(certutil).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db_arg, "--empty-password"]);
    run(&[
        "-A",
        "-d",
        &db_arg,
        "-t",
        "P,,",
        "-n",
        "custos",
        "-i",
        cert.to_str().unwrap(),
    ]);
}

/// chromedriver on a free port, with `HOME` set for the browser it starts;
/// killed when dropped.
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

async fn start_driver(path: &Path, home: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .env("HOME", home)
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

/// Headless Chromium that does NOT ignore certificate errors (WebAuthn would
/// refuse the page if it had any).
async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--no-first-run",
                "--no-default-browser-check", "--window-size=1280,1000", "--lang=en-GB",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// A raw WebDriver command to chromedriver (fantoccini does not wrap the
/// WebAuthn extension commands).
async fn webdriver(driver: &Driver, c: &Client, method: &str, path: &str, body: Value) -> Value {
    let session = c.session_id().await.unwrap().unwrap();
    let url = format!("http://127.0.0.1:{}/session/{session}{path}", driver.port);
    let http = reqwest::Client::new();
    let req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&body),
    };
    let r = req.send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v["value"].clone()
}

async fn wait_for(c: &Client, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let html = c.source().await.unwrap();
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

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

async fn sign_in_with_password(c: &Client, base: &str, email: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(c, "Sign in").await;
    fill(c, "#email", email).await;
    fill(c, "#password", PASSWORD).await;
    click(c, "button[type=submit].primary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_registers_and_signs_in_as_the_second_factor() {
    let Some((chromium, driver_path, certutil)) = tools() else {
        return;
    };
    // The default policy: every account needs a second factor.
    let s = TestServer::start_with(Config::default()).await;
    let email = "ada@custos.example";
    s.custos
        .create_user(
            &Principal::cli(),
            email,
            Role::Sales,
            &SecretString::from(PASSWORD),
            None,
        )
        .await
        .unwrap();

    let home = tempfile::tempdir().unwrap();
    trust_in_nss(&certutil, home.path(), &s.data_dir().join("cert.pem"));
    let driver = start_driver(&driver_path, home.path()).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;

    // The page is a secure context without certificate errors.
    c.goto(&format!("{}/", s.base)).await.unwrap();
    wait_for(&c, "Sign in").await;
    let secure = c
        .execute(
            "return [window.isSecureContext, typeof PublicKeyCredential];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(secure, json!([true, "function"]), "WebAuthn is available");

    // A virtual platform authenticator with user verification.
    let auth_id = webdriver(
        &driver,
        &c,
        "POST",
        "/webauthn/authenticator",
        json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        }),
    )
    .await;
    let auth_id = auth_id.as_str().unwrap().to_string();

    // Password first: no second factor yet, so only enrolment is allowed.
    sign_in_with_password(&c, &s.base, email).await;
    wait_for(&c, "Set up a second factor to continue").await;
    assert_eq!(path(&c).await, "/app/security");

    // Register a passkey on the enrolment page.
    fill(&c, "#passkey-name", "Virtual authenticator").await;
    click(&c, "#passkey-register-button").await;
    let html = wait_for(&c, "Passkey added.").await;
    assert!(
        html.contains("Virtual authenticator"),
        "the passkey is listed"
    );
    assert!(
        !html.contains("Set up a second factor to continue"),
        "the session is a full one now"
    );
    let creds = webdriver(
        &driver,
        &c,
        "GET",
        &format!("/webauthn/authenticator/{auth_id}/credentials"),
        Value::Null,
    )
    .await;
    assert_eq!(
        creds.as_array().unwrap().len(),
        1,
        "one credential: {creds}"
    );
    assert_eq!(creds[0]["rpId"], "localhost");
    // Sign out, and in again: the password, then the passkey.
    click(&c, "form[action='/logout'] button").await;
    wait_for(&c, "Sign in").await;
    sign_in_with_password(&c, &s.base, email).await;
    wait_for(&c, "Sign in with a passkey").await;
    assert!(
        c.find(Locator::Css("#passkey-signin-button")).await.is_ok(),
        "the second-factor page offers the passkey"
    );
    click(&c, "#passkey-signin-button").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while path(&c).await != "/app" {
        if Instant::now() > deadline {
            let status = c
                .find(Locator::Css("#passkey-status"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default();
            panic!("the passkey sign-in did not reach /app: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&c, "Sign out").await;
    let html = c.source().await.unwrap();
    assert!(
        !html.contains("Set up a second factor"),
        "a full session after the passkey"
    );

    // The authenticator really signed: its counter moved past registration.
    let creds = webdriver(
        &driver,
        &c,
        "GET",
        &format!("/webauthn/authenticator/{auth_id}/credentials"),
        Value::Null,
    )
    .await;
    assert!(
        creds[0]["signCount"].as_u64().unwrap_or(0) >= 1,
        "the credential was used: {creds}"
    );

    c.close().await.unwrap();
}
