//! The list of common passwords new passwords are checked against (NIST SP
//! 800-63B 5.1.1.2: refuse values known to be commonly used). Shipped as data
//! in `data/common-passwords.txt` and compiled in; see `data/README.md`.

use std::collections::HashSet;
use std::sync::LazyLock;

static LIST: &str = include_str!("../data/common-passwords.txt");

static SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// How many passwords the shipped list holds.
pub fn common_password_count() -> usize {
    SET.len()
}

/// Whether `password` (compared case-insensitively, surrounding spaces ignored)
/// is on the list of common passwords.
pub fn is_common_password(password: &str) -> bool {
    let p = password.trim().to_lowercase();
    SET.contains(p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_ten_thousand_entries_and_finds_long_ones() {
        assert_eq!(common_password_count(), 10_000);
        assert!(is_common_password("password"));
        assert!(is_common_password("PassWord"));
        // Long entries matter: shorter ones are refused by length anyway.
        let long: Vec<&str> = LIST.lines().filter(|l| l.chars().count() >= 12).collect();
        assert!(!long.is_empty());
        for p in long {
            assert!(is_common_password(p), "{p}");
        }
        assert!(!is_common_password("correct horse battery staple"));
    }
}
