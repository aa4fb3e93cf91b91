//! The key hierarchy at run time: the master keyring, the system key it wraps,
//! the blind-index root and ledger signing seed sealed under the system key, and a
//! bounded cache of unwrapped subject data keys (zeroized when evicted).

use crate::{Config, Result, ServiceError};
use custos_crypto::{BlindIndexRoot, DataKey, MasterKeyring, SealContext, normalize, open, seal};
use custos_domain::inventory::Normalizer;
use custos_domain::{Clock, Entity};
use custos_store::{Store, SubjectKeyRow, Tx};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use zeroize::Zeroizing;

const SYSTEM_KEY: &str = "system_key";
const BLIND_ROOT: &str = "blind_index_root";
const SIGNING_SEED: &str = "ledger_signing_seed";
const SYSTEM_LABEL: &[u8] = b"custos/system-key";

/// Status of the keys, for `custos keys status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// Master key versions available.
    pub master_versions: Vec<u32>,
    /// The version that wraps new keys.
    pub active_version: u32,
    /// Blind-index truncation in bits.
    pub blind_index_bits: u32,
}

pub(crate) struct Keys {
    master: MasterKeyring,
    blind_root: BlindIndexRoot,
    signing_seed: Zeroizing<[u8; 32]>,
    bits: u32,
    tenant: String,
    cache: Mutex<DekCache>,
}

struct DekCache {
    max: usize,
    keys: HashMap<Uuid, Arc<DataKey>>,
    order: VecDeque<Uuid>,
}

impl DekCache {
    fn get(&self, id: &Uuid) -> Option<Arc<DataKey>> {
        self.keys.get(id).cloned()
    }

    fn put(&mut self, id: Uuid, key: Arc<DataKey>) {
        if self.keys.insert(id, key).is_none() {
            self.order.push_back(id);
        }
        while self.keys.len() > self.max {
            // Dropping the last Arc zeroizes the key (DataKey wipes itself on drop).
            match self.order.pop_front() {
                Some(old) => {
                    self.keys.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, id: &Uuid) {
        self.keys.remove(id);
        self.order.retain(|k| k != id);
    }
}

fn system_ctx<'a>(tenant: &'a str, name: &'a str) -> SealContext<'a> {
    SealContext {
        tenant,
        entity: "system",
        field: name,
        record_id: "",
        subject_id: "",
    }
}

impl Keys {
    pub(crate) async fn load_or_create(
        store: &dyn Store,
        clock: &dyn Clock,
        master: MasterKeyring,
        config: &Config,
    ) -> Result<Keys> {
        let now = custos_domain::value::to_unix_ms(clock.now());
        let tenant = config.tenant.clone();
        let mut tx = store.begin().await?;
        let (blind_root, seed) = match tx.get_secret(SYSTEM_KEY).await? {
            Some(wrapped) => {
                let system = master.unwrap(&wrapped, SYSTEM_LABEL).map_err(|_| {
                    ServiceError::Internal(
                        "the master key does not open this database (wrong key file or CUSTOS_MASTER_KEY?)".into(),
                    )
                })?;
                let root = Self::open_secret(tx.as_mut(), &system, &tenant, BLIND_ROOT).await?;
                let seed = Self::open_secret(tx.as_mut(), &system, &tenant, SIGNING_SEED).await?;
                (BlindIndexRoot::from_bytes(*root), seed)
            }
            None => {
                let system = DataKey::generate(1)?;
                tx.put_secret(
                    SYSTEM_KEY,
                    &master.active().wrap(&system, SYSTEM_LABEL)?,
                    now,
                )
                .await?;
                let root = BlindIndexRoot::generate()?;
                let sealed = seal(
                    &system,
                    &system_ctx(&tenant, BLIND_ROOT),
                    root.to_bytes().as_ref(),
                )?;
                tx.put_secret(BLIND_ROOT, &sealed, now).await?;
                let seed = Zeroizing::new(custos_crypto::random_bytes::<32>()?);
                let sealed = seal(&system, &system_ctx(&tenant, SIGNING_SEED), seed.as_ref())?;
                tx.put_secret(SIGNING_SEED, &sealed, now).await?;
                (root, seed)
            }
        };
        tx.commit().await?;
        Ok(Keys {
            master,
            blind_root,
            signing_seed: seed,
            bits: custos_crypto::blind_index_bits(config.expected_rows),
            tenant,
            cache: Mutex::new(DekCache {
                max: config.key_cache_size.max(1),
                keys: HashMap::new(),
                order: VecDeque::new(),
            }),
        })
    }

    async fn open_secret(
        tx: &mut dyn Tx,
        system: &DataKey,
        tenant: &str,
        name: &str,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let sealed = tx
            .get_secret(name)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("missing {name}")))?;
        let plain = open(system, &system_ctx(tenant, name), &sealed)?;
        let arr: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| ServiceError::Internal(format!("bad {name}")))?;
        Ok(Zeroizing::new(arr))
    }

    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn signing_seed(&self) -> &[u8; 32] {
        &self.signing_seed
    }

    pub(crate) fn status(&self) -> KeyStatus {
        KeyStatus {
            master_versions: self.master.versions(),
            active_version: self.master.active().version(),
            blind_index_bits: self.bits,
        }
    }

    /// Creates the data key of a new data subject.
    pub(crate) async fn create_subject_key(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        kind: Entity,
        now_ms: i64,
    ) -> Result<Arc<DataKey>> {
        let key = DataKey::generate(1)?;
        let active = self.master.active();
        let wrapped = active.wrap(&key, subject.as_bytes())?;
        tx.insert_subject_key(&SubjectKeyRow {
            subject_id: subject,
            kind,
            wrapped_key: Some(wrapped),
            kek_version: i64::from(active.version()),
            created_at: now_ms,
            shredded_at: None,
        })
        .await?;
        let key = Arc::new(key);
        self.lock().put(subject, key.clone());
        Ok(key)
    }

    /// The data key of a subject; `Gone` once it was shredded.
    pub(crate) async fn subject_key(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        what: &'static str,
    ) -> Result<Arc<DataKey>> {
        if let Some(k) = self.lock().get(&subject) {
            return Ok(k);
        }
        let row = tx
            .get_subject_key(subject)
            .await?
            .ok_or_else(|| ServiceError::Internal("a record's subject has no data key".into()))?;
        let wrapped = row.wrapped_key.ok_or(ServiceError::Gone(what))?;
        let key = Arc::new(self.master.unwrap(&wrapped, subject.as_bytes())?);
        self.lock().put(subject, key.clone());
        Ok(key)
    }

    /// Forgets a cached key (after shredding).
    #[allow(dead_code)]
    pub(crate) fn forget(&self, subject: &Uuid) {
        self.lock().remove(subject);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DekCache> {
        // A poisoned cache only means another thread panicked mid-insert; the map is
        // still a valid cache.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blind-index values of a field value: one per token or tag, or one for the
    /// whole normalised value.
    pub(crate) fn blind_values(
        &self,
        entity: Entity,
        field: &str,
        norm: Normalizer,
        value: &custos_domain::Value,
    ) -> Vec<Vec<u8>> {
        let key = self.blind_root.field_key(entity.name(), field);
        let normalised: Vec<String> = match (norm, value) {
            (Normalizer::Email, custos_domain::Value::Text(s)) => vec![normalize::email(s)],
            (Normalizer::Phone, custos_domain::Value::Text(s)) => vec![normalize::phone(s)],
            (Normalizer::Tokens, custos_domain::Value::Text(s)) => normalize::tokens(s),
            (Normalizer::EachTag, custos_domain::Value::Tags(t)) => {
                t.iter().map(|t| normalize::text(t)).collect()
            }
            _ => Vec::new(),
        };
        normalised
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| key.index(s, self.bits))
            .collect()
    }

    /// The blind-index value for a search term (already normalised by the caller).
    pub(crate) fn blind_term(&self, entity: Entity, field: &str, normalised: &str) -> Vec<u8> {
        self.blind_root
            .field_key(entity.name(), field)
            .index(normalised, self.bits)
    }
}
