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

/// Starts `custos serve` on `dir` (with `extra` arguments) on a free port and
/// waits until it answers; returns the process, its base URL and a client
/// that trusts the certificate `serve` generated.
async fn start_serve(dir: &Path, extra: &[&str]) -> (std::process::Child, String, reqwest::Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", &listen])
        .args(extra)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("https://localhost:{port}");
    for _ in 0..300 {
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
            return (server, base, c);
        }
    }
    server.kill().ok();
    server.wait().ok();
    panic!("server did not come up");
}

/// The sizes of the checkpoints `serve --checkpoint-dir` wrote.
fn published_sizes(dir: &Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_prefix("checkpoint-")?
                        .strip_suffix(".txt")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

/// The README's first steps, literally: `serve` on an empty data directory
/// signs a checkpoint of the empty tree at once; the first administrator is
/// created afterwards; signing must go on (it once stopped for good at this
/// point: RFC 9162 has no consistency proof from size 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_an_empty_dir_then_a_user_then_signing_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let published = tmp.path().join("checkpoints");
    let published_arg = published.to_string_lossy().to_string();
    let (mut server, base, client) = start_serve(
        &dir,
        &[
            "--checkpoint-interval",
            "1",
            "--checkpoint-dir",
            &published_arg,
        ],
    )
    .await;
    let mut first = Vec::new();
    for _ in 0..100 {
        first = published_sizes(&published);
        if !first.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        first.first(),
        Some(&0),
        "the first checkpoint is of the empty tree: {first:?}"
    );

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
            "first-steps",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();

    // The timer signs the grown tree within a few intervals.
    let mut sizes = Vec::new();
    for _ in 0..100 {
        sizes = published_sizes(&published);
        if sizes.iter().any(|&n| n > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        sizes.iter().any(|&n| n > 0),
        "no checkpoint after the first user: {sizes:?}"
    );
    let health: serde_json::Value = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let job = health["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "checkpoint")
        .cloned()
        .unwrap_or_default();
    assert_eq!(job["status"], "ok", "{health}");
    assert!(job["last_success"].is_string(), "{health}");
    assert!(job["last_run"].is_string(), "{health}");
    // The schedule shown is the one asked for on the command line.
    assert_eq!(job["every_seconds"], 1, "{health}");
    // The certificate watcher is a job like the others: listed with its
    // schedule from the start, healthy while its files are good.
    let cert = health["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "certificate")
        .cloned()
        .unwrap_or_default();
    assert_eq!(cert["status"], "ok", "{health}");
    assert_eq!(cert["every_seconds"], 30, "{health}");

    let r = client
        .get(format!("{base}/api/v1/audit/checkpoint"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let note = r.text().await.unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size > 0, "{note}");
    server.kill().ok();
    server.wait().ok();

    let out = custos(&dir, &["audit", "checkpoint"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The auditor who kept the empty tree's checkpoint can still witness.
    let zero = published.join("checkpoint-0.txt");
    let out = custos(
        &dir,
        &["audit", "witness", "--checkpoint", &zero.to_string_lossy()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("checkpoint OK"),
        "{}",
        text(&out.stdout)
    );
    let out = custos(&dir, &["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
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

    let (mut server, base, client) = start_serve(&dir, &[]).await;
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

/// Reads `out` until `want` has appeared (or 20 s passed); returns all read.
fn read_until(out: &std::sync::mpsc::Receiver<u8>, seen: &mut Vec<u8>, want: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if String::from_utf8_lossy(seen).contains(want) {
            return true;
        }
        if let Ok(b) = out.recv_timeout(std::time::Duration::from_millis(100)) {
            seen.push(b);
        }
    }
    false
}

/// On a terminal, `custos user add` asks for the password twice and shows
/// nothing of it; two different entries create nothing. Runs the command
/// under util-linux `script`, which gives it a pseudo-terminal.
#[test]
fn user_add_on_a_terminal_asks_for_the_password_without_showing_it() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs util-linux `script` for this test"
        );
        eprintln!("skipping: util-linux `script` is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    assert!(custos(&dir, &["init"], None).status.success());
    let add = |email: &str, first: &str, second: &str| -> (bool, String) {
        let cmd = format!(
            "{} --data-dir {} user add --email {email} --role admin",
            env!("CARGO_BIN_EXE_custos"),
            dir.display()
        );
        let mut child = Command::new("script")
            .args(["-qefc", &cmd, "/dev/null"])
            .env_remove("CUSTOS_MASTER_KEY")
            .env_remove("CUSTOS_DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut b = [0u8; 1];
            while let Ok(1) = stdout.read(&mut b) {
                if tx.send(b[0]).is_err() {
                    break;
                }
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let mut seen = Vec::new();
        // Type only once the prompt is up, as a person would. The prompt is
        // written just before echo goes off, so give the terminal a moment:
        // a line that arrives in between would be echoed by the pty itself.
        let settle = || std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(read_until(&rx, &mut seen, "not shown"), "{}", text(&seen));
        settle();
        stdin.write_all(format!("{first}\r").as_bytes()).unwrap();
        assert!(read_until(&rx, &mut seen, "again"), "{}", text(&seen));
        settle();
        stdin.write_all(format!("{second}\r").as_bytes()).unwrap();
        let status = child.wait().unwrap();
        while let Ok(b) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(b);
        }
        (status.success(), text(&seen))
    };
    let pw = "correct horse battery staple";
    let (ok, shown) = add("typo@example.com", pw, "correct horse battery stapel");
    assert!(!ok, "{shown}");
    assert!(shown.contains("differ"), "{shown}");
    assert!(!shown.contains(pw), "the password was shown: {shown}");
    let out = custos(
        &dir,
        &[
            "token",
            "create",
            "--email",
            "typo@example.com",
            "--name",
            "t",
        ],
        None,
    );
    assert!(!out.status.success(), "a user was created after a typo");

    let (ok, shown) = add("ada@example.com", pw, pw);
    assert!(ok, "{shown}");
    assert!(shown.contains("Created ada@example.com"), "{shown}");
    assert!(!shown.contains(pw), "the password was shown: {shown}");
    let out = custos(
        &dir,
        &[
            "token",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "t",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
