//! The use cases of Custos. Every one follows the same path:
//! **authorise → open → act → audit**, in one store transaction, so a change and
//! the audit leaf that records it commit together (DESIGN invariant 2).
//!
//! The web and CLI crates call only this crate; they never touch the store.

mod crm;
mod error;
mod identity;
mod jobs;
mod ledger;
mod privacy;
mod security;
mod settings;
mod vault;

pub use crm::dashboard::{
    Amounts, Dashboard, DueSummary, MonthWon, PipelineSummary, RecentSummary, StageTotal,
};
pub use crm::import::{ImportReport, ImportSource, ImportStage, RowError, RowsInMemory};
pub use crm::query::{ListParams, Page};
pub use crm::records::{RecordView, Submission};
pub use crm::search::{COUNT_LIMIT, ListSize, SearchGroup, SearchKind, SearchResults, search_kind};
pub use crm::seed::SeedReport;
pub use custos_domain::throttle::Throttle;
pub use custos_store::EventFilter;
pub use error::{Result, ServiceError};
pub use identity::guards::{ENROLMENT_REQUIRED, STEP_UP_REQUIRED};
pub use identity::invite::{INVITE_TTL_MS, Invitation};
pub use identity::mfa::{
    AssertionOptions, CreationOptions, PasskeyView, TotpConfirmed, TotpEnrolment,
};
pub use identity::passwords::{PASSWORD_MAX, PASSWORD_MIN};
pub use identity::principal::{Principal, RequestMeta, Via};
pub use identity::roles::{RoleInput, RoleView};
pub use identity::sessions::{LoginResult, SessionView, SignIn};
pub use identity::tokens::{NewToken, TOKEN_SCOPES, TokenView};
pub use identity::users::UserView;
pub use jobs::JobStatus;
pub use ledger::audit::AuditEntry;
pub use ledger::{
    ACTIVITY_MAX_EVENTS, AuditActivity, EXPORT_MAX_EVENTS, EventQuery, ExportedLeaf,
    InclusionProof, LedgerExport, LedgerStatus, VerifyReport, WitnessReport, reads_ledger,
};
pub use privacy::consent::{Exclusions, Export, NOTICE_VERSION};
pub use privacy::dsar::{OpenedRequest, Opener, PORTAL_PER_HOUR, PublicStatus, RequestView};
pub use privacy::holds::{HOLD_REASON_MAX, HoldView};
pub use privacy::minimisation::{
    DECISION_REASON_MAX, Decision, DecisionKind, FieldUsage, MinimisationReport, REVIEW_MONTHS,
    UsageFlag,
};
pub use privacy::outcome::{
    ConsentEntry, ConsentHistory, ConsentReceipt, ConsentRecorded, ConsentState, DataNotice,
    DsarEvidence, DsarPackage, DsarSummary, EvidenceStep, KeptItem, MonthClosed, PackageRecord,
    Rejection, RequestOutcome,
};
pub use privacy::policies::{POLICY_REASON_MAX, PolicyChange, PolicyImpact, PolicyView};
pub use privacy::processing::{
    ActivityRecord, Controller, EEA, Measure, PROCESSORS_MAX, Processor, RECORD_FORMAT,
    RecordOfProcessing, Transfer, TransferRecord,
};
pub use privacy::retention::{
    CERTIFICATE_FORMAT, CertificateLeaf, CertificateLedger, DEFAULT_BATCH as RETENTION_BATCH,
    DueRecord, PolicyOutcome, PolicyPreview, PurgeCertificate, RetentionPreview,
    RetentionRunReport, RetentionRunSummary, RunOptions,
};
pub use vault::keyops::{
    BackupInfo, ErasureJournal, ErasureReport, KeyReport, MasterVersionStatus,
};
pub use vault::keys::{KeyReload, KeyStatus};

use custos_crypto::MasterKeyring;
use custos_domain::Clock;
use custos_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Settings of a running Custos.
#[derive(Debug, Clone)]
pub struct Config {
    /// Tenant name bound into every sealed value's associated data.
    pub tenant: String,
    /// Expected number of rows per indexed field; sets blind-index truncation.
    pub expected_rows: u64,
    /// A web session ends after this long without a request. Requests
    /// record the session's last-seen time at most once a minute, so it may
    /// end up to a minute early, never late.
    pub session_idle: Duration,
    /// A web session ends this long after sign-in, whatever happens.
    pub session_absolute: Duration,
    /// Maximum data keys kept unwrapped in memory.
    pub key_cache_size: usize,
    /// Origin line of signed checkpoints.
    pub ledger_origin: String,
    /// A subject's data key is replaced (on the next write) once it is this old.
    pub dek_max_age: Duration,
    /// The MFA policy a new database starts with: every account needs a second
    /// factor (an account without one can only enrol one). Administrators
    /// change it later in Settings; the stored setting wins over this.
    pub mfa_required: bool,
    /// How long after a second-factor check a session may do sensitive things
    /// (export, erasure, role and key changes, API tokens) without a new one.
    pub step_up_window: Duration,
    /// The WebAuthn relying-party id: the host name users open (never an IP
    /// address). Passkeys are bound to it.
    pub webauthn_rp_id: String,
    /// Page origins allowed to run WebAuthn ceremonies. Empty: `https://` on
    /// the relying-party id with any port (and `http://localhost` when the id
    /// is `localhost`, a secure context).
    pub webauthn_origins: Vec<String>,
    /// A list filtered on something no index answers (a status, a kind, a
    /// currency, a text search) reads its rows in the list's order, this many
    /// at a time, and at most [`LIST_WINDOWS`] windows in one request; a rare
    /// value then gives a short page that says where to search on, not a
    /// request that reads ten million rows.
    pub list_window: u32,
}

/// How many windows of [`Config::list_window`] rows one list request reads
/// at most.
pub const LIST_WINDOWS: u32 = 5;

impl Default for Config {
    fn default() -> Self {
        Config {
            tenant: "default".to_string(),
            expected_rows: 1_000_000,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            key_cache_size: 10_000,
            ledger_origin: "custos.local/ledger".to_string(),
            dek_max_age: Duration::from_secs(365 * 86_400),
            mfa_required: true,
            step_up_window: Duration::from_secs(10 * 60),
            webauthn_rp_id: "localhost".to_string(),
            webauthn_origins: Vec::new(),
            list_window: 10_000,
        }
    }
}

/// The service: the only way into Custos's data.
#[derive(Clone)]
pub struct Custos {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: vault::keys::Keys,
    config: Config,
    erasure_journal: std::sync::RwLock<Option<vault::keyops::ErasureJournal>>,
    /// How this process serves the network, in words (set by `serve`).
    transport: std::sync::RwLock<Option<String>>,
    /// Reads' audit leaves waiting for their group commit.
    reads: ledger::audit::ReadAudit,
    /// What the background jobs of this process last did.
    jobs: jobs::Jobs,
}

impl std::fmt::Debug for Custos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custos")
            .field("backend", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

impl Custos {
    /// Opens Custos over a store with the given master keys. On a new database it
    /// creates the system keys; on an existing one it checks the master key fits.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: MasterKeyring,
        config: Config,
    ) -> Result<Custos> {
        let keys =
            vault::keys::Keys::load_or_create(store.as_ref(), clock.as_ref(), master, &config)
                .await?;
        let custos = Custos {
            inner: Arc::new(Inner {
                store,
                clock,
                keys,
                config,
                erasure_journal: std::sync::RwLock::new(None),
                transport: std::sync::RwLock::new(None),
                reads: ledger::audit::ReadAudit::default(),
                jobs: jobs::Jobs::default(),
            }),
        };
        custos.ensure_defaults().await?;
        Ok(custos)
    }

    /// The injected clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Which storage backend is in use.
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    /// Versions and settings of the keys.
    pub fn key_status(&self) -> KeyStatus {
        self.inner.keys.status()
    }

    /// Closes the store (flushes SQLite's WAL into the database file).
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    /// Now, truncated to the stored precision (milliseconds).
    fn now(&self) -> time::OffsetDateTime {
        let t = self.inner.clock.now();
        custos_domain::value::truncate_ms(t).unwrap_or(t)
    }

    fn now_ms(&self) -> i64 {
        custos_domain::value::to_unix_ms(self.inner.clock.now())
    }
}
