//! Shared set-up for the service tests: a Custos over a fresh store on the
//! suite's backend (in-memory SQLite, or a new PostgreSQL database when
//! `CUSTOS_TEST_POSTGRES_URL` is set; see custos-testkit) with a manual clock,
//! staff users signed in through the real sign-in path, and helpers to read the
//! ledger and count what the store holds.

use custos_crypto::{MasterKey, MasterKeyring};
use custos_domain::{Entity, ManualClock, Role};
use custos_service::{
    AuditEntry, Config, Custos, ListParams, Principal, RecordView, RequestMeta, ServiceError,
};
use custos_store::Store;
use custos_testkit::AsJson;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value as J;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Result of a test.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The time every test starts at.
pub const T0: OffsetDateTime = datetime!(2026-01-31 09:00 UTC);
/// `T0` as the API writes it.
pub const T0_TEXT: &str = "2026-01-31T09:00:00Z";
/// The password of every staff user made by [`Env::user`].
pub const PASSWORD: &str = "a long password 123";

/// A running Custos and what a test needs around it.
pub struct Env {
    pub custos: Custos,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub admin: Principal,
}

/// A master keyring with one fresh key.
pub fn master() -> TestResult<MasterKeyring> {
    Ok(MasterKeyring::new(vec![MasterKey::generate(1)?])?)
}

impl Env {
    /// A fresh installation over a fresh store.
    pub async fn new() -> TestResult<Env> {
        Env::over(custos_testkit::test_store().await).await
    }

    /// A fresh installation over a given store.
    pub async fn over(store: Arc<dyn Store>) -> TestResult<Env> {
        // Password-only sign-in: these tests are about the CRM; sign-in with a
        // second factor has tests of its own (mfa.rs).
        let config = Config {
            mfa_required: false,
            ..Config::default()
        };
        Env::with_config(store, config).await
    }

    /// A fresh installation over a given store, with non-default settings.
    pub async fn with_config(store: Arc<dyn Store>, config: Config) -> TestResult<Env> {
        let clock = Arc::new(ManualClock::new(T0));
        let custos = Custos::open(store.clone(), clock.clone(), master()?, config).await?;
        Ok(Env {
            custos,
            clock,
            store,
            admin: Principal::cli(),
        })
    }

    /// Creates a staff user with `role` and signs them in; returns their principal.
    pub async fn user(&self, email: &str, role: Role) -> TestResult<Principal> {
        let pw = SecretString::from(PASSWORD);
        self.custos
            .create_user(&Principal::cli(), email, role, &pw, None)
            .await?;
        let login = self
            .custos
            .login(&RequestMeta::default(), email, &pw)
            .await?;
        let p = self
            .custos
            .authenticate(login.token.expose_secret(), &RequestMeta::default())
            .await?;
        assert_eq!(p.role, role);
        Ok(p)
    }

    /// Creates a record as the administrator and returns its JSON.
    pub async fn make(&self, entity: Entity, input: J) -> TestResult<J> {
        Ok(self
            .custos
            .create(&self.admin, entity, &input)
            .await?
            .to_json())
    }

    /// Creates a record as the administrator and returns its id.
    pub async fn make_id(&self, entity: Entity, input: J) -> TestResult<Uuid> {
        Ok(self.custos.create(&self.admin, entity, &input).await?.id())
    }

    /// The ledger's size.
    pub async fn ledger_size(&self) -> TestResult<u64> {
        Ok(self.custos.ledger_status(&self.admin).await?.size)
    }

    /// Every ledger entry from `start` on.
    pub async fn events_since(&self, start: u64) -> TestResult<Vec<AuditEntry>> {
        let end = self.ledger_size().await?;
        let mut out = Vec::new();
        let mut from = start;
        while from < end {
            let batch = self.custos.audit_entries(&self.admin, from, end).await?;
            if batch.is_empty() {
                break;
            }
            from = batch.last().map(|e| e.index + 1).unwrap_or(end);
            out.extend(batch);
        }
        assert_eq!(out.len() as u64, end - start, "every leaf was read back");
        Ok(out)
    }

    /// The raw bytes of every ledger leaf, read from the store.
    pub async fn raw_leaves(&self) -> TestResult<Vec<Vec<u8>>> {
        let mut tx = self.store.begin().await?;
        let size = tx.ledger_head().await?.size;
        let leaves = tx.ledger_leaves(0, size).await?;
        assert_eq!(leaves.len() as u64, size);
        Ok(leaves.into_iter().map(|l| l.data).collect())
    }

    /// How many rows each entity table holds, and the ledger size, read from the
    /// store without going through the service (so nothing is audited).
    pub async fn table_counts(&self) -> TestResult<Vec<(Entity, u64)>> {
        let mut tx = self.store.begin().await?;
        let mut out = Vec::new();
        for e in Entity::ALL {
            out.push((e, tx.count_records(e, &[]).await?));
        }
        Ok(out)
    }

    /// Lists every record of `entity` matching `pairs`, following cursors.
    pub async fn list_all(
        &self,
        p: &Principal,
        entity: Entity,
        pairs: &[(&str, &str)],
    ) -> TestResult<Vec<RecordView>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut raw = params(pairs);
            if let Some(c) = &cursor {
                raw.push(("cursor".to_string(), c.clone()));
            }
            let page = self
                .custos
                .list(p, entity, &ListParams::parse(entity, &raw)?)
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Ids found by a list of `entity` with one filter, as the administrator.
    pub async fn find_by(&self, entity: Entity, key: &str, value: &str) -> TestResult<Vec<Uuid>> {
        self.find(entity, &[(key, value)]).await
    }

    /// Ids found by a list of `entity` with `pairs`, as the administrator.
    pub async fn find(&self, entity: Entity, pairs: &[(&str, &str)]) -> TestResult<Vec<Uuid>> {
        let mut ids: Vec<Uuid> = self
            .list_all(&self.admin, entity, pairs)
            .await?
            .iter()
            .map(RecordView::id)
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Owned query pairs.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sorted ids.
pub fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// The field names of a validation error, or a panic naming what came instead.
pub fn invalid_fields<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> Vec<String> {
    match r {
        Err(ServiceError::Invalid(errs)) => {
            assert!(
                errs.iter().all(|e| !e.message.is_empty()),
                "every field error says what is wrong: {errs:?}"
            );
            errs.into_iter().map(|e| e.field).collect()
        }
        other => panic!("expected ServiceError::Invalid, got {other:?}"),
    }
}

/// Whether `haystack` contains `needle` as a byte sequence.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The id in a JSON record.
pub fn id_of(v: &J) -> TestResult<Uuid> {
    let s = v["id"].as_str().ok_or("record without id")?;
    Ok(Uuid::parse_str(s)?)
}

/// A company.
pub fn company(name: &str) -> J {
    serde_json::json!({ "name": name })
}

/// A contact with just names.
pub fn person(first: &str, last: &str) -> J {
    serde_json::json!({ "first_name": first, "last_name": last })
}

/// An activity about a contact.
pub fn note(contact: Uuid, body: &str) -> J {
    serde_json::json!({
        "contact_id": contact.to_string(),
        "kind": "note",
        "body": body,
        "occurred_at": "2026-01-30T10:00:00Z",
    })
}

/// An order of a contact.
pub fn order(contact: Uuid, total: &str) -> J {
    serde_json::json!({
        "contact_id": contact.to_string(),
        "status": "paid",
        "total": total,
        "currency": "EUR",
        "placed_at": "2026-01-29T10:15:00Z",
    })
}
