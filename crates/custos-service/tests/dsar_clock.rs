//! Legal clocks of data-subject requests on a manual clock.

#![allow(clippy::unwrap_used)]

use custos_domain::ManualClock;
use custos_service::{Config, Custos, Opener, Principal};
use serde_json::json;
use std::sync::Arc;
use time::macros::datetime;

async fn custos(clock: Arc<ManualClock>) -> Custos {
    let store = custos_testkit::test_store().await;
    let ring =
        custos_crypto::MasterKeyring::new(vec![custos_crypto::MasterKey::generate(1).unwrap()])
            .unwrap();
    Custos::open(store, clock, ring, Config::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn gdpr_on_31_january_is_due_on_the_last_day_of_february_and_ccpa_45_days_later() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-31 15:30 UTC)));
    let c = custos(clock.clone()).await;
    let staff = Opener::Staff(Principal::cli());
    let g = c
        .dsar_open(
            &staff,
            &json!({"kind": "access", "regime": "gdpr", "subject_email": "a@b.example"}),
        )
        .await
        .unwrap();
    assert_eq!(g.view.received_at, "2026-01-31T15:30:00Z");
    assert_eq!(g.view.due_at, "2026-02-28T15:30:00Z");
    let cc = c
        .dsar_open(
            &staff,
            &json!({"kind": "access", "regime": "ccpa", "subject_email": "a@b.example"}),
        )
        .await
        .unwrap();
    assert_eq!(cc.view.due_at, "2026-03-17T15:30:00Z");
    // In a leap year the last day of February is the 29th.
    clock.set(datetime!(2028-01-31 09:00 UTC));
    let leap = c
        .dsar_open(
            &staff,
            &json!({"kind": "erasure", "regime": "gdpr", "subject_email": "a@b.example"}),
        )
        .await
        .unwrap();
    assert_eq!(leap.view.due_at, "2028-02-29T09:00:00Z");
    // Extensions: GDPR two more months, CCPA 45 more days, each once and with a reason.
    let p = Principal::cli();
    let x = c
        .dsar_extend(&p, g.view.id, "records spread over three systems")
        .await
        .unwrap();
    assert_eq!(x.due_at, "2026-04-28T15:30:00Z");
    assert_eq!(
        x.extension_reason.as_deref(),
        Some("records spread over three systems")
    );
    let y = c
        .dsar_extend(&p, cc.view.id, "a large volume of records")
        .await
        .unwrap();
    assert_eq!(y.due_at, "2026-05-01T15:30:00Z");
    assert!(c.dsar_extend(&p, cc.view.id, "again").await.is_err());
    assert!(
        c.dsar_extend(&p, leap.view.id, "").await.is_err(),
        "a reason is required"
    );
    // The clock colours: two days before the (extended) due date it is due soon, after it overdue.
    clock.set(datetime!(2026-03-15 15:30 UTC));
    assert_eq!(c.dsar_get(&p, cc.view.id).await.unwrap().clock, "on_track");
    clock.set(datetime!(2026-04-27 15:30 UTC));
    assert_eq!(c.dsar_get(&p, g.view.id).await.unwrap().clock, "due_soon");
    clock.set(datetime!(2026-04-29 15:30 UTC));
    assert_eq!(c.dsar_get(&p, g.view.id).await.unwrap().clock, "overdue");
    let summary = c.dsar_summary(&p).await.unwrap();
    assert_eq!(summary.open, 3);
    assert!(summary.overdue >= 1);
}
