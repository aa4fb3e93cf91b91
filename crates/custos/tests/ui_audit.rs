//! The auditor's view of the ledger over plain HTTP (no browser): the pages
//! answer the roles that read the ledger with the strict CSP and refuse the
//! others (and the refusal is on record); search filters and keyset paging
//! work; contact pages show "who accessed this contact" to the auditor and not
//! to sales; and the CSV export verifies offline: its checkpoint under the key
//! it carries, then every leaf's inclusion proof against that checkpoint.

#![allow(clippy::unwrap_used)]

mod common;

use common::ui::hidden_csrf;
use custos_domain::Role;
use custos_ledger::checkpoint::verify_checkpoint;
use custos_ledger::merkle::verify_inclusion;
use custos_service::{EventFilter, EventQuery, Principal};
use custos_testkit::{PASSWORD, TestServer};
use serde_json::{Value, json};
use std::time::Instant;

/// A signed-in user: their browser (cookies), CSRF token, API token and id.
struct User {
    b: reqwest::Client,
    csrf: String,
    token: String,
    id: String,
}

async fn sign_in(s: &TestServer, role: Role) -> User {
    let email = format!(
        "{}-{}@staff.example",
        role.name(),
        uuid::Uuid::now_v7().simple()
    );
    let token = s.token_for_email(role, &email).await;
    let me: Value = s
        .client()
        .get(s.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap().to_string();
    let b = s.browser();
    let html = b
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pre = hidden_csrf(&html);
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("csrf", pre.as_str()),
            ("email", email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in");
    let html = b
        .get(s.url("/app/contacts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&html);
    User { b, csrf, token, id }
}

async fn get(u: &User, s: &TestServer, path: &str) -> (u16, String) {
    let r = u.b.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn contact(s: &TestServer, token: &str) -> String {
    let r = s
        .client()
        .post(s.url("/api/v1/contacts"))
        .bearer_auth(token)
        .json(
            &json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@engines.example"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn read_contact(s: &TestServer, token: &str, id: &str) {
    let r = s
        .client()
        .get(s.url(&format!("/api/v1/contacts/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Every value of `attr="prefix…"` in the page, after the prefix, up to the quote.
fn links(html: &str, prefix: &str) -> Vec<String> {
    html.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &html[i + prefix.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// The leaf indexes listed in an events table, in page order.
fn listed(html: &str) -> Vec<u64> {
    links(html, "<a href=\"/app/audit/events/")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The target of the link with `rel="…"` (Older is next, Newer is prev).
fn rel_link(html: &str, rel: &str) -> Option<String> {
    let at = html.find(&format!(" rel=\"{rel}\""))?;
    let before = &html[..at];
    let start = before.rfind("href=\"")? + 6;
    Some(
        before[start..]
            .trim_end_matches('"')
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

/// The events section of the search page (after the search form).
fn results(html: &str) -> &str {
    &html[html.find("aria-label=\"Search the ledger\"").unwrap()..]
}

async fn ledger_events(s: &TestServer, filter: EventFilter) -> Vec<custos_service::AuditEntry> {
    s.custos
        .audit_events(&Principal::cli(), &EventQuery { filter, limit: 500 })
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_pages_answer_ledger_readers_with_the_csp_and_refuse_other_roles() {
    let started = Instant::now();
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let c = contact(&s, &admin).await;
    for role in [Role::Admin, Role::Auditor, Role::PrivacyOfficer] {
        let u = sign_in(&s, role).await;
        let pages = [
            "/app/audit".to_string(),
            "/app/audit?hours=48".into(),
            format!("/app/audit?subject={c}"),
            format!("/app/audit?actor={}&action=contact.read", u.id),
            "/app/audit/events/0".into(),
            format!("/app/audit/users/{}", u.id),
            "/app/audit/export".into(),
            format!("/app/audit/export?subject={c}"),
            format!("/app/contacts/{c}"),
        ];
        for path in &pages {
            let r = u.b.get(s.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{role}: {path}");
            assert_eq!(
                r.headers()["content-security-policy"].to_str().unwrap(),
                custos_web::security::CSP,
                "{path}"
            );
            let html = r.text().await.unwrap();
            for bad in [
                "style=\"",
                "onclick=",
                "<script",
                "src=\"http",
                "href=\"http",
                "<style",
            ] {
                assert!(!html.contains(bad), "{role}: {path} contains {bad}");
            }
            if path.starts_with("/app/audit") {
                assert!(!html.contains("ada@engines.example") && !html.contains("Lovelace"));
            }
            for landmark in ["<header", "<nav", "<main", "href=\"/app/audit\""] {
                assert!(html.contains(landmark), "{role}: {path} lacks {landmark}");
            }
            let anon = s.browser().get(s.url(path)).send().await.unwrap();
            assert_eq!(anon.status(), 303, "{path} signed out");
            assert_eq!(anon.headers()["location"], "/", "{path} signed out");
        }
        // The ledger page shows the status, the chart with its words, and events.
        let (_, html) = get(&u, &s, "/app/audit").await;
        for part in [
            "Audit ledger",
            "Signed checkpoints",
            "Root hash",
            "<svg",
            "<title id=\"chart-activity-t\">Ledger events per hour by action, last 24 hours (UTC)</title>",
            "<desc id=\"chart-activity-d\">",
            "Show the figures as a table",
            "contact.create",
            "aria-current=\"page\">Audit ledger</a>",
        ] {
            assert!(html.contains(part), "{role}: the ledger page lacks {part}");
        }
        let (_, html) = get(&u, &s, "/app/audit?hours=48").await;
        assert!(html.contains("last 48 hours (UTC)"));
        // The checkpoint and the key, as text, verify together.
        let note =
            u.b.get(s.url("/app/audit/checkpoint"))
                .send()
                .await
                .unwrap();
        assert_eq!(note.status(), 200);
        assert!(
            note.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let note = note.text().await.unwrap();
        let (_, key) = get(&u, &s, "/app/audit/verifier-key").await;
        let cp = verify_checkpoint(&note, key.trim()).unwrap();
        assert!(cp.size > 0);
    }
    for role in [Role::Sales, Role::Support, Role::Manager] {
        let u = sign_in(&s, role).await;
        let (_, html) = get(&u, &s, "/app/contacts").await;
        assert!(
            !html.contains("href=\"/app/audit\""),
            "{role} sees the ledger in the sidebar"
        );
        for path in [
            "/app/audit".to_string(),
            "/app/audit/events/0".into(),
            format!("/app/audit/users/{}", u.id),
            "/app/audit/export".into(),
            "/app/audit/checkpoint".into(),
            "/app/audit/verifier-key".into(),
        ] {
            let r = u.b.get(s.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 403, "{role}: {path}");
            assert_eq!(
                r.headers()["content-security-policy"].to_str().unwrap(),
                custos_web::security::CSP
            );
            let html = r.text().await.unwrap();
            assert!(html.contains("Not allowed"), "{role}: {path}");
        }
        let r =
            u.b.post(s.url("/app/audit/export"))
                .form(&[("csrf", u.csrf.as_str()), ("first", "0")])
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 403, "{role} exports");
        // Each refusal is on record.
        let refused = ledger_events(
            &s,
            EventFilter {
                actor: Some(format!("user:{}", u.id)),
                action: Some("audit.read".into()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(refused.len(), 7, "{role}: refusals recorded");
        assert!(refused.iter().all(|e| e.event.outcome == "denied"));
    }
    eprintln!(
        "ledger pages for 6 roles in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_by_subject_actor_action_and_time_and_pages_newest_first() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let c1 = contact(&s, &admin).await;
    let c2 = contact(&s, &admin).await;
    let sales = sign_in(&s, Role::Sales).await;
    for _ in 0..3 {
        read_contact(&s, &sales.token, &c1).await;
    }
    read_contact(&s, &sales.token, &c2).await;
    let auditor = sign_in(&s, Role::Auditor).await;

    // By subject: only events about c1, among them the sales reads.
    let (status, html) = get(&auditor, &s, &format!("/app/audit?subject={c1}")).await;
    assert_eq!(status, 200);
    let part = results(&html);
    let subjects = links(part, "class=\"id\" href=\"/app/audit?subject=");
    assert!(subjects.len() >= 4, "create + 3 reads: {subjects:?}");
    assert!(subjects.iter().all(|x| *x == c1), "{subjects:?}");
    assert!(part.contains(&format!("/app/audit/users/{}", sales.id)));

    // By actor (the sales user's id) and action.
    let (_, html) = get(
        &auditor,
        &s,
        &format!("/app/audit?actor={}&action=contact.read", sales.id),
    )
    .await;
    let part = results(&html);
    assert_eq!(listed(part).len(), 4, "the four reads by sales");
    let actions = links(part, "class=\"action\" href=\"/app/audit?action=");
    assert_eq!(actions.len(), 4);
    assert!(actions.iter().all(|a| a == "contact.read"));
    let actors = links(part, "<td data-label=\"Actor\"><a href=\"/app/audit/users/");
    assert!(actors.iter().all(|a| *a == sales.id), "{actors:?}");
    let subjects = links(part, "class=\"id\" href=\"/app/audit?subject=");
    assert_eq!(subjects.iter().filter(|x| **x == c1).count(), 3);
    assert_eq!(subjects.iter().filter(|x| **x == c2).count(), 1);

    // By time: nothing in the future, everything since yesterday.
    let (_, html) = get(&auditor, &s, "/app/audit?from=2999-01-01T00:00").await;
    assert!(results(&html).contains("No events match this search"));
    assert!(listed(results(&html)).is_empty());
    let (_, html) = get(
        &auditor,
        &s,
        &format!(
            "/app/audit?actor={}&from=2000-01-01T00:00&to=2999-01-01T00:00",
            sales.id
        ),
    )
    .await;
    assert!(listed(results(&html)).len() >= 4);

    // Wrong input is named, not run.
    let (status, html) = get(
        &auditor,
        &s,
        "/app/audit?subject=ada@engines.example&from=soon",
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("error-summary") && html.contains("href=\"#filter-subject\""));
    assert!(html.contains("href=\"#filter-from\""));

    // Keyset paging, newest first: 60 more reads fill more than one page.
    for _ in 0..60 {
        read_contact(&s, &sales.token, &c2).await;
    }
    let first = format!("/app/audit?actor={}", sales.id);
    let (_, html) = get(&auditor, &s, &first).await;
    let page1 = listed(results(&html));
    assert_eq!(page1.len(), 50);
    assert!(page1.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(!html.contains("rel=\"prev\""));
    let next = rel_link(&html, "next").expect("an Older link");
    let (_, html) = get(&auditor, &s, &next).await;
    let page2 = listed(results(&html));
    assert!(
        !page2.is_empty() && page2.len() < 50,
        "{next} {page2:?}\n{html}"
    );
    assert!(page2[0] < page1[49], "page 2 is older than page 1");
    let prev = rel_link(&html, "prev").expect("a Newer link back");
    let (_, html) = get(&auditor, &s, &prev).await;
    assert_eq!(listed(results(&html)), page1, "Newer leads back to page 1");
    // Every sales event is on one of the two pages, none twice.
    let all = ledger_events(
        &s,
        EventFilter {
            actor: Some(format!("user:{}", sales.id)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page1.len() + page2.len(), all.len());

    // The user's timeline shows their events, day by day, with links to each.
    let (_, html) = get(&auditor, &s, &format!("/app/audit/users/{}", sales.id)).await;
    assert!(html.contains("User activity") && html.contains(&sales.id));
    let items = links(&html, "class=\"action\" href=\"/app/audit/events/");
    assert_eq!(items.len(), 50);
    assert!(html.contains("<ol class=\"timeline\">"));
    // … and each event's page shows it in full.
    let (status, html) = get(&auditor, &s, &format!("/app/audit/events/{}", items[0])).await;
    assert_eq!(status, 200);
    assert!(html.contains(&sales.id) && html.contains(&c2) && html.contains("Leaf bytes"));
    let (status, _) = get(&auditor, &s, "/app/audit/events/99999999").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_pages_show_who_accessed_to_the_auditor_and_not_to_sales() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let c = contact(&s, &admin).await;
    let sales = sign_in(&s, Role::Sales).await;
    let path = format!("/app/contacts/{c}");
    let (status, html) = get(&sales, &s, &path).await;
    assert_eq!(status, 200);
    assert!(html.contains("Ada Lovelace"));
    assert!(!html.contains("Who accessed this contact"));
    assert!(!html.contains("/app/audit"));
    // Sales was not refused anything: the page did not ask the ledger for them.
    let refused = ledger_events(
        &s,
        EventFilter {
            actor: Some(format!("user:{}", sales.id)),
            action: Some("audit.read".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(refused.is_empty());

    for role in [Role::Auditor, Role::PrivacyOfficer, Role::Admin] {
        let u = sign_in(&s, role).await;
        let (status, html) = get(&u, &s, &path).await;
        assert_eq!(status, 200);
        assert!(html.contains("Who accessed this contact"), "{role}");
        let section = &html[html.find("id=\"who-accessed\"").unwrap()..];
        assert!(section.contains(&format!("href=\"/app/audit?subject={c}\"")));
        assert!(
            section.contains(&format!("/app/audit/users/{}", sales.id)),
            "{role}: the sales visit is listed"
        );
        assert!(section.contains(">You</a>"), "{role}: their own visit too");
        assert!(section.contains("contact.read"), "{section}");
        // The link leads to every event about them, the creation included.
        let (_, all) = get(&u, &s, &format!("/app/audit?subject={c}")).await;
        assert!(results(&all).contains(">contact.create</a>"));
    }
}

fn unhex(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// Checks an export as a third party would: the checkpoint under the key the
/// file carries, then every leaf. Returns the leaf rows' indexes.
fn verify_export(csv_text: &str) -> Result<Vec<u64>, String> {
    let mut rd = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, custos_web::ui::audit::EXPORT_COLUMNS);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let n = rows.len();
    assert!(n >= 3);
    assert_eq!(&rows[n - 2][0], "checkpoint");
    assert_eq!(&rows[n - 1][0], "verifier_key");
    let cp = verify_checkpoint(&rows[n - 2][16], &rows[n - 1][16]).map_err(|e| e.to_string())?;
    let mut indexes = Vec::new();
    for r in &rows[..n - 2] {
        assert_eq!(&r[0], "leaf");
        let index: u64 = r[1].parse().unwrap();
        let size: u64 = r[14].parse().unwrap();
        if size != cp.size {
            return Err(format!(
                "leaf {index}: tree size {size} is not the checkpoint's"
            ));
        }
        let data = r[16].as_bytes();
        let leaf = custos_ledger::leaf_hash(data);
        if leaf != unhex(&r[13]) {
            return Err(format!("leaf {index}: its hash does not match its data"));
        }
        let proof: Vec<[u8; 32]> = r[15].split_whitespace().map(unhex).collect();
        verify_inclusion(&leaf, index, cp.size, &proof, &cp.root)
            .map_err(|e| format!("leaf {index}: {e}"))?;
        // The decoded columns say what the leaf says.
        let ev = custos_ledger::event::AuditEvent::decode(data).unwrap();
        assert_eq!(
            (&r[2], &r[3], &r[4], &r[9]),
            (
                ev.time.as_str(),
                ev.actor.as_str(),
                ev.action.as_str(),
                ev.outcome.as_str()
            )
        );
        assert_eq!(&r[5], ev.subject_id.as_deref().unwrap_or_default());
        indexes.push(index);
    }
    Ok(indexes)
}

async fn export(u: &User, s: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    let mut f = vec![("csrf", u.csrf.as_str())];
    f.extend_from_slice(form);
    u.b.post(s.url("/app/audit/export"))
        .form(&f)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_carries_proofs_that_verify_offline_and_is_itself_audited() {
    let s = TestServer::start().await;
    let admin = s.token_for(Role::Admin).await;
    let c = contact(&s, &admin).await;
    let sales = sign_in(&s, Role::Sales).await;
    for _ in 0..5 {
        read_contact(&s, &sales.token, &c).await;
    }
    let auditor = sign_in(&s, Role::Auditor).await;
    let size = s
        .custos
        .ledger_status(&Principal::cli())
        .await
        .unwrap()
        .size;

    // A range of indexes.
    let r = export(&auditor, &s, &[("first", "2"), ("last", "9")]).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.starts_with("attachment; filename=\"custos-audit-2-9-"));
    let text = r.text().await.unwrap();
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    assert!(!text.contains("ada@engines.example") && !text.contains("Lovelace"));
    assert_eq!(verify_export(&text).unwrap(), (2..=9).collect::<Vec<_>>());
    // The key it carries is the ledger's.
    assert!(text.contains(&s.custos.ledger_verifier_key().unwrap()));

    // The export is on record, with what it held and no personal values.
    let exports = ledger_events(
        &s,
        EventFilter {
            action: Some("audit.export".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(exports.len(), 1);
    let e = &exports[0].event;
    assert_eq!(e.actor, format!("user:{}", auditor.id));
    assert_eq!(e.outcome, "success");
    let detail = e.detail.as_deref().unwrap();
    assert!(detail.contains("count=8 first=2 last=9"), "{detail}");
    assert!(
        exports[0].index >= size,
        "recorded after the events it exports"
    );

    // A search's events: only those about the contact, with a checkpoint
    // that covers everything up to the export.
    let r = export(
        &auditor,
        &s,
        &[("subject", c.as_str()), ("action", "contact.read")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let indexes = verify_export(&text).unwrap();
    assert_eq!(indexes.len(), 5, "the five reads");
    for line in text.lines().skip(1).filter(|l| l.starts_with("leaf,")) {
        assert!(line.contains(&c) && line.contains("contact.read"));
    }

    // One event, from its own page's button.
    let r = export(&auditor, &s, &[("first", "0"), ("last", "0")]).await;
    assert_eq!(verify_export(&r.text().await.unwrap()).unwrap(), vec![0]);

    // A third party notices an edited leaf, a moved leaf and a forged key.
    let edited = text.replacen("contact.read", "contact.list", 2);
    assert!(verify_export(&edited).unwrap_err().contains("hash"));
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let moved = text.replacen(
        &format!("leaf,{},", &rows[0][1]),
        &format!("leaf,{},", rows[0][1].parse::<u64>().unwrap() + 1),
        1,
    );
    assert!(verify_export(&moved).is_err());
    let (other, _) =
        custos_ledger::checkpoint::NoteSigner::generate("custos.local/ledger").unwrap();
    let forged_key = other.verifier_key();
    let n = rows.len();
    let forged = text.replace(&rows[n - 1][16], &forged_key);
    assert!(verify_export(&forged).is_err());

    // The independent Python verifier agrees (with the key given separately).
    if python_with_cryptography() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.csv");
        std::fs::write(&file, &text).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/auditor/verify_export.py"
        );
        let key = s.custos.ledger_verifier_key().unwrap();
        let out = std::process::Command::new("python3")
            .args([script, file.to_str().unwrap(), "--key", &key])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("OK 5 events"), "{stdout}");
        std::fs::write(&file, &edited).unwrap();
        let out = std::process::Command::new("python3")
            .args([script, file.to_str().unwrap(), "--key", &key])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("FAIL"));
        std::fs::write(&file, &forged).unwrap();
        let out = std::process::Command::new("python3")
            .args([script, file.to_str().unwrap(), "--key", &key])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "a file signed by another key is refused"
        );
    } else if std::env::var_os("CI").is_some() {
        panic!("CI must have python3 with the cryptography package");
    } else {
        eprintln!("skipped the Python verifier: python3 with cryptography is not installed");
    }

    // The recipe printed on the export page runs as written (standard library only).
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok()
    {
        let (_, page) = get(&auditor, &s, "/app/audit/export").await;
        let start = page.find("<pre><code>import ").unwrap() + "<pre><code>".len();
        let end = start + page[start..].find("</code></pre>").unwrap();
        let code = page[start..end]
            .replace("&gt;", ">")
            .replace("&lt;", "<")
            .replace("&#38;", "&")
            .replace("&amp;", "&")
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#39;", "'");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("export.csv"), &text).unwrap();
        std::fs::write(dir.path().join("recipe.py"), &code).unwrap();
        let out = std::process::Command::new("python3")
            .arg("recipe.py")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK 5 events");
        std::fs::write(dir.path().join("export.csv"), &edited).unwrap();
        let out = std::process::Command::new("python3")
            .arg("recipe.py")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "the recipe catches an edited leaf");
    }

    // Wrong input is named next to its field; nothing is exported or recorded.
    let before = s
        .custos
        .ledger_status(&Principal::cli())
        .await
        .unwrap()
        .size;
    let r = export(&auditor, &s, &[("first", "9"), ("last", "2")]).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("error-summary") && html.contains("id=\"e-last\""));
    assert!(html.contains("value=\"9\""), "entered values survive");
    let r = export(&auditor, &s, &[("first", "many")]).await;
    assert_eq!(r.status(), 422);
    let r = export(&auditor, &s, &[("from", "2999-01-01T00:00")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("No events match"));
    // Without the session's token, or from another site: refused.
    let r = auditor
        .b
        .post(s.url("/app/audit/export"))
        .form(&[("csrf", "forged"), ("first", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = auditor
        .b
        .post(s.url("/app/audit/export"))
        .header("origin", "https://evil.example")
        .form(&[("csrf", auditor.csrf.as_str()), ("first", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let exports = ledger_events(
        &s,
        EventFilter {
            action: Some("audit.export".into()),
            before_index: None,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(exports.len(), 3, "only the three good exports are recorded");
    assert!(exports.iter().all(|e| e.index < before));
}

fn python_with_cryptography() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A background job that fails (here the checkpoint signer) shows where an
/// administrator looks: `/healthz` says `degraded` and names the job and the
/// error, the audit page shows it in an alert; the next good run clears both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_checkpoint_timer_shows_on_healthz_and_the_audit_page() {
    let s = TestServer::start().await;
    let health: Value = s
        .client()
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let admin = sign_in(&s, Role::Admin).await;
    let (_, page) = get(&admin, &s, "/app/audit").await;
    assert!(!page.contains("is failing"), "{page}");

    s.custos.record_job_run(
        "checkpoint",
        Err("signing a ledger checkpoint failed: the disk is full".into()),
    );
    let health: Value = s
        .client()
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["jobs"][0]["name"], "checkpoint", "{health}");
    assert_eq!(health["jobs"][0]["status"], "failing", "{health}");
    assert!(health["jobs"][0]["failing_since"].is_string(), "{health}");
    assert!(
        health["jobs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("the disk is full"),
        "{health}"
    );
    let (status, page) = get(&admin, &s, "/app/audit").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Signing ledger checkpoints is failing"),
        "{page}"
    );
    assert!(page.contains("the disk is full"), "{page}");

    s.custos.record_job_run("checkpoint", Ok(()));
    let health: Value = s
        .client()
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["jobs"][0]["last_success"].is_string(), "{health}");
    assert!(health["jobs"][0]["error"].is_null(), "{health}");
    let (_, page) = get(&admin, &s, "/app/audit").await;
    assert!(!page.contains("is failing"), "{page}");
}
