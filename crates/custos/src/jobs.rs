//! The background jobs of `custos serve`, all of one shape: a name, a
//! schedule, optionally a signal that wakes the job early, and a run that
//! succeeds or says why not. The runner logs a failure and records every
//! outcome with the service ([`Custos::record_job_run`]), so `/healthz` and
//! the audit page show each job's schedule, last run and latest error.
//!
//! To add a job: write a type implementing [`Job`] and start it with
//! [`spawn`] in `cli::serve`.

use anyhow::{Context, Result};
use custos_service::Custos;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The schedule came round (the first run is at start-up).
    Schedule,
    /// The job's wake-up signal arrived (SIGHUP for the certificate).
    Signal,
}

/// A signal that runs a job before its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Only the schedule runs the job.
    Never,
    /// `SIGHUP` also runs it (Unix only; elsewhere only the schedule).
    Hangup,
}

/// One background job.
pub(crate) trait Job: Send + 'static {
    /// Its name on `/healthz` and the audit page.
    const NAME: &'static str;
    /// Does one run. The error is a sentence for an administrator, without
    /// any secret or personal value.
    fn run(&mut self, trigger: Trigger) -> impl Future<Output = Result<(), String>> + Send;
}

/// Starts `job`: it runs at once, then every `every` (and on `wake`), until
/// the process ends. A run that takes longer than `every` delays the next
/// rather than queueing runs.
pub(crate) fn spawn<J: Job>(custos: &Custos, every: Duration, wake: Wake, mut job: J) {
    let custos = custos.clone();
    custos.schedule_job(J::NAME, every);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut signal = wake_signal(wake);
        loop {
            let trigger = next(&mut tick, &mut signal).await;
            let outcome = job.run(trigger).await;
            if let Err(error) = &outcome {
                tracing::error!(job = J::NAME, %error, "a background job failed");
            }
            custos.record_job_run(J::NAME, outcome);
        }
    });
}

#[cfg(unix)]
type Signal = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Signal = Option<std::convert::Infallible>;

fn wake_signal(wake: Wake) -> Signal {
    match wake {
        Wake::Never => None,
        #[cfg(unix)]
        Wake::Hangup => tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        #[cfg(not(unix))]
        Wake::Hangup => None,
    }
}

async fn next(tick: &mut tokio::time::Interval, signal: &mut Signal) -> Trigger {
    match signal.as_mut() {
        #[cfg(unix)]
        Some(s) => tokio::select! {
            _ = s.recv() => Trigger::Signal,
            _ = tick.tick() => Trigger::Schedule,
        },
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => {
            tick.tick().await;
            Trigger::Schedule
        }
    }
}

/// Signs a ledger checkpoint and, with `--checkpoint-dir`, publishes it
/// there as `checkpoint-<size>.txt`.
pub(crate) struct Checkpoint {
    pub custos: Custos,
    pub dir: Option<PathBuf>,
}

impl Job for Checkpoint {
    const NAME: &'static str = "checkpoint";

    async fn run(&mut self, _: Trigger) -> Result<(), String> {
        let note = self
            .custos
            .ledger_checkpoint()
            .await
            .map_err(|e| format!("signing a ledger checkpoint failed: {e}"))?;
        match &self.dir {
            Some(dir) => publish_checkpoint(dir, &note)
                .map_err(|e| format!("writing the checkpoint to --checkpoint-dir failed: {e:#}")),
            None => Ok(()),
        }
    }
}

/// Writes a checkpoint note as `checkpoint-<size>.txt` unless already there.
fn publish_checkpoint(dir: &Path, note: &str) -> Result<()> {
    let size = note.lines().nth(1).unwrap_or("0");
    let path = dir.join(format!("checkpoint-{size}.txt"));
    if !path.exists() {
        std::fs::write(&path, note).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Takes an encrypted backup into `--backup-dir` and deletes the oldest
/// beyond `--backup-keep`.
pub(crate) struct Backup {
    pub custos: Custos,
    pub data_dir: PathBuf,
    pub dir: PathBuf,
    pub keep: usize,
}

impl Job for Backup {
    const NAME: &'static str = "backup";

    async fn run(&mut self, _: Trigger) -> Result<(), String> {
        self.take()
            .await
            .map_err(|e| format!("scheduled backup failed: {e:#}"))
    }
}

impl Backup {
    async fn take(&self) -> Result<()> {
        let now = custos_domain::value::to_unix_ms(self.custos.clock().now());
        let file = self.dir.join(format!("custos-{now}.backup"));
        self.custos.backup_create(&self.data_dir, &file).await?;
        let mut existing: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("custos-") && n.ends_with(".backup"))
            })
            .collect();
        // Names hold the time in milliseconds: sort by it, oldest first.
        existing.sort_by_key(|p| {
            p.file_stem()
                .and_then(|n| n.to_str())
                .and_then(|n| n.trim_start_matches("custos-").parse::<i64>().ok())
                .unwrap_or(0)
        });
        while existing.len() > self.keep {
            let old = existing.remove(0);
            std::fs::remove_file(&old)
                .with_context(|| format!("cannot delete {}", old.display()))?;
        }
        Ok(())
    }
}

/// Reloads the TLS certificate without a restart: on SIGHUP, when the
/// certificate or key file changes, and (self-signed) renews it when it
/// nears expiry.
pub(crate) struct Certificate {
    pub config: axum_server::tls_rustls::RustlsConfig,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub self_signed: bool,
    seen: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
}

impl Certificate {
    /// Watches `cert` and `key` as they are now.
    pub fn new(
        config: axum_server::tls_rustls::RustlsConfig,
        cert: PathBuf,
        key: PathBuf,
        self_signed: bool,
    ) -> Certificate {
        let seen = (stamp(&cert), stamp(&key));
        Certificate {
            config,
            cert,
            key,
            self_signed,
            seen,
        }
    }
}

fn stamp(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Job for Certificate {
    const NAME: &'static str = "certificate";

    async fn run(&mut self, trigger: Trigger) -> Result<(), String> {
        if self.self_signed {
            let now = custos_domain::Clock::now(&custos_domain::SystemClock);
            let renew = custos_web::tls::days_left(&self.cert, now)
                .map(|d| d < custos_web::tls::RENEW_DAYS)
                .unwrap_or(true);
            if renew {
                custos_web::tls::generate_self_signed(&self.cert, &self.key, now)
                    .map_err(|e| format!("renewing the self-signed certificate failed: {e}"))?;
            }
        }
        let now_seen = (stamp(&self.cert), stamp(&self.key));
        if trigger == Trigger::Signal || now_seen != self.seen {
            // `seen` moves on only once loaded: a bad new file is retried
            // (and reported failing) on every run until it is fixed.
            let config = custos_web::tls::server_config(&self.cert, &self.key).map_err(|e| {
                format!("the new TLS certificate was not loaded; keeping the old one: {e}")
            })?;
            self.seen = now_seen;
            self.config.reload_from_config(config);
            tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
        }
        Ok(())
    }
}

/// The retention purge on a schedule (`--retention-every-hours`). A run
/// finished less than one period ago (before a restart, or by `custos
/// retention run`) is not repeated early; a run a crash stopped is finished.
pub(crate) struct Retention {
    pub custos: Custos,
    pub every: Duration,
}

impl Job for Retention {
    const NAME: &'static str = "retention";

    async fn run(&mut self, _: Trigger) -> Result<(), String> {
        let cli = custos_service::Principal::cli();
        let fail = |e: custos_service::ServiceError| format!("the retention run failed: {e}");
        let last = self.custos.retention_runs(&cli, 1).await.map_err(fail)?;
        let now = custos_domain::value::to_unix_ms(self.custos.clock().now());
        let period = i64::try_from(self.every.as_millis()).unwrap_or(i64::MAX);
        if let Some(r) = last.first()
            && r.finished_at.is_some()
            && now.saturating_sub(r.started_ms) < period
        {
            return Ok(());
        }
        self.custos
            .retention_run(
                &cli,
                custos_service::RunOptions {
                    scheduled: true,
                    ..Default::default()
                },
                |_, _| {},
            )
            .await
            .map(|_| ())
            .map_err(fail)
    }
}
