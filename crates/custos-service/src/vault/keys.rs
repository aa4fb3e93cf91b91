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

/// Re-reads the master keyring (from its key provider) when a key wrapped by an
/// unknown master version is met, e.g. after a rotation by another process.
pub type KeyReload = Arc<dyn Fn() -> std::result::Result<MasterKeyring, String> + Send + Sync>;

/// Every data-key version of one subject.
pub(crate) struct SubjectKeys {
    versions: std::collections::BTreeMap<i64, Arc<DataKey>>,
    newest_created: i64,
    kind: Entity,
}

impl SubjectKeys {
    /// The key that sealed a value of this version.
    pub(crate) fn get(&self, version: u32) -> Result<&Arc<DataKey>> {
        self.versions.get(&i64::from(version)).ok_or_else(|| {
            ServiceError::Internal(
                "a sealed value names a data key version that does not exist".into(),
            )
        })
    }

    fn newest(&self) -> Result<(i64, Arc<DataKey>)> {
        self.versions
            .iter()
            .next_back()
            .map(|(v, k)| (*v, k.clone()))
            .ok_or_else(|| ServiceError::Internal("subject without data keys".into()))
    }
}

pub(crate) struct Keys {
    master: std::sync::RwLock<Arc<MasterKeyring>>,
    reload: std::sync::RwLock<Option<KeyReload>>,
    dek_max_age_ms: i64,
    blind_root: BlindIndexRoot,
    /// Blind-index keys by (entity, field), derived from `blind_root` on first use.
    field_keys: Mutex<HashMap<(Entity, String), custos_crypto::BlindIndexKey>>,
    signing_seed: Zeroizing<[u8; 32]>,
    bits: u32,
    tenant: String,
    cache: Mutex<DekCache>,
}

struct DekCache {
    max: usize,
    keys: HashMap<Uuid, Arc<SubjectKeys>>,
    order: VecDeque<Uuid>,
}

impl DekCache {
    fn get(&self, id: &Uuid) -> Option<Arc<SubjectKeys>> {
        self.keys.get(id).cloned()
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.order.clear();
    }

    fn put(&mut self, id: Uuid, key: Arc<SubjectKeys>) {
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
        // Retired master versions are refused even if the key file still holds them.
        let min: u32 = tx
            .get_setting("keys.min_decryption_version")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut master = master;
        master.retain_from(min);
        tx.commit().await?;
        Ok(Keys {
            master: std::sync::RwLock::new(Arc::new(master)),
            reload: std::sync::RwLock::new(None),
            dek_max_age_ms: config.dek_max_age.as_millis() as i64,
            blind_root,
            signing_seed: seed,
            bits: custos_crypto::blind_index_bits(config.expected_rows),
            tenant,
            field_keys: Mutex::new(HashMap::new()),
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
            master_versions: self.master().versions(),
            active_version: self.master().active().version(),
            blind_index_bits: self.bits,
        }
    }

    /// Creates the data key (version 1) of a new data subject.
    pub(crate) async fn create_subject_key(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        kind: Entity,
        now_ms: i64,
    ) -> Result<Arc<DataKey>> {
        self.add_version(tx, subject, kind, 1, now_ms).await
    }

    async fn add_version(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        kind: Entity,
        version: i64,
        now_ms: i64,
    ) -> Result<Arc<DataKey>> {
        let (row, key) = self.new_version(subject, kind, version, now_ms)?;
        tx.insert_subject_key(&row).await?;
        self.lock().remove(&subject);
        Ok(key)
    }

    /// A new data key for a subject, and its row wrapped by the active master
    /// key, for the caller to store.
    fn new_version(
        &self,
        subject: Uuid,
        kind: Entity,
        version: i64,
        now_ms: i64,
    ) -> Result<(SubjectKeyRow, Arc<DataKey>)> {
        let v = u32::try_from(version)
            .map_err(|_| ServiceError::Internal("data key version".into()))?;
        let key = DataKey::generate(v)?;
        let master = self.master();
        let active = master.active();
        let wrapped = active.wrap(&key, subject.as_bytes())?;
        let row = SubjectKeyRow {
            subject_id: subject,
            dek_version: version,
            kind,
            wrapped_key: Some(wrapped),
            kek_version: i64::from(active.version()),
            created_at: now_ms,
            shredded_at: None,
        };
        Ok((row, Arc::new(key)))
    }

    /// The first data key of a new subject and its row, for the caller to
    /// store with the subject's record ([`custos_store::Tx::insert_new`]).
    pub(crate) fn new_subject_key(
        &self,
        subject: Uuid,
        kind: Entity,
        now_ms: i64,
    ) -> Result<(SubjectKeyRow, Arc<DataKey>)> {
        self.new_version(subject, kind, 1, now_ms)
    }

    /// Caches the key of a subject just created in this process, so the new
    /// record is answered without reading its key back.
    pub(crate) fn remember_new(&self, subject: Uuid, kind: Entity, key: Arc<DataKey>, now_ms: i64) {
        let mut versions = std::collections::BTreeMap::new();
        versions.insert(1, key);
        let keys = Arc::new(SubjectKeys {
            versions,
            newest_created: now_ms,
            kind,
        });
        self.lock().put(subject, keys);
    }

    /// Loads the keys of these subjects that are not cached yet, in one
    /// query, so opening a page of records does not read keys one person at
    /// a time. Erased subjects are left out (opening their records answers
    /// `Gone` as before).
    pub(crate) async fn preload(&self, tx: &mut dyn Tx, subjects: &[Uuid]) -> Result<()> {
        let missing: Vec<Uuid> = {
            let cache = self.lock();
            let mut m: Vec<Uuid> = subjects
                .iter()
                .filter(|s| cache.get(s).is_none())
                .copied()
                .collect();
            m.sort();
            m.dedup();
            m
        };
        if missing.is_empty() {
            return Ok(());
        }
        let rows = tx.get_subject_keys_many(&missing).await?;
        let mut start = 0;
        while start < rows.len() {
            let subject = rows[start].subject_id;
            let end = rows[start..]
                .iter()
                .position(|r| r.subject_id != subject)
                .map_or(rows.len(), |n| start + n);
            if let Some(keys) = self.unwrap_rows(subject, &rows[start..end], "record")? {
                self.lock().put(subject, keys);
            }
            start = end;
        }
        Ok(())
    }

    /// Unwraps a subject's key rows; `None` when they were shredded.
    fn unwrap_rows(
        &self,
        subject: Uuid,
        rows: &[SubjectKeyRow],
        what: &'static str,
    ) -> Result<Option<Arc<SubjectKeys>>> {
        let mut versions = std::collections::BTreeMap::new();
        let mut newest_created = 0;
        let mut kind = Entity::Contact;
        for row in rows {
            let Some(wrapped) = &row.wrapped_key else {
                return Ok(None);
            };
            let key = match self.master().unwrap(wrapped, subject.as_bytes()) {
                Ok(k) => k,
                Err(_) => {
                    // A rotation in another process may have added a master key
                    // version this process has not loaded yet.
                    self.reload_master()?;
                    self.master().unwrap(wrapped, subject.as_bytes())?
                }
            };
            newest_created = row.created_at;
            kind = row.kind;
            versions.insert(row.dek_version, Arc::new(key));
        }
        if versions.is_empty() {
            return Err(ServiceError::Internal(format!(
                "a {what}'s subject has no data key"
            )));
        }
        Ok(Some(Arc::new(SubjectKeys {
            versions,
            newest_created,
            kind,
        })))
    }

    /// Every data-key version of a subject; `Gone` once they were shredded.
    pub(crate) async fn subject_keys(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        what: &'static str,
    ) -> Result<Arc<SubjectKeys>> {
        if let Some(k) = self.lock().get(&subject) {
            return Ok(k);
        }
        let rows = tx.get_subject_keys(subject).await?;
        if rows.is_empty() {
            return Err(ServiceError::Internal(
                "a record's subject has no data key".into(),
            ));
        }
        let keys = self
            .unwrap_rows(subject, &rows, what)?
            .ok_or(ServiceError::Gone(what))?;
        self.lock().put(subject, keys.clone());
        Ok(keys)
    }

    /// The key that seals new values of a subject. If its newest data key is
    /// older than the configured maximum age, a new version is created first:
    /// data keys rotate lazily, on write.
    pub(crate) async fn write_key(
        &self,
        tx: &mut dyn Tx,
        subject: Uuid,
        what: &'static str,
        now_ms: i64,
    ) -> Result<Arc<DataKey>> {
        let keys = self.subject_keys(tx, subject, what).await?;
        let (version, key) = keys.newest()?;
        if now_ms - keys.newest_created >= self.dek_max_age_ms {
            return self
                .add_version(tx, subject, keys.kind, version + 1, now_ms)
                .await;
        }
        Ok(key)
    }

    /// Forgets a cached key (after shredding or rotation).
    pub(crate) fn forget(&self, subject: &Uuid) {
        self.lock().remove(subject);
    }

    /// Re-reads the master keyring through the reload hook, if one is set.
    fn reload_master(&self) -> Result<()> {
        let hook = self
            .reload
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            let ring = hook()
                .map_err(|e| ServiceError::Internal(format!("reloading the master key: {e}")))?;
            self.set_master(ring);
        }
        Ok(())
    }

    pub(crate) fn set_reload(&self, hook: KeyReload) {
        *self.reload.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub(crate) fn master(&self) -> Arc<MasterKeyring> {
        self.master
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_master(&self, ring: MasterKeyring) {
        *self.master.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        self.lock().clear();
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
        let key = self.field_key(entity, field);
        let normalised: Vec<String> = match (norm, value) {
            (Normalizer::Email, custos_domain::Value::Text(s)) => vec![normalize::email(s)],
            (Normalizer::Phone, custos_domain::Value::Text(s)) => vec![normalize::phone(s)],
            (Normalizer::Tokens, custos_domain::Value::Text(s)) => normalize::tokens(s),
            (Normalizer::EachTag, custos_domain::Value::Tags(t)) => {
                t.iter().map(|t| normalize::text(t)).collect()
            }
            _ => Vec::new(),
        };
        // Each value once: a name token twice is one entry.
        let mut hashes: Vec<Vec<u8>> = normalised
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| key.index(s, self.bits))
            .collect();
        hashes.sort();
        hashes.dedup();
        hashes
    }

    /// The blind-index value for a search term (already normalised by the caller).
    /// A keyed 128-bit hash naming a throttling bucket (an account's email or a
    /// client address) without storing the value.
    pub(crate) fn throttle_key(&self, kind: &str, value: &str) -> Vec<u8> {
        self.blind_root
            .field_key("throttle", kind)
            .index(value, 128)
    }

    pub(crate) fn blind_term(&self, entity: Entity, field: &str, normalised: &str) -> Vec<u8> {
        self.field_key(entity, field).index(normalised, self.bits)
    }

    /// A field's blind-index key, derived once per process (HKDF per value
    /// was a tenth of a bulk import's time).
    fn field_key(&self, entity: Entity, field: &str) -> custos_crypto::BlindIndexKey {
        let mut keys = self.field_keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.entry((entity, field.to_string()))
            .or_insert_with(|| self.blind_root.field_key(entity.name(), field))
            .clone()
    }
}
