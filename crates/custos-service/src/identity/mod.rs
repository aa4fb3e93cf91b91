//! Who is calling and what they may do: staff accounts, sign-in, sessions,
//! API tokens, passwords, second factors (TOTP, WebAuthn), invitations and
//! roles, and the [`principal::Principal`] every use case is given.

pub(crate) mod guards;
pub(crate) mod invite;
pub(crate) mod mfa;
pub(crate) mod passwords;
pub(crate) mod principal;
pub(crate) mod roles;
pub(crate) mod sessions;
pub(crate) mod tokens;
pub(crate) mod users;

/// A time in milliseconds since the epoch as RFC 3339 text (empty if out of range).
pub(crate) fn ms_text(ms: i64) -> String {
    custos_domain::value::from_unix_ms(ms)
        .map(custos_domain::value::format_timestamp)
        .unwrap_or_default()
}
