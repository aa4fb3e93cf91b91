//! The request queue and the privacy officer's figures on a manual clock, and
//! consent withdrawal through the public portal.

#![allow(clippy::unwrap_used)]

use custos_domain::{Entity, ManualClock, Role};
use custos_service::{Config, Custos, EventFilter, EventQuery, Opener, Principal, RequestMeta};
use custos_testkit::AsJson;
use serde_json::json;
use std::sync::Arc;
use time::Duration;
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

async fn open(c: &Custos, kind: &str, regime: &str) -> uuid::Uuid {
    c.dsar_open(
        &Opener::Staff(Principal::cli()),
        &json!({"kind": kind, "regime": regime, "subject_email": "someone@queue.example"}),
    )
    .await
    .unwrap()
    .view
    .id
}

#[tokio::test]
async fn the_queue_pages_soonest_due_first_and_the_figures_follow_the_clocks() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-05 09:00 UTC)));
    let c = custos(clock.clone()).await;
    let p = Principal::cli();
    // Twelve requests a day apart: GDPR ones due a month later.
    let mut ids = Vec::new();
    for i in 0..12 {
        clock.set(datetime!(2026-01-05 09:00 UTC) + Duration::days(i));
        ids.push(open(&c, "access", "gdpr").await);
    }
    // One closed: received 5 January, fulfilled 15 January (ten days).
    clock.set(datetime!(2026-01-15 09:00 UTC));
    c.dsar_verify(
        &p,
        ids[0],
        &json!({"method": "operator_attested", "reason": "checked by phone"}),
    )
    .await
    .unwrap();
    c.dsar_fulfil(&p, ids[0]).await.unwrap();

    // On 8 February at 10:00: requests due 5–8 February at 09:00 are
    // overdue (the first is closed), those due 9–15 February due within a week.
    clock.set(datetime!(2026-02-08 10:00 UTC));
    let (page, total) = c.dsar_queue(&p, "open", None, 5).await.unwrap();
    assert_eq!(total, 11);
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.items[0].id, ids[1], "soonest due first");
    let mut seen: Vec<uuid::Uuid> = page.items.iter().map(|v| v.id).collect();
    let mut cursor = page.next_cursor.clone();
    while let Some(cur) = cursor {
        let (next, _) = c.dsar_queue(&p, "open", Some(&cur), 5).await.unwrap();
        seen.extend(next.items.iter().map(|v| v.id));
        cursor = next.next_cursor;
    }
    assert_eq!(seen, ids[1..].to_vec(), "every open request once, in order");
    let (overdue, n) = c.dsar_queue(&p, "overdue", None, 50).await.unwrap();
    assert_eq!(n, 3);
    assert!(overdue.items.iter().all(|v| v.clock == "overdue"));
    let (soon, n) = c.dsar_queue(&p, "due_soon", None, 50).await.unwrap();
    assert_eq!(n, 7);
    assert!(soon.items.iter().all(|v| v.clock == "due_soon"));
    let (closed, n) = c.dsar_queue(&p, "fulfilled", None, 50).await.unwrap();
    assert_eq!((n, closed.items[0].id), (1, ids[0]));
    assert!(c.dsar_queue(&p, "nonsense", None, 5).await.is_err());

    let s = c.dsar_summary(&p).await.unwrap().to_json();
    assert_eq!(
        (&s["open"], &s["overdue"], &s["due_soon"], &s["closed"]),
        (&json!(11), &json!(3), &json!(7), &json!(1))
    );
    assert_eq!(s["median_days_to_close"], 10.0);
    let months = s["closed_by_month"].as_array().unwrap();
    assert_eq!(months.len(), 6);
    assert_eq!(months[5]["month"], "2026-02");
    assert_eq!(months[4]["month"], "2026-01");
    assert_eq!(months[4]["median_days_to_close"], 10.0);
    assert!(months[5]["median_days_to_close"].is_null());

    // Only the privacy officer and administrators see the queue.
    let sales = Principal {
        role: Role::Sales,
        ..Principal::cli()
    };
    assert!(c.dsar_queue(&sales, "open", None, 5).await.is_err());
    assert!(c.dsar_summary(&sales).await.is_err());
}

#[tokio::test]
async fn a_portal_withdrawal_is_recorded_for_known_emails_and_answers_alike_for_others() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 09:00 UTC)));
    let c = custos(clock).await;
    let p = Principal::cli();
    let ada = c
        .create(
            &p,
            Entity::Contact,
            &json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@consent.example"}),
        )
        .await
        .unwrap()
        .id();
    c.consent_record(
        &p,
        &json!({"contact_id": ada, "purpose": "marketing_email", "state": "given", "method": "form"}),
    )
    .await
    .unwrap();
    let meta = RequestMeta::default();
    let n = c
        .withdraw_consent_by_email(&meta, " ADA@consent.example ", "marketing_email")
        .await
        .unwrap();
    assert_eq!(n, 1);
    let h = c.consent_history(&p, ada).await.unwrap().to_json();
    assert_eq!(h["current"]["marketing_email"]["state"], "withdrawn");
    assert_eq!(h["entries"][0]["method"], "portal");
    assert_eq!(h["processing_flags"], json!([]));
    assert_eq!(
        c.withdraw_consent_by_email(&meta, "nobody@consent.example", "profiling")
            .await
            .unwrap(),
        0
    );
    assert!(
        c.withdraw_consent_by_email(&meta, "ada@consent.example", "everything")
            .await
            .is_err()
    );
    // Both withdrawals are on the ledger, neither says whose email it was.
    let (events, _) = c
        .audit_events(
            &p,
            &EventQuery {
                filter: EventFilter {
                    action: Some("consent.withdraw".into()),
                    ..Default::default()
                },
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event.subject_id.is_none()
        && !e.event.detail.as_deref().unwrap_or_default().contains('@')));
    // sale_share withdrawal is the opt-out: it also sets the flag.
    c.withdraw_consent_by_email(&meta, "ada@consent.example", "sale_share")
        .await
        .unwrap();
    let h = c.consent_history(&p, ada).await.unwrap().to_json();
    assert_eq!(h["processing_flags"], json!(["opted_out_sale"]));
}
