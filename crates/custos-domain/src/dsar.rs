//! Data-subject requests and consent: the kinds, the legal clocks, and the
//! processing purposes consent is recorded for. Pure rules, no I/O.

use time::{Date, Duration, Month, OffsetDateTime};

/// The kinds of request a person can make.
pub const KINDS: [&str; 8] = [
    "access",
    "portability",
    "erasure",
    "rectification",
    "restriction",
    "objection",
    "opt_out_sale",
    "limit_sensitive",
];

/// Wrong one-time codes a request accepts; after this many the code is void
/// and the privacy officer must issue a new one. Six digits and five tries
/// give a guesser one chance in 200,000.
pub const CODE_ATTEMPTS: u32 = 5;

/// The grounds on which a request may be refused, each with the sentence the
/// person is given: the requester's identity could not be confirmed (GDPR
/// Art. 12(6), CCPA 1798.140(ak)), the request is manifestly unfounded or
/// excessive (GDPR Art. 12(5)), or an exemption in law applies (for example
/// GDPR Art. 17(3), records the law requires to be kept).
pub const REJECT_GROUNDS: [(&str, &str); 3] = [
    (
        "identity_not_verified",
        "We could not confirm that the request came from the person it is about.",
    ),
    (
        "manifestly_unfounded",
        "The request is manifestly unfounded or excessive.",
    ),
    (
        "exemption",
        "An exemption in law applies to what was asked.",
    ),
];

/// The sentence for a refusal ground, if it is one.
pub fn reject_ground(ground: &str) -> Option<&'static str> {
    REJECT_GROUNDS
        .iter()
        .find(|(g, _)| *g == ground)
        .map(|(_, text)| *text)
}

/// Purposes the consent ledger records. `marketing_email`, `profiling` and
/// `sharing_partners` need consent (opt-in); `sale_share` is CCPA's opt-out
/// model: allowed until the person opts out (or sends Global Privacy Control).
pub const CONSENT_PURPOSES: [&str; 4] = [
    "marketing_email",
    "profiling",
    "sharing_partners",
    "sale_share",
];

/// Whether a purpose needs consent given before processing (opt-in).
pub fn needs_opt_in(purpose: &str) -> bool {
    purpose != "sale_share"
}

/// The law a request is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// EU/UK GDPR: one month, extendable by two (Art. 12(3)).
    Gdpr,
    /// California CCPA/CPRA: 45 days, extendable by 45 (Cal. Civ. Code 1798.130).
    Ccpa,
}

impl Regime {
    /// Parses `gdpr` or `ccpa`.
    pub fn from_name(s: &str) -> Option<Regime> {
        match s {
            "gdpr" => Some(Regime::Gdpr),
            "ccpa" => Some(Regime::Ccpa),
            _ => None,
        }
    }

    /// The due date of a request received at `received`.
    pub fn due(self, received: OffsetDateTime) -> OffsetDateTime {
        match self {
            Regime::Gdpr => add_months(received, 1),
            Regime::Ccpa => received + Duration::days(45),
        }
    }

    /// The due date after the one extension the law allows.
    pub fn extended(self, due: OffsetDateTime) -> OffsetDateTime {
        match self {
            Regime::Gdpr => add_months(due, 2),
            Regime::Ccpa => due + Duration::days(45),
        }
    }
}

/// Adds calendar months the way the GDPR's "one month" is read (Regulation
/// 1182/71): the same day of the later month, or its last day when that month
/// is shorter (31 January + 1 month = 28 or 29 February).
pub fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let date = t.date();
    let total = date.year() * 12 + (u8::from(date.month()) as i32 - 1) + months as i32;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let month = Month::try_from(month0 as u8 + 1).unwrap_or(Month::December);
    let last = last_day(year, month);
    let day = date.day().min(last);
    match Date::from_calendar_date(year, month, day) {
        Ok(d) => t.replace_date(d),
        Err(_) => t,
    }
}

fn last_day(year: i32, month: Month) -> u8 {
    time::util::days_in_month(month, year)
}

/// How close a deadline is, for the colour-coded clocks in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// More than seven days left.
    OnTrack,
    /// Seven days or less left.
    DueSoon,
    /// Past due.
    Overdue,
}

/// The state of a deadline at `now`.
pub fn clock(due: OffsetDateTime, now: OffsetDateTime) -> Clock {
    if now > due {
        Clock::Overdue
    } else if due - now <= Duration::days(7) {
        Clock::DueSoon
    } else {
        Clock::OnTrack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn gdpr_one_month_lands_on_the_last_day_of_a_shorter_month() {
        assert_eq!(
            Regime::Gdpr.due(datetime!(2026-01-31 10:00 UTC)),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            Regime::Gdpr.due(datetime!(2028-01-31 10:00 UTC)),
            datetime!(2028-02-29 10:00 UTC)
        );
        assert_eq!(
            Regime::Gdpr.due(datetime!(2026-03-15 08:30 UTC)),
            datetime!(2026-04-15 08:30 UTC)
        );
        assert_eq!(
            Regime::Gdpr.due(datetime!(2026-12-31 00:00 UTC)),
            datetime!(2027-01-31 00:00 UTC)
        );
    }

    #[test]
    fn ccpa_is_45_days_and_extensions_follow_each_law() {
        assert_eq!(
            Regime::Ccpa.due(datetime!(2026-01-31 10:00 UTC)),
            datetime!(2026-03-17 10:00 UTC)
        );
        assert_eq!(
            Regime::Ccpa.extended(datetime!(2026-03-17 10:00 UTC)),
            datetime!(2026-05-01 10:00 UTC)
        );
        // Two further months from the original due date.
        assert_eq!(
            Regime::Gdpr.extended(datetime!(2026-02-28 10:00 UTC)),
            datetime!(2026-04-28 10:00 UTC)
        );
    }

    #[test]
    fn clocks() {
        let due = datetime!(2026-02-28 10:00 UTC);
        assert_eq!(clock(due, datetime!(2026-02-01 10:00 UTC)), Clock::OnTrack);
        assert_eq!(clock(due, datetime!(2026-02-25 10:00 UTC)), Clock::DueSoon);
        assert_eq!(clock(due, datetime!(2026-03-01 10:00 UTC)), Clock::Overdue);
    }
}
