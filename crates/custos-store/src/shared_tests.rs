//! Checks run the same way on each backend, from its own test module.

use crate::{Condition, Entity, ListQuery, Sort, SqlValue, Store, StoredRow};
use uuid::Uuid;

/// A table's columns are exactly those the store writes for its entity,
/// and every field of the inventory has one.
pub(crate) fn columns_match_the_inventory(entity: Entity, mut cols: Vec<String>) {
    cols.sort();
    let mut declared: Vec<String> = crate::sql::columns(entity)
        .into_iter()
        .map(String::from)
        .collect();
    declared.sort();
    assert_eq!(
        cols,
        declared,
        "table {} differs from the inventory",
        entity.plural()
    );
    for f in custos_domain::inventory::fields(entity) {
        assert!(
            cols.contains(&f.name.to_string()),
            "{} has no column",
            f.name
        );
    }
}

/// Blind-index entries as a Custos before migration 12 wrote them, with
/// their subject column: `a`'s email and last name (the last name twice,
/// as an old rekey could leave it) and `b`'s email, which shares `a`'s hash.
pub(crate) async fn insert_old_blind_entries<DB: crate::exec::Driver>(
    conn: &mut DB::Connection,
    a: &str,
    b: &str,
) {
    for (field, hash, record) in [
        ("email", [1u8, 2, 3], a),
        ("last_name", [4, 5, 6], a),
        ("last_name", [4, 5, 6], a),
        ("email", [1, 2, 3], b),
    ] {
        let q = crate::sql::Query::written(
            "INSERT INTO blind_index (entity, field, hash, record_id, subject_id) \
             VALUES ('contact', $1, $2, $3, $4)",
        )
        .text(field)
        .blob(&hash)
        .text(record)
        .text(record);
        DB::execute(&mut *conn, q).await.expect("entry");
    }
}

/// After migration 13, the two checkpoints an older Custos stored (sizes 4
/// and 9, notes "four" and "nine") are counted, and the latest is nine.
pub(crate) async fn the_two_old_checkpoints_are_counted(tx: &mut dyn crate::Tx) {
    assert_eq!(tx.checkpoint_count().await.expect("count"), 2);
    let latest = tx.latest_checkpoint().await.expect("latest");
    assert_eq!(latest.map(|c| c.note), Some("nine".to_string()));
}

/// The sortable columns that sort bare are exactly those declared NOT
/// NULL (`not_null`, read from the backend's catalogue): a bare sort of a
/// column with NULLs would lose rows at page boundaries, and a COALESCE
/// sort of one without would miss its index.
pub(crate) fn sortable_columns_sort_bare_when_not_null(entity: Entity, not_null: &[String]) {
    for f in custos_domain::inventory::fields(entity).filter(|f| f.sortable) {
        assert_eq!(
            crate::sql::never_null(entity, f.name),
            not_null.iter().any(|c| c == f.name),
            "{}.{}",
            entity.plural(),
            f.name
        );
    }
}

/// `flag_counts` counts each flag's subjects once, however often it was
/// set, and stops counting a flag once lifted.
pub(crate) async fn flag_counts_count_subjects_in_force(store: &dyn Store) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.expect("tx");
    assert!(tx.flag_counts().await.expect("counts").is_empty());
    assert!(tx.set_flag(a, "restricted", None, 1).await.expect("set"));
    assert!(tx.set_flag(b, "restricted", None, 2).await.expect("set"));
    assert!(tx.set_flag(a, "legal_hold", None, 3).await.expect("set"));
    // Set again while in force: no second row, no second count.
    assert!(!tx.set_flag(a, "restricted", None, 4).await.expect("set"));
    tx.commit().await.expect("commit");
    let mut tx = store.begin_read().await.expect("tx");
    assert_eq!(
        tx.flag_counts().await.expect("counts"),
        vec![("legal_hold".to_string(), 1), ("restricted".to_string(), 2)]
    );
    drop(tx);
    let mut tx = store.begin().await.expect("tx");
    assert!(tx.lift_flag(b, "restricted", 5).await.expect("lift"));
    assert!(tx.lift_flag(a, "legal_hold", 6).await.expect("lift"));
    // Lifted, then set again: in force once more, counted once.
    assert!(tx.set_flag(a, "legal_hold", None, 7).await.expect("set"));
    assert_eq!(
        tx.flag_counts().await.expect("counts"),
        vec![("legal_hold".to_string(), 1), ("restricted".to_string(), 1)]
    );
    tx.commit().await.expect("commit");
}

/// Policy versions come back by policy and version; saving a version twice
/// (two officers at once) is refused and leaves the first.
pub(crate) async fn policy_versions_are_kept_once_each(store: &dyn Store) {
    use crate::PolicyVersionRow;
    let v = |policy: &str, version: i64, years: i64| PolicyVersionRow {
        policy: policy.into(),
        version,
        years,
        previous_years: 2,
        reason: "board decision".into(),
        actor: "cli".into(),
        changed_at: version * 10,
        leaf: version,
    };
    let mut tx = store.begin().await.expect("tx");
    assert_eq!(tx.policy_versions().await.expect("none"), vec![]);
    tx.insert_policy_version(&v("orders.completed_at", 3, 4))
        .await
        .expect("insert");
    tx.insert_policy_version(&v("activities.occurred_at", 2, 1))
        .await
        .expect("insert");
    tx.insert_policy_version(&v("orders.completed_at", 2, 5))
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("tx");
    assert!(
        tx.insert_policy_version(&v("orders.completed_at", 3, 9))
            .await
            .is_err(),
        "a second version 3 is refused"
    );
    drop(tx);
    let mut tx = store.begin_read().await.expect("tx");
    let got: Vec<(String, i64, i64)> = tx
        .policy_versions()
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.policy, r.version, r.years))
        .collect();
    assert_eq!(
        got,
        vec![
            ("activities.occurred_at".to_string(), 2, 1),
            ("orders.completed_at".to_string(), 2, 5),
            ("orders.completed_at".to_string(), 3, 4),
        ]
    );
}

/// A retention run is found unfinished until it is saved with its end and
/// certificate; runs list newest first.
pub(crate) async fn retention_runs_resume_and_finish(store: &dyn Store) {
    use crate::RetentionRunRow;
    let run = |id: Uuid, started_at: i64| RetentionRunRow {
        id,
        started_at,
        finished_at: None,
        actor: "cli".into(),
        first_leaf: 7,
        state: "{}".into(),
        certificate: None,
    };
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.expect("tx");
    assert_eq!(tx.unfinished_retention_run().await.expect("open"), None);
    tx.insert_retention_run(&run(a, 10)).await.expect("insert");
    assert!(
        tx.save_retention_run(a, r#"{"n":1}"#, None)
            .await
            .expect("save")
    );
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("tx");
    let open = tx.unfinished_retention_run().await.expect("open");
    assert_eq!(
        open.map(|r| (r.id, r.state)),
        Some((a, r#"{"n":1}"#.into()))
    );
    assert!(
        tx.save_retention_run(a, r#"{"n":2}"#, Some((20, "cert")))
            .await
            .expect("finish")
    );
    tx.insert_retention_run(&run(b, 30)).await.expect("insert");
    assert!(
        !tx.save_retention_run(Uuid::now_v7(), "{}", None)
            .await
            .expect("save")
    );
    tx.commit().await.expect("commit");
    let mut tx = store.begin_read().await.expect("tx");
    assert_eq!(
        tx.unfinished_retention_run()
            .await
            .expect("open")
            .map(|r| r.id),
        Some(b)
    );
    let done = tx.get_retention_run(a).await.expect("get").expect("run a");
    assert_eq!(
        (
            done.finished_at,
            done.certificate.as_deref(),
            done.first_leaf
        ),
        (Some(20), Some("cert"), 7)
    );
    let listed: Vec<Uuid> = tx
        .list_retention_runs(10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![b, a]);
    assert_eq!(tx.list_retention_runs(1).await.expect("list").len(), 1);
}

/// Holds are found per person and in force until lifted, once.
pub(crate) async fn legal_holds_place_and_lift(store: &dyn Store) {
    use crate::LegalHoldRow;
    let (person, other) = (Uuid::now_v7(), Uuid::now_v7());
    let hold = |id: Uuid, subject: Uuid, review_at: i64| LegalHoldRow {
        id,
        subject_id: subject,
        reason: vec![1, 2, 3],
        owner_id: None,
        review_at,
        placed_at: 5,
        placed_by: "cli".into(),
        lifted_at: None,
        lifted_by: None,
    };
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.expect("tx");
    tx.insert_legal_hold(&hold(a, person, 300))
        .await
        .expect("a");
    tx.insert_legal_hold(&hold(b, person, 100))
        .await
        .expect("b");
    tx.insert_legal_hold(&hold(c, other, 200)).await.expect("c");
    assert!(tx.lift_legal_hold(b, 9, "user:x").await.expect("lift"));
    assert!(!tx.lift_legal_hold(b, 10, "user:x").await.expect("again"));
    tx.commit().await.expect("commit");
    let mut tx = store.begin_read().await.expect("tx");
    let in_force: Vec<Uuid> = tx
        .legal_holds_in_force(10)
        .await
        .expect("in force")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(in_force, vec![c, a], "by review date, lifted ones left out");
    let of = tx.legal_holds_of(person).await.expect("of");
    assert_eq!(of.len(), 2);
    let lifted = tx.get_legal_hold(b).await.expect("get").expect("b");
    assert_eq!(
        (lifted.lifted_at, lifted.lifted_by.as_deref(), lifted.reason),
        (Some(9), Some("user:x"), vec![1, 2, 3])
    );
}

/// `NotNull` keeps the records that hold a value in the column.
pub(crate) async fn not_null_finds_records_with_a_value(store: &dyn Store) {
    let mut tx = store.begin().await.expect("tx");
    let ids = insert_companies(tx.as_mut(), 3, |i| match i {
        1 => SqlValue::Null,
        _ => SqlValue::Text(format!("c{i}.example")),
    })
    .await;
    let q = ListQuery {
        entity: Entity::Company,
        conditions: vec![Condition::NotNull("domain")],
        sort: Sort {
            field: "created_at",
            descending: false,
        },
        after: None,
        limit: 10,
    };
    let found: Vec<Uuid> = tx
        .list_records(&q)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, vec![ids[0], ids[2]]);
    // The same held values counted in one scan: 3 records, 2 domains, and
    // one name each.
    let counts = tx
        .count_values(Entity::Company, &["domain", "name"])
        .await
        .expect("count values");
    assert_eq!(counts, vec![3, 2, 3]);
}

/// Inserts `n` companies named `Company {i}`, created at 1000 + i, with the
/// domain `domain(i)`; returns their ids in that order.
async fn insert_companies(
    tx: &mut dyn crate::Tx,
    n: i64,
    domain: impl Fn(i64) -> SqlValue,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        ids.push(id);
        let row = StoredRow {
            id,
            subject_id: None,
            columns: vec![
                ("name", SqlValue::Text(format!("Company {i}"))),
                ("domain", domain(i)),
                ("created_at", SqlValue::Int(1000 + i)),
                ("updated_at", SqlValue::Int(1000 + i)),
            ],
        };
        tx.insert_record(Entity::Company, &row)
            .await
            .expect("insert");
    }
    ids
}

/// `update_records` changes the named records, across more than one
/// statement's worth of ids, and no others; it counts what it changed.
pub(crate) async fn update_records_changes_exactly_the_named_records(store: &dyn Store) {
    let mut tx = store.begin().await.expect("tx");
    let ids = insert_companies(tx.as_mut(), 1203, |i| {
        SqlValue::Text(format!("d{i}.example"))
    })
    .await;
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

/// Reads a whole list through `list_records_within`, a window of `window`
/// rows at a time, pages of `limit`; returns the ids in order and how many
/// reads ended their window early (`resume`).
async fn read_windowed(
    store: &dyn Store,
    query: &crate::ListQuery,
    window: u32,
) -> (Vec<Uuid>, usize) {
    let mut tx = store.begin_read().await.expect("read");
    let mut ids = Vec::new();
    let mut resumed = 0;
    let mut after = None;
    for _ in 0..1000 {
        let q = crate::ListQuery {
            after: after.clone(),
            ..query.clone()
        };
        let page = tx.list_records_within(&q, window).await.expect("list");
        assert!(page.rows.len() <= q.limit as usize);
        ids.extend(page.rows.iter().map(|r| r.id));
        if let Some(end) = page.resume {
            // A window ends early only with a page that is not full.
            assert!(page.rows.len() < q.limit as usize);
            resumed += 1;
            after = Some(end);
        } else if page.rows.len() == q.limit as usize {
            let last = page.rows.last().expect("row");
            after = Some((last.get(q.sort.field).clone(), last.id));
        } else {
            return (ids, resumed);
        }
    }
    panic!("the list never ended");
}

/// A list whose conditions no index answers (a text search, a value of a
/// column of few values) is read a window at a time and still yields every
/// match once, in order; a list a reference narrows is read in one go.
pub(crate) async fn windowed_lists_find_every_match_in_order(store: &dyn Store) {
    use crate::{Condition, ListQuery, Sort};
    let contact = Uuid::now_v7();
    let mut tx = store.begin().await.expect("tx");
    let mut rare = Vec::new();
    for i in 0..60i64 {
        let id = Uuid::now_v7();
        // Every thirteenth company is "Rare", the others "Common".
        let name = if i % 13 == 5 { "Rare" } else { "Common" };
        if name == "Rare" {
            rare.push(id);
        }
        let row = StoredRow {
            id,
            subject_id: None,
            columns: vec![
                ("name", SqlValue::Text(format!("{name} {i}"))),
                ("created_at", SqlValue::Int(1000 + i)),
                ("updated_at", SqlValue::Int(1000 + i)),
            ],
        };
        tx.insert_record(Entity::Company, &row)
            .await
            .expect("insert");
    }
    let mut tasks = Vec::new();
    let mut mine = Vec::new();
    for i in 0..40i64 {
        let id = Uuid::now_v7();
        let kind = if i % 10 == 3 { "task" } else { "note" };
        // Half the activities are about one contact.
        let about = if i % 2 == 0 { contact } else { Uuid::now_v7() };
        if kind == "task" {
            tasks.push(id);
            if about == contact {
                mine.push(id);
            }
        }
        let row = StoredRow {
            id,
            subject_id: Some(about),
            columns: vec![
                ("contact_id", SqlValue::Text(about.to_string())),
                ("kind", SqlValue::Text(kind.into())),
                ("occurred_at", SqlValue::Int(i)),
                ("created_at", SqlValue::Int(2000 + i)),
                ("updated_at", SqlValue::Int(2000 + i)),
            ],
        };
        tx.insert_record(Entity::Activity, &row)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");

    let newest_first = Sort {
        field: "created_at",
        descending: true,
    };
    // Five matches among 60 rows, windows of 7: most windows end early.
    let search = ListQuery {
        entity: Entity::Company,
        conditions: vec![Condition::Contains("name", "rare".into())],
        sort: newest_first,
        after: None,
        limit: 2,
    };
    assert!(crate::sql::windowed(&search));
    let (ids, resumed) = read_windowed(store, &search, 7).await;
    let mut want = rare.clone();
    want.reverse();
    assert_eq!(ids, want);
    assert!(resumed >= 5, "only {resumed} windows ended early");
    // A window as long as the table: one read, no resumption.
    let (ids, resumed) = read_windowed(store, &search, 1000).await;
    assert_eq!((ids, resumed), (want, 0));

    // A value of a column of few values, oldest first.
    let by_kind = ListQuery {
        entity: Entity::Activity,
        conditions: vec![Condition::Eq("kind", SqlValue::Text("task".into()))],
        sort: Sort {
            field: "created_at",
            descending: false,
        },
        after: None,
        limit: 3,
    };
    assert!(crate::sql::windowed(&by_kind));
    let (ids, resumed) = read_windowed(store, &by_kind, 4).await;
    assert_eq!(ids, tasks);
    assert!(resumed > 0);
    // Sorted by that column, its index answers it: no windows.
    let sorted_by_kind = ListQuery {
        sort: Sort {
            field: "kind",
            descending: false,
        },
        ..by_kind.clone()
    };
    assert!(!crate::sql::windowed(&sorted_by_kind));
    let (ids, resumed) = read_windowed(store, &sorted_by_kind, 4).await;
    let mut want = tasks.clone();
    want.sort();
    assert_eq!((ids, resumed), (want, 0));
    // With the contact as well, the reference narrows it: no windows.
    let of_contact = ListQuery {
        conditions: vec![
            Condition::Eq("kind", SqlValue::Text("task".into())),
            Condition::Eq("contact_id", SqlValue::Text(contact.to_string())),
        ],
        ..by_kind
    };
    assert!(!crate::sql::windowed(&of_contact));
    let (ids, resumed) = read_windowed(store, &of_contact, 4).await;
    assert_eq!((ids, resumed), (mine, 0));
}

/// `group_records` counts, counts values and sums by every grouping column,
/// in their order, with NULL as a group of its own, under the conditions.
pub(crate) async fn group_records_counts_and_sums_by_the_grouping_columns(store: &dyn Store) {
    use crate::{Condition, GroupRow};
    let mut tx = store.begin().await.expect("tx");
    // (stage, currency, amount); amounts above i32 to check the 64-bit sum.
    let deals = [
        ("lead", Some("EUR"), Some(100)),
        ("lead", Some("EUR"), Some(3_000_000_000)),
        ("lead", Some("EUR"), None),
        ("lead", None, None),
        ("won", Some("USD"), Some(7)),
        ("won", Some("EUR"), Some(5)),
    ];
    for (i, (stage, currency, amount)) in deals.iter().enumerate() {
        let text = |v: Option<&str>| v.map_or(SqlValue::Null, |s| SqlValue::Text(s.into()));
        let row = StoredRow {
            id: Uuid::now_v7(),
            subject_id: None,
            columns: vec![
                ("title", SqlValue::Text(format!("Deal {i}"))),
                ("stage", SqlValue::Text((*stage).into())),
                ("currency", text(*currency)),
                ("amount", amount.map_or(SqlValue::Null, SqlValue::Int)),
                ("created_at", SqlValue::Int(1000 + i as i64)),
                ("updated_at", SqlValue::Int(1000 + i as i64)),
            ],
        };
        tx.insert_record(Entity::Deal, &row).await.expect("insert");
    }
    tx.commit().await.expect("commit");
    let mut tx = store.begin_read().await.expect("read");
    let mut groups = tx
        .group_records(Entity::Deal, &[], &["stage", "currency"], "amount")
        .await
        .expect("group");
    // NULL sorts first on one backend and last on the other: compare as sets.
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    let g = |stage: &str, currency: Option<&str>, count, valued, sum| GroupRow {
        key: vec![Some(stage.to_string()), currency.map(str::to_string)],
        count,
        valued,
        sum,
    };
    assert_eq!(
        groups,
        vec![
            g("lead", None, 1, 0, 0),
            g("lead", Some("EUR"), 3, 2, 3_000_000_100),
            g("won", Some("EUR"), 1, 1, 5),
            g("won", Some("USD"), 1, 1, 7),
        ]
    );
    // Under a condition, and a condition that matches nothing.
    let won = tx
        .group_records(
            Entity::Deal,
            &[Condition::Eq("stage", SqlValue::Text("won".into()))],
            &["currency"],
            "amount",
        )
        .await
        .expect("group");
    assert_eq!(won.len(), 2);
    assert_eq!(won.iter().map(|g| g.sum).sum::<i64>(), 12);
    let none = tx
        .group_records(
            Entity::Deal,
            &[Condition::Eq("stage", SqlValue::Text("lost".into()))],
            &["currency"],
            "amount",
        )
        .await
        .expect("group");
    assert!(none.is_empty());
}

/// Records go in and come back with NULLs of every column type, update to
/// NULL, page by keyset newest first, and match `Contains` literally
/// (`%` and `_` are not wildcards).
pub(crate) async fn records_round_trip_with_nulls_and_paginate_by_keyset(store: &dyn Store) {
    let mut tx = store.begin().await.expect("tx");
    let mut ids = insert_companies(tx.as_mut(), 5, |_| SqlValue::Null).await;
    // Typed NULLs in every column type: text, integer, boolean, bytes.
    let contact = Uuid::now_v7();
    tx.insert_record(
        Entity::Activity,
        &StoredRow {
            id: Uuid::now_v7(),
            subject_id: Some(contact),
            columns: vec![
                ("contact_id", SqlValue::Text(contact.to_string())),
                ("kind", SqlValue::Text("note".into())),
                ("body", SqlValue::Null),
                ("occurred_at", SqlValue::Int(5)),
                ("due_at", SqlValue::Null),
                ("done", SqlValue::Null),
                ("owner_id", SqlValue::Null),
                ("created_at", SqlValue::Int(5)),
                ("updated_at", SqlValue::Int(5)),
            ],
        },
    )
    .await
    .expect("insert with nulls");
    let n = tx
        .count_records(
            Entity::Activity,
            &[
                Condition::IsNull("done"),
                Condition::Eq("kind", SqlValue::Text("note".into())),
            ],
        )
        .await
        .expect("count");
    assert_eq!(n, 1);
    assert!(
        tx.update_record(Entity::Company, ids[0], &[("domain", SqlValue::Null)])
            .await
            .expect("update to null")
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery {
            entity: Entity::Company,
            conditions: vec![],
            sort: Sort {
                field: "created_at",
                descending: true,
            },
            after: after.clone(),
            limit: 2,
        };
        let page = tx.list_records(&q).await.expect("list");
        if page.is_empty() {
            break;
        }
        for r in &page {
            seen.push(r.id);
        }
        let last = page.last().expect("row");
        after = Some((last.get("created_at").clone(), last.id));
    }
    ids.reverse();
    assert_eq!(seen, ids);
    for (needle, expect) in [("company 3", 1), ("COMPANY", 5), ("50%", 0), ("_", 0)] {
        let n = tx
            .count_records(
                Entity::Company,
                &[Condition::Contains("name", needle.into())],
            )
            .await
            .expect("count");
        assert_eq!(n, expect, "contains {needle:?}");
    }
    tx.commit().await.expect("commit");
}
