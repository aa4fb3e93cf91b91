//! Canonical forms of values before they are blind-indexed, so that inputs a person
//! would call equal ("Alice@Example.com" and "alice@example.com ") index equally.
//!
//! NFKC folds compatibility characters (full-width letters and digits, ligatures,
//! non-breaking and ideographic spaces) into their plain forms first, so what looks
//! the same on screen matches.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// NFKC of `s`.
fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// An email address: NFKC, trimmed, lowercased.
///
/// The whole address is lowercased, local part included: providers that treat the
/// local part case-sensitively are vanishingly rare, and a missed duplicate costs more.
pub fn email(s: &str) -> String {
    nfkc(s).trim().to_lowercase()
}

/// A phone number: NFKC, then only the ASCII digits, with a `+` kept if the number
/// starts with one (so "+44 20 7946 0000" and "+44 (20) 7946-0000" match).
///
/// No digits at all gives an empty string, so a lone "+" never becomes an index value.
pub fn phone(s: &str) -> String {
    let folded = nfkc(s);
    let folded = folded.trim_start();
    let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        String::new()
    } else if folded.starts_with('+') {
        format!("+{digits}")
    } else {
        digits
    }
}

/// Free text (a name, a city): NFKC, lowercased, trimmed, inner runs of whitespace
/// collapsed to one space.
pub fn text(s: &str) -> String {
    nfkc(s)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distinct words of `s`, for indexing each word: [`text`], then split on every
/// character that is not alphanumeric, empty pieces dropped, duplicates removed keeping
/// the first occurrence's position.
pub fn tokens(s: &str) -> Vec<String> {
    let normalized = text(s);
    let mut seen = HashSet::new();
    normalized
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .filter(|t| seen.insert(*t))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_cases() {
        // U+FF21 FULLWIDTH LATIN CAPITAL LETTER A folds to "A" under NFKC.
        assert_eq!(email("  \u{FF21}lice@Example.COM "), "alice@example.com");
        assert_eq!(email("  Ａlice@Example.COM "), "alice@example.com");
        // Ideographic space (U+3000) and no-break space (U+00A0) are trimmed too.
        assert_eq!(email("\u{3000}bob@example.org\u{00A0}"), "bob@example.org");
        assert_eq!(email("ÉLODIE@exemple.fr"), "élodie@exemple.fr");
        // Decomposed e + combining acute composes to the same string as precomposed.
        assert_eq!(email("e\u{0301}@x.fr"), email("\u{00E9}@x.fr"));
        assert_eq!(email(""), "");
    }

    #[test]
    fn phone_cases() {
        assert_eq!(phone("+44 (20) 7946-0000"), "+442079460000");
        assert_eq!(phone(" +1.555.010.9999 "), "+15550109999");
        assert_eq!(phone("020 7946 0000"), "02079460000");
        // Full-width digits and plus sign fold to ASCII.
        assert_eq!(phone("＋８１ ３－１２３４"), "+8131234");
        // A '+' that is not leading is dropped with the other punctuation.
        assert_eq!(phone("00+44 1"), "00441");
        assert_eq!(phone("+"), "");
        assert_eq!(phone("n/a"), "");
        // Non-ASCII digits (Arabic-Indic) are not ASCII digits and are dropped.
        assert_eq!(phone("٣1"), "1");
    }

    #[test]
    fn text_cases() {
        assert_eq!(text("  Jean   Dupont\t\n"), "jean dupont");
        assert_eq!(text("ＭÜLLER\u{3000}Straße"), "müller straße");
        assert_eq!(text("ﬁne"), "fine"); // the fi ligature folds to two letters
        assert_eq!(text("   "), "");
    }

    #[test]
    fn tokens_cases() {
        assert_eq!(
            tokens("Jean-Pierre  O'Neil, jean"),
            vec!["jean", "pierre", "o", "neil"]
        );
        assert_eq!(tokens("  Ｓmith  smith SMITH "), vec!["smith"]);
        assert_eq!(
            tokens("42 rue du Bac, 75007 Paris"),
            vec!["42", "rue", "du", "bac", "75007", "paris"]
        );
        assert_eq!(tokens("--- ,,,"), Vec::<String>::new());
        assert_eq!(tokens("Zoë Ångström"), vec!["zoë", "ångström"]);
    }
}
