//! What the background jobs of `custos serve` last did: when each last
//! succeeded and, if its latest run failed, why. A failing timer must show
//! where an administrator looks (the audit page, `/healthz`), not only in the
//! server log: a checkpoint signer that failed silently for weeks once went
//! unseen.
//!
//! The record is kept in memory by the process that runs the jobs; it says
//! nothing about another process on the same database.

use crate::Custos;
use std::collections::BTreeMap;

/// The latest outcome of one background job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStatus {
    /// The job's name (`checkpoint`, `backup`, …).
    pub name: String,
    /// How many times it has run since the process started.
    pub runs: u64,
    /// When it last succeeded (Unix ms).
    pub last_success_ms: Option<i64>,
    /// When its latest run failed (Unix ms), if the latest run failed.
    pub failing_since_ms: Option<i64>,
    /// Why the latest run failed (an error message, no secret or personal
    /// value: service errors never carry one).
    pub error: Option<String>,
}

impl JobStatus {
    /// Whether the latest run succeeded (or none has run yet).
    pub fn healthy(&self) -> bool {
        self.error.is_none()
    }
}

/// The jobs' outcomes, by name.
#[derive(Debug, Default)]
pub(crate) struct Jobs(std::sync::Mutex<BTreeMap<String, JobStatus>>);

impl Custos {
    /// Records the outcome of one run of the background job `name`.
    pub fn record_job_run(&self, name: &str, outcome: std::result::Result<(), String>) {
        let now = self.now_ms();
        let mut jobs = match self.inner.jobs.0.lock() {
            Ok(j) => j,
            // A panic elsewhere while holding the lock left a usable map.
            Err(poisoned) => poisoned.into_inner(),
        };
        let job = jobs.entry(name.to_string()).or_insert_with(|| JobStatus {
            name: name.to_string(),
            runs: 0,
            last_success_ms: None,
            failing_since_ms: None,
            error: None,
        });
        job.runs += 1;
        match outcome {
            Ok(()) => {
                job.last_success_ms = Some(now);
                job.failing_since_ms = None;
                job.error = None;
            }
            Err(e) => {
                job.failing_since_ms.get_or_insert(now);
                job.error = Some(e);
            }
        }
    }

    /// The background jobs that have run in this process, by name.
    pub fn job_statuses(&self) -> Vec<JobStatus> {
        match self.inner.jobs.0.lock() {
            Ok(j) => j.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }
}
