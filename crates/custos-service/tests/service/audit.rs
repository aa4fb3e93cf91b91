//! Every access is audited (invariant 2), the ledger holds no personal data
//! (invariant 3), and it verifies.

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::{AuditEntry, ListParams, Principal, RequestMeta, VerifyReport, Via};
use custos_store::Store;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Every personal value the audit tests put into Custos.
const PERSONAL: &[&str] = &[
    "Augusta",
    "Byronova",
    "augusta.byronova@example.com",
    "+44 20 7946 0123",
    "442079460123",
    "Quillfeather",
    "Marchetti",
    "q.marchetti@example.org",
    "Discussed the Bernoulli numbers table",
    "Prefers letters to calls",
    "7 Ockham Park Lane, Surrey",
    "staff.sales@custos.test",
    "staff.manager@custos.test",
    "Selma Staffwoman",
    PASSWORD,
    "not the password at all",
];

fn one<'a>(events: &'a [AuditEntry], action: &str) -> &'a AuditEntry {
    let found: Vec<&AuditEntry> = events.iter().filter(|e| e.event.action == action).collect();
    assert_eq!(found.len(), 1, "exactly one {action} event in {events:?}");
    found[0]
}

#[tokio::test]
async fn every_use_case_appends_an_event_naming_actor_action_subject_and_record() -> TestResult {
    let env = Env::new().await?;
    let sales = env.user("staff.sales@custos.test", Role::Sales).await?;
    let manager = env.user("staff.manager@custos.test", Role::Manager).await?;
    let actor = format!("user:{}", sales.user_id);

    let start = env.ledger_size().await?;
    let c = env
        .custos
        .create(
            &sales,
            Entity::Contact,
            &json!({"first_name": "Augusta", "last_name": "Byronova", "email": "augusta.byronova@example.com", "phone": "+44 20 7946 0123"}),
        )
        .await?;
    let id = c.id();
    let record = format!("contact:{id}");
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1, "create appends one event");
    let e = &events[0].event;
    assert_eq!(
        (e.actor.as_str(), e.action.as_str(), e.outcome.as_str()),
        (actor.as_str(), "contact.create", "success")
    );
    assert_eq!(
        e.subject_id,
        Some(id.to_string()),
        "a contact is its own data subject"
    );
    assert_eq!(e.record, Some(record.clone()));
    assert!(
        e.categories.contains(&"identity".to_string()),
        "{:?}",
        e.categories
    );
    assert!(
        e.categories.contains(&"contact_details".to_string()),
        "{:?}",
        e.categories
    );
    assert_eq!(e.time, "2026-01-31T09:00:00.000Z");

    env.clock.advance(Duration::from_secs(5));
    let start = env.ledger_size().await?;
    env.custos.get(&sales, Entity::Contact, id).await?;
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1, "a read appends one event");
    let e = &events[0].event;
    assert_eq!(
        (e.actor.as_str(), e.action.as_str()),
        (actor.as_str(), "contact.read")
    );
    assert_eq!(
        (e.subject_id.clone(), e.record.clone()),
        (Some(id.to_string()), Some(record.clone()))
    );
    assert!(
        e.categories.contains(&"identity".to_string()),
        "a read names what it opened: {:?}",
        e.categories
    );
    assert_eq!(e.time, "2026-01-31T09:00:05.000Z", "the clock's time");

    let start = env.ledger_size().await?;
    let page = env
        .custos
        .list(
            &sales,
            Entity::Contact,
            &ListParams::parse(Entity::Contact, &params(&[("q", "augusta")]))?,
        )
        .await?;
    assert_eq!(page.items.len(), 1);
    let events = env.events_since(start).await?;
    let e = &one(&events, "contact.list").event;
    assert_eq!(e.actor, actor);
    assert_eq!(
        (e.subject_id.clone(), e.record.clone()),
        (Some(id.to_string()), Some(record.clone())),
        "one leaf per person listed"
    );

    let start = env.ledger_size().await?;
    env.custos
        .update(
            &sales,
            Entity::Contact,
            id,
            &json!({"phone": "+44 20 7946 0124"}),
        )
        .await?;
    let events = env.events_since(start).await?;
    let e = &one(&events, "contact.update").event;
    assert_eq!(e.actor, actor);
    assert_eq!(
        (e.subject_id.clone(), e.record.clone()),
        (Some(id.to_string()), Some(record.clone()))
    );
    assert_eq!(
        e.categories,
        ["contact_details"],
        "only the category changed"
    );
    assert!(
        e.detail
            .as_deref()
            .is_some_and(|d| d.contains("fields=phone")),
        "{:?}",
        e.detail
    );

    let start = env.ledger_size().await?;
    env.custos.delete(&manager, Entity::Contact, id).await?;
    let events = env.events_since(start).await?;
    let e = &one(&events, "contact.delete").event;
    assert_eq!(e.actor, format!("user:{}", manager.user_id));
    assert_eq!(
        (e.subject_id.clone(), e.record.clone()),
        (Some(id.to_string()), Some(record))
    );

    let start = env.ledger_size().await?;
    let _ = env
        .custos
        .get(&sales, Entity::Contact, id)
        .await
        .expect_err("deleted");
    let events = env.events_since(start).await?;
    let e = &one(&events, "contact.read").event;
    assert_eq!(e.outcome, "not_found", "a read of nothing is on record too");
    Ok(())
}

#[tokio::test]
async fn activity_events_name_the_contact_as_subject() -> TestResult {
    let env = Env::new().await?;
    let contact = env
        .make_id(
            Entity::Contact,
            json!({"first_name": "Quillfeather", "last_name": "Marchetti"}),
        )
        .await?;
    let start = env.ledger_size().await?;
    let act = env
        .make_id(
            Entity::Activity,
            note(contact, "Discussed the Bernoulli numbers table"),
        )
        .await?;
    env.custos.get(&env.admin, Entity::Activity, act).await?;
    env.custos
        .update(
            &env.admin,
            Entity::Activity,
            act,
            &json!({"body": "Prefers letters to calls"}),
        )
        .await?;
    env.custos.delete(&env.admin, Entity::Activity, act).await?;
    let events = env.events_since(start).await?;
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "activity.create",
            "activity.read",
            "activity.update",
            "activity.delete"
        ]
    );
    for e in &events {
        assert_eq!(e.event.actor, "cli");
        assert_eq!(
            e.event.subject_id,
            Some(contact.to_string()),
            "{}",
            e.event.action
        );
        assert_eq!(
            e.event.record,
            Some(format!("activity:{act}")),
            "{}",
            e.event.action
        );
    }
    assert!(
        events[0]
            .event
            .categories
            .contains(&"communications".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn company_list_appends_one_event_with_the_count() -> TestResult {
    let env = Env::new().await?;
    for n in ["A Ltd", "B Ltd", "C Ltd"] {
        env.make(Entity::Company, company(n)).await?;
    }
    let start = env.ledger_size().await?;
    let page = env
        .custos
        .list(
            &env.admin,
            Entity::Company,
            &ListParams::parse(Entity::Company, &[])?,
        )
        .await?;
    assert_eq!(page.items.len(), 3);
    let events = env.events_since(start).await?;
    let e = &one(&events, "company.list").event;
    assert!(
        e.detail.as_deref().is_some_and(|d| d.contains("count=3")),
        "{:?}",
        e.detail
    );
    Ok(())
}

#[tokio::test]
async fn the_ledger_holds_no_personal_value_and_verifies() -> TestResult {
    let env = Env::new().await?;
    let pw = SecretString::from(PASSWORD);
    env.custos
        .create_user(
            &env.admin,
            "staff.sales@custos.test",
            Role::Sales,
            &pw,
            Some("Selma Staffwoman"),
        )
        .await?;
    let sales_login = env
        .custos
        .login(&RequestMeta::default(), "staff.sales@custos.test", &pw)
        .await?;
    let sales = env
        .custos
        .authenticate(
            secrecy::ExposeSecret::expose_secret(&sales_login.token),
            &RequestMeta::default(),
        )
        .await?;
    let manager = env.user("staff.manager@custos.test", Role::Manager).await?;
    // Failed sign-ins, with a wrong password and with a known and an unknown email.
    let wrong = SecretString::from("not the password at all");
    assert!(
        env.custos
            .login(&RequestMeta::default(), "staff.sales@custos.test", &wrong)
            .await
            .is_err()
    );
    assert!(
        env.custos
            .login(&RequestMeta::default(), "augusta.byronova@example.com", &pw)
            .await
            .is_err()
    );

    let c = env
        .custos
        .create(
            &sales,
            Entity::Contact,
            &json!({"first_name": "Augusta", "last_name": "Byronova", "email": "augusta.byronova@example.com", "phone": "+44 20 7946 0123", "tags": ["vip"]}),
        )
        .await?;
    let q = env
        .custos
        .create(&sales, Entity::Contact, &json!({"first_name": "Quillfeather", "last_name": "Marchetti", "email": "q.marchetti@example.org"}))
        .await?;
    env.custos.get(&sales, Entity::Contact, c.id()).await?;
    let act = env
        .custos
        .create(
            &sales,
            Entity::Activity,
            &note(c.id(), "Discussed the Bernoulli numbers table"),
        )
        .await?;
    env.custos
        .update(
            &sales,
            Entity::Activity,
            act.id(),
            &json!({"body": "Prefers letters to calls"}),
        )
        .await?;
    let mut o = order(q.id(), "42.00");
    o["shipping_address"] = json!("7 Ockham Park Lane, Surrey");
    let ord = env.custos.create(&manager, Entity::Order, &o).await?;
    env.custos.get(&manager, Entity::Order, ord.id()).await?;
    for (k, v) in [
        ("email", "augusta.byronova@example.com"),
        ("phone", "+44 20 7946 0123"),
        ("q", "Quillfeather"),
        ("q", "Marchetti"),
    ] {
        let found = env.list_all(&sales, Entity::Contact, &[(k, v)]).await?;
        assert_eq!(found.len(), 1, "{k}={v}");
    }
    env.custos
        .update(
            &sales,
            Entity::Contact,
            c.id(),
            &json!({"last_name": "Byronova", "first_name": "Augusta"}),
        )
        .await?;
    let _ = env
        .custos
        .delete(&sales, Entity::Contact, c.id())
        .await
        .expect_err("sales may not delete");
    env.custos.delete(&manager, Entity::Contact, c.id()).await?;
    env.custos.logout(&sales).await?;

    // Every decoded field of every event, and every raw leaf byte.
    let entries = env.events_since(0).await?;
    assert!(
        entries.len() > 15,
        "the scenario was audited: {} events",
        entries.len()
    );
    let leaves = env.raw_leaves().await?;
    assert_eq!(leaves.len(), entries.len());
    for (entry, raw) in entries.iter().zip(&leaves) {
        let decoded = serde_json::to_string(&entry.event)?;
        for value in PERSONAL {
            assert!(
                !contains_bytes(raw, value.as_bytes()),
                "leaf {} holds {value:?}",
                entry.index
            );
            assert!(
                !contains_bytes(raw, value.to_lowercase().as_bytes()),
                "leaf {} holds {value:?} lower-cased",
                entry.index
            );
            assert!(
                !decoded.contains(value),
                "event {} holds {value:?}",
                entry.index
            );
        }
    }
    let actions: Vec<&str> = entries.iter().map(|e| e.event.action.as_str()).collect();
    for a in [
        "auth.login",
        "contact.create",
        "contact.read",
        "contact.list",
        "activity.update",
        "order.read",
        "contact.delete",
        "auth.logout",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    let failed = entries
        .iter()
        .filter(|e| e.event.action == "auth.login" && e.event.outcome == "failed")
        .count();
    assert_eq!(failed, 2, "both bad sign-ins are on record");

    let status = env.custos.ledger_status(&env.admin).await?;
    assert_eq!(status.size, entries.len() as u64);
    let mut last = (0, 0);
    match env
        .custos
        .audit_verify(|done, total| last = (done, total))
        .await?
    {
        VerifyReport::Ok { size, root_hex, .. } => {
            assert_eq!(size, status.size);
            assert_eq!(root_hex, status.root_hex);
        }
        VerifyReport::Tampered { index, reason } => {
            panic!("untouched ledger reported tampered at {index}: {reason}")
        }
    }
    assert_eq!(last, (status.size, status.size), "progress reached the end");
    Ok(())
}

#[tokio::test]
async fn an_empty_ledger_verifies_and_checkpoints_track_its_size() -> TestResult {
    let env = Env::new().await?;
    match env.custos.audit_verify(|_, _| {}).await? {
        VerifyReport::Ok { size, .. } => assert_eq!(size, 0),
        other => panic!("{other:?}"),
    }
    env.make(Entity::Company, company("A Ltd")).await?;
    env.make(Entity::Company, company("B Ltd")).await?;
    let cp = env.custos.ledger_checkpoint().await?;
    let mut lines = cp.lines();
    assert_eq!(
        lines.next(),
        Some("custos.local/ledger"),
        "origin line from the config"
    );
    assert_eq!(lines.next(), Some("2"), "tree size after two creates");
    Ok(())
}

/// A fresh install signs the empty tree first (`serve` does at start-up);
/// signing must go on once the ledger grows, and the empty tree's checkpoint
/// is witnessed as a prefix of the grown log. RFC 9162 defines no consistency
/// proof from size 0, and asking for one once stopped all later signing.
#[tokio::test]
async fn signing_goes_on_after_a_checkpoint_of_the_empty_tree() -> TestResult {
    let env = Env::new().await?;
    let empty = env.custos.ledger_checkpoint().await?;
    assert_eq!(empty.lines().nth(1), Some("0"), "{empty}");
    env.make(Entity::Company, company("A Ltd")).await?;
    env.make(Entity::Company, company("B Ltd")).await?;
    let grown = env.custos.ledger_checkpoint().await?;
    assert_eq!(grown.lines().nth(1), Some("2"), "{grown}");
    match env.custos.witness(&empty).await? {
        custos_service::WitnessReport::Consistent { size, current } => {
            assert_eq!((size, current), (0, 2))
        }
        other => panic!("{other:?}"),
    }
    match env.custos.audit_verify(|_, _| {}).await? {
        VerifyReport::Ok {
            size, checkpoints, ..
        } => assert_eq!((size, checkpoints), (2, 2)),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_checkpoint_verifies_under_the_ledger_key_and_matches_the_status() -> TestResult {
    let env = Env::new().await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    env.custos.get(&env.admin, Entity::Contact, ada).await?;
    let note = env.custos.ledger_checkpoint().await?;
    let key = env.custos.ledger_verifier_key()?;
    let cp = custos_ledger::checkpoint::verify_checkpoint(&note, &key)?;
    let status = env.custos.ledger_status(&env.admin).await?;
    assert_eq!(cp.size, status.size);
    assert_eq!(cp.size, 2);
    assert_eq!(hex_of(&cp.root), status.root_hex);
    // Another installation's key does not verify it.
    let other = Env::new().await?;
    assert!(
        custos_ledger::checkpoint::verify_checkpoint(&note, &other.custos.ledger_verifier_key()?)
            .is_err()
    );
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn events_about_one_person_newest_first() -> TestResult {
    let env = Env::new().await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let charles = env
        .make_id(Entity::Contact, person("Charles", "Babbage"))
        .await?;
    let act = env.make_id(Entity::Activity, note(ada, "hello")).await?;
    env.custos.get(&env.admin, Entity::Contact, charles).await?;
    env.custos.get(&env.admin, Entity::Contact, ada).await?;
    let events = env
        .custos
        .audit_events_for_subject(&env.admin, ada, 10)
        .await?;
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(
        actions,
        ["contact.read", "activity.create", "contact.create"]
    );
    assert!(
        events
            .iter()
            .all(|e| e.event.subject_id == Some(ada.to_string()))
    );
    assert!(
        events.windows(2).all(|w| w[0].index > w[1].index),
        "newest first"
    );
    assert_eq!(events[1].event.record, Some(format!("activity:{act}")));
    let two = env
        .custos
        .audit_events_for_subject(&env.admin, ada, 2)
        .await?;
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].index, events[0].index);
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    assert!(
        env.custos
            .audit_events_for_subject(&sales, ada, 10)
            .await
            .is_err(),
        "sales may not read the ledger"
    );
    Ok(())
}

#[tokio::test]
async fn each_entity_audits_create_read_list_update_delete() -> TestResult {
    let env = Env::new().await?;
    let m = env.user("manager@custos.test", Role::Manager).await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    let cases = [
        (
            Entity::Company,
            company("Engines Ltd"),
            json!({"domain": "engines.example"}),
            None,
        ),
        (
            Entity::Deal,
            json!({"title": "Engine", "stage": "lead"}),
            json!({"stage": "won"}),
            None,
        ),
        (
            Entity::Activity,
            note(ada, "hello"),
            json!({"done": true}),
            Some(ada),
        ),
        (
            Entity::Order,
            order(ada, "1.00"),
            json!({"status": "shipped"}),
            Some(ada),
        ),
        (
            Entity::Contact,
            person("Charles", "Babbage"),
            json!({"last_name": "B."}),
            None,
        ),
    ];
    for (entity, input, patch, subject) in cases {
        let start = env.ledger_size().await?;
        let id = env.custos.create(&m, entity, &input).await?.id();
        env.custos.get(&m, entity, id).await?;
        env.custos
            .list(&m, entity, &ListParams::parse(entity, &[])?)
            .await?;
        env.custos.update(&m, entity, id, &patch).await?;
        env.custos.delete(&m, entity, id).await?;
        let events = env.events_since(start).await?;
        let record = Some(format!("{}:{id}", entity.name()));
        // A contact is its own subject; activities and orders belong to theirs.
        let subject = match entity {
            Entity::Contact => Some(id.to_string()),
            _ => subject.map(|s| s.to_string()),
        };
        for op in ["create", "read", "update", "delete"] {
            let e = &one(&events, &format!("{}.{op}", entity.name())).event;
            assert_eq!(e.actor, format!("user:{}", m.user_id), "{entity}.{op}");
            assert_eq!(e.record, record, "{entity}.{op}");
            assert_eq!(e.subject_id, subject, "{entity}.{op}");
            assert_eq!(e.outcome, "success");
        }
        let listed: Vec<&AuditEntry> = events
            .iter()
            .filter(|e| e.event.action == format!("{}.list", entity.name()))
            .collect();
        assert!(!listed.is_empty(), "{entity}.list audited");
        assert!(
            listed
                .iter()
                .all(|e| e.event.actor == format!("user:{}", m.user_id))
        );
    }
    Ok(())
}

/// Reads arriving together are written to the ledger together (group
/// commit), and each caller gets its data only once its own leaf is
/// committed: right after its read returns, the ledger holds a read by that
/// caller. Run on the suite's backend and on SQLite on disk, where reads use
/// their own connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_each_return_only_after_their_own_leaf_is_committed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let on_disk: Arc<dyn Store> =
        Arc::new(custos_store::SqliteStore::open(&dir.path().join("custos.db")).await?);
    for env in [Env::new().await?, Env::over(on_disk).await?] {
        let ada = env
            .make_id(Entity::Contact, person("Augusta", "Byronova"))
            .await?;
        let start = env.ledger_size().await?;
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..24 {
            let custos = env.custos.clone();
            readers.spawn(async move {
                let p = Principal::with_role(
                    uuid::Uuid::now_v7(),
                    Role::Admin,
                    Via::Session(uuid::Uuid::now_v7()),
                );
                let seen = custos.get(&p, Entity::Contact, ada).await?;
                assert_eq!(seen.id(), ada);
                let cli = Principal::cli();
                let size = custos.ledger_status(&cli).await?.size;
                let entries = custos.audit_entries(&cli, start, size).await?;
                let mine = entries
                    .iter()
                    .filter(|e| e.event.actor == p.actor() && e.event.action == "contact.read")
                    .count();
                assert_eq!(mine, 1, "this caller's read is on record when it returns");
                Ok::<(), custos_service::ServiceError>(())
            });
        }
        while let Some(done) = readers.join_next().await {
            done??;
        }
        let reads = env
            .events_since(start)
            .await?
            .iter()
            .filter(|e| {
                e.event.action == "contact.read"
                    && e.event.record.as_deref() == Some(format!("contact:{ada}").as_str())
            })
            .count();
        assert_eq!(reads, 24, "one leaf per read, none lost, none doubled");
        assert!(matches!(
            env.custos.audit_verify(|_, _| {}).await?,
            VerifyReport::Ok { .. }
        ));
        env.custos.close().await;
    }
    Ok(())
}

/// A read transaction cannot append to the ledger: appends stay in write
/// transactions, which keep them ordered.
#[tokio::test]
async fn a_read_transaction_refuses_ledger_appends() -> TestResult {
    let env = Env::new().await?;
    env.make_id(Entity::Company, company("Analytical Engines"))
        .await?;
    let before = env.ledger_size().await?;
    let mut tx = env.store.begin_read().await?;
    assert!(tx.is_read_only());
    let head = tx.ledger_head().await?;
    let leaf = custos_store::LeafRow {
        index: head.size,
        data: b"{}".to_vec(),
        leaf_hash: vec![0; 32],
    };
    let next = custos_store::LedgerHead {
        size: head.size + 1,
        frontier: head.frontier.clone(),
        bytes: head.bytes + 2,
    };
    let refused = tx
        .append_leaf(&leaf, &custos_store::LeafIndex::default(), &[], &next)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    tx.commit().await?;
    assert_eq!(env.ledger_size().await?, before, "nothing was appended");
    Ok(())
}

/// The ledger's size in bytes is kept as a running total with its head, and
/// equals the sum of the stored leaves.
#[tokio::test]
async fn the_ledger_size_in_bytes_is_the_sum_of_its_leaves() -> TestResult {
    let env = Env::new().await?;
    let sum = |leaves: Vec<Vec<u8>>| leaves.iter().map(|l| l.len() as u64).sum::<u64>();
    let status = env.custos.ledger_status(&env.admin).await?;
    assert_eq!(status.bytes, sum(env.raw_leaves().await?));
    let ada = env
        .make_id(Entity::Contact, person("Augusta", "Byronova"))
        .await?;
    env.custos.get(&env.admin, Entity::Contact, ada).await?;
    env.make_id(Entity::Company, company("Analytical Engines"))
        .await?;
    let status = env.custos.ledger_status(&env.admin).await?;
    let leaves = env.raw_leaves().await?;
    assert!(status.size >= 3 && status.size == leaves.len() as u64);
    assert!(status.bytes > 0);
    assert_eq!(status.bytes, sum(leaves));
    Ok(())
}
