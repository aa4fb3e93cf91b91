//! The CRM itself: records (contacts, companies, deals, activities, orders)
//! created, read, listed, changed and deleted through the sealing pipeline of
//! [`crate::vault`]; list parameters, search, the dashboard, CSV import and
//! demo data.

pub(crate) mod dashboard;
pub(crate) mod import;
pub(crate) mod query;
pub(crate) mod records;
pub(crate) mod search;
pub(crate) mod seed;
