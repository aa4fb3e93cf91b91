//! The audit ledger from the outside: tampering applied directly to the
//! database is caught by `custos audit verify` at the right entry; a checkpoint
//! kept elsewhere is witnessed; proofs served over the API verify; and an
//! independent Python verifier agrees with our root.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use custos_domain::Role;
use custos_testkit::TestServer;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn custos(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CUSTOS_MASTER_KEY")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A data directory whose ledger holds at least 20 entries and a signed
/// checkpoint at the current size.
fn seeded(tmp: &Path) -> PathBuf {
    let dir = tmp.join("data");
    for i in 0..4 {
        let email = format!("user{i}@example.com");
        let out = custos(
            &dir,
            &[
                "user",
                "add",
                "--email",
                &email,
                "--role",
                "sales",
                "--password-stdin",
            ],
            Some("correct horse battery staple\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        for n in 0..4 {
            let out = custos(
                &dir,
                &[
                    "token",
                    "create",
                    "--email",
                    &email,
                    "--name",
                    &format!("t{n}"),
                ],
                None,
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    }
    let out = custos(&dir, &["audit", "checkpoint"], None);
    assert!(out.status.success());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

async fn tamper(dir: &Path, statements: &[&str]) {
    let url = format!("sqlite://{}", dir.join("custos.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for s in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

fn verify_fails_at(dir: &Path, index: u64) {
    let out = custos(dir, &["audit", "verify"], None);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "verify passed on a tampered ledger");
    assert!(
        err.contains(&format!("entry {index}:")),
        "expected the first bad entry {index}, got: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_caught_at_the_right_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = seeded(tmp.path());
    let out = custos(&pristine, &["audit", "verify"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 signed checkpoints verified"),
        "{}",
        text(&out.stdout)
    );

    // Each case works on its own copy of the data directory.
    let cases: Vec<(&str, Vec<&str>, u64)> = vec![
        (
            "edit",
            vec![
                "UPDATE ledger_leaves SET data = CAST(replace(CAST(data AS TEXT), 'token.create', 'token.revoke') AS BLOB) WHERE idx = 7",
            ],
            7,
        ),
        (
            "edit with the leaf hash recomputed",
            vec![
                "UPDATE ledger_leaves SET data = CAST(replace(CAST(data AS TEXT), 'token.create', 'token.revoke') AS BLOB) WHERE idx = 7",
                "UPDATE ledger_leaves SET leaf_hash = (SELECT leaf_hash FROM ledger_leaves WHERE idx = 8) WHERE idx = 7",
            ],
            7,
        ),
        ("delete", vec!["DELETE FROM ledger_leaves WHERE idx = 5"], 5),
        (
            "insert",
            vec![
                "UPDATE ledger_leaves SET idx = idx + 1000 WHERE idx >= 6",
                "UPDATE ledger_leaves SET idx = idx - 999 WHERE idx >= 1000",
                "INSERT INTO ledger_leaves (idx, data, leaf_hash, created_at) SELECT 6, data, leaf_hash, created_at FROM ledger_leaves WHERE idx = 2",
            ],
            6,
        ),
        (
            "reorder",
            vec![
                "UPDATE ledger_leaves SET idx = -1 WHERE idx = 3",
                "UPDATE ledger_leaves SET idx = 3 WHERE idx = 4",
                "UPDATE ledger_leaves SET idx = 4 WHERE idx = -1",
            ],
            3,
        ),
        (
            "truncate",
            vec!["DELETE FROM ledger_leaves WHERE idx >= 15"],
            15,
        ),
        (
            "truncate and rewrite the head",
            vec![
                "DELETE FROM ledger_leaves WHERE idx >= 15",
                "DELETE FROM ledger_head",
            ],
            15,
        ),
        (
            "edit a stored tree node",
            vec!["UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1"],
            4,
        ),
    ];
    for (name, statements, index) in cases {
        let copy = tmp.path().join(name.replace(' ', "-"));
        copy_dir(&pristine, &copy);
        tamper(&copy, &statements).await;
        println!("case: {name}");
        verify_fails_at(&copy, index);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_kept_elsewhere_is_witnessed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = seeded(tmp.path());
    let note = text(&custos(&dir, &["audit", "checkpoint"], None).stdout);
    let kept = tmp.path().join("kept-checkpoint.txt");
    std::fs::write(&kept, &note).unwrap();
    // The log grows; the kept checkpoint is still part of its history.
    let out = custos(
        &dir,
        &[
            "token",
            "create",
            "--email",
            "user0@example.com",
            "--name",
            "later",
        ],
        None,
    );
    assert!(out.status.success());
    let out = custos(
        &dir,
        &["audit", "witness", "--checkpoint", kept.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("checkpoint OK"));

    // A note altered by one character is refused (signature).
    let forged = tmp.path().join("forged.txt");
    std::fs::write(&forged, note.replacen('\n', "\n1", 1)).unwrap();
    let out = custos(
        &dir,
        &["audit", "witness", "--checkpoint", forged.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());

    // Someone with the database rewrites an early subtree (leaves, nodes and head
    // made consistent with each other): the kept checkpoint exposes it.
    let rewritten = tmp.path().join("rewritten");
    copy_dir(&dir, &rewritten);
    tamper(
        &rewritten,
        &["UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 0"],
    )
    .await;
    let out = custos(
        &rewritten,
        &["audit", "witness", "--checkpoint", kept.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("FAILED"),
        "{}",
        text(&out.stderr)
    );

    // A truncated log is caught too.
    let truncated = tmp.path().join("truncated");
    copy_dir(&dir, &truncated);
    tamper(
        &truncated,
        &[
            "DELETE FROM ledger_leaves WHERE idx >= 3",
            "UPDATE ledger_head SET size = 3",
        ],
    )
    .await;
    let out = custos(
        &truncated,
        &["audit", "witness", "--checkpoint", kept.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("truncated"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_served_over_the_api_verify() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Auditor).await;
    let admin = s.token_for(Role::Admin).await;
    for i in 0..9 {
        let r = s
            .client()
            .post(s.url("/api/v1/companies"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("Co {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let get = |path: String| {
        let c = s.client().clone();
        let t = token.clone();
        async move { c.get(path).bearer_auth(t).send().await.unwrap() }
    };
    let cp1 = get(s.url("/api/v1/audit/checkpoint"))
        .await
        .text()
        .await
        .unwrap();
    let key = get(s.url("/api/v1/audit/verifier-key"))
        .await
        .text()
        .await
        .unwrap();
    let c1 = custos_ledger::checkpoint::verify_checkpoint(&cp1, key.trim()).unwrap();
    for i in 0..5 {
        let r = s
            .client()
            .post(s.url("/api/v1/companies"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("Later {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let cp2 = get(s.url("/api/v1/audit/checkpoint"))
        .await
        .text()
        .await
        .unwrap();
    let c2 = custos_ledger::checkpoint::verify_checkpoint(&cp2, key.trim()).unwrap();
    assert!(c2.size > c1.size);
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let hashes = |v: &serde_json::Value| -> Vec<[u8; 32]> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| b64(h).try_into().unwrap())
            .collect()
    };
    // Inclusion of every leaf in the second tree, each checked against the data.
    let leaves: serde_json::Value =
        get(s.url(&format!("/api/v1/audit/leaves?start=0&end={}", c2.size)))
            .await
            .json()
            .await
            .unwrap();
    for leaf in leaves["leaves"].as_array().unwrap() {
        let i = leaf["index"].as_u64().unwrap();
        let p: serde_json::Value = get(s.url(&format!(
            "/api/v1/audit/proof/inclusion?index={i}&size={}",
            c2.size
        )))
        .await
        .json()
        .await
        .unwrap();
        let lh = custos_ledger::leaf_hash(&b64(&leaf["data"]));
        assert_eq!(b64(&p["leaf_hash"]), lh.to_vec());
        custos_ledger::merkle::verify_inclusion(&lh, i, c2.size, &hashes(&p["proof"]), &c2.root)
            .unwrap();
    }
    let p: serde_json::Value = get(s.url(&format!(
        "/api/v1/audit/proof/consistency?from={}&to={}",
        c1.size, c2.size
    )))
    .await
    .json()
    .await
    .unwrap();
    custos_ledger::merkle::verify_consistency(
        c1.size,
        c2.size,
        &hashes(&p["proof"]),
        &c1.root,
        &c2.root,
    )
    .unwrap();
    // Bad parameters are named.
    let r = get(s.url(&format!(
        "/api/v1/audit/proof/inclusion?index={}&size={}",
        c2.size + 5,
        c2.size
    )))
    .await;
    assert_eq!(r.status(), 422);
    let r = get(s.url("/api/v1/audit/proof/consistency?from=5&to=999999")).await;
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "to");
    // Sales may not read the ledger.
    let sales = s.token_for(Role::Sales).await;
    let r = s
        .client()
        .get(s.url("/api/v1/audit/proof/consistency?from=1&to=2"))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

fn python_with_cryptography() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The auditor's example script, which shares no code with Custos, recomputes
/// the same root and verifies signature and proofs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_python_verifier_agrees() {
    if !python_with_cryptography() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with the cryptography package"
        );
        eprintln!("skipped: python3 with the cryptography package is not installed");
        return;
    }
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let auditor = s.token_for(Role::Auditor).await;
    for i in 0..30 {
        let r = s
            .client()
            .post(s.url("/api/v1/contacts"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"first_name": format!("P{i}"), "last_name": "Example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let tmp = tempfile::tempdir().unwrap();
    let cert = s.data_dir().join("cert.pem");
    let kept = tmp.path().join("kept.txt");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/auditor/verify_ledger.py"
    );
    let run = |extra: Vec<String>| {
        let mut args = vec![
            script.to_string(),
            "--url".into(),
            s.base.clone(),
            "--token".into(),
            auditor.clone(),
            "--cacert".into(),
            cert.display().to_string(),
        ];
        args.extend(extra);
        Command::new("python3").args(&args).output().unwrap()
    };
    let out = run(vec!["--save".into(), kept.display().to_string()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for i in 0..7 {
        let r = s
            .client()
            .post(s.url("/api/v1/companies"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("C{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let out = run(vec!["--previous".into(), kept.display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("consistent_with_previous"), "{stdout}");
    // The root it printed is ours.
    let status = s
        .custos
        .ledger_status(&custos_service::Principal::cli())
        .await
        .unwrap();
    let cp = s.custos.ledger_checkpoint().await.unwrap();
    let ours =
        custos_ledger::checkpoint::Checkpoint::from_body(cp.split("\n\n").next().unwrap()).ok();
    let root_b64 = base64::engine::general_purpose::STANDARD.encode(hex_decode(&status.root_hex));
    assert!(
        stdout.contains(&format!("root={root_b64}")),
        "{stdout} vs {root_b64} ({ours:?})"
    );
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
