//! The retention purge on a manual clock, on the backend the suite runs
//! against (SQLite, and PostgreSQL when CUSTOS_TEST_BACKEND says so): due
//! orders are anonymised with their amounts kept, younger ones and held ones
//! are kept, due activities and answered requests are deleted, a second run
//! finds nothing, and the purge certificate verifies offline with the
//! auditor's script, which shares no code with Custos.

#![allow(clippy::unwrap_used)]

use custos_domain::{Entity, ManualClock};
use custos_service::{Config, Custos, Opener, Principal, RunOptions, ServiceError, VerifyReport};
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use time::macros::datetime;
use uuid::Uuid;

async fn custos(clock: Arc<ManualClock>) -> Custos {
    let store = custos_testkit::test_store().await;
    let ring =
        custos_crypto::MasterKeyring::new(vec![custos_crypto::MasterKey::generate(1).unwrap()])
            .unwrap();
    Custos::open(store, clock, ring, Config::default())
        .await
        .unwrap()
}

async fn contact(c: &Custos, name: &str) -> Uuid {
    c.create(
        &Principal::cli(),
        Entity::Contact,
        &json!({"first_name": name, "last_name": "Kept", "email": format!("{name}@example.org")}),
    )
    .await
    .unwrap()
    .id()
}

async fn order(c: &Custos, contact: Uuid, completed: Option<&str>) -> Uuid {
    let mut body = json!({"contact_id": contact.to_string(), "status": "completed", "total": "120.00",
        "currency": "EUR", "shipping_address": "1 Purge Lane", "placed_at": "2024-01-01T09:00:00Z"});
    match completed {
        Some(t) => body["completed_at"] = json!(t),
        None => body["status"] = json!("paid"),
    }
    c.create(&Principal::cli(), Entity::Order, &body)
        .await
        .unwrap()
        .id()
}

async fn activity(c: &Custos, contact: Uuid, at: &str) -> Uuid {
    c.create(
        &Principal::cli(),
        Entity::Activity,
        &json!({"contact_id": contact.to_string(), "kind": "call", "body": "talked", "occurred_at": at}),
    )
    .await
    .unwrap()
    .id()
}

fn one_by_one() -> RunOptions {
    RunOptions {
        batch: 1,
        ..Default::default()
    }
}

fn python_with_cryptography() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_records_are_purged_held_and_young_ones_kept_and_the_certificate_verifies() {
    let clock = Arc::new(ManualClock::new(datetime!(2024-01-01 08:00 UTC)));
    let c = custos(clock.clone()).await;
    let p = Principal::cli();
    let ada = contact(&c, "ada").await;
    let held = contact(&c, "grace").await;
    let old = order(&c, ada, Some("2024-01-10T12:00:00Z")).await;
    let young = order(&c, ada, Some("2026-06-01T12:00:00Z")).await;
    let open = order(&c, ada, None).await;
    let held_order = order(&c, held, Some("2024-01-10T12:00:00Z")).await;
    let old_call = activity(&c, ada, "2024-02-01T10:00:00Z").await;
    let new_call = activity(&c, ada, "2026-02-01T10:00:00Z").await;
    // A privacy request answered in January 2024: due three years later.
    let req = c
        .dsar_open(
            &Opener::Staff(p.clone()),
            &json!({"kind": "access", "regime": "gdpr", "subject_email": "someone@example.org"}),
        )
        .await
        .unwrap()
        .view
        .id;
    clock.set(datetime!(2024-01-02 08:00 UTC));
    c.dsar_reject(&p, req, "manifestly_unfounded", "no relation to us")
        .await
        .unwrap();
    clock.set(datetime!(2024-01-03 08:00 UTC));
    let hold = c
        .hold_place(
            &p,
            &json!({"subject_id": held.to_string(), "reason": "claim by Grace, case 17", "review_on": "2027-06-30"}),
        )
        .await
        .unwrap();
    assert_eq!(hold.reason.as_deref(), Some("claim by Grace, case 17"));

    // Bad input changes nothing.
    for bad in [
        json!({"subject_id": held.to_string(), "reason": " "}),
        json!({"subject_id": "nope", "reason": "x"}),
        json!({"subject_id": Uuid::now_v7().to_string(), "reason": "x"}),
        json!({"subject_id": held.to_string(), "reason": "x", "review_on": "2020-01-01"}),
        json!({"subject_id": held.to_string(), "reason": "x", "review_on": "June"}),
    ] {
        let e = c.hold_place(&p, &bad).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid(_)), "{bad}: {e:?}");
    }
    assert_eq!(c.holds_in_force(&p).await.unwrap().len(), 1);
    // Erasure of a held person is refused.
    let e = c.erase_subject(&p, held).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e:?}");

    // Two days short of three years after the request was answered.
    clock.set(datetime!(2026-12-31 08:00 UTC));
    let preview = c.retention_preview(&p).await.unwrap();
    let count = |name: &str| {
        let p = preview
            .policies
            .iter()
            .find(|p| p.outcome.policy == name)
            .unwrap();
        (p.outcome.purged, p.outcome.held, p.first.len())
    };
    assert_eq!(count("orders.completed_at.2y"), (1, 1, 2));
    assert_eq!(count("activities.occurred_at.2y"), (1, 0, 1));
    assert_eq!(count("requests.closed_at.3y"), (0, 0, 0));

    clock.set(datetime!(2027-01-03 09:00 UTC));
    let mut calls = Vec::new();
    let report = c
        .retention_run(&p, one_by_one(), |done, total| calls.push((done, total)))
        .await
        .unwrap();
    assert!(!report.resumed);
    let got = |name: &str| {
        let o = report
            .certificate
            .policies
            .iter()
            .find(|o| o.policy == name)
            .unwrap();
        (o.purged, o.held)
    };
    assert_eq!(got("orders.completed_at.2y"), (1, 1));
    assert_eq!(got("activities.occurred_at.2y"), (1, 0));
    assert_eq!(got("requests.closed_at.3y"), (1, 0));
    assert_eq!(
        got("contacts.last_activity.3y"),
        (0, 1),
        "Ada is active, Grace held"
    );
    assert_eq!(calls.last(), Some(&(6, 6)), "{calls:?}");

    // The due order is anonymised: its address is gone, its amount kept.
    let o = c.get(&p, Entity::Order, old).await.unwrap();
    assert_eq!(o.shown_text("shipping_address"), None);
    assert_eq!(o.shown_text("total").as_deref(), Some("120.00"));
    for kept in [young, open, held_order] {
        let o = c.get(&p, Entity::Order, kept).await.unwrap();
        assert_eq!(
            o.shown_text("shipping_address").as_deref(),
            Some("1 Purge Lane"),
            "order {kept} must be kept whole"
        );
    }
    assert!(matches!(
        c.get(&p, Entity::Activity, old_call).await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(c.get(&p, Entity::Activity, new_call).await.is_ok());
    assert!(c.dsar_get(&p, req).await.is_err(), "the request is deleted");

    // Nothing is purged twice.
    let again = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    let counts: Vec<(String, u64, u64)> = again
        .certificate
        .policies
        .iter()
        .map(|o| (o.policy.clone(), o.purged, o.held))
        .collect();
    for (name, purged, held) in &counts {
        let want = u64::from(name == "orders.completed_at.2y" || name.starts_with("contacts."));
        assert_eq!((*purged, *held), (0, want), "{counts:?}");
    }
    let runs = c.retention_runs(&p, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[1].purged, runs[1].held), (3, 2));

    // Lifting the hold lets the next run purge the held order.
    c.hold_lift(&p, hold.id).await.unwrap();
    assert!(c.hold_lift(&p, hold.id).await.is_err(), "lifted once");
    let third = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    // Her order is anonymised, and she is erased: nothing of hers is
    // younger than its period.
    let purged: Vec<(&str, u64)> = third
        .certificate
        .policies
        .iter()
        .filter(|o| o.purged > 0)
        .map(|o| (o.policy.as_str(), o.purged))
        .collect();
    assert_eq!(
        purged,
        [
            ("orders.completed_at.2y", 1),
            ("contacts.last_activity.3y", 1)
        ]
    );
    assert!(matches!(
        c.erase_subject(&p, held).await,
        Err(ServiceError::Gone(_))
    ));

    // The ledger holds what happened and verifies.
    assert!(matches!(
        c.audit_verify(|_, _| {}).await.unwrap(),
        VerifyReport::Ok { .. }
    ));

    // The certificate, checked offline by the auditor's script.
    if !python_with_cryptography() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with the cryptography package"
        );
        eprintln!("skipped the offline check: python3 with cryptography is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("certificate.json");
    let stored = c.retention_certificate(&p, report.id).await.unwrap();
    assert_eq!(stored, report.certificate);
    std::fs::write(&cert, serde_json::to_vec(&stored).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/auditor/verify_certificate.py"
    );
    let key = c.ledger_verifier_key().unwrap();
    let run = |path: &std::path::Path, key: &str| {
        Command::new("python3")
            .arg(script)
            .arg(path)
            .args(["--key", key])
            .output()
            .unwrap()
    };
    let out = run(&cert, &key);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("purged 3"), "{said}");
    // A certificate whose counts were changed no longer verifies.
    let mut forged: serde_json::Value = serde_json::to_value(&stored).unwrap();
    let orders = stored
        .policies
        .iter()
        .position(|o| o.policy == "orders.completed_at.2y")
        .unwrap();
    forged["policies"][orders]["purged"] = json!(0);
    let bad = tmp.path().join("forged.json");
    std::fs::write(&bad, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = run(&bad, &key);
    assert!(!out.status.success(), "a forged count must fail");
    // Nor does one checked against another key.
    let other = "custos.local/ledger+00000000+AQ0vTstOerEm8tNz4Cu/BiDcq3c4/K1tWYhJCtrNZWzp";
    assert!(!run(&cert, other).status.success());
    c.close().await;
}

async fn deal(c: &Custos, contact: Uuid, stage: &str) -> Uuid {
    c.create(
        &Principal::cli(),
        Entity::Deal,
        &json!({"title": format!("{stage} deal"), "contact_id": contact.to_string(),
            "stage": stage, "amount": "500.00", "currency": "EUR"}),
    )
    .await
    .unwrap()
    .id()
}

/// Contacts are erased three years after their last activity, unless a deal
/// of theirs is open or an order of theirs is within its own period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_erased_three_years_after_the_last_activity_unless_still_in_business() {
    let clock = Arc::new(ManualClock::new(datetime!(2020-01-01 08:00 UTC)));
    let c = custos(clock.clone()).await;
    let p = Principal::cli();
    let quiet = contact(&c, "quiet").await;
    let talked = contact(&c, "talked").await;
    let dealing = contact(&c, "dealing").await;
    let won = contact(&c, "won").await;
    let ordered = contact(&c, "ordered").await;
    let lapsed = contact(&c, "lapsed").await;
    let held = contact(&c, "held").await;
    deal(&c, dealing, "proposal").await;
    let won_deal = deal(&c, won, "won").await;
    activity(&c, talked, "2022-06-01T10:00:00Z").await;
    // Completed in June 2021: still within its two years in January 2023.
    order(&c, ordered, Some("2021-06-01T12:00:00Z")).await;
    // Completed in 2020: past its period, so it keeps nobody.
    order(&c, lapsed, Some("2020-02-01T12:00:00Z")).await;
    c.hold_place(
        &p,
        &json!({"subject_id": held.to_string(), "reason": "dispute", "review_on": "2030-01-01"}),
    )
    .await
    .unwrap();
    // Edited in 2021: the contact's own change is an activity too.
    clock.set(datetime!(2021-03-01 08:00 UTC));
    let edited = contact(&c, "edited").await;

    clock.set(datetime!(2023-01-02 08:00 UTC));
    let policy = "contacts.last_activity.3y";
    let preview = c.retention_preview(&p).await.unwrap();
    let pp = preview
        .policies
        .iter()
        .find(|x| x.outcome.policy == policy)
        .unwrap();
    assert_eq!((pp.outcome.purged, pp.outcome.held), (3, 1));
    let mut listed: Vec<Uuid> = pp.first.iter().map(|r| r.id).collect();
    listed.sort();
    let mut want = vec![quiet, won, lapsed, held];
    want.sort();
    assert_eq!(listed, want, "the due ones, the held one marked");
    assert_eq!(pp.outcome.anchor, "last_activity");

    let report = c.retention_run(&p, one_by_one(), |_, _| {}).await.unwrap();
    let o = report
        .certificate
        .policies
        .iter()
        .find(|o| o.policy == policy)
        .unwrap();
    assert_eq!((o.purged, o.held, o.disposal.as_str()), (3, 1, "erase"));
    // Erased: the key is gone, so erasing again finds nothing to erase.
    for gone in [quiet, won, lapsed] {
        assert!(
            matches!(c.erase_subject(&p, gone).await, Err(ServiceError::Gone(_))),
            "{gone} must be erased"
        );
    }
    for kept in [talked, dealing, ordered, held, edited] {
        let v = c.get(&p, Entity::Contact, kept).await.unwrap();
        assert!(v.shown_text("first_name").is_some(), "{kept} must be kept");
    }
    // The won deal is not personal data and stays.
    assert!(c.get(&p, Entity::Deal, won_deal).await.is_ok());
    // One audit leaf per person, naming the policy.
    for gone in [quiet, won, lapsed] {
        let events = c.audit_events_for_subject(&p, gone, 50).await.unwrap();
        let purges = events
            .iter()
            .filter(|e| e.event.action == "retention.purge")
            .filter(|e| {
                e.event
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains(policy))
            })
            .count();
        assert_eq!(purges, 1, "{gone}");
    }

    // Nobody is erased twice; the talker is due once three years have
    // passed since the call.
    let again = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    let o = again
        .certificate
        .policies
        .iter()
        .find(|o| o.policy == policy)
        .unwrap();
    assert_eq!((o.purged, o.held), (0, 1));
    clock.set(datetime!(2025-06-02 08:00 UTC));
    let later = c.retention_preview(&p).await.unwrap();
    let ids: Vec<Uuid> = later
        .policies
        .iter()
        .find(|x| x.outcome.policy == policy)
        .unwrap()
        .first
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(ids.contains(&talked) && ids.contains(&edited), "{ids:?}");
    assert!(!ids.contains(&dealing), "an open deal keeps its person");
    c.close().await;
}

fn order_years(c: &custos_service::RecordOfProcessing) -> Vec<u32> {
    let mut out = Vec::new();
    for a in &c.activities {
        for r in &a.retention {
            if let custos_domain::inventory::Retention::YearsAfter {
                years,
                anchor: "completed_at",
                ..
            } = r
                && !out.contains(years)
            {
                out.push(*years);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_given_a_shorter_period_says_how_many_more_it_purges_and_is_versioned() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-12-01 08:00 UTC)));
    let c = custos(clock.clone()).await;
    let p = Principal::cli();
    let ada = contact(&c, "ada").await;
    // Due under two years; due under one year too.
    let old = order(&c, ada, Some("2023-06-01T12:00:00Z")).await;
    let younger = order(&c, ada, Some("2025-06-01T12:00:00Z")).await;
    order(&c, ada, Some("2026-11-01T12:00:00Z")).await;
    let key = "orders.completed_at";

    let impact = c.retention_policy_impact(&p, key, 1).await.unwrap();
    assert_eq!(
        (
            impact.years_now,
            impact.due_now,
            impact.due_then,
            impact.more
        ),
        (2, 1, 2, 1)
    );
    // Unconfirmed, the change is refused with the number; nothing is saved.
    let err = c
        .retention_policy_set(&p, key, &json!({"years": 1, "reason": "new tax rule"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Conflict(m) if m.contains("1 more record")),
        "{err:?}"
    );
    // Bad input changes nothing either.
    for bad in [
        json!({"years": 0, "reason": "x"}),
        json!({"years": "two", "reason": "x"}),
        json!({"years": 101, "reason": "x"}),
        json!({"years": 1}),
        json!({"years": 1, "reason": "   "}),
        json!({"years": 2, "reason": "unchanged"}),
        json!({"years": 1, "reason": "x", "confirm": "yes"}),
    ] {
        let e = c.retention_policy_set(&p, key, &bad).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid(_)), "{bad}: {e:?}");
    }
    assert!(matches!(
        c.retention_policy_set(&p, "orders.nowhere", &json!({"years": 1, "reason": "x"}))
            .await,
        Err(ServiceError::NotFound(_))
    ));
    let sales = Principal {
        role: custos_domain::Role::Sales,
        ..Principal::cli()
    };
    assert!(matches!(
        c.retention_policy_set(
            &sales,
            key,
            &json!({"years": 1, "reason": "x", "confirm": true})
        )
        .await,
        Err(ServiceError::Forbidden(_))
    ));
    let views = c.retention_policies(&p).await.unwrap();
    let orders = views.iter().find(|v| v.key == key).unwrap();
    assert_eq!((orders.years, orders.version), (2, 1));
    assert!(orders.history.is_empty());
    assert_eq!(
        order_years(&c.record_of_processing(&p).await.unwrap()),
        vec![2]
    );

    // Confirmed, it is version 2, in the ledger, and in force everywhere.
    let v2 = c
        .retention_policy_set(
            &p,
            key,
            &json!({"years": 1, "reason": "new tax rule", "confirm": true}),
        )
        .await
        .unwrap();
    assert_eq!((v2.years, v2.version, v2.default_years), (1, 2, 2));
    assert_eq!(v2.history.len(), 1);
    assert_eq!(v2.history[0].reason, "new tax rule");
    assert_eq!((v2.history[0].previous_years, v2.history[0].years), (2, 1));
    let leaf = v2.history[0].leaf;
    let entry = c.audit_entries(&p, leaf, leaf + 1).await.unwrap();
    assert_eq!(entry[0].event.action, "retention.policy");
    let detail = entry[0].event.detail.clone().unwrap_or_default();
    assert!(
        detail.ends_with(" policy=orders.completed_at version=2 years=1 previous=2 more=1"),
        "ids and numbers only, never the reason: {detail}"
    );
    assert_eq!(
        order_years(&c.record_of_processing(&p).await.unwrap()),
        vec![1]
    );
    let preview = c.retention_preview(&p).await.unwrap();
    let o = preview
        .policies
        .iter()
        .find(|x| x.outcome.entity == "order")
        .unwrap();
    assert_eq!(
        (
            o.outcome.policy.as_str(),
            o.outcome.version,
            o.outcome.purged
        ),
        ("orders.completed_at.1y", 2, 2)
    );

    // Lengthening purges fewer: saved without a confirmation.
    let v3 = c
        .retention_policy_set(&p, key, &json!({"years": "3", "reason": "auditor asked"}))
        .await
        .unwrap();
    assert_eq!((v3.years, v3.version, v3.history.len()), (3, 3, 2));
    // The run applies the version in force and its certificate says so.
    let run = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    let cert = run
        .certificate
        .policies
        .iter()
        .find(|x| x.entity == "order")
        .unwrap();
    // Completed in June 2023: past three years too.
    assert_eq!((cert.years, cert.version, cert.purged), (3, 3, 1));
    let _ = (old, younger);
    assert!(matches!(
        c.audit_verify(|_, _| {}).await.unwrap(),
        VerifyReport::Ok { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_an_upgrade_finishes_with_the_policies_added_since() {
    let clock = Arc::new(ManualClock::new(datetime!(2020-01-01 08:00 UTC)));
    let store = custos_testkit::test_store().await;
    let ring =
        custos_crypto::MasterKeyring::new(vec![custos_crypto::MasterKey::generate(1).unwrap()])
            .unwrap();
    let c = Arc::new(
        Custos::open(store.clone(), clock.clone(), ring, Config::default())
            .await
            .unwrap(),
    );
    let p = Principal::cli();
    let gone = contact(&c, "gone").await;
    order(&c, gone, Some("2020-02-01T12:00:00Z")).await;
    clock.set(datetime!(2026-12-01 08:00 UTC));
    // A run that stops (here: panics) after its first batch, as a crash
    // would, leaving its saved state behind.
    let stopping = c.clone();
    let crashed = tokio::spawn(async move {
        let mut calls = 0;
        stopping
            .retention_run(&Principal::cli(), one_by_one(), move |_, _| {
                calls += 1;
                assert!(calls < 2, "stop after the first batch");
            })
            .await
    })
    .await;
    assert!(crashed.is_err(), "the run stopped");
    // The state as the version before the contacts policy saved it: three
    // policies, not four.
    let mut tx = store.begin().await.unwrap();
    let run = tx.unfinished_retention_run().await.unwrap().unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&run.state).unwrap();
    let policies = state["policies"].as_array_mut().unwrap();
    let before = policies.len();
    policies.retain(|x| x["outcome"]["entity"] != "contact");
    assert_eq!(policies.len(), before - 1);
    tx.save_retention_run(run.id, &state.to_string(), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let report = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert!(report.resumed);
    assert_eq!(report.id, run.id);
    let names: Vec<(&str, u64)> = report
        .certificate
        .policies
        .iter()
        .map(|x| (x.policy.as_str(), x.purged))
        .collect();
    assert_eq!(
        names,
        vec![
            ("activities.occurred_at.2y", 0),
            ("orders.completed_at.2y", 1),
            ("requests.closed_at.3y", 0),
            ("contacts.last_activity.3y", 1),
        ],
        "the added policy ran, last, with the run's own time"
    );
    assert!(matches!(
        c.erase_subject(&p, gone).await,
        Err(ServiceError::Gone(_))
    ));
}
