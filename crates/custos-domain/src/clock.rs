//! The one source of "now". Everything time-dependent (sessions, due dates,
//! retention, TOTP) asks an injected [`Clock`], so tests move time instead of sleeping.

use time::OffsetDateTime;

/// Gives the current time. Implemented by [`SystemClock`] in production and by a
/// fake clock in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock; the only place allowed to read the system time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the one sanctioned call
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until moved: for tests of anything time-dependent.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock {
            now: std::sync::Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
