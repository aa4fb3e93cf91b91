//! Throttling of failed sign-ins (ASVS V6.3, NIST SP 800-63B 5.2.2): the
//! limits and the back-off, as pure rules; the service counts the failures.

/// The limits of sign-in throttling. No permanent lock-out: every limit is a
/// sliding window or a short back-off.
#[derive(Debug, Clone, Copy)]
pub struct Throttle;

impl Throttle {
    /// Failed attempts per account in any hour, after which attempts are
    /// refused without checking them until the oldest leaves the window.
    pub const ACCOUNT_PER_HOUR: u64 = 100;
    /// Consecutive failures on an account before back-off starts.
    pub const FREE_FAILURES: u64 = 5;
    /// Longest back-off between attempts on one account (seconds).
    pub const MAX_BACKOFF_SECS: i64 = 30;
    /// Failures from one address in 15 minutes before its back-off starts.
    pub const ADDRESS_FREE: u64 = 20;
    /// Longest back-off for one address (seconds).
    pub const ADDRESS_MAX_BACKOFF_SECS: i64 = 60;

    /// Seconds to wait after `n` consecutive failures (0 = none).
    pub fn backoff_secs(n: u64, free: u64, max: i64) -> i64 {
        if n < free {
            0
        } else {
            let e = (n - free).min(20) as u32;
            (1i64 << e).min(max)
        }
    }
}
