//! The privacy notice, written from the data inventory: what is held about
//! people, why, on what basis, for how long, from where and for whom. The
//! portal shows it; the access report quotes it for the data it contains.

use crate::ui::fields;
use custos_domain::Entity;
use custos_domain::inventory::{
    self, DataCategory, Disposal, FieldDecl, LawfulBasis, Protection, Retention, Source,
    SubjectType,
};

/// What the notice says about one kind of personal data.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The kind of data, in words.
    pub category: &'static str,
    /// Anchor id.
    pub id: &'static str,
    /// The fields of that kind.
    pub what: Vec<String>,
    /// Why it is used.
    pub purposes: Vec<&'static str>,
    /// The lawful bases.
    pub bases: Vec<&'static str>,
    /// Who else receives it.
    pub recipients: Vec<String>,
    /// How long it is kept.
    pub retention: Vec<String>,
    /// Where it comes from.
    pub sources: Vec<&'static str>,
    /// How it is protected.
    pub protection: &'static str,
}

fn category_words(c: DataCategory) -> &'static str {
    match c {
        DataCategory::Identity => "Who you are",
        DataCategory::ContactDetails => "How to reach you",
        DataCategory::Financial => "Payments and amounts",
        DataCategory::Communications => "What you told us, and our notes of it",
        DataCategory::Behavioural => "Your preferences and choices",
        DataCategory::SpecialCategory => "Sensitive data",
        DataCategory::Business => "Business data",
        DataCategory::Identifiers => "Reference numbers",
        DataCategory::Credentials => "Secrets",
        DataCategory::System => "Records of our own work",
    }
}

/// A purpose of the inventory in words.
pub fn purpose_words(p: inventory::Purpose) -> &'static str {
    use inventory::Purpose::*;
    match p {
        SalesRelationship => "managing our relationship with you and selling to you",
        OrderFulfilment => "delivering what you ordered",
        Accounting => "keeping the accounts the law requires",
        CustomerSupport => "answering your questions",
        ServiceOperation => "running and securing our systems",
        PrivacyCompliance => "answering your privacy requests and keeping consent records",
    }
}

/// A lawful basis in words, with its article.
pub fn basis_words(b: LawfulBasis) -> Option<&'static str> {
    match b {
        LawfulBasis::Consent => Some("your consent (GDPR Art. 6(1)(a))"),
        LawfulBasis::Contract => Some("a contract with you (GDPR Art. 6(1)(b))"),
        LawfulBasis::LegalObligation => Some("a legal obligation (GDPR Art. 6(1)(c))"),
        LawfulBasis::LegitimateInterests => Some(
            "our legitimate interests in serving and selling to our customers, balanced against yours (GDPR Art. 6(1)(f))",
        ),
        LawfulBasis::NotApplicable => None,
    }
}

/// A retention rule in words.
pub fn retention_words(r: Retention) -> String {
    match r {
        Retention::WhileRelationship => {
            "while you are our customer, or until you ask us to erase it".into()
        }
        Retention::YearsAfter {
            years,
            anchor,
            then,
        } => {
            let from = match anchor {
                "completed_at" => "the order is completed".to_string(),
                "closed_at" => "your request is answered".to_string(),
                "occurred_at" => "it happened".to_string(),
                other => fields::humanize(other).to_lowercase(),
            };
            let fate = match then {
                Disposal::Delete => "then deleted",
                Disposal::Anonymise => {
                    "then anonymised: what identifies you is destroyed, amounts are kept for accounting"
                }
                Disposal::Erase => "then erased: the key that protects your data is destroyed",
            };
            format!("{} after {from}, {fate}", years_words(years))
        }
        Retention::WhileAccount => "while the staff account exists".into(),
        Retention::YearsAfterLastActivity { years } => format!(
            "{} after our last contact with you, unless a deal or an order of yours is still open or within its own period; then erased: the key that protects your data is destroyed",
            years_words(years)
        ),
    }
}

/// "1 year", "3 years".
pub fn years_words(years: u32) -> String {
    format!("{years} {}", if years == 1 { "year" } else { "years" })
}

fn source_words(s: Source) -> &'static str {
    match s {
        Source::DataSubject => "you",
        Source::Staff => "our staff, from what you tell them",
        Source::System => "our systems",
    }
}

fn entity_words(e: Entity) -> &'static str {
    match e {
        Entity::Contact => "",
        Entity::Activity => " (our notes of calls, emails and meetings)",
        Entity::Order => " (orders)",
        Entity::Request => " (privacy requests)",
        Entity::Consent => " (consent records)",
        _ => "",
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The notice's sections for these fields, one per kind of data, in the
/// inventory's order of categories.
/// Each field comes with its retention as in force (the privacy officer may
/// have changed a policy's period).
pub fn notice_from(decls: &[(&FieldDecl, Retention)]) -> Vec<Notice> {
    let mut out = Vec::new();
    for c in DataCategory::ALL {
        let of: Vec<&(&FieldDecl, Retention)> =
            decls.iter().filter(|(f, _)| f.category == c).collect();
        if of.is_empty() {
            continue;
        }
        let mut n = Notice {
            category: category_words(c),
            id: c.name(),
            what: Vec::new(),
            purposes: Vec::new(),
            bases: Vec::new(),
            recipients: Vec::new(),
            retention: Vec::new(),
            sources: Vec::new(),
            protection: "encrypted with a key that belongs to you alone",
        };
        for &(f, retention) in of {
            push_unique(
                &mut n.what,
                format!("{}{}", f.label.to_lowercase(), entity_words(f.entity)),
            );
            for p in f.purposes {
                push_unique(&mut n.purposes, purpose_words(*p));
            }
            if let Some(b) = basis_words(f.lawful_basis) {
                push_unique(&mut n.bases, b);
            }
            for r in f.recipients {
                push_unique(&mut n.recipients, r.to_string());
            }
            push_unique(&mut n.retention, retention_words(retention));
            push_unique(&mut n.sources, source_words(f.source));
            if matches!(f.protection, Protection::Plain { .. }) {
                n.protection = "stored with access limited to the staff who need it";
            }
        }
        out.push(n);
    }
    out
}

/// The notice for the whole inventory: every field about customers, except
/// secrets.
pub fn customer_notice(periods: &custos_domain::retention::Periods) -> Vec<Notice> {
    let decls: Vec<(&FieldDecl, Retention)> = inventory::FIELDS
        .iter()
        .filter(|f| {
            f.subject_type == SubjectType::Customer && f.category != DataCategory::Credentials
        })
        .map(|f| (f, periods.retention(f)))
        .collect();
    notice_from(&decls)
}
