//! The web UI over plain HTTP (no browser): every page answers a signed-in user
//! and sends the strict CSP, signed-out users go to the sign-in page, forms
//! without the session's CSRF token change nothing, and roles see only the
//! actions they may take.

#![allow(clippy::unwrap_used)]

mod common;

use custos_domain::Role;
use custos_testkit::TestServer;
use serde_json::{Value, json};

/// Signs a new user with `role` in through the sign-in form; returns the
/// cookie-keeping client and the session's CSRF token.
async fn sign_in(s: &TestServer, role: Role) -> (reqwest::Client, String) {
    common::ui::sign_in_new(s, role).await
}

async fn api_post(s: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let r = s
        .client()
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn api_count(s: &TestServer, token: &str, path: &str) -> usize {
    let r: Value = s
        .client()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["items"].as_array().unwrap().len()
}

struct Seed {
    company: String,
    contact: String,
    deal: String,
    activity: String,
    order: String,
}

async fn seed(s: &TestServer, token: &str) -> Seed {
    let company = api_post(
        s,
        token,
        "/api/v1/companies",
        json!({"name": "Analytical Engines Ltd", "domain": "engines.example"}),
    )
    .await;
    let company = company["id"].as_str().unwrap().to_string();
    let contact = api_post(s, token, "/api/v1/contacts", json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@engines.example", "phone": "+44 20 7946 0001", "company_id": company, "tags": ["vip"]})).await;
    let contact = contact["id"].as_str().unwrap().to_string();
    let deal = api_post(s, token, "/api/v1/deals", json!({"title": "Difference engine", "stage": "proposal", "amount": "12500.00", "currency": "GBP", "company_id": company, "contact_id": contact})).await;
    let activity = api_post(s, token, "/api/v1/activities", json!({"contact_id": contact, "kind": "task", "body": "Send the notes on Bernoulli numbers", "occurred_at": "2026-01-31T09:00:00Z", "due_at": "2026-02-02T09:00:00Z", "done": false})).await;
    let order = api_post(s, token, "/api/v1/orders", json!({"contact_id": contact, "status": "paid", "total": "99.90", "currency": "GBP", "placed_at": "2026-01-30T10:00:00Z"})).await;
    Seed {
        company,
        contact,
        deal: deal["id"].as_str().unwrap().to_string(),
        activity: activity["id"].as_str().unwrap().to_string(),
        order: order["id"].as_str().unwrap().to_string(),
    }
}

fn pages(seed: &Seed) -> Vec<String> {
    let mut out = vec![
        "/app".to_string(),
        "/app/deals/board".into(),
        "/app/search".into(),
    ];
    for (plural, id) in [
        ("contacts", &seed.contact),
        ("companies", &seed.company),
        ("deals", &seed.deal),
        ("activities", &seed.activity),
        ("orders", &seed.order),
    ] {
        out.push(format!("/app/{plural}"));
        out.push(format!("/app/{plural}/new"));
        out.push(format!("/app/{plural}/{id}"));
        out.push(format!("/app/{plural}/{id}/edit"));
        out.push(format!("/app/{plural}/{id}/delete"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_signed_in_users_with_the_csp_and_sends_others_to_sign_in() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let seed = seed(&s, &admin).await;
    let (b, _) = sign_in(&s, Role::Admin).await;
    for path in pages(&seed) {
        let r = b.get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-security-policy"].to_str().unwrap(),
            custos_web::security::CSP,
            "{path}"
        );
        let html = r.text().await.unwrap();
        for bad in [
            "style=\"",
            "onclick=",
            "<script>",
            "src=\"http",
            "href=\"http",
            "<style",
        ] {
            assert!(!html.contains(bad), "{path} contains {bad}");
        }
        for landmark in ["<header", "<nav", "<main"] {
            assert!(html.contains(landmark), "{path} lacks {landmark}");
        }
        let anon = s.browser().get(s.url(&path)).send().await.unwrap();
        assert_eq!(anon.status(), 303, "{path} signed out");
        assert_eq!(anon.headers()["location"], "/", "{path} signed out");
    }
    // The contact's page shows its company, deals, activities, orders and timeline.
    let html = b
        .get(s.url(&format!("/app/contacts/{}", seed.contact)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for part in [
        "Analytical Engines Ltd",
        "Difference engine",
        "Bernoulli",
        "Timeline",
        "Order placed",
        "Log an activity",
        "Add an order",
    ] {
        assert!(html.contains(part), "contact page lacks {part}");
    }
    // The dashboard's tiles link to their lists and carry charts with titles.
    let html = b
        .get(s.url("/app"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for part in [
        "Pipeline by stage",
        "Won this month",
        "Activities due",
        "Recent activity",
        "<svg",
        "<title",
        "/app/deals/board",
        "/app/activities",
    ] {
        assert!(html.contains(part), "dashboard lacks {part}");
    }
    // The open deal's value and the overdue task are counted and shown.
    assert!(html.contains("12,500.00 GBP"), "open pipeline value");
    assert!(
        html.contains("1 task is overdue"),
        "the seeded task is past due"
    );
    assert!(
        html.contains("Send the notes on Bernoulli numbers"),
        "due tasks are listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_session_token_or_from_another_site_change_nothing() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let seed = seed(&s, &admin).await;
    let (b, csrf) = sign_in(&s, Role::Admin).await;
    let before = api_count(&s, &admin, "/api/v1/contacts").await;
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/app/contacts/new".into(),
            vec![("first_name", "Mallory"), ("last_name", "Forger")],
        ),
        (
            format!("/app/contacts/{}/edit", seed.contact),
            vec![("first_name", "Forged"), ("last_name", "Name")],
        ),
        (format!("/app/deals/{}/delete", seed.deal), vec![]),
        (
            format!("/app/deals/{}/stage", seed.deal),
            vec![("stage", "won")],
        ),
        ("/app/search".into(), vec![("q", "ada@engines.example")]),
        (
            "/app/contacts/find".into(),
            vec![("email", "ada@engines.example")],
        ),
    ];
    for (path, fields) in &posts {
        for token in ["", "forged"] {
            let mut form = fields.clone();
            if !token.is_empty() {
                form.push(("csrf", token));
            }
            let r = b.post(s.url(path)).form(&form).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path} with token {token:?}");
        }
        // The right token from another site is refused too.
        let mut form = fields.clone();
        form.push(("csrf", csrf.as_str()));
        let r = b
            .post(s.url(path))
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} cross-site");
    }
    assert_eq!(api_count(&s, &admin, "/api/v1/contacts").await, before);
    let deal: Value = s
        .client()
        .get(s.url(&format!("/api/v1/deals/{}", seed.deal)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deal["stage"], "proposal", "the deal was not moved");
    let contact: Value = s
        .client()
        .get(s.url(&format!("/api/v1/contacts/{}", seed.contact)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contact["first_name"], "Ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_see_only_their_actions_and_masked_fields_say_why() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let seed = seed(&s, &admin).await;

    let (support, csrf) = sign_in(&s, Role::Support).await;
    let html = support
        .get(s.url("/app/contacts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("New contact"),
        "support may not create contacts"
    );
    let html = support
        .get(s.url(&format!("/app/contacts/{}", seed.contact)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(">Edit<") && !html.contains(">Delete<"));
    assert!(html.contains("Log an activity"), "support logs activities");
    assert!(!html.contains("Add an order"));
    let before = api_count(&s, &admin, "/api/v1/contacts").await;
    let r = support
        .post(s.url("/app/contacts/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("first_name", "Eve"),
            ("last_name", "Sneaky"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Not allowed"));
    assert_eq!(api_count(&s, &admin, "/api/v1/contacts").await, before);
    let r = support
        .get(s.url("/app/contacts/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The auditor sees no personal data: names and emails are masked with a reason.
    let (auditor, _) = sign_in(&s, Role::Auditor).await;
    let html = auditor
        .get(s.url(&format!("/app/contacts/{}", seed.contact)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Lovelace") && !html.contains("ada@engines.example"));
    assert!(html.contains("Hidden: the Auditor role may not see contact details data."));
    assert!(html.contains("class=\"lock\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_form_keeps_its_values_and_names_the_field_and_flashes_survive_one_redirect() {
    let s = TestServer::start().await;
    let (b, csrf) = sign_in(&s, Role::Sales).await;
    let r = b
        .post(s.url("/app/contacts/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("email", "not-an-email"),
            ("tags", "navy, cobol"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"error-summary\""));
    assert!(
        html.contains("href=\"#f-email\""),
        "the summary links to the field"
    );
    assert!(
        html.contains("id=\"e-email\""),
        "the error sits next to the field"
    );
    assert!(
        html.contains("value=\"Grace\"")
            && html.contains("value=\"not-an-email\"")
            && html.contains("value=\"navy, cobol\"")
    );

    let r = b
        .post(s.url("/app/contacts/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("email", "grace@navy.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/app/contacts/"));
    assert!(!location.contains("grace"), "no personal data in URLs");
    let html = b
        .get(s.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Contact created."));
    assert!(html.contains("aria-live=\"polite\""));
    let html = b
        .get(s.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Contact created."), "a flash shows once");

    // The global search finds her by exact email, posted rather than put in a URL.
    let r = b
        .post(s.url("/app/search"))
        .form(&[("csrf", csrf.as_str()), ("q", "GRACE@navy.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Grace Hopper") && html.contains("exact email"));
}

/// Past 10,000 records a list's total is not counted to the end: the page
/// says "more than 10,000" (and a list with fewer says the exact number,
/// with thousands separators).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_says_more_than_ten_thousand() {
    let s = TestServer::start().await;
    let headers = vec!["name".to_string()];
    let rows: Vec<Vec<String>> = (0..=10_000).map(|i| vec![format!("Firm {i:05}")]).collect();
    let cli = custos_service::Principal::cli();
    let report = s
        .custos
        .import(
            &cli,
            custos_domain::Entity::Company,
            &headers,
            &rows,
            false,
            |_, _, _| {},
        )
        .await
        .unwrap();
    assert_eq!(report.imported, 10_001);
    let (b, _) = sign_in(&s, Role::Manager).await;
    let page = |path: &'static str| {
        let b = b.clone();
        let url = s.url(path);
        async move { b.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let html = page("/app/companies").await;
    assert!(
        html.contains("Showing 1–25 of more than 10,000 companies"),
        "{html}"
    );
    let html = page("/app/companies?name=Firm%2001234").await;
    assert!(html.contains("Showing 1 of 1 company"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_forward_and_back_with_counts_and_sort_by_column() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    for i in 0..30 {
        api_post(
            &s,
            &admin,
            "/api/v1/companies",
            json!({"name": format!("Company {i:02}")}),
        )
        .await;
    }
    let (b, _) = sign_in(&s, Role::Manager).await;
    let html = b
        .get(s.url("/app/companies?sort=name"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Showing 1–25 of 30 companies"), "{html}");
    assert!(html.contains("aria-sort=\"ascending\""));
    assert!(html.contains(">Company 00<") && !html.contains(">Company 25<"));
    let next = link(&html, "rel=\"next\"");
    let html = b
        .get(s.url(&next))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Showing 26–30 of 30 companies"), "{html}");
    assert!(html.contains(">Company 25<") && !html.contains(">Company 00<"));
    assert!(!html.contains("rel=\"next\""));
    let prev = link(&html, "rel=\"prev\"");
    let html = b
        .get(s.url(&prev))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Showing 1–25 of 30 companies"));
    assert!(html.contains(">Company 00<"));

    // Empty state: says what the page is for and offers the first action.
    let html = b
        .get(s.url("/app/orders"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("No orders yet") && html.contains("Add the first order"));
    // A filter that matches nothing says so.
    let html = b
        .get(s.url("/app/companies?q=zzz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("No companies match these filters"));
}

/// A rare filter on a long list: the page stops where one request stops
/// reading, says so, and "Search further" goes on; the numbers count what
/// was shown, and Previous comes back to the same records.
#[tokio::test]
async fn a_rare_filter_searches_further_page_by_page() {
    let s = TestServer::start_with(custos_service::Config {
        // 5 windows of 3: a request reads 15 companies at most.
        list_window: 3,
        ..custos_testkit::password_only()
    })
    .await;
    let admin = s.token_for(Role::Admin).await;
    // Oldest first: "Rare 1" among the first 15 read, "Rare 2" and
    // "Rare 3" beyond the next 15.
    for i in 0..45 {
        let name = match i {
            2 => "Rare 1".to_string(),
            35 => "Rare 2".to_string(),
            40 => "Rare 3".to_string(),
            _ => format!("Company {i:02}"),
        };
        api_post(&s, &admin, "/api/v1/companies", json!({"name": name})).await;
    }
    let (b, _) = sign_in(&s, Role::Manager).await;
    let get = |path: String| {
        let b = b.clone();
        let url = s.url(&path);
        async move { b.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let html = get("/app/companies?q=rare&sort=created_at".into()).await;
    assert!(
        html.contains(">Rare 1<") && !html.contains(">Rare 2<"),
        "{html}"
    );
    assert!(
        html.contains("Showing 1–1 companies: this filter matches few"),
        "{html}"
    );
    assert!(html.contains("Search further →"), "{html}");
    // Companies 15 to 29: no match in this part of the list.
    let html = get(link(&html, "rel=\"next\"")).await;
    assert!(
        html.contains("No companies found in this part of the list"),
        "{html}"
    );
    let html = get(link(&html, "rel=\"next\"")).await;
    assert!(
        html.contains(">Rare 2<") && html.contains(">Rare 3<"),
        "{html}"
    );
    assert!(html.contains("Showing 2–3 companies"), "{html}");
    assert!(!html.contains("rel=\"next\""), "the list ends here");
    // Back through the empty part to the first page.
    let html = get(link(&html, "rel=\"prev\"")).await;
    assert!(html.contains("No companies found in this part"), "{html}");
    let html = get(link(&html, "rel=\"prev\"")).await;
    assert!(
        html.contains(">Rare 1<") && html.contains("Showing 1–1"),
        "{html}"
    );
    // A count in the address that would overflow is only a number shown.
    let r = b
        .get(s.url("/app/companies?q=rare&sort=created_at&shown=18446744073709551615"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(">Rare 1<"));
}

fn link(html: &str, marker: &str) -> String {
    let at = html.find(marker).expect("link");
    let start = html[..at].rfind("href=\"").unwrap() + 6;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// A create form carries its idempotency key: sent twice (Back, then Create
/// again), it creates one record and both answers go to it; a new form
/// creates another; an edit form has no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_form_sent_twice_creates_one_record() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let (b, csrf) = sign_in(&s, Role::Sales).await;
    let form_id = |html: &str| {
        let m = "name=\"form_id\" value=\"";
        let at = html.find(m).expect("a form_id field") + m.len();
        html[at..at + 36].to_string()
    };
    for (path, fields) in [
        (
            "/app/contacts/new",
            vec![("first_name", "Twice"), ("last_name", "Sent")],
        ),
        ("/app/companies/new", vec![("name", "Twice Sent Ltd")]),
    ] {
        let plural = path.trim_start_matches("/app/").trim_end_matches("/new");
        let before = api_count(&s, &admin, &format!("/api/v1/{plural}")).await;
        let html = b
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let key = form_id(&html);
        let mut form = vec![("csrf", csrf.as_str()), ("form_id", key.as_str())];
        form.extend(fields.iter().copied());
        let first = b.post(s.url(path)).form(&form).send().await.unwrap();
        assert_eq!(first.status(), 303, "{path}");
        let second = b.post(s.url(path)).form(&form).send().await.unwrap();
        assert_eq!(second.status(), 303, "{path}");
        assert_eq!(
            first.headers()["location"],
            second.headers()["location"],
            "{path}: both go to the one record"
        );
        let after = api_count(&s, &admin, &format!("/api/v1/{plural}")).await;
        assert_eq!(after, before + 1, "{path}: one record for two sendings");
        let html = b
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let other = form_id(&html);
        assert_ne!(other, key);
        let mut form = vec![("csrf", csrf.as_str()), ("form_id", other.as_str())];
        form.extend(fields.iter().copied());
        let r = b.post(s.url(path)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let after2 = api_count(&s, &admin, &format!("/api/v1/{plural}")).await;
        assert_eq!(after2, before + 2, "{path}: a new form makes a new record");
        let edit = format!(
            "{}/edit",
            r.headers()["location"]
                .to_str()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
        );
        let html = b
            .get(s.url(&edit))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("name=\"form_id\""), "{edit}");
    }
}

/// Every sort link a list offers works for the role that sees it: a role
/// that may not read amounts (the auditor) is offered no sort by amount or
/// total, and no list heading leads anyone to a "Not allowed" page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_offer_only_the_sort_links_a_role_may_follow() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    seed(&s, &admin).await;
    for role in [Role::Auditor, Role::Support, Role::Sales, Role::Manager] {
        let (b, _) = sign_in(&s, role).await;
        for (list, money) in [("/app/deals", "amount"), ("/app/orders", "total")] {
            let html = b
                .get(s.url(list))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let links: Vec<String> = html
                .split("href=\"")
                .skip(1)
                .filter_map(|h| h.split('"').next())
                .filter(|h| h.contains("sort="))
                .map(|h| h.replace("&amp;", "&").replace("&#47;", "/"))
                .collect();
            assert!(!links.is_empty(), "{role:?} {list}: some column sorts");
            let by_money = links.iter().any(|h| {
                h.contains(&format!("sort={money}")) || h.contains(&format!("sort=-{money}"))
            });
            let may_read_money = !matches!(role, Role::Auditor);
            assert_eq!(by_money, may_read_money, "{role:?} {list}: sort by {money}");
            for link in &links {
                let r = b.get(s.url(link)).send().await.unwrap();
                assert_eq!(r.status(), 200, "{role:?} follows {link}");
            }
        }
    }
}
