//! The contact and company pickers of the CRM forms, over plain HTTP with
//! 2,000 contacts: an edit form changes only the fields the user changed
//! (an old deal keeps its contact, another user's change in the meantime
//! stays); without scripts a picker's Find button finds any contact by
//! name, email or phone and any company by name; the typeahead's endpoint
//! answers JSON, needs the session's token and is on the audit record.
//! The typeahead itself is driven in Chromium by `browser.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use custos_domain::Role;
use custos_service::Principal;
use custos_testkit::TestServer;
use serde_json::{Value, json};

async fn api(s: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut r = match method {
        "POST" => s.client().post(s.url(path)),
        "PATCH" => s.client().patch(s.url(path)),
        _ => s.client().get(s.url(path)),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    r.json().await.unwrap()
}

/// Undoes the template's HTML escaping of an attribute or text.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#47;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let m = format!(" {name}=\"");
    let at = tag.find(&m)? + m.len();
    let end = tag[at..].find('"')? + at;
    Some(unescape(&tag[at..end]))
}

fn has_flag(tag: &str, name: &str) -> bool {
    let tag = tag.trim_end_matches('>');
    tag.ends_with(&format!(" {name}")) || tag.contains(&format!(" {name} "))
}

/// What a browser sends when the form posting to `action` is submitted by
/// its main button: every named input (checkboxes and radios only when
/// checked, no buttons), the selected option of each select (or its first),
/// each textarea's text.
fn form_pairs(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action}"));
    let end = html[start..].find("</form>").unwrap() + start;
    let form = &html[start..end];
    let mut out = Vec::new();
    let mut rest = form;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        let close = rest.find('>').unwrap();
        let tag = &rest[..=close];
        let after = &rest[close + 1..];
        if tag.starts_with("<input") {
            let kind = attr(tag, "type").unwrap_or_else(|| "text".into());
            if let Some(name) = attr(tag, "name") {
                let value = attr(tag, "value").unwrap_or_default();
                match kind.as_str() {
                    "checkbox" | "radio" if !has_flag(tag, "checked") => {}
                    "submit" | "button" => {}
                    "checkbox" if value.is_empty() => out.push((name, "on".into())),
                    _ => out.push((name, value)),
                }
            }
        } else if tag.starts_with("<textarea") {
            let name = attr(tag, "name").unwrap();
            let text_end = after.find("</textarea>").unwrap();
            out.push((name, unescape(&after[..text_end])));
        } else if tag.starts_with("<select") {
            let name = attr(tag, "name").unwrap();
            let body = &after[..after.find("</select>").unwrap()];
            let options: Vec<&str> = body.split("<option").skip(1).collect();
            let chosen = options
                .iter()
                .find(|o| has_flag(o.split('>').next().unwrap_or_default(), "selected"))
                .or(options.first())
                .map(|o| attr(o, "value").unwrap_or_default())
                .unwrap_or_default();
            out.push((name, chosen));
        }
        rest = after;
    }
    out
}

fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    pairs.retain(|(k, _)| k != name);
    pairs.push((name.to_string(), value.to_string()));
}

/// Presses picker `field`'s Find button with `q` typed in its box: the new
/// deal form comes back (200) with the matches.
async fn find(
    b: &reqwest::Client,
    s: &TestServer,
    mut form: Vec<(String, String)>,
    field: &str,
    q: &str,
) -> String {
    set(&mut form, &format!("find.{field}"), q);
    set(&mut form, "find", field);
    let r = b
        .post(s.url("/app/deals/new"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{field}: {q}");
    r.text().await.unwrap()
}

struct World {
    s: TestServer,
    admin: String,
    company: String,
    zebedee: String,
    deal: String,
}

/// A company and a contact made first, a deal linking them, then 2,000
/// newer contacts (with their companies and deals) from `custos seed`.
async fn world() -> World {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let company = api(
        &s,
        &admin,
        "POST",
        "/api/v1/companies",
        Some(json!({"name": "Quirk Instruments", "domain": "quirk.example"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let zebedee = api(
        &s,
        &admin,
        "POST",
        "/api/v1/contacts",
        Some(json!({"first_name": "Zebedee", "last_name": "Quirk",
            "email": "zebedee@quirk.example", "phone": "+44 20 7946 0999",
            "company_id": company})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deal = api(
        &s,
        &admin,
        "POST",
        "/api/v1/deals",
        Some(
            json!({"title": "Brass sextants", "amount": "1200.00", "currency": "GBP",
            "company_id": company, "contact_id": zebedee}),
        ),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = s
        .custos
        .seed(&Principal::cli(), 2000, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.contacts, 2000);
    World {
        s,
        admin,
        company,
        zebedee,
        deal,
    }
}

async fn page(b: &reqwest::Client, s: &TestServer, path: &str) -> String {
    let r = b.get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// Editing an old deal (its contact far older than the newest 200) and
/// changing only its title keeps its contact and company; a change another
/// user made to its amount while the form was open is not overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_an_old_deal_changes_only_what_was_changed() {
    let w = world().await;
    let s = &w.s;
    let (b, _) = common::ui::sign_in_new(s, Role::Sales).await;
    let edit = format!("/app/deals/{}/edit", w.deal);
    let html = page(&b, s, &edit).await;
    assert!(
        html.contains("Chosen: <strong>Zebedee Quirk</strong>"),
        "the form names the deal's contact"
    );
    assert!(html.contains("Chosen: <strong>Quirk Instruments</strong>"));
    let mut form = form_pairs(&html, &edit);
    set(&mut form, "title", "Brass sextants, renewed");
    // Meanwhile someone else changes the amount.
    api(
        s,
        &w.admin,
        "PATCH",
        &format!("/api/v1/deals/{}", w.deal),
        Some(json!({"amount": "1500.00"})),
    )
    .await;
    let r = b.post(s.url(&edit)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let deal = api(
        s,
        &w.admin,
        "GET",
        &format!("/api/v1/deals/{}", w.deal),
        None,
    )
    .await;
    assert_eq!(deal["title"], "Brass sextants, renewed");
    assert_eq!(deal["contact_id"], w.zebedee.as_str(), "{deal}");
    assert_eq!(deal["company_id"], w.company.as_str(), "{deal}");
    assert_eq!(deal["amount"], "1500.00", "the other change stays: {deal}");

    // Emptying a field on purpose still clears it.
    let html = page(&b, s, &edit).await;
    let mut form = form_pairs(&html, &edit);
    set(&mut form, "close_date", "2027-03-31");
    let r = b.post(s.url(&edit)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let html = page(&b, s, &edit).await;
    let mut form = form_pairs(&html, &edit);
    set(&mut form, "close_date", "");
    let r = b.post(s.url(&edit)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let deal = api(
        s,
        &w.admin,
        "GET",
        &format!("/api/v1/deals/{}", w.deal),
        None,
    )
    .await;
    assert!(deal["close_date"].is_null(), "{deal}");
    assert_eq!(deal["contact_id"], w.zebedee.as_str());
}

/// Without scripts, the Find button brings the form back with what was
/// typed kept and the matches as radio buttons, saving nothing; it finds
/// the oldest of 2,001 contacts by name, by email (any case) and by phone,
/// and a company by part of its name; choosing one and creating saves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scripts_the_find_button_finds_any_contact_or_company() {
    let w = world().await;
    let s = &w.s;
    let (b, _) = common::ui::sign_in_new(s, Role::Sales).await;
    let deals_before = api(s, &w.admin, "GET", "/api/v1/deals?q=Telescope", None).await["items"]
        .as_array()
        .unwrap()
        .len();
    let html = page(&b, s, "/app/deals/new").await;
    assert!(!html.contains("<select id=\"f-contact_id\""), "no dropdown");
    let blank = form_pairs(&html, "/app/deals/new");
    let radio = format!("name=\"contact_id\" value=\"{}\"", w.zebedee);
    for q in [
        "Zebedee",
        "quirk",
        "ZEBEDEE@Quirk.example",
        "+44 20 7946 0999",
        "+442079460999",
    ] {
        let mut form = blank.clone();
        set(&mut form, "title", "Telescope lenses");
        let html = find(&b, s, form, "contact_id", q).await;
        assert!(html.contains(&radio), "{q}: Zebedee among the matches");
        assert!(
            html.contains("value=\"Telescope lenses\""),
            "{q}: title kept"
        );
        assert!(
            html.contains(&format!("value=\"{q}\"")),
            "{q}: the search box keeps what was typed"
        );
    }
    let after_search = api(s, &w.admin, "GET", "/api/v1/deals?q=Telescope", None).await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after_search, deals_before, "a search saves nothing");

    // Nothing found says so.
    let html = find(&b, s, blank.clone(), "contact_id", "Nobodyatall").await;
    assert!(
        html.contains("No contact matches"),
        "an empty result says so"
    );

    // Choose Zebedee by email, then the company by name, then create.
    let mut form = blank.clone();
    set(&mut form, "title", "Telescope lenses");
    set(&mut form, "amount", "300.00");
    set(&mut form, "currency", "GBP");
    let html = find(&b, s, form, "contact_id", "zebedee@quirk.example").await;
    let form = form_pairs(&html, "/app/deals/new");
    assert!(
        form.contains(&("contact_id".to_string(), w.zebedee.clone())),
        "the only match is chosen: {form:?}"
    );
    let html = find(&b, s, form, "company_id", "Instruments").await;
    assert!(
        html.contains(&format!("name=\"company_id\" value=\"{}\"", w.company)),
        "the company is found by part of its name"
    );
    assert!(
        html.contains("Chosen: <strong>Zebedee Quirk</strong>"),
        "the contact chosen before is kept"
    );
    let mut form = form_pairs(&html, "/app/deals/new");
    set(&mut form, "company_id", &w.company);
    let r = b
        .post(s.url("/app/deals/new"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let id = r.headers()["location"]
        .to_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let deal = api(s, &w.admin, "GET", &format!("/api/v1/deals/{id}"), None).await;
    assert_eq!(deal["title"], "Telescope lenses");
    assert_eq!(deal["contact_id"], w.zebedee.as_str());
    assert_eq!(deal["company_id"], w.company.as_str());
}

/// The typeahead's endpoint: JSON matches for a signed-in user with the
/// session's token; without the token nothing; each search is a list on
/// the audit record, with the user as actor and the match as subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typeahead_endpoint_answers_json_and_is_audited() {
    let w = world().await;
    let s = &w.s;
    let email = "sam.sales@staff.example";
    let token = s.token_for_email(Role::Sales, email).await;
    let me = api(s, &token, "GET", "/api/v1/me", None).await;
    let me = me["id"].as_str().unwrap().to_string();
    let (b, csrf) = common::ui::sign_in_existing(s, email).await;

    let r = b
        .post(s.url("/app/pick/contacts"))
        .form(&[("q", "zebedee@quirk.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no token, no search");

    let audited = |s: &TestServer| {
        let path = format!(
            "/api/v1/audit/events?subject_id={}&action=contact.list&actor_id={me}",
            w.zebedee
        );
        let admin = w.admin.clone();
        let url = s.url(&path);
        let client = s.client().clone();
        async move {
            let v: Value = client
                .get(url)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["events"].as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(audited(s).await, 0);

    for q in ["zebedee@quirk.example", "Zebedee", "+44 20 7946 0999"] {
        let r = b
            .post(s.url("/app/pick/contacts"))
            .form(&[("csrf", csrf.as_str()), ("q", q)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v: Value = r.json().await.unwrap();
        let items = v["items"].as_array().unwrap();
        let hit = items
            .iter()
            .find(|i| i["id"] == w.zebedee.as_str())
            .unwrap_or_else(|| panic!("{q}: {v}"));
        assert_eq!(hit["name"], "Zebedee Quirk");
        assert_eq!(hit["detail"], "zebedee@quirk.example");
    }
    let v: Value = b
        .post(s.url("/app/pick/companies"))
        .form(&[("csrf", csrf.as_str()), ("q", "quirk")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == w.company.as_str() && i["detail"] == "quirk.example"),
        "{v}"
    );
    // Every search is on the record (the leaves land by group commit).
    let mut seen = 0;
    for _ in 0..50 {
        seen = audited(s).await;
        if seen >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 3, "each of the three searches is audited");

    let r = b
        .post(s.url("/app/pick/users"))
        .form(&[("csrf", csrf.as_str()), ("q", "a")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "only contacts and companies are picked");
    let r = b
        .post(s.url("/app/pick/contacts"))
        .form(&[("csrf", csrf.as_str()), ("q", "x".repeat(201).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "an overlong search is refused");
}
