//! Exact search on sealed fields (blind indexes), free-text search, plain filters
//! and keyset pagination.

use crate::common::*;
use custos_domain::Entity;
use custos_service::{ListParams, RecordView};
use custos_testkit::AsJson;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

struct People {
    env: Env,
    ada: Uuid,
    charles: Uuid,
    grace: Uuid,
    engines: Uuid,
}

async fn people() -> TestResult<People> {
    let env = Env::new().await?;
    let engines = env
        .make_id(Entity::Company, company("Analytical Engines Ltd"))
        .await?;
    let navy = env
        .make_id(Entity::Company, company("Naval Computing Office"))
        .await?;
    let ada = env
        .make_id(
            Entity::Contact,
            json!({
                "first_name": "Ada",
                "last_name": "King-Lovelace",
                "email": "ada@example.com",
                "phone": "+44 20 7946 0000",
                "company_id": engines.to_string(),
                "tags": ["vip", "b2b"],
            }),
        )
        .await?;
    let charles = env
        .make_id(
            Entity::Contact,
            json!({
                "first_name": "Charles",
                "last_name": "Babbage",
                "email": "charles@example.org",
                "phone": "020 7946 9999",
                "tags": ["b2b"],
            }),
        )
        .await?;
    let grace = env
        .make_id(
            Entity::Contact,
            json!({
                "first_name": "Grace Brewster",
                "last_name": "Hopper",
                "email": "Grace@Example.NET",
                "company_id": navy.to_string(),
                "tags": ["navy"],
            }),
        )
        .await?;
    Ok(People {
        env,
        ada,
        charles,
        grace,
        engines,
    })
}

#[tokio::test]
async fn email_search_is_exact_after_normalisation() -> TestResult {
    let p = people().await?;
    let find = |v: &'static str| p.env.find_by(Entity::Contact, "email", v);
    assert_eq!(find("ada@example.com").await?, vec![p.ada]);
    assert_eq!(
        find(" ADA@Example.com ").await?,
        vec![p.ada],
        "trimmed and case-insensitive"
    );
    assert_eq!(find("Charles@EXAMPLE.org").await?, vec![p.charles]);
    assert_eq!(
        find("grace@example.net").await?,
        vec![p.grace],
        "stored in mixed case, found in lower case"
    );
    assert!(
        find("bob@example.com").await?.is_empty(),
        "another email finds nobody"
    );
    assert!(find("ada@example.co").await?.is_empty(), "no prefix match");
    assert!(find("da@example.com").await?.is_empty(), "no suffix match");
    Ok(())
}

#[tokio::test]
async fn phone_search_ignores_formatting() -> TestResult {
    let p = people().await?;
    let find = |v: &'static str| p.env.find_by(Entity::Contact, "phone", v);
    assert_eq!(find("+44 20 7946 0000").await?, vec![p.ada]);
    assert_eq!(find("+44 (20) 7946-0000").await?, vec![p.ada]);
    assert_eq!(find("020 7946 9999").await?, vec![p.charles]);
    assert_eq!(find("(020) 7946.9999").await?, vec![p.charles]);
    assert!(find("+44 20 7946 0001").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn q_finds_name_words_case_insensitively() -> TestResult {
    let p = people().await?;
    let q = |v: &'static str| p.env.find_by(Entity::Contact, "q", v);
    assert_eq!(q("ada").await?, vec![p.ada], "first name");
    assert_eq!(
        q("LOVELACE").await?,
        vec![p.ada],
        "one word of a hyphenated last name"
    );
    assert_eq!(q("king").await?, vec![p.ada]);
    assert_eq!(q("babbage").await?, vec![p.charles], "last name");
    assert_eq!(q("Charles Babbage").await?, vec![p.charles], "both names");
    assert_eq!(
        q("brewster").await?,
        vec![p.grace],
        "second word of a first name"
    );
    assert_eq!(
        q("HOPPER grace").await?,
        vec![p.grace],
        "word order does not matter"
    );
    assert!(
        q("Charles Hopper").await?.is_empty(),
        "every word must match the same person"
    );
    assert!(
        q("adam").await?.is_empty(),
        "words match whole, not by prefix"
    );
    assert!(q("nobody").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn q_finds_contacts_by_company_name_substring() -> TestResult {
    let p = people().await?;
    let q = |v: &'static str| p.env.find_by(Entity::Contact, "q", v);
    assert_eq!(q("engines").await?, vec![p.ada]);
    assert_eq!(
        q("ANALYTICAL ENG").await?,
        vec![p.ada],
        "substring, any case"
    );
    assert_eq!(q("naval").await?, vec![p.grace]);
    assert_eq!(q("Computing Off").await?, vec![p.grace]);
    assert!(
        q("Babbage Engines").await?.is_empty(),
        "not a name, not a company substring"
    );
    // Companies themselves are found by name substring.
    assert_eq!(
        p.env.find(Entity::Company, &[("q", "ENGINES")]).await?,
        vec![p.engines]
    );
    Ok(())
}

#[tokio::test]
async fn tag_filter_matches_any_tag_of_a_contact() -> TestResult {
    let p = people().await?;
    let tags = |v: &'static str| p.env.find_by(Entity::Contact, "tags", v);
    assert_eq!(tags("b2b").await?, sorted(vec![p.ada, p.charles]));
    assert_eq!(tags("VIP").await?, vec![p.ada], "tags are lower-cased");
    assert_eq!(tags("navy").await?, vec![p.grace]);
    assert!(tags("v").await?.is_empty());
    // Filters combine with AND.
    assert_eq!(
        p.env
            .find(
                Entity::Contact,
                &[("tags", "b2b"), ("email", "charles@example.org")]
            )
            .await?,
        vec![p.charles]
    );
    assert!(
        p.env
            .find(
                Entity::Contact,
                &[("tags", "navy"), ("email", "ada@example.com")]
            )
            .await?
            .is_empty()
    );
    assert_eq!(
        p.env
            .find(Entity::Contact, &[("tags", "b2b"), ("q", "engines")])
            .await?,
        vec![p.ada]
    );
    Ok(())
}

#[tokio::test]
async fn plain_filters_match_exactly() -> TestResult {
    let p = people().await?;
    let env = &p.env;
    assert_eq!(
        env.find(Entity::Contact, &[("company_id", &p.engines.to_string())])
            .await?,
        vec![p.ada]
    );
    let a1 = env.make_id(Entity::Activity, note(p.ada, "one")).await?;
    let a2 = env.make_id(Entity::Activity, note(p.ada, "two")).await?;
    let c1 = env
        .make_id(Entity::Activity, note(p.charles, "three"))
        .await?;
    env.custos
        .update(&env.admin, Entity::Activity, a2, &json!({"done": true}))
        .await?;
    assert_eq!(
        env.find(Entity::Activity, &[("contact_id", &p.ada.to_string())])
            .await?,
        sorted(vec![a1, a2])
    );
    assert_eq!(
        env.find(Entity::Activity, &[("contact_id", &p.charles.to_string())])
            .await?,
        vec![c1]
    );
    assert_eq!(
        env.find(Entity::Activity, &[("done", "true")]).await?,
        vec![a2]
    );
    let d1 = env
        .make_id(
            Entity::Deal,
            json!({"title": "Engine", "stage": "proposal", "amount": "1250.00"}),
        )
        .await?;
    let d2 = env
        .make_id(
            Entity::Deal,
            json!({"title": "Loom", "stage": "won", "amount": "99.90"}),
        )
        .await?;
    assert_eq!(env.find(Entity::Deal, &[("stage", "won")]).await?, vec![d2]);
    assert_eq!(
        env.find(Entity::Deal, &[("amount", "1250")]).await?,
        vec![d1],
        "amount compares as a number"
    );
    assert_eq!(
        env.find(Entity::Deal, &[("q", "ENG")]).await?,
        vec![d1],
        "deals by title"
    );
    Ok(())
}

#[tokio::test]
async fn pagination_visits_every_contact_once_newest_first() -> TestResult {
    let env = Env::new().await?;
    let mut created = Vec::new();
    for i in 0..7 {
        env.clock.advance(Duration::from_secs(1));
        let name = format!("Person{i}");
        created.push(env.make_id(Entity::Contact, person(&name, "Paged")).await?);
    }
    let expected: Vec<Uuid> = created.iter().rev().copied().collect();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last_created: Option<String> = None;
    for _ in 0..10 {
        let mut raw = params(&[("limit", "3")]);
        if let Some(c) = &cursor {
            raw.push(("cursor".into(), c.clone()));
        }
        let page = env
            .custos
            .list(
                &env.admin,
                Entity::Contact,
                &ListParams::parse(Entity::Contact, &raw)?,
            )
            .await?;
        sizes.push(page.items.len());
        for item in &page.items {
            let c = item.to_json()["created_at"]
                .as_str()
                .ok_or("created_at")?
                .to_string();
            if let Some(prev) = &last_created {
                assert!(
                    c < *prev,
                    "created_at strictly descending: {c} after {prev}"
                );
            }
            last_created = Some(c);
            seen.push(item.id());
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, expected, "each contact exactly once, newest first");
    Ok(())
}

#[tokio::test]
async fn an_exact_last_page_has_no_cursor() -> TestResult {
    let env = Env::new().await?;
    for i in 0..6 {
        env.clock.advance(Duration::from_secs(1));
        env.make(Entity::Company, company(&format!("Company {i}")))
            .await?;
    }
    let p = ListParams::parse(Entity::Company, &params(&[("limit", "3")]))?;
    let first = env.custos.list(&env.admin, Entity::Company, &p).await?;
    assert_eq!(first.items.len(), 3);
    let cursor = first.next_cursor.ok_or("a second page exists")?;
    let p = ListParams::parse(
        Entity::Company,
        &params(&[("limit", "3"), ("cursor", &cursor)]),
    )?;
    let second = env.custos.list(&env.admin, Entity::Company, &p).await?;
    assert_eq!(second.items.len(), 3);
    assert!(
        second.next_cursor.is_none(),
        "nothing after the sixth company"
    );
    Ok(())
}

#[tokio::test]
async fn pagination_with_a_filter_and_ties_in_the_sort_key() -> TestResult {
    let env = Env::new().await?;
    // Same created_at for all (the clock does not move), so ties break by id.
    let mut b2b = Vec::new();
    for i in 0..5 {
        let mut c = person(&format!("Tied{i}"), "Person");
        c["tags"] = json!(["b2b"]);
        b2b.push(env.make_id(Entity::Contact, c).await?);
        env.make(Entity::Contact, person(&format!("Other{i}"), "Person"))
            .await?;
    }
    let all = env
        .list_all(
            &env.admin,
            Entity::Contact,
            &[("tags", "b2b"), ("limit", "2")],
        )
        .await?;
    let ids: Vec<Uuid> = all.iter().map(RecordView::id).collect();
    assert_eq!(
        sorted(ids.clone()),
        sorted(b2b),
        "every tagged contact, once"
    );
    let mut desc = ids.clone();
    desc.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        ids, desc,
        "equal created_at: ordered by id, descending like the sort"
    );
    Ok(())
}

#[tokio::test]
async fn deals_sort_by_amount_ascending_across_pages() -> TestResult {
    let env = Env::new().await?;
    let amounts = [
        "300.00", "5.50", "120.00", "120.00", "9999.99", "0.01", "120.00",
    ];
    let mut deals = Vec::new();
    for (i, a) in amounts.iter().enumerate() {
        let id = env
            .make_id(
                Entity::Deal,
                json!({"title": format!("Deal {i}"), "stage": "lead", "amount": a}),
            )
            .await?;
        let cents: i64 = a.replace('.', "").parse()?;
        deals.push((cents, id));
    }
    deals.sort();
    let expected: Vec<Uuid> = deals.iter().map(|(_, id)| *id).collect();
    let got: Vec<Uuid> = env
        .list_all(
            &env.admin,
            Entity::Deal,
            &[("sort", "amount"), ("limit", "2")],
        )
        .await?
        .iter()
        .map(RecordView::id)
        .collect();
    assert_eq!(got, expected);
    Ok(())
}

#[tokio::test]
async fn truncated_blind_indexes_never_return_a_wrong_match() -> TestResult {
    // expected_rows = 1 gives the shortest index (8 bits, 256 values): with 300
    // distinct emails some must share an index value, so the service has to
    // confirm each candidate on the opened value.
    let config = custos_service::Config {
        expected_rows: 1,
        ..Default::default()
    };
    let env = Env::with_config(custos_testkit::test_store().await, config).await?;
    assert_eq!(env.custos.key_status().blind_index_bits, 8);
    let mut ids = Vec::new();
    for i in 0..300 {
        let c = json!({"first_name": format!("N{i}"), "last_name": format!("Surname{i}"), "email": format!("person{i}@example.com")});
        ids.push(env.make_id(Entity::Contact, c).await?);
    }
    for (i, id) in ids.iter().enumerate() {
        let email = format!("PERSON{i}@example.com");
        assert_eq!(
            env.find(Entity::Contact, &[("email", &email), ("limit", "1")])
                .await?,
            vec![*id],
            "{email}"
        );
    }
    for i in [0, 17, 299] {
        let q = format!("surname{i}");
        assert_eq!(
            env.find(Entity::Contact, &[("q", &q)]).await?,
            vec![ids[i]],
            "{q}"
        );
    }
    assert!(
        env.find(Entity::Contact, &[("email", "person300@example.com")])
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn name_search_folds_case_beyond_ascii() -> TestResult {
    let env = Env::new().await?;
    let zoe = env
        .make_id(Entity::Contact, person("Zoë", "Ångström"))
        .await?;
    assert_eq!(env.find(Entity::Contact, &[("q", "ZOË")]).await?, vec![zoe]);
    assert_eq!(
        env.find(Entity::Contact, &[("q", "ångström")]).await?,
        vec![zoe]
    );
    Ok(())
}

#[tokio::test]
async fn company_search_folds_case_beyond_ascii() -> TestResult {
    let env = Env::new().await?;
    let company = env
        .make_id(Entity::Company, company("ÉLECTRICITÉ Zürich SA"))
        .await?;
    let mut c = person("Ada", "Lovelace");
    c["company_id"] = json!(company.to_string());
    let ada = env.make_id(Entity::Contact, c).await?;
    assert_eq!(
        env.find(Entity::Company, &[("q", "électricité")]).await?,
        vec![company]
    );
    assert_eq!(
        env.find(Entity::Company, &[("q", "ZÜRICH")]).await?,
        vec![company]
    );
    assert_eq!(
        env.find(Entity::Contact, &[("q", "électricité")]).await?,
        vec![ada]
    );
    assert_eq!(
        env.find(Entity::Contact, &[("q", "ZÜRICH")]).await?,
        vec![ada]
    );
    Ok(())
}

/// A list's total is exact up to the counting limit and only "more than" it
/// past it; a filter that matches fewer is counted exactly, and both counts
/// are audited.
#[tokio::test]
async fn a_list_is_counted_exactly_up_to_the_limit_and_no_further() -> TestResult {
    use custos_service::{COUNT_LIMIT, ListSize};
    let env = Env::new().await?;
    let rows: Vec<Vec<String>> = (0..=COUNT_LIMIT)
        .map(|i| vec![format!("Firm {i:05}"), format!("firm{i}.example")])
        .collect();
    let headers = vec!["name".to_string(), "domain".to_string()];
    let report = env
        .custos
        .import(
            &env.admin,
            Entity::Company,
            &headers,
            &rows,
            false,
            |_, _, _| {},
        )
        .await?;
    assert_eq!(report.imported, COUNT_LIMIT + 1);
    let start = env.ledger_size().await?;
    let all = ListParams::parse(Entity::Company, &[])?;
    assert_eq!(
        env.custos.count(&env.admin, Entity::Company, &all).await?,
        Some(ListSize::MoreThan(COUNT_LIMIT))
    );
    let one = ListParams::parse(
        Entity::Company,
        &[("domain".to_string(), "firm7.example".to_string())],
    )?;
    assert_eq!(
        env.custos.count(&env.admin, Entity::Company, &one).await?,
        Some(ListSize::Exactly(1))
    );
    let details: Vec<String> = env
        .events_since(start)
        .await?
        .iter()
        .filter(|e| e.event.action == "company.count")
        .map(|e| e.event.detail.clone().unwrap_or_default())
        .collect();
    assert!(
        details[0].contains(&format!("count={COUNT_LIMIT}+")),
        "{details:?}"
    );
    assert!(details[1].ends_with("count=1"), "{details:?}");
    Ok(())
}
