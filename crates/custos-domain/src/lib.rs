//! The domain of Custos: the CRM entities, the data inventory that declares every
//! field, values and their validation, roles and the access policy, and the `Clock`.
//!
//! This crate does no I/O. Everything privacy-related in the other layers (what is
//! sealed, what is searchable, who may see what, what an export holds, what erasure
//! destroys) is derived from [`inventory`].

pub mod clock;
pub mod dsar;
pub mod entity;
pub mod inventory;
pub mod policy;
pub mod processing;
pub mod retention;
pub mod throttle;
pub mod validate;
pub mod value;

pub use clock::{Clock, ManualClock, SystemClock};
pub use entity::Entity;
pub use inventory::{DataCategory, FieldDecl, FieldKind, Protection};
pub use policy::{Grant, Operation, Permissions, ReadLevel, RecordScope, Role};
pub use validate::{FieldError, ValidationContext};
pub use value::{Record, Value};
