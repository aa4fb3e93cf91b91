//! Data-subject requests and consent: the kinds, the legal clocks, and the
//! processing purposes consent is recorded for. Pure rules, no I/O.

use time::{Date, Duration, Month, OffsetDateTime};

/// What a person asks for in a request. Serialised (and stored) as its
/// snake-case name, the one in [`KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// GDPR Art. 15, CCPA right to know: a copy of the data.
    Access,
    /// GDPR Art. 20: the data in a machine-readable form.
    Portability,
    /// GDPR Art. 17, CCPA right to delete.
    Erasure,
    /// GDPR Art. 16, CPRA right to correct.
    Rectification,
    /// GDPR Art. 18: restriction of processing.
    Restriction,
    /// GDPR Art. 21: objection to direct marketing and profiling.
    Objection,
    /// CCPA: do not sell or share.
    OptOutSale,
    /// CPRA: limit the use of sensitive personal information.
    LimitSensitive,
}

impl Kind {
    /// Every kind, in the order forms list them.
    pub const ALL: [Kind; 8] = [
        Kind::Access,
        Kind::Portability,
        Kind::Erasure,
        Kind::Rectification,
        Kind::Restriction,
        Kind::Objection,
        Kind::OptOutSale,
        Kind::LimitSensitive,
    ];

    /// Its name, as stored and in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Portability => "portability",
            Kind::Erasure => "erasure",
            Kind::Rectification => "rectification",
            Kind::Restriction => "restriction",
            Kind::Objection => "objection",
            Kind::OptOutSale => "opt_out_sale",
            Kind::LimitSensitive => "limit_sensitive",
        }
    }

    /// The kind of this name, if it is one.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether fulfilling it makes a package of the person's data.
    pub fn has_package(self) -> bool {
        matches!(self, Kind::Access | Kind::Portability)
    }

    /// The flag fulfilling it sets on the person, for the kinds that limit
    /// processing rather than act on the data.
    pub fn flag(self) -> Option<Flag> {
        match self {
            Kind::Restriction => Some(Flag::Restricted),
            Kind::Objection => Some(Flag::Objected),
            Kind::OptOutSale => Some(Flag::OptedOutSale),
            Kind::LimitSensitive => Some(Flag::LimitSensitive),
            Kind::Access | Kind::Portability | Kind::Erasure | Kind::Rectification => None,
        }
    }
}

/// Compares with a stored or sent name (`kind == "erasure"`).
impl PartialEq<&str> for Kind {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the kinds of request, in [`Kind::ALL`]'s order (the
/// inventory's allowed values and the OpenAPI enum).
pub const KINDS: [&str; 8] = {
    let mut names = [""; 8];
    let mut i = 0;
    while i < names.len() {
        names[i] = Kind::ALL[i].as_str();
        i += 1;
    }
    names
};

/// Where a request is in its life: received, then verified, then fulfilled;
/// or rejected at any step before it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Opened; the requester's identity is not verified yet.
    Received,
    /// Identity verified; to fulfil.
    Verified,
    /// Carried out (closed).
    Fulfilled,
    /// Refused on a stated ground (closed).
    Rejected,
}

impl State {
    /// Every state, in the order of a request's life.
    pub const ALL: [State; 4] = [
        State::Received,
        State::Verified,
        State::Fulfilled,
        State::Rejected,
    ];

    /// Its name, as stored and in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Verified => "verified",
            State::Fulfilled => "fulfilled",
            State::Rejected => "rejected",
        }
    }

    /// The state of this name, if it is one.
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the request is closed (fulfilled or rejected).
    pub fn is_closed(self) -> bool {
        matches!(self, State::Fulfilled | State::Rejected)
    }
}

/// Compares with a stored or sent name (`kind == "erasure"`).
impl PartialEq<&str> for State {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the states, in [`State::ALL`]'s order.
pub const STATES: [&str; 4] = {
    let mut names = [""; 4];
    let mut i = 0;
    while i < names.len() {
        names[i] = State::ALL[i].as_str();
        i += 1;
    }
    names
};

/// A processing flag the service enforces on a data subject. Stored as its
/// snake-case name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// GDPR Art. 18: only the privacy officer may process; excluded from
    /// lists, searches and exports.
    Restricted,
    /// GDPR Art. 21: no direct marketing or profiling.
    Objected,
    /// CCPA: do not sell or share.
    OptedOutSale,
    /// CPRA: limit the use of sensitive personal information.
    LimitSensitive,
    /// A legal hold: erasure is deferred while it lasts.
    LegalHold,
}

impl Flag {
    /// Every flag.
    pub const ALL: [Flag; 5] = [
        Flag::Restricted,
        Flag::Objected,
        Flag::OptedOutSale,
        Flag::LimitSensitive,
        Flag::LegalHold,
    ];

    /// Its name, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Flag::Restricted => "restricted",
            Flag::Objected => "objected",
            Flag::OptedOutSale => "opted_out_sale",
            Flag::LimitSensitive => "limit_sensitive",
            Flag::LegalHold => "legal_hold",
        }
    }

    /// The flag of this name, if it is one.
    pub fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// Compares with a stored or sent name (`kind == "erasure"`).
impl PartialEq<&str> for Flag {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The versions of the privacy notice a consent was given under. A new
/// notice adds a variant and becomes [`NoticeVersion::CURRENT`]; consents
/// recorded under an older one keep its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum NoticeVersion {
    /// The notice of November 2026.
    #[serde(rename = "2026-11")]
    V2026_11,
}

impl NoticeVersion {
    /// The notice shown now.
    pub const CURRENT: NoticeVersion = NoticeVersion::V2026_11;

    /// Its name, as stored with each consent.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeVersion::V2026_11 => "2026-11",
        }
    }
}

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
    fn names_go_both_ways_and_serialise_as_stored() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).ok(), Some(k.as_str().into()));
        }
        for s in State::ALL {
            assert_eq!(State::from_name(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        for f in Flag::ALL {
            assert_eq!(Flag::from_name(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).ok(), Some(f.as_str().into()));
        }
        assert_eq!(
            serde_json::to_value(NoticeVersion::CURRENT).ok(),
            Some(NoticeVersion::CURRENT.as_str().into())
        );
        assert_eq!(KINDS[6], "opt_out_sale");
        assert_eq!(STATES, ["received", "verified", "fulfilled", "rejected"]);
        assert_eq!(Kind::from_name("Access"), None);
        assert_eq!(State::from_name(""), None);
    }

    #[test]
    fn clocks() {
        let due = datetime!(2026-02-28 10:00 UTC);
        assert_eq!(clock(due, datetime!(2026-02-01 10:00 UTC)), Clock::OnTrack);
        assert_eq!(clock(due, datetime!(2026-02-25 10:00 UTC)), Clock::DueSoon);
        assert_eq!(clock(due, datetime!(2026-03-01 10:00 UTC)), Clock::Overdue);
    }
}
