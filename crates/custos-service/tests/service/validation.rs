//! Bad input gets `Invalid` naming the field, and changes nothing (invariant 6).

use crate::common::*;
use custos_domain::Entity;
use custos_service::ListParams;
use custos_testkit::AsJson;
use serde_json::{Value as J, json};
use std::time::Duration;
use uuid::Uuid;

/// Runs a create that must fail naming exactly `fields`, and checks that no table
/// and not the ledger changed.
async fn refused_create(env: &Env, entity: Entity, input: J, fields: &[&str]) -> TestResult {
    let tables = env.table_counts().await?;
    let ledger = env.ledger_size().await?;
    let r = env.custos.create(&env.admin, entity, &input).await;
    let mut got = invalid_fields(r);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{entity} input {input}");
    assert_eq!(
        env.table_counts().await?,
        tables,
        "a refused {entity} stored nothing"
    );
    assert_eq!(
        env.ledger_size().await?,
        ledger,
        "a refused {entity} appended nothing"
    );
    Ok(())
}

#[tokio::test]
async fn contact_create_refusals_name_the_field_and_store_nothing() -> TestResult {
    let env = Env::new().await?;
    // One good contact so the counts are not trivially zero.
    env.make(Entity::Contact, person("Ada", "Lovelace")).await?;
    let long = "x".repeat(101);
    let no_company = Uuid::now_v7().to_string();
    let cases: Vec<(J, &[&str])> = vec![
        (
            json!({"first_name": "Ada", "last_name": "L", "nickname": "Addie"}),
            &["nickname"],
        ),
        (json!({"first_name": 7, "last_name": "L"}), &["first_name"]),
        (
            json!({"first_name": "Ada", "last_name": "L", "tags": "vip"}),
            &["tags"],
        ),
        (
            json!({"first_name": long, "last_name": "L"}),
            &["first_name"],
        ),
        (json!({"first_name": "Ada"}), &["last_name"]),
        (
            json!({"first_name": "Ada", "last_name": null}),
            &["last_name"],
        ),
        (
            json!({"first_name": "   ", "last_name": "L"}),
            &["first_name"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "company_id": no_company}),
            &["company_id"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "company_id": "not-a-uuid"}),
            &["company_id"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "email": "not-an-email"}),
            &["email"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "phone": "call me"}),
            &["phone"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "owner_id": Uuid::now_v7().to_string()}),
            &["owner_id"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "created_at": "2026-01-01T00:00:00Z"}),
            &["created_at"],
        ),
        (
            json!({"first_name": "Ada", "last_name": "L", "id": Uuid::now_v7().to_string()}),
            &["id"],
        ),
        (
            json!({"first_name": "A\u{0007}da", "last_name": "L"}),
            &["first_name"],
        ),
        (
            json!({"first_name": 1, "last_name": 2, "colour": "red"}),
            &["first_name", "last_name", "colour"],
        ),
    ];
    for (input, fields) in cases {
        refused_create(&env, Entity::Contact, input, fields).await?;
    }
    Ok(())
}

#[tokio::test]
async fn other_entities_refuse_bad_input_by_field() -> TestResult {
    let env = Env::new().await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let ghost = Uuid::now_v7().to_string();
    refused_create(
        &env,
        Entity::Company,
        json!({"domain": "x.example"}),
        &["name"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Company,
        json!({"name": "y".repeat(201)}),
        &["name"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "amount": 12.5}),
        &["amount"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "amount": "1.234"}),
        &["amount"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "imaginary"}),
        &["stage"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "contact_id": ghost}),
        &["contact_id"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "company_id": ghost}),
        &["company_id"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "close_date": "2026-02-30"}),
        &["close_date"],
    )
    .await?;
    refused_create(
        &env,
        Entity::Deal,
        json!({"title": "X", "stage": "lead", "currency": "EURO"}),
        &["currency"],
    )
    .await?;
    let mut act = note(ada, "hello");
    act["contact_id"] = json!(ghost);
    refused_create(&env, Entity::Activity, act, &["contact_id"]).await?;
    let mut act = note(ada, "hello");
    act["kind"] = json!("fax");
    refused_create(&env, Entity::Activity, act, &["kind"]).await?;
    let mut act = note(ada, "hello");
    act["occurred_at"] = json!("yesterday");
    refused_create(&env, Entity::Activity, act, &["occurred_at"]).await?;
    let mut act = note(ada, "hello");
    act["body"] = json!("b".repeat(10_001));
    refused_create(&env, Entity::Activity, act, &["body"]).await?;
    let mut ord = order(ada, "10.00");
    ord["contact_id"] = json!(ghost);
    refused_create(&env, Entity::Order, ord, &["contact_id"]).await?;
    let mut ord = order(ada, "10.00");
    ord.as_object_mut().ok_or("object")?.remove("total");
    refused_create(&env, Entity::Order, ord, &["total"]).await?;
    let mut ord = order(ada, "10.00");
    ord["status"] = json!("lost in the post");
    refused_create(&env, Entity::Order, ord, &["status"]).await?;
    refused_create(&env, Entity::Contact, json!(["not", "an", "object"]), &[""]).await?;
    Ok(())
}

#[tokio::test]
async fn refused_updates_change_nothing() -> TestResult {
    let env = Env::new().await?;
    let mut input = person("Ada", "Lovelace");
    input["email"] = json!("ada@example.com");
    let id = env.make_id(Entity::Contact, input).await?;
    let before = env
        .custos
        .get(&env.admin, Entity::Contact, id)
        .await?
        .to_json();
    env.clock.advance(Duration::from_secs(60));
    let ghost = Uuid::now_v7().to_string();
    let cases: Vec<(J, &[&str])> = vec![
        (
            json!({"email": "nope", "first_name": "Augusta"}),
            &["email"],
        ),
        (json!({"first_name": null}), &["first_name"]),
        (json!({"last_name": "z".repeat(101)}), &["last_name"]),
        (
            json!({"company_id": ghost, "first_name": "Augusta"}),
            &["company_id"],
        ),
        (json!({"nickname": "Addie"}), &["nickname"]),
        (
            json!({"updated_at": "2026-01-01T00:00:00Z"}),
            &["updated_at"],
        ),
    ];
    for (patch, fields) in cases {
        let ledger = env.ledger_size().await?;
        let tables = env.table_counts().await?;
        let mut got = invalid_fields(
            env.custos
                .update(&env.admin, Entity::Contact, id, &patch)
                .await,
        );
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "patch {patch}");
        assert_eq!(
            env.ledger_size().await?,
            ledger,
            "a refused update appended nothing"
        );
        assert_eq!(env.table_counts().await?, tables);
        let now = env
            .custos
            .get(&env.admin, Entity::Contact, id)
            .await?
            .to_json();
        assert_eq!(
            now, before,
            "a refused update ({patch}) changed nothing, updated_at included"
        );
    }
    // The blind index was not touched either: the old email still finds Ada.
    assert_eq!(
        env.find(Entity::Contact, &[("email", "ada@example.com")])
            .await?,
        vec![id]
    );
    Ok(())
}

#[tokio::test]
async fn list_parameters_are_refused_by_name() -> TestResult {
    let env = Env::new().await?;
    type Case = (Entity, Vec<(&'static str, &'static str)>, &'static str);
    let bad: Vec<Case> = vec![
        (Entity::Contact, vec![("limit", "0")], "limit"),
        (Entity::Contact, vec![("limit", "501")], "limit"),
        (Entity::Contact, vec![("limit", "ten")], "limit"),
        (Entity::Contact, vec![("sort", "email")], "sort"),
        (Entity::Contact, vec![("colour", "red")], "colour"),
        (Entity::Contact, vec![("cursor", "!!!")], "cursor"),
        (Entity::Contact, vec![("id", "x")], "id"),
        (Entity::Deal, vec![("sort", "nonsense")], "sort"),
    ];
    for (entity, pairs, field) in bad {
        assert_eq!(
            invalid_fields(ListParams::parse(entity, &params(&pairs))),
            [field],
            "{entity} {pairs:?}"
        );
    }
    // Values that parse but make no sense for the field are refused by the list itself.
    let p = ListParams::parse(Entity::Deal, &params(&[("amount", "lots")]))?;
    assert_eq!(
        invalid_fields(env.custos.list(&env.admin, Entity::Deal, &p).await),
        ["amount"]
    );
    let p = ListParams::parse(Entity::Activity, &params(&[("done", "maybe")]))?;
    assert_eq!(
        invalid_fields(env.custos.list(&env.admin, Entity::Activity, &p).await),
        ["done"]
    );
    let p = ListParams::parse(Entity::Activity, &params(&[("body", "secret")]))?;
    assert_eq!(
        invalid_fields(env.custos.list(&env.admin, Entity::Activity, &p).await),
        ["body"],
        "sealed, no index"
    );
    let p = ListParams::parse(Entity::Contact, &params(&[("email", "   ")]))?;
    assert_eq!(
        invalid_fields(env.custos.list(&env.admin, Entity::Contact, &p).await),
        ["email"]
    );
    let p = ListParams::parse(Entity::Order, &params(&[("q", "anything")]))?;
    assert_eq!(
        invalid_fields(env.custos.list(&env.admin, Entity::Order, &p).await),
        ["q"]
    );
    Ok(())
}

#[tokio::test]
async fn short_passwords_and_duplicate_users_are_refused() -> TestResult {
    let env = Env::new().await?;
    let short = secrecy::SecretString::from("short");
    let r = env
        .custos
        .create_user(
            &env.admin,
            "x@custos.test",
            custos_domain::Role::Sales,
            &short,
            None,
        )
        .await;
    assert_eq!(invalid_fields(r), ["password"]);
    let pw = secrecy::SecretString::from(PASSWORD);
    let r = env
        .custos
        .create_user(
            &env.admin,
            "not an email",
            custos_domain::Role::Sales,
            &pw,
            None,
        )
        .await;
    assert_eq!(invalid_fields(r), ["email"]);
    assert_eq!(env.custos.user_count().await?, 0);
    env.custos
        .create_user(
            &env.admin,
            "x@custos.test",
            custos_domain::Role::Sales,
            &pw,
            None,
        )
        .await?;
    let err = env
        .custos
        .create_user(
            &env.admin,
            " X@Custos.Test ",
            custos_domain::Role::Admin,
            &pw,
            None,
        )
        .await
        .expect_err("same email after normalisation");
    assert!(
        matches!(err, custos_service::ServiceError::Conflict(_)),
        "{err:?}"
    );
    assert_eq!(env.custos.user_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn errors_never_repeat_the_values_they_refuse() -> TestResult {
    let env = Env::new().await?;
    let secret_email = "ada.secret-address@example";
    let secret_phone = "call 0207 946 0000 now";
    let long_name = format!("Augusta{}", "z".repeat(120));
    let cases = [
        json!({"first_name": "Ada", "last_name": "L", "email": secret_email}),
        json!({"first_name": "Ada", "last_name": "L", "phone": secret_phone}),
        json!({"first_name": long_name, "last_name": "L"}),
        json!({"first_name": "Ada", "last_name": "Lovelace\u{0007}Byron"}),
    ];
    for input in cases {
        let err = env
            .custos
            .create(&env.admin, Entity::Contact, &input)
            .await
            .expect_err("invalid");
        let shown = format!("{err} {err:?}");
        for v in input
            .as_object()
            .ok_or("object")?
            .values()
            .filter_map(J::as_str)
        {
            if v.len() > 3 {
                assert!(!shown.contains(v), "error repeats {v:?}: {shown}");
            }
        }
        assert!(
            !shown.contains("Augusta") && !shown.contains("Byron"),
            "{shown}"
        );
    }
    let p = ListParams::parse(Entity::Contact, &params(&[("email", "  ")]))?;
    let err = env
        .custos
        .list(&env.admin, Entity::Contact, &p)
        .await
        .expect_err("empty");
    assert!(!format!("{err:?}").contains("ada"), "{err:?}");
    let long_q = "q".repeat(201);
    assert_eq!(
        invalid_fields(ListParams::parse(
            Entity::Contact,
            &params(&[("q", long_q.as_str())])
        )),
        ["q"]
    );
    Ok(())
}

#[tokio::test]
async fn crafted_cursors_are_refused_or_harmless() -> TestResult {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let env = Env::new().await?;
    for i in 0..3 {
        env.make(Entity::Contact, person(&format!("P{i}"), "Q"))
            .await?;
    }
    let enc = |v: J| URL_SAFE_NO_PAD.encode(v.to_string());
    let id = Uuid::now_v7().to_string();
    let refused = [
        enc(json!({"s": "created_at", "d": true, "v": 1.5, "i": id})),
        enc(json!({"s": "created_at", "d": true, "v": [1], "i": id})),
        enc(json!({"s": "created_at", "d": true, "v": 1, "i": "not-a-uuid"})),
        enc(json!({"s": "updated_at", "d": true, "v": 1, "i": id})),
        enc(json!({"s": "created_at", "d": false, "v": 1, "i": id})),
        enc(json!("just a string")),
        URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        "x".repeat(1001),
    ];
    for c in refused {
        let r = ListParams::parse(Entity::Contact, &params(&[("cursor", c.as_str())]));
        assert_eq!(invalid_fields(r), ["cursor"], "{c}");
    }
    // Well-formed cursors with odd values run and answer, without an internal error.
    for v in [
        json!("zzz"),
        json!(null),
        json!(true),
        json!(i64::MAX),
        json!(i64::MIN),
    ] {
        let c = enc(json!({"s": "created_at", "d": true, "v": v, "i": id}));
        let p = ListParams::parse(Entity::Contact, &params(&[("cursor", c.as_str())]))?;
        let page = env.custos.list(&env.admin, Entity::Contact, &p).await?;
        assert!(page.items.len() <= 3, "{v}");
    }
    Ok(())
}
