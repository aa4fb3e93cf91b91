//! The auditor's use cases on the ledger: status, event search, signed
//! checkpoints, inclusion and consistency proofs, full verification and
//! witnessing of a checkpoint held elsewhere.

pub(crate) mod audit;

use crate::ledger::audit::{AuditEntry, Event};
use crate::{Custos, Principal, Result, ServiceError};
use custos_ledger::Hash;
use custos_ledger::checkpoint::{Checkpoint, NoteSigner, verify_checkpoint};
use custos_ledger::event::AuditEvent;
use custos_ledger::merkle::{self, Appender, NodeReader, ProofError};
use custos_ledger::verify::{LogVerifier, StoredLeaf, TamperKind};
use custos_store::{CheckpointRow, EventFilter, Tx};
use std::collections::HashMap;

/// The current state of the ledger.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerStatus {
    /// Number of leaves.
    pub size: u64,
    /// Root hash, hex.
    pub root_hex: String,
    /// Bytes of stored leaves (the ledger is kept: it holds no personal values).
    pub bytes: u64,
    /// Number of signed checkpoints.
    pub checkpoints: u64,
    /// Size of the latest checkpoint, if any.
    pub latest_checkpoint_size: Option<u64>,
}

/// Outcome of recomputing the whole ledger.
#[derive(Debug, Clone)]
pub enum VerifyReport {
    /// Every leaf hashed as stored, the tree matches its stored nodes and head,
    /// and every signed checkpoint verifies against the recomputed tree.
    Ok {
        /// Leaves checked.
        size: u64,
        /// Recomputed root, hex.
        root_hex: String,
        /// Checkpoints checked.
        checkpoints: usize,
    },
    /// The first problem found.
    Tampered {
        /// First bad index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Outcome of checking a checkpoint held elsewhere against the current log.
#[derive(Debug, Clone)]
pub enum WitnessReport {
    /// The checkpoint is ours and the current log extends it.
    Consistent {
        /// The checkpoint's size.
        size: u64,
        /// The current size.
        current: u64,
    },
    /// The log no longer matches what the checkpoint committed to.
    Inconsistent {
        /// Why.
        reason: String,
    },
}

/// An inclusion proof (RFC 9162 §2.1.3).
#[derive(Debug, Clone)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub size: u64,
    /// The leaf hash.
    pub leaf_hash: Hash,
    /// Sibling hashes, bottom up.
    pub proof: Vec<Hash>,
}

/// Search criteria for ledger events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Store-level filter.
    pub filter: EventFilter,
    /// Page size (1 to 500).
    pub limit: u32,
}

/// Reads perfect-subtree roots from a cache filled from the store. The proof
/// algorithms are synchronous; a miss is recorded, fetched, and the proof rerun.
struct CachedNodes {
    nodes: HashMap<(u32, u64), Hash>,
}

impl NodeReader for CachedNodes {
    fn perfect_node(&mut self, level: u32, index: u64) -> std::result::Result<Hash, ProofError> {
        self.nodes
            .get(&(level, index))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("ledger: {e}"))
}

/// Runs a proof computation over stored nodes, fetching what it asks for.
async fn with_nodes<T>(
    tx: &mut dyn Tx,
    f: impl FnMut(&mut CachedNodes) -> std::result::Result<T, ProofError>,
) -> Result<T> {
    let mut cache = CachedNodes {
        nodes: HashMap::new(),
    };
    with_cache(tx, &mut cache, f).await
}

/// [`with_nodes`] with a cache kept by the caller, so many proofs over one
/// tree share the nodes already fetched.
async fn with_cache<T>(
    tx: &mut dyn Tx,
    cache: &mut CachedNodes,
    mut f: impl FnMut(&mut CachedNodes) -> std::result::Result<T, ProofError>,
) -> Result<T> {
    for _ in 0..10_000 {
        match f(cache) {
            Ok(v) => return Ok(v),
            Err(ProofError::MissingNode { level, index }) => {
                let node = tx.ledger_node(level, index).await?.ok_or_else(|| {
                    internal(format!(
                        "stored node ({level}, {index}) is missing: the ledger tables were altered"
                    ))
                })?;
                cache.nodes.insert((level, index), node);
            }
            Err(e) => return Err(ServiceError::invalid("size", e.to_string())),
        }
    }
    Err(internal("proof needed too many nodes"))
}

impl Custos {
    pub(crate) fn note_signer(&self) -> Result<NoteSigner> {
        NoteSigner::from_seed(
            &self.inner.config.ledger_origin,
            self.inner.keys.signing_seed(),
        )
        .map_err(internal)
    }

    /// The note verifier key of the ledger (`name+keyid+base64(0x01‖pubkey)`).
    pub fn ledger_verifier_key(&self) -> Result<String> {
        Ok(self.note_signer()?.verifier_key())
    }

    /// Size, root, bytes and checkpoints of the ledger.
    pub async fn ledger_status(&self, p: &Principal) -> Result<LedgerStatus> {
        self.require_ledger_reader(p).await?;
        let mut tx = self.inner.store.begin_read().await?;
        let head = tx.ledger_head().await?;
        // A running total kept with the head, not a sum over every leaf.
        let bytes = head.bytes;
        let app = Appender::from_frontier(head.size, head.frontier).map_err(internal)?;
        let checkpoints = tx.checkpoint_count().await?;
        let latest = tx.latest_checkpoint().await?;
        Ok(LedgerStatus {
            size: app.size(),
            root_hex: hex::encode(app.root()),
            bytes,
            checkpoints,
            latest_checkpoint_size: latest.map(|c| c.size),
        })
    }

    /// Decoded events `start <= index < end` (at most 1,000).
    pub async fn audit_entries(
        &self,
        p: &Principal,
        start: u64,
        end: u64,
    ) -> Result<Vec<AuditEntry>> {
        self.require_ledger_reader(p).await?;
        let end = end.min(start.saturating_add(1000));
        let mut tx = self.inner.store.begin().await?;
        let leaves = tx.ledger_leaves(start, end).await?;
        leaves
            .into_iter()
            .map(|l| {
                let event = AuditEvent::decode(&l.data)
                    .map_err(|e| internal(format!("leaf {}: {e}", l.index)))?;
                Ok(AuditEntry {
                    index: l.index,
                    event,
                })
            })
            .collect()
    }

    /// Raw leaf bytes `start <= index < end` (at most 1,000), for outside verifiers.
    pub async fn audit_leaf_bytes(
        &self,
        p: &Principal,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.require_ledger_reader(p).await?;
        let end = end.min(start.saturating_add(1000));
        let mut tx = self.inner.store.begin().await?;
        Ok(tx
            .ledger_leaves(start, end)
            .await?
            .into_iter()
            .map(|l| (l.index, l.data))
            .collect())
    }

    /// Events matching a query, newest first; the second value is the index to
    /// pass as `before_index` for the next page.
    pub async fn audit_events(
        &self,
        p: &Principal,
        q: &EventQuery,
    ) -> Result<(Vec<AuditEntry>, Option<u64>)> {
        self.require_ledger_reader(p).await?;
        let limit = q.limit.clamp(1, 500);
        let mut tx = self.inner.store.begin().await?;
        let found = tx.find_leaves(&q.filter, limit + 1).await?;
        let more = found.len() as u32 > limit;
        let mut out = Vec::new();
        // The page's leaves in one query, newest first as found.
        let wanted: Vec<u64> = found.into_iter().take(limit as usize).collect();
        let mut leaves = tx.ledger_leaves_at(&wanted).await?;
        leaves.reverse();
        for l in leaves {
            let event = AuditEvent::decode(&l.data)
                .map_err(|e| internal(format!("leaf {}: {e}", l.index)))?;
            out.push(AuditEntry {
                index: l.index,
                event,
            });
        }
        let next = if more {
            out.last().map(|e| e.index)
        } else {
            None
        };
        Ok((out, next))
    }

    /// Events about one subject, newest first (at most `limit`).
    pub async fn audit_events_for_subject(
        &self,
        p: &Principal,
        subject: uuid::Uuid,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let q = EventQuery {
            filter: EventFilter {
                subject_id: Some(subject.to_string()),
                ..Default::default()
            },
            limit: limit.min(500) as u32,
        };
        Ok(self.audit_events(p, &q).await?.0)
    }

    /// Signs a checkpoint of the current tree if it grew since the last one, and
    /// returns the latest signed note. Before signing, the new tree is proved
    /// consistent with the previous checkpoint, so the ledger never signs two
    /// checkpoints that contradict each other.
    pub async fn ledger_checkpoint(&self) -> Result<String> {
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        let app = Appender::from_frontier(head.size, head.frontier).map_err(internal)?;
        let latest = tx.latest_checkpoint().await?;
        if let Some(last) = &latest {
            if last.size >= app.size() {
                return Ok(last.note.clone());
            }
            let old_root: Hash = last
                .root
                .as_slice()
                .try_into()
                .map_err(|_| internal("stored checkpoint root"))?;
            let (from, to) = (last.size, app.size());
            if from == 0 {
                // Every tree extends the empty one, and RFC 9162 defines no
                // consistency proof from size 0: the only thing to check is
                // that the checkpoint really was of the empty tree. (A fresh
                // `custos serve` signs one before any user exists.)
                if old_root != custos_ledger::empty_root() {
                    return Err(internal(
                        "refusing to sign: the checkpoint of size 0 does not hold the empty tree's root",
                    ));
                }
            } else {
                let proof =
                    with_nodes(tx.as_mut(), |r| merkle::consistency_proof_at(r, from, to)).await?;
                merkle::verify_consistency(from, to, &proof, &old_root, &app.root()).map_err(
                    |e| {
                        internal(format!(
                            "refusing to sign: the tree is not consistent with checkpoint {from}: {e}"
                        ))
                    },
                )?;
            }
        }
        let cp = Checkpoint {
            origin: self.inner.config.ledger_origin.clone(),
            size: app.size(),
            root: app.root(),
        };
        let note = self.note_signer()?.sign(&cp).map_err(internal)?;
        let row = CheckpointRow {
            size: cp.size,
            root: cp.root.to_vec(),
            note: note.clone(),
            created_at: self.now_ms(),
        };
        tx.insert_checkpoint(&row).await?;
        tx.commit().await?;
        Ok(note)
    }

    /// An inclusion proof for leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(
        &self,
        p: &Principal,
        index: u64,
        size: u64,
    ) -> Result<InclusionProof> {
        self.require_ledger_reader(p).await?;
        let mut tx = self.inner.store.begin().await?;
        let current = tx.ledger_head().await?.size;
        if size > current {
            return Err(ServiceError::invalid(
                "size",
                format!("the ledger has only {current} entries"),
            ));
        }
        if index >= size {
            return Err(ServiceError::invalid("index", "must be less than size"));
        }
        let leaf = tx.ledger_leaves(index, index + 1).await?;
        let leaf = leaf
            .first()
            .ok_or_else(|| internal(format!("leaf {index} is missing")))?;
        let leaf_hash: Hash = leaf
            .leaf_hash
            .as_slice()
            .try_into()
            .map_err(|_| internal("stored leaf hash"))?;
        let proof = with_nodes(tx.as_mut(), |r| merkle::inclusion_proof_at(r, index, size)).await?;
        Ok(InclusionProof {
            index,
            size,
            leaf_hash,
            proof,
        })
    }

    /// A consistency proof between the trees of `from` and `to` leaves.
    pub async fn consistency_proof(&self, p: &Principal, from: u64, to: u64) -> Result<Vec<Hash>> {
        self.require_ledger_reader(p).await?;
        let mut tx = self.inner.store.begin().await?;
        let current = tx.ledger_head().await?.size;
        if to > current {
            return Err(ServiceError::invalid(
                "to",
                format!("the ledger has only {current} entries"),
            ));
        }
        if from > to {
            return Err(ServiceError::invalid("from", "must not exceed to"));
        }
        with_nodes(tx.as_mut(), |r| merkle::consistency_proof_at(r, from, to)).await
    }

    /// Recomputes every leaf hash and the tree from storage; compares each leaf
    /// with its stored hash and stored tree node, the root with the stored head,
    /// and every signed checkpoint (signature and root) with the recomputed tree.
    /// `progress` is called with (done, total).
    pub async fn audit_verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        let cps = tx.checkpoints().await?;
        let key = self.ledger_verifier_key()?;
        let mut checkpoints = Vec::new();
        for row in &cps {
            match verify_checkpoint(&row.note, &key) {
                Ok(cp) if cp.size == row.size && cp.root.as_slice() == row.root.as_slice() => {
                    checkpoints.push(cp)
                }
                Ok(_) => {
                    return Ok(VerifyReport::Tampered {
                        index: row.size,
                        reason: format!(
                            "stored checkpoint {} does not match its signed note",
                            row.size
                        ),
                    });
                }
                Err(e) => {
                    return Ok(VerifyReport::Tampered {
                        index: row.size,
                        reason: format!("checkpoint {} has a bad signature: {e}", row.size),
                    });
                }
            }
        }
        let mut verifier = LogVerifier::with_checkpoints(checkpoints.iter().map(|c| c.size));
        let batch = 20_000u64;
        let total = head
            .size
            .max(checkpoints.last().map(|c| c.size).unwrap_or(0));
        let mut start = 0u64;
        // The stored tree nodes are checked too: proofs are served from them.
        let mut tree = Appender::new();
        while start < total {
            let end = start + batch;
            let leaves = tx.ledger_leaves(start, end).await?;
            let mut nodes: HashMap<(u32, u64), Hash> = HashMap::new();
            let mut level = 0u32;
            while level < 64 && (1u64 << level) <= end {
                let (lo, hi) = (start >> level, (end >> level) + 1);
                for (i, h) in tx.ledger_nodes(level, lo, hi).await? {
                    nodes.insert((level, i), h);
                }
                level += 1;
            }
            // Leaf hashes and canonical forms are checked on every core; the
            // tree and its stored nodes are then checked in order, and the
            // first problem in index order is the one reported.
            let stored: Vec<Option<Hash>> = leaves
                .iter()
                .map(|l| l.leaf_hash.as_slice().try_into().ok())
                .collect();
            let batch: Vec<StoredLeaf<'_>> = leaves
                .iter()
                .zip(&stored)
                .map(|(l, h)| StoredLeaf {
                    index: l.index,
                    data: &l.data,
                    leaf_hash: h.as_ref(),
                })
                .collect();
            let before = verifier.size();
            let pushed = verifier.push_batch(&batch);
            let taken = (verifier.size() - before) as usize;
            for (l, hash) in leaves.iter().zip(&stored).take(taken) {
                let Some(hash) = hash else {
                    return Ok(VerifyReport::Tampered {
                        index: l.index,
                        reason: "the stored leaf hash is malformed".into(),
                    });
                };
                for (level, idx, h) in tree.push(*hash) {
                    if nodes.get(&(level, idx)) != Some(&h) {
                        let first = idx << level;
                        return Ok(VerifyReport::Tampered {
                            index: first,
                            reason: format!(
                                "the stored tree node (level {level}, index {idx}) does not match the leaves from {first}"
                            ),
                        });
                    }
                }
            }
            if let Err(e) = pushed {
                return Ok(VerifyReport::Tampered {
                    index: e.index,
                    reason: e.kind.to_string(),
                });
            }
            start = end;
            progress(verifier.size(), total);
        }
        // Leaves stored beyond a gap, or past the recorded head, are tampering too.
        let beyond = tx.ledger_leaves(verifier.size(), i64::MAX as u64).await?;
        if let Some(l) = beyond.first() {
            return Ok(VerifyReport::Tampered {
                index: verifier.size(),
                reason: format!(
                    "leaf missing or extra; the next stored leaf claims index {}",
                    l.index
                ),
            });
        }
        if let Err(e) = verifier.check_checkpoints(&checkpoints) {
            let reason = match e.kind {
                TamperKind::Truncated { checkpoint_size } => {
                    format!(
                        "the log is shorter than the signed checkpoint of size {checkpoint_size} (truncated)"
                    )
                }
                other => format!("{other} (checkpoint)"),
            };
            return Ok(VerifyReport::Tampered {
                index: e.index,
                reason,
            });
        }
        let (size, root) = verifier.finish();
        let expected = Appender::from_frontier(head.size, head.frontier).map_err(internal)?;
        if size != expected.size() {
            return Ok(VerifyReport::Tampered {
                index: size.min(expected.size()),
                reason: format!(
                    "the log holds {size} leaves but its head records {}",
                    expected.size()
                ),
            });
        }
        if root != expected.root() {
            return Ok(VerifyReport::Tampered {
                index: 0,
                reason: "recomputed root differs from the stored head".into(),
            });
        }
        Ok(VerifyReport::Ok {
            size,
            root_hex: hex::encode(root),
            checkpoints: checkpoints.len(),
        })
    }

    /// Checks a checkpoint held outside Custos (an auditor's copy) against the
    /// current log: its signature must be ours, and the current tree must extend
    /// the tree it commits to (recomputed from stored nodes, with a consistency
    /// proof to the current size).
    pub async fn witness(&self, note: &str) -> Result<WitnessReport> {
        let key = self.ledger_verifier_key()?;
        let cp = verify_checkpoint(note, &key).map_err(|e| {
            ServiceError::invalid(
                "checkpoint",
                format!("not a checkpoint signed by this ledger: {e}"),
            )
        })?;
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        if cp.size > head.size {
            return Ok(WitnessReport::Inconsistent {
                reason: format!(
                    "the checkpoint commits to {} entries but the log now has {}: history was truncated or rewritten",
                    cp.size, head.size
                ),
            });
        }
        let app = match Appender::from_frontier(head.size, head.frontier) {
            Ok(a) => a,
            Err(e) => {
                return Ok(WitnessReport::Inconsistent {
                    reason: format!("the stored tree head is damaged: {e}"),
                });
            }
        };
        let size = cp.size;
        let root = match with_nodes(tx.as_mut(), |r| merkle::root_at(r, size)).await {
            Ok(r) => r,
            Err(e) => {
                return Ok(WitnessReport::Inconsistent {
                    reason: e.to_string(),
                });
            }
        };
        if root != cp.root {
            return Ok(WitnessReport::Inconsistent {
                reason: format!(
                    "the log's root at size {size} differs from the checkpoint: history was rewritten"
                ),
            });
        }
        let current = app.size();
        if size == 0 {
            // The empty tree (its root checked above) is a prefix of every
            // tree; RFC 9162 has no consistency proof from size 0.
            return Ok(WitnessReport::Consistent { size, current });
        }
        let proof = with_nodes(tx.as_mut(), |r| {
            merkle::consistency_proof_at(r, size, current)
        })
        .await?;
        if let Err(e) = merkle::verify_consistency(size, current, &proof, &cp.root, &app.root()) {
            return Ok(WitnessReport::Inconsistent {
                reason: format!("consistency proof failed: {e}"),
            });
        }
        Ok(WitnessReport::Consistent { size, current })
    }
}

/// Whether a role may read the audit ledger: admin, auditor and privacy
/// officer. Pages use it to decide what to show; the use cases decide again.
pub fn reads_ledger(role: custos_domain::Role) -> bool {
    use custos_domain::Role;
    matches!(role, Role::Admin | Role::Auditor | Role::PrivacyOfficer)
}

/// Most events [`Custos::audit_activity`] counts; beyond, it says so.
pub const ACTIVITY_MAX_EVENTS: u32 = 50_000;

/// Most events one [`Custos::audit_export`] holds.
pub const EXPORT_MAX_EVENTS: u32 = 1_000;

/// Events per hour by action over a window of whole hours.
#[derive(Debug, Clone)]
pub struct AuditActivity {
    /// Start of the first hour (Unix ms).
    pub from_ms: i64,
    /// Number of hours.
    pub hours: u32,
    /// Events per hour, all actions.
    pub total: Vec<u64>,
    /// Events per hour for each action seen, the busiest action first.
    pub actions: Vec<(String, Vec<u64>)>,
    /// Whether there were more than [`ACTIVITY_MAX_EVENTS`] events, so only
    /// the newest were counted.
    pub truncated: bool,
}

/// One leaf of an export, with its inclusion proof.
#[derive(Debug, Clone)]
pub struct ExportedLeaf {
    /// Leaf index.
    pub index: u64,
    /// The exact leaf bytes (canonical JSON of the event).
    pub data: Vec<u8>,
    /// The decoded event.
    pub event: AuditEvent,
    /// SHA-256(0x00 ‖ data).
    pub leaf_hash: Hash,
    /// Inclusion proof in the tree of the export's checkpoint, bottom up.
    pub proof: Vec<Hash>,
}

/// Events with inclusion proofs against a fresh signed checkpoint, and the
/// key that verifies it: everything a third party needs to check them offline.
#[derive(Debug, Clone)]
pub struct LedgerExport {
    /// The signed checkpoint note (C2SP signed-note).
    pub checkpoint: String,
    /// The ledger's note verifier key.
    pub verifier_key: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root.
    pub root: Hash,
    /// The events, oldest first.
    pub leaves: Vec<ExportedLeaf>,
}

fn decode_leaf(index: u64, data: &[u8]) -> Result<AuditEvent> {
    AuditEvent::decode(data).map_err(|e| internal(format!("leaf {index}: {e}")))
}

impl Custos {
    /// Counts events per hour by action for `hours` whole hours from `from_ms`
    /// (at most [`ACTIVITY_MAX_EVENTS`], the newest).
    pub async fn audit_activity(
        &self,
        p: &Principal,
        from_ms: i64,
        hours: u32,
    ) -> Result<AuditActivity> {
        self.require_ledger_reader(p).await?;
        const HOUR: i64 = 3_600_000;
        let hours = hours.clamp(1, 24 * 14);
        let to_ms = from_ms.saturating_add(i64::from(hours) * HOUR);
        let mut tx = self.inner.store.begin().await?;
        let filter = EventFilter {
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            ..Default::default()
        };
        let mut found = tx.find_leaves(&filter, ACTIVITY_MAX_EVENTS + 1).await?;
        let truncated = found.len() > ACTIVITY_MAX_EVENTS as usize;
        found.truncate(ACTIVITY_MAX_EVENTS as usize);
        let wanted: std::collections::HashSet<u64> = found.iter().copied().collect();
        let mut total = vec![0u64; hours as usize];
        let mut by_action: HashMap<String, Vec<u64>> = HashMap::new();
        if let (Some(&last), Some(&first)) = (found.first(), found.last()) {
            let mut start = first;
            while start <= last {
                let end = (start + 5_000).min(last + 1);
                for l in tx.ledger_leaves(start, end).await? {
                    if !wanted.contains(&l.index) {
                        continue;
                    }
                    let e = decode_leaf(l.index, &l.data)?;
                    let Some(t) = custos_domain::value::parse_timestamp(&e.time) else {
                        continue;
                    };
                    let ms = custos_domain::value::to_unix_ms(t);
                    if ms < from_ms || ms >= to_ms {
                        continue;
                    }
                    let h = ((ms - from_ms) / HOUR) as usize;
                    total[h] += 1;
                    by_action
                        .entry(e.action)
                        .or_insert_with(|| vec![0; hours as usize])[h] += 1;
                }
                start = end;
            }
        }
        let mut actions: Vec<(String, Vec<u64>)> = by_action.into_iter().collect();
        actions.sort_by(|a, b| {
            let (ta, tb) = (a.1.iter().sum::<u64>(), b.1.iter().sum::<u64>());
            tb.cmp(&ta).then_with(|| a.0.cmp(&b.0))
        });
        Ok(AuditActivity {
            from_ms,
            hours,
            total,
            actions,
            truncated,
        })
    }

    /// Exports the events matching `filter` with index at least `start` and
    /// below `filter.before_index` (at most [`EXPORT_MAX_EVENTS`]), each with
    /// its inclusion proof against a checkpoint signed now, plus that
    /// checkpoint and the verifier key. The export is recorded in the ledger
    /// (`audit.export`, with the count and index range; no personal values).
    pub async fn audit_export(
        &self,
        p: &Principal,
        filter: &EventFilter,
        start: u64,
    ) -> Result<LedgerExport> {
        self.require_ledger_reader(p).await?;
        let note = self.ledger_checkpoint().await?;
        let verifier_key = self.ledger_verifier_key()?;
        let cp = verify_checkpoint(&note, &verifier_key).map_err(internal)?;
        let size = cp.size;
        let mut f = filter.clone();
        f.before_index = Some(f.before_index.map_or(size, |b| b.min(size)));
        let mut tx = self.inner.store.begin().await?;
        let mut found: Vec<u64> = tx
            .find_leaves(&f, EXPORT_MAX_EVENTS + 1)
            .await?
            .into_iter()
            .filter(|&i| i >= start)
            .collect();
        if found.len() > EXPORT_MAX_EVENTS as usize {
            return Err(ServiceError::invalid(
                "range",
                format!(
                    "more than {EXPORT_MAX_EVENTS} events match; narrow the range and export it in parts"
                ),
            ));
        }
        if found.is_empty() {
            return Err(ServiceError::invalid(
                "range",
                "no events match, so there is nothing to export",
            ));
        }
        found.reverse();
        drop(tx);
        let export = self.prove_leaves(note, verifier_key, &found).await?;
        let (first, last) = (found[0], found[found.len() - 1]);
        self.append_alone(Event::new(p, "audit.export").detail(format!(
            "count={} first={first} last={last} size={size}",
            export.leaves.len()
        )))
        .await?;
        Ok(export)
    }

    /// The leaves at `indexes` (ascending), each with its inclusion proof
    /// against the signed checkpoint `note`, checked before they are handed
    /// out: an export, a purge certificate.
    pub(crate) async fn prove_leaves(
        &self,
        note: String,
        verifier_key: String,
        indexes: &[u64],
    ) -> Result<LedgerExport> {
        let cp = verify_checkpoint(&note, &verifier_key).map_err(internal)?;
        let size = cp.size;
        if let Some(i) = indexes.iter().find(|&&i| i >= size) {
            return Err(internal(format!(
                "leaf {i} is not covered by the checkpoint of size {size}"
            )));
        }
        let mut tx = self.inner.store.begin_read().await?;
        let mut cache = CachedNodes {
            nodes: HashMap::new(),
        };
        let mut leaves = Vec::with_capacity(indexes.len());
        // Every leaf in a few queries, whatever their indexes.
        let rows = tx.ledger_leaves_at(indexes).await?;
        if let Some(gone) = indexes
            .iter()
            .find(|i| rows.binary_search_by_key(*i, |l| l.index).is_err())
        {
            return Err(internal(format!("leaf {gone} is missing")));
        }
        for l in rows {
            let event = decode_leaf(l.index, &l.data)?;
            let leaf_hash = custos_ledger::leaf_hash(&l.data);
            let index = l.index;
            let proof = with_cache(tx.as_mut(), &mut cache, |r| {
                merkle::inclusion_proof_at(r, index, size)
            })
            .await?;
            merkle::verify_inclusion(&leaf_hash, index, size, &proof, &cp.root).map_err(|e| {
                internal(format!(
                    "leaf {index} does not verify against the checkpoint: {e}"
                ))
            })?;
            leaves.push(ExportedLeaf {
                index,
                data: l.data,
                event,
                leaf_hash,
                proof,
            });
        }
        Ok(LedgerExport {
            checkpoint: note,
            verifier_key,
            size,
            root: cp.root,
            leaves,
        })
    }
}
