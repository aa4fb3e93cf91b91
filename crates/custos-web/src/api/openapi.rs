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
        // A masked field holds "•••" instead of its value.
        props.insert(
            f.name.into(),
            json!({"anyOf": [field_schema(f), {"const": "•••"}]}),
        );
    }
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
        props.insert(f.name.into(), field_schema(f));
        if create && f.presence == Presence::Required {
            required.push(f.name);
        }
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

fn problem_responses(codes: &[u16]) -> Map<String, Value> {
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

fn with(mut base: Map<String, Value>, code: &str, v: Value) -> Value {
    base.insert(code.into(), v);
    Value::Object(base)
}

fn json_content(schema: Value) -> Value {
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

fn id_param() -> Value {
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
                "next_cursor": {"type": ["string", "null"]}
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
    paths.insert("/api/v1/auth/login".into(), json!({"post": {
        "tags": ["auth"], "summary": "Sign in with email and password", "operationId": "login", "security": [],
        "requestBody": {"required": true, "content": json_content(json!({"type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string"}}}))},
        "responses": with(problem_responses(&[400, 401, 415, 422, 429]), "200", json!({"description": "Signed in", "content": json_content(json!({"type": "object", "properties": {"status": {"const": "ok"}, "token": {"type": "string"}}, "required": ["status", "token"]}))}))
    }}));
    paths.insert("/api/v1/auth/logout".into(), json!({"post": {
        "tags": ["auth"], "summary": "End this session", "operationId": "logout",
        "responses": with(problem_responses(&[401]), "204", json!({"description": "Signed out"}))
    }}));
    paths.insert("/api/v1/me".into(), json!({"get": {
        "tags": ["auth"], "summary": "The signed-in user", "operationId": "me",
        "responses": with(problem_responses(&[401]), "200", json!({"description": "The user", "content": json_content(json!({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "email": {"type": "string"}, "display_name": {"type": ["string", "null"]}, "role": {"type": "string"}}, "required": ["id", "email", "display_name", "role"]}))}))
    }}));
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
    paths.insert("/healthz".into(), json!({"get": {
        "tags": ["ops"], "summary": "Liveness", "operationId": "healthz", "security": [],
        "responses": {"200": {"description": "Up", "content": json_content(json!({"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}))}}
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
