//! The dependency advisory check (scripts/advisories, cargo-deny offline): a
//! dependency with a known advisory fails the build unless deny.toml lists it
//! with a reason. Uses a copy of the RustSec snapshot in ../shared with one
//! made-up advisory against a crate Custos really depends on (`hex`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn run(snapshot: &Path, config: &Path) -> (bool, String) {
    let out = Command::new(root().join("scripts/advisories"))
        .current_dir(root())
        .env("CUSTOS_ADVISORY_DB", snapshot)
        .env("CUSTOS_DENY_CONFIG", config)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_known_advisory_fails_unless_listed_with_a_reason() {
    let shared = root().join("../shared/advisory-db");
    let have_deny = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !shared.join("crates").is_dir() || !have_deny {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide ../shared/advisory-db and cargo-deny"
        );
        eprintln!("skipped: needs ../shared/advisory-db and cargo-deny");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = tmp.path().join("advisory-db");
    copy_dir(&shared, &snapshot);
    std::fs::create_dir_all(snapshot.join("crates/hex")).unwrap();
    std::fs::write(
        snapshot.join("crates/hex/RUSTSEC-2099-0001.md"),
        "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"hex\"\ndate = \"2026-11-30\"\n\n[versions]\npatched = []\n```\n\n# A made-up advisory for this test\n\nEvery version of hex is affected.\n",
    )
    .unwrap();
    // The project's deny.toml, with its advisory checkout in the temp dir.
    let text = std::fs::read_to_string(root().join("deny.toml")).unwrap();
    let dbs = tmp.path().join("dbs");
    let text = text.replace(
        "db-path = \"target/advisory-dbs\"",
        &format!("db-path = \"{}\"", dbs.display()),
    );
    assert!(
        text.contains(&dbs.display().to_string()),
        "deny.toml no longer sets db-path"
    );
    let config = tmp.path().join("deny-strict.toml");
    std::fs::write(&config, &text).unwrap();
    let (ok, output) = run(&snapshot, &config);
    assert!(!ok, "the advisory did not fail the check:\n{output}");
    assert!(output.contains("RUSTSEC-2099-0001"), "{output}");

    // Listed in deny.toml with a reason, it passes.
    let ignored = text.replace(
        "ignore = []",
        "ignore = [{ id = \"RUSTSEC-2099-0001\", reason = \"test: hex is only used to print digests\" }]",
    );
    assert_ne!(ignored, text, "deny.toml no longer has `ignore = []`");
    let relaxed = tmp.path().join("deny.toml");
    std::fs::write(&relaxed, ignored).unwrap();
    let (ok, output) = run(&snapshot, &relaxed);
    assert!(ok, "{output}");
}
