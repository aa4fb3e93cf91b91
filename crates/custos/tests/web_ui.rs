//! The web shell: sign-in with a secure session cookie and CSRF protection.

#![allow(clippy::unwrap_used)]

mod common;

use common::ui::hidden_csrf;
use custos_domain::Role;
use custos_testkit::{PASSWORD, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_forms_need_csrf() {
    let s = TestServer::start().await;
    s.token_for_email(Role::Sales, "lin@sales.example").await;
    let b = s.browser();

    // The sign-in page is reachable, names itself, and sets the pre-session cookie.
    let r = b.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<form") && html.contains("Sign in"));
    let csrf = hidden_csrf(&html);

    // A post without the right token changes nothing.
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("csrf", "forged"),
            ("email", "lin@sales.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("__Host-custos_session="))
    );

    // A wrong password is refused with the form kept.
    let r = b.get(s.url("/")).send().await.unwrap();
    let csrf2 = hidden_csrf(&r.text().await.unwrap());
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("csrf", csrf2.as_str()),
            ("email", "lin@sales.example"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("not right") && html.contains("lin@sales.example"));
    let _ = csrf;

    // The right password signs in with a Secure, HttpOnly, SameSite=Strict cookie.
    let r = b.get(s.url("/")).send().await.unwrap();
    let csrf3 = hidden_csrf(&r.text().await.unwrap());
    let r = b
        .post(s.url("/login"))
        .form(&[
            ("csrf", csrf3.as_str()),
            ("email", "lin@sales.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/app");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Host-custos_session="))
        .expect("session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let r = b.get(s.url("/app")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("lin@sales.example"));
    let csrf_session = hidden_csrf(&html);

    // Sign-out needs the session's CSRF token.
    let r = b
        .post(s.url("/logout"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        b.get(s.url("/app")).send().await.unwrap().status(),
        200,
        "a forged sign-out must not end the session"
    );
    let r = b
        .post(s.url("/logout"))
        .form(&[("csrf", csrf_session.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b.get(s.url("/app")).send().await.unwrap();
    assert_eq!(r.status(), 303, "signed out: back to the sign-in page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let s = TestServer::start().await;
    s.token_for_email(Role::Sales, "kim@sales.example").await;
    let b = s.browser();
    let html = b
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&html);
    let r = b
        .post(s.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "kim@sales.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_page_says_how_to_create_an_admin() {
    let s = TestServer::start().await;
    let html = s
        .client()
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("custos user add"));
    s.token_for(Role::Admin).await;
    let html = s
        .client()
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("custos user add"));
    // The stylesheet is served from the binary; the page references nothing else.
    let css = s
        .client()
        .get(s.url("/static/custos.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for attr in ["src=\"http", "href=\"http", "url(http", "//cdn", "@import"] {
        assert!(
            !html.contains(attr),
            "the page loads something from another host: {attr}"
        );
    }
}

/// Every page names an icon, and `/favicon.ico` is one: an ICO directory
/// (reserved 0, type 1) of PNG images, so no page load ends in a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_favicon_is_served_and_linked() {
    let s = TestServer::start().await;
    let r = s.client().get(s.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/x-icon");
    let ico = r.bytes().await.unwrap();
    assert_eq!(&ico[..4], &[0, 0, 1, 0], "an ICO file");
    let images = u16::from_le_bytes([ico[4], ico[5]]);
    assert!(images >= 1);
    for i in 0..usize::from(images) {
        let entry = &ico[6 + 16 * i..6 + 16 * (i + 1)];
        let len = u32::from_le_bytes(entry[8..12].try_into().unwrap()) as usize;
        let at = u32::from_le_bytes(entry[12..16].try_into().unwrap()) as usize;
        assert!(at + len <= ico.len(), "image {i} lies inside the file");
        assert_eq!(&ico[at..at + 8], b"\x89PNG\r\n\x1a\n", "image {i} is a PNG");
    }
    for path in ["/", "/privacy"] {
        let html = s
            .client()
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("<link rel=\"icon\" href=\"/favicon.ico\""),
            "{path}"
        );
    }
}

/// An unknown address answers a page with the landmarks every page has: a
/// language, a main region and a heading (the portal's in the portal's own
/// layout); under /api/ a problem document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_are_404_pages_with_landmarks() {
    let s = TestServer::start().await;
    for (path, nav) in [
        ("/privacy/no-such-page", "Privacy portal"),
        ("/no-such-page", "Go to Custos"),
    ] {
        let r = s.client().get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains("<html lang=\"en\">"), "{path}: {html}");
        assert!(html.contains("<main id=\"main\""), "{path}: {html}");
        assert!(html.contains("<h1>Page not found</h1>"), "{path}: {html}");
        assert!(html.contains(nav), "{path}: {html}");
    }
    let r = s
        .client()
        .get(s.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}
