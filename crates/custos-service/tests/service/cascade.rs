//! What deleting a contact or a company does to the records that point at it.

use crate::common::*;
use custos_domain::Entity;
use custos_service::ServiceError;
use custos_testkit::AsJson;
use serde_json::{Value as J, json};
use std::time::Duration;

#[tokio::test]
async fn deleting_a_contact_deletes_its_activities_and_unlinks_its_deals() -> TestResult {
    let env = Env::new().await?;
    let company = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let charles = env
        .make_id(Entity::Contact, person("Charles", "Babbage"))
        .await?;
    let a1 = env.make_id(Entity::Activity, note(ada, "first")).await?;
    let a2 = env.make_id(Entity::Activity, note(ada, "second")).await?;
    let kept = env
        .make_id(Entity::Activity, note(charles, "about Charles"))
        .await?;
    let deal = env
        .make(
            Entity::Deal,
            json!({"title": "Engine", "stage": "proposal", "amount": "1250.00", "contact_id": ada.to_string(), "company_id": company.to_string()}),
        )
        .await?;
    let deal_id = id_of(&deal)?;
    let other_deal = env
        .make(
            Entity::Deal,
            json!({"title": "Loom", "stage": "lead", "contact_id": charles.to_string()}),
        )
        .await?;

    env.clock.advance(Duration::from_secs(60));
    let start = env.ledger_size().await?;
    env.custos.delete(&env.admin, Entity::Contact, ada).await?;

    for a in [a1, a2] {
        let err = env
            .custos
            .get(&env.admin, Entity::Activity, a)
            .await
            .expect_err("cascaded");
        assert!(matches!(err, ServiceError::NotFound("activity")), "{err:?}");
    }
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Activity, kept)
            .await?
            .to_json()["body"],
        json!("about Charles")
    );
    let after = env
        .custos
        .get(&env.admin, Entity::Deal, deal_id)
        .await?
        .to_json();
    assert_eq!(
        after["contact_id"],
        J::Null,
        "the deal no longer points at the deleted contact"
    );
    for f in ["title", "stage", "amount", "company_id", "created_at"] {
        assert_eq!(after[f], deal[f], "deal.{f} kept");
    }
    let other = env
        .custos
        .get(&env.admin, Entity::Deal, id_of(&other_deal)?)
        .await?
        .to_json();
    assert_eq!(
        other["contact_id"],
        json!(charles.to_string()),
        "other deals untouched"
    );
    assert!(
        env.find(Entity::Deal, &[("contact_id", &ada.to_string())])
            .await?
            .is_empty()
    );
    assert!(
        env.find(Entity::Activity, &[("contact_id", &ada.to_string())])
            .await?
            .is_empty()
    );
    assert!(
        env.find(Entity::Contact, &[("q", "ada")]).await?.is_empty(),
        "its search index went with it"
    );

    // The cascade is on record: one delete per activity, naming the contact.
    let events = env.events_since(start).await?;
    let mut cascaded: Vec<String> = events
        .iter()
        .filter(|e| e.event.action == "activity.delete")
        .map(|e| {
            assert_eq!(e.event.subject_id, Some(ada.to_string()));
            e.event.record.clone().unwrap_or_default()
        })
        .collect();
    cascaded.sort();
    let mut want = vec![format!("activity:{a1}"), format!("activity:{a2}")];
    want.sort();
    assert_eq!(cascaded, want);
    assert!(
        events.iter().any(|e| e.event.action == "contact.delete"
            && e.event.record == Some(format!("contact:{ada}")))
    );

    // The contact is gone for good: nothing can be attached to it any more.
    assert_eq!(
        invalid_fields(
            env.custos
                .create(&env.admin, Entity::Activity, &note(ada, "late"))
                .await
        ),
        ["contact_id"]
    );
    Ok(())
}

#[tokio::test]
async fn a_contact_with_an_order_cannot_be_deleted_and_nothing_changes() -> TestResult {
    let env = Env::new().await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let act = env.make_id(Entity::Activity, note(ada, "keep me")).await?;
    let deal = env
        .make_id(
            Entity::Deal,
            json!({"title": "Engine", "stage": "lead", "contact_id": ada.to_string()}),
        )
        .await?;
    let ord = env.make_id(Entity::Order, order(ada, "99.90")).await?;
    let tables = env.table_counts().await?;
    let err = env
        .custos
        .delete(&env.admin, Entity::Contact, ada)
        .await
        .expect_err("has an order");
    match &err {
        ServiceError::Conflict(msg) => assert!(msg.contains("order"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(
        !format!("{err}").contains("Ada"),
        "no personal value in the error"
    );
    assert_eq!(env.table_counts().await?, tables, "nothing was deleted");
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Contact, ada)
            .await?
            .to_json()["first_name"],
        json!("Ada")
    );
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Activity, act)
            .await?
            .to_json()["body"],
        json!("keep me")
    );
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Deal, deal)
            .await?
            .to_json()["contact_id"],
        json!(ada.to_string())
    );
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Order, ord)
            .await?
            .to_json()["total"],
        json!("99.90")
    );
    // Once the order is gone the contact can go.
    env.custos.delete(&env.admin, Entity::Order, ord).await?;
    env.custos.delete(&env.admin, Entity::Contact, ada).await?;
    assert!(matches!(
        env.custos.get(&env.admin, Entity::Contact, ada).await,
        Err(ServiceError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn deleting_a_company_unlinks_its_contacts_and_deals() -> TestResult {
    let env = Env::new().await?;
    let company = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let mut c = person("Ada", "Lovelace");
    c["company_id"] = json!(company.to_string());
    let ada = env.make_id(Entity::Contact, c).await?;
    let deal = env
        .make_id(
            Entity::Deal,
            json!({"title": "Engine", "stage": "lead", "company_id": company.to_string()}),
        )
        .await?;
    env.custos
        .delete(&env.admin, Entity::Company, company)
        .await?;
    assert!(matches!(
        env.custos.get(&env.admin, Entity::Company, company).await,
        Err(ServiceError::NotFound("company"))
    ));
    let a = env
        .custos
        .get(&env.admin, Entity::Contact, ada)
        .await?
        .to_json();
    assert_eq!(a["company_id"], J::Null);
    assert_eq!(a["first_name"], json!("Ada"), "the contact itself is kept");
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Deal, deal)
            .await?
            .to_json()["company_id"],
        J::Null
    );
    Ok(())
}
