//! Create, read, update and delete for each of the five CRM entities.

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::{Principal, ServiceError};
use custos_testkit::AsJson;
use serde_json::{Value as J, json};
use std::time::Duration;
use uuid::Uuid;

/// One full round trip: create returns what was given, get returns the same,
/// update changes exactly the patched fields and moves `updated_at`, delete makes
/// the record unknown to get, update and delete.
async fn round_trip(
    env: &Env,
    p: &Principal,
    entity: Entity,
    input: J,
    expect: J,
    patch: J,
    expect_after: J,
) -> TestResult {
    let created = env.custos.create(p, entity, &input).await?.to_json();
    let expect = expect.as_object().ok_or("expect is an object")?;
    for (k, v) in expect {
        assert_eq!(&created[k], v, "{entity}.{k} as created");
    }
    assert_eq!(
        created["created_at"],
        J::from(T0_TEXT),
        "{entity} created_at"
    );
    assert_eq!(
        created["updated_at"],
        J::from(T0_TEXT),
        "{entity} updated_at"
    );
    assert_eq!(
        created["owner_id"],
        J::from(p.user_id.to_string()),
        "{entity} owner defaults to its creator"
    );
    assert_eq!(
        created["masked"],
        json!([]),
        "{entity}: a manager sees every field"
    );
    let id = id_of(&created)?;
    assert_ne!(id, Uuid::nil());

    let got = env.custos.get(p, entity, id).await?.to_json();
    assert_eq!(got, created, "{entity}: get returns what create returned");

    env.clock.advance(Duration::from_secs(90));
    let updated = env.custos.update(p, entity, id, &patch).await?.to_json();
    let after = expect_after
        .as_object()
        .ok_or("expect_after is an object")?;
    let created_obj = created.as_object().ok_or("record is an object")?;
    for (k, before) in created_obj {
        match (after.get(k), k.as_str()) {
            (Some(v), _) => assert_eq!(&updated[k], v, "{entity}.{k} after update"),
            (None, "updated_at") => assert_eq!(
                updated[k],
                J::from("2026-01-31T09:01:30Z"),
                "{entity}.updated_at moved"
            ),
            (None, _) => assert_eq!(
                &updated[k], before,
                "{entity}.{k} is not in the patch and must not change"
            ),
        }
    }
    assert_eq!(
        updated.as_object().map(|o| o.len()),
        Some(created_obj.len()),
        "same fields after update"
    );

    let got = env.custos.get(p, entity, id).await?.to_json();
    assert_eq!(got, updated, "{entity}: get returns the updated record");

    env.custos.delete(p, entity, id).await?;
    let err = env
        .custos
        .get(p, entity, id)
        .await
        .expect_err("deleted record is gone");
    assert!(
        matches!(err, ServiceError::NotFound(n) if n == entity.name()),
        "{entity}: {err:?}"
    );
    let err = env
        .custos
        .update(p, entity, id, &patch)
        .await
        .expect_err("cannot update a deleted record");
    assert!(
        matches!(err, ServiceError::NotFound(_)),
        "{entity}: {err:?}"
    );
    let err = env
        .custos
        .delete(p, entity, id)
        .await
        .expect_err("cannot delete twice");
    assert!(
        matches!(err, ServiceError::NotFound(_)),
        "{entity}: {err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn company_round_trip() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let input = json!({"name": "Analytical Engines Ltd", "domain": "analytical.example"});
    round_trip(
        &env,
        &m,
        Entity::Company,
        input.clone(),
        input,
        json!({"domain": "engines.example"}),
        json!({"domain": "engines.example"}),
    )
    .await
}

#[tokio::test]
async fn contact_round_trip() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let company = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let input = json!({
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "company_id": company.to_string(),
        "tags": ["vip", "b2b"],
    });
    round_trip(
        &env,
        &m,
        Entity::Contact,
        input.clone(),
        input,
        json!({"phone": "+44 20 7946 1111", "tags": ["vip"]}),
        json!({"phone": "+44 20 7946 1111", "tags": ["vip"]}),
    )
    .await
}

#[tokio::test]
async fn deal_round_trip() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let company = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let contact = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let input = json!({
        "title": "Difference engine No. 2",
        "company_id": company.to_string(),
        "contact_id": contact.to_string(),
        "stage": "proposal",
        "amount": "1250.00",
        "currency": "EUR",
        "close_date": "2026-03-15",
    });
    round_trip(
        &env,
        &m,
        Entity::Deal,
        input.clone(),
        input,
        json!({"stage": "won", "amount": "980.50"}),
        json!({"stage": "won", "amount": "980.50"}),
    )
    .await
}

#[tokio::test]
async fn activity_round_trip() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let contact = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let input = json!({
        "contact_id": contact.to_string(),
        "kind": "call",
        "body": "Talked about the notes on the engine",
        "occurred_at": "2026-01-30T14:00:00+01:00",
        "done": false,
    });
    let expect = json!({
        "contact_id": contact.to_string(),
        "kind": "call",
        "body": "Talked about the notes on the engine",
        // 14:00 at +01:00 is 13:00 UTC: times come back in UTC.
        "occurred_at": "2026-01-30T13:00:00Z",
        "due_at": null,
        "done": false,
    });
    round_trip(
        &env,
        &m,
        Entity::Activity,
        input,
        expect,
        json!({"done": true, "body": "Follow-up sent"}),
        json!({"done": true, "body": "Follow-up sent"}),
    )
    .await
}

#[tokio::test]
async fn order_round_trip() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let contact = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let input = json!({
        "contact_id": contact.to_string(),
        "status": "paid",
        "total": "1250.00",
        "currency": "EUR",
        "shipping_address": "12 St James's Square\nLondon SW1Y 4LB",
        "placed_at": "2026-01-29T10:15:00Z",
    });
    let mut expect = input.clone();
    expect["completed_at"] = J::Null;
    round_trip(
        &env,
        &m,
        Entity::Order,
        input,
        expect,
        json!({"status": "completed", "completed_at": "2026-02-02T16:45:00Z"}),
        json!({"status": "completed", "completed_at": "2026-02-02T16:45:00Z"}),
    )
    .await
}

#[tokio::test]
async fn amounts_and_currencies_come_back_in_canonical_form() -> TestResult {
    let env = Env::new().await?;
    let deal = env
        .make(
            Entity::Deal,
            json!({"title": "Engine", "stage": "lead", "amount": "1250.5", "currency": "eur"}),
        )
        .await?;
    assert_eq!(deal["amount"], json!("1250.50"), "two decimals always");
    assert_eq!(
        deal["currency"],
        json!("EUR"),
        "ISO 4217 codes are upper case"
    );
    let deal = env
        .make(
            Entity::Deal,
            json!({"title": "Small", "stage": "lead", "amount": "7"}),
        )
        .await?;
    assert_eq!(deal["amount"], json!("7.00"));
    Ok(())
}

#[tokio::test]
async fn null_clears_an_optional_field_and_its_search_index() -> TestResult {
    let env = Env::new().await?;
    let mut input = person("Ada", "Lovelace");
    input["email"] = json!("ada@example.com");
    let id = env.make_id(Entity::Contact, input).await?;
    assert_eq!(
        env.find(Entity::Contact, &[("email", "ada@example.com")])
            .await?,
        vec![id]
    );
    let updated = env
        .custos
        .update(&env.admin, Entity::Contact, id, &json!({"email": null}))
        .await?
        .to_json();
    assert_eq!(updated["email"], J::Null);
    assert_eq!(updated["first_name"], json!("Ada"));
    assert_eq!(
        env.custos
            .get(&env.admin, Entity::Contact, id)
            .await?
            .to_json()["email"],
        J::Null
    );
    assert!(
        env.find(Entity::Contact, &[("email", "ada@example.com")])
            .await?
            .is_empty(),
        "old email no longer found"
    );
    Ok(())
}

#[tokio::test]
async fn changing_an_email_moves_the_search_index() -> TestResult {
    let env = Env::new().await?;
    let mut input = person("Ada", "Lovelace");
    input["email"] = json!("ada@example.com");
    let id = env.make_id(Entity::Contact, input).await?;
    env.custos
        .update(
            &env.admin,
            Entity::Contact,
            id,
            &json!({"email": "countess@example.com"}),
        )
        .await?;
    assert!(
        env.find(Entity::Contact, &[("email", "ada@example.com")])
            .await?
            .is_empty()
    );
    assert_eq!(
        env.find(Entity::Contact, &[("email", "countess@example.com")])
            .await?,
        vec![id]
    );
    Ok(())
}

#[tokio::test]
async fn unknown_ids_are_not_found_for_every_entity() -> TestResult {
    let env = Env::new().await?;
    for e in Entity::CRM {
        let id = Uuid::now_v7();
        let err = env
            .custos
            .get(&env.admin, e, id)
            .await
            .expect_err("unknown");
        assert!(
            matches!(err, ServiceError::NotFound(n) if n == e.name()),
            "{e}: {err:?}"
        );
        let err = env
            .custos
            .update(&env.admin, e, id, &json!({}))
            .await
            .expect_err("unknown");
        assert!(matches!(err, ServiceError::NotFound(_)), "{e}: {err:?}");
        let err = env
            .custos
            .delete(&env.admin, e, id)
            .await
            .expect_err("unknown");
        assert!(matches!(err, ServiceError::NotFound(_)), "{e}: {err:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_person_of_an_activity_or_order_cannot_be_changed() -> TestResult {
    let env = Env::new().await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let charles = env
        .make_id(Entity::Contact, person("Charles", "Babbage"))
        .await?;
    let act = env
        .make_id(Entity::Activity, note(ada, "First note"))
        .await?;
    let ord = env.make_id(Entity::Order, order(ada, "10.00")).await?;
    for (e, id) in [(Entity::Activity, act), (Entity::Order, ord)] {
        let r = env
            .custos
            .update(
                &env.admin,
                e,
                id,
                &json!({"contact_id": charles.to_string()}),
            )
            .await;
        assert_eq!(invalid_fields(r), ["contact_id"], "{e}");
        let still = env.custos.get(&env.admin, e, id).await?.to_json();
        assert_eq!(
            still["contact_id"],
            json!(ada.to_string()),
            "{e} still belongs to Ada"
        );
    }
    Ok(())
}

#[tokio::test]
async fn required_fields_are_listed_per_entity() {
    let mut contact = custos_service::Custos::required_fields(Entity::Contact);
    contact.sort_unstable();
    assert_eq!(contact, ["first_name", "last_name"]);
    let mut order = custos_service::Custos::required_fields(Entity::Order);
    order.sort_unstable();
    assert_eq!(
        order,
        ["contact_id", "currency", "placed_at", "status", "total"]
    );
}

#[tokio::test]
async fn a_one_key_cache_still_opens_every_record() -> TestResult {
    let config = custos_service::Config {
        key_cache_size: 1,
        ..Default::default()
    };
    let env = Env::with_config(custos_testkit::test_store().await, config).await?;
    let mut made = Vec::new();
    for (first, last) in [
        ("Ada", "Lovelace"),
        ("Charles", "Babbage"),
        ("Grace", "Hopper"),
    ] {
        made.push((
            env.make_id(Entity::Contact, person(first, last)).await?,
            first,
        ));
    }
    for _ in 0..2 {
        for (id, first) in &made {
            let j = env
                .custos
                .get(&env.admin, Entity::Contact, *id)
                .await?
                .to_json();
            assert_eq!(j["first_name"], json!(first));
        }
    }
    Ok(())
}

/// Reading several records at once (the names a page shows) returns those
/// that exist, leaves out the others, and records one read per record, as
/// reading them one by one would.
#[tokio::test]
async fn several_records_are_read_at_once_each_read_on_record() -> TestResult {
    let env = Env::new().await?;
    let a = env.make_id(Entity::Company, company("Alpha Ltd")).await?;
    let b = env.make_id(Entity::Company, company("Beta Ltd")).await?;
    let c = env.make_id(Entity::Company, company("Gamma Ltd")).await?;
    let start = env.ledger_size().await?;
    let missing = Uuid::now_v7();
    let views = env
        .custos
        .get_many(&env.admin, Entity::Company, &[a, missing, c])
        .await?;
    let mut got: Vec<Uuid> = views.iter().map(|v| v.id()).collect();
    got.sort();
    assert_eq!(got, sorted(vec![a, c]));
    let names: Vec<String> = views
        .iter()
        .map(|v| v.record.get("name").display())
        .collect();
    assert!(names.contains(&"Alpha Ltd".to_string()), "{names:?}");
    let reads: Vec<String> = env
        .events_since(start)
        .await?
        .iter()
        .filter(|e| e.event.action == "company.read")
        .filter_map(|e| e.event.record.clone())
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    for id in [a, c] {
        assert!(reads.contains(&format!("company:{id}")), "{reads:?}");
    }
    assert!(!reads.iter().any(|r| r.contains(&b.to_string())));
    // Nothing asked, nothing read and nothing on record.
    let before = env.ledger_size().await?;
    assert!(
        env.custos
            .get_many(&env.admin, Entity::Company, &[])
            .await?
            .is_empty()
    );
    assert_eq!(env.ledger_size().await?, before);
    Ok(())
}

/// A filter that matches rarely, on a column no index answers, reads a few
/// windows of the list per request: a page may stop short (`partial`, with
/// a cursor to search on), and following the cursors finds every match once,
/// newest first. Such a list shows no total.
#[tokio::test]
async fn a_rare_text_search_reads_the_list_a_window_at_a_time() -> TestResult {
    use custos_service::{LIST_WINDOWS, ListParams};
    let config = custos_service::Config {
        list_window: 4,
        ..Default::default()
    };
    let env = Env::with_config(custos_testkit::test_store().await, config).await?;
    let mut rare = Vec::new();
    for i in 0..60 {
        // Every thirteenth company is "Rare …": at most two in the 20 rows
        // (LIST_WINDOWS windows of 4) one request reads.
        let name = if i % 13 == 5 {
            format!("Rare Works {i}")
        } else {
            format!("Common Trading {i}")
        };
        let id = env.make_id(Entity::Company, company(&name)).await?;
        if name.starts_with("Rare") {
            rare.push(id);
        }
    }
    assert_eq!(LIST_WINDOWS * 4, 20);
    let mut found = Vec::new();
    let mut partial = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut raw = params(&[("q", "rare works"), ("limit", "3")]);
        if let Some(c) = &cursor {
            raw.push(("cursor".to_string(), c.clone()));
        }
        let page = env
            .custos
            .list(
                &env.admin,
                Entity::Company,
                &ListParams::parse(Entity::Company, &raw)?,
            )
            .await?;
        assert!(page.items.len() <= 3);
        if page.partial {
            partial += 1;
            assert!(page.items.len() < 3, "a partial page is short");
            assert!(
                page.next_cursor.is_some(),
                "a partial page says where to go on"
            );
        }
        found.extend(page.items.iter().map(|v| v.id()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    // Newest first: the reverse of creation.
    rare.reverse();
    assert_eq!(found, rare);
    // 60 rows, 20 a request: at least two requests stopped short.
    assert!(partial >= 2, "{partial} partial pages");
    let count = env
        .custos
        .count(
            &env.admin,
            Entity::Company,
            &ListParams::parse(Entity::Company, &params(&[("q", "rare works")]))?,
        )
        .await?;
    assert_eq!(count, None, "a text search shows no total");
    // A narrow list is not windowed: a name's exact index.
    let common = env
        .list_all(&env.admin, Entity::Company, &[("name", "Common Trading 7")])
        .await?;
    assert_eq!(common.len(), 1);
    Ok(())
}
