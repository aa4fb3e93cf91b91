//! The commands. Each resolves to one service call; errors print one line.

use crate::jobs;
use crate::setup::{self, Paths};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use custos_domain::Role;
use custos_service::{Principal, VerifyReport};
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

/// Custos: the privacy-first CRM.
///
/// Contacts, companies, deals, activities and orders, with every personal field
/// encrypted at rest, every access recorded in a tamper-evident audit ledger, and
/// the privacy work of GDPR and CCPA built in. One binary, one data directory.
///
/// Start with `custos serve`: it creates the data directory on first run and
/// tells you how to create the first administrator.
#[derive(Debug, Parser)]
#[command(name = "custos", version, max_term_width = 100)]
pub struct Cli {
    /// Data directory: database, master key file, TLS certificate.
    #[arg(
        long,
        global = true,
        env = "CUSTOS_DATA_DIR",
        default_value = "./custos-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL. Default: the SQLite file in the data directory.
    #[arg(long, global = true, env = "CUSTOS_DATABASE_URL")]
    pub database: Option<String>,
    /// Master key file (default: master.key in the data directory). The
    /// environment variable CUSTOS_MASTER_KEY (base64 of 32 bytes) overrides both.
    #[arg(long, global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Use a passphrase-protected keyring (master.key.enc in the data
    /// directory), unlocked with the passphrase on the first line of this file.
    /// Without it, a terminal asks for the passphrase when that keyring exists.
    #[arg(long, global = true, env = "CUSTOS_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, database, master key and TLS certificate.
    /// Safe to run again: it only creates what is missing.
    Init,
    /// Run the HTTPS server (initialises first if needed).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// PEM certificate chain to serve instead of the generated self-signed one.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Seconds between automatic signed checkpoints of the audit ledger
        /// (one is signed only when the ledger grew).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        checkpoint_interval: u64,
        /// Also write every new signed checkpoint to this directory (one file per
        /// size), e.g. a folder synchronised to an auditor or another machine.
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        /// Also listen for plain HTTP here, only to redirect every request to HTTPS.
        #[arg(long)]
        http_listen: Option<String>,
        /// Take an encrypted backup into this directory on a schedule.
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// Hours between scheduled backups.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
        backup_every_hours: u64,
        /// How many scheduled backups to keep (older ones are deleted).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=1000))]
        backup_keep: u64,
        /// Hours between scheduled retention runs (what `custos retention
        /// run` does: purge what is past its retention period, with a
        /// certificate). A restart does not run it again early.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
        retention_every_hours: u64,
        /// Do not run retention on a schedule (run `custos retention run`
        /// yourself, e.g. from cron).
        #[arg(long)]
        no_scheduled_retention: bool,
    },
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check and export the tamper-evident audit ledger.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show the encryption keys' state.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Encrypted backups of the whole database.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Act on one data subject (a person).
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Apply the retention policies of the data inventory (orders anonymised
    /// two years after completion, activities deleted two years after they
    /// happened, answered privacy requests deleted after three), and show
    /// the purge certificates of past runs.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Import records from a CSV file. Columns are mapped by header (field
    /// names or labels, e.g. first_name or "First name"; for contacts,
    /// `company` takes a company name; for orders, `contact_email` names the
    /// contact). Every row is checked first; rejected rows are written to
    /// FILE.rejected.csv with the reason. Without --skip-invalid, one bad row
    /// means nothing is imported.
    ///
    /// The import is one transaction: a failure or Ctrl-C leaves nothing
    /// half-imported. The file is read twice, once to check every row and
    /// once to write, and never held in memory whole; do not edit it while
    /// the import runs (a change between the readings stops the import, and
    /// nothing is written). With the embedded database the import uses up to
    /// 256 MiB of memory for the database cache while it writes.
    Import {
        /// contacts, companies or orders.
        #[arg(value_parser = ["contacts", "companies", "orders"])]
        what: String,
        /// The CSV file (UTF-8, comma-separated, with a header row).
        file: PathBuf,
        /// Import the valid rows even if some are rejected.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Fill the database with realistic fake data (for trying Custos and for
    /// benchmarks): contacts across several locales with companies, deals,
    /// activities and orders.
    Seed {
        /// How many contacts.
        #[arg(long, default_value_t = 1000)]
        contacts: u64,
    },
    /// Measure this machine: the figures of the scale goals, as a markdown
    /// table, each beside its goal. Never fails on time.
    ///
    /// Works in a temporary data directory (removed afterwards), never in
    /// --data-dir. Loads N contacts through the import path, 10 × N
    /// activities, N orders and N / 3 deals, then measures: create contact
    /// with full privacy vs a plain insert, bulk import rows/s, exact search
    /// by email (p50/p99), HTTPS GET of a contact with keep-alive (with wrk if
    /// it is on PATH), ledger verify vs raw SHA-256, a subject access export,
    /// an erasure, server memory, list pages (first and middle pages in
    /// several orders, with their totals), filtered list pages (by status,
    /// kind, stage, currency, a title word) and the dashboard. The full size (1M contacts, 10M
    /// activities, 1M orders) takes a long while; start with --contacts 10000.
    ///
    /// With --database postgres://… it benches PostgreSQL: it creates a scratch
    /// database on that server (the user needs CREATEDB) and drops it after;
    /// the database named in the URL is only used to connect.
    Bench {
        /// How many contacts to load (10 to 10,000,000).
        #[arg(long, default_value_t = 1_000_000)]
        contacts: u64,
        /// How many activities to load (default: 10 per contact).
        #[arg(long)]
        activities: Option<u64>,
        /// How many orders to load (default: 1 per contact).
        #[arg(long)]
        orders: Option<u64>,
        /// Tiny sizes (200 contacts), to check that everything runs.
        #[arg(long)]
        quick: bool,
    },
    /// Move this deployment from the embedded SQLite database to PostgreSQL.
    ///
    /// Copies every table of the SQLite database in the data directory into an
    /// empty PostgreSQL database, with sealed values copied as they are (never
    /// decrypted). Then it verifies the audit ledger on PostgreSQL and checks
    /// that the row counts and the ledger root equal SQLite's. Stop `custos
    /// serve` first. The SQLite database is not changed. Refused, with nothing
    /// changed, when the PostgreSQL database already holds data.
    ///
    /// The master key stays in the data directory and is still needed: the
    /// copied data is sealed under it. Afterwards, run
    /// `custos serve --database postgres://…` with the same data directory.
    ///
    /// Example: custos migrate-store --to postgres://custos:secret@db.internal:5432/custos
    MigrateStore {
        /// The PostgreSQL database to copy into, as
        /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. It must exist (create it
        /// with createdb) and be empty; Custos creates its tables there.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a consistent snapshot while Custos runs and write it to FILE,
    /// encrypted and authenticated under a key wrapped by the master key.
    Create {
        /// Where to write the backup (must not exist).
        file: PathBuf,
    },
    /// Check a backup and restore it in place of the current database, then
    /// re-apply every erasure made since the backup was taken, so an erased
    /// person never comes back. Stop `custos serve` first. The current
    /// database is kept beside it as custos.db.pre-restore.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Purge what is past its retention period, in batches committed one at
    /// a time, and print what was purged per policy and the run's purge
    /// certificate id. Records of a person under legal hold are kept and
    /// counted. If a run was stopped (a crash, Ctrl-C), this finishes it
    /// first. Safe while `custos serve` runs.
    ///
    /// Each purged record leaves an audit entry (ids only); the run ends
    /// with a signed checkpoint, and its certificate can be checked offline
    /// with examples/auditor/verify_certificate.py.
    Run {
        /// Only count what would be purged, and list the first records of
        /// each policy (ids and dates); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Records per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// Milliseconds to wait after each batch, to spare a busy database.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        pause_ms: u64,
    },
    /// List past runs, newest first.
    Runs,
    /// Print the purge certificate of a run as JSON.
    Certificate {
        /// The run id (from `custos retention runs`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Erase a person by crypto-shredding: destroy their data key so every copy
    /// of their personal data (backups included) becomes unreadable. Records
    /// kept for a legal obligation (orders) stay, anonymised. Cannot be undone.
    Erase {
        /// The person's id (a contact id).
        #[arg(long)]
        id: String,
        /// Confirm that this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account.
    ///
    /// On a terminal it asks for the password twice, without showing it. From a
    /// script, pipe it in on standard input:
    ///
    /// echo 'a long passphrase here' | custos user add --email ada@example.com --role admin --password-stdin
    Add {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Role: admin, manager, sales, support, privacy_officer or auditor.
        #[arg(long)]
        role: String,
        /// Read the password (12 to 128 characters) from the first line of
        /// standard input. When standard input is a terminal, Custos asks for
        /// it instead, without showing what you type.
        #[arg(long)]
        password_stdin: bool,
        /// Name shown to colleagues.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (it is shown only once).
    ///
    /// Use it as `Authorization: Bearer TOKEN`.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by, e.g. the script that uses it.
        #[arg(long)]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole ledger from storage. Exit 0 and print its size and
    /// root, or exit 1 naming the first bad entry.
    Verify,
    /// Sign a checkpoint of the ledger if it grew since the last one, and print
    /// the latest (a C2SP signed note). Keep copies elsewhere: `witness` later
    /// proves the log was not rewritten since.
    Checkpoint,
    /// Check a checkpoint held elsewhere (an auditor's copy, an email) against
    /// the current log: exit 0 if the log still contains exactly that history.
    Witness {
        /// File holding the signed checkpoint note.
        #[arg(long)]
        checkpoint: PathBuf,
    },
    /// Print the note verifier key of the ledger, for outside verifiers.
    VerifierKey,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show master key versions, how many data keys each wraps and the oldest.
    Status,
    /// Create a new master key version and re-wrap every data key with it.
    /// Safe to run while Custos serves; if interrupted, run it again to finish.
    Rotate,
    /// Retire master key versions below N (refused while any data key still
    /// needs one of them) and remove them from the key provider.
    Retire {
        /// The lowest version to keep.
        #[arg(long)]
        below: u32,
    },
}

fn paths(cli: &Cli) -> Paths {
    Paths {
        data_dir: cli.data_dir.clone(),
        database: cli.database.clone(),
        master_key_file: cli.master_key_file.clone(),
        passphrase_file: cli.passphrase_file.clone(),
    }
}

/// The new user's password: asked for twice, hidden, when standard input is
/// a terminal (a typo in a hidden password would lock the user out); the
/// first line of standard input otherwise.
fn read_new_password() -> Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = SecretString::from(
            rpassword::prompt_password("Password (12 to 128 characters, not shown): ")
                .context("cannot read the password from the terminal")?,
        );
        if first.expose_secret().is_empty() {
            bail!("no password given");
        }
        let again = SecretString::from(
            rpassword::prompt_password("The same password again: ")
                .context("cannot read the password from the terminal")?,
        );
        if first.expose_secret() != again.expose_secret() {
            bail!("the two passwords differ; nothing was created");
        }
        return Ok(first);
    }
    read_password_stdin()
}

fn read_password_stdin() -> Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!(
            "no password on standard input (pipe it in: echo '…' | custos user add … --password-stdin, or run the command in a terminal to be asked for it)"
        );
    }
    Ok(SecretString::from(pw))
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let paths = paths(&cli);
    match cli.command {
        Command::Init => {
            let (custos, opened) = setup::open(&paths, true).await?;
            let (cert, _, _) = setup::tls_files(&paths, None, None)?;
            custos.close().await;
            println!("Data directory: {}", paths.data_dir.display());
            println!(
                "  database:     {}{}",
                paths.backend()?.describe(),
                if opened.created_db { " (created)" } else { "" }
            );
            if opened.created_key {
                println!(
                    "  master key:   {} (created; back it up somewhere safe: without it the data cannot be read)",
                    paths.data_dir.join(setup::KEY_FILE).display()
                );
            }
            println!("  certificate:  {}", cert.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            checkpoint_interval,
            checkpoint_dir,
            backup_dir,
            backup_every_hours,
            backup_keep,
            http_listen,
            retention_every_hours,
            no_scheduled_retention,
        } => {
            let publish = Publish {
                interval: checkpoint_interval,
                dir: checkpoint_dir,
                backup_dir,
                backup_every: std::time::Duration::from_secs(backup_every_hours * 3600),
                backup_keep: backup_keep as usize,
                http_listen,
                retention_every: (!no_scheduled_retention)
                    .then(|| std::time::Duration::from_secs(retention_every_hours * 3600)),
            };
            serve(&paths, &listen, tls_cert, tls_key, publish).await
        }
        Command::User(UserCommand::Add {
            email,
            role,
            password_stdin: _,
            name,
        }) => {
            let role = Role::from_name(&role).ok_or_else(|| {
                anyhow!("unknown role {role:?}: use admin, manager, sales, support, privacy_officer or auditor")
            })?;
            let password = read_new_password()?;
            let (custos, _) = setup::open(&paths, true).await?;
            let user = custos
                .create_user(&Principal::cli(), &email, role, &password, name.as_deref())
                .await;
            custos.close().await;
            let user = user?;
            println!("Created {} ({}) with id {}", user.email, user.role, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Create {
            email,
            name,
            expires_days,
        }) => {
            let (custos, _) = setup::open(&paths, false).await?;
            let ttl = expires_days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
            let token = custos
                .create_api_token(&Principal::cli(), &email, &name, ttl)
                .await;
            custos.close().await;
            let token = token?;
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "API token {} for {email} (shown once; store it safely):",
                    token.id
                );
            }
            println!("{}", token.token.expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify) => {
            let (custos, _) = setup::open(&paths, false).await?;
            let bar = progress_bar("entries");
            let report = custos
                .audit_verify(|done, total| {
                    if let Some(b) = &bar {
                        b.set_length(total);
                        b.set_position(done);
                    }
                })
                .await;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            custos.close().await;
            match report? {
                VerifyReport::Ok {
                    size,
                    root_hex,
                    checkpoints,
                } => {
                    println!(
                        "ledger OK: {size} entries, root {root_hex}, {checkpoints} signed checkpoints verified"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                VerifyReport::Tampered { index, reason } => {
                    eprintln!("ledger FAILED at entry {index}: {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit(AuditCommand::Checkpoint) => {
            let (custos, _) = setup::open(&paths, false).await?;
            let note = custos.ledger_checkpoint().await;
            custos.close().await;
            print!("{}", note?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Witness { checkpoint }) => {
            let note = std::fs::read_to_string(&checkpoint)
                .with_context(|| format!("cannot read {}", checkpoint.display()))?;
            let (custos, _) = setup::open(&paths, false).await?;
            let report = custos.witness(&note).await;
            custos.close().await;
            match report? {
                custos_service::WitnessReport::Consistent { size, current } => {
                    println!(
                        "checkpoint OK: the log of {current} entries extends the checkpointed {size}"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                custos_service::WitnessReport::Inconsistent { reason } => {
                    eprintln!("checkpoint FAILED: {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit(AuditCommand::VerifierKey) => {
            let (custos, _) = setup::open(&paths, false).await?;
            let key = custos.ledger_verifier_key();
            custos.close().await;
            println!("{}", key?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(cmd) => crate::ops::keys(&paths, cmd).await,
        Command::Backup(cmd) => crate::ops::backup(&paths, cmd).await,
        Command::Retention(cmd) => crate::retention::command(&paths, cmd).await,
        Command::Subject(SubjectCommand::Erase { id, yes }) => {
            crate::ops::erase(&paths, &id, yes).await
        }
        Command::Import {
            what,
            file,
            skip_invalid,
        } => crate::bulk::import(&paths, &what, &file, skip_invalid).await,
        Command::Seed { contacts } => crate::bulk::seed(&paths, contacts).await,
        Command::Bench {
            contacts,
            activities,
            orders,
            quick,
        } => {
            crate::bench::bench(crate::bench::BenchOptions {
                contacts,
                activities,
                orders,
                database: paths.database.clone(),
                quick,
            })
            .await
        }
        Command::MigrateStore { to, batch } => {
            crate::migrate::migrate_store(&paths, &to, batch as usize).await
        }
    }
}

/// A progress bar on a terminal (none when stderr is not one), counting `unit`.
pub(crate) fn progress_bar(unit: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    // The message, when set, says what is counted (" checked").
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit}{{msg}} ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    Some(bar)
}

async fn serve(
    paths: &Paths,
    listen: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    publish: Publish,
) -> Result<ExitCode> {
    if let Some(dir) = &publish.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen must be an address such as 127.0.0.1:8443"))?;
    let (custos, opened) = setup::open(paths, true).await?;
    if opened.created_key {
        println!(
            "Created the master key {} — back it up: without it the data cannot be read.",
            paths.data_dir.join(setup::KEY_FILE).display()
        );
    }
    let (cert, key, self_signed) = setup::tls_files(paths, cert, key)?;
    let tls = custos_web::tls::server_config(&cert, &key).map_err(|e| anyhow!("{e}"))?;
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    custos.set_transport(custos_web::tls::describe(self_signed));
    jobs::spawn(
        &custos,
        std::time::Duration::from_secs(30),
        jobs::Wake::Hangup,
        jobs::Certificate::new(rustls.clone(), cert.clone(), key.clone(), self_signed),
    );
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    println!(
        "Custos is serving https://{addr}  (data: {})",
        paths.data_dir.display()
    );
    if self_signed {
        println!(
            "Using a self-signed certificate ({}); browsers will warn until you install a real one (--tls-cert/--tls-key).",
            cert.display()
        );
    }
    if custos.user_count().await? == 0 {
        println!(
            "No users yet. Create the first administrator from another terminal, in this directory:"
        );
        println!("  custos user add --email you@example.com --role admin");
        println!(
            "    (from a source checkout: cargo run --release -- user add --email you@example.com --role admin)"
        );
        println!("  It asks for the password (12 to 128 characters) without showing it.");
        println!(
            "  From a script, pipe it in: echo '…' | custos user add --email … --role admin --password-stdin"
        );
    }
    jobs::spawn(
        &custos,
        std::time::Duration::from_secs(publish.interval),
        jobs::Wake::Never,
        jobs::Checkpoint {
            custos: custos.clone(),
            dir: publish.dir.clone(),
        },
    );
    if let Some(dir) = publish.backup_dir.clone() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        jobs::spawn(
            &custos,
            publish.backup_every,
            jobs::Wake::Never,
            jobs::Backup {
                custos: custos.clone(),
                data_dir: paths.data_dir.clone(),
                dir,
                keep: publish.backup_keep,
            },
        );
    }
    if let Some(every) = publish.retention_every {
        jobs::spawn(
            &custos,
            every,
            jobs::Wake::Never,
            jobs::Retention {
                custos: custos.clone(),
                every,
            },
        );
    }
    let pid_file = paths.data_dir.join(setup::PID_FILE);
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    let state = custos_web::AppState {
        custos: custos.clone(),
        self_signed,
    };
    if let Some(http) = &publish.http_listen {
        let http: std::net::SocketAddr = http
            .parse()
            .map_err(|_| anyhow!("--http-listen must be an address such as 127.0.0.1:8080"))?;
        let plain = tokio::net::TcpListener::bind(http)
            .await
            .with_context(|| format!("cannot listen on {http}"))?;
        let app = custos_web::redirect_app(addr.port());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(plain, app).await {
                tracing::error!(error = %e, "the HTTP redirect listener stopped");
            }
        });
        println!("Plain HTTP on http://{http} redirects to HTTPS.");
    }
    let served = custos_web::serve_with(listener, rustls, state, handle).await;
    let _ = std::fs::remove_file(&pid_file);
    served.context("server stopped")?;
    custos.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Where and how often signed checkpoints and scheduled backups go.
struct Publish {
    interval: u64,
    dir: Option<PathBuf>,
    backup_dir: Option<PathBuf>,
    backup_every: std::time::Duration,
    backup_keep: usize,
    http_listen: Option<String>,
    /// How often to run retention; `None` when off.
    retention_every: Option<std::time::Duration>,
}
