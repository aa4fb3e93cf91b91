//! The canonical event encoding: round trips, and refusal of every other
//! spelling of the same event.
#![allow(clippy::unwrap_used)]

use custos_ledger::event::{AuditEvent, EventError, MAX_FIELD_BYTES};

fn sample() -> AuditEvent {
    AuditEvent {
        v: 1,
        time: "2026-11-30T02:13:25.123Z".into(),
        actor: "user:0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5".into(),
        action: "contact.read".into(),
        subject_id: Some("0192f0c1-0000-7000-8000-000000000001".into()),
        record: Some("contact:0192f0c1-0000-7000-8000-000000000002".into()),
        categories: vec!["identity".into(), "contact_details".into()],
        purpose: Some("customer_service".into()),
        outcome: "success".into(),
        client: Some("192.0.2.7".into()),
        request_id: Some("req-81f2".into()),
        detail: Some("fields=first_name,email".into()),
    }
}

const SAMPLE_BYTES: &str = concat!(
    r#"{"v":1,"time":"2026-11-30T02:13:25.123Z","#,
    r#""actor":"user:0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5","action":"contact.read","#,
    r#""subject_id":"0192f0c1-0000-7000-8000-000000000001","#,
    r#""record":"contact:0192f0c1-0000-7000-8000-000000000002","#,
    r#""categories":["contact_details","identity"],"purpose":"customer_service","#,
    r#""outcome":"success","client":"192.0.2.7","request_id":"req-81f2","#,
    r#""detail":"fields=first_name,email"}"#
);

#[test]
fn encoding_is_the_documented_canonical_json() {
    let bytes = sample().encode().unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), SAMPLE_BYTES);
}

#[test]
fn round_trip() {
    let event = sample();
    let decoded = AuditEvent::decode(&event.encode().unwrap()).unwrap();
    // Decoding yields the normal form: categories sorted.
    let mut normal = event;
    normal.categories.sort();
    assert_eq!(decoded, normal);
    assert_eq!(decoded.encode().unwrap(), SAMPLE_BYTES.as_bytes());
}

#[test]
fn absent_values_are_null_so_every_leaf_has_every_key() {
    let event = AuditEvent {
        v: 1,
        time: "2026-01-01T00:00:00.000Z".into(),
        actor: "anonymous".into(),
        action: "auth.login".into(),
        subject_id: None,
        record: None,
        categories: vec![],
        purpose: None,
        outcome: "denied".into(),
        client: Some("2001:db8::1".into()),
        request_id: None,
        detail: None,
    };
    let bytes = event.encode().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        concat!(
            r#"{"v":1,"time":"2026-01-01T00:00:00.000Z","actor":"anonymous","action":"auth.login","#,
            r#""subject_id":null,"record":null,"categories":[],"purpose":null,"outcome":"denied","#,
            r#""client":"2001:db8::1","request_id":null,"detail":null}"#
        )
    );
    assert_eq!(AuditEvent::decode(&bytes).unwrap(), event);
}

#[test]
fn categories_are_sorted_and_deduplicated() {
    let mut a = sample();
    a.categories = vec!["b".into(), "a".into(), "b".into()];
    let mut b = sample();
    b.categories = vec!["a".into(), "b".into()];
    assert_eq!(a.encode().unwrap(), b.encode().unwrap());
}

#[test]
fn non_canonical_spellings_are_refused() {
    let canonical = SAMPLE_BYTES;
    let variants = [
        // Whitespace.
        canonical.replacen(r#""v":1"#, r#""v": 1"#, 1),
        format!("{canonical}\n"),
        format!(" {canonical}"),
        // Reordered keys.
        canonical.replacen(
            r#"{"v":1,"time":"2026-11-30T02:13:25.123Z","#,
            r#"{"time":"2026-11-30T02:13:25.123Z","v":1,"#,
            1,
        ),
        // Unsorted categories.
        canonical.replacen(
            r#"["contact_details","identity"]"#,
            r#"["identity","contact_details"]"#,
            1,
        ),
        // Duplicated category.
        canonical.replacen(
            r#"["contact_details","identity"]"#,
            r#"["contact_details","identity","identity"]"#,
            1,
        ),
        // An escape where a plain character is canonical.
        canonical.replacen("contact.read", r"contact\u002eread", 1),
        // A null field left out.
        canonical.replacen(r#","detail":"fields=first_name,email""#, "", 1),
    ];
    for bad in &variants {
        assert_eq!(
            AuditEvent::decode(bad.as_bytes()),
            Err(EventError::NotCanonical),
            "accepted {bad}"
        );
    }
}

#[test]
fn unknown_keys_other_versions_and_garbage_are_refused() {
    let unknown = SAMPLE_BYTES.replacen(r#"{"v":1,"#, r#"{"v":1,"email":"a@b.example","#, 1);
    assert!(matches!(
        AuditEvent::decode(unknown.as_bytes()),
        Err(EventError::Malformed { .. })
    ));
    let duplicate = SAMPLE_BYTES.replacen(r#"{"v":1,"#, r#"{"v":1,"v":1,"#, 1);
    assert!(matches!(
        AuditEvent::decode(duplicate.as_bytes()),
        Err(EventError::Malformed { .. })
    ));
    let v2 = SAMPLE_BYTES.replacen(r#"{"v":1,"#, r#"{"v":2,"#, 1);
    assert_eq!(
        AuditEvent::decode(v2.as_bytes()),
        Err(EventError::UnsupportedVersion(2))
    );
    for garbage in [
        &b""[..],
        b"null",
        b"[]",
        b"{}",
        b"\xff",
        &SAMPLE_BYTES.as_bytes()[..40],
    ] {
        assert!(matches!(
            AuditEvent::decode(garbage),
            Err(EventError::Malformed { .. })
        ));
    }
}

#[test]
fn decode_checks_fields_too() {
    // Canonical JSON, but a field no encoder would accept.
    let bad_outcome = SAMPLE_BYTES.replacen(r#""outcome":"success""#, r#""outcome":"ok""#, 1);
    assert_eq!(
        AuditEvent::decode(bad_outcome.as_bytes()),
        Err(EventError::InvalidFormat { field: "outcome" })
    );
    let personal_actor = SAMPLE_BYTES.replacen(
        "user:0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5",
        "user:alice@example.com",
        1,
    );
    assert_eq!(
        AuditEvent::decode(personal_actor.as_bytes()),
        Err(EventError::InvalidFormat { field: "actor" })
    );
}

#[test]
fn encode_refuses_control_characters_long_fields_and_bad_formats() {
    let mut e = sample();
    e.detail = Some("line\nbreak".into());
    assert_eq!(
        e.encode(),
        Err(EventError::ControlCharacter { field: "detail" })
    );

    let mut e = sample();
    e.purpose = Some("tab\there".into());
    assert_eq!(
        e.encode(),
        Err(EventError::ControlCharacter { field: "purpose" })
    );

    let mut e = sample();
    e.request_id = Some("bidi\u{202e}override".into());
    assert_eq!(
        e.encode(),
        Err(EventError::ControlCharacter {
            field: "request_id"
        })
    );

    let mut e = sample();
    e.detail = Some("x".repeat(MAX_FIELD_BYTES));
    assert!(e.encode().is_ok());
    e.detail = Some("x".repeat(MAX_FIELD_BYTES + 1));
    assert_eq!(e.encode(), Err(EventError::TooLong { field: "detail" }));

    let mut e = sample();
    e.categories = vec!["é".repeat(MAX_FIELD_BYTES / 2 + 1)];
    assert_eq!(
        e.encode(),
        Err(EventError::TooLong {
            field: "categories"
        })
    );

    let mut e = sample();
    e.subject_id = Some(String::new());
    assert_eq!(
        e.encode(),
        Err(EventError::Empty {
            field: "subject_id"
        })
    );

    let mut e = sample();
    e.v = 2;
    assert_eq!(e.encode(), Err(EventError::UnsupportedVersion(2)));

    let mut e = sample();
    e.time = "2026-11-30T02:13:25Z".into();
    assert_eq!(e.encode(), Err(EventError::InvalidFormat { field: "time" }));

    let mut e = sample();
    e.client = Some("192.000.2.7".into());
    assert_eq!(
        e.encode(),
        Err(EventError::InvalidFormat { field: "client" })
    );
    e.client = Some("2001:DB8::1".into());
    assert_eq!(
        e.encode(),
        Err(EventError::InvalidFormat { field: "client" })
    );

    let mut e = sample();
    e.action = "contact read".into();
    assert_eq!(
        e.encode(),
        Err(EventError::InvalidFormat { field: "action" })
    );

    let mut e = sample();
    e.categories = (0..65).map(|i| format!("c{i}")).collect();
    assert_eq!(e.encode(), Err(EventError::TooManyCategories));
}

#[test]
fn errors_name_fields_not_values() {
    let mut e = sample();
    e.detail = Some("secret\u{7}value".into());
    let message = e.encode().unwrap_err().to_string();
    assert!(message.contains("detail"));
    assert!(!message.contains("secret"));
    let wrong_type = SAMPLE_BYTES.replacen(r#""v":1"#, r#""v":"alice@example.com""#, 1);
    let message = AuditEvent::decode(wrong_type.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(!message.contains("alice"), "{message}");
}

#[test]
fn non_ascii_text_is_kept_raw() {
    let mut e = sample();
    e.detail = Some("note=Zoë \"quoted\" \\ back".into());
    let bytes = e.encode().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#""detail":"note=Zoë \"quoted\" \\ back""#),
        "{text}"
    );
    assert_eq!(AuditEvent::decode(&bytes).unwrap().detail, e.detail);
}
