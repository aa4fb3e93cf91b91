//! The data inventory: a declaration of every field of every entity.
//!
//! A field that is not declared here cannot be stored. The other layers derive
//! from these declarations what is sealed, what is blind-indexed for exact search,
//! who may see a field (permissions are granted per [`DataCategory`]), what a
//! subject-access export contains, what erasure destroys and keeps, what retention
//! purges, and the record of processing.

use crate::entity::Entity;
use serde::Serialize;

/// What kind of information a field holds. Permissions are granted per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// Opaque identifiers and links between records; not personal on their own.
    Identifiers,
    /// Who a person is: names.
    Identity,
    /// How to reach a person: email, phone, postal address.
    ContactDetails,
    /// Money: order totals, deal amounts.
    Financial,
    /// What was said or written to or about a person: notes, call logs, emails.
    Communications,
    /// Labels and segments describing a person's behaviour or preferences.
    Behavioural,
    /// GDPR Art. 9 special categories (health, beliefs, …). None built in; custom
    /// fields may declare it.
    SpecialCategory,
    /// Business data about organisations and opportunities.
    Business,
    /// Secrets that prove identity (password hashes, second factors).
    Credentials,
    /// Bookkeeping: timestamps, owners, states.
    System,
}

impl DataCategory {
    /// Every category, in display order.
    pub const ALL: [DataCategory; 10] = [
        DataCategory::Identifiers,
        DataCategory::Identity,
        DataCategory::ContactDetails,
        DataCategory::Financial,
        DataCategory::Communications,
        DataCategory::Behavioural,
        DataCategory::SpecialCategory,
        DataCategory::Business,
        DataCategory::Credentials,
        DataCategory::System,
    ];

    /// Snake-case name, as used in the API, audit events and role definitions.
    pub fn name(self) -> &'static str {
        match self {
            DataCategory::Identifiers => "identifiers",
            DataCategory::Identity => "identity",
            DataCategory::ContactDetails => "contact_details",
            DataCategory::Financial => "financial",
            DataCategory::Communications => "communications",
            DataCategory::Behavioural => "behavioural",
            DataCategory::SpecialCategory => "special_category",
            DataCategory::Business => "business",
            DataCategory::Credentials => "credentials",
            DataCategory::System => "system",
        }
    }

    /// Whether the category holds personal data about the record's subject.
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            DataCategory::Identity
                | DataCategory::ContactDetails
                | DataCategory::Communications
                | DataCategory::Behavioural
                | DataCategory::SpecialCategory
                | DataCategory::Credentials
        )
    }
}

/// How much harm disclosure would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Not personal, or harmless.
    Low,
    /// Ordinary personal data.
    Medium,
    /// Could cause harm if disclosed (financial, private communications).
    High,
    /// GDPR Art. 9 / secrets.
    Critical,
}

/// Why a field is processed (GDPR Art. 5(1)(b) purpose limitation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Managing the customer relationship and sales.
    SalesRelationship,
    /// Fulfilling and delivering orders.
    OrderFulfilment,
    /// Keeping books as the law requires.
    Accounting,
    /// Answering support requests.
    CustomerSupport,
    /// Running and securing Custos itself (staff accounts).
    ServiceOperation,
    /// Answering data-subject requests and keeping consent records.
    PrivacyCompliance,
}

impl Purpose {
    /// Every purpose, in display order.
    pub const ALL: [Purpose; 6] = [
        Purpose::SalesRelationship,
        Purpose::OrderFulfilment,
        Purpose::Accounting,
        Purpose::CustomerSupport,
        Purpose::ServiceOperation,
        Purpose::PrivacyCompliance,
    ];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::SalesRelationship => "sales_relationship",
            Purpose::OrderFulfilment => "order_fulfilment",
            Purpose::Accounting => "accounting",
            Purpose::CustomerSupport => "customer_support",
            Purpose::ServiceOperation => "service_operation",
            Purpose::PrivacyCompliance => "privacy_compliance",
        }
    }
}

/// The lawful basis of GDPR Art. 6(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b): necessary for a contract with the person.
    Contract,
    /// Art. 6(1)(c): a legal obligation (e.g. keeping accounting records).
    LegalObligation,
    /// Art. 6(1)(f): legitimate interests, balanced against the person's.
    LegitimateInterests,
    /// Not personal data: no basis needed.
    NotApplicable,
}

/// Whose data a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    /// Customers and prospects.
    Customer,
    /// Staff using Custos.
    Staff,
    /// No natural person (organisations, deals).
    None,
}

/// How long a field is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Retention {
    /// Kept while the relationship lasts; removed on erasure.
    WhileRelationship,
    /// Kept for `years` after the timestamp in `anchor` (e.g. orders: two years after
    /// completion), then disposed of as `then` says.
    YearsAfter {
        /// How many years.
        years: u32,
        /// The timestamp field the period runs from.
        anchor: &'static str,
        /// What happens to a record once its period is over.
        then: Disposal,
    },
    /// Kept while the staff account exists.
    WhileAccount,
    /// Kept `years` after the person's last activity (the latest of their
    /// record's last change and the activities logged with them), unless a
    /// deal of theirs is open or an order of theirs is still within its own
    /// period; then the person is erased, as an erasure request erases.
    YearsAfterLastActivity {
        /// How many years.
        years: u32,
    },
}

/// What the retention purge does to a record whose period is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposal {
    /// The whole record is deleted (with its own data key, when it is its
    /// own data subject).
    Delete,
    /// The fields erasure destroys ([`OnErasure::Destroy`]) are cleared and
    /// the rest is kept, e.g. an order's amounts for accounting.
    Anonymise,
    /// The person is erased: their data key is destroyed (crypto-shredding)
    /// and their sealed fields cleared everywhere, exactly as an erasure
    /// request does; what the law keeps stays, anonymised.
    Erase,
}

impl Disposal {
    /// The snake-case name, as in the inventory's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposal::Delete => "delete",
            Disposal::Anonymise => "anonymise",
            Disposal::Erase => "erase",
        }
    }
}

/// What erasure of the subject does to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum OnErasure {
    /// Destroyed (sealed fields: by shredding the subject's key).
    Destroy,
    /// Kept because a legal obligation requires it; the reason is stated to the person.
    Keep {
        /// Why it is kept.
        reason: &'static str,
    },
}

/// How a field is normalised before its blind index is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalizer {
    /// NFKC, trim, lowercase.
    Email,
    /// Digits and a leading `+`.
    Phone,
    /// Each word, lowercased: for name search.
    Tokens,
    /// Each tag of a tag list.
    EachTag,
}

/// How a field is protected at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Protection {
    /// Encrypted with the subject's data key (AES-256-GCM).
    Sealed,
    /// Encrypted, plus a keyed blind index for exact-match search.
    SealedIndexed {
        /// How the value is normalised for the index.
        normalizer: Normalizer,
    },
    /// Stored in the clear, with the reason that is acceptable.
    Plain {
        /// Why this field may be stored unencrypted.
        reason: &'static str,
    },
}

impl Protection {
    /// Whether the value is encrypted at rest.
    pub fn is_sealed(self) -> bool {
        !matches!(self, Protection::Plain { .. })
    }

    /// The blind-index normaliser, if the field is searchable while sealed.
    pub fn normalizer(self) -> Option<Normalizer> {
        match self {
            Protection::SealedIndexed { normalizer } => Some(normalizer),
            _ => None,
        }
    }
}

/// Who the value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From the person themself.
    DataSubject,
    /// Entered by staff.
    Staff,
    /// Set by Custos.
    System,
}

/// The type of a field's value, which drives validation and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    /// A UUID generated by Custos.
    Id,
    /// Free text up to `max` characters.
    Text {
        /// Maximum length in characters.
        max: usize,
        /// Whether line breaks are allowed.
        multiline: bool,
    },
    /// An email address.
    Email,
    /// A phone number (digits, spaces, `+`, `-`, `(`, `)`, `.`).
    Phone,
    /// The id of a record of another entity.
    Ref {
        /// The entity referred to.
        entity: Entity,
    },
    /// One of a fixed list of values.
    Enum {
        /// The allowed values.
        values: &'static [&'static str],
    },
    /// A deal stage, from the configured pipeline.
    Stage,
    /// A decimal amount with at most two decimals, e.g. `"1250.00"`.
    Money,
    /// An ISO 4217 currency code.
    Currency,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 time.
    Timestamp,
    /// A list of short lowercase labels.
    Tags,
    /// True or false.
    Bool,
}

/// Whether a field is set by Custos, required or optional on create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Set by Custos; a client cannot write it.
    System,
    /// Must be given on create and cannot be cleared.
    Required,
    /// May be omitted or cleared with `null`.
    Optional,
}

/// The declaration of one field.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FieldDecl {
    /// The entity the field belongs to.
    pub entity: Entity,
    /// Field name in the API and the database.
    pub name: &'static str,
    /// Human label.
    pub label: &'static str,
    /// Value type.
    pub kind: FieldKind,
    /// Set by Custos, required or optional.
    pub presence: Presence,
    /// What kind of information it is.
    pub category: DataCategory,
    /// How harmful disclosure would be.
    pub sensitivity: Sensitivity,
    /// Why it is processed.
    pub purposes: &'static [Purpose],
    /// GDPR Art. 6 basis.
    pub lawful_basis: LawfulBasis,
    /// Whose data it is.
    pub subject_type: SubjectType,
    /// How long it is kept.
    pub retention: Retention,
    /// What erasure does to it.
    pub on_erasure: OnErasure,
    /// How it is protected at rest.
    pub protection: Protection,
    /// Where it comes from.
    pub source: Source,
    /// Who else receives it (processors, recipients).
    pub recipients: &'static [&'static str],
    /// Whether lists may be sorted by it (plain fields only).
    pub sortable: bool,
    /// What the field is for, shown in the data map and forms.
    pub description: &'static str,
}

const SALES: &[Purpose] = &[Purpose::SalesRelationship];
const SALES_SUPPORT: &[Purpose] = &[Purpose::SalesRelationship, Purpose::CustomerSupport];
const ORDERS: &[Purpose] = &[Purpose::OrderFulfilment, Purpose::Accounting];
const OPERATION: &[Purpose] = &[Purpose::ServiceOperation];
const DSAR: &[Purpose] = &[Purpose::PrivacyCompliance];
const CONSENT: &[Purpose] = &[Purpose::PrivacyCompliance];
const DSAR_RETENTION: Retention = Retention::YearsAfter {
    years: 3,
    anchor: "closed_at",
    then: Disposal::Delete,
};
const ORDER_RETENTION: Retention = Retention::YearsAfter {
    years: 2,
    anchor: "completed_at",
    then: Disposal::Anonymise,
};
const ACTIVITY_RETENTION: Retention = Retention::YearsAfter {
    years: 2,
    anchor: "occurred_at",
    then: Disposal::Delete,
};
/// Contacts: three years after their last activity (see
/// [`Retention::YearsAfterLastActivity`]).
const CONTACT_RETENTION: Retention = Retention::YearsAfterLastActivity { years: 3 };

/// The retention of a field unless declared otherwise: a contact's fields
/// go with the contact; other records are kept while the relationship lasts.
const fn default_retention(entity: Entity) -> Retention {
    match entity {
        Entity::Contact => CONTACT_RETENTION,
        _ => Retention::WhileRelationship,
    }
}
const DSAR_KEEP: &str =
    "kept three years as evidence that the request was answered (GDPR Art. 5(2))";
const CONSENT_KEEP: &str =
    "kept as evidence of the lawful basis of past processing (GDPR Art. 7(1))";
const NONE: &[&str] = &[];

const ID_REASON: &str = "random identifier with no meaning outside Custos";
const TIME_REASON: &str = "bookkeeping time needed for sorting, retention and audit";
const OWNER_REASON: &str = "id of the staff user responsible, needed for access scopes";
const ACCOUNTING_KEEP: &str = "kept for the statutory accounting period (legal obligation); no longer linked to a readable identity";

/// Shorthand for declarations: the common defaults of a field, overridden per field.
const fn base(
    entity: Entity,
    name: &'static str,
    label: &'static str,
    kind: FieldKind,
) -> FieldDecl {
    FieldDecl {
        entity,
        name,
        label,
        kind,
        presence: Presence::Optional,
        category: DataCategory::System,
        sensitivity: Sensitivity::Low,
        purposes: SALES,
        lawful_basis: LawfulBasis::NotApplicable,
        subject_type: SubjectType::None,
        retention: default_retention(entity),
        on_erasure: OnErasure::Destroy,
        protection: Protection::Plain {
            reason: TIME_REASON,
        },
        source: Source::System,
        recipients: NONE,
        sortable: false,
        description: "",
    }
}

const fn id(entity: Entity) -> FieldDecl {
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Identifiers,
        protection: Protection::Plain { reason: ID_REASON },
        description: "Unique id of the record.",
        ..base(entity, "id", "Id", FieldKind::Id)
    }
}

const fn created_at(entity: Entity) -> FieldDecl {
    FieldDecl {
        presence: Presence::System,
        sortable: true,
        description: "When the record was created.",
        ..base(entity, "created_at", "Created", FieldKind::Timestamp)
    }
}

const fn updated_at(entity: Entity) -> FieldDecl {
    FieldDecl {
        presence: Presence::System,
        sortable: true,
        description: "When the record last changed.",
        ..base(entity, "updated_at", "Updated", FieldKind::Timestamp)
    }
}

const fn owner_id(entity: Entity) -> FieldDecl {
    FieldDecl {
        protection: Protection::Plain {
            reason: OWNER_REASON,
        },
        source: Source::Staff,
        description: "The staff user responsible for the record (defaults to its creator).",
        ..base(
            entity,
            "owner_id",
            "Owner",
            FieldKind::Ref {
                entity: Entity::User,
            },
        )
    }
}

const fn reference(
    entity: Entity,
    name: &'static str,
    label: &'static str,
    to: Entity,
) -> FieldDecl {
    FieldDecl {
        category: DataCategory::Identifiers,
        protection: Protection::Plain { reason: ID_REASON },
        source: Source::Staff,
        ..base(entity, name, label, FieldKind::Ref { entity: to })
    }
}

/// Every field of every entity. The order is the display order.
pub static FIELDS: &[FieldDecl] = &[
    // ---- contacts: the data subjects
    id(Entity::Contact),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Identity,
        sensitivity: Sensitivity::Medium,
        purposes: SALES_SUPPORT,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Tokens,
        },
        source: Source::DataSubject,
        description: "Given name.",
        ..base(
            Entity::Contact,
            "first_name",
            "First name",
            FieldKind::Text {
                max: 100,
                multiline: false,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Identity,
        sensitivity: Sensitivity::Medium,
        purposes: SALES_SUPPORT,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Tokens,
        },
        source: Source::DataSubject,
        description: "Family name.",
        ..base(
            Entity::Contact,
            "last_name",
            "Last name",
            FieldKind::Text {
                max: 100,
                multiline: false,
            },
        )
    },
    FieldDecl {
        category: DataCategory::ContactDetails,
        sensitivity: Sensitivity::Medium,
        purposes: SALES_SUPPORT,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Email,
        },
        source: Source::DataSubject,
        description: "Email address; searchable by exact match.",
        ..base(Entity::Contact, "email", "Email", FieldKind::Email)
    },
    FieldDecl {
        category: DataCategory::ContactDetails,
        sensitivity: Sensitivity::Medium,
        purposes: SALES_SUPPORT,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Phone,
        },
        source: Source::DataSubject,
        description: "Phone number; searchable by exact match.",
        ..base(Entity::Contact, "phone", "Phone", FieldKind::Phone)
    },
    reference(Entity::Contact, "company_id", "Company", Entity::Company),
    owner_id(Entity::Contact),
    FieldDecl {
        category: DataCategory::Behavioural,
        sensitivity: Sensitivity::Medium,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::EachTag,
        },
        source: Source::Staff,
        description: "Short labels for segmenting contacts (lowercase letters, digits and dashes).",
        ..base(Entity::Contact, "tags", "Tags", FieldKind::Tags)
    },
    created_at(Entity::Contact),
    updated_at(Entity::Contact),
    // ---- companies: organisations, not natural persons
    id(Entity::Company),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "name of an organisation, not of a natural person",
        },
        source: Source::Staff,
        sortable: true,
        description: "Legal or trading name of the organisation.",
        ..base(
            Entity::Company,
            "name",
            "Name",
            FieldKind::Text {
                max: 200,
                multiline: false,
            },
        )
    },
    FieldDecl {
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "public web domain of an organisation",
        },
        source: Source::Staff,
        sortable: true,
        description: "Web domain, e.g. example.com.",
        ..base(
            Entity::Company,
            "domain",
            "Domain",
            FieldKind::Text {
                max: 253,
                multiline: false,
            },
        )
    },
    owner_id(Entity::Company),
    created_at(Entity::Company),
    updated_at(Entity::Company),
    // ---- deals: opportunities with organisations
    id(Entity::Deal),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "describes a commercial opportunity; staff are told not to put personal details in it",
        },
        source: Source::Staff,
        sortable: true,
        description: "What is being sold (do not put personal details here).",
        ..base(
            Entity::Deal,
            "title",
            "Title",
            FieldKind::Text {
                max: 200,
                multiline: false,
            },
        )
    },
    reference(Entity::Deal, "company_id", "Company", Entity::Company),
    reference(Entity::Deal, "contact_id", "Contact", Entity::Contact),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "pipeline stage of a business opportunity",
        },
        source: Source::Staff,
        sortable: true,
        description: "Pipeline stage.",
        ..base(Entity::Deal, "stage", "Stage", FieldKind::Stage)
    },
    FieldDecl {
        category: DataCategory::Financial,
        protection: Protection::Plain {
            reason: "value of a business opportunity, needed for pipeline totals",
        },
        source: Source::Staff,
        sortable: true,
        description: "Expected value, a decimal string such as \"1250.00\".",
        ..base(Entity::Deal, "amount", "Amount", FieldKind::Money)
    },
    FieldDecl {
        category: DataCategory::Financial,
        protection: Protection::Plain {
            reason: "currency code of an amount",
        },
        source: Source::Staff,
        description: "ISO 4217 code, e.g. EUR.",
        ..base(Entity::Deal, "currency", "Currency", FieldKind::Currency)
    },
    FieldDecl {
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "forecast date of a business opportunity",
        },
        source: Source::Staff,
        sortable: true,
        description: "Expected or actual close date.",
        ..base(Entity::Deal, "close_date", "Close date", FieldKind::Date)
    },
    owner_id(Entity::Deal),
    created_at(Entity::Deal),
    updated_at(Entity::Deal),
    // ---- activities: what happened with a contact, kept two years
    id(Entity::Activity),
    FieldDecl {
        presence: Presence::Required,
        retention: ACTIVITY_RETENTION,
        ..reference(Entity::Activity, "contact_id", "Contact", Entity::Contact)
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Business,
        protection: Protection::Plain {
            reason: "type of interaction, says nothing about its content",
        },
        source: Source::Staff,
        sortable: true,
        description: "note, call, email, meeting or task.",
        retention: ACTIVITY_RETENTION,
        ..base(
            Entity::Activity,
            "kind",
            "Kind",
            FieldKind::Enum {
                values: &["note", "call", "email", "meeting", "task"],
            },
        )
    },
    FieldDecl {
        category: DataCategory::Communications,
        sensitivity: Sensitivity::High,
        purposes: SALES_SUPPORT,
        lawful_basis: LawfulBasis::LegitimateInterests,
        subject_type: SubjectType::Customer,
        protection: Protection::Sealed,
        source: Source::Staff,
        description: "What was said or needs doing.",
        retention: ACTIVITY_RETENTION,
        ..base(
            Entity::Activity,
            "body",
            "Details",
            FieldKind::Text {
                max: 10_000,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        source: Source::Staff,
        sortable: true,
        description: "When it happened (or is planned).",
        retention: ACTIVITY_RETENTION,
        ..base(
            Entity::Activity,
            "occurred_at",
            "When",
            FieldKind::Timestamp,
        )
    },
    FieldDecl {
        source: Source::Staff,
        sortable: true,
        description: "For tasks: when it is due.",
        retention: ACTIVITY_RETENTION,
        ..base(Entity::Activity, "due_at", "Due", FieldKind::Timestamp)
    },
    FieldDecl {
        source: Source::Staff,
        description: "For tasks: whether it is done.",
        retention: ACTIVITY_RETENTION,
        ..base(Entity::Activity, "done", "Done", FieldKind::Bool)
    },
    owner_id(Entity::Activity),
    created_at(Entity::Activity),
    updated_at(Entity::Activity),
    // ---- orders: purchases, kept two years after completion for accounting
    id(Entity::Order),
    FieldDecl {
        presence: Presence::Required,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        ..reference(Entity::Order, "contact_id", "Contact", Entity::Contact)
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Business,
        purposes: ORDERS,
        lawful_basis: LawfulBasis::Contract,
        retention: ORDER_RETENTION,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        protection: Protection::Plain {
            reason: "state of an order, needed for fulfilment and accounting",
        },
        source: Source::Staff,
        sortable: true,
        description: "pending, paid, shipped, completed, cancelled or refunded.",
        ..base(
            Entity::Order,
            "status",
            "Status",
            FieldKind::Enum {
                values: &[
                    "pending",
                    "paid",
                    "shipped",
                    "completed",
                    "cancelled",
                    "refunded",
                ],
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Financial,
        sensitivity: Sensitivity::Medium,
        purposes: ORDERS,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: ORDER_RETENTION,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        protection: Protection::Plain {
            reason: "amount of a sale kept for accounting; on its own it does not identify anyone",
        },
        source: Source::Staff,
        recipients: &["accountants", "tax authority"],
        sortable: true,
        description: "Order total, a decimal string such as \"99.90\".",
        ..base(Entity::Order, "total", "Total", FieldKind::Money)
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Financial,
        purposes: ORDERS,
        lawful_basis: LawfulBasis::LegalObligation,
        retention: ORDER_RETENTION,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        protection: Protection::Plain {
            reason: "currency code of an amount",
        },
        source: Source::Staff,
        description: "ISO 4217 code, e.g. EUR.",
        ..base(Entity::Order, "currency", "Currency", FieldKind::Currency)
    },
    FieldDecl {
        category: DataCategory::ContactDetails,
        sensitivity: Sensitivity::Medium,
        purposes: &[Purpose::OrderFulfilment],
        lawful_basis: LawfulBasis::Contract,
        subject_type: SubjectType::Customer,
        retention: ORDER_RETENTION,
        protection: Protection::Sealed,
        source: Source::DataSubject,
        recipients: &["shipping carrier"],
        description: "Where the order is delivered.",
        ..base(
            Entity::Order,
            "shipping_address",
            "Shipping address",
            FieldKind::Text {
                max: 500,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        purposes: ORDERS,
        lawful_basis: LawfulBasis::LegalObligation,
        retention: ORDER_RETENTION,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        source: Source::Staff,
        sortable: true,
        description: "When the order was placed.",
        ..base(Entity::Order, "placed_at", "Placed", FieldKind::Timestamp)
    },
    FieldDecl {
        purposes: ORDERS,
        lawful_basis: LawfulBasis::LegalObligation,
        retention: ORDER_RETENTION,
        on_erasure: OnErasure::Keep {
            reason: ACCOUNTING_KEEP,
        },
        source: Source::Staff,
        sortable: true,
        description: "When the order was completed; the retention period runs from here.",
        ..base(
            Entity::Order,
            "completed_at",
            "Completed",
            FieldKind::Timestamp,
        )
    },
    owner_id(Entity::Order),
    created_at(Entity::Order),
    updated_at(Entity::Order),
    // ---- users: staff accounts (staff are data subjects too)
    id(Entity::User),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::ContactDetails,
        sensitivity: Sensitivity::Medium,
        purposes: OPERATION,
        lawful_basis: LawfulBasis::Contract,
        subject_type: SubjectType::Staff,
        retention: Retention::WhileAccount,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Email,
        },
        source: Source::Staff,
        description: "Sign-in email of the staff member.",
        ..base(Entity::User, "email", "Email", FieldKind::Email)
    },
    FieldDecl {
        category: DataCategory::Identity,
        sensitivity: Sensitivity::Medium,
        purposes: OPERATION,
        lawful_basis: LawfulBasis::Contract,
        subject_type: SubjectType::Staff,
        retention: Retention::WhileAccount,
        protection: Protection::Sealed,
        source: Source::Staff,
        description: "Name shown to colleagues.",
        ..base(
            Entity::User,
            "display_name",
            "Name",
            FieldKind::Text {
                max: 100,
                multiline: false,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        purposes: OPERATION,
        retention: Retention::WhileAccount,
        protection: Protection::Plain {
            reason: "access-control role, not personal",
        },
        sortable: true,
        description: "Role that decides what the user may do: a built-in role (admin, manager, sales, support, privacy_officer, auditor) or one an administrator defined.",
        ..base(
            Entity::User,
            "role",
            "Role",
            FieldKind::Text {
                max: 40,
                multiline: false,
            },
        )
    },
    FieldDecl {
        purposes: OPERATION,
        retention: Retention::WhileAccount,
        protection: Protection::Plain {
            reason: "name of an organisational unit, needed for team-scoped access; not about the person",
        },
        sortable: true,
        description: "Team the user belongs to; roles scoped to a team see the records owned by its members.",
        ..base(
            Entity::User,
            "team",
            "Team",
            FieldKind::Text {
                max: 60,
                multiline: false,
            },
        )
    },
    FieldDecl {
        purposes: OPERATION,
        retention: Retention::WhileAccount,
        protection: Protection::Plain {
            reason: "account state",
        },
        description: "Whether the account may sign in.",
        ..base(Entity::User, "disabled", "Disabled", FieldKind::Bool)
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Credentials,
        sensitivity: Sensitivity::Critical,
        purposes: OPERATION,
        lawful_basis: LawfulBasis::Contract,
        subject_type: SubjectType::Staff,
        retention: Retention::WhileAccount,
        protection: Protection::Sealed,
        source: Source::Staff,
        description: "Argon2id hash of the password (sealed as well, so a database copy alone cannot be attacked offline).",
        ..base(
            Entity::User,
            "password_hash",
            "Password hash",
            FieldKind::Text {
                max: 512,
                multiline: false,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Credentials,
        sensitivity: Sensitivity::Critical,
        purposes: OPERATION,
        lawful_basis: LawfulBasis::Contract,
        subject_type: SubjectType::Staff,
        retention: Retention::WhileAccount,
        protection: Protection::Sealed,
        source: Source::System,
        description: "Shared secret of the user's authenticator app (RFC 6238 TOTP), sealed; set once enrolment is confirmed.",
        ..base(
            Entity::User,
            "totp_secret",
            "Authenticator secret",
            FieldKind::Text {
                max: 200,
                multiline: false,
            },
        )
    },
    created_at(Entity::User),
    updated_at(Entity::User),
    // ---- data-subject requests: kept three years after closing, as evidence
    // that the organisation answered (GDPR Art. 5(2) accountability)
    id(Entity::Request),
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        protection: Protection::Plain {
            reason: "type of request, says nothing about the person",
        },
        source: Source::DataSubject,
        sortable: true,
        description: "What the person asks for.",
        ..base(
            Entity::Request,
            "kind",
            "Kind",
            FieldKind::Enum {
                values: &crate::dsar::KINDS,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        protection: Protection::Plain {
            reason: "which law applies",
        },
        source: Source::DataSubject,
        description: "gdpr or ccpa.",
        ..base(
            Entity::Request,
            "regime",
            "Regime",
            FieldKind::Enum {
                values: &["gdpr", "ccpa"],
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        protection: Protection::Plain {
            reason: "workflow state",
        },
        sortable: true,
        description: "received, verified, fulfilled or rejected.",
        ..base(
            Entity::Request,
            "state",
            "State",
            FieldKind::Enum {
                values: &crate::dsar::STATES,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        protection: Protection::Plain {
            reason: "how the request arrived",
        },
        description: "api, staff or portal.",
        ..base(
            Entity::Request,
            "channel",
            "Channel",
            FieldKind::Enum {
                values: &["api", "staff", "portal"],
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::ContactDetails,
        sensitivity: Sensitivity::Medium,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::SealedIndexed {
            normalizer: Normalizer::Email,
        },
        source: Source::DataSubject,
        description: "Email the person gave to be reached about the request.",
        ..base(
            Entity::Request,
            "requester_email",
            "Requester email",
            FieldKind::Email,
        )
    },
    FieldDecl {
        category: DataCategory::Communications,
        sensitivity: Sensitivity::Medium,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::Sealed,
        source: Source::DataSubject,
        description: "What the person wrote, and for rectification the corrected values (JSON).",
        ..base(
            Entity::Request,
            "details",
            "Details",
            FieldKind::Text {
                max: 10_000,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        retention: DSAR_RETENTION,
        description: "The contact the request was matched to.",
        ..reference(Entity::Request, "contact_id", "Contact", Entity::Contact)
    },
    FieldDecl {
        presence: Presence::System,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        sortable: true,
        description: "When the request arrived; the legal clock starts here.",
        ..base(
            Entity::Request,
            "received_at",
            "Received",
            FieldKind::Timestamp,
        )
    },
    FieldDecl {
        presence: Presence::System,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        sortable: true,
        description: "The legal due date (after any extension).",
        ..base(Entity::Request, "due_at", "Due", FieldKind::Timestamp)
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Communications,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::Sealed,
        source: Source::Staff,
        description: "Why the due date was extended.",
        ..base(
            Entity::Request,
            "extension_reason",
            "Extension reason",
            FieldKind::Text {
                max: 2_000,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        protection: Protection::Plain {
            reason: "how identity was checked, not the evidence itself",
        },
        description: "none, code or operator_attested.",
        ..base(
            Entity::Request,
            "verification",
            "Verification",
            FieldKind::Enum {
                values: &["none", "code", "operator_attested"],
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        description: "When identity was verified.",
        ..base(
            Entity::Request,
            "verified_at",
            "Verified",
            FieldKind::Timestamp,
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Communications,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::Sealed,
        source: Source::Staff,
        description: "The operator's reason for attesting the requester's identity.",
        ..base(
            Entity::Request,
            "verification_reason",
            "Verification reason",
            FieldKind::Text {
                max: 2_000,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Credentials,
        sensitivity: Sensitivity::Critical,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::Sealed,
        description: "Hashes of the one-time verification code and the status-link token; the code itself while it is live, for the operator to send the person; the count of wrong codes.",
        ..base(
            Entity::Request,
            "secrets",
            "Secrets",
            FieldKind::Text {
                max: 500,
                multiline: false,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        category: DataCategory::Communications,
        purposes: DSAR,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        retention: DSAR_RETENTION,
        protection: Protection::Sealed,
        source: Source::System,
        description: "What was done, what was kept and why (the reply).",
        ..base(
            Entity::Request,
            "result",
            "Result",
            FieldKind::Text {
                max: 100_000,
                multiline: true,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        purposes: DSAR,
        retention: DSAR_RETENTION,
        on_erasure: OnErasure::Keep { reason: DSAR_KEEP },
        sortable: true,
        description: "When the request was closed.",
        ..base(Entity::Request, "closed_at", "Closed", FieldKind::Timestamp)
    },
    created_at(Entity::Request),
    updated_at(Entity::Request),
    // ---- the consent ledger: entries are only ever added
    id(Entity::Consent),
    FieldDecl {
        presence: Presence::Required,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        ..reference(Entity::Consent, "contact_id", "Contact", Entity::Contact)
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::System,
        purposes: CONSENT,
        lawful_basis: LawfulBasis::LegalObligation,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        protection: Protection::Plain {
            reason: "name of a processing purpose",
        },
        sortable: true,
        description: "The purpose consented to.",
        ..base(
            Entity::Consent,
            "purpose",
            "Purpose",
            FieldKind::Enum {
                values: &crate::dsar::CONSENT_PURPOSES,
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::Behavioural,
        sensitivity: Sensitivity::Medium,
        purposes: CONSENT,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        protection: Protection::Sealed,
        source: Source::DataSubject,
        description: "given or withdrawn.",
        ..base(
            Entity::Consent,
            "state",
            "State",
            FieldKind::Enum {
                values: &["given", "withdrawn"],
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::System,
        purposes: CONSENT,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        protection: Protection::Plain {
            reason: "how consent was recorded",
        },
        source: Source::System,
        description: "form, import, api, portal, gpc, staff or dsar.",
        ..base(
            Entity::Consent,
            "method",
            "Method",
            FieldKind::Enum {
                values: &["form", "import", "api", "portal", "gpc", "staff", "dsar"],
            },
        )
    },
    FieldDecl {
        presence: Presence::Required,
        category: DataCategory::System,
        purposes: CONSENT,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        protection: Protection::Plain {
            reason: "version label of the notice text shown",
        },
        source: Source::System,
        description: "Version of the privacy notice the person saw.",
        ..base(
            Entity::Consent,
            "notice_version",
            "Notice version",
            FieldKind::Text {
                max: 50,
                multiline: false,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        protection: Protection::Plain {
            reason: OWNER_REASON,
        },
        description: "The staff user who recorded it (empty when the person did it).",
        ..base(
            Entity::Consent,
            "recorded_by",
            "Recorded by",
            FieldKind::Ref {
                entity: Entity::User,
            },
        )
    },
    FieldDecl {
        presence: Presence::System,
        purposes: CONSENT,
        on_erasure: OnErasure::Keep {
            reason: CONSENT_KEEP,
        },
        sortable: true,
        description: "When it was given or withdrawn.",
        ..base(
            Entity::Consent,
            "recorded_at",
            "Recorded",
            FieldKind::Timestamp,
        )
    },
    FieldDecl {
        category: DataCategory::Behavioural,
        sensitivity: Sensitivity::Medium,
        purposes: CONSENT,
        lawful_basis: LawfulBasis::LegalObligation,
        subject_type: SubjectType::Customer,
        protection: Protection::Sealed,
        source: Source::DataSubject,
        description: "Evidence: the form text, the signal received (e.g. Sec-GPC: 1), the client address.",
        ..base(
            Entity::Consent,
            "evidence",
            "Evidence",
            FieldKind::Text {
                max: 2_000,
                multiline: true,
            },
        )
    },
    created_at(Entity::Consent),
    updated_at(Entity::Consent),
];

/// All fields of one entity, in display order.
pub fn fields(entity: Entity) -> impl Iterator<Item = &'static FieldDecl> {
    FIELDS.iter().filter(move |f| f.entity == entity)
}

/// One field, if declared.
pub fn field(entity: Entity, name: &str) -> Option<&'static FieldDecl> {
    FIELDS.iter().find(|f| f.entity == entity && f.name == name)
}

/// Fields of the entity that are sealed at rest.
pub fn sealed_fields(entity: Entity) -> impl Iterator<Item = &'static FieldDecl> {
    fields(entity).filter(|f| f.protection.is_sealed())
}

/// Fields of the entity stored in the clear.
pub fn plain_fields(entity: Entity) -> impl Iterator<Item = &'static FieldDecl> {
    fields(entity).filter(|f| !f.protection.is_sealed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_entity_has_id_and_timestamps_and_unique_names() {
        for e in Entity::ALL {
            let names: Vec<_> = fields(e).map(|f| f.name).collect();
            let unique: HashSet<_> = names.iter().collect();
            assert_eq!(names.len(), unique.len(), "duplicate field in {e}");
            for required in ["id", "created_at", "updated_at"] {
                assert!(names.contains(&required), "{e} lacks {required}");
            }
        }
    }

    #[test]
    fn personal_categories_are_sealed_and_plain_fields_give_a_reason() {
        for f in FIELDS {
            if f.category.is_personal() {
                assert!(
                    f.protection.is_sealed(),
                    "{}.{} is personal but plain",
                    f.entity,
                    f.name
                );
            }
            if let Protection::Plain { reason } = f.protection {
                assert!(
                    reason.len() > 10,
                    "{}.{} needs a real reason",
                    f.entity,
                    f.name
                );
            }
            if f.protection.is_sealed() {
                assert!(
                    f.entity.subject_field().is_some(),
                    "{}.{} is sealed but the entity has no subject whose key seals it",
                    f.entity,
                    f.name
                );
                assert!(
                    !f.sortable,
                    "sealed field {}.{} cannot be sorted",
                    f.entity, f.name
                );
            }
        }
    }

    /// The store finds a subject's blind-index entries by record id when the
    /// subject is erased (there is no index by subject): that holds only
    /// while every blind-indexed field belongs to a record that is its own
    /// subject.
    #[test]
    fn blind_indexed_fields_belong_to_records_that_are_their_own_subject() {
        let mut indexed = 0;
        for f in FIELDS {
            if matches!(f.protection, Protection::SealedIndexed { .. }) {
                indexed += 1;
                assert_eq!(
                    f.entity.subject_field(),
                    Some("id"),
                    "{}.{} is blind-indexed, but its record is not its own subject",
                    f.entity,
                    f.name
                );
            }
        }
        assert!(indexed > 0);
    }

    #[test]
    fn references_and_retention_anchors_name_real_fields() {
        for f in FIELDS {
            if let Retention::YearsAfter { anchor, .. } = f.retention {
                let a = field(f.entity, anchor).expect("anchor declared");
                assert_eq!(a.kind, FieldKind::Timestamp);
            }
            if let Some(s) = f.entity.subject_field() {
                assert!(field(f.entity, s).is_some());
            }
        }
    }
}
