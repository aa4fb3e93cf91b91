//! Key lifecycle use cases: status, master-key rotation (re-wrapping data keys,
//! resumable), retiring old master versions, and erasure by crypto-shredding.

use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::MasterKeyring;
use custos_domain::inventory::{self, OnErasure};
use custos_domain::{Entity, Role};
use custos_store::{Condition, ListQuery, Sort, SqlValue, StoredRow, Tx};
use uuid::Uuid;

const SYSTEM_KEY: &str = "system_key";
const SYSTEM_LABEL: &[u8] = b"custos/system-key";
const MIN_VERSION: &str = "keys.min_decryption_version";

/// Data keys wrapped by one master-key version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterVersionStatus {
    /// The master-key version.
    pub version: u32,
    /// Live (not shredded) data keys it wraps.
    pub data_keys: u64,
    /// Creation time of the oldest of them (Unix ms).
    pub oldest_ms: Option<i64>,
    /// Whether the keyring holds this version.
    pub available: bool,
}

/// The whole key picture for `custos keys status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyReport {
    /// The version that wraps new keys.
    pub active_version: u32,
    /// Versions in the keyring.
    pub keyring_versions: Vec<u32>,
    /// Per version: data keys wrapped.
    pub versions: Vec<MasterVersionStatus>,
    /// Versions below this are retired and refused.
    pub min_decryption_version: u32,
    /// Blind-index truncation in bits.
    pub blind_index_bits: u32,
    /// Days after which a subject's data key is replaced on its next write.
    pub data_key_max_age_days: u64,
}

/// What erasing a person did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErasureReport {
    /// The subject erased.
    pub subject_id: Uuid,
    /// Records whose personal fields became unreadable, by entity.
    pub shredded: Vec<(String, u64)>,
    /// Records kept (anonymised) and why.
    pub kept: Vec<(String, u64, String)>,
}

impl Custos {
    /// Sets how the master keyring is re-read when a key wrapped by a newer
    /// master version appears (a rotation run by another process).
    pub fn set_key_reload(&self, hook: crate::KeyReload) {
        self.inner.keys.set_reload(hook);
    }

    /// Versions, counts and ages of the keys.
    pub async fn key_report(&self) -> Result<KeyReport> {
        let mut tx = self.inner.store.begin().await?;
        let stats = tx.subject_key_stats().await?;
        let min = Self::min_version(tx.as_mut()).await?;
        let ring = self.inner.keys.master();
        let keyring_versions = ring.versions();
        let mut versions: Vec<MasterVersionStatus> = stats
            .iter()
            .map(|(v, n, oldest)| MasterVersionStatus {
                version: *v as u32,
                data_keys: *n,
                oldest_ms: Some(*oldest),
                available: keyring_versions.contains(&(*v as u32)),
            })
            .collect();
        for v in &keyring_versions {
            if !versions.iter().any(|s| s.version == *v) {
                versions.push(MasterVersionStatus {
                    version: *v,
                    data_keys: 0,
                    oldest_ms: None,
                    available: true,
                });
            }
        }
        versions.sort_by_key(|s| s.version);
        let status = self.inner.keys.status();
        Ok(KeyReport {
            active_version: ring.active().version(),
            keyring_versions,
            versions,
            min_decryption_version: min,
            blind_index_bits: status.blind_index_bits,
            data_key_max_age_days: self.inner.config.dek_max_age.as_secs() / 86_400,
        })
    }

    async fn min_version(tx: &mut dyn Tx) -> Result<u32> {
        Ok(tx
            .get_setting(MIN_VERSION)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Makes `ring` (whose active version is new) the keyring and re-wraps the
    /// system key and every data key with its active version, in batches that
    /// each commit: an interrupted rotation is resumed by running it again.
    /// Work grows with the number of subjects, not records.
    pub async fn rotate_master(
        &self,
        ring: MasterKeyring,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        let active = ring.active().version();
        let current = self.inner.keys.master();
        for v in current.versions() {
            if ring.get(v).is_none() {
                return Err(ServiceError::invalid(
                    "keyring",
                    format!("the new keyring lacks version {v} still in use"),
                ));
            }
        }
        self.inner.keys.set_master(ring);
        let ring = self.inner.keys.master();
        let new = ring.active();
        let now = self.now_ms();
        // The system key first, so a restart after a crash opens with either version.
        let mut tx = self.inner.store.begin().await?;
        let wrapped = tx
            .get_secret(SYSTEM_KEY)
            .await?
            .ok_or_else(|| ServiceError::Internal("no system key".into()))?;
        let system = ring.unwrap(&wrapped, SYSTEM_LABEL)?;
        // From here on data keys are wrapped by two versions until the loop ends.
        tx.put_secret(SYSTEM_KEY, &new.wrap(&system, SYSTEM_LABEL)?, now)
            .await?;
        let total: u64 = tx
            .subject_key_stats()
            .await?
            .iter()
            .filter(|(v, _, _)| *v < i64::from(active))
            .map(|(_, n, _)| n)
            .sum();
        tx.commit().await?;
        let mut done = 0u64;
        progress(done, total);
        loop {
            let mut tx = self.inner.store.begin().await?;
            let batch = tx.subject_keys_below(i64::from(active), 500).await?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                let Some(wrapped) = &row.wrapped_key else {
                    continue;
                };
                let key = ring.unwrap(wrapped, row.subject_id.as_bytes())?;
                let rewrapped = new.wrap(&key, row.subject_id.as_bytes())?;
                tx.rewrap_subject_key(
                    row.subject_id,
                    row.dek_version,
                    &rewrapped,
                    i64::from(active),
                )
                .await?;
            }
            tx.commit().await?;
            done += batch.len() as u64;
            progress(done, total.max(done));
        }
        let mut tx = self.inner.store.begin().await?;
        let ev = Event::new(&Principal::cli(), "keys.rotate")
            .detail(format!("active={active} rewrapped={done}"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Retires master-key versions below `min`: refused while any data key is
    /// still wrapped by one of them. Returns the keyring without them, which the
    /// caller writes back to the key provider.
    pub async fn retire_master_below(&self, min: u32) -> Result<MasterKeyring> {
        let ring = self.inner.keys.master();
        if min > ring.active().version() {
            return Err(ServiceError::invalid(
                "version",
                "cannot retire the active master key",
            ));
        }
        let mut tx = self.inner.store.begin().await?;
        let still: u64 = tx
            .subject_key_stats()
            .await?
            .iter()
            .filter(|(v, _, _)| *v < i64::from(min))
            .map(|(_, n, _)| n)
            .sum();
        if still > 0 {
            return Err(ServiceError::Conflict(format!(
                "{still} data key(s) are still wrapped by a version below {min}; run `custos keys rotate` first"
            )));
        }
        let wrapped = tx
            .get_secret(SYSTEM_KEY)
            .await?
            .ok_or_else(|| ServiceError::Internal("no system key".into()))?;
        if custos_crypto::wrapped_version(&wrapped)? < min {
            return Err(ServiceError::Conflict(
                "the system key is still wrapped by an old version; run `custos keys rotate` first"
                    .into(),
            ));
        }
        tx.put_setting(MIN_VERSION, &min.to_string()).await?;
        let ev = Event::new(&Principal::cli(), "keys.retire").detail(format!("min_version={min}"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        let text = ring.to_key_file();
        let mut kept = MasterKeyring::parse_key_file(secrecy::ExposeSecret::expose_secret(&text))?;
        kept.retain_from(min);
        Ok(kept)
    }

    /// Erases a person by crypto-shredding: every version of their data key and
    /// their blind-index rows are destroyed, so every copy of their personal
    /// fields (in backups too) becomes unreadable. Records the inventory keeps for
    /// a legal obligation (orders, for accounting) stay, anonymised. Privacy
    /// officers and administrators only.
    pub async fn erase_subject(&self, p: &Principal, subject: Uuid) -> Result<ErasureReport> {
        if !matches!(p.role, Role::Admin | Role::PrivacyOfficer) || !p.can_erase_personal() {
            let msg = "only privacy officers and administrators whose role may erase every personal category erase people".to_string();
            return Err(self.refuse(p, "subject.erase", msg).await);
        }
        let mut tx = self.inner.store.begin().await?;
        let keys = tx.get_subject_keys(subject).await?;
        if keys.is_empty() {
            return Err(ServiceError::NotFound("person"));
        }
        if keys.iter().all(|k| k.wrapped_key.is_none()) {
            return Err(ServiceError::Gone("person"));
        }
        let flags = crate::privacy::dsar::flags_in_force(tx.as_mut(), &[subject]).await?;
        if flags
            .iter()
            .any(|(_, f)| *f == custos_domain::dsar::Flag::LegalHold)
        {
            return Err(ServiceError::Conflict(
                "a legal hold is in force on this person: lift it first (Privacy › Retention)"
                    .into(),
            ));
        }
        let report = self.shred_in(tx.as_mut(), subject).await?;
        let detail = report
            .shredded
            .iter()
            .map(|(e, n)| format!("{e}={n}"))
            .collect::<Vec<_>>()
            .join(",");
        let ev = Event::new(p, "subject.erase")
            .subject(Some(subject))
            .detail(format!("shredded={detail}"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        self.inner.keys.forget(&subject);
        self.journal_erasure(subject);
        Ok(report)
    }

    /// Re-applies erasures recorded elsewhere (after restoring a backup taken
    /// before them). Returns how many subjects were shredded now.
    pub async fn reapply_erasures(&self, subjects: &[Uuid]) -> Result<u64> {
        let mut n = 0;
        for s in subjects {
            let mut tx = self.inner.store.begin().await?;
            let keys = tx.get_subject_keys(*s).await?;
            if keys.is_empty() || keys.iter().all(|k| k.wrapped_key.is_none()) {
                continue;
            }
            self.shred_in(tx.as_mut(), *s).await?;
            let ev = Event::new(&Principal::cli(), "subject.erase")
                .subject(Some(*s))
                .detail("reapplied=backup-restore");
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            self.inner.keys.forget(s);
            n += 1;
        }
        Ok(n)
    }

    /// Subjects erased at or after a time (Unix ms), from this database.
    pub async fn erasures_since(&self, since_ms: i64) -> Result<Vec<(Uuid, i64)>> {
        let mut tx = self.inner.store.begin().await?;
        Ok(tx.erasures_since(since_ms).await?)
    }

    pub(crate) async fn shred_in(&self, tx: &mut dyn Tx, subject: Uuid) -> Result<ErasureReport> {
        let mut shredded = Vec::new();
        let mut kept = Vec::new();
        for entity in Entity::ALL {
            let Some(field) = entity.subject_field() else {
                continue;
            };
            let column = if field == "id" { "subject_id" } else { field };
            let cond = Condition::Eq(
                if column == "subject_id" { "id" } else { column },
                SqlValue::Text(subject.to_string()),
            );
            let ids = self.ids_where(tx, entity, cond).await?;
            if ids.is_empty() {
                continue;
            }
            // Sealed columns are cleared as well: the live database then holds no
            // ciphertext of the person either, while backups rely on the shredded key.
            let cleared: Vec<(&'static str, SqlValue)> = inventory::sealed_fields(entity)
                .map(|f| (f.name, SqlValue::Null))
                .collect();
            // A few statements for all of them, not one per record.
            tx.update_records(entity, &ids, &cleared).await?;
            shredded.push((entity.plural().to_string(), ids.len() as u64));
            if let Some(reason) = inventory::fields(entity).find_map(|f| match f.on_erasure {
                OnErasure::Keep { reason } => Some(reason),
                OnErasure::Destroy => None,
            }) {
                kept.push((
                    entity.plural().to_string(),
                    ids.len() as u64,
                    reason.to_string(),
                ));
            }
        }
        tx.shred_subject_key(subject, self.now_ms()).await?;
        Ok(ErasureReport {
            subject_id: subject,
            shredded,
            kept,
        })
    }

    pub(crate) async fn ids_where(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        cond: Condition,
    ) -> Result<Vec<Uuid>> {
        let rows = self.rows_where(tx, entity, cond).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Every stored row of `entity` matching `cond`, oldest first, read 500
    /// at a time.
    pub(crate) async fn rows_where(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        cond: Condition,
    ) -> Result<Vec<StoredRow>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let q = ListQuery {
                entity,
                conditions: vec![cond.clone()],
                sort: Sort {
                    field: "created_at",
                    descending: false,
                },
                after: after.clone(),
                limit: 500,
            };
            let rows = tx.list_records(&q).await?;
            let n = rows.len();
            if let Some(last) = rows.last() {
                after = Some((last.get("created_at").clone(), last.id));
            }
            out.extend(rows);
            if n < 500 {
                return Ok(out);
            }
        }
    }
}

/// Called after every committed erasure with the subject and time (Unix ms), so
/// the wiring can journal erasures outside the database (a restore re-applies
/// them even if the database itself is lost).
pub type ErasureJournal = std::sync::Arc<dyn Fn(Uuid, i64) + Send + Sync>;

/// A written backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    /// Bytes written.
    pub bytes: u64,
    /// Snapshot time (Unix ms).
    pub created_ms: i64,
    /// Master-key version that wraps the backup key.
    pub kek_version: u32,
}

impl Custos {
    /// Sets the erasure journal hook.
    pub fn set_erasure_journal(&self, hook: ErasureJournal) {
        *self
            .inner
            .erasure_journal
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    pub(crate) fn journal_erasure(&self, subject: Uuid) {
        let hook = self
            .inner
            .erasure_journal
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = hook {
            h(subject, self.now_ms());
        }
    }

    /// Takes a consistent online snapshot and writes it to `out` encrypted and
    /// authenticated under a fresh key wrapped by the active master key.
    /// `workdir` holds the plaintext-free temporary snapshot (the database file
    /// holds only sealed personal data) and must be on a private disk.
    pub async fn backup_create(
        &self,
        workdir: &std::path::Path,
        out: &std::path::Path,
    ) -> Result<BackupInfo> {
        if out.exists() {
            return Err(ServiceError::invalid(
                "file",
                format!("{} already exists", out.display()),
            ));
        }
        let snap = workdir.join(format!(".custos-snapshot-{}.db", Uuid::now_v7()));
        let created_ms = self.now_ms();
        self.inner.store.snapshot(&snap).await?;
        let result = (|| -> Result<BackupInfo> {
            let input = std::fs::File::open(&snap)
                .map_err(|e| ServiceError::Internal(format!("snapshot: {e}")))?;
            let tmp_out = out.with_extension("partial");
            let file = std::fs::File::create(&tmp_out).map_err(|e| {
                ServiceError::invalid("file", format!("cannot create {}: {e}", tmp_out.display()))
            })?;
            let ring = self.inner.keys.master();
            let mut writer = std::io::BufWriter::new(file);
            custos_crypto::encrypt_backup(
                ring.active(),
                created_ms,
                std::io::BufReader::new(input),
                &mut writer,
            )?;
            let file = writer
                .into_inner()
                .map_err(|e| ServiceError::Internal(format!("backup: {e}")))?;
            file.sync_all()
                .map_err(|e| ServiceError::Internal(format!("backup: {e}")))?;
            std::fs::rename(&tmp_out, out)
                .map_err(|e| ServiceError::Internal(format!("backup: {e}")))?;
            let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
            Ok(BackupInfo {
                bytes,
                created_ms,
                kek_version: ring.active().version(),
            })
        })();
        let _ = std::fs::remove_file(&snap);
        let info = result?;
        let mut tx = self.inner.store.begin().await?;
        let ev =
            Event::new(&Principal::cli(), "backup.create").detail(format!("bytes={}", info.bytes));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Checks the database's integrity.
    pub async fn integrity_check(&self) -> Result<()> {
        Ok(self.inner.store.integrity_check().await?)
    }
}
