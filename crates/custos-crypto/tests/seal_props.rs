//! Property tests: sealing round-trips for any bytes and context, and any other
//! context refuses the value.

#![allow(clippy::unwrap_used)]

use custos_crypto::{DataKey, MasterKey, SealContext, open, seal, sealed_key_version};
use proptest::prelude::*;

fn ctx_strategy() -> impl Strategy<Value = [String; 5]> {
    // Arbitrary Unicode, including empty strings and NULs, to exercise the encoding.
    [
        ".{0,12}".boxed(),
        ".{0,12}".boxed(),
        ".{0,12}".boxed(),
        ".{0,12}".boxed(),
        ".{0,12}".boxed(),
    ]
}

fn as_ctx(parts: &[String; 5]) -> SealContext<'_> {
    SealContext {
        tenant: &parts[0],
        entity: &parts[1],
        field: &parts[2],
        record_id: &parts[3],
        subject_id: &parts[4],
    }
}

proptest! {
    // Failing cases are saved beside this file (tests/seal_props.proptest-regressions)
    // so they are replayed on the next run.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn seal_open_round_trip(
        key in any::<[u8; 32]>(),
        version in any::<u32>(),
        parts in ctx_strategy(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let key = DataKey::from_bytes(version, key);
        let ctx = as_ctx(&parts);
        let sealed = seal(&key, &ctx, &plaintext).unwrap();
        prop_assert_eq!(sealed.len(), 5 + 12 + plaintext.len() + 16);
        prop_assert_eq!(sealed_key_version(&sealed).unwrap(), version);
        let opened = open(&key, &ctx, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn other_context_fails(
        parts in ctx_strategy(),
        other in ctx_strategy(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(parts != other);
        let key = DataKey::from_bytes(1, [5u8; 32]);
        let sealed = seal(&key, &as_ctx(&parts), &plaintext).unwrap();
        prop_assert!(open(&key, &as_ctx(&other), &sealed).is_err());
    }

    #[test]
    fn wrap_unwrap_round_trip(
        kek in any::<[u8; 32]>(),
        dek in any::<[u8; 32]>(),
        kek_version in any::<u32>(),
        dek_version in any::<u32>(),
        label in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let master = MasterKey::from_bytes(kek_version, kek);
        let data = DataKey::from_bytes(dek_version, dek);
        let wrapped = master.wrap(&data, &label).unwrap();
        let back = master.unwrap(&wrapped, &label).unwrap();
        prop_assert_eq!(back.version(), dek_version);
        // Same key bytes: what one seals the other opens.
        let ctx = SealContext { tenant: "t", entity: "e", field: "f", record_id: "r", subject_id: "s" };
        let sealed = seal(&data, &ctx, b"probe").unwrap();
        let opened = open(&back, &ctx, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), b"probe");
    }
}
