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
    /// How often it runs, in seconds, when it runs on a schedule (a job
    /// recorded without one, such as a one-off, has none).
    pub every_secs: Option<u64>,
    /// How many times it has run since the process started.
    pub runs: u64,
    /// When it last ran, successfully or not (Unix ms).
    pub last_run_ms: Option<i64>,
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

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobStatus>> {
        match self.0.lock() {
            Ok(j) => j,
            // A panic elsewhere while holding the lock left a usable map.
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn entry<'a>(jobs: &'a mut BTreeMap<String, JobStatus>, name: &str) -> &'a mut JobStatus {
    jobs.entry(name.to_string()).or_insert_with(|| JobStatus {
        name: name.to_string(),
        every_secs: None,
        runs: 0,
        last_run_ms: None,
        last_success_ms: None,
        failing_since_ms: None,
        error: None,
    })
}

impl Custos {
    /// Announces the background job `name`, run every `every`, so the
    /// status page lists it (with its schedule) before its first run.
    pub fn schedule_job(&self, name: &str, every: std::time::Duration) {
        entry(&mut self.inner.jobs.lock(), name).every_secs = Some(every.as_secs());
    }

    /// Records the outcome of one run of the background job `name`.
    pub fn record_job_run(&self, name: &str, outcome: std::result::Result<(), String>) {
        let now = self.now_ms();
        let mut jobs = self.inner.jobs.lock();
        let job = entry(&mut jobs, name);
        job.runs += 1;
        job.last_run_ms = Some(now);
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

    /// The background jobs scheduled or run in this process, by name.
    pub fn job_statuses(&self) -> Vec<JobStatus> {
        self.inner.jobs.lock().values().cloned().collect()
    }
}
