//! The processing activities of the record of processing (GDPR Art. 30),
//! derived from the data inventory and never declared a second time: one
//! activity per purpose, holding every field processed for it with the
//! subjects, categories, bases, recipients, retention rules and sources of
//! those fields. Pure; the service adds the controller, the processors and
//! the security measures in force.

use crate::inventory::{
    self, DataCategory, FieldDecl, LawfulBasis, Purpose, Retention, Source, SubjectType,
};

/// One processing activity: what the inventory declares for one purpose.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The purpose.
    pub purpose: Purpose,
    /// Whose data (customers, staff); organisations are left out.
    pub subjects: Vec<SubjectType>,
    /// The categories of data, in the inventory's order of categories.
    pub categories: Vec<DataCategory>,
    /// The lawful bases declared (`NotApplicable` left out).
    pub bases: Vec<LawfulBasis>,
    /// Who else receives the data.
    pub recipients: Vec<&'static str>,
    /// The retention rules of its fields.
    pub retention: Vec<Retention>,
    /// Where the data comes from.
    pub sources: Vec<Source>,
    /// The fields, in inventory order.
    pub fields: Vec<&'static FieldDecl>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The processing activities, one per purpose some field declares, with
/// the retention periods in force.
pub fn activities_with(periods: &crate::retention::Periods) -> Vec<Activity> {
    let mut out = Vec::new();
    for purpose in Purpose::ALL {
        let fields: Vec<&'static FieldDecl> = inventory::FIELDS
            .iter()
            .filter(|f| f.purposes.contains(&purpose))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let mut a = Activity {
            purpose,
            subjects: Vec::new(),
            categories: Vec::new(),
            bases: Vec::new(),
            recipients: Vec::new(),
            retention: Vec::new(),
            sources: Vec::new(),
            fields,
        };
        for c in DataCategory::ALL {
            if a.fields.iter().any(|f| f.category == c) {
                a.categories.push(c);
            }
        }
        for f in &a.fields {
            if f.subject_type != SubjectType::None {
                push_unique(&mut a.subjects, f.subject_type);
            }
            if f.lawful_basis != LawfulBasis::NotApplicable {
                push_unique(&mut a.bases, f.lawful_basis);
            }
            for r in f.recipients {
                push_unique(&mut a.recipients, *r);
            }
            push_unique(&mut a.retention, periods.retention(f));
            push_unique(&mut a.sources, f.source);
        }
        out.push(a);
    }
    out
}

/// The processing activities with the inventory's default periods.
pub fn activities() -> Vec<Activity> {
    activities_with(&crate::retention::Periods::default())
}

/// Every recipient the inventory names, in order of first declaration.
pub fn recipients() -> Vec<&'static str> {
    let mut out = Vec::new();
    for f in inventory::FIELDS {
        for r in f.recipients {
            push_unique(&mut out, *r);
        }
    }
    out
}

/// Fields that declare no purpose at all: processing without a reason,
/// which the minimisation review flags and the record of processing lists
/// apart.
pub fn without_purpose() -> impl Iterator<Item = &'static FieldDecl> {
    inventory::FIELDS.iter().filter(|f| f.purposes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_field_with_a_purpose_is_in_the_activity_of_each_of_its_purposes() {
        let acts = activities();
        for f in inventory::FIELDS {
            for p in f.purposes {
                let a = acts
                    .iter()
                    .find(|a| a.purpose == *p)
                    .expect("an activity per declared purpose");
                assert!(
                    a.fields
                        .iter()
                        .any(|g| g.entity == f.entity && g.name == f.name)
                );
                assert!(a.categories.contains(&f.category));
            }
        }
        // And nothing is in an activity whose purpose it does not declare.
        for a in &acts {
            assert!(a.fields.iter().all(|f| f.purposes.contains(&a.purpose)));
        }
        let declared: BTreeSet<_> = inventory::FIELDS
            .iter()
            .flat_map(|f| f.purposes.iter().copied())
            .collect();
        let listed: BTreeSet<_> = acts.iter().map(|a| a.purpose).collect();
        assert_eq!(declared, listed);
    }
}
