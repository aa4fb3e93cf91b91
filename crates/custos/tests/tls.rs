//! TLS against the running server, judged by outside tools: OpenSSL's
//! s_client for protocol and cipher refusals, sslyze for Mozilla's
//! "intermediate" profile, plus the HTTP redirect and certificate reload.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    port: u16,
    http_port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let (port, http_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            &format!("127.0.0.1:{http_port}"),
        ])
        .args(extra)
        .env_remove("CUSTOS_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..150 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        child,
        port,
        http_port,
        dir: dir.to_path_buf(),
    }
}

/// Runs `openssl s_client` and says whether a TLS session was established.
fn handshake(port: u16, args: &[&str]) -> bool {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !text.contains("Cipher is (NONE)") && text.contains("Cipher is ")
}

fn have(tool: &str, probe: &[&str]) -> bool {
    Command::new(tool)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn require(tool: &str, ok: bool) -> bool {
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI must provide {tool}");
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

#[test]
fn only_tls_12_and_13_with_strong_suites() {
    if !require("openssl", have("openssl", &["version"])) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    // OpenSSL 3 refuses old protocols itself unless the security level is lowered.
    assert!(
        !handshake(s.port, &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        "TLS 1.0 accepted"
    );
    assert!(
        !handshake(s.port, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        "TLS 1.1 accepted"
    );
    for weak in [
        "AES128-SHA:AES256-SHA:DES-CBC3-SHA:@SECLEVEL=0",
        "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0",
        "AES128-GCM-SHA256:AES256-GCM-SHA384",
    ] {
        assert!(
            !handshake(s.port, &["-tls1_2", "-cipher", weak]),
            "weak suite accepted: {weak}"
        );
    }
    assert!(handshake(
        s.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    ));
    assert!(handshake(
        s.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]
    ));
    assert!(handshake(s.port, &["-tls1_3"]));
    // Groups: X25519 and P-256 yes, P-521 no.
    assert!(handshake(s.port, &["-tls1_3", "-groups", "X25519"]));
    assert!(handshake(s.port, &["-tls1_3", "-groups", "P-256"]));
    assert!(!handshake(s.port, &["-tls1_3", "-groups", "P-521"]));

    // The generated certificate: an end-entity certificate (not a CA) for
    // localhost and 127.0.0.1, valid at most 366 days.
    let cert = s.dir.join("tls/cert.pem");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("CA:TRUE"), "{text}");
    let valid_now = Command::new("openssl")
        .args(["x509", "-noout", "-checkend", "0", "-in"])
        .arg(&cert)
        .status()
        .unwrap();
    assert!(valid_now.success());
    let past_366 = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-checkend",
            &(366 * 86_400).to_string(),
            "-in",
        ])
        .arg(&cert)
        .status()
        .unwrap();
    assert!(
        !past_366.success(),
        "the certificate is valid for more than 366 days"
    );
}

#[test]
fn sslyze_finds_the_mozilla_intermediate_profile() {
    if !require(
        "sslyze (pip install sslyze)",
        have("python3", &["-m", "sslyze", "--help"]),
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let cert = s.dir.join("tls/cert.pem");
    let out = Command::new("python3")
        .args([
            "-m",
            "sslyze",
            "--mozilla_config=intermediate",
            "--certinfo_ca_file",
        ])
        .arg(&cert)
        .arg(format!("127.0.0.1:{}", s.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("OK - Compliant"),
        "sslyze: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_redirects_and_https_sends_hsts() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/contacts?limit=5",
            s.http_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{}/api/v1/contacts?limit=5", s.port).as_str()
    );
    let r = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/auth/login",
            s.http_port
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308, "nothing is served in the clear");
    let cert = std::fs::read(s.dir.join("tls/cert.pem")).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let r = https
        .get(format!("https://localhost:{}/healthz", s.port))
        .send()
        .await
        .unwrap();
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    let age: u64 = hsts
        .split(';')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(age >= 31_536_000, "{hsts}");
}

fn fingerprint(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A server on a certificate of its own in `dir` (not the self-signed one
/// it would make), with that certificate's fingerprint as first served.
fn serve_own_certificate(dir: &Path) -> (Server, PathBuf, PathBuf, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let now = custos_domain::Clock::now(&custos_domain::SystemClock);
    custos_web::tls::generate_self_signed(&cert, &key, now).unwrap();
    let s = start(
        &dir.join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let first = fingerprint(s.port);
    assert!(first.contains("Fingerprint"), "{first}");
    (s, cert, key, first)
}

/// Sends the server SIGHUP (reload the certificate).
fn hang_up(s: &Server) {
    assert!(
        Command::new("kill")
            .args(["-HUP", &s.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_new_certificate_is_served_after_sighup_without_a_restart() {
    if !require("openssl", have("openssl", &["version"])) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (s, cert, key, before) = serve_own_certificate(tmp.path());
    let now = custos_domain::Clock::now(&custos_domain::SystemClock);
    custos_web::tls::generate_self_signed(&cert, &key, now).unwrap();
    let pid = s.child.id().to_string();
    hang_up(&s);
    let mut after = before.clone();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        after = fingerprint(s.port);
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "the server still serves the old certificate");
    // The same process is still serving.
    assert!(s.child.id().to_string() == pid && handshake(s.port, &["-tls1_3"]));
}

/// A certificate file replaced by something unreadable is not loaded: the
/// server goes on with the old one, and `/healthz` reports the certificate
/// job failing (with why) rather than only logging it.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_new_certificate_keeps_the_old_one_and_shows_on_healthz() {
    if !require("openssl", have("openssl", &["version"])) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (s, cert, _, before) = serve_own_certificate(tmp.path());
    let pem = std::fs::read(&cert).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let port = s.port;
    let health = |https: reqwest::Client| async move {
        let r = https
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()
    };
    let first = health(https.clone()).await;
    assert_eq!(first["status"], "ok", "{first}");

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n").unwrap();
    hang_up(&s);
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = health(https.clone()).await;
        if seen["status"] == "degraded" {
            break;
        }
    }
    assert_eq!(seen["status"], "degraded", "{seen}");
    let job = seen["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "certificate")
        .cloned()
        .unwrap_or_default();
    assert_eq!(job["status"], "failing", "{seen}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("keeping the old one"),
        "{seen}"
    );
    assert_eq!(fingerprint(s.port), before, "the old certificate is served");
}
