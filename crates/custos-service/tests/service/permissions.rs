//! Deny by default, per operation and per field category; masked, not dropped
//! (invariant 5). Refusals are on record (invariant 2).

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::{ListParams, Principal, ServiceError};
use custos_testkit::AsJson;
use serde_json::{Value as J, json};
use uuid::Uuid;

const MASK: &str = "•••";

struct World {
    env: Env,
    company: Uuid,
    ada: Uuid,
}

async fn world() -> TestResult<World> {
    let env = Env::new().await?;
    let company = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let ada = env
        .make_id(
            Entity::Contact,
            json!({
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
                "phone": "+44 20 7946 0000",
                "company_id": company.to_string(),
                "tags": ["vip"],
            }),
        )
        .await?;
    Ok(World { env, company, ada })
}

fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, ServiceError>, what: &str) {
    match r {
        Err(ServiceError::Forbidden(msg)) => {
            assert!(!msg.is_empty(), "{what}: the refusal says why")
        }
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

/// Asserts the last ledger event is a denial of `action` by `p`.
async fn assert_denied_on_record(env: &Env, p: &Principal, action: &str, since: u64) -> TestResult {
    let events = env.events_since(since).await?;
    assert_eq!(
        events.len(),
        1,
        "one event for the refused {action}: {events:?}"
    );
    let e = &events[0].event;
    assert_eq!(e.action, action);
    assert_eq!(e.outcome, "denied");
    assert_eq!(e.actor, format!("user:{}", p.user_id));
    Ok(())
}

#[tokio::test]
async fn auditor_sees_personal_fields_masked() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    let view = w.env.custos.get(&auditor, Entity::Contact, w.ada).await?;
    let j = view.to_json();
    for f in ["first_name", "last_name", "email", "phone", "tags"] {
        assert_eq!(j[f], json!(MASK), "{f} is masked, not dropped");
        assert!(
            view.masked.contains(&f),
            "{f} listed in masked: {:?}",
            view.masked
        );
    }
    assert_eq!(j["masked"].as_array().map(Vec::len), Some(5));
    assert_eq!(j["id"], json!(w.ada.to_string()));
    assert_eq!(
        j["company_id"],
        json!(w.company.to_string()),
        "identifiers stay visible"
    );
    assert_eq!(j["created_at"], json!(T0_TEXT));
    let text = j.to_string();
    for secret in ["Ada", "Lovelace", "ada@example.com", "7946"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked to the auditor: {text}"
        );
    }
    // Lists mask the same way.
    let page = w
        .env
        .custos
        .list(
            &auditor,
            Entity::Contact,
            &ListParams::parse(Entity::Contact, &[])?,
        )
        .await?;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].to_json(), j);
    // The read is audited without personal categories: nothing personal was opened.
    let events = w.env.events_since(0).await?;
    let read = events
        .iter()
        .rev()
        .find(|e| e.event.action == "contact.read")
        .ok_or("read audited")?;
    assert_eq!(read.event.actor, format!("user:{}", auditor.user_id));
    assert!(
        read.event
            .categories
            .iter()
            .all(|c| c != "identity" && c != "contact_details"),
        "{:?}",
        read.event.categories
    );
    Ok(())
}

#[tokio::test]
async fn an_empty_sealed_field_is_null_not_masked() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    let bare = w
        .env
        .make_id(Entity::Contact, person("Charles", "Babbage"))
        .await?;
    let view = w.env.custos.get(&auditor, Entity::Contact, bare).await?;
    let j = view.to_json();
    assert_eq!(j["first_name"], json!(MASK));
    assert_eq!(j["email"], J::Null, "no value, nothing to hide");
    assert!(!view.masked.contains(&"email"));
    Ok(())
}

#[tokio::test]
async fn auditor_sees_activity_bodies_and_addresses_masked() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    let act = w
        .env
        .make_id(Entity::Activity, note(w.ada, "Wants the Bernoulli program"))
        .await?;
    let mut o = order(w.ada, "10.00");
    o["shipping_address"] = json!("12 St James's Square");
    let ord = w.env.make_id(Entity::Order, o).await?;
    let a = w.env.custos.get(&auditor, Entity::Activity, act).await?;
    assert_eq!(a.to_json()["body"], json!(MASK));
    assert_eq!(a.masked, ["body"]);
    assert_eq!(a.to_json()["kind"], json!("note"));
    let o = w.env.custos.get(&auditor, Entity::Order, ord).await?;
    assert_eq!(o.to_json()["shipping_address"], json!(MASK));
    assert!(o.masked.contains(&"shipping_address"));
    Ok(())
}

#[tokio::test]
async fn auditor_sees_financial_fields_masked() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    let deal = w
        .env
        .make_id(
            Entity::Deal,
            json!({"title": "Engine", "stage": "lead", "amount": "1250.00", "currency": "EUR"}),
        )
        .await?;
    let ord = w.env.make_id(Entity::Order, order(w.ada, "99.90")).await?;
    let d = w.env.custos.get(&auditor, Entity::Deal, deal).await?;
    assert_eq!(
        d.to_json()["amount"],
        json!(MASK),
        "deal amount is financial"
    );
    assert!(d.masked.contains(&"amount"));
    assert_eq!(
        d.to_json()["title"],
        json!("Engine"),
        "business data stays visible"
    );
    let o = w.env.custos.get(&auditor, Entity::Order, ord).await?;
    assert_eq!(
        o.to_json()["total"],
        json!(MASK),
        "order total is financial"
    );
    assert!(o.masked.contains(&"total"));
    Ok(())
}

#[tokio::test]
async fn auditor_may_only_read() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    let before = w.env.table_counts().await?;
    assert_forbidden(
        w.env
            .custos
            .create(&auditor, Entity::Contact, &person("Eve", "Auditor"))
            .await,
        "auditor create",
    );
    assert_forbidden(
        w.env
            .custos
            .update(
                &auditor,
                Entity::Contact,
                w.ada,
                &json!({"first_name": "Eve"}),
            )
            .await,
        "auditor update",
    );
    assert_forbidden(
        w.env.custos.delete(&auditor, Entity::Contact, w.ada).await,
        "auditor delete",
    );
    assert_forbidden(
        w.env
            .custos
            .create(&auditor, Entity::Activity, &note(w.ada, "x"))
            .await,
        "auditor activity",
    );
    assert_eq!(w.env.table_counts().await?, before);
    let j = w
        .env
        .custos
        .get(&w.env.admin, Entity::Contact, w.ada)
        .await?
        .to_json();
    assert_eq!(j["first_name"], json!("Ada"), "unchanged");
    // Searching by a personal value needs the right to read it.
    let p = ListParams::parse(Entity::Contact, &params(&[("email", "ada@example.com")]))?;
    assert_forbidden(
        w.env.custos.list(&auditor, Entity::Contact, &p).await,
        "auditor email search",
    );
    let p = ListParams::parse(Entity::Contact, &params(&[("q", "ada")]))?;
    assert_forbidden(
        w.env.custos.list(&auditor, Entity::Contact, &p).await,
        "auditor name search",
    );
    Ok(())
}

#[tokio::test]
async fn refused_searches_are_on_record() -> TestResult {
    let w = world().await?;
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    for pairs in [[("email", "ada@example.com")], [("q", "lovelace")]] {
        let since = w.env.ledger_size().await?;
        let p = ListParams::parse(Entity::Contact, &params(&pairs))?;
        assert_forbidden(
            w.env.custos.list(&auditor, Entity::Contact, &p).await,
            "auditor search",
        );
        assert_denied_on_record(&w.env, &auditor, "contact.list", since).await?;
    }
    Ok(())
}

#[tokio::test]
async fn support_reads_and_logs_activities_but_does_not_change_contacts() -> TestResult {
    let w = world().await?;
    let support = w.env.user("support@custos.test", Role::Support).await?;
    let j = w
        .env
        .custos
        .get(&support, Entity::Contact, w.ada)
        .await?
        .to_json();
    assert_eq!(
        j["email"],
        json!("ada@example.com"),
        "support sees contact details"
    );
    assert_eq!(j["masked"], json!([]));

    let since = w.env.ledger_size().await?;
    assert_forbidden(
        w.env
            .custos
            .create(&support, Entity::Contact, &person("Eve", "Support"))
            .await,
        "support create",
    );
    assert_denied_on_record(&w.env, &support, "contact.create", since).await?;

    let since = w.env.ledger_size().await?;
    assert_forbidden(
        w.env.custos.delete(&support, Entity::Contact, w.ada).await,
        "support delete",
    );
    assert_denied_on_record(&w.env, &support, "contact.delete", since).await?;

    let since = w.env.ledger_size().await?;
    assert_forbidden(
        w.env
            .custos
            .update(&support, Entity::Contact, w.ada, &json!({"phone": "123"}))
            .await,
        "support update",
    );
    assert_denied_on_record(&w.env, &support, "contact.update", since).await?;

    assert_forbidden(
        w.env
            .custos
            .create(&support, Entity::Order, &order(w.ada, "5.00"))
            .await,
        "support order",
    );
    assert_forbidden(
        w.env
            .custos
            .create(
                &support,
                Entity::Deal,
                &json!({"title": "X", "stage": "lead"}),
            )
            .await,
        "support deal",
    );

    let act = w
        .env
        .custos
        .create(
            &support,
            Entity::Activity,
            &note(w.ada, "Customer called about delivery"),
        )
        .await?;
    assert_eq!(
        act.to_json()["owner_id"],
        json!(support.user_id.to_string())
    );
    let upd = w
        .env
        .custos
        .update(&support, Entity::Activity, act.id(), &json!({"done": true}))
        .await?;
    assert_eq!(upd.to_json()["done"], json!(true));
    assert_forbidden(
        w.env
            .custos
            .delete(&support, Entity::Activity, act.id())
            .await,
        "support delete activity",
    );
    assert!(
        w.env
            .custos
            .get(&w.env.admin, Entity::Contact, w.ada)
            .await
            .is_ok(),
        "Ada still exists"
    );
    Ok(())
}

#[tokio::test]
async fn sales_may_not_delete_contacts_but_may_delete_deals_and_activities() -> TestResult {
    let w = world().await?;
    let sales = w.env.user("sales@custos.test", Role::Sales).await?;
    let since = w.env.ledger_size().await?;
    assert_forbidden(
        w.env.custos.delete(&sales, Entity::Contact, w.ada).await,
        "sales delete contact",
    );
    assert_denied_on_record(&w.env, &sales, "contact.delete", since).await?;
    assert!(
        w.env
            .custos
            .get(&w.env.admin, Entity::Contact, w.ada)
            .await
            .is_ok()
    );
    assert_forbidden(
        w.env
            .custos
            .delete(&sales, Entity::Company, w.company)
            .await,
        "sales delete company",
    );

    let c = w
        .env
        .custos
        .create(&sales, Entity::Contact, &person("Charles", "Babbage"))
        .await?;
    w.env
        .custos
        .update(
            &sales,
            Entity::Contact,
            c.id(),
            &json!({"email": "charles@example.org"}),
        )
        .await?;
    let deal = w
        .env
        .custos
        .create(
            &sales,
            Entity::Deal,
            &json!({"title": "Engine", "stage": "lead"}),
        )
        .await?;
    let act = w
        .env
        .custos
        .create(
            &sales,
            Entity::Activity,
            &note(c.id(), "Met at the Royal Society"),
        )
        .await?;
    w.env.custos.delete(&sales, Entity::Deal, deal.id()).await?;
    w.env
        .custos
        .delete(&sales, Entity::Activity, act.id())
        .await?;
    assert!(matches!(
        w.env.custos.get(&sales, Entity::Deal, deal.id()).await,
        Err(ServiceError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn privacy_officer_reads_and_corrects_but_does_not_create_or_delete() -> TestResult {
    let w = world().await?;
    let po = w
        .env
        .user("privacy@custos.test", Role::PrivacyOfficer)
        .await?;
    assert_eq!(
        w.env
            .custos
            .get(&po, Entity::Contact, w.ada)
            .await?
            .to_json()["last_name"],
        json!("Lovelace")
    );
    let fixed = w
        .env
        .custos
        .update(&po, Entity::Contact, w.ada, &json!({"last_name": "King"}))
        .await?;
    assert_eq!(fixed.to_json()["last_name"], json!("King"));
    assert_forbidden(
        w.env
            .custos
            .create(&po, Entity::Contact, &person("New", "Person"))
            .await,
        "po create",
    );
    assert_forbidden(
        w.env.custos.delete(&po, Entity::Contact, w.ada).await,
        "po delete",
    );
    Ok(())
}

#[tokio::test]
async fn only_admins_manage_users_and_only_readers_see_the_ledger() -> TestResult {
    let w = world().await?;
    let manager = w.env.user("manager@custos.test", Role::Manager).await?;
    let sales = w.env.user("sales@custos.test", Role::Sales).await?;
    let pw = secrecy::SecretString::from(PASSWORD);
    let since = w.env.ledger_size().await?;
    assert_forbidden(
        w.env
            .custos
            .create_user(&manager, "x@custos.test", Role::Admin, &pw, None)
            .await,
        "manager create user",
    );
    assert_denied_on_record(&w.env, &manager, "user.create", since).await?;
    assert_forbidden(
        w.env
            .custos
            .list(
                &manager,
                Entity::User,
                &ListParams::parse(Entity::User, &[])?,
            )
            .await,
        "manager lists users",
    );
    assert_forbidden(
        w.env.custos.ledger_status(&sales).await,
        "sales ledger status",
    );
    assert_forbidden(
        w.env.custos.audit_entries(&sales, 0, 10).await,
        "sales ledger entries",
    );
    assert_forbidden(
        w.env
            .custos
            .set_pipeline_stages(&sales, vec!["lead".into()])
            .await,
        "sales pipeline",
    );
    let auditor = w.env.user("auditor@custos.test", Role::Auditor).await?;
    assert!(w.env.custos.ledger_status(&auditor).await?.size > 0);
    Ok(())
}
