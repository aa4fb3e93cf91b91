//! The verifier's in-place canonical check must agree with the full decoder:
//! it accepts every encoded event, and any bytes it accepts the decoder
//! accepts too (it may only be faster, never weaker).
#![allow(clippy::unwrap_used)]

use custos_ledger::event::AuditEvent;
use proptest::prelude::*;

/// Text drawn from characters that matter to the encoding: quotes,
/// backslashes, controls, bidi marks, non-ASCII, plain letters.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just('"'),
            Just('\\'),
            Just('/'),
            Just('\n'),
            Just('\u{7f}'),
            Just('\u{202e}'),
            Just('é'),
            Just('字'),
            Just(' '),
            Just(':'),
        ],
        0..6,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn event() -> impl Strategy<Value = AuditEvent> {
    (
        opt_text(),
        opt_text(),
        proptest::collection::vec(text(), 0..4),
        opt_text(),
        proptest::option::of(prop_oneof![
            Just("127.0.0.1".to_string()),
            Just("::1".to_string()),
            Just("0:0:0:0:0:0:0:1".to_string()),
        ]),
        opt_text(),
        text(),
    )
        .prop_map(
            |(subject_id, record, categories, purpose, client, detail, action)| AuditEvent {
                v: 1,
                time: "2026-11-30T02:13:25.123Z".into(),
                actor: "cli".into(),
                action: if action.is_empty() {
                    "contact.read".into()
                } else {
                    action
                },
                subject_id,
                record,
                categories,
                purpose,
                outcome: "success".into(),
                client,
                request_id: None,
                detail,
            },
        )
}

proptest! {
    #[test]
    fn every_encoded_event_passes_and_nothing_the_decoder_refuses_does(
        e in event(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        if let Ok(bytes) = e.encode() {
            prop_assert!(AuditEvent::check_canonical(&bytes).is_ok());
            let mut changed = bytes.clone();
            let i = at.index(changed.len());
            changed[i] = byte;
            prop_assert_eq!(
                AuditEvent::check_canonical(&changed).is_ok(),
                AuditEvent::decode(&changed).is_ok()
            );
            let mut shorter = bytes.clone();
            shorter.remove(i);
            prop_assert_eq!(
                AuditEvent::check_canonical(&shorter).is_ok(),
                AuditEvent::decode(&shorter).is_ok()
            );
        }
    }
}

#[test]
fn spellings_the_decoder_refuses_are_refused() {
    let good = br#"{"v":1,"time":"2026-11-30T02:13:25.123Z","actor":"cli","action":"a","subject_id":null,"record":null,"categories":["a","b"],"purpose":null,"outcome":"success","client":null,"request_id":null,"detail":"x\"y\\z"}"#;
    assert!(AuditEvent::check_canonical(good).is_ok());
    let good = std::str::from_utf8(good).unwrap();
    for bad in [
        good.replace(r#"["a","b"]"#, r#"["b","a"]"#),
        good.replace(r#"["a","b"]"#, r#"["a","a"]"#),
        good.replace(r#""x\"y"#, r#""x\u0022y"#),
        good.replace(r#""x\"y"#, r#""x\/y"#),
        good.replace("\"v\":1", "\"v\":1.0"),
        good.replace(",\"detail\"", ", \"detail\""),
        format!("{good} "),
        good.replace("\"success\"", "\"maybe\""),
    ] {
        assert!(
            AuditEvent::check_canonical(bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
}
