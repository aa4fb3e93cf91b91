//! The key hierarchy and everything that seals or opens personal data: the
//! master keyring, subject data keys and their cache ([`keys`]), key
//! rotation, backups and crypto-shredding ([`keyops`]), and the sealing and
//! opening of records ([`seal`]), and finding records by a sealed value
//! ([`lookup`]).

pub(crate) mod keyops;
pub(crate) mod keys;
pub(crate) mod lookup;
pub(crate) mod seal;
