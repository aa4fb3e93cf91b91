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
    assert_eq!(calls.last(), Some(&(4, 4)), "{calls:?}");

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
        let want = u64::from(name == "orders.completed_at.2y");
        assert_eq!((*purged, *held), (0, want), "{counts:?}");
    }
    let runs = c.retention_runs(&p, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[1].purged, runs[1].held), (3, 1));

    // Lifting the hold lets the next run purge the held order.
    c.hold_lift(&p, hold.id).await.unwrap();
    assert!(c.hold_lift(&p, hold.id).await.is_err(), "lifted once");
    let third = c
        .retention_run(&p, RunOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        third
            .certificate
            .policies
            .iter()
            .map(|o| o.purged)
            .sum::<u64>(),
        1
    );

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
    forged["policies"][0]["purged"] = json!(0);
    let bad = tmp.path().join("forged.json");
    std::fs::write(&bad, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = run(&bad, &key);
    assert!(!out.status.success(), "a forged count must fail");
    // Nor does one checked against another key.
    let other = "custos.local/ledger+00000000+AQ0vTstOerEm8tNz4Cu/BiDcq3c4/K1tWYhJCtrNZWzp";
    assert!(!run(&cert, other).status.success());
    c.close().await;
}
