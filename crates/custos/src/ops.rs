//! Operator commands on keys, backups and erasure.

use crate::cli::{BackupCommand, KeysCommand};
use crate::setup::{self, Paths};
use anyhow::{Context, Result, anyhow, bail};
use custos_crypto::MasterKey;
use custos_service::{Config, Custos, Principal};
use std::process::ExitCode;
use std::sync::Arc;

fn days(ms: i64, now_ms: i64) -> i64 {
    (now_ms - ms) / 86_400_000
}

/// `custos keys …`
pub async fn keys(paths: &Paths, cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Status => {
            let provider = setup::provider(paths)?;
            let (custos, _) = setup::open(paths, false).await?;
            let report = custos.key_report().await;
            let now = custos_domain::value::to_unix_ms(custos.clock().now());
            custos.close().await;
            let r = report?;
            println!("master key source:   {}", provider.describe());
            println!("active version:      {}", r.active_version);
            println!(
                "min. decryption:     {}",
                if r.min_decryption_version == 0 {
                    "none retired".to_string()
                } else {
                    format!("version {}", r.min_decryption_version)
                }
            );
            println!("blind index size:    {} bits", r.blind_index_bits);
            println!(
                "data key max age:    {} days (replaced on the next write after that)",
                r.data_key_max_age_days
            );
            println!();
            println!("version    data keys      oldest (days) in keyring");
            for v in r.versions {
                let oldest = v
                    .oldest_ms
                    .map(|ms| days(ms, now).to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<9} {:>10} {:>18} {}",
                    v.version,
                    v.data_keys,
                    oldest,
                    if v.available { "yes" } else { "NO" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate => {
            let provider = setup::provider(paths)?;
            let (custos, _) = setup::open(paths, false).await?;
            // The new version is saved before anything is re-wrapped with it, so a
            // crash at any point leaves a keyring that opens everything.
            let mut ring = provider.load()?;
            let next = ring.versions().into_iter().max().unwrap_or(0) + 1;
            let resumed = custos
                .key_report()
                .await?
                .versions
                .iter()
                .any(|v| v.version < ring.active().version() && v.data_keys > 0);
            if !resumed {
                ring.add(MasterKey::generate(next)?)?;
                provider.save(&ring)?;
            }
            let active = ring.active().version();
            let progress = crate::cli::progress_bar("data keys");
            let done = custos
                .rotate_master(ring, |d, t| {
                    if let Some(b) = &progress {
                        b.set_length(t);
                        b.set_position(d);
                    }
                })
                .await;
            if let Some(b) = progress {
                b.finish_and_clear();
            }
            custos.close().await;
            let done = done?;
            println!(
                "master key version {active} is active{}; re-wrapped {done} data keys",
                if resumed {
                    " (resumed an unfinished rotation)"
                } else {
                    ""
                }
            );
            println!(
                "Retire old versions once you no longer need them: custos keys retire --below {active}"
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Retire { below } => {
            let provider = setup::provider(paths)?;
            let (custos, _) = setup::open(paths, false).await?;
            let kept = custos.retire_master_below(below).await;
            custos.close().await;
            let kept = kept?;
            provider.save(&kept)?;
            println!(
                "retired master key versions below {below}; the keyring now holds {:?}",
                kept.versions()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `custos serve` is running on this data directory.
pub(crate) fn server_running(paths: &Paths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(paths.data_dir.join(setup::PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// `custos backup …`
pub async fn backup(paths: &Paths, cmd: BackupCommand) -> Result<ExitCode> {
    match cmd {
        BackupCommand::Create { file } => {
            let (custos, _) = setup::open(paths, false).await?;
            let info = custos.backup_create(&paths.data_dir, &file).await;
            custos.close().await;
            let info = info?;
            println!(
                "backup written: {} ({} bytes, master key version {}); keep it away from the master key",
                file.display(),
                info.bytes,
                info.kek_version
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Restore { file } => restore(paths, &file).await,
    }
}

async fn restore(paths: &Paths, file: &std::path::Path) -> Result<ExitCode> {
    if let setup::Backend::Postgres(_) = paths.backend()? {
        bail!(
            "backup restore restores the embedded SQLite database; for PostgreSQL use pg_dump and pg_restore"
        );
    }
    if let Some(pid) = server_running(paths) {
        bail!(
            "custos serve is running on this data directory (pid {pid}); stop it before restoring"
        );
    }
    let provider = setup::provider(paths)?;
    if !provider.exists() {
        bail!(
            "no master key ({}): a backup can only be opened with the master key it was made under",
            provider.describe()
        );
    }
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let db = paths.data_dir.join(setup::DB_FILE);
    std::fs::create_dir_all(&paths.data_dir)
        .with_context(|| format!("cannot create {}", paths.data_dir.display()))?;
    let tmp = paths
        .data_dir
        .join(format!(".restore-{}.db", uuid::Uuid::now_v7()));
    let cleanup = |p: &std::path::Path| {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    };
    let header = {
        let out = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let ring = provider.load()?;
        match custos_crypto::decrypt_backup(
            &ring,
            std::io::BufReader::new(input),
            std::io::BufWriter::new(out),
        ) {
            Ok(h) => h,
            Err(e) => {
                cleanup(&tmp);
                bail!(
                    "{} is not a usable backup for this master key ({e}); nothing was changed",
                    file.display()
                );
            }
        }
    };
    // Open the restored copy on its own first: integrity and the key must fit.
    let check = async {
        let store = custos_store::SqliteStore::open(&tmp).await?;
        let custos = Custos::open(
            Arc::new(store),
            Arc::new(custos_domain::SystemClock),
            provider.load()?,
            Config::default(),
        )
        .await?;
        let r = custos.integrity_check().await;
        custos.close().await;
        r.map_err(anyhow::Error::from)
    };
    if let Err(e) = check.await {
        cleanup(&tmp);
        bail!("the backup decrypted but its database is not usable ({e}); nothing was changed");
    }
    // Every erasure since the backup was taken: from the current database and
    // from the journal kept beside it.
    let mut erased = setup::journal_since(&paths.data_dir, header.created_ms)?;
    if db.exists() {
        let (current, _) = setup::open(paths, false).await?;
        let since = current.erasures_since(header.created_ms).await;
        current.close().await;
        erased.extend(since?.into_iter().map(|(s, _)| s));
    }
    erased.sort();
    erased.dedup();
    if db.exists() {
        let aside = paths
            .data_dir
            .join(format!("{}.pre-restore", setup::DB_FILE));
        std::fs::rename(&db, &aside)
            .with_context(|| format!("cannot move {} aside", db.display()))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    std::fs::rename(&tmp, &db).with_context(|| {
        format!(
            "cannot put the restored database in place at {}",
            db.display()
        )
    })?;
    let (custos, _) = setup::open(paths, false).await?;
    let reapplied = custos.reapply_erasures(&erased).await;
    custos.close().await;
    let reapplied = reapplied?;
    println!(
        "restored {} (taken at {} ms); re-applied {reapplied} erasure(s) made since",
        file.display(),
        header.created_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// `custos subject erase`
pub async fn erase(paths: &Paths, id: &str, yes: bool) -> Result<ExitCode> {
    let id =
        uuid::Uuid::parse_str(id).map_err(|_| anyhow!("--id must be a contact id (a UUID)"))?;
    if !yes {
        bail!("erasure cannot be undone: add --yes to confirm");
    }
    let (custos, _) = setup::open(paths, false).await?;
    let report = custos.erase_subject(&Principal::cli(), id).await;
    custos.close().await;
    let report = report?;
    for (entity, n) in &report.shredded {
        println!("shredded: {n} {entity}");
    }
    for (entity, n, why) in &report.kept {
        println!("kept anonymised: {n} {entity} — {why}");
    }
    Ok(ExitCode::SUCCESS)
}
