//! Checks run the same way on each backend, from its own test module.

use crate::{Entity, SqlValue, Store, StoredRow};
use uuid::Uuid;

/// `update_records` changes the named records, across more than one
/// statement's worth of ids, and no others; it counts what it changed.
pub(crate) async fn update_records_changes_exactly_the_named_records(store: &dyn Store) {
    let mut tx = store.begin().await.expect("tx");
    let mut ids = Vec::new();
    for i in 0..1203i64 {
        let id = Uuid::now_v7();
        ids.push(id);
        let row = StoredRow {
            id,
            subject_id: None,
            columns: vec![
                ("name", SqlValue::Text(format!("Company {i}"))),
                ("domain", SqlValue::Text(format!("d{i}.example"))),
                ("created_at", SqlValue::Int(1000 + i)),
                ("updated_at", SqlValue::Int(1000 + i)),
            ],
        };
        tx.insert_record(Entity::Company, &row)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");

    // Every other record: 602 ids, more than one statement holds.
    let chosen: Vec<Uuid> = ids.iter().step_by(2).copied().collect();
    let mut tx = store.begin().await.expect("tx");
    let changed = tx
        .update_records(
            Entity::Company,
            &chosen,
            &[("domain", SqlValue::Null), ("updated_at", SqlValue::Int(7))],
        )
        .await
        .expect("update");
    assert_eq!(changed, chosen.len() as u64);
    // A missing id changes nothing and is not counted.
    let none = tx
        .update_records(
            Entity::Company,
            &[Uuid::now_v7()],
            &[("domain", SqlValue::Null)],
        )
        .await
        .expect("update");
    assert_eq!(none, 0);
    tx.commit().await.expect("commit");

    let mut tx = store.begin_read().await.expect("read");
    for (i, id) in ids.iter().enumerate() {
        let row = tx
            .get_record(Entity::Company, *id)
            .await
            .expect("get")
            .expect("row");
        if i % 2 == 0 {
            assert_eq!(row.get("domain"), &SqlValue::Null, "record {i}");
            assert_eq!(row.get("updated_at"), &SqlValue::Int(7), "record {i}");
        } else {
            assert_eq!(
                row.get("domain"),
                &SqlValue::Text(format!("d{i}.example")),
                "record {i}"
            );
            assert_eq!(row.get("updated_at"), &SqlValue::Int(1000 + i as i64));
        }
        assert_eq!(row.get("name"), &SqlValue::Text(format!("Company {i}")));
    }
}
