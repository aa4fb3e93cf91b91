//! Invariant 1 at the service level: no personal value reaches any file under
//! the data directory, in any form the test can think of. That scan is about
//! the files SQLite writes, so it runs on SQLite on disk whatever the suite's
//! backend; the restart and concurrency tests here run on the suite's backend.

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::{Config, Custos, Principal, RequestMeta};
use custos_store::SqliteStore;
use custos_testkit::AsJson;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Distinctive values that occur nowhere else.
const PERSONAL: &[&str] = &[
    "Zephyrina",
    "Quackenbush-Oyelaran",
    "zephyrina.q@plaintext-canary.example",
    "+1 555 0199 7788",
    "15550199778",
    "Bartholomew",
    "Xylandros",
    "bart.xylandros@plaintext-canary.example",
    "bartholomew.x@plaintext-canary.example",
    "+49 30 9876 5432",
    "canarytagzq",
    "Mentioned the secret recipe for quince jam",
    "Rang back about the quince jam shipment",
    "77 Marmalade Crescent, Quinceton",
    "staffer.canary@plaintext-canary.example",
    "Wilhelmina Staffcanary",
    "the staff canary password",
];

/// The business name, stored in the clear on purpose.
const COMPANY: &str = "Vandermeulen Glassworks Cooperative";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// SQLite only, by nature: it scans the database, WAL and journal files.
#[tokio::test]
async fn no_personal_value_is_written_to_any_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("custos.db")).await?);
    let env = Env::over(store).await?;
    let admin = Principal::cli();
    let pw = SecretString::from("the staff canary password");
    env.custos
        .create_user(
            &admin,
            "staffer.canary@plaintext-canary.example",
            Role::Sales,
            &pw,
            Some("Wilhelmina Staffcanary"),
        )
        .await?;
    let login = env
        .custos
        .login(
            &RequestMeta::default(),
            "staffer.canary@plaintext-canary.example",
            &pw,
        )
        .await?;
    let sales = env
        .custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?;

    let company = env
        .make_id(
            Entity::Company,
            json!({"name": COMPANY, "domain": "glassworks.example"}),
        )
        .await?;
    let z = env
        .custos
        .create(
            &sales,
            Entity::Contact,
            &json!({
                "first_name": "Zephyrina",
                "last_name": "Quackenbush-Oyelaran",
                "email": "zephyrina.q@plaintext-canary.example",
                "phone": "+1 555 0199 7788",
                "company_id": company.to_string(),
                "tags": ["canarytagzq"],
            }),
        )
        .await?;
    let b = env
        .custos
        .create(
            &sales,
            Entity::Contact,
            &json!({"first_name": "Bartholomew", "last_name": "Xylandros", "email": "bart.xylandros@plaintext-canary.example", "phone": "+49 30 9876 5432"}),
        )
        .await?;
    let act = env
        .custos
        .create(
            &sales,
            Entity::Activity,
            &note(z.id(), "Mentioned the secret recipe for quince jam"),
        )
        .await?;
    env.custos
        .update(
            &sales,
            Entity::Activity,
            act.id(),
            &json!({"body": "Rang back about the quince jam shipment"}),
        )
        .await?;
    let mut o = order(z.id(), "12.50");
    o["shipping_address"] = json!("77 Marmalade Crescent, Quinceton");
    env.custos.create(&sales, Entity::Order, &o).await?;
    // Changes and searches leave no trace either.
    env.clock.advance(Duration::from_secs(60));
    env.custos
        .update(
            &sales,
            Entity::Contact,
            b.id(),
            &json!({"email": "bartholomew.x@plaintext-canary.example"}),
        )
        .await?;
    assert_eq!(
        env.find(
            Entity::Contact,
            &[("email", "zephyrina.q@plaintext-canary.example")]
        )
        .await?,
        vec![z.id()]
    );
    assert_eq!(
        env.find(Entity::Contact, &[("q", "Quackenbush")]).await?,
        vec![z.id()]
    );
    assert_eq!(
        env.find(Entity::Contact, &[("tags", "canarytagzq")])
            .await?,
        vec![z.id()]
    );
    // A failed sign-in with a personal value as the email.
    assert!(
        env.custos
            .login(
                &RequestMeta::default(),
                "zephyrina.q@plaintext-canary.example",
                &pw
            )
            .await
            .is_err()
    );
    // A contact deleted while the database is open.
    env.custos
        .delete(&env.admin, Entity::Contact, b.id())
        .await?;
    env.custos.close().await;
    drop(env);

    let mut files = Vec::new();
    files_under(dir.path(), &mut files)?;
    assert!(!files.is_empty());
    let mut company_seen = false;
    let mut total = 0;
    for f in &files {
        let bytes = std::fs::read(f)?;
        total += bytes.len();
        for value in PERSONAL {
            for form in [
                value.to_string(),
                value.to_lowercase(),
                value.to_uppercase(),
            ] {
                assert!(
                    !contains_bytes(&bytes, form.as_bytes()),
                    "{} holds {form:?} in plaintext",
                    f.display()
                );
            }
        }
        company_seen |= contains_bytes(&bytes, COMPANY.as_bytes());
    }
    assert!(
        total > 4096,
        "the scan read the database ({total} bytes in {files:?})"
    );
    assert!(
        company_seen,
        "the plain company name is on disk, so the scan does see stored text"
    );
    Ok(())
}

#[tokio::test]
async fn data_survives_a_restart_with_the_same_master_key() -> TestResult {
    let db = custos_testkit::TestDatabase::new().await;
    let key = custos_crypto::MasterKey::generate(1)?;
    let key_b64 = key.to_base64();
    let clock = Arc::new(custos_domain::ManualClock::new(T0));
    let store = db.open().await;
    let custos = Custos::open(
        store,
        clock.clone(),
        custos_crypto::MasterKeyring::new(vec![key])?,
        Config::default(),
    )
    .await?;
    let mut input = person("Ada", "Lovelace");
    input["email"] = json!("ada@example.com");
    let id = custos
        .create(&Principal::cli(), Entity::Contact, &input)
        .await?
        .id();
    let size = custos.ledger_status(&Principal::cli()).await?.size;
    custos.close().await;
    drop(custos);

    let key = custos_crypto::MasterKey::from_base64(1, key_b64.expose_secret())?;
    let store = db.open().await;
    let custos = Custos::open(
        store,
        clock.clone(),
        custos_crypto::MasterKeyring::new(vec![key])?,
        Config::default(),
    )
    .await?;
    let j = custos
        .get(&Principal::cli(), Entity::Contact, id)
        .await?
        .to_json();
    assert_eq!(
        (j["first_name"].clone(), j["email"].clone()),
        (json!("Ada"), json!("ada@example.com"))
    );
    let p = custos_service::ListParams::parse(
        Entity::Contact,
        &params(&[("email", "ADA@example.com")]),
    )?;
    assert_eq!(
        custos
            .list(&Principal::cli(), Entity::Contact, &p)
            .await?
            .items
            .len(),
        1,
        "blind index key survived"
    );
    assert_eq!(
        custos.ledger_status(&Principal::cli()).await?.size,
        size + 2,
        "the ledger continues"
    );
    custos.close().await;
    drop(custos);

    // Another master key does not open the database.
    let store = db.open().await;
    let err = Custos::open(store, clock, master()?, Config::default())
        .await
        .expect_err("wrong master key");
    assert!(
        matches!(err, custos_service::ServiceError::Internal(_)),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_keep_the_ledger_whole() -> TestResult {
    // A database with a pool of connections (SQLite on disk, not in memory),
    // so the writers really run at the same time.
    let db = custos_testkit::TestDatabase::new().await;
    let env = Env::over(db.open().await).await?;
    let start = env.ledger_size().await?;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let custos = env.custos.clone();
        tasks.push(tokio::spawn(async move {
            let input = json!({"first_name": format!("Parallel{i}"), "last_name": "Writer", "email": format!("p{i}@example.com")});
            let id = custos.create(&Principal::cli(), Entity::Contact, &input).await?.id();
            custos.get(&Principal::cli(), Entity::Contact, id).await?;
            Ok::<_, custos_service::ServiceError>(id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await??);
    }
    assert_eq!(
        env.ledger_size().await? - start,
        48,
        "one create and one read each"
    );
    match env.custos.audit_verify(|_, _| {}).await? {
        custos_service::VerifyReport::Ok { size, .. } => assert_eq!(size, start + 48),
        other => panic!("{other:?}"),
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            env.find(Entity::Contact, &[("email", &format!("p{i}@example.com"))])
                .await?,
            vec![*id]
        );
    }
    env.custos.close().await;
    Ok(())
}
