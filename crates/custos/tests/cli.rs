//! The `custos` binary end to end: init, first admin, token, HTTPS server,
//! audit verify, and one-line errors with a non-zero exit. SQLite only, by
//! nature: it drives the binary on a data directory holding the embedded
//! database (the PostgreSQL pass runs the binary in `postgres.rs`).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn custos(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn init_is_idempotent_and_protects_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = custos(&dir, &["init"], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let key = std::fs::read(dir.join("master.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let again = custos(&dir, &["init"], None);
    assert!(again.status.success());
    assert_eq!(
        std::fs::read(dir.join("master.key")).unwrap(),
        key,
        "init must not replace the key"
    );
    // Without its key the database is refused, clearly.
    std::fs::remove_file(dir.join("master.key")).unwrap();
    let out = custos(&dir, &["keys", "status"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("master key") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (
            vec![
                "user",
                "add",
                "--email",
                "a@example.com",
                "--role",
                "emperor",
                "--password-stdin",
            ],
            Some("a long enough password\n"),
        ),
        (
            vec![
                "user",
                "add",
                "--email",
                "not-an-email",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some("a long enough password\n"),
        ),
        (
            vec![
                "user",
                "add",
                "--email",
                "b@example.com",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some("short\n"),
        ),
        (
            vec![
                "token",
                "create",
                "--email",
                "nobody@example.com",
                "--name",
                "x",
            ],
            None,
        ),
        (vec!["serve", "--listen", "not-an-address"], None),
    ];
    // The token case needs a database.
    assert!(custos(&dir, &["init"], None).status.success());
    for (args, stdin) in cases {
        let out = custos(&dir, &args, stdin);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = text(&out.stderr);
        let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err:?}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_https_with_a_token_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = custos(
        &dir,
        &[
            "user",
            "add",
            "--email",
            "ada@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = custos(
        &dir,
        &[
            "token",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "cli-test",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(token.starts_with("cst_"), "{token}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", &listen])
        .env_remove("CUSTOS_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let mut client = None;
    let mut up = false;
    for _ in 0..150 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // The certificate is generated by `serve` itself on first start.
        let Ok(cert) = std::fs::read(dir.join("tls/cert.pem")) else {
            continue;
        };
        let Ok(root) = reqwest::Certificate::from_pem(&cert) else {
            continue;
        };
        let c = reqwest::Client::builder()
            .add_root_certificate(root)
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        if c.get(format!("{base}/healthz")).send().await.is_ok() {
            client = Some(c);
            up = true;
            break;
        }
    }
    assert!(up, "server did not come up");
    let client = client.unwrap();
    let r = client
        .post(format!("{base}/api/v1/contacts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@analytical.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .get(format!(
            "{base}/api/v1/contacts?email=ADA@analytical.example"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: serde_json::Value = r.json().await.unwrap();
    assert_eq!(page["items"][0]["last_name"], "Lovelace");
    let r = client
        .get(format!("{base}/api/v1/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.kill().ok();
    server.wait().ok();

    let out = custos(&dir, &["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ledger OK: "),
        "{}",
        text(&out.stdout)
    );
    let out = custos(&dir, &["audit", "checkpoint"], None);
    assert!(out.status.success());
    let note = text(&out.stdout);
    assert!(note.contains("\n\n— "), "{note}");
}

#[test]
fn help_describes_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--help")
        .output()
        .unwrap();
    let help = text(&out.stdout);
    for cmd in ["init", "serve", "user", "token", "audit", "keys"] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
    for sub in [
        vec!["serve", "--help"],
        vec!["user", "add", "--help"],
        vec!["token", "create", "--help"],
        vec!["audit", "verify", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(&sub)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            text(&out.stdout).contains("--data-dir"),
            "{sub:?} lacks the global options"
        );
    }
}
