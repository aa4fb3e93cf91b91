//! The OpenAPI document at `/api/openapi.json` is true (CONTRACT.md "HTTP"): every
//! documented operation is answered by a real route with a documented status,
//! content type and body schema; every route the contract names that the server
//! serves is documented; records and lists validate against their schemas.

use custos_domain::Role;
use custos_testkit::TestServer;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug)]
struct Res {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Res {
    /// The media type, without parameters.
    fn mime(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    #[track_caller]
    fn expect(&self, status: u16, what: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{what}: unexpected status; body: {}",
            self.text
        );
        &self.json
    }
}

async fn call(
    s: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Res {
    let mut rb = s.client().request(method, s.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.expect("request reaches the server");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("UTF-8 body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res {
        status,
        headers,
        text,
        json,
    }
}

async fn document(s: &TestServer) -> Value {
    let r = call(s, None, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(r.mime(), "application/json", "the document is JSON");
    r.expect(200, "GET /api/openapi.json without a token")
        .clone()
}

/// A validator for `schema`, whose `$ref`s point into the document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert("components".into(), doc["components"].clone());
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("schema does not compile: {e}; {schema}"))
}

/// The errors of `instance` against `schema` (empty when valid).
fn schema_errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

#[track_caller]
fn assert_valid(doc: &Value, schema_name: &str, instance: &Value) {
    let errors = schema_errors(doc, &component(schema_name), instance);
    assert!(
        errors.is_empty(),
        "{instance} does not validate against {schema_name}: {errors:#?}"
    );
}

/// A value of a parameter's schema.
fn sample(schema: &Value) -> String {
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("integer"), _) => schema["minimum"].as_i64().unwrap_or(0).to_string(),
        (_, Some("uuid")) => Uuid::now_v7().to_string(),
        _ => "x".to_string(),
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The operation's security requirement (its own, or the document's).
fn is_public(doc: &Value, op: &Value) -> bool {
    let sec = op.get("security").unwrap_or(&doc["security"]);
    sec.as_array().is_some_and(Vec::is_empty)
}

/// The generic answer for a path no route serves.
async fn fallback(s: &TestServer, token: &str) -> Value {
    let r = call(s, Some(token), Method::GET, "/api/v1/nonexistent", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.mime(), "application/problem+json");
    r.json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_as_documented() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let doc = document(&s).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let unknown = fallback(&s, &token).await;

    let paths = doc["paths"].as_object().expect("paths");
    let mut operation_ids = std::collections::BTreeSet::new();
    let mut checked = 0;
    for (template, item) in paths {
        assert!(
            template.starts_with("/api/") || template == "/healthz",
            "{template}: paths are written in full"
        );
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let what = format!("{} {template}", method.to_uppercase());
            let op_id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(op_id.to_string()),
                "{what}: operationId {op_id:?} missing or repeated"
            );
            // Build a syntactically valid request from the document.
            let params: Vec<&Value> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .collect();
            let mut path = template.clone();
            let mut query = Vec::new();
            for p in &params {
                let name = p["name"].as_str().expect("parameter name");
                match p["in"].as_str() {
                    Some("path") => {
                        path = path.replace(&format!("{{{name}}}"), &sample(&p["schema"]));
                    }
                    Some("query") if p["required"] == true => {
                        query.push(format!("{name}={}", sample(&p["schema"])));
                    }
                    _ => {}
                }
            }
            assert!(!path.contains('{'), "{what}: undocumented path parameter");
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let body = op.get("requestBody").map(|_| json!({}));
            let public = is_public(&doc, op);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let auth = (!public).then_some(token.as_str());
            let r = call(&s, auth, m.clone(), &path, body.as_ref()).await;

            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}: 405");
            if r.status == StatusCode::NOT_FOUND {
                assert_eq!(r.mime(), "application/problem+json", "{what}: 404 body");
                assert_ne!(
                    r.json, unknown,
                    "{what}: answered by the fallback for unknown paths"
                );
            }
            let code = r.status.as_u16().to_string();
            let documented = op["responses"]
                .get(&code)
                .or_else(|| op["responses"].get("default"))
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: status {code} is not documented (documented: {:?}); body {}",
                        op["responses"]
                            .as_object()
                            .map(|o| o.keys().collect::<Vec<_>>()),
                        r.text
                    )
                });
            match documented.get("content").and_then(Value::as_object) {
                None => assert!(
                    r.text.is_empty(),
                    "{what}: {code} has a body the document does not declare: {}",
                    r.text
                ),
                Some(content) => {
                    let mime = r.mime();
                    let media = content.get(&mime).unwrap_or_else(|| {
                        panic!(
                            "{what}: {code} answered {mime}, documented {:?}",
                            content.keys().collect::<Vec<_>>()
                        )
                    });
                    if let Some(schema) = media.get("schema") {
                        let instance = if mime.contains("json") {
                            serde_json::from_str(&r.text).unwrap_or_else(|e| {
                                panic!("{what}: {mime} body is not JSON ({e}): {}", r.text)
                            })
                        } else {
                            Value::String(r.text.clone())
                        };
                        let errors = schema_errors(&doc, schema, &instance);
                        assert!(
                            errors.is_empty(),
                            "{what}: {code} body {instance} breaks its schema: {errors:#?}"
                        );
                    }
                }
            }
            // Operations that need a token say so, and mean it.
            if !public {
                let r = call(&s, None, m, &path, body.as_ref()).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} without a token");
                assert!(
                    op["responses"].get("401").is_some(),
                    "{what}: 401 not documented"
                );
            }
            checked += 1;
        }
        // Methods a path does not document are not served either.
        for method in METHODS {
            if item.get(method).is_some() {
                continue;
            }
            let path = template.replace("{id}", &Uuid::now_v7().to_string());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let r = call(&s, Some(&token), m, &path, body.as_ref()).await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{} {template} is not documented but answers {}: {}",
                method.to_uppercase(),
                r.status,
                r.text
            );
            assert_eq!(r.mime(), "application/problem+json", "405 body");
        }
    }
    assert!(checked >= 25, "only {checked} operations documented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_names_the_allowed_methods() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let r = call(
        &s,
        Some(&token),
        Method::PUT,
        "/api/v1/contacts",
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_uppercase();
    for m in ["GET", "POST"] {
        assert!(allow.contains(m), "Allow: {allow:?}");
    }
}

/// Every HTTP path CONTRACT.md names, with its method.
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/v1/audit/checkpoint"),
    ("GET", "/api/v1/audit/verifier-key"),
    ("GET", "/api/v1/audit/leaves"),
    ("GET", "/api/v1/audit/proof/inclusion"),
    ("GET", "/api/v1/audit/proof/consistency"),
    ("GET", "/api/v1/audit/events"),
    ("POST", "/api/v1/dsar"),
    ("POST", "/api/v1/dsar/{id}/verify"),
    ("POST", "/api/v1/dsar/{id}/fulfil"),
    ("GET", "/api/v1/dsar/{id}"),
    ("GET", "/api/v1/dsar/{id}/package"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/me/totp"),
    ("POST", "/api/v1/me/totp/confirm"),
];

const CRM: [&str; 5] = ["contacts", "companies", "deals", "activities", "orders"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_path_the_server_serves_is_documented() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let doc = document(&s).await;
    let unknown = fallback(&s, &token).await;
    let paths = &doc["paths"];

    // The CRM resources: all five operations, always.
    for plural in CRM {
        let collection = format!("/api/v1/{plural}");
        let item = format!("/api/v1/{plural}/{{id}}");
        for (p, m) in [
            (&collection, "get"),
            (&collection, "post"),
            (&item, "get"),
            (&item, "patch"),
            (&item, "delete"),
        ] {
            assert!(
                paths[p.as_str()].get(m).is_some(),
                "{} {p} is not documented",
                m.to_uppercase()
            );
        }
        // Lists document their paging parameters.
        let names: Vec<&str> = paths[collection.as_str()]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for n in ["limit", "cursor"] {
            assert!(names.contains(&n), "{collection}: {n} not documented");
        }
        if plural == "contacts" {
            for n in ["email", "q"] {
                assert!(names.contains(&n), "{collection}: {n} not documented");
            }
        }
    }
    // The record schemas hold the fields the contract names.
    for (schema, fields) in [
        (
            "Contact",
            &[
                "id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "company_id",
                "owner_id",
                "tags",
                "created_at",
                "updated_at",
            ][..],
        ),
        ("Company", &["id", "name", "domain", "created_at"][..]),
        (
            "Deal",
            &[
                "id",
                "title",
                "company_id",
                "contact_id",
                "stage",
                "amount",
                "currency",
                "close_date",
            ][..],
        ),
        (
            "Activity",
            &["id", "contact_id", "kind", "body", "occurred_at"][..],
        ),
        (
            "Order",
            &[
                "id",
                "contact_id",
                "status",
                "total",
                "currency",
                "shipping_address",
                "placed_at",
                "completed_at",
            ][..],
        ),
    ] {
        let props = &doc["components"]["schemas"][schema]["properties"];
        for f in fields {
            assert!(props.get(*f).is_some(), "schema {schema} lacks {f}");
        }
    }

    // Any other contract route the server serves is in the document.
    for (method, template) in CONTRACT_ROUTES {
        let path = template.replace("{id}", &Uuid::now_v7().to_string());
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let body = (*method == "POST").then(|| json!({}));
        let r = call(&s, Some(&token), m, &path, body.as_ref()).await;
        let served = !(r.status == StatusCode::NOT_FOUND && r.json == unknown);
        if served {
            assert!(
                paths[*template].get(method.to_ascii_lowercase()).is_some(),
                "{method} {template} is served ({}) but not documented",
                r.status
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_lists_inputs_and_problems_match_their_schemas() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let auditor = s.token_for(Role::Auditor).await;
    let doc = document(&s).await;
    let t = Some(token.as_str());
    let stage = call(&s, t, Method::GET, "/api/v1/pipeline/stages", None)
        .await
        .expect(200, "stages")["stages"][0]
        .clone();

    let post = |plural: &'static str, body: Value| {
        let s = &s;
        let token = token.clone();
        async move {
            let path = format!("/api/v1/{plural}");
            call(s, Some(&token), Method::POST, &path, Some(&body))
                .await
                .expect(201, &format!("POST {path} {body}"))
                .clone()
        }
    };
    let company_in = json!({"name": "Analytical Engines Ltd", "domain": "engines.example"});
    let company = post("companies", company_in.clone()).await;
    let company_id = company["id"].clone();
    let contact_in = json!({"first_name": "Ada", "last_name": "Lovelace",
        "email": "ada@engines.example", "phone": "+44 20 7946 0958",
        "company_id": company_id, "tags": ["vip"]});
    let contact = post("contacts", contact_in.clone()).await;
    let contact_id = contact["id"].clone();
    let deal_in = json!({"title": "Engine", "stage": stage, "amount": "1250.00",
        "currency": "EUR", "company_id": company_id, "contact_id": contact_id,
        "close_date": "2026-03-31"});
    let activity_in = json!({"contact_id": contact_id, "kind": "call",
        "body": "Spoke.\nCall back.", "occurred_at": "2026-01-31T09:30:00Z",
        "due_at": "2026-02-01T09:00:00Z", "done": false});
    let order_in = json!({"contact_id": contact_id, "status": "paid", "total": "99.90",
        "currency": "EUR", "shipping_address": "12 Marylebone Road\nLondon",
        "placed_at": "2026-01-30T08:00:00Z"});
    let cases = [
        ("companies", "Company", company_in, company),
        ("contacts", "Contact", contact_in, contact),
        (
            "deals",
            "Deal",
            deal_in.clone(),
            post("deals", deal_in).await,
        ),
        (
            "activities",
            "Activity",
            activity_in.clone(),
            post("activities", activity_in).await,
        ),
        (
            "orders",
            "Order",
            order_in.clone(),
            post("orders", order_in).await,
        ),
    ];
    for (plural, name, sent, created) in &cases {
        // What the server accepted is what the document says it accepts.
        assert_valid(&doc, &format!("{name}Create"), sent);
        assert_valid(&doc, name, created);
        let item = format!("/api/v1/{plural}/{}", created["id"].as_str().expect("id"));
        let got = call(&s, t, Method::GET, &item, None).await;
        assert_valid(&doc, name, got.expect(200, &item));
        let list = call(&s, t, Method::GET, &format!("/api/v1/{plural}"), None).await;
        assert_valid(&doc, &format!("{name}List"), list.expect(200, plural));
        // The auditor's masked view is a valid record too.
        let masked = call(&s, Some(&auditor), Method::GET, &item, None).await;
        assert_valid(&doc, name, masked.expect(200, "auditor read"));
        // Problems.
        let bad = call(
            &s,
            t,
            Method::POST,
            &format!("/api/v1/{plural}"),
            Some(&json!({"zzz": 1})),
        )
        .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_valid(&doc, "Problem", &bad.json);
        let missing = format!("/api/v1/{plural}/{}", Uuid::now_v7());
        let nf = call(&s, t, Method::GET, &missing, None).await;
        assert_eq!(nf.status, StatusCode::NOT_FOUND);
        assert_valid(&doc, "Problem", &nf.json);
        // An input the document refuses, the server refuses as well.
        let mut extra = sent.as_object().cloned().unwrap_or_default();
        extra.insert("undocumented".into(), json!(true));
        let extra = Value::Object(extra);
        assert!(!schema_errors(&doc, &component(&format!("{name}Create")), &extra).is_empty());
        let r = call(
            &s,
            t,
            Method::POST,
            &format!("/api/v1/{plural}"),
            Some(&extra),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{plural}: {}",
            r.text
        );
    }
    let patch = json!({"last_name": "King", "phone": null});
    assert_valid(&doc, "ContactUpdate", &patch);
    let item = format!("/api/v1/contacts/{}", contact_id.as_str().expect("id"));
    let patched = call(&s, t, Method::PATCH, &item, Some(&patch)).await;
    assert_valid(&doc, "Contact", patched.expect(200, "patch"));

    // The validator is not a rubber stamp: broken records fail.
    let deal = &cases[2].3;
    for (field, bad) in [
        ("amount", json!(1250)),
        ("amount", json!("12.345")),
        ("id", json!("not-a-uuid")),
        ("created_at", json!("yesterday")),
    ] {
        let mut broken = deal.as_object().cloned().unwrap_or_default();
        broken.insert(field.into(), bad.clone());
        assert!(
            !schema_errors(&doc, &component("Deal"), &Value::Object(broken)).is_empty(),
            "Deal with {field} = {bad} validates"
        );
    }
    let mut no_id = deal.as_object().cloned().unwrap_or_default();
    no_id.remove("id");
    assert!(!schema_errors(&doc, &component("Deal"), &Value::Object(no_id)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_list_defaults_are_the_real_ones() {
    let s = TestServer::start().await;
    let token = s.token_for(Role::Admin).await;
    let t = Some(token.as_str());
    let doc = document(&s).await;
    let params = doc["paths"]["/api/v1/companies"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .clone();
    let default_of = |n: &str| {
        params
            .iter()
            .find(|p| p["name"] == n)
            .map(|p| p["schema"]["default"].clone())
            .unwrap_or(Value::Null)
    };
    let limit = default_of("limit")
        .as_u64()
        .expect("documented default limit");
    let sort = default_of("sort");
    let sort = sort.as_str().expect("documented default sort");

    for i in 0..=limit {
        call(
            &s,
            t,
            Method::POST,
            "/api/v1/companies",
            Some(&json!({"name": format!("Company {i:03}")})),
        )
        .await
        .expect(201, "create");
    }
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    };
    let plain = call(&s, t, Method::GET, "/api/v1/companies", None).await;
    let plain = plain.expect(200, "list");
    assert_eq!(
        ids(plain).len() as u64,
        limit,
        "the documented default limit"
    );
    assert!(plain["next_cursor"].is_string());
    let explicit = call(
        &s,
        t,
        Method::GET,
        &format!("/api/v1/companies?sort={sort}&limit={limit}"),
        None,
    )
    .await;
    let (implicit, explicit) = (ids(plain), ids(explicit.expect(200, "explicit")));
    assert!(
        implicit == explicit,
        "omitting sort is not the same as the documented default sort={sort}: \
         first ids {:?} vs {:?}",
        &implicit[..2],
        &explicit[..2]
    );
}
