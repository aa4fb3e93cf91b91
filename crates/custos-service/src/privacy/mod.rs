//! Data-subject rights and consent: requests with their legal clocks
//! (access, portability, erasure, rectification, restriction, objection, the
//! CCPA opt-outs), the consent ledger, purpose-checked exports, and what a
//! fulfilled request did ([`outcome`]).

pub(crate) mod consent;
pub(crate) mod dsar;
pub(crate) mod holds;
pub(crate) mod minimisation;
pub(crate) mod outcome;
pub(crate) mod policies;
pub(crate) mod processing;
pub(crate) mod retention;
