//! The OpenAPI 3.1 document, generated from the same inventory that drives the
//! API, so it cannot drift from what the handlers accept and return.

use custos_domain::inventory::{self, FieldDecl, FieldKind, Presence, Protection};
use custos_domain::{DataCategory, Entity};
use serde_json::{Map, Value, json};

fn field_schema(f: &FieldDecl) -> Value {
    let mut s = match f.kind {
        FieldKind::Id | FieldKind::Ref { .. } => json!({"type": "string", "format": "uuid"}),
        FieldKind::Text { max, .. } => json!({"type": "string", "maxLength": max}),
        FieldKind::Email => json!({"type": "string", "format": "email", "maxLength": 254}),
        FieldKind::Phone => json!({"type": "string", "maxLength": 32}),
        FieldKind::Enum { values } => json!({"type": "string", "enum": values}),
        FieldKind::Stage => {
            json!({"type": "string", "description": "a stage of the configured pipeline (GET /api/v1/pipeline/stages)"})
        }
        FieldKind::Money => {
            json!({"type": "string", "pattern": "^-?[0-9]{1,13}(\\.[0-9]{1,2})?$", "examples": ["1250.00"]})
        }
        FieldKind::Currency => {
            json!({"type": "string", "pattern": "^[A-Za-z]{3}$", "examples": ["EUR"]})
        }
        FieldKind::Date => json!({"type": "string", "format": "date"}),
        FieldKind::Timestamp => json!({"type": "string", "format": "date-time"}),
        FieldKind::Tags => {
            json!({"type": "array", "maxItems": 20, "items": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"}})
        }
        FieldKind::Bool => json!({"type": "boolean"}),
    };
    if let Some(obj) = s.as_object_mut() {
        if !f.description.is_empty() && !obj.contains_key("description") {
            let protection = match f.protection {
                Protection::Plain { .. } => "stored in the clear",
                Protection::Sealed => "sealed (encrypted) at rest",
                Protection::SealedIndexed { .. } => "sealed at rest, exact-match searchable",
            };
            obj.insert(
                "description".into(),
                Value::String(format!(
                    "{} Category: {}; {protection}.",
                    f.description,
                    f.category.name()
                )),
            );
        }
        if f.presence != Presence::Required && f.presence != Presence::System {
            let t = obj.get("type").cloned().unwrap_or(Value::Null);
            obj.insert("type".into(), json!([t, "null"]));
            if let Some(e) = obj.remove("enum") {
                let mut e = e.as_array().cloned().unwrap_or_default();
                e.push(Value::Null);
                obj.insert("enum".into(), Value::Array(e));
            }
        }
    }
    s
}

fn visible_fields(entity: Entity) -> impl Iterator<Item = &'static FieldDecl> {
    inventory::fields(entity).filter(|f| f.category != DataCategory::Credentials)
}

fn record_schema(entity: Entity) -> Value {
    let mut props = Map::new();
    for f in visible_fields(entity) {
        // A masked field holds "•••" instead of its value, or its masked
        // shape ("j•••@example.com") for roles that may see that much.
        props.insert(
            f.name.into(),
            json!({"anyOf": [field_schema(f), {"type": "string", "pattern": "•••", "description": "masked: named in `masked`"}]}),
        );
    }
    props.insert(
        "erased".into(),
        json!({"type": "boolean", "description": "present (true) on records kept, anonymised, after their person was erased"}),
    );
    props.insert(
        "masked".into(),
        json!({"type": "array", "items": {"type": "string"}, "description": "fields hidden from the caller's role (their value is \"•••\")"}),
    );
    let required: Vec<&str> = visible_fields(entity)
        .map(|f| f.name)
        .chain(["masked"])
        .collect();
    json!({"type": "object", "properties": props, "required": required})
}

fn input_schema(entity: Entity, create: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in visible_fields(entity).filter(|f| f.presence != Presence::System) {
        let mut schema = field_schema(f);
        if create && custos_domain::validate::defaulted_on_create(f.kind) {
            // Required in the record, optional in a create: Custos fills it.
            let d = schema["description"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            schema["description"] = json!(
                format!("{d} Defaults to the pipeline's first stage.")
                    .trim()
                    .to_string()
            );
        } else if create && f.presence == Presence::Required {
            required.push(f.name);
        }
        props.insert(f.name.into(), schema);
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

pub(super) fn problem_responses(codes: &[u16]) -> Map<String, Value> {
    let mut m = Map::new();
    for c in codes {
        let desc = match c {
            400 => "Malformed request (unreadable JSON or query)",
            401 => "Sign-in required",
            403 => "Not allowed for the caller's role",
            404 => "Not found",
            409 => "Conflicts with the current state",
            410 => "Erased: the person's data was destroyed",
            413 => "Body larger than 1 MiB",
            415 => "Body is not application/json",
            422 => "Invalid input; `errors` names each field",
            429 => "Rate limited",
            _ => "Error",
        };
        m.insert(
            c.to_string(),
            json!({"description": desc, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    m
}

pub(super) fn with(mut base: Map<String, Value>, code: &str, v: Value) -> Value {
    base.insert(code.into(), v);
    Value::Object(base)
}

pub(super) fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn list_parameters(entity: Entity) -> Vec<Value> {
    let mut ps = vec![
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}),
        json!({"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"}),
    ];
    let sortable: Vec<String> = inventory::fields(entity)
        .filter(|f| f.sortable)
        .flat_map(|f| [f.name.to_string(), format!("-{}", f.name)])
        .collect();
    ps.push(json!({"name": "sort", "in": "query", "schema": {"type": "string", "enum": sortable, "default": "-created_at"}}));
    if matches!(entity, Entity::Contact | Entity::Company | Entity::Deal) {
        let what = match entity {
            Entity::Contact => {
                "words of the first or last name (exact words, case-insensitive), or part of the company name"
            }
            Entity::Company => "part of the name or domain",
            _ => "part of the title",
        };
        ps.push(json!({"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}, "description": format!("search: {what}")}));
    }
    for f in inventory::fields(entity) {
        if f.name == "id" || matches!(f.protection, Protection::Sealed) {
            continue;
        }
        let desc = match f.protection {
            Protection::SealedIndexed { .. } => {
                "exact match after normalisation (searches sealed data through its blind index)"
            }
            _ => "exact match",
        };
        let schema = if f.kind == FieldKind::Tags {
            json!({"type": "string"})
        } else {
            field_schema(f)
        };
        ps.push(json!({"name": f.name, "in": "query", "schema": schema, "description": desc}));
    }
    ps
}

pub(super) fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}, "required": ["field", "message"]}}
            },
            "required": ["type", "title", "status", "detail"]
        }),
    );
    for e in Entity::CRM {
        let name = e.label();
        schemas.insert(name.into(), record_schema(e));
        schemas.insert(format!("{name}Create"), input_schema(e, true));
        schemas.insert(format!("{name}Update"), input_schema(e, false));
        schemas.insert(
            format!("{name}List"),
            json!({"type": "object", "properties": {
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                "next_cursor": {"type": ["string", "null"]},
                "partial": {"type": "boolean", "description": "The page stopped short of `limit`: its filters match few records, and one request reads a bounded part of the list. Pass next_cursor to search further."}
            }, "required": ["items", "next_cursor"]}),
        );
        let one = json!({"$ref": format!("#/components/schemas/{name}")});
        let tag = e.plural();
        paths.insert(
            format!("/api/v1/{}", e.plural()),
            json!({
                "get": {
                    "tags": [tag], "summary": format!("List {}", e.plural()), "operationId": format!("list_{}", e.plural()),
                    "parameters": list_parameters(e),
                    "responses": with(problem_responses(&[400, 401, 403, 422]), "200", json!({"description": "A page", "content": json_content(json!({"$ref": format!("#/components/schemas/{name}List")}))}))
                },
                "post": {
                    "tags": [tag], "summary": format!("Create a {}", e.name()), "operationId": format!("create_{}", e.name()),
                    "requestBody": {"required": true, "content": json_content(json!({"$ref": format!("#/components/schemas/{name}Create")}))},
                    "responses": with(problem_responses(&[400, 401, 403, 409, 413, 415, 422]), "201", json!({"description": "Created", "headers": {"Location": {"schema": {"type": "string"}}}, "content": json_content(one.clone())}))
                }
            }),
        );
        paths.insert(
            format!("/api/v1/{}/{{id}}", e.plural()),
            json!({
                "parameters": [id_param()],
                "get": {
                    "tags": [tag], "summary": format!("Read a {}", e.name()), "operationId": format!("get_{}", e.name()),
                    "responses": with(problem_responses(&[401, 403, 404, 410, 422]), "200", json!({"description": "The record", "content": json_content(one.clone())}))
                },
                "patch": {
                    "tags": [tag], "summary": format!("Change a {}", e.name()), "operationId": format!("update_{}", e.name()),
                    "requestBody": {"required": true, "content": json_content(json!({"$ref": format!("#/components/schemas/{name}Update")}))},
                    "responses": with(problem_responses(&[400, 401, 403, 404, 409, 410, 413, 415, 422]), "200", json!({"description": "The changed record", "content": json_content(one)}))
                },
                "delete": {
                    "tags": [tag], "summary": format!("Delete a {}", e.name()), "operationId": format!("delete_{}", e.name()),
                    "responses": with(problem_responses(&[401, 403, 404, 409, 422]), "204", json!({"description": "Deleted"}))
                }
            }),
        );
    }
    let text = |desc: &str| json!({"description": desc, "content": {"text/plain": {"schema": {"type": "string"}}}});
    super::openapi_identity::paths(&mut paths);
    let stages = json!({"type": "object", "additionalProperties": false, "properties": {"stages": {"type": "array", "items": {"type": "string"}}}, "required": ["stages"]});
    paths.insert("/api/v1/pipeline/stages".into(), json!({
        "get": {"tags": ["deals"], "summary": "Deal pipeline stages, in order", "operationId": "get_stages",
            "responses": with(problem_responses(&[401]), "200", json!({"description": "Stages", "content": json_content(stages.clone())}))},
        "put": {"tags": ["deals"], "summary": "Replace the pipeline stages (admin, manager)", "operationId": "put_stages",
            "requestBody": {"required": true, "content": json_content(stages.clone())},
            "responses": with(problem_responses(&[400, 401, 403, 409, 413, 415, 422]), "200", json!({"description": "Stages", "content": json_content(stages)}))}
    }));
    paths.insert("/api/v1/audit/checkpoint".into(), json!({"get": {
        "tags": ["audit"], "summary": "The latest signed checkpoint of the ledger (C2SP tlog-checkpoint signed note); signs a new one first if the ledger grew", "operationId": "audit_checkpoint",
        "responses": with(problem_responses(&[401]), "200", text("The signed note"))
    }}));
    paths.insert("/api/v1/audit/verifier-key".into(), json!({"get": {
        "tags": ["audit"], "summary": "Note verifier key of the ledger", "operationId": "audit_verifier_key",
        "responses": with(problem_responses(&[401]), "200", text("name+keyid+base64(0x01‖pubkey)"))
    }}));
    paths.insert("/api/v1/audit/leaves".into(), json!({"get": {
        "tags": ["audit"], "summary": "Raw ledger leaves start ≤ index < end (at most 1,000)", "operationId": "audit_leaves",
        "parameters": [
            {"name": "start", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}},
            {"name": "end", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}}
        ],
        "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "Leaves", "content": json_content(json!({"type": "object", "properties": {"leaves": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "data": {"type": "string", "contentEncoding": "base64"}}, "required": ["index", "data"]}}}, "required": ["leaves"]}))}))
    }}));
    let event_schema = json!({"type": "object", "properties": {
        "index": {"type": "integer"}, "v": {"type": "integer"}, "time": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"}, "action": {"type": "string"}, "subject_id": {"type": ["string", "null"]},
        "record": {"type": ["string", "null"]}, "categories": {"type": "array", "items": {"type": "string"}},
        "purpose": {"type": ["string", "null"]}, "outcome": {"type": "string", "enum": ["success", "denied", "failed", "not_found"]},
        "client": {"type": ["string", "null"]}, "request_id": {"type": ["string", "null"]}, "detail": {"type": ["string", "null"]}
    }, "required": ["index", "v", "time", "actor", "action", "outcome", "categories"]});
    paths.insert("/api/v1/audit/events".into(), json!({"get": {
        "tags": ["audit"], "summary": "Decoded ledger events, newest first (admin, auditor, privacy officer)", "operationId": "audit_events",
        "parameters": [
            {"name": "subject_id", "in": "query", "schema": {"type": "string", "format": "uuid"}, "description": "the data subject"},
            {"name": "actor_id", "in": "query", "schema": {"type": "string", "format": "uuid"}, "description": "the staff user who acted"},
            {"name": "action", "in": "query", "schema": {"type": "string"}, "description": "e.g. contact.read"},
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
            {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "next_before of the previous page"}
        ],
        "responses": with(problem_responses(&[400, 401, 403, 422]), "200", json!({"description": "Events", "content": json_content(json!({"type": "object", "properties": {"events": {"type": "array", "items": event_schema}, "next_before": {"type": ["integer", "null"]}}, "required": ["events", "next_before"]}))}))
    }}));
    let b64_list =
        json!({"type": "array", "items": {"type": "string", "contentEncoding": "base64"}});
    paths.insert("/api/v1/audit/proof/inclusion".into(), json!({"get": {
        "tags": ["audit"], "summary": "RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves", "operationId": "audit_inclusion_proof",
        "parameters": [
            {"name": "index", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}},
            {"name": "size", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1}}
        ],
        "responses": with(problem_responses(&[400, 401, 403, 422]), "200", json!({"description": "The proof", "content": json_content(json!({"type": "object", "properties": {"index": {"type": "integer"}, "size": {"type": "integer"}, "leaf_hash": {"type": "string", "contentEncoding": "base64"}, "proof": b64_list.clone()}, "required": ["index", "size", "leaf_hash", "proof"]}))}))
    }}));
    paths.insert("/api/v1/audit/proof/consistency".into(), json!({"get": {
        "tags": ["audit"], "summary": "RFC 9162 consistency proof between the trees of `from` and `to` leaves", "operationId": "audit_consistency_proof",
        "parameters": [
            {"name": "from", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}},
            {"name": "to", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}}
        ],
        "responses": with(problem_responses(&[400, 401, 403, 422]), "200", json!({"description": "The proof", "content": json_content(json!({"type": "object", "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}, "proof": b64_list}, "required": ["from", "to", "proof"]}))}))
    }}));
    paths.insert("/api/v1/audit/status".into(), json!({"get": {
        "tags": ["audit"], "summary": "Size, root, stored bytes and checkpoints of the ledger", "operationId": "audit_status",
        "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "Status", "content": json_content(json!({"type": "object", "properties": {"size": {"type": "integer"}, "root_hex": {"type": "string"}, "bytes": {"type": "integer"}, "checkpoints": {"type": "integer"}, "latest_checkpoint_size": {"type": ["integer", "null"]}}, "required": ["size", "root_hex", "bytes", "checkpoints", "latest_checkpoint_size"]}))}))
    }}));
    privacy_paths(&mut paths, &mut schemas);
    retention_paths(&mut paths, &mut schemas);
    processing_paths(&mut paths, &mut schemas);
    paths.insert("/healthz".into(), json!({"get": {
        "tags": ["ops"], "summary": "Liveness", "operationId": "healthz", "security": [],
        "description": "Always 200 while the server answers. `status` is `degraded` when the latest run of a background job (signing ledger checkpoints, scheduled backups) failed; `jobs` names each job that has run in this process, with its last success and, while failing, since when and why.",
        "responses": {"200": {"description": "Up", "content": json_content(json!({"type": "object", "properties": {"status": {"enum": ["ok", "degraded"]}, "jobs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "status": {"enum": ["ok", "failing"]}, "runs": {"type": "integer"}, "last_success": {"type": ["string", "null"], "format": "date-time"}, "failing_since": {"type": ["string", "null"], "format": "date-time"}, "error": {"type": ["string", "null"]}}, "required": ["name", "status", "runs", "last_success", "failing_since", "error"]}}}, "required": ["status", "jobs"]}))}}
    }}));
    paths.insert("/api/openapi.json".into(), json!({"get": {
        "tags": ["ops"], "summary": "This document", "operationId": "openapi", "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1 document", "content": json_content(json!({"type": "object"}))}}
    }}));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Custos API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON API of Custos, a privacy-first CRM. Every call that reads or changes personal data is recorded in the audit ledger. Errors are RFC 9457 problem details. Lists use keyset pagination: pass next_cursor back as cursor."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API token (custos token create) or a session token from /api/v1/auth/login"}}
        }
    })
}

fn id_path(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

/// Data-subject requests, consents, exports and the public portal endpoints.
fn privacy_paths(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let ts = json!({"type": "string", "format": "date-time"});
    let opt_ts = json!({"type": ["string", "null"], "format": "date-time"});
    schemas.insert("DsarRequest".into(), json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"type": "string", "enum": custos_domain::dsar::KINDS},
            "regime": {"type": "string", "enum": ["gdpr", "ccpa"]},
            "state": {"type": "string", "enum": custos_domain::dsar::STATES},
            "channel": {"type": "string", "enum": ["api", "staff", "portal"]},
            "subject_email": {"type": "string"},
            "contact_id": {"type": ["string", "null"], "format": "uuid"},
            "candidates": {"type": "array", "items": {"type": "string", "format": "uuid"}, "description": "contacts matching the requester's email while unmatched (several: choose one with /match)"},
            "received_at": ts, "due_at": ts,
            "clock": {"type": "string", "enum": ["on_track", "due_soon", "overdue", "closed"]},
            "extension_reason": {"type": ["string", "null"]},
            "verification": {"type": "string", "enum": ["none", "code", "operator_attested"]},
            "verified_at": opt_ts, "closed_at": opt_ts,
            "verification_reason": {"type": ["string", "null"], "description": "why the operator attested the requester's identity"},
            "details": {"type": ["string", "null"], "description": "what the person asked, in their words; for rectification, the corrected fields as JSON"},
            "verification_code": {"type": ["string", "null"], "pattern": "^[0-9]{6}$", "description": "the one-time code to send the person at subject_email, while identity is unverified and the code is live (null once used or void)"},
            "code_attempts_left": {"type": ["integer", "null"], "minimum": 0, "description": "wrong codes still accepted before the code is void (null when no code is live)"},
            "result": {"type": ["object", "null"], "description": "what was done, what was kept and why"}
        },
        "required": ["id", "kind", "regime", "state", "channel", "subject_email", "contact_id", "candidates", "received_at", "due_at", "clock", "verification"]
    }));
    let req = json!({"$ref": "#/components/schemas/DsarRequest"});
    let one = |desc: &str, codes: &[u16]| {
        with(
            problem_responses(codes),
            "200",
            json!({"description": desc, "content": json_content(req.clone())}),
        )
    };
    let body = |schema: Value| json!({"required": true, "content": json_content(schema)});
    paths.insert("/api/v1/dsar".into(), json!({
        "post": {
            "tags": ["privacy"], "summary": "Open a data-subject request; computes its legal due date", "operationId": "dsar_open",
            "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["kind", "regime", "subject_email"], "properties": {
                "kind": {"type": "string", "enum": custos_domain::dsar::KINDS},
                "regime": {"type": "string", "enum": ["gdpr", "ccpa"]},
                "subject_email": {"type": "string", "format": "email"},
                "details": {"description": "text, or for rectification an object of corrected contact fields"}
            }})),
            "responses": with(problem_responses(&[400, 401, 403, 413, 415, 422]), "201", json!({"description": "Opened; the one-time verification code and the person's status link are shown once", "content": json_content(json!({"allOf": [req.clone(), {"type": "object", "properties": {"verification_code": {"type": "string"}, "status_url": {"type": "string"}}, "required": ["verification_code", "status_url"]}]}))}))
        },
        "get": {
            "tags": ["privacy"], "summary": "The request queue, soonest due first (privacy officer, admin)", "operationId": "dsar_list",
            "parameters": [
                {"name": "state", "in": "query", "schema": {"type": "string", "enum": custos_domain::dsar::STATES}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}
            ],
            "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "Requests", "content": json_content(json!({"type": "object", "properties": {"items": {"type": "array", "items": req.clone()}, "next_cursor": {"type": "null"}}, "required": ["items", "next_cursor"]}))}))
        }
    }));
    paths.insert("/api/v1/dsar/summary".into(), json!({"get": {
        "tags": ["privacy"], "summary": "Open, due-soon and overdue requests and the median days to close", "operationId": "dsar_summary",
        "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "Figures", "content": json_content(json!({"type": "object", "properties": {"open": {"type": "integer"}, "due_soon": {"type": "integer"}, "overdue": {"type": "integer"}, "closed": {"type": "integer"}, "median_days_to_close": {"type": ["number", "null"]}, "closed_by_month": {"type": "array", "description": "the last six months, oldest first", "items": {"type": "object", "properties": {"month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "closed": {"type": "integer"}, "median_days_to_close": {"type": ["number", "null"]}}, "required": ["month", "closed", "median_days_to_close"]}}, "flags_in_force": {"type": "object", "description": "how many people each processing flag is in force on, every flag listed", "properties": {"restricted": {"type": "integer"}, "objected": {"type": "integer"}, "opted_out_sale": {"type": "integer"}, "limit_sensitive": {"type": "integer"}, "legal_hold": {"type": "integer"}}, "required": custos_domain::dsar::Flag::ALL.map(|f| f.as_str())}}, "required": ["open", "due_soon", "overdue", "closed", "median_days_to_close", "closed_by_month", "flags_in_force"]}))}))
    }}));
    paths.insert("/api/v1/dsar/{id}".into(), json!({"parameters": [id_path("id")], "get": {
        "tags": ["privacy"], "summary": "A request with its state, due date and result", "operationId": "dsar_get",
        "responses": one("The request", &[401, 403, 404, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/verify".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Record identity verification (operator_attested with a reason, or the one-time code)", "operationId": "dsar_verify",
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["method"], "properties": {"method": {"type": "string", "enum": ["operator_attested", "code"]}, "reason": {"type": "string"}, "code": {"type": "string"}}})),
        "responses": one("Verified", &[400, 401, 403, 404, 409, 413, 415, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/code".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Issue a new one-time code (the old one stops working; the count of wrong codes starts again)", "operationId": "dsar_new_code",
        "description": "A request accepts 5 wrong codes; then its code is void and a new one must be issued here. The new code is the response's verification_code.",
        "responses": one("The request with its new code", &[401, 403, 404, 409, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/match".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Choose the contact when several match the requester's email", "operationId": "dsar_match",
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["contact_id"], "properties": {"contact_id": {"type": "string", "format": "uuid"}}})),
        "responses": one("Matched", &[400, 401, 403, 404, 413, 415, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/extend".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Extend the due date once (GDPR +2 months, CCPA +45 days) with a reason", "operationId": "dsar_extend",
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {"reason": {"type": "string"}}})),
        "responses": one("Extended", &[400, 401, 403, 404, 409, 413, 415, 422])
    }}));
    let grounds: Vec<&str> = custos_domain::dsar::REJECT_GROUNDS
        .iter()
        .map(|(g, _)| *g)
        .collect();
    paths.insert("/api/v1/dsar/{id}/reject".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Refuse an open request on a ground the law gives, with the explanation the person is sent; closes it and changes no personal data", "operationId": "dsar_reject",
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["ground", "explanation"], "properties": {"ground": {"type": "string", "enum": grounds}, "explanation": {"type": "string", "minLength": 5, "maxLength": 2000}}})),
        "responses": one("Rejected; `result.rejected` holds the ground and explanation", &[400, 401, 403, 404, 409, 413, 415, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/fulfil".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Carry out a verified request", "operationId": "dsar_fulfil",
        "responses": one("Fulfilled; `result` says what was done and kept", &[401, 403, 404, 409, 410, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/lift".into(), json!({"parameters": [id_path("id")], "post": {
        "tags": ["privacy"], "summary": "Lift the restriction a request set", "operationId": "dsar_lift",
        "responses": one("Lifted", &[401, 403, 404, 409, 422])
    }}));
    paths.insert("/api/v1/dsar/{id}/package".into(), json!({"parameters": [id_path("id")], "get": {
        "tags": ["privacy"], "summary": "The access or portability package (JSON, or CSV per entity)", "operationId": "dsar_package",
        "parameters": [
            {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}},
            {"name": "entity", "in": "query", "schema": {"type": "string"}, "description": "with format=csv: contacts, activities, orders, consents or deals"}
        ],
        "responses": with(problem_responses(&[401, 403, 404, 409, 422]), "200", json!({"description": "The package", "content": {
            "application/json": {"schema": {"type": "object", "properties": {"schema": {"const": "custos.dsar-package/v1"}, "records": {"type": "object"}, "about_the_data": {"type": "array"}}, "required": ["schema", "records"]}},
            "text/csv": {"schema": {"type": "string"}}
        }}))
    }}));
    paths.insert("/api/v1/dsar/{id}/evidence".into(), json!({"parameters": [id_path("id")], "get": {
        "tags": ["privacy"], "summary": "Evidence pack: timeline, ledger inclusion proofs of each step, signed checkpoint", "operationId": "dsar_evidence",
        "responses": with(problem_responses(&[401, 403, 404, 422]), "200", json!({"description": "Evidence", "content": json_content(json!({"type": "object", "properties": {"schema": {"const": "custos.dsar-evidence/v1"}, "request": req.clone(), "timeline": {"type": "array"}, "checkpoint": {"type": "string"}, "verifier_key": {"type": "string"}}, "required": ["schema", "request", "timeline", "checkpoint", "verifier_key"]}))}))
    }}));
    let purposes = json!({"type": "string", "enum": custos_domain::dsar::CONSENT_PURPOSES});
    paths.insert("/api/v1/consents".into(), json!({
        "post": {
            "tags": ["privacy"], "summary": "Record consent given or withdrawn (entries are never changed)", "operationId": "consent_record",
            "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["contact_id", "purpose", "state"], "properties": {
                "contact_id": {"type": "string", "format": "uuid"}, "purpose": purposes.clone(),
                "state": {"type": "string", "enum": ["given", "withdrawn"]},
                "method": {"type": "string", "enum": ["form", "import", "api", "staff"], "default": "api"},
                "evidence": {"type": "string", "maxLength": 2000}
            }})),
            "responses": with(problem_responses(&[400, 401, 403, 410, 413, 415, 422]), "201", json!({"description": "Recorded", "content": json_content(json!({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "current": {"type": "object"}}, "required": ["id", "current"]}))}))
        },
        "get": {
            "tags": ["privacy"], "summary": "A person's consent history (newest first, with ISO/IEC 27560 receipts) and current state per purpose", "operationId": "consent_history",
            "parameters": [{"name": "contact_id", "in": "query", "required": true, "schema": {"type": "string", "format": "uuid"}}],
            "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "History", "content": json_content(json!({"type": "object", "properties": {"contact_id": {"type": "string", "format": "uuid"}, "current": {"type": "object"}, "entries": {"type": "array"}, "processing_flags": {"type": "array", "items": {"type": "string"}, "description": "limits in force: restricted, objected, opted_out_sale, limit_sensitive, legal_hold"}}, "required": ["current", "entries", "processing_flags"]}))}))
        }
    }));
    paths.insert("/api/v1/exports/contacts".into(), json!({"get": {
        "tags": ["privacy"], "summary": "Export contacts for a purpose; restricted, objecting, opted-out and non-consenting people are left out", "operationId": "export_contacts",
        "parameters": [{"name": "purpose", "in": "query", "schema": purposes.clone()}],
        "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "The export", "content": json_content(json!({"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}}, "excluded": {"type": "object"}}, "required": ["items", "excluded"]}))}))
    }}));
    paths.insert("/api/v1/privacy/requests".into(), json!({"post": {
        "tags": ["privacy portal"], "summary": "Public: a person opens a request (Sec-GPC: 1 also records an opt-out of sale/sharing)", "operationId": "portal_open", "security": [],
        "parameters": [{"name": "Sec-GPC", "in": "header", "schema": {"type": "string", "enum": ["1"]}}],
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["kind", "regime", "subject_email"], "properties": {"kind": {"type": "string", "enum": custos_domain::dsar::KINDS}, "regime": {"type": "string", "enum": ["gdpr", "ccpa"]}, "subject_email": {"type": "string", "format": "email"}, "details": {}}})),
        "responses": with(problem_responses(&[400, 413, 415, 422, 429]), "201", json!({"description": "Opened", "content": json_content(json!({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "state": {"type": "string"}, "due_at": {"type": "string"}, "status_url": {"type": "string"}, "status_token": {"type": "string"}, "gpc_opt_out_recorded": {"type": "boolean"}}, "required": ["id", "state", "due_at", "status_url", "status_token", "gpc_opt_out_recorded"]}))}))
    }}));
    paths.insert("/api/v1/privacy/requests/{id}".into(), json!({"parameters": [id_path("id")], "get": {
        "tags": ["privacy portal"], "summary": "Public: the status of a request, with the token of its status link", "operationId": "portal_status", "security": [],
        "parameters": [{"name": "token", "in": "query", "required": true, "schema": {"type": "string"}}],
        "responses": with(problem_responses(&[404, 422]), "200", json!({"description": "Status", "content": json_content(json!({"type": "object", "properties": {"kind": {"type": "string"}, "state": {"type": "string"}, "received_at": {"type": "string"}, "due_at": {"type": "string"}, "closed_at": {"type": ["string", "null"]}}, "required": ["kind", "state", "received_at", "due_at", "closed_at"]}))}))
    }}));
    paths.insert("/api/v1/privacy/opt-out".into(), json!({"post": {
        "tags": ["privacy portal"], "summary": "Public: opt out of sale and sharing (same answer whether or not the email is known)", "operationId": "portal_opt_out", "security": [],
        "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["email"], "properties": {"email": {"type": "string"}}})),
        "responses": with(problem_responses(&[400, 413, 415, 422]), "202", json!({"description": "Recorded", "content": json_content(json!({"type": "object", "properties": {"status": {"const": "recorded"}}, "required": ["status"]}))}))
    }}));
}

/// Retention runs, their certificates, and legal holds.
fn retention_paths(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let ts = json!({"type": "string", "format": "date-time"});
    let opt_ts = json!({"type": ["string", "null"], "format": "date-time"});
    let uuid = json!({"type": "string", "format": "uuid"});
    let outcome_props = json!({
        "policy": {"type": "string", "description": "entity.anchor.Ny, e.g. orders.completed_at.2y, or contacts.last_activity.3y"},
        "entity": {"type": "string"}, "years": {"type": "integer"}, "anchor": {"type": "string"},
        "disposal": {"enum": ["delete", "anonymise", "erase"]}, "version": {"type": "integer"},
        "cutoff": ts, "purged": {"type": "integer"}, "held": {"type": "integer"}
    });
    let outcome_required = json!([
        "policy", "entity", "years", "anchor", "disposal", "version", "cutoff", "purged", "held"
    ]);
    schemas.insert("RetentionPolicyOutcome".into(), json!({
        "type": "object", "description": "What one policy did in a run (or, in a preview, would do: purged = would be purged)",
        "properties": outcome_props, "required": outcome_required
    }));
    let mut preview_props = outcome_props.as_object().cloned().unwrap_or_default();
    preview_props.insert("first".into(), json!({"type": "array", "description": "the first due records, oldest first: ids and dates, never values",
        "items": {"type": "object", "properties": {"id": uuid, "anchor": ts, "held": {"type": "boolean"}}, "required": ["id", "anchor", "held"]}}));
    let mut preview_required = outcome_required.as_array().cloned().unwrap_or_default();
    preview_required.push(json!("first"));
    schemas.insert("RetentionPreview".into(), json!({
        "type": "object",
        "properties": {"at": ts, "policies": {"type": "array", "items": {"type": "object", "properties": preview_props, "required": preview_required}}},
        "required": ["at", "policies"]
    }));
    let leaf = json!({"type": "object", "properties": {
        "index": {"type": "integer"}, "data": {"type": "string", "description": "the leaf bytes, base64"},
        "leaf_hash": {"type": "string"}, "inclusion_proof": {"type": "array", "items": {"type": "string"}}
    }, "required": ["index", "data", "leaf_hash", "inclusion_proof"]});
    schemas.insert("PurgeCertificate".into(), json!({
        "type": "object",
        "description": "The evidence of one retention run; examples/auditor/verify_certificate.py checks it offline",
        "properties": {
            "format": {"const": custos_service::CERTIFICATE_FORMAT}, "run_id": uuid, "actor": {"type": "string"},
            "started_at": ts, "finished_at": ts,
            "policies": {"type": "array", "items": {"$ref": "#/components/schemas/RetentionPolicyOutcome"}},
            "ledger": {"type": "object", "properties": {
                "first_index": {"type": "integer"}, "last_index": {"type": "integer"},
                "checkpoint": {"type": "string", "description": "C2SP signed note"}, "verifier_key": {"type": "string"},
                "tree_size": {"type": "integer"}, "leaves": {"type": "array", "items": leaf}
            }, "required": ["first_index", "last_index", "checkpoint", "verifier_key", "tree_size", "leaves"]}
        },
        "required": ["format", "run_id", "actor", "started_at", "finished_at", "policies", "ledger"]
    }));
    schemas.insert("RetentionRun".into(), json!({
        "type": "object",
        "properties": {"id": uuid, "started_at": ts, "started_ms": {"type": "integer"}, "finished_at": opt_ts,
            "actor": {"type": "string"}, "purged": {"type": "integer"}, "held": {"type": "integer"}},
        "required": ["id", "started_at", "started_ms", "finished_at", "actor", "purged", "held"]
    }));
    schemas.insert("LegalHold".into(), json!({
        "type": "object",
        "properties": {
            "id": uuid, "subject_id": uuid, "reason": {"type": ["string", "null"]},
            "owner_id": {"type": ["string", "null"], "format": "uuid"},
            "review_on": {"type": "string", "format": "date"}, "review_overdue": {"type": "boolean"},
            "placed_at": ts, "placed_by": {"type": "string"}, "lifted_at": opt_ts, "lifted_by": {"type": ["string", "null"]}
        },
        "required": ["id", "subject_id", "reason", "owner_id", "review_on", "review_overdue", "placed_at", "placed_by", "lifted_at", "lifted_by"]
    }));
    let one = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let items = |name: &str| json!({"type": "object", "properties": {"items": {"type": "array", "items": one(name)}}, "required": ["items"]});
    paths.insert("/api/v1/retention/preview".into(), json!({"get": {
        "tags": ["privacy"], "summary": "What a retention run would purge now, per policy", "operationId": "retention_preview",
        "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "Counts and the first due records", "content": json_content(one("RetentionPreview"))}))
    }}));
    paths.insert("/api/v1/retention/runs".into(), json!({
        "get": {
            "tags": ["privacy"], "summary": "Past retention runs, newest first", "operationId": "retention_runs",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "Runs", "content": json_content(items("RetentionRun"))}))
        },
        "post": {
            "tags": ["privacy"], "summary": "Run retention now (or finish a stopped run) and return its certificate", "operationId": "retention_run",
            "requestBody": {"required": false, "content": json_content(json!({"type": "object", "properties": {"batch": {"type": "integer", "minimum": 1, "maximum": 10000}}, "additionalProperties": false}))},
            "responses": with(problem_responses(&[401, 403, 422]), "201", json!({"description": "The finished run", "content": json_content(json!({"type": "object", "properties": {"id": uuid, "resumed": {"type": "boolean"}, "certificate": one("PurgeCertificate")}, "required": ["id", "resumed", "certificate"]}))}))
        }
    }));
    paths.insert("/api/v1/retention/runs/{id}/certificate".into(), json!({
        "parameters": [id_path("id")],
        "get": {
            "tags": ["privacy"], "summary": "The purge certificate of a finished run", "operationId": "retention_certificate",
            "responses": with(problem_responses(&[401, 403, 404, 409, 422]), "200", json!({"description": "The certificate", "content": json_content(one("PurgeCertificate"))}))
        }
    }));
    let change = json!({"type": "object", "properties": {
        "version": {"type": "integer"}, "years": {"type": "integer"}, "previous_years": {"type": "integer"},
        "reason": {"type": "string"}, "by": {"type": "string"}, "at": ts, "leaf": {"type": "integer"}
    }, "required": ["version", "years", "previous_years", "reason", "by", "at", "leaf"]});
    schemas.insert("RetentionPolicy".into(), json!({
        "type": "object",
        "description": "A retention policy in force: the inventory's rule with the period the privacy officer set (version 1 is the inventory's default)",
        "properties": {
            "key": {"type": "string"}, "name": {"type": "string"}, "entity": {"type": "string"}, "anchor": {"type": "string"},
            "disposal": {"enum": ["delete", "anonymise", "erase"]},
            "years": {"type": "integer", "minimum": 1, "maximum": custos_domain::retention::MAX_YEARS},
            "default_years": {"type": "integer"}, "version": {"type": "integer", "minimum": 1},
            "history": {"type": "array", "items": change}
        },
        "required": ["key", "name", "entity", "anchor", "disposal", "years", "default_years", "version", "history"]
    }));
    schemas.insert("RetentionPolicyImpact".into(), json!({
        "type": "object",
        "description": "What a new period would do on the next run, over every policy",
        "properties": {"key": {"type": "string"}, "years_now": {"type": "integer"}, "years": {"type": "integer"},
            "due_now": {"type": "integer"}, "due_then": {"type": "integer"}, "more": {"type": "integer"}},
        "required": ["key", "years_now", "years", "due_now", "due_then", "more"]
    }));
    let key_path = json!({"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "the policy's key, e.g. orders.completed_at"});
    paths.insert("/api/v1/retention/policies".into(), json!({"get": {
        "tags": ["privacy"], "summary": "The retention policies in force, with their versions", "operationId": "retention_policies",
        "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "Policies", "content": json_content(items("RetentionPolicy"))}))
    }}));
    paths.insert("/api/v1/retention/policies/{key}".into(), json!({
        "parameters": [key_path.clone()],
        "put": {
            "tags": ["privacy"], "summary": "Give a policy another period, as its next version; a change that purges more needs confirm: true (409 says how many)", "operationId": "retention_policy_set",
            "requestBody": {"required": true, "content": json_content(json!({"type": "object", "properties": {
                "years": {"type": "integer", "minimum": 1, "maximum": custos_domain::retention::MAX_YEARS},
                "reason": {"type": "string", "minLength": 1, "maxLength": custos_service::POLICY_REASON_MAX},
                "confirm": {"type": "boolean"}
            }, "required": ["years", "reason"], "additionalProperties": false}))},
            "responses": with(problem_responses(&[401, 403, 404, 409, 422]), "200", json!({"description": "The policy with its new version", "content": json_content(one("RetentionPolicy"))}))
        }
    }));
    paths.insert("/api/v1/retention/policies/{key}/impact".into(), json!({
        "parameters": [key_path],
        "get": {
            "tags": ["privacy"], "summary": "How many more records a new period would purge on the next run", "operationId": "retention_policy_impact",
            "parameters": [{"name": "years", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": custos_domain::retention::MAX_YEARS}}],
            "responses": with(problem_responses(&[401, 403, 404, 422]), "200", json!({"description": "The counts", "content": json_content(one("RetentionPolicyImpact"))}))
        }
    }));
    paths.insert("/api/v1/holds".into(), json!({
        "get": {
            "tags": ["privacy"], "summary": "Legal holds in force (or every hold on one person)", "operationId": "holds",
            "parameters": [{"name": "subject_id", "in": "query", "schema": {"type": "string", "format": "uuid"}}],
            "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "Holds", "content": json_content(items("LegalHold"))}))
        },
        "post": {
            "tags": ["privacy"], "summary": "Place a legal hold on a person: their records are kept from retention and erasure", "operationId": "hold_place",
            "requestBody": {"required": true, "content": json_content(json!({"type": "object", "properties": {
                "subject_id": uuid, "reason": {"type": "string", "minLength": 1, "maxLength": custos_service::HOLD_REASON_MAX},
                "review_on": {"type": "string", "format": "date"}, "owner_id": uuid
            }, "required": ["subject_id", "reason"], "additionalProperties": false}))},
            "responses": with(problem_responses(&[401, 403, 410, 422]), "201", json!({"description": "The hold", "content": json_content(one("LegalHold"))}))
        }
    }));
    paths.insert("/api/v1/holds/{id}/lift".into(), json!({
        "parameters": [id_path("id")],
        "post": {
            "tags": ["privacy"], "summary": "Lift a legal hold", "operationId": "hold_lift",
            "responses": with(problem_responses(&[401, 403, 404, 409, 422]), "200", json!({"description": "The lifted hold", "content": json_content(one("LegalHold"))}))
        }
    }));
}

fn processing_paths(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let ts = json!({"type": "string", "format": "date-time"});
    let uuid = json!({"type": "string", "format": "uuid"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let transfer = json!({"enum": ["none", "adequacy", "sccs", "bcrs", "derogation"]});
    schemas.insert("Controller".into(), json!({
        "type": "object", "description": "The controller and DPO, as the record of processing and the privacy notice name them (empty strings until entered)",
        "properties": {"name": {"type": "string"}, "address": {"type": "string"}, "email": {"type": "string"},
            "dpo_name": {"type": "string"}, "dpo_email": {"type": "string"}},
        "required": ["name", "address", "email", "dpo_name", "dpo_email"]
    }));
    schemas.insert("Processor".into(), json!({
        "type": "object", "description": "One processor of the register (GDPR Art. 28)",
        "properties": {"id": uuid, "name": {"type": "string"}, "service": {"type": "string"}, "categories": strings,
            "country": {"type": "string", "description": "ISO 3166-1 alpha-2"}, "transfer": transfer,
            "dpa_signed_on": {"type": ["string", "null"], "format": "date"}, "review_on": {"type": "string", "format": "date"},
            "updated_at": ts},
        "required": ["id", "name", "service", "categories", "country", "transfer", "dpa_signed_on", "review_on", "updated_at"]
    }));
    let activity = json!({"type": "object", "properties": {
        "purpose": {"type": "string"}, "subjects": strings, "categories": strings, "lawful_bases": strings,
        "recipients": strings, "processors": strings,
        "retention": {"type": "array", "items": {"type": "object", "properties": {"rule": {"type": "string"}}, "required": ["rule"]}},
        "sources": strings, "fields": strings
    }, "required": ["purpose", "subjects", "categories", "lawful_bases", "recipients", "processors", "retention", "sources", "fields"]});
    schemas.insert("RecordOfProcessing".into(), json!({
        "type": "object", "description": "The record of processing activities (GDPR Art. 30(1)), generated from the inventory, the register and the running configuration",
        "properties": {
            "format": {"const": custos_service::RECORD_FORMAT}, "generated_at": ts,
            "controller": {"$ref": "#/components/schemas/Controller"},
            "activities": {"type": "array", "items": activity},
            "without_purpose": strings,
            "processors": {"type": "array", "items": {"$ref": "#/components/schemas/Processor"}},
            "transfers": {"type": "array", "items": {"type": "object", "properties": {"processor": {"type": "string"}, "country": {"type": "string"}, "mechanism": transfer}, "required": ["processor", "country", "mechanism"]}},
            "security": {"type": "array", "items": {"type": "object", "properties": {"measure": {"type": "string"}, "state": {"type": "string"}}, "required": ["measure", "state"]}}
        },
        "required": ["format", "generated_at", "controller", "activities", "without_purpose", "processors", "transfers", "security"]
    }));
    schemas.insert("MinimisationDecision".into(), json!({
        "type": "object",
        "properties": {"decision": {"enum": ["keep", "stop_collecting"]}, "reason": {"type": "string"}, "decided_by": {"type": "string"}, "decided_at": ts},
        "required": ["decision", "reason", "decided_by", "decided_at"]
    }));
    let count = json!({"type": "integer", "minimum": 0});
    schemas.insert("MinimisationReport".into(), json!({
        "type": "object", "description": "Per field: reads, exports and writes in the window (from the ledger), values held (counted on stored columns), flags and the decision",
        "properties": {
            "months": {"type": "integer"}, "from": ts, "to": ts, "entries_scanned": count,
            "fields": {"type": "array", "items": {"type": "object", "properties": {
                "entity": {"type": "string"}, "field": {"type": "string"}, "label": {"type": "string"}, "category": {"type": "string"},
                "purposes": strings, "optional": {"type": "boolean"}, "reads": count, "exports": count, "writes": count,
                "held": count, "records": count,
                "flags": {"type": "array", "items": {"enum": ["no_purpose", "unread", "held_unused"]}},
                "decision": {"oneOf": [{"$ref": "#/components/schemas/MinimisationDecision"}, {"type": "null"}]}
            }, "required": ["entity", "field", "label", "category", "purposes", "optional", "reads", "exports", "writes", "held", "records", "flags", "decision"]}},
            "reviewed_at": {"type": ["string", "null"], "format": "date-time"}, "review_due_on": {"type": "string", "format": "date"},
            "review_overdue": {"type": "boolean"}
        },
        "required": ["months", "from", "to", "entries_scanned", "fields", "reviewed_at", "review_due_on", "review_overdue"]
    }));
    let one = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let processor_body = json!({"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200}, "service": {"type": "string", "minLength": 1, "maxLength": 200},
        "categories": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"}, "transfer": transfer,
        "dpa_signed_on": {"type": ["string", "null"], "format": "date"}, "review_on": {"type": ["string", "null"], "format": "date"}
    }, "required": ["name", "service", "categories", "country"], "additionalProperties": false});
    paths.insert("/api/v1/processing".into(), json!({"get": {
        "tags": ["privacy"], "summary": "The record of processing activities (GDPR Art. 30)", "operationId": "record_of_processing",
        "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "The record", "content": json_content(one("RecordOfProcessing"))}))
    }}));
    paths.insert("/api/v1/processors".into(), json!({
        "get": {
            "tags": ["privacy"], "summary": "The processor register, by name", "operationId": "processors",
            "responses": with(problem_responses(&[401, 403]), "200", json!({"description": "Processors", "content": json_content(json!({"type": "object", "properties": {"items": {"type": "array", "items": one("Processor")}}, "required": ["items"]}))}))
        },
        "post": {
            "tags": ["privacy"], "summary": "Add a processor to the register", "operationId": "processor_create",
            "requestBody": {"required": true, "content": json_content(processor_body.clone())},
            "responses": with(problem_responses(&[401, 403, 409, 422]), "201", json!({"description": "The processor", "content": json_content(one("Processor"))}))
        }
    }));
    paths.insert("/api/v1/processors/{id}".into(), json!({
        "parameters": [id_path("id")],
        "get": {
            "tags": ["privacy"], "summary": "One processor", "operationId": "processor",
            "responses": with(problem_responses(&[401, 403, 404, 422]), "200", json!({"description": "The processor", "content": json_content(one("Processor"))}))
        },
        "put": {
            "tags": ["privacy"], "summary": "Replace a processor's entry", "operationId": "processor_update",
            "requestBody": {"required": true, "content": json_content(processor_body)},
            "responses": with(problem_responses(&[401, 403, 404, 422]), "200", json!({"description": "The processor", "content": json_content(one("Processor"))}))
        },
        "delete": {
            "tags": ["privacy"], "summary": "Remove a processor from the register", "operationId": "processor_delete",
            "responses": with(problem_responses(&[401, 403, 404, 422]), "204", json!({"description": "Removed"}))
        }
    }));
    paths.insert("/api/v1/settings/controller".into(), json!({
        "get": {
            "tags": ["privacy"], "summary": "The controller and DPO details", "operationId": "controller",
            "responses": with(problem_responses(&[401]), "200", json!({"description": "The details", "content": json_content(one("Controller"))}))
        },
        "put": {
            "tags": ["privacy"], "summary": "Set the controller and DPO details (administrators)", "operationId": "controller_set",
            "requestBody": {"required": true, "content": json_content(json!({"type": "object", "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200}, "address": {"type": "string", "maxLength": 500},
                "email": {"type": "string", "format": "email"}, "dpo_name": {"type": "string", "maxLength": 200},
                "dpo_email": {"type": "string", "format": "email"}
            }, "required": ["name", "email"], "additionalProperties": false}))},
            "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "The details", "content": json_content(one("Controller"))}))
        }
    }));
    paths.insert("/api/v1/minimisation".into(), json!({"get": {
        "tags": ["privacy"], "summary": "The data-minimisation review over the last months", "operationId": "minimisation_report",
        "parameters": [{"name": "months", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 120}}],
        "responses": with(problem_responses(&[401, 403, 422]), "200", json!({"description": "The report", "content": json_content(one("MinimisationReport"))}))
    }}));
    paths.insert("/api/v1/minimisation/{entity}/{field}".into(), json!({
        "parameters": [
            {"name": "entity", "in": "path", "required": true, "schema": {"enum": ["contact", "company", "deal", "activity", "order"]}},
            {"name": "field", "in": "path", "required": true, "schema": {"type": "string"}}
        ],
        "put": {
            "tags": ["privacy"], "summary": "Record the decision on a field: keep it (with the reason) or stop collecting it", "operationId": "minimisation_decide",
            "requestBody": {"required": true, "content": json_content(json!({"type": "object", "properties": {
                "decision": {"enum": ["keep", "stop_collecting"]}, "reason": {"type": "string", "minLength": 1, "maxLength": custos_service::DECISION_REASON_MAX}
            }, "required": ["decision", "reason"], "additionalProperties": false}))},
            "responses": with(problem_responses(&[401, 403, 404, 422]), "200", json!({"description": "The decision", "content": json_content(one("MinimisationDecision"))}))
        }
    }));
}
