//! Tests of the service layer's use cases, on the suite's backend (see
//! custos-testkit: in-memory SQLite by default, a fresh PostgreSQL database per
//! test when `CUSTOS_TEST_POSTGRES_URL` is set). Tests of what SQLite writes to
//! files run on SQLite on disk whatever the backend. Each module covers one
//! concern; `common` builds the service and reads the ledger back.

#[path = "service/common.rs"]
mod common;

#[path = "service/at_rest.rs"]
mod at_rest;
#[path = "service/audit.rs"]
mod audit;
#[path = "service/cascade.rs"]
mod cascade;
#[path = "service/crud.rs"]
mod crud;
#[path = "service/erasure.rs"]
mod erasure;
#[path = "service/identity.rs"]
mod identity;
#[path = "service/import.rs"]
mod import;
#[path = "service/permissions.rs"]
mod permissions;
#[path = "service/pipeline.rs"]
mod pipeline;
/// Custom roles, record scopes, invitations and token scopes.
#[path = "service/roles.rs"]
mod roles;
#[path = "service/search.rs"]
mod search;
#[path = "service/sessions.rs"]
mod sessions;
#[path = "service/users.rs"]
mod users;
#[path = "service/validation.rs"]
mod validation;
