//! `custos bench`: the figures of the scale issue on this machine, each beside
//! its goal, as a markdown table. It works in a throw-away data directory (and,
//! for PostgreSQL, a throw-away database it creates and drops), never in the
//! user's, and it never fails on time: a figure that misses its goal is
//! reported, not refused.

use crate::setup::{self, Paths};
use anyhow::{Context, Result, anyhow, bail};
use custos_domain::{Entity, Role};
use custos_service::{Custos, ImportSource, ImportStage, ListParams, Opener, Principal, Via};
use custos_store::admin::Baseline;
use custos_store::{PostgresStore, SqlValue, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What to measure, from the command line.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Contacts to load.
    pub contacts: u64,
    /// Activities to load (default 10 per contact).
    pub activities: Option<u64>,
    /// Orders to load (default 1 per contact).
    pub orders: Option<u64>,
    /// A PostgreSQL server URL: bench a scratch database there instead of SQLite.
    pub database: Option<String>,
    /// Tiny sizes, to check the command works.
    pub quick: bool,
}

/// Sizes of one run.
struct Sizes {
    contacts: u64,
    activities: u64,
    orders: u64,
    /// Deals: one per three contacts, as `custos seed` makes.
    deals: u64,
    /// Activities of the one person whose export is measured.
    focus_activities: u64,
    /// Creates per kind for the create ratio.
    creates: u64,
    /// Email searches.
    searches: u64,
    /// Seconds of HTTP load.
    http_seconds: u64,
    /// Loads of each list page measured.
    page_loads: u64,
}

/// One row of the table.
struct Figure {
    name: &'static str,
    result: String,
    goal: &'static str,
    verdict: &'static str,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// The throw-away place: a temporary data directory, and for PostgreSQL a
/// scratch database on the given server. Removed when dropped.
struct Scratch {
    dir: PathBuf,
    postgres: Option<(String, String, String)>,
}

impl Scratch {
    async fn create(server: Option<&str>) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("custos-bench-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut scratch = Scratch {
            dir,
            postgres: None,
        };
        if let Some(server) = server {
            if !custos_store::postgres::is_postgres_url(server) {
                bail!("--database must be a postgres:// URL (the default benches SQLite)");
            }
            let name = format!("custos_bench_{}", Uuid::now_v7().simple());
            let url = PostgresStore::create_database(server, &name)
                .await
                .map_err(|e| {
                    anyhow!("cannot create a scratch database on {} (the user needs the CREATEDB right): {e}",
                        custos_store::postgres::redact_url(server))
                })?;
            scratch.postgres = Some((server.to_string(), name, url));
        }
        Ok(scratch)
    }

    fn paths(&self) -> Paths {
        Paths {
            data_dir: self.dir.clone(),
            database: self.postgres.as_ref().map(|p| p.2.clone()),
            master_key_file: None,
            passphrase_file: None,
        }
    }

    async fn remove(mut self) {
        if let Some((server, name, _)) = self.postgres.take()
            && let Err(e) = PostgresStore::drop_database(&server, &name).await
        {
            eprintln!("could not drop the scratch database {name}: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at quantile `q` of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn bar(unit: &str, len: u64) -> Option<indicatif::ProgressBar> {
    let b = crate::cli::progress_bar(unit)?;
    b.set_length(len);
    Some(b)
}

fn email(i: u64) -> String {
    format!("bench{i}@example.com")
}

/// The contacts the benchmark imports, made as they are read (row `i` is
/// the same in both readings), like a CSV file that is never held whole.
struct BenchRows {
    rows: u64,
    next: u64,
}

impl ImportSource for BenchRows {
    fn row_count(&self) -> u64 {
        self.rows
    }

    fn rewind(&mut self) -> std::result::Result<(), String> {
        self.next = 0;
        Ok(())
    }

    fn next_row(&mut self) -> Option<std::result::Result<Vec<String>, String>> {
        let i = self.next;
        if i >= self.rows {
            return None;
        }
        self.next += 1;
        Some(Ok(vec![
            ["Ada", "Grace", "Linus", "Zoë", "Jürgen", "Haruto"][(i % 6) as usize].into(),
            format!("Example{}", i % 997),
            email(i),
            format!("+44 20 7946 {:04}", i % 10_000),
            if i.is_multiple_of(3) {
                "vip".into()
            } else {
                String::new()
            },
        ]))
    }
}

/// `custos bench`.
pub async fn bench(options: BenchOptions) -> Result<ExitCode> {
    let contacts = if options.quick { 200 } else { options.contacts };
    if !(10..=10_000_000).contains(&contacts) {
        bail!("--contacts must be from 10 to 10,000,000");
    }
    let activities = match (options.quick, options.activities) {
        (true, _) => contacts * 2,
        (false, Some(a)) => a,
        (false, None) => contacts * 10,
    };
    if activities > 100_000_000 {
        bail!("--activities must be at most 100,000,000");
    }
    let orders = match (options.quick, options.orders) {
        (true, _) => contacts,
        (false, Some(o)) => o,
        (false, None) => contacts,
    };
    if orders > 100_000_000 {
        bail!("--orders must be at most 100,000,000");
    }
    let sizes = Sizes {
        contacts,
        activities,
        orders,
        deals: contacts / 3,
        focus_activities: if options.quick { 20 } else { 1000 },
        creates: if options.quick { 20 } else { 1000 },
        searches: if options.quick { 20 } else { 1000 },
        http_seconds: if options.quick { 2 } else { 15 },
        page_loads: if options.quick { 3 } else { 25 },
    };
    let scratch = Scratch::create(options.database.as_deref()).await?;
    eprintln!(
        "working in {} (removed at the end, also when you interrupt the run with Ctrl-C)",
        scratch.dir.display()
    );
    // Ctrl-C stops the run, and the scratch data is still removed.
    let result = tokio::select! {
        r = run(&scratch, &sizes) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; the scratch data was removed")),
    };
    scratch.remove().await;
    let (figures, notes) = result?;
    print_table(&options, &sizes, &figures, &notes);
    Ok(ExitCode::SUCCESS)
}

async fn run(scratch: &Scratch, sizes: &Sizes) -> Result<(Vec<Figure>, Vec<String>)> {
    let paths = scratch.paths();
    let (custos, _) = setup::open(&paths, true).await?;
    let cli = Principal::cli();
    let mut figures = Vec::new();
    let mut notes = Vec::new();

    // 2. Bulk import through the real import path: one import of every
    // contact (one transaction), its rows made as they are read, as
    // `custos import` reads a file. This is also how the contacts are loaded.
    eprintln!("importing {} contacts…", sizes.contacts);
    let progress = bar("contacts", sizes.contacts);
    let headers: Vec<String> = ["first_name", "last_name", "email", "phone", "tags"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let started = Instant::now();
    let mut source = BenchRows {
        rows: sizes.contacts,
        next: 0,
    };
    let report = custos
        .import_from(
            &cli,
            Entity::Contact,
            &headers,
            &mut source,
            false,
            |stage, d, _| {
                if let Some(b) = &progress
                    && stage == ImportStage::Writing
                {
                    b.set_position(d);
                }
            },
        )
        .await?;
    if !report.committed || report.imported != sizes.contacts {
        bail!(
            "the benchmark import was refused: {:?}",
            report.rejected.first()
        );
    }
    let import = started.elapsed();
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let import_rate = sizes.contacts as f64 / import.as_secs_f64();
    let sqlite = scratch.postgres.is_none();
    figures.push(Figure {
        name: "2. bulk import (`custos import` path), rows/s",
        result: format!(
            "{import_rate:.0} rows/s ({} contacts in one import into an empty database, {:.1} s)",
            sizes.contacts,
            import.as_secs_f64()
        ),
        goal: "≥ 50,000 rows/s (SQLite)",
        verdict: if sqlite {
            verdict(import_rate >= 50_000.0)
        } else {
            "(goal is for SQLite)"
        },
    });

    // The person whose export is measured, found as staff would.
    let focus = find_by_email(&custos, &cli, &email(0)).await?.0;

    // Activities, spread over everyone, and 1k for the focus person; then
    // orders, one per contact by default, through the same path.
    let made = load(
        &custos,
        Entity::Activity,
        sizes.activities,
        Some((focus, sizes.focus_activities)),
        &mut notes,
    )
    .await?;
    load(&custos, Entity::Order, sizes.orders, None, &mut notes).await?;
    load(&custos, Entity::Deal, sizes.deals, None, &mut notes).await?;

    // 1. Create contact with full privacy vs the same insert without
    // sealing, blind index or ledger, alternating in rounds, one transaction
    // per insert either way.
    eprintln!("measuring creates…");
    let plain_store = Baseline::new(match &scratch.postgres {
        None => Box::new(
            SqliteStore::open(&paths.data_dir.join(setup::DB_FILE))
                .await
                .context("cannot open the scratch database")?,
        ),
        Some((_, _, url)) => Box::new(PostgresStore::connect(url).await?),
    });
    let (mut private, mut plain) = (Duration::ZERO, Duration::ZERO);
    let mut plain_ids = Vec::new();
    let rounds = 10u64;
    for round in 0..rounds {
        let per = sizes.creates / rounds;
        for i in 0..per {
            let n = round * per + i;
            let body = json!({"first_name": "Bench", "last_name": format!("Create{n}"),
                "email": format!("create{n}@example.com"), "phone": "+44 20 7946 0000"});
            let t = Instant::now();
            custos.create(&cli, Entity::Contact, &body).await?;
            private += t.elapsed();
        }
        for i in 0..per {
            let n = round * per + i;
            let t = Instant::now();
            let now = custos_domain::value::to_unix_ms(custos_domain::Clock::now(
                &custos_domain::SystemClock,
            ));
            let id = plain_store.insert_contact(n, now).await?;
            plain += t.elapsed();
            plain_ids.push(id);
        }
    }
    plain_store.delete_contacts(&plain_ids).await?;
    plain_store.close().await;
    let per = (sizes.creates / rounds * rounds).max(1) as u32;
    let ratio = private.as_secs_f64() / plain.as_secs_f64().max(1e-9);
    figures.push(Figure {
        name: "1. create contact: full privacy vs plain insert",
        result: format!(
            "{ratio:.2}× ({:.3} ms vs {:.3} ms per contact)",
            ms(private / per),
            ms(plain / per)
        ),
        goal: "≤ 1.25×",
        verdict: verdict(ratio <= 1.25),
    });

    // 3. Exact search by email at N contacts.
    eprintln!("measuring searches…");
    let mut times = Vec::new();
    let mut target = focus;
    for k in 0..sizes.searches {
        let i = (k * 7919 + 13) % sizes.contacts;
        let t = Instant::now();
        let (id, found) = find_by_email(&custos, &cli, &email(i)).await?;
        times.push(t.elapsed());
        if found != 1 {
            bail!("searching {} found {found} contacts, not 1", email(i));
        }
        if k == 0 {
            target = id;
        }
    }
    times.sort();
    let (p50, p99) = (quantile(&times, 0.5), quantile(&times, 0.99));
    figures.push(Figure {
        name: "3. exact search by email, p50 / p99",
        result: format!(
            "{:.3} ms / {:.3} ms ({} searches)",
            ms(p50),
            ms(p99),
            times.len()
        ),
        goal: "p50 ≤ 1 ms",
        verdict: verdict(p50 <= Duration::from_millis(1)),
    });

    // 9. List pages at N: the first page and one in the middle of each
    // list, in several orders, with the total the page shows (counted up to
    // its limit), as the web UI asks for them.
    eprintln!("measuring list pages…");
    let mut pages = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let lists = [
        (Entity::Contact, "created_at", true),
        (Entity::Activity, "occurred_at", true),
        (Entity::Activity, "due_at", false),
        (Entity::Activity, "kind", false),
        (Entity::Order, "total", true),
        (Entity::Order, "completed_at", true),
    ];
    for (entity, field, descending) in lists {
        let sort = if descending {
            format!("-{field}")
        } else {
            field.to_string()
        };
        let first = ListParams::parse(entity, &[("sort".into(), sort.clone())])?;
        let middle = ListParams {
            after: Some((middle_of(&custos, &cli, entity, field).await?, Uuid::nil())),
            ..first.clone()
        };
        for (which, params) in [("first", &first), ("middle", &middle)] {
            for _ in 0..sizes.page_loads {
                let t = Instant::now();
                let page = custos.list(&cli, entity, params).await?;
                custos.count(&cli, entity, &first).await?;
                let took = t.elapsed();
                if page.items.is_empty() {
                    bail!("the {which} page of {} by {sort} is empty", entity.plural());
                }
                if took > slowest.0 {
                    slowest = (
                        took,
                        format!("{which} page of {} by {sort}", entity.plural()),
                    );
                }
                pages.push(took);
            }
        }
    }
    pages.sort();
    figures.push(Figure {
        name: "9. list page (a page of 50 and its total), p50 / p99",
        result: format!(
            "{:.3} ms / {:.3} ms ({} loads of first and middle pages: contacts newest first, activities by occurred, due date and kind, orders by total and completion; slowest {:.1} ms, {})",
            ms(quantile(&pages, 0.5)),
            ms(quantile(&pages, 0.99)),
            pages.len(),
            ms(slowest.0),
            slowest.1
        ),
        goal: "(no goal; the same at any N)",
        verdict: "",
    });

    // 10. Filtered list pages, as the web UI's filter selects and searches
    // ask for them: a status, a kind or a stage in the default order and in
    // another, a currency no order has, a rare title word. Each is the first
    // page and its total.
    eprintln!("measuring filtered list pages…");
    let filtered = [
        (Entity::Order, vec![("status", "pending")]),
        (
            Entity::Order,
            vec![("status", "completed"), ("sort", "-total")],
        ),
        (Entity::Order, vec![("currency", "CHF")]),
        (Entity::Activity, vec![("kind", "task")]),
        (Entity::Activity, vec![("kind", "task"), ("sort", "due_at")]),
        (
            Entity::Activity,
            vec![("done", "true"), ("sort", "-occurred_at")],
        ),
        (Entity::Deal, vec![("stage", "won")]),
        (Entity::Deal, vec![("q", "199 licences")]),
    ];
    let mut loads = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut partial = 0;
    for (entity, pairs) in &filtered {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let params = ListParams::parse(*entity, &pairs)?;
        for _ in 0..sizes.page_loads {
            let t = Instant::now();
            let page = custos.list(&cli, *entity, &params).await?;
            custos.count(&cli, *entity, &params).await?;
            let took = t.elapsed();
            partial += usize::from(page.partial);
            if took > slowest.0 {
                let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                slowest = (took, format!("{}?{}", entity.plural(), query.join("&")));
            }
            loads.push(took);
        }
    }
    loads.sort();
    figures.push(Figure {
        name: "10. filtered list page (first page and its total), p50 / p99",
        result: format!(
            "{:.3} ms / {:.3} ms ({} loads: orders by status and by a currency none has, activities by kind and by done, deals by stage and a rare title word; {} stopped short; slowest {:.1} ms, {})",
            ms(quantile(&loads, 0.5)),
            ms(quantile(&loads, 0.99)),
            loads.len(),
            partial,
            ms(slowest.0),
            slowest.1
        ),
        goal: "(no goal; the same at any N)",
        verdict: "",
    });

    // 11. The dashboard (pipeline by stage, won per month, tasks due,
    // recent activity), as the web UI's home page asks for it.
    eprintln!("measuring the dashboard…");
    let mut loads = Vec::new();
    for _ in 0..sizes.page_loads {
        let t = Instant::now();
        custos.dashboard(&cli).await?;
        loads.push(t.elapsed());
    }
    loads.sort();
    figures.push(Figure {
        name: "11. dashboard, p50 / p99",
        result: format!(
            "{:.3} ms / {:.3} ms ({} loads, {} deals, {} activities)",
            ms(quantile(&loads, 0.5)),
            ms(quantile(&loads, 0.99)),
            loads.len(),
            sizes.deals,
            sizes.activities + sizes.focus_activities
        ),
        goal: "(no goal)",
        verdict: "",
    });

    // 6. Subject access export of the focus person.
    eprintln!("measuring a subject access export…");
    let po = Principal::with_role(Uuid::nil(), Role::PrivacyOfficer, Via::Cli);
    let opened = custos
        .dsar_open(
            &Opener::Staff(po.clone()),
            &json!({"kind": "access", "regime": "gdpr", "subject_email": email(0)}),
        )
        .await?;
    let rid = opened.view.id;
    custos
        .dsar_verify(
            &po,
            rid,
            &json!({"method": "operator_attested", "reason": "benchmark"}),
        )
        .await?;
    let t = Instant::now();
    custos.dsar_fulfil(&po, rid).await?;
    let package = custos.dsar_package(&po, rid).await?;
    let export = t.elapsed();
    let exported = package.records_of(Entity::Activity).len();
    figures.push(Figure {
        name: "6. subject access export (fulfil + package)",
        result: format!(
            "{:.1} ms for {exported} activities among {made}",
            ms(export)
        ),
        goal: "(no goal; 1k activities among 10M at full size)",
        verdict: "",
    });

    // 7. Erasure of that person.
    let t = Instant::now();
    custos.erase_subject(&cli, focus).await?;
    let erase = t.elapsed();
    figures.push(Figure {
        name: "7. erasure (crypto-shred) of one subject",
        result: format!("{:.1} ms", ms(erase)),
        goal: "(no goal)",
        verdict: "",
    });

    // 5. Ledger verify vs raw SHA-256 over the same leaf bytes.
    eprintln!("measuring ledger verification…");
    let (in_memory, raw, leaves, bytes) = ledger_in_memory(&custos, &cli).await?;
    let progress = bar("ledger entries", leaves);
    let t = Instant::now();
    let report = custos
        .audit_verify(|d, _| {
            if let Some(b) = &progress {
                b.set_position(d);
            }
        })
        .await?;
    let end_to_end = t.elapsed();
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    if !matches!(report, custos_service::VerifyReport::Ok { .. }) {
        bail!("the scratch ledger did not verify: {report:?}");
    }
    let memory_ratio = raw.as_secs_f64() / in_memory.as_secs_f64().max(1e-9);
    let full_ratio = raw.as_secs_f64() / end_to_end.as_secs_f64().max(1e-9);
    figures.push(Figure {
        name: "5. ledger verify vs raw SHA-256, same bytes",
        result: format!(
            "{memory_ratio:.2}× verifier ({:.0} leaves/s); {full_ratio:.2}× `audit verify` incl. reading storage ({:.1} s for {leaves} leaves, {:.0} MB)",
            leaves as f64 / in_memory.as_secs_f64().max(1e-9),
            end_to_end.as_secs_f64(),
            bytes as f64 / 1e6
        ),
        goal: "≥ 0.5×",
        verdict: verdict(memory_ratio >= 0.5),
    });

    // A staff account and token for the HTTP load.
    let password = SecretString::from(format!("bench-{}", Uuid::now_v7()));
    custos
        .create_user(&cli, "bench@example.com", Role::Admin, &password, None)
        .await?;
    let token = custos
        .create_api_token(&cli, "bench@example.com", "bench", None)
        .await?;
    custos.close().await;

    // 4 and 8. GET contact over HTTPS with keep-alive, on a real server.
    eprintln!("measuring HTTPS GET /api/v1/contacts/{{id}}…");
    let http = http_load(
        &paths,
        token.token.expose_secret(),
        target,
        sizes.http_seconds,
    )
    .await?;
    figures.push(Figure {
        name: "4. GET contact over HTTPS, keep-alive: req/s, p99",
        result: format!(
            "{} ({}, {} s each)",
            http.runs
                .iter()
                .map(|r| format!(
                    "{:.0} req/s, p99 {:.2} ms with {} connections",
                    r.rps, r.p99_ms, r.connections
                ))
                .collect::<Vec<_>>()
                .join("; "),
            http.tool,
            sizes.http_seconds
        ),
        goal: "≥ 10,000 req/s (SQLite, 2 cores)",
        verdict: if sqlite {
            verdict(http.runs.iter().any(|r| r.rps >= 10_000.0))
        } else {
            "(goal is for SQLite)"
        },
    });
    figures.push(Figure {
        name: "8. server memory (peak RSS) at N contacts",
        result: format!(
            "{:.0} MiB peak ({:.0} MiB at the end)",
            http.peak_mib, http.rss_mib
        ),
        goal: "(no goal)",
        verdict: "",
    });
    // 12 and 13. Retention ninety days ahead: orders completed just over two
    // years before then are due (the loaded orders span 700 days), the
    // activities (the last 90 days) are not. The dry run is the preview the
    // Retention page shows; the run anonymises what is due in its batches,
    // with a ledger entry per record and the signed certificate.
    eprintln!("measuring retention…");
    let ahead =
        custos_domain::Clock::now(&custos_domain::SystemClock) + Duration::from_secs(90 * 86_400);
    let (later, _) = setup::open_with_clock(
        &paths,
        false,
        std::sync::Arc::new(custos_domain::ManualClock::new(ahead)),
    )
    .await?;
    let t = Instant::now();
    let preview = later.retention_preview(&cli).await?;
    let dry = t.elapsed();
    let due: u64 = preview.policies.iter().map(|p| p.outcome.purged).sum();
    figures.push(Figure {
        name: "12. retention dry run (what is due, per policy)",
        result: format!(
            "{:.1} ms ({due} records due among {} orders and {made} activities)",
            ms(dry),
            sizes.orders
        ),
        goal: "(no goal)",
        verdict: "",
    });
    let progress = bar("records purged", due);
    let t = Instant::now();
    let report = later
        .retention_run(&cli, custos_service::RunOptions::default(), |d, _| {
            if let Some(b) = &progress {
                b.set_position(d);
            }
        })
        .await?;
    let purge = t.elapsed();
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let purged: u64 = report.certificate.policies.iter().map(|p| p.purged).sum();
    figures.push(Figure {
        name: "13. retention purge, records/s",
        result: format!(
            "{:.0} records/s ({purged} records in {:.1} s, batches of {}, audited one by one, certificate included)",
            purged as f64 / purge.as_secs_f64().max(1e-9),
            purge.as_secs_f64(),
            custos_service::RETENTION_BATCH
        ),
        goal: "(no goal)",
        verdict: "",
    });
    later.close().await;
    // By number: "10." after "9.".
    figures.sort_by_key(|f| {
        let number = f.name.split('.').next().and_then(|n| n.parse::<u32>().ok());
        (number, f.name)
    });
    Ok((figures, notes))
}

/// Finds contacts by exact email as the API does; returns the first id and
/// how many matched.
/// Loads `total` fake activities or orders (and `focus.1` more for one
/// person) through the sealing and auditing path, with a progress bar;
/// notes the rate. Returns how many were made.
async fn load(
    custos: &Custos,
    entity: Entity,
    total: u64,
    focus: Option<(Uuid, u64)>,
    notes: &mut Vec<String>,
) -> Result<u64> {
    let what = entity.plural();
    eprintln!("adding {total} {what}…");
    let progress = bar(what, total + focus.map_or(0, |f| f.1));
    let started = Instant::now();
    let made = custos
        .seed_related(&Principal::cli(), entity, total, focus, |d, _| {
            if let Some(b) = &progress {
                b.set_position(d);
            }
        })
        .await?;
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let seeding = started.elapsed();
    notes.push(format!(
        "Loading: {made} {what} (sealed, audited) in {:.1} s, {:.0}/s.",
        seeding.as_secs_f64(),
        made as f64 / seeding.as_secs_f64()
    ));
    Ok(made)
}

/// A sort value half-way through a list: between the first and the last
/// value of `field` (a time or an amount), or the middle kind of activity.
async fn middle_of(
    custos: &Custos,
    p: &Principal,
    entity: Entity,
    field: &str,
) -> Result<SqlValue> {
    if field == "kind" {
        return Ok(SqlValue::Text("email".into()));
    }
    let mut ends = Vec::new();
    for sort in [field.to_string(), format!("-{field}")] {
        let params = ListParams::parse(
            entity,
            &[("sort".into(), sort), ("limit".into(), "1".into())],
        )?;
        let page = custos.list(p, entity, &params).await?;
        let value = page.items.first().and_then(|r| match r.record.get(field) {
            custos_domain::Value::Timestamp(t) => Some(custos_domain::value::to_unix_ms(*t)),
            custos_domain::Value::Money(m) => Some(*m),
            _ => None,
        });
        ends.push(value);
    }
    Ok(match (ends[0], ends[1]) {
        (Some(a), Some(b)) => SqlValue::Int(a + (b - a) / 2),
        // One end is the rows without a value (they sort as the lowest).
        (Some(v), None) | (None, Some(v)) => SqlValue::Int(v),
        // A column no row has a value in sorts as its sentinel.
        (None, None) => SqlValue::Int(i64::MIN),
    })
}

async fn find_by_email(custos: &Custos, p: &Principal, email: &str) -> Result<(Uuid, usize)> {
    let params = ListParams::parse(Entity::Contact, &[("email".into(), email.into())])?;
    let page = custos.list(p, Entity::Contact, &params).await?;
    let first = page
        .items
        .first()
        .map(|v| v.record.id)
        .ok_or_else(|| anyhow!("no contact has the email {email}"))?;
    Ok((first, page.items.len()))
}

/// Reads every leaf (untimed), then times raw SHA-256 over them and the
/// ledger verifier over the same bytes, batch by batch, so memory stays
/// bounded. Returns (verifier time, raw time, leaves, bytes).
async fn ledger_in_memory(
    custos: &Custos,
    p: &Principal,
) -> Result<(Duration, Duration, u64, u64)> {
    use custos_ledger::verify::{LogVerifier, StoredLeaf};
    let size = custos.ledger_status(p).await?.size;
    let (mut verify, mut raw) = (Duration::ZERO, Duration::ZERO);
    let mut verifier = LogVerifier::new();
    let mut bytes = 0u64;
    let mut start = 0u64;
    let mut sink = 0u8;
    while start < size {
        let mut leaves = Vec::new();
        while leaves.len() < 20_000 && start < size {
            let got = custos.audit_leaf_bytes(p, start, start + 1000).await?;
            let Some(last) = got.last() else { break };
            start = last.0 + 1;
            leaves.extend(got);
        }
        if leaves.is_empty() {
            break;
        }
        bytes += leaves.iter().map(|l| l.1.len() as u64).sum::<u64>();
        let t = Instant::now();
        for (_, data) in &leaves {
            sink ^= custos_ledger::leaf_hash(data)[0];
        }
        raw += t.elapsed();
        let t = Instant::now();
        let batch: Vec<StoredLeaf<'_>> = leaves
            .iter()
            .map(|(i, data)| StoredLeaf {
                index: *i,
                data,
                leaf_hash: None,
            })
            .collect();
        verifier
            .push_batch(&batch)
            .map_err(|e| anyhow!("the scratch ledger did not verify: {e}"))?;
        verify += t.elapsed();
    }
    // Keeps the raw loop from being optimised away.
    std::hint::black_box(sink);
    Ok((verify, raw, verifier.size(), bytes))
}

struct HttpRun {
    connections: u32,
    rps: f64,
    p99_ms: f64,
}

struct HttpFigures {
    /// One load run per number of connections.
    runs: Vec<HttpRun>,
    tool: &'static str,
    peak_mib: f64,
    rss_mib: f64,
}

/// A `custos serve` child on the scratch data, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn http_load(paths: &Paths, token: &str, id: Uuid, seconds: u64) -> Result<HttpFigures> {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe().context("cannot find the custos binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--data-dir").arg(&paths.data_dir);
    if let Some(db) = &paths.database {
        cmd.arg("--database").arg(db);
    }
    let mut child = cmd
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CUSTOS_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("cannot start custos serve")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no output from custos serve"))?;
    let child = Child(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.contains("is serving") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .map_err(|_| anyhow!("custos serve did not start"))?;
    let pid = child.0.id();
    // By name, as a browser would: the certificate is for localhost, and TLS
    // clients send a name (not an address) as SNI.
    let url = format!("https://localhost:{port}/api/v1/contacts/{id}");
    // A few clients and many: reads arriving together share a commit, so
    // the rate grows with the number of clients waiting.
    let mut runs = Vec::new();
    let mut tool = "wrk";
    for connections in [16, 64] {
        let (rps, p99_ms) = match wrk(&url, token, seconds, connections)? {
            Some(figures) => figures,
            None => {
                tool = "built-in client (wrk not on PATH)";
                let cert = paths.data_dir.join(setup::TLS_DIR).join("cert.pem");
                builtin_load(&url, token, &cert, seconds, connections).await?
            }
        };
        runs.push(HttpRun {
            connections,
            rps,
            p99_ms,
        });
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let figures = HttpFigures {
        runs,
        tool,
        peak_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    };
    drop(child);
    Ok(figures)
}

/// Runs wrk if it is on PATH: (requests/s, p99 in ms).
fn wrk(url: &str, token: &str, seconds: u64, connections: u32) -> Result<Option<(f64, f64)>> {
    let out = match std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot run wrk: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text)
        .map(Some)
        .ok_or_else(|| anyhow!("could not read wrk's output: {}", text.trim()))
}

/// Reads `Requests/sec:` and the 99% latency from wrk's `--latency` output.
/// Refuses output with non-2xx responses: those would not be GETs of a contact.
fn parse_wrk(text: &str) -> Option<(f64, f64)> {
    if text.contains("Non-2xx or 3xx responses") {
        return None;
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse::<f64>()
        .ok()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)?;
    let (number, unit) = p99.split_at(p99.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let ms = match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    };
    Some((rps, ms))
}

/// A keep-alive load generator: `connections` clients, each sending one GET
/// after another over its own connection for `seconds`.
async fn builtin_load(
    url: &str,
    token: &str,
    cert: &Path,
    seconds: u64,
    connections: u32,
) -> Result<(f64, f64)> {
    let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .tls_built_in_root_certs(false)
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, token) = (url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client.get(&url).bearer_auth(&token).send().await?;
                let ok = r.status().is_success();
                r.bytes().await?;
                if !ok {
                    return Err(anyhow!("GET returned an error status"));
                }
                times.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(times)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok((all.len() as f64 / elapsed, ms(quantile(&all, 0.99))))
}

fn print_table(options: &BenchOptions, sizes: &Sizes, figures: &[Figure], notes: &[String]) {
    let backend = if options.database.is_some() {
        "PostgreSQL (a scratch database, dropped afterwards)"
    } else {
        "SQLite (a temporary data directory, removed afterwards)"
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "custos bench: {backend}; {} contacts, {} activities ({} for the exported person), {} orders; {cores} cores{}",
        sizes.contacts,
        sizes.activities,
        sizes.focus_activities,
        sizes.orders,
        if options.quick { "; --quick sizes" } else { "" }
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| figure | result | goal | |");
    let _ = writeln!(out, "|---|---|---|---|");
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            f.name, f.result, f.goal, f.verdict
        );
    }
    for n in notes {
        let _ = writeln!(out);
        let _ = write!(out, "{n}");
    }
    println!("{}", out.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 2s test @ https://127.0.0.1:1/x\n  2 threads and 16 connections\n  Latency Distribution\n     50%    1.20ms\n     75%    2.00ms\n     90%    3.00ms\n     99%  850.00us\n  2000 requests in 2.00s, 1.00MB read\nRequests/sec:   1000.50\nTransfer/sec:    500.00KB\n";
        let (rps, p99) = parse_wrk(text).expect("parsed");
        assert!((rps - 1000.5).abs() < 1e-9);
        assert!((p99 - 0.85).abs() < 1e-9);
        assert!(parse_wrk(&format!("{text}  Non-2xx or 3xx responses: 5\n")).is_none());
        assert!(parse_wrk("garbage").is_none());
    }

    #[test]
    fn quantiles_pick_from_the_sorted_list() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
