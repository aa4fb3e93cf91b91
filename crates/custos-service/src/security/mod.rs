//! Security monitoring: what watches the use of Custos and answers to abuse.
//! Each detector has a file of its own here; the first is the throttling of
//! failed sign-ins ([`throttle`]).

pub(crate) mod throttle;
