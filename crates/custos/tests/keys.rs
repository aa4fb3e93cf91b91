//! Key lifecycle end to end: rotation and retirement, crypto-shredding,
//! encrypted backups that keep erased people erased after a restore. SQLite
//! only, by nature: it drives the binary on a data directory, backs up with
//! VACUUM INTO and scans the files for plaintext.

#![allow(clippy::unwrap_used)]

use custos_crypto::MasterKeyring;
use custos_domain::{Entity, Role};
use custos_service::{Config, Custos, Principal, ServiceError};
use custos_testkit::AsJson;
use custos_testkit::find_in_files;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use uuid::Uuid;

fn custos_cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_PASSPHRASE_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn open(dir: &Path) -> Custos {
    let ring =
        MasterKeyring::parse_key_file(&std::fs::read_to_string(dir.join("master.key")).unwrap())
            .unwrap();
    let store = custos_store::SqliteStore::open(&dir.join("custos.db"))
        .await
        .unwrap();
    Custos::open(
        Arc::new(store),
        Arc::new(custos_domain::SystemClock),
        ring,
        Config::default(),
    )
    .await
    .unwrap()
}

fn id(v: &custos_service::RecordView) -> Uuid {
    v.id()
}

struct Person {
    contact: Uuid,
    activity: Uuid,
    order: Uuid,
    values: Vec<String>,
}

async fn person(c: &Custos, tag: &str) -> Person {
    let p = Principal::cli();
    let values = vec![
        format!("Firstname{tag}"),
        format!("Lastname{tag}"),
        format!("{tag}.person@example.org").to_lowercase(),
        format!("+1 555 {:04}", tag.bytes().map(u32::from).sum::<u32>()),
        format!("Private note about {tag}"),
        format!("{tag} Erasure Street 9"),
    ];
    let contact = c
        .create(&p, Entity::Contact, &json!({"first_name": values[0], "last_name": values[1], "email": values[2], "phone": values[3]}))
        .await
        .unwrap();
    let cid = id(&contact).to_string();
    let activity = c
        .create(&p, Entity::Activity, &json!({"contact_id": cid, "kind": "note", "body": values[4], "occurred_at": "2026-01-01T10:00:00Z"}))
        .await
        .unwrap();
    let order = c
        .create(&p, Entity::Order, &json!({"contact_id": cid, "status": "completed", "total": "249.90", "currency": "EUR",
            "shipping_address": values[5], "placed_at": "2026-01-01T10:00:00Z", "completed_at": "2026-01-02T10:00:00Z"}))
        .await
        .unwrap();
    Person {
        contact: id(&contact),
        activity: id(&activity),
        order: id(&order),
        values,
    }
}

fn needles(p: &Person) -> Vec<Vec<u8>> {
    p.values.iter().map(|v| v.clone().into_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_every_key_and_old_versions_retire() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos_cli(&dir, &["init"]));
    let c = open(&dir).await;
    let mut people = Vec::new();
    for i in 0..12 {
        people.push(person(&c, &format!("R{i:02}")).await);
    }
    c.close().await;

    // Retiring version 1 before anything was re-wrapped is refused.
    let out = custos_cli(&dir, &["keys", "retire", "--below", "2"]);
    assert!(!out.status.success());

    let out = ok(custos_cli(&dir, &["keys", "rotate"]));
    assert!(out.contains("version 2 is active"), "{out}");
    let status = ok(custos_cli(&dir, &["keys", "status"]));
    assert!(status.contains("active version:      2"), "{status}");
    // Every data key (12 contacts) is now wrapped by version 2 and none by 1.
    let row = |v: &str| {
        status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(v))
            .map(str::to_string)
    };
    let v2 = row("2").unwrap();
    assert_eq!(v2.split_whitespace().nth(1), Some("12"), "{status}");
    if let Some(v1) = row("1") {
        assert_eq!(v1.split_whitespace().nth(1), Some("0"), "{status}");
    }

    // Retire version 1: the key file keeps only version 2, and everything opens.
    ok(custos_cli(&dir, &["keys", "retire", "--below", "2"]));
    let ring =
        MasterKeyring::parse_key_file(&std::fs::read_to_string(dir.join("master.key")).unwrap())
            .unwrap();
    assert_eq!(ring.versions(), vec![2]);
    let c = open(&dir).await;
    let p = Principal::cli();
    for person in &people {
        let v = c.get(&p, Entity::Contact, person.contact).await.unwrap();
        assert_eq!(
            v.record.get("first_name").as_text(),
            Some(person.values[0].as_str())
        );
        let a = c.get(&p, Entity::Activity, person.activity).await.unwrap();
        assert_eq!(
            a.record.get("body").as_text(),
            Some(person.values[4].as_str())
        );
    }
    // New people after rotation work too.
    person(&c, "NEW").await;
    c.close().await;
    let out = ok(custos_cli(&dir, &["audit", "verify"]));
    assert!(out.starts_with("ledger OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos_cli(&dir, &["init"]));
    let c = open(&dir).await;
    let a = person(&c, "IA").await;
    c.close().await;
    // As if a rotation crashed right after saving the new version: the key file
    // holds versions 1 and 2, while every data key is still wrapped by 1.
    let mut ring =
        MasterKeyring::parse_key_file(&std::fs::read_to_string(dir.join("master.key")).unwrap())
            .unwrap();
    ring.add(custos_crypto::MasterKey::generate(2).unwrap())
        .unwrap();
    std::fs::write(
        dir.join("master.key"),
        secrecy::ExposeSecret::expose_secret(&ring.to_key_file()).as_bytes(),
    )
    .unwrap();
    let out = ok(custos_cli(&dir, &["keys", "rotate"]));
    assert!(out.contains("resumed"), "{out}");
    assert!(out.contains("version 2 is active"), "{out}");
    let ring =
        MasterKeyring::parse_key_file(&std::fs::read_to_string(dir.join("master.key")).unwrap())
            .unwrap();
    assert_eq!(
        ring.versions(),
        vec![1, 2],
        "resuming must not add a third version"
    );
    ok(custos_cli(&dir, &["keys", "retire", "--below", "2"]));
    let c = open(&dir).await;
    assert!(
        c.get(&Principal::cli(), Entity::Contact, a.contact)
            .await
            .is_ok()
    );
    c.close().await;
}

fn decrypt_to(dir: &Path, backup: &Path, out: &Path) {
    let ring =
        MasterKeyring::parse_key_file(&std::fs::read_to_string(dir.join("master.key")).unwrap())
            .unwrap();
    let input = std::fs::File::open(backup).unwrap();
    let output = std::fs::File::create(out).unwrap();
    custos_crypto::decrypt_backup(&ring, input, output).unwrap();
}

async fn check(c: Custos, gone: &Person, kept: &Person) {
    let p = Principal::cli();
    assert!(matches!(
        c.get(&p, Entity::Contact, gone.contact).await,
        Err(ServiceError::Gone(_))
    ));
    assert!(matches!(
        c.get(&p, Entity::Activity, gone.activity).await,
        Err(ServiceError::Gone(_))
    ));
    let order = c.get(&p, Entity::Order, gone.order).await.unwrap();
    assert!(order.erased);
    assert_eq!(order.to_json()["total"], "249.90");
    assert_eq!(order.to_json()["shipping_address"], serde_json::Value::Null);
    assert_eq!(order.to_json()["erased"], true);
    let k = c.get(&p, Entity::Contact, kept.contact).await.unwrap();
    assert_eq!(
        k.record.get("email").as_text(),
        Some(kept.values[2].as_str())
    );
    // The erased person no longer appears in lists or searches.
    let params = custos_service::ListParams::parse(
        Entity::Contact,
        &[("email".into(), gone.values[2].clone())],
    )
    .unwrap();
    assert!(
        c.list(&p, Entity::Contact, &params)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let all = c
        .list(
            &p,
            Entity::Contact,
            &custos_service::ListParams::parse(Entity::Contact, &[]).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_and_a_restored_backup_stays_erased() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos_cli(&dir, &["init"]));
    let c = open(&dir).await;
    let gone = person(&c, "Gone").await;
    let kept = person(&c, "Kept").await;
    c.close().await;
    let before: PathBuf = tmp.path().join("before.backup");
    ok(custos_cli(
        &dir,
        &["backup", "create", before.to_str().unwrap()],
    ));

    // Erasure needs confirmation, then shreds.
    assert!(
        !custos_cli(
            &dir,
            &["subject", "erase", "--id", &gone.contact.to_string()]
        )
        .status
        .success()
    );
    let out = ok(custos_cli(
        &dir,
        &[
            "subject",
            "erase",
            "--id",
            &gone.contact.to_string(),
            "--yes",
        ],
    ));
    assert!(out.contains("kept anonymised: 1 orders"), "{out}");

    check(open(&dir).await, &gone, &kept).await;

    // No byte of the erased values anywhere under the data directory, nor in a
    // backup taken after (decrypted, so the scan sees the database itself).
    assert!(find_in_files(&dir, &needles(&gone)).is_empty());
    let after = tmp.path().join("after.backup");
    ok(custos_cli(
        &dir,
        &["backup", "create", after.to_str().unwrap()],
    ));
    let scan = tmp.path().join("scan");
    std::fs::create_dir_all(&scan).unwrap();
    decrypt_to(&dir, &after, &scan.join("after.db"));
    assert!(find_in_files(&scan, &needles(&gone)).is_empty());
    // The scan is real: a plain value of the kept order is in the decrypted copy.
    assert!(!find_in_files(&scan, &[b"completed".to_vec()]).is_empty());
    // And the backup file itself holds nothing readable.
    assert!(
        find_in_files(&dir, &[b"SQLite format".to_vec()])
            .iter()
            .all(|(f, _)| f.ends_with("custos.db"))
    );
    assert!(
        find_in_files(tmp.path(), &[b"SQLite format".to_vec()])
            .iter()
            .all(|(f, _)| !f.ends_with("after.backup"))
    );

    // Restoring the backup taken before the erasure brings nobody back.
    let out = ok(custos_cli(
        &dir,
        &["backup", "restore", before.to_str().unwrap()],
    ));
    assert!(out.contains("re-applied 1 erasure"), "{out}");
    check(open(&dir).await, &gone, &kept).await;
    ok(custos_cli(&dir, &["audit", "verify"]));

    // Even without the database (disaster): the journal beside it suffices.
    for f in [
        "custos.db",
        "custos.db-wal",
        "custos.db-shm",
        "custos.db.pre-restore",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let out = ok(custos_cli(
        &dir,
        &["backup", "restore", before.to_str().unwrap()],
    ));
    assert!(out.contains("re-applied 1 erasure"), "{out}");
    check(open(&dir).await, &gone, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_altered_by_one_byte_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos_cli(&dir, &["init"]));
    let c = open(&dir).await;
    let a = person(&c, "Alt").await;
    c.close().await;
    let file = tmp.path().join("b.backup");
    ok(custos_cli(
        &dir,
        &["backup", "create", file.to_str().unwrap()],
    ));
    let bytes = std::fs::read(&file).unwrap();
    for pos in [3, 40, bytes.len() / 2, bytes.len() - 2] {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x20;
        let altered = tmp.path().join(format!("bad-{pos}.backup"));
        std::fs::write(&altered, &bad).unwrap();
        let out = custos_cli(&dir, &["backup", "restore", altered.to_str().unwrap()]);
        assert!(!out.status.success(), "byte {pos}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a usable backup") && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The current database was left alone.
    let c = open(&dir).await;
    assert!(
        c.get(&Principal::cli(), Entity::Contact, a.contact)
            .await
            .is_ok()
    );
    c.close().await;
    // Another installation's key cannot open it either.
    let other = tmp.path().join("other");
    ok(custos_cli(&other, &["init"]));
    let out = custos_cli(&other, &["backup", "restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_records_answer_410_over_https_and_orders_stay_anonymised() {
    let s = custos_testkit::TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let gone = person(&s.custos, "Http").await;
    s.custos
        .erase_subject(&Principal::cli(), gone.contact)
        .await
        .unwrap();
    let get = |path: String| {
        let c = s.client().clone();
        let t = admin.clone();
        async move { c.get(path).bearer_auth(t).send().await.unwrap() }
    };
    let r = get(s.url(&format!("/api/v1/contacts/{}", gone.contact))).await;
    assert_eq!(r.status(), 410);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        get(s.url(&format!("/api/v1/activities/{}", gone.activity)))
            .await
            .status(),
        410
    );
    let r = get(s.url(&format!("/api/v1/orders/{}", gone.order))).await;
    assert_eq!(r.status(), 200);
    let order: serde_json::Value = r.json().await.unwrap();
    assert_eq!(order["total"], "249.90");
    assert_eq!(order["erased"], true);
    assert!(order["shipping_address"].is_null());
    // Erasing twice answers 410, an unknown id 404.
    assert!(matches!(
        s.custos
            .erase_subject(&Principal::cli(), gone.contact)
            .await,
        Err(ServiceError::Gone(_))
    ));
    assert!(matches!(
        s.custos
            .erase_subject(&Principal::cli(), Uuid::now_v7())
            .await,
        Err(ServiceError::NotFound(_))
    ));
    // Sales may not erase.
    let sales = s
        .custos
        .authenticate(&s.token_for(Role::Sales).await, &Default::default())
        .await
        .unwrap();
    let other = person(&s.custos, "Other").await;
    assert!(matches!(
        s.custos.erase_subject(&sales, other.contact).await,
        Err(ServiceError::Forbidden(_))
    ));
}

#[test]
fn a_passphrase_protected_keyring_works_and_refuses_a_wrong_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pass = tmp.path().join("pass.txt");
    std::fs::write(&pass, "a long and private master passphrase\n").unwrap();
    let with = |args: &[&str], file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .arg("--data-dir")
            .arg(&dir)
            .arg("--passphrase-file")
            .arg(file)
            .args(args)
            .env_remove("CUSTOS_MASTER_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    ok(with(&["init"], &pass));
    assert!(dir.join("master.key.enc").exists());
    assert!(
        !dir.join("master.key").exists(),
        "no plain key file beside the encrypted keyring"
    );
    let enc = std::fs::read(dir.join("master.key.enc")).unwrap();
    assert!(String::from_utf8_lossy(&enc).starts_with("custos-keyring-v1\n"));
    ok(with(&["keys", "rotate"], &pass));
    let status = ok(with(&["keys", "status"], &pass));
    assert!(
        status.contains("active version:      2") && status.contains("passphrase-protected"),
        "{status}"
    );
    let wrong = tmp.path().join("wrong.txt");
    std::fs::write(&wrong, "not the right passphrase at all\n").unwrap();
    let out = with(&["keys", "status"], &wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong passphrase") && err.lines().count() == 1,
        "{err}"
    );
    // Without the passphrase and without a terminal, it says what to do.
    let out = custos_cli(&dir, &["keys", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase"));
}

#[test]
fn serve_takes_scheduled_backups_and_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let backups = tmp.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Two older backups already there; with --backup-keep 2 the oldest must go.
    std::fs::write(backups.join("custos-1000.backup"), b"old").unwrap();
    std::fs::write(backups.join("custos-2000.backup"), b"old").unwrap();
    std::fs::write(backups.join("unrelated.txt"), b"keep me").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backup-dir",
        ])
        .arg(&backups)
        .args(["--backup-every-hours", "24", "--backup-keep", "2"])
        .env_remove("CUSTOS_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        names = std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        if !names.contains(&"custos-1000.backup".to_string()) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !names.contains(&"custos-1000.backup".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"custos-2000.backup".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"unrelated.txt".to_string()), "{names:?}");
    let new: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("custos-") && !n.contains("2000"))
        .collect();
    assert_eq!(new.len(), 1, "{names:?}");
    let bytes = std::fs::read(backups.join(new[0])).unwrap();
    assert!(bytes.starts_with(b"CUSTOSBK"));
    // It restores.
    ok(custos_cli(
        &dir,
        &["backup", "restore", backups.join(new[0]).to_str().unwrap()],
    ));
}
