//! The OpenAPI operations of the identity routes (`identity.rs`).

use super::openapi::{id_param, json_content, problem_responses, with};
use serde_json::{Map, Value, json};

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": props, "required": required})
}

/// An operation. `ok` is (status, description, schema or null for no body).
fn op(
    tag: &str,
    summary: &str,
    id: &str,
    body: Option<Value>,
    ok: (&str, &str, Value),
    errors: &[u16],
    public: bool,
) -> Value {
    let mut errs = errors.to_vec();
    if body.is_some() {
        errs.extend([400, 413, 415]);
    }
    errs.sort_unstable();
    errs.dedup();
    let response = if ok.2.is_null() {
        json!({"description": ok.1})
    } else {
        json!({"description": ok.1, "content": json_content(ok.2)})
    };
    let mut o = json!({
        "tags": [tag], "summary": summary, "operationId": id,
        "responses": with(problem_responses(&errs), ok.0, response),
    });
    if let Some(b) = body {
        o["requestBody"] = json!({"required": true, "content": json_content(b)});
    }
    if public {
        o["security"] = json!([]);
    }
    o
}

fn with_id(mut item: Value) -> Value {
    item["parameters"] = json!([id_param()]);
    item
}

/// Adds the identity paths.
pub(super) fn paths(paths: &mut Map<String, Value>) {
    let session = json!({"type": "object", "properties": {
        "status": {"const": "ok"}, "token": {"type": "string", "description": "session token: send it as Authorization: Bearer"},
        "failed_attempts_since_last_sign_in": {"type": "integer", "minimum": 0},
        "mfa_enrolment_required": {"type": "boolean", "description": "the MFA policy requires a second factor and the account has none: this session may only set one up (/api/v1/me/totp, /api/v1/me/passkeys), read /api/v1/me and sign out"}
    }, "required": ["status", "token"]});
    let mfa_required = json!({"type": "object", "properties": {
        "status": {"const": "mfa_required"}, "mfa_token": {"type": "string", "description": "give it to POST /api/v1/auth/mfa within 5 minutes"},
        "methods": {"type": "array", "items": {"type": "string", "enum": ["totp", "webauthn", "recovery_code"]}}
    }, "required": ["status", "mfa_token", "methods"]});
    let credential = json!({"type": "object", "description": "the PublicKeyCredential from navigator.credentials, its binary members as base64url"});
    let options = json!({"type": "object", "properties": {"publicKey": {"type": "object", "description": "options for navigator.credentials, binary members as base64url"}}, "required": ["publicKey"]});
    let token_or_null = json!({"type": "object", "properties": {"token": {"type": ["string", "null"], "description": "the caller's new session token (every session of the user ended)"}}, "required": ["token"]});
    let codes = json!({"type": "object", "properties": {
        "recovery_codes": {"type": "array", "items": {"type": "string"}, "description": "single-use codes, shown once"},
        "token": {"type": "string", "description": "the caller's new session token (every session of the user ended)"},
        "passkey": {"type": "object"}
    }, "required": ["recovery_codes"]});
    let session_item = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "user_id": {"type": "string", "format": "uuid"},
        "created_at": {"type": "string", "format": "date-time"}, "last_seen_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"}, "kind": {"type": "string", "enum": ["full", "enrol"]},
        "device": {"type": ["string", "null"]}, "address": {"type": ["string", "null"]}, "current": {"type": "boolean"}
    }, "required": ["id", "user_id", "created_at", "last_seen_at", "expires_at", "kind", "current"]});
    let token_item = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "user_id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"}, "last_used_at": {"type": ["string", "null"]},
        "expires_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]},
        "scopes": {"type": ["array", "null"], "items": {"type": "string", "enum": custos_service::TOKEN_SCOPES}}
    }, "required": ["id", "user_id", "name", "created_at"]});
    let passkey = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"}, "last_used_at": {"type": ["string", "null"]}
    }, "required": ["id", "name", "created_at"]});
    let user = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "email": {"type": "string"}, "display_name": {"type": ["string", "null"]},
        "role": {"type": "string"}, "disabled": {"type": "boolean"}, "team": {"type": ["string", "null"]}, "totp": {"type": "boolean"},
        "passkeys": {"type": "integer"}, "recovery_codes_left": {"type": "integer"}, "mfa_required": {"type": "boolean"}
    }, "required": ["id", "email", "display_name", "role", "disabled", "team", "totp"]});
    let items = |s: &Value| json!({"type": "object", "properties": {"items": {"type": "array", "items": s}}, "required": ["items"]});
    let no_body = Value::Null;

    let mut put = |path: &str, v: Value| {
        paths.insert(path.to_string(), v);
    };
    put(
        "/api/v1/auth/login",
        json!({"post": op("auth", "Sign in with email and password. Failed attempts are throttled per account and address (429 without checking the password); unknown accounts get the same answers.", "login",
        Some(obj(json!({"email": {"type": "string"}, "password": {"type": "string"}}), &["email", "password"])),
        ("200", "Signed in, or a second factor is needed", json!({"oneOf": [session, mfa_required]})), &[401, 422, 429], true)}),
    );
    put(
        "/api/v1/auth/mfa",
        json!({"post": op("auth", "Second step of sign-in: a code from the authenticator app (each accepted once), a recovery code, or a WebAuthn assertion", "login_mfa",
        Some(json!({"type": "object", "additionalProperties": false, "properties": {"mfa_token": {"type": "string"}, "code": {"type": "string"}, "credential": credential}, "required": ["mfa_token"]})),
        ("200", "Signed in", session.clone()), &[401, 422, 429], true)}),
    );
    put(
        "/api/v1/auth/mfa/webauthn",
        json!({"post": op("auth", "WebAuthn options for the second step of sign-in", "login_mfa_webauthn_options",
        Some(obj(json!({"mfa_token": {"type": "string"}}), &["mfa_token"])), ("200", "Options for navigator.credentials.get", options.clone()), &[401, 409, 422], true)}),
    );
    put(
        "/api/v1/auth/logout",
        json!({"post": op("auth", "End this session", "logout", None, ("204", "Signed out", no_body.clone()), &[401], false)}),
    );
    put(
        "/api/v1/auth/step-up",
        json!({"post": op("auth", "Confirm the second factor again (sessions): sensitive actions (exports, erasure, role and key changes, API tokens) need one in the last 10 minutes and answer 403 /problems/step-up-required otherwise", "step_up",
        Some(json!({"type": "object", "additionalProperties": false, "properties": {"code": {"type": "string"}, "credential": credential}})), ("204", "Confirmed", no_body.clone()), &[401, 403, 409, 422], false)}),
    );
    put(
        "/api/v1/auth/step-up/webauthn",
        json!({"post": op("auth", "WebAuthn options for step-up", "step_up_webauthn_options", None, ("200", "Options for navigator.credentials.get", options.clone()), &[401, 403, 409], false)}),
    );
    put(
        "/api/v1/me",
        json!({"get": op("me", "The signed-in user and their second factors", "me", None, ("200", "The user", user.clone()), &[401], false)}),
    );
    put(
        "/api/v1/me/totp",
        json!({
            "post": op("me", "Start setting up an authenticator app: a new secret (shown once) and its otpauth URI; confirm with a code", "totp_begin", None,
                ("200", "The secret", json!({"type": "object", "properties": {"secret": {"type": "string", "description": "base32"}, "otpauth_uri": {"type": "string"}}, "required": ["secret", "otpauth_uri"]})), &[401, 403], false),
            "delete": op("me", "Remove the authenticator app (step-up; not the last factor while MFA is required); every session ends", "totp_remove", None, ("200", "Removed", token_or_null.clone()), &[401, 403, 404, 409], false)
        }),
    );
    put(
        "/api/v1/me/totp/confirm",
        json!({"post": op("me", "Confirm the authenticator app with a code from it: returns ten recovery codes; every session of the user ends and the caller gets a new one", "totp_confirm",
        Some(obj(json!({"code": {"type": "string"}}), &["code"])), ("200", "Confirmed", codes.clone()), &[401, 403, 409, 422], false)}),
    );
    put(
        "/api/v1/me/recovery-codes",
        json!({"post": op("me", "New recovery codes (step-up); the old ones stop working", "recovery_codes", None, ("200", "Codes", codes.clone()), &[401, 403, 409], false)}),
    );
    put(
        "/api/v1/me/passkeys",
        json!({
            "get": op("me", "My passkeys and security keys", "passkeys", None, ("200", "Passkeys", items(&passkey)), &[401], false),
            "post": op("me", "Register a passkey from navigator.credentials.create (after POST /api/v1/me/passkeys/options); every session ends and the caller gets a new one", "passkey_register",
                Some(obj(json!({"name": {"type": "string", "maxLength": 60}, "credential": credential}), &["name", "credential"])), ("201", "Registered", codes.clone()), &[401, 403, 409, 422], false)
        }),
    );
    put(
        "/api/v1/me/passkeys/options",
        json!({"post": op("me", "Options for navigator.credentials.create", "passkey_options", None, ("200", "Options", options), &[401, 403], false)}),
    );
    put(
        "/api/v1/me/passkeys/{id}",
        with_id(
            json!({"delete": op("me", "Remove a passkey (step-up; not the last factor while MFA is required)", "passkey_remove", None, ("200", "Removed", token_or_null.clone()), &[401, 403, 404, 409, 422], false)}),
        ),
    );
    put(
        "/api/v1/me/sessions",
        json!({"get": op("me", "My live sessions and devices", "my_sessions", None, ("200", "Sessions", items(&session_item)), &[401], false)}),
    );
    put(
        "/api/v1/me/sessions/{id}",
        with_id(
            json!({"delete": op("me", "End one of my sessions", "my_session_revoke", None, ("204", "Ended", no_body.clone()), &[401, 404, 422], false)}),
        ),
    );
    put(
        "/api/v1/me/sessions/revoke-others",
        json!({"post": op("me", "End all my other sessions", "my_sessions_revoke_others", None,
        ("200", "How many ended", json!({"type": "object", "properties": {"revoked": {"type": "integer"}}, "required": ["revoked"]})), &[401], false)}),
    );
    put(
        "/api/v1/me/password",
        json!({"put": op("me", "Change my password (12 to 128 characters, not a common one); every session ends and a session caller gets a new one", "password_change",
        Some(obj(json!({"current_password": {"type": "string"}, "new_password": {"type": "string", "minLength": 12, "maxLength": 128}}), &["current_password", "new_password"])),
        ("200", "Changed", token_or_null.clone()), &[401, 422], false)}),
    );
    put(
        "/api/v1/me/tokens",
        json!({
            "get": op("me", "My API tokens", "my_tokens", None, ("200", "Tokens", items(&token_item)), &[401], false),
            "post": op("me", "Create an API token (step-up in sessions), optionally expiring and limited to scopes; shown once", "token_create",
                Some(obj(json!({"name": {"type": "string", "maxLength": 100}, "expires_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 366},
                    "scopes": {"type": ["array", "null"], "items": {"type": "string", "enum": custos_service::TOKEN_SCOPES}}, "email": {"type": "string", "description": "administrators: for another user"}}), &["name"])),
                ("201", "Created", json!({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "token": {"type": "string"}}, "required": ["id", "token"]})), &[401, 403, 422], false)
        }),
    );
    put(
        "/api/v1/me/tokens/{id}",
        with_id(
            json!({"delete": op("me", "Revoke one of my API tokens", "token_revoke", None, ("204", "Revoked", no_body.clone()), &[401, 404, 422], false)}),
        ),
    );
    put(
        "/api/v1/users",
        json!({
            "get": op("admin", "Staff accounts (administrators)", "users", None, ("200", "Users", items(&user)), &[401, 403], false),
            "post": op("admin", "Create a staff account (administrators)", "user_create",
                Some(obj(json!({"email": {"type": "string"}, "role": {"type": "string"}, "password": {"type": "string", "minLength": 12, "maxLength": 128}, "display_name": {"type": "string"}}), &["email", "role", "password"])),
                ("201", "Created", user.clone()), &[401, 403, 409, 422], false)
        }),
    );
    put(
        "/api/v1/users/{id}",
        with_id(
            json!({"patch": op("admin", "Change a staff account: role (step-up), team, name, disabled (ends every session)", "user_update",
        Some(json!({"type": "object", "additionalProperties": false, "properties": {"role": {"type": "string"}, "disabled": {"type": "boolean"}, "team": {"type": ["string", "null"]}, "display_name": {"type": ["string", "null"]}}})),
        ("200", "The account", json!({"type": "object"})), &[401, 403, 404, 409, 422], false)}),
        ),
    );
    put(
        "/api/v1/users/{id}/reset-password",
        with_id(
            json!({"post": op("admin", "Set a new password for a user (step-up); their sessions end", "user_reset_password",
        Some(obj(json!({"password": {"type": "string", "minLength": 12, "maxLength": 128}}), &["password"])), ("204", "Reset", no_body.clone()), &[401, 403, 404, 422], false)}),
        ),
    );
    put(
        "/api/v1/users/{id}/reset-mfa",
        with_id(
            json!({"post": op("admin", "Force a user to enrol their second factors again (step-up); their sessions end", "user_reset_mfa", None, ("204", "Reset", no_body.clone()), &[401, 403, 404, 422], false)}),
        ),
    );
    let grant = json!({"type": "object", "additionalProperties": false, "properties": {
        "read": {"enum": ["none", "masked", "full"]}, "write": {"type": "boolean"},
        "export": {"type": "boolean"}, "erase": {"type": "boolean"}}});
    let role_props = json!({
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,39}$"}, "label": {"type": "string", "maxLength": 60},
        "base": {"enum": ["manager", "sales", "support", "privacy_officer", "auditor"]},
        "scope": {"enum": ["own", "team", "all"]},
        "categories": {"type": "object", "description": "per data category of the inventory (identity, contact_details, financial, …)", "additionalProperties": grant}});
    let role = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "label": {"type": "string"}, "base": {"type": "string"}, "builtin": {"type": "boolean"},
        "scope": {"enum": ["own", "team", "all"]}, "categories": {"type": "object"}, "users": {"type": "integer", "minimum": 0}
    }, "required": ["name", "label", "base", "builtin", "scope", "categories", "users"]});
    let name_param =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    put(
        "/api/v1/roles",
        json!({
            "get": op("admin", "Roles: the built-in set and custom ones (administrators)", "roles", None, ("200", "Roles", items(&role)), &[401, 403], false),
            "post": op("admin", "Create a custom role with its permissions per data category and record scope (step-up)", "role_create",
                Some(obj(role_props.clone(), &["name", "label", "base"])), ("201", "Created", role.clone()), &[401, 403, 409, 422], false)
        }),
    );
    let mut one = json!({
        "get": op("admin", "One role", "role", None, ("200", "The role", role.clone()), &[401, 403, 404], false),
        "put": op("admin", "Change a custom role (step-up); holders get the new permissions on their next request", "role_update",
            Some(obj(role_props, &["label", "base"])), ("200", "The role", role), &[401, 403, 404, 422], false),
        "delete": op("admin", "Delete a custom role nobody holds (step-up)", "role_delete", None, ("204", "Deleted", no_body.clone()), &[401, 403, 404, 409], false)
    });
    one["parameters"] = name_param;
    put("/api/v1/roles/{name}", one);
    put(
        "/api/v1/sessions",
        json!({"get": op("admin", "Every live session (administrators)", "sessions", None, ("200", "Sessions", items(&session_item)), &[401, 403], false)}),
    );
    put(
        "/api/v1/sessions/{id}",
        with_id(
            json!({"delete": op("admin", "End a session (administrators: any; others: their own)", "session_revoke", None, ("204", "Ended", no_body.clone()), &[401, 403, 404, 422], false)}),
        ),
    );
    put(
        "/api/v1/tokens",
        json!({"get": op("admin", "Every API token (administrators)", "tokens", None, ("200", "Tokens", items(&token_item)), &[401, 403], false)}),
    );
    put(
        "/api/v1/tokens/{id}",
        with_id(
            json!({"delete": op("admin", "Revoke an API token (administrators: any; others: their own)", "admin_token_revoke", None, ("204", "Revoked", no_body.clone()), &[401, 403, 404, 422], false)}),
        ),
    );
    let policy = json!({"type": "object", "additionalProperties": false, "properties": {"required": {"type": "boolean"}}, "required": ["required"]});
    put(
        "/api/v1/settings/mfa",
        json!({
            "get": op("admin", "Whether every account needs a second factor", "mfa_policy", None, ("200", "The policy", policy.clone()), &[401], false),
            "put": op("admin", "Require a second factor for every account, or not (administrators, step-up)", "set_mfa_policy", Some(policy.clone()), ("200", "The policy", policy), &[401, 403, 422], false)
        }),
    );
}
