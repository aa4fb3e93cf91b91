//! Helpers shared by the integration tests that include `mod common;`.

pub mod browser;
pub mod serve;
pub mod ui;
