//! Warning banners the shell shows on signed-in pages.

use crate::extract::cookie;
use axum::http::HeaderMap;

/// The cookie that tells the next page how many sign-in attempts failed on
/// the account since its previous sign-in (a number, nothing personal).
pub const FAILED_COOKIE: &str = "__Host-custos_failed";

/// The warning about failed attempts, from the cookie the sign-in left.
pub fn failed_attempts_banner(headers: &HeaderMap) -> Option<String> {
    let n: i64 = cookie(headers, FAILED_COOKIE)?.parse().ok()?;
    (n > 0).then(|| {
        format!(
            "{n} failed sign-in attempt{} on your account since your last sign-in. If that was not you, change your password (Security).",
            if n == 1 { "" } else { "s" }
        )
    })
}
