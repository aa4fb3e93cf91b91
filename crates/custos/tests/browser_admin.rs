//! The Admin pages in a real browser: headless Chromium driven through
//! WebDriver. An administrator signs in, reads the users, roles, sessions and
//! API-token pages, makes a custom role with the permission matrix (contact
//! details masked, own records only), invites a user with it, and the invited
//! person sets their password on the public invitation page; then imports a
//! CSV file through the Import page (preview, then import). axe-core runs on
//! every page (no serious or critical violation), nothing is requested from
//! another host, and the pages send the CSP; screenshots go to
//! `target/screenshots/admin-*.png`.
//!
//! The harness is shared (`tests/common/browser.rs`). Needs Debian's
//! `chromium` and `chromium-driver`, and axe-core installed with `npm install`
//! in `crates/custos/tests/axe`. Without them the test says "skipped: …" and
//! passes, except in CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use common::browser::open;
use custos_domain::{DataCategory, ReadLevel, RecordScope, Role};
use custos_service::Principal;
use custos_testkit::{PASSWORD, TestServer};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_makes_a_role_and_invites_someone_in_the_browser() {
    let started = Instant::now();
    let s = TestServer::start().await;
    s.token_for_email(Role::Admin, "root@custos.example").await;
    let Some((mut run, _driver, _profile)) = open(&s).await else {
        return;
    };

    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "root@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    run.wait_for("Pipeline by stage").await;

    for (path, text, shot) in [
        ("/app/admin/users", "Add a user", "admin-01-users"),
        ("/app/admin/roles", "New role", "admin-02-roles"),
        (
            "/app/admin/roles/privacy_officer",
            "built-in role",
            "admin-03-builtin-role",
        ),
        ("/app/admin/sessions", "this session", "admin-04-sessions"),
        (
            "/app/admin/tokens",
            "Create an API token",
            "admin-05-tokens",
        ),
    ] {
        run.go(path).await;
        run.wait_for(text).await;
        run.check(path, Some(shot), true).await;
    }

    // A custom role through the editor: copied from sales, contact details
    // masked, own records only.
    run.go("/app/admin/roles/new?from=sales").await;
    run.wait_for("Create role").await;
    run.check("new role form", Some("admin-06-role-form"), true)
        .await;
    run.fill("#role-name", "field_sales").await;
    run.fill("#role-label", "Field sales").await;
    run.choose("select[name='read.contact_details']", "masked")
        .await;
    // Writing needs full read: untick it, or the editor refuses.
    run.click("input[name='write.contact_details']").await;
    run.click("#scope-own").await;
    run.click("form.card button.primary").await;
    run.wait_for("Role created.").await;
    run.check("saved role", Some("admin-07-role"), true).await;
    let role = s
        .custos
        .get_role(&Principal::cli(), "field_sales")
        .await
        .unwrap();
    assert_eq!(role.label, "Field sales");
    assert_eq!(role.permissions.scope, RecordScope::Own);
    assert_eq!(
        role.permissions.read_level(DataCategory::ContactDetails),
        ReadLevel::Masked
    );
    assert!(role.permissions.can_write(DataCategory::Identity));

    // Import a file: the upload form, the preview, the result.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    std::fs::write(
        &file,
        "First name,Last name,Email\nAda,Lovelace,ada@engines.example\nGrace,Hopper,not-an-email\n",
    )
    .unwrap();
    run.go("/app/import").await;
    run.wait_for("Check the file").await;
    run.check("import form", Some("admin-10-import"), true)
        .await;
    run.c
        .find(fantoccini::Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    run.click("form.card button.primary").await;
    run.wait_for("Rejected rows").await;
    run.check("import preview", Some("admin-11-import-preview"), true)
        .await;
    run.click("form.card button.primary").await;
    run.wait_for("1 contacts imported").await;
    run.check("import result", Some("admin-12-import-done"), true)
        .await;

    // Invite someone with it.
    run.go("/app/admin/users").await;
    run.wait_for("Add a user").await;
    run.fill("#new-email", "fern@custos.example").await;
    run.choose("#new-role", "field_sales").await;
    run.fill("#new-team", "west").await;
    run.click("#how-invite").await;
    run.click("button.primary").await;
    let html = run.wait_for("Invitation link").await;
    run.check("invitation created", Some("admin-08-invited"), false)
        .await;
    let start = html.find("/invite/csi_").expect("the link is shown");
    let end = html[start..].find('"').unwrap() + start;
    let link = html[start..end].to_string();

    // The invited person sets a password (the admin signs out first: one browser).
    run.c.delete_all_cookies().await.unwrap();
    run.go(&link).await;
    run.wait_for("Set your password").await;
    run.check("invitation page", Some("admin-09-invitation"), false)
        .await;
    run.fill("#password", PASSWORD).await;
    run.fill("#confirm", PASSWORD).await;
    run.click("button.primary").await;
    run.wait_for("Your password is set").await;
    run.check("invitation accepted", None, false).await;

    // And signs in with it.
    run.go("/").await;
    run.wait_for("Sign in").await;
    run.fill("#email", "fern@custos.example").await;
    run.fill("#password", PASSWORD).await;
    run.click("button[type=submit].primary").await;
    let html = run.wait_for("Field sales").await;
    assert!(
        !html.contains("/app/admin/"),
        "no Admin group for a sales role"
    );

    eprintln!(
        "admin browser test: {} pages checked with axe in {:.1}s",
        run.checked.len(),
        started.elapsed().as_secs_f64()
    );
}
