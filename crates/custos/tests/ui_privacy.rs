//! The Privacy pages over plain HTTP (no browser): every page answers the
//! roles that may use it with the strict CSP and refuses the others; a request
//! goes from the "New request" form through verification to fulfilment and
//! its package; forms without the right CSRF token change nothing, staff and
//! portal alike; and the public portal records Global Privacy Control.

#![allow(clippy::unwrap_used)]

use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};
use serde_json::{Value, json};

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// Signs a new user with `role` in through the sign-in form; returns the
/// cookie-keeping client and the session's CSRF token.
async fn sign_in(s: &TestServer, role: Role) -> (reqwest::Client, String) {
    let email = format!(
        "{}-{}@staff.example",
        role.name(),
        uuid::Uuid::now_v7().simple()
    );
    s.token_for_email(role, &email).await;
    let b = s.browser();
    let html = text(b.get(s.url("/")).send().await.unwrap()).await;
    let pre = hidden(&html, "csrf");
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
    let html = text(b.get(s.url("/app/contacts")).send().await.unwrap()).await;
    let csrf = hidden(&html, "csrf");
    (b, csrf)
}

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

struct Api<'a> {
    s: &'a TestServer,
    token: String,
}

impl Api<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .s
            .client()
            .post(self.s.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
    async fn get(&self, path: &str) -> Value {
        let r = self
            .s
            .client()
            .get(self.s.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
    async fn requests(&self) -> Vec<Value> {
        self.get("/api/v1/dsar?limit=500").await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

struct Seed {
    contact: String,
    order: String,
}

async fn seed(sales: &Api<'_>, first: &str, email: &str) -> Seed {
    let c = sales.post("/api/v1/contacts", json!({"first_name": first, "last_name": "Lovelace", "email": email, "phone": "+44 20 7946 0001"})).await;
    let contact = c["id"].as_str().unwrap().to_string();
    sales.post("/api/v1/activities", json!({"contact_id": contact, "kind": "call", "body": "Talked about the analytical engine", "occurred_at": "2026-01-10T10:00:00Z"})).await;
    let o = sales.post("/api/v1/orders", json!({"contact_id": contact, "status": "completed", "total": "120.00", "currency": "GBP", "shipping_address": "12 St James's Square", "placed_at": "2026-01-10T10:00:00Z", "completed_at": "2026-01-11T10:00:00Z"})).await;
    Seed {
        contact,
        order: o["id"].as_str().unwrap().to_string(),
    }
}

fn assert_page(path: &str, r: &reqwest::Response) {
    assert_eq!(
        r.headers()["content-security-policy"].to_str().unwrap(),
        custos_web::security::CSP,
        "{path}"
    );
}

fn assert_clean(path: &str, html: &str) {
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
}

async fn ok_page(b: &reqwest::Client, s: &TestServer, path: &str) -> String {
    let r = b.get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_page(path, &r);
    let html = text(r).await;
    assert_clean(path, &html);
    html
}

/// Opens a request over the API as the privacy officer; returns its id, code
/// and status path.
async fn api_request(po: &Api<'_>, kind: &str, email: &str) -> (String, String, String) {
    let r = po
        .post(
            "/api/v1/dsar",
            json!({"kind": kind, "regime": "gdpr", "subject_email": email}),
        )
        .await;
    (
        r["id"].as_str().unwrap().to_string(),
        r["verification_code"].as_str().unwrap().to_string(),
        r["status_url"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_pages_answer_the_roles_that_use_them_and_refuse_the_others() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let ada = seed(&sales, "Ada", "ada@privacy.example").await;
    let (open_id, _, status_url) = api_request(&po, "erasure", "ada@privacy.example").await;
    let (done_id, _, _) = api_request(&po, "access", "ada@privacy.example").await;
    po.post(
        &format!("/api/v1/dsar/{done_id}/verify"),
        json!({"method": "operator_attested", "reason": "called back on the number we hold"}),
    )
    .await;
    po.post(&format!("/api/v1/dsar/{done_id}/fulfil"), json!({}))
        .await;

    let staff_pages = vec![
        "/app".to_string(),
        "/app/privacy".into(),
        "/app/privacy/requests".into(),
        "/app/privacy/requests?filter=all".into(),
        "/app/privacy/requests?filter=overdue".into(),
        "/app/privacy/requests?filter=fulfilled".into(),
        "/app/privacy/requests/new".into(),
        format!("/app/privacy/requests/{open_id}"),
        format!("/app/privacy/requests/{open_id}/fulfil"),
        format!("/app/privacy/requests/{done_id}"),
        format!("/app/contacts/{}", ada.contact),
    ];
    for role in [Role::PrivacyOfficer, Role::Admin] {
        let (b, _) = sign_in(&s, role).await;
        for path in &staff_pages {
            ok_page(&b, &s, path).await;
        }
        // The printable report is its own document (no sidebar, still landmarks).
        let report = ok_page(&b, &s, &format!("/app/privacy/requests/{done_id}/report")).await;
        assert!(
            report.contains("Talked about the analytical engine")
                && report.contains("12 St James")
                && report.contains("shipping carrier")
                && !report.contains("class=\"sidebar\""),
            "{role}: the report holds every record and what the data is for"
        );
        for (path, kind) in [
            (
                format!("/app/privacy/requests/{done_id}/package.json"),
                "application/json",
            ),
            (
                format!("/app/privacy/requests/{done_id}/package/activities.csv"),
                "text/csv",
            ),
            (
                format!("/app/privacy/requests/{done_id}/evidence.json"),
                "application/json",
            ),
        ] {
            let r = b.get(s.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(kind),
                "{path}"
            );
            assert!(
                r.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment"),
                "{path}"
            );
        }
        let html = ok_page(&b, &s, "/app").await;
        for part in [
            "Open privacy requests",
            "Due within a week",
            "Overdue requests",
            "Time to close",
            "/app/privacy/requests?filter=overdue",
            "chart-dsar-close",
        ] {
            assert!(html.contains(part), "{role} dashboard lacks {part}");
        }
        let html = ok_page(&b, &s, "/app/privacy/requests").await;
        assert!(html.contains(">Requests<") && html.contains(">Erasure<"));
        assert!(
            html.contains("clock-on-track") && html.contains("On track"),
            "the clock says its state in words"
        );
        assert!(html.contains("days left") && html.contains("<time datetime=\""));
        let html = ok_page(&b, &s, &format!("/app/contacts/{}", ada.contact)).await;
        assert!(html.contains("Consent and privacy") && html.contains("Record consent"));
    }

    // Sales may log a request and record consent, not read requests.
    let (b, _) = sign_in(&s, Role::Sales).await;
    let html = ok_page(&b, &s, "/app/privacy/requests/new").await;
    assert!(html.contains("href=\"/app/privacy/requests/new\""));
    assert!(!html.contains("href=\"/app/privacy/requests\""));
    let html = ok_page(&b, &s, &format!("/app/contacts/{}", ada.contact)).await;
    assert!(html.contains("Record consent"));
    for path in [
        "/app/privacy".to_string(),
        "/app/privacy/requests".into(),
        format!("/app/privacy/requests/{open_id}"),
        format!("/app/privacy/requests/{open_id}/fulfil"),
        format!("/app/privacy/requests/{done_id}/report"),
        format!("/app/privacy/requests/{done_id}/package.json"),
        format!("/app/privacy/requests/{done_id}/evidence.json"),
    ] {
        let r = b.get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "sales on {path}");
        assert!(text(r).await.contains("Not allowed"), "{path}");
    }
    let html = ok_page(&b, &s, "/app").await;
    assert!(!html.contains("Open privacy requests"));
    // The auditor logs no request and sees no consent section.
    let (b, _) = sign_in(&s, Role::Auditor).await;
    let r = b
        .get(s.url("/app/privacy/requests/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let html = ok_page(&b, &s, &format!("/app/contacts/{}", ada.contact)).await;
    assert!(!html.contains("Consent and privacy") && !html.contains("/app/privacy"));
    // Signed out: back to sign-in.
    for path in &staff_pages {
        let r = s.browser().get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path} signed out");
        assert_eq!(r.headers()["location"], "/");
    }

    // The public portal needs no account.
    let anon = s.browser();
    for path in [
        "/privacy",
        "/privacy/requests/new",
        "/privacy/opt-out",
        "/privacy/consent",
        "/privacy/thanks",
        status_url.as_str(),
    ] {
        let html = ok_page(&anon, &s, path).await;
        assert!(html.contains("<footer"), "{path}");
        assert!(!html.contains("class=\"sidebar\""), "{path}");
    }
    let html = ok_page(&anon, &s, "/privacy").await;
    for part in [
        custos_service::NOTICE_VERSION,
        "How to reach you",
        "a contract with you (GDPR Art. 6(1)(b))",
        "shipping carrier",
        "2 years after the order is completed",
        "Global Privacy Control",
    ] {
        assert!(html.contains(part), "the notice lacks {part}");
    }
    let html = ok_page(&anon, &s, &status_url).await;
    assert!(html.contains("Delete my personal data") && html.contains("Received"));
    assert!(
        !html.contains("ada@"),
        "the status page shows no personal data"
    );
    let wrong = status_url.replace("token=cds_", "token=cds_x");
    let r = anon.get(s.url(&wrong)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!text(r).await.contains("Delete my personal data"));
    let _ = ada.order;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_from_the_form_through_verification_to_its_package_and_erasure() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let admin = Api {
        s: &s,
        token: s.token_for(Role::Admin).await,
    };
    let ada = seed(&sales, "Ada", "ada@flow.example").await;
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;

    // A form with mistakes keeps its values and names the fields.
    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "access"),
            ("regime", ""),
            ("subject_email", "not-an-email"),
            ("details", "by phone"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(html.contains("href=\"#f-regime\"") && html.contains("id=\"e-subject_email\""));
    assert!(html.contains("value=\"not-an-email\"") && html.contains(">by phone<"));

    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "access"),
            ("regime", "gdpr"),
            ("subject_email", "ADA@flow.example"),
            ("details", "Asked on the phone for everything we hold."),
        ])
        .send()
        .await
        .unwrap();
    // POST → redirect → GET: the receipt is a page of its own.
    assert_eq!(r.status(), 303);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    assert!(receipt.ends_with("/opened"), "{receipt}");
    let html = ok_page(&b, &s, &receipt).await;
    let marker = "id=\"verification-code\">";
    let code_at = html.find(marker).unwrap() + marker.len();
    let code = &html[code_at..code_at + 6];
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert!(html.contains("/privacy/requests/") && html.contains("token=cds_"));
    let id = admin.requests().await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = format!("/app/privacy/requests/{id}");

    // A wrong code is refused next to the field; the right one verifies.
    let r = b
        .post(s.url(&format!("{page}/verify")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("method", "code"),
            ("code", "000000x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(html.contains("id=\"e-code\"") && html.contains("value=\"000000x\""));
    let r = b
        .post(s.url(&format!("{page}/verify")))
        .form(&[("csrf", csrf.as_str()), ("method", "code"), ("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(
        html.contains("Identity verified.") && html.contains("Verified with the one-time code")
    );
    assert!(html.contains("Ada Lovelace"), "matched to the one contact");
    // Extend once, with a reason.
    let r = b
        .post(s.url(&format!("{page}/extend")))
        .form(&[("csrf", csrf.as_str()), ("extension_reason", "no")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(text(r).await.contains("id=\"e-extension_reason\""));
    let r = b
        .post(s.url(&format!("{page}/extend")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("extension_reason", "Records spread over three systems"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("Extended because") && !html.contains("id=\"extend-h\""));

    // The confirmation says what will happen; fulfilling shows the result and the package.
    let html = ok_page(&b, &s, &format!("{page}/fulfil")).await;
    assert!(html.contains("What will happen") && html.contains("package of every record"));
    let r = b
        .post(s.url(&format!("{page}/fulfil")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    for part in [
        "Request fulfilled.",
        "What was done",
        "Printable report",
        "package/orders.csv",
        "Identity verified with the one-time code",
        "ledger entry",
    ] {
        assert!(html.contains(part), "the fulfilled request lacks {part}");
    }
    let csv = text(
        b.get(s.url(&format!("{page}/package/orders.csv")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(csv.contains(&ada.order) && csv.contains("120.00"), "{csv}");

    // Erasure: the confirmation says it cannot be undone; then the contact answers "erased".
    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "erasure"),
            ("regime", "ccpa"),
            ("subject_email", "ada@flow.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let erasure = admin
        .requests()
        .await
        .into_iter()
        .find(|r| r["kind"] == "erasure")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = format!("/app/privacy/requests/{erasure}");
    let r = b
        .post(s.url(&format!("{page}/verify")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("method", "operator_attested"),
            ("reason", "Called back on the phone number we hold"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &format!("{page}/fulfil")).await;
    assert!(html.contains("cannot be undone") && html.contains("class=\"danger\""));
    assert!(html.contains("Erase Ada Lovelace"));
    let r = b
        .post(s.url(&format!("{page}/fulfil")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("What was kept, and why") && html.contains("accounting"));
    let r = b
        .get(s.url(&format!("/app/contacts/{}", ada.contact)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(text(r).await.contains("Erased"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_forms_without_the_right_token_or_from_another_site_change_nothing() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let ada = seed(&sales, "Ada", "ada@csrf.example").await;
    let (id, _, _) = api_request(&po, "restriction", "ada@csrf.example").await;
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;
    let before_requests = po.requests().await.len();
    let consents = format!("/api/v1/consents?contact_id={}", ada.contact);
    let before_consents = po.get(&consents).await["entries"].as_array().unwrap().len();
    let page = format!("/app/privacy/requests/{id}");
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/app/privacy/requests/new".into(),
            vec![
                ("kind", "erasure"),
                ("regime", "gdpr"),
                ("subject_email", "ada@csrf.example"),
            ],
        ),
        (
            format!("{page}/verify"),
            vec![
                ("method", "operator_attested"),
                ("reason", "forged attestation"),
            ],
        ),
        (
            format!("{page}/extend"),
            vec![("extension_reason", "forged extension")],
        ),
        (format!("{page}/match"), vec![("contact_id", &ada.contact)]),
        (
            format!("{page}/reject"),
            vec![("ground", "exemption"), ("explanation", "forged refusal")],
        ),
        (format!("{page}/fulfil"), vec![]),
        (format!("{page}/lift"), vec![]),
        (
            format!("/app/contacts/{}/consent", ada.contact),
            vec![
                ("purpose", "marketing_email"),
                ("state", "given"),
                ("method", "staff"),
            ],
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
    let v = po.get(&format!("/api/v1/dsar/{id}")).await;
    assert_eq!(v["state"], "received");
    assert!(v["extension_reason"].is_null() && v["contact_id"].is_null());
    assert_eq!(po.requests().await.len(), before_requests);
    assert_eq!(
        po.get(&consents).await["entries"].as_array().unwrap().len(),
        before_consents
    );

    // The portal's forms: a token from the pre-session cookie, or nothing happens.
    let anon = s.browser();
    let html = text(anon.get(s.url("/privacy/opt-out")).send().await.unwrap()).await;
    let pre = hidden(&html, "csrf");
    let portal_posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/privacy/requests",
            vec![
                ("kind", "erasure"),
                ("regime", "gdpr"),
                ("subject_email", "ada@csrf.example"),
            ],
        ),
        ("/privacy/opt-out", vec![("email", "ada@csrf.example")]),
        (
            "/privacy/consent",
            vec![("email", "ada@csrf.example"), ("purpose", "profiling")],
        ),
    ];
    for (path, fields) in &portal_posts {
        for token in ["", "forged-token-forged-token-forge"] {
            let mut form = fields.clone();
            if !token.is_empty() {
                form.push(("csrf", token));
            }
            let r = anon
                .post(s.url(path))
                .header("sec-gpc", "1")
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with token {token:?}");
            let html = text(r).await;
            assert!(html.contains("This form expired"), "{path}");
        }
        let mut form = fields.clone();
        form.push(("csrf", pre.as_str()));
        let r = anon
            .post(s.url(path))
            .header("origin", "https://evil.example")
            .header("sec-gpc", "1")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} cross-site");
        // Without the cookie the page's token is worth nothing either.
        let r = s
            .browser()
            .post(s.url(path))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} without the cookie");
    }
    assert_eq!(po.requests().await.len(), before_requests);
    assert_eq!(
        po.get(&consents).await["entries"].as_array().unwrap().len(),
        before_consents,
        "no opt-out or withdrawal was recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_records_global_privacy_control_and_answers_the_same_for_strangers() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let manager = Api {
        s: &s,
        token: s.token_for(Role::Manager).await,
    };
    let gina = seed(&sales, "Gina", "gina@portal.example").await;
    let consents = format!("/api/v1/consents?contact_id={}", gina.contact);
    let anon = s.browser();

    // A request form sent with Sec-GPC: 1 opens the request and records the opt-out.
    let html = text(
        anon.get(s.url("/privacy/requests/new"))
            .header("sec-gpc", "1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(html.contains("Global Privacy Control is on"));
    let pre = hidden(&html, "csrf");
    let r = anon
        .post(s.url("/privacy/requests"))
        .header("sec-gpc", "1")
        .form(&[
            ("csrf", pre.as_str()),
            ("kind", "access"),
            ("regime", "ccpa"),
            ("subject_email", "Gina@portal.example"),
            ("details", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let status = r.headers()["location"].to_str().unwrap().to_string();
    assert!(status.starts_with("/privacy/requests/") && status.contains("?token=cds_"));
    assert!(!status.contains("gina"), "no personal data in the URL");
    let html = ok_page(&anon, &s, &status).await;
    assert!(html.contains("We have received your request."));
    assert!(html.contains("recorded it as your opt-out of the sale and sharing"));
    assert!(html.contains("Send me a copy of the personal data"));
    let h = sales.get(&consents).await;
    assert_eq!(h["entries"][0]["method"], "gpc");
    assert_eq!(h["current"]["sale_share"]["state"], "withdrawn");
    assert!(
        h["processing_flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "opted_out_sale")
    );
    let e = manager
        .get("/api/v1/exports/contacts?purpose=sale_share")
        .await;
    assert!(
        e["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != gina.contact.as_str())
    );
    // The message is shown once.
    let html = ok_page(&anon, &s, &status).await;
    assert!(!html.contains("We have received your request."));

    // An opt-out and a consent withdrawal answer the same for a stranger.
    let mut answers = Vec::new();
    for email in ["gina@portal.example", "nobody@nowhere.example"] {
        let b = s.browser();
        let html = text(b.get(s.url("/privacy/consent")).send().await.unwrap()).await;
        let pre = hidden(&html, "csrf");
        let r = b
            .post(s.url("/privacy/consent"))
            .form(&[
                ("csrf", pre.as_str()),
                ("email", email),
                ("purpose", "marketing_email"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{email}");
        assert_eq!(r.headers()["location"], "/privacy/thanks");
        answers.push(text(b.get(s.url("/privacy/thanks")).send().await.unwrap()).await);
        let r = b
            .post(s.url("/privacy/opt-out"))
            .form(&[("csrf", pre.as_str()), ("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{email}");
        answers.push(text(b.get(s.url("/privacy/thanks")).send().await.unwrap()).await);
    }
    assert_eq!(answers[0], answers[2], "withdrawal answers the same");
    assert_eq!(answers[1], answers[3], "opt-out answers the same");
    assert!(answers[0].contains("withdrew your consent"));
    let h = sales.get(&consents).await;
    assert_eq!(h["current"]["marketing_email"]["state"], "withdrawn");
    assert!(
        h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["method"] == "portal" && e["purpose"] == "marketing_email")
    );

    // A bad email is refused next to the field, with nothing recorded.
    let b = s.browser();
    let html = text(b.get(s.url("/privacy/opt-out")).send().await.unwrap()).await;
    let pre = hidden(&html, "csrf");
    let n = sales.get(&consents).await["entries"]
        .as_array()
        .unwrap()
        .len();
    let r = b
        .post(s.url("/privacy/opt-out"))
        .form(&[("csrf", pre.as_str()), ("email", "gina-at-portal")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(html.contains("id=\"e-email\"") && html.contains("value=\"gina-at-portal\""));
    assert_eq!(
        sales.get(&consents).await["entries"]
            .as_array()
            .unwrap()
            .len(),
        n
    );

    // Staff record consent on the contact's page; the history shows a receipt.
    let (b, csrf) = sign_in(&s, Role::Sales).await;
    let r = b
        .post(s.url(&format!("/app/contacts/{}/consent", gina.contact)))
        .form(&[
            ("csrf", csrf.as_str()),
            ("purpose", "profiling"),
            ("state", "given"),
            ("method", "form"),
            ("evidence", "paper form 42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &format!("/app/contacts/{}", gina.contact)).await;
    for part in [
        "Consent recorded.",
        "paper form 42",
        "Global Privacy Control",
        "Opted out of the sale and sharing",
        "ISO/IEC 27560",
        custos_service::NOTICE_VERSION,
    ] {
        assert!(html.contains(part), "the contact page lacks {part}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_from_a_session_asks_for_a_fresh_second_factor_first() {
    let s = TestServer::start_with(custos_service::Config {
        step_up_window: std::time::Duration::ZERO,
        ..custos_testkit::password_only()
    })
    .await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let ada = seed(&sales, "Ada", "ada@stepup.example").await;
    let (id, _, _) = api_request(&po, "erasure", "ada@stepup.example").await;
    po.post(
        &format!("/api/v1/dsar/{id}/verify"),
        json!({"method": "operator_attested", "reason": "called back on the number we hold"}),
    )
    .await;
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;
    let r = b
        .post(s.url(&format!("/app/privacy/requests/{id}/fulfil")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/app/security/step-up?return_to=/app/privacy/requests/{id}/fulfil").as_str()
    );
    assert_eq!(
        po.get(&format!("/api/v1/dsar/{id}")).await["state"],
        "verified"
    );
    let r = b
        .get(s.url(&format!("/app/contacts/{}", ada.contact)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "nothing was erased");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_matches_are_chosen_restrictions_lifted_and_sales_only_log_requests() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    // Two contacts share an email: the operator chooses.
    let first = seed(&sales, "Ada", "twins@privacy.example").await;
    let second = seed(&sales, "Augusta", "twins@privacy.example").await;
    let (id, _, _) = api_request(&po, "restriction", "twins@privacy.example").await;
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;
    let page = format!("/app/privacy/requests/{id}");
    let r = b
        .post(s.url(&format!("{page}/verify")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("method", "operator_attested"),
            ("reason", "Met in person with an identity card"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("2 contacts hold this email"));
    assert!(html.contains("Ada Lovelace") && html.contains("Augusta Lovelace"));
    assert!(html.contains(&format!("value=\"{}\"", second.contact)));
    let html = ok_page(&b, &s, &format!("{page}/fulfil")).await;
    assert!(html.contains("cannot be fulfilled yet") && !html.contains("name=\"csrf\" value=\"\""));
    let r = b
        .post(s.url(&format!("{page}/match")))
        .form(&[("csrf", csrf.as_str()), ("contact_id", &second.contact)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b
        .post(s.url(&format!("{page}/fulfil")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &format!("/app/contacts/{}", second.contact)).await;
    assert!(html.contains("Processing restricted (GDPR Art. 18)"));
    let html = ok_page(&b, &s, &format!("/app/contacts/{}", first.contact)).await;
    assert!(html.contains("No restriction, objection or opt-out is in force."));
    // Sales no longer see the restricted person; lifting gives them back.
    let r = s
        .client()
        .get(s.url(&format!("/api/v1/contacts/{}", second.contact)))
        .bearer_auth(&sales.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("Lift the restriction"));
    // The overview counts the people under each limit.
    let overview = ok_page(&b, &s, "/app/privacy").await;
    assert!(
        overview.contains("<dt>Processing restricted (GDPR Art. 18)")
            && overview.contains("<dd>1 person</dd>"),
        "{overview}"
    );
    let r = b
        .post(s.url(&format!("{page}/lift")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("Restriction lifted.") && !html.contains("Lift the restriction"));
    let overview = ok_page(&b, &s, "/app/privacy").await;
    assert!(
        overview.contains("None: no restriction, objection, opt-out or legal hold"),
        "{overview}"
    );
    assert!(
        html.contains("Processing flag lifted"),
        "the timeline says so"
    );
    sales
        .get(&format!("/api/v1/contacts/{}", second.contact))
        .await;

    // A salesperson logs a request: the code and link are shown, the request is not.
    let (b, csrf) = sign_in(&s, Role::Sales).await;
    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "opt_out_sale"),
            ("regime", "ccpa"),
            ("subject_email", "twins@privacy.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    let html = ok_page(&b, &s, &receipt).await;
    assert!(html.contains("id=\"verification-code\"") && html.contains("token=cds_"));
    assert!(!html.contains("Open the request"));
    assert_eq!(po.requests().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_refused_from_its_page_with_a_ground_the_person_sees() {
    let s = TestServer::start().await;
    let sales = Api {
        s: &s,
        token: s.token_for(Role::Sales).await,
    };
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    seed(&sales, "Ada", "ada@refuse.example").await;
    let (id, _, status_path) = api_request(&po, "access", "ada@refuse.example").await;
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;
    let page = format!("/app/privacy/requests/{id}");
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("id=\"reject-h\"") && html.contains("Refuse this request"));
    assert!(html.contains("value=\"manifestly_unfounded\""));

    // Too short an explanation: the form comes back with the error and the values.
    let r = b
        .post(s.url(&format!("{page}/reject")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("ground", "manifestly_unfounded"),
            ("explanation", "no"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = text(r).await;
    assert!(
        html.contains("id=\"e-explanation\""),
        "the error is by its field"
    );
    assert!(html.contains("value=\"manifestly_unfounded\" selected"));
    assert_eq!(
        po.get(&format!("/api/v1/dsar/{id}")).await["state"],
        "received"
    );

    let why = "This is the fourth identical request this week; we answered it on Monday.";
    let r = b
        .post(s.url(&format!("{page}/reject")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("ground", "manifestly_unfounded"),
            ("explanation", why),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("Request refused and closed"), "the flash");
    assert!(html.contains("Not verified: the request was refused first."));
    assert!(html.contains("The request is manifestly unfounded or excessive."));
    assert!(html.contains(why), "the explanation is shown to staff");
    assert!(!html.contains("id=\"reject-h\""), "no second refusal");
    assert!(
        !html.contains("id=\"extend-h\""),
        "a closed request is not extended"
    );
    assert!(
        html.contains("Request refused: The request is manifestly unfounded or excessive"),
        "the timeline names the step"
    );
    assert_eq!(
        po.get(&format!("/api/v1/dsar/{id}")).await["state"],
        "rejected"
    );

    // The person's status page says why in general terms, and where to complain.
    let r = s.client().get(s.url(&status_path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = text(r).await;
    assert!(html.contains("Closed without action"));
    assert!(html.contains("Why: The request is manifestly unfounded or excessive."));
    assert!(html.contains("supervisory authority"));
    assert!(
        !html.contains("fourth identical"),
        "the explanation goes by email, not here"
    );
}

/// Every create form of the privacy pages follows POST → redirect → GET and
/// carries its idempotency key: reloading the receipt shows it again, and
/// the same form sent twice (Back, then Send again) opens one request. The
/// receipt is the opener's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_form_sent_twice_opens_one_request() {
    let s = TestServer::start().await;
    let po = Api {
        s: &s,
        token: s.token_for(Role::PrivacyOfficer).await,
    };
    let (b, csrf) = sign_in(&s, Role::Sales).await;
    let form = text(
        b.get(s.url("/app/privacy/requests/new"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let form_id = hidden(&form, "form_id");
    assert_eq!(form_id.len(), 36, "{form_id}");
    let fields = [
        ("csrf", csrf.as_str()),
        ("form_id", form_id.as_str()),
        ("kind", "access"),
        ("regime", "gdpr"),
        ("subject_email", "twice@privacy.example"),
    ];
    let first = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let receipt = first.headers()["location"].to_str().unwrap().to_string();
    let page = ok_page(&b, &s, &receipt).await;
    // A reload is a GET of the same receipt, with the same code.
    let again = ok_page(&b, &s, &receipt).await;
    let code = |html: &str| {
        let m = "id=\"verification-code\">";
        let at = html.find(m).unwrap() + m.len();
        html[at..at + 6].to_string()
    };
    assert_eq!(code(&page), code(&again));
    // The form sent a second time goes to the same receipt, opening nothing.
    let second = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 303);
    assert_eq!(second.headers()["location"].to_str().unwrap(), receipt);
    assert_eq!(po.requests().await.len(), 1);
    // A new form (a new key) opens a second one.
    let form = text(
        b.get(s.url("/app/privacy/requests/new"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other_id = hidden(&form, "form_id");
    assert_ne!(other_id, form_id);
    let mut other = fields;
    other[1] = ("form_id", other_id.as_str());
    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(po.requests().await.len(), 2);
    // A key Custos could not have made recently gets no replay protection
    // and cannot name an existing request.
    let r = b
        .post(s.url("/app/privacy/requests/new"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("form_id", "00000000-0000-7000-8000-000000000000"),
            ("kind", "access"),
            ("regime", "gdpr"),
            ("subject_email", "old-key@privacy.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(po.requests().await.len(), 3);

    // Someone else does not get the receipt.
    let (other_user, _) = sign_in(&s, Role::Sales).await;
    let r = other_user.get(s.url(&receipt)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!text(r).await.contains("verification-code"));

    // The portal's form, sent twice, opens one request too.
    let anon = s.browser();
    let html = text(
        anon.get(s.url("/privacy/requests/new"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let pre = hidden(&html, "csrf");
    let portal_id = hidden(&html, "form_id");
    let portal_form = [
        ("csrf", pre.as_str()),
        ("form_id", portal_id.as_str()),
        ("kind", "erasure"),
        ("regime", "gdpr"),
        ("subject_email", "portal-twice@privacy.example"),
        ("details", ""),
    ];
    let r = anon
        .post(s.url("/privacy/requests"))
        .form(&portal_form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = anon
        .post(s.url("/privacy/requests"))
        .form(&portal_form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(text(r).await.contains("Request already received"));
    assert_eq!(po.requests().await.len(), 4);
}

/// The request page shows the privacy officer the live one-time code of a
/// request sent through the portal (nobody else ever saw it), and issues a
/// new one on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_page_shows_a_portal_requests_code_and_issues_a_new_one() {
    let s = TestServer::start().await;
    let r = s
        .client()
        .post(s.url("/api/v1/privacy/requests"))
        .json(
            &json!({"kind": "access", "regime": "gdpr", "subject_email": "shown@privacy.example"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (b, csrf) = sign_in(&s, Role::PrivacyOfficer).await;
    let page = format!("/app/privacy/requests/{id}");
    let html = ok_page(&b, &s, &page).await;
    let code = |html: &str| {
        let m = "class=\"one-time-code\">";
        let at = html
            .find(m)
            .unwrap_or_else(|| panic!("no code shown: {html}"))
            + m.len();
        html[at..at + 6].to_string()
    };
    let first = code(&html);
    assert!(first.bytes().all(|c| c.is_ascii_digit()), "{first}");
    assert!(html.contains("5 wrong codes left"), "{html}");
    let r = b
        .post(s.url(&format!("{page}/code")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(html.contains("A new one-time code was issued"), "{html}");
    let fresh = code(&html);
    // The old code is refused, the new one verifies.
    if fresh != first {
        let r = b
            .post(s.url(&format!("{page}/verify")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("method", "code"),
                ("code", &first),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert!(text(r).await.contains("4 wrong codes left"));
    }
    let r = b
        .post(s.url(&format!("{page}/verify")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("method", "code"),
            ("code", &fresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = ok_page(&b, &s, &page).await;
    assert!(
        !html.contains("one-time-code"),
        "a used code is no longer shown"
    );
}
