//! The kinds of record Custos stores.

use serde::{Deserialize, Serialize};

/// A kind of record. CRM entities are served under `/api/v1/{plural}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// A person the organisation deals with: the data subject of most personal data.
    Contact,
    /// An organisation (business data, not about a natural person).
    Company,
    /// A sales opportunity moving through the pipeline.
    Deal,
    /// A note, call, email, meeting or task about a contact.
    Activity,
    /// A purchase by a contact.
    Order,
    /// A staff account of Custos itself (staff are data subjects too).
    User,
    /// A data-subject request (GDPR/CCPA): its requester's details are sealed
    /// under a key of its own, so the request outlives the erasure it records.
    Request,
    /// One entry of the consent ledger: a person gave or withdrew consent for
    /// a purpose. Entries are never changed, only added.
    Consent,
}

impl Entity {
    /// The CRM entities, in navigation order.
    pub const CRM: [Entity; 5] = [
        Entity::Contact,
        Entity::Company,
        Entity::Deal,
        Entity::Activity,
        Entity::Order,
    ];

    /// Every entity the inventory declares.
    pub const ALL: [Entity; 8] = [
        Entity::Contact,
        Entity::Company,
        Entity::Deal,
        Entity::Activity,
        Entity::Order,
        Entity::User,
        Entity::Request,
        Entity::Consent,
    ];

    /// Singular snake-case name, used in audit actions (`contact.read`) and AAD.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Contact => "contact",
            Entity::Company => "company",
            Entity::Deal => "deal",
            Entity::Activity => "activity",
            Entity::Order => "order",
            Entity::User => "user",
            Entity::Request => "request",
            Entity::Consent => "consent",
        }
    }

    /// Plural name: the URL segment and the table name.
    pub fn plural(self) -> &'static str {
        match self {
            Entity::Contact => "contacts",
            Entity::Company => "companies",
            Entity::Deal => "deals",
            Entity::Activity => "activities",
            Entity::Order => "orders",
            Entity::User => "users",
            Entity::Request => "requests",
            Entity::Consent => "consents",
        }
    }

    /// Human label for one record.
    pub fn label(self) -> &'static str {
        match self {
            Entity::Contact => "Contact",
            Entity::Company => "Company",
            Entity::Deal => "Deal",
            Entity::Activity => "Activity",
            Entity::Order => "Order",
            Entity::User => "User",
            Entity::Request => "Request",
            Entity::Consent => "Consent",
        }
    }

    /// Finds an entity by its plural name.
    pub fn from_plural(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.plural() == s)
    }

    /// Finds an entity by its singular name.
    pub fn from_name(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == s)
    }

    /// The field whose value is the data subject's id, if records of this entity are
    /// about a person. Their personal fields are sealed under that person's data key,
    /// so erasing the person shreds them all at once.
    pub fn subject_field(self) -> Option<&'static str> {
        match self {
            Entity::Contact | Entity::User | Entity::Request => Some("id"),
            Entity::Consent => Some("contact_id"),
            Entity::Activity | Entity::Order => Some("contact_id"),
            Entity::Company | Entity::Deal => None,
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
