//! Records of an erased person answer `Gone` (invariant 4). The service has no
//! erasure use case yet, so the test shreds the subject's key through the store,
//! as the erasure will, and reads through a freshly opened service (whose key
//! cache never held the key).

use crate::common::*;
use custos_crypto::{MasterKey, MasterKeyring};
use custos_domain::{Entity, ManualClock, Role};
use custos_service::{Config, Custos, ListParams, Principal, RequestMeta, ServiceError};
use custos_testkit::AsJson;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

struct Erased {
    custos: Custos,
    auditor: Principal,
    ada: Uuid,
    ada_order: Uuid,
    charles: Uuid,
}

async fn erased() -> TestResult<Erased> {
    let key = MasterKey::generate(1)?;
    let b64 = key.to_base64();
    let store = custos_testkit::test_store().await;
    let clock = Arc::new(ManualClock::new(T0));
    let first = Custos::open(
        store.clone(),
        clock.clone(),
        MasterKeyring::new(vec![key])?,
        // Password-only sign-in: this test is about erasure.
        Config {
            mfa_required: false,
            ..Config::default()
        },
    )
    .await?;
    let admin = Principal::cli();
    let pw = SecretString::from(PASSWORD);
    first
        .create_user(&admin, "auditor@custos.test", Role::Auditor, &pw, None)
        .await?;
    let mut a = person("Ada", "Lovelace");
    a["email"] = json!("ada@example.com");
    let ada = first.create(&admin, Entity::Contact, &a).await?.id();
    let mut o = order(ada, "99.90");
    o["shipping_address"] = json!("12 St James's Square");
    let ada_order = first.create(&admin, Entity::Order, &o).await?.id();
    let charles = first
        .create(&admin, Entity::Contact, &person("Charles", "Babbage"))
        .await?
        .id();
    drop(first);

    let mut tx = store.begin().await?;
    tx.shred_subject_key(ada, 0).await?;
    tx.commit().await?;

    let key = MasterKey::from_base64(1, b64.expose_secret())?;
    let custos = Custos::open(
        store,
        clock,
        MasterKeyring::new(vec![key])?,
        // Password-only sign-in: this test is about erasure.
        Config {
            mfa_required: false,
            ..Config::default()
        },
    )
    .await?;
    let login = custos
        .login(&RequestMeta::default(), "auditor@custos.test", &pw)
        .await?;
    let auditor = custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?;
    Ok(Erased {
        custos,
        auditor,
        ada,
        ada_order,
        charles,
    })
}

#[tokio::test]
async fn an_erased_persons_records_are_gone_for_an_admin() -> TestResult {
    let e = erased().await?;
    let admin = Principal::cli();
    let err = e
        .custos
        .get(&admin, Entity::Contact, e.ada)
        .await
        .expect_err("erased");
    assert!(matches!(err, ServiceError::Gone("contact")), "{err:?}");
    // Orders are kept for accounting (the inventory says so): anonymised, not gone.
    let order = e.custos.get(&admin, Entity::Order, e.ada_order).await?;
    assert!(order.erased);
    assert_eq!(order.to_json()["shipping_address"], serde_json::Value::Null);
    let page = e
        .custos
        .list(
            &admin,
            Entity::Contact,
            &ListParams::parse(Entity::Contact, &[])?,
        )
        .await?;
    let ids: Vec<Uuid> = page.items.iter().map(|v| v.id()).collect();
    assert_eq!(ids, vec![e.charles], "erased people are not listed");
    Ok(())
}

#[tokio::test]
async fn an_erased_persons_records_are_gone_for_an_auditor_too() -> TestResult {
    let e = erased().await?;
    let r = e.custos.get(&e.auditor, Entity::Contact, e.ada).await;
    assert!(matches!(r, Err(ServiceError::Gone("contact"))), "{r:?}");
    let order = e.custos.get(&e.auditor, Entity::Order, e.ada_order).await?;
    assert!(
        order.erased,
        "an erased person's order is anonymised for every role"
    );
    let page = e
        .custos
        .list(
            &e.auditor,
            Entity::Contact,
            &ListParams::parse(Entity::Contact, &[])?,
        )
        .await?;
    let ids: Vec<Uuid> = page.items.iter().map(|v| v.id()).collect();
    assert_eq!(ids, vec![e.charles], "erased people are not listed");
    Ok(())
}
