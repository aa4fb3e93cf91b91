//! The deal pipeline: stages are settings that validation of deals follows.

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::ServiceError;
use serde_json::json;

#[tokio::test]
async fn deals_follow_the_configured_pipeline() -> TestResult {
    let env = Env::new().await?;
    let manager = env.user("manager@custos.test", Role::Manager).await?;
    let defaults = env.custos.pipeline_stages(&manager).await?;
    assert_eq!(
        defaults,
        [
            "lead",
            "qualified",
            "proposal",
            "negotiation",
            "won",
            "lost"
        ]
    );

    let start = env.ledger_size().await?;
    let set = env
        .custos
        .set_pipeline_stages(
            &manager,
            vec![" Inbound ".into(), "demo".into(), "closed".into()],
        )
        .await?;
    assert_eq!(
        set,
        ["inbound", "demo", "closed"],
        "trimmed and lower-cased"
    );
    assert_eq!(env.custos.pipeline_stages(&manager).await?, set);
    let events = env.events_since(start).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.action, "pipeline.update");
    assert_eq!(events[0].event.actor, format!("user:{}", manager.user_id));

    let r = env
        .custos
        .create(
            &manager,
            Entity::Deal,
            &json!({"title": "Old", "stage": "lead"}),
        )
        .await;
    assert_eq!(
        invalid_fields(r),
        ["stage"],
        "a removed stage is no longer accepted"
    );
    let deal = env
        .custos
        .create(
            &manager,
            Entity::Deal,
            &json!({"title": "New", "stage": "demo"}),
        )
        .await?;

    let err = env
        .custos
        .set_pipeline_stages(&manager, vec!["inbound".into(), "closed".into()])
        .await
        .expect_err("in use");
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    assert_eq!(
        env.custos.pipeline_stages(&manager).await?,
        set,
        "unchanged after the conflict"
    );

    env.custos
        .update(
            &manager,
            Entity::Deal,
            deal.id(),
            &json!({"stage": "closed"}),
        )
        .await?;
    let two = env
        .custos
        .set_pipeline_stages(&manager, vec!["inbound".into(), "closed".into()])
        .await?;
    assert_eq!(two, ["inbound", "closed"]);
    Ok(())
}

#[tokio::test]
async fn bad_pipelines_are_refused() -> TestResult {
    let env = Env::new().await?;
    let bad: Vec<Vec<String>> = vec![
        vec![],
        vec!["lead".into(), "LEAD".into()],
        vec!["has space".into()],
        vec!["".into()],
        vec!["x".repeat(41)],
        (0..21).map(|i| format!("s{i}")).collect(),
    ];
    for stages in bad {
        assert_eq!(
            invalid_fields(
                env.custos
                    .set_pipeline_stages(&env.admin, stages.clone())
                    .await
            ),
            ["stages"],
            "{stages:?}"
        );
    }
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    let r = env
        .custos
        .set_pipeline_stages(&sales, vec!["x".into()])
        .await;
    assert!(matches!(r, Err(ServiceError::Forbidden(_))), "{r:?}");
    assert_eq!(
        env.custos.pipeline_stages(&sales).await?.len(),
        6,
        "defaults kept"
    );
    Ok(())
}
