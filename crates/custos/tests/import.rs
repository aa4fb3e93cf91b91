//! `custos import` of a 100,000-row CSV with 1 % bad rows: refused whole
//! without --skip-invalid, the good rows imported with it, every bad row
//! reported with its reason; plus `custos seed`.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn custos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_PASSPHRASE_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn a_100k_row_import_with_one_percent_bad_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    assert!(custos(&dir, &["init"]).status.success());
    let csv_path = tmp.path().join("contacts.csv");
    let mut csv = String::from("First name,Last name,Email,Phone,Company,Tags\n");
    let mut bad = Vec::new();
    for i in 0..100_000u32 {
        let line = i + 2;
        match i % 100 {
            // Three kinds of bad row, 1 % in all.
            13 if i % 300 == 13 => {
                bad.push((line, "email"));
                writeln!(
                    csv,
                    "Ann{i},Lee,not-an-email,+1 555 {i:06},Co {},vip",
                    i % 40
                )
                .unwrap();
            }
            13 if i % 300 == 113 => {
                bad.push((line, "last_name"));
                writeln!(
                    csv,
                    "Ann{i},,ann{i}@bulk.example,+1 555 {i:06},Co {},vip",
                    i % 40
                )
                .unwrap();
            }
            13 => {
                // A duplicate of the row just before it.
                bad.push((line, "email"));
                writeln!(
                    csv,
                    "Ann{i},Lee,ann{}@bulk.example,+1 555 {i:06},Co {},",
                    i - 1,
                    i % 40
                )
                .unwrap();
            }
            _ => writeln!(
                csv,
                "Ann{i},Lee{i},ann{i}@bulk.example,+1 555 {i:06},Co {},vip;newsletter",
                i % 40
            )
            .unwrap(),
        }
    }
    std::fs::write(&csv_path, csv).unwrap();

    // Without --skip-invalid: refused, nothing imported, every bad row reported.
    let out = custos(&dir, &["import", "contacts", csv_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("1000 of 100000 rows are invalid") && err.contains("nothing was imported"),
        "{err}"
    );
    let rejected = std::fs::read_to_string(tmp.path().join("contacts.rejected.csv")).unwrap();
    let mut lines: Vec<(u32, String)> = rejected
        .lines()
        .skip(1)
        .map(|l| {
            let mut parts = l.splitn(3, ',');
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().to_string(),
            )
        })
        .collect();
    lines.dedup_by_key(|(l, _)| *l);
    assert_eq!(lines.len(), bad.len());
    for ((line, field), (got_line, got_field)) in bad.iter().zip(&lines) {
        assert_eq!((*line, *field), (*got_line, got_field.as_str()));
    }
    assert!(
        rejected.contains("duplicate of line"),
        "duplicates are named"
    );
    let status = text(&custos(&dir, &["audit", "verify"]).stdout);
    let entries_before: u64 = status.split_whitespace().nth(2).unwrap().parse().unwrap();

    // With --skip-invalid: the 99,000 good rows.
    let out = custos(
        &dir,
        &[
            "import",
            "contacts",
            csv_path.to_str().unwrap(),
            "--skip-invalid",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("imported 99000 of 100000 contacts"),
        "{stdout}"
    );
    assert!(stdout.contains("created 40 companies"), "{stdout}");
    // Every created record was audited: 99,000 contacts + 40 companies + the import itself.
    let status = text(&custos(&dir, &["audit", "verify"]).stdout);
    let entries_after: u64 = status.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(entries_after - entries_before, 99_000 + 40 + 1, "{status}");

    // Importing the same file again finds every row a duplicate of a stored contact.
    let out = custos(&dir, &["import", "contacts", csv_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let rejected = std::fs::read_to_string(tmp.path().join("contacts.rejected.csv")).unwrap();
    assert!(rejected.contains("a contact with this email already exists"));
}

#[test]
fn bad_files_get_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    assert!(custos(&dir, &["init"]).status.success());
    let f = tmp.path().join("odd.csv");
    std::fs::write(&f, "email,shoe size\nx@y.example,42\n").unwrap();
    let out = custos(&dir, &["import", "contacts", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("shoe size") && err.lines().count() == 1,
        "{err}"
    );
    // A row that is not UTF-8 text: refused before anything is read in.
    let entries = |dir: &Path| -> u64 {
        let status = text(&custos(dir, &["audit", "verify"]).stdout);
        status.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let before = entries(&dir);
    let f = tmp.path().join("latin1.csv");
    let mut bytes = b"first_name,last_name,email\nAnn,Lee,ann@y.example\n".to_vec();
    bytes.extend_from_slice(b"Ren\xe9,Roy,rene@y.example\n");
    std::fs::write(&f, bytes).unwrap();
    let out = custos(&dir, &["import", "contacts", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3: not valid CSV") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(entries(&dir), before, "nothing was imported");
    let out = custos(
        &dir,
        &[
            "import",
            "contacts",
            tmp.path().join("missing.csv").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read"));
}

#[test]
fn seed_creates_related_records_that_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = custos(&dir, &["seed", "--contacts", "300"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("seeded 300 contacts"), "{s}");
    let n = |word: &str| -> u64 {
        let i = s.find(word).unwrap();
        s[..i]
            .split_whitespace()
            .last()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    assert!(
        n(" deals") > 0 && n(" activities") > 0 && n(" orders") > 0,
        "{s}"
    );
    let out = custos(&dir, &["audit", "verify"]);
    assert!(out.status.success());
}
