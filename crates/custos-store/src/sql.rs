//! SQL for every backend, built from the inventory. Identifiers come only from
//! the inventory (static names), values always travel as bind parameters.

use crate::{ColumnType, Condition, ListQuery, NewRecords, SqlValue, StoredRow, column_type};
use custos_domain::inventory::{FieldKind, Presence};
use custos_domain::{Entity, inventory};
use uuid::Uuid;

/// Where backends differ in SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1`, `?2` placeholders.
    Sqlite,
    /// `$1`, `$2` placeholders.
    Postgres,
}

/// A statement and its bind values, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// SQL text.
    pub sql: String,
    /// Values for the placeholders.
    pub binds: Vec<SqlValue>,
    /// The stored type of each placeholder (the column it is compared with or
    /// written to). PostgreSQL needs it to send a NULL with the column's type;
    /// SQLite ignores it.
    pub types: Vec<ColumnType>,
    dialect: Dialect,
    /// SQLite only: plain `?` placeholders, bound in order. Statements with
    /// many parameters use them: SQLite finds a numbered parameter's name by
    /// a linear scan, so binding `?1…?N` costs the square of N, and plain
    /// placeholders also let several statements travel as one (see [`concat`]).
    anonymous: bool,
    /// SQLite only: in a list in the order of this field, an equality on a
    /// column of few values (see [`broad`]) is written `+col = ?`, so the
    /// planner never picks that column's index for it (see [`list_until`]).
    hint_sort: Option<&'static str>,
}

impl Query {
    /// An empty SQLite statement, for backend modules building their own SQL.
    pub fn new_sqlite() -> Query {
        Query::new(Dialect::Sqlite)
    }

    /// An empty PostgreSQL statement.
    pub fn new_postgres() -> Query {
        Query::new(Dialect::Postgres)
    }

    /// An empty statement with many parameters, bound in the order they
    /// appear (SQLite: plain `?` placeholders).
    pub fn bulk(dialect: Dialect) -> Query {
        Query {
            anonymous: true,
            ..Query::new(dialect)
        }
    }

    /// Adds a bind value and returns its placeholder (for backend modules).
    pub fn push(&mut self, v: SqlValue) -> String {
        self.bind(v)
    }

    /// Adds a bind value for a column of type `ty` (see [`crate::exec`]).
    pub(crate) fn push_typed(&mut self, v: SqlValue, ty: ColumnType) {
        self.bind_as(v, ty);
    }

    /// The type to send a bind value as: its column's when known, else its own.
    pub fn type_of(&self, i: usize) -> ColumnType {
        self.types.get(i).copied().unwrap_or(ColumnType::Text)
    }

    /// Returns itself (readability at call sites that hand it to an executor).
    pub fn into_query(self) -> Query {
        self
    }

    fn new(dialect: Dialect) -> Query {
        Query {
            sql: String::new(),
            binds: Vec::new(),
            types: Vec::new(),
            dialect,
            anonymous: false,
            hint_sort: None,
        }
    }

    /// Adds a bind value, typed by the value itself (NULL as text).
    fn bind(&mut self, v: SqlValue) -> String {
        let ty = match &v {
            SqlValue::Null | SqlValue::Text(_) => ColumnType::Text,
            SqlValue::Int(_) => ColumnType::Int,
            SqlValue::Bool(_) => ColumnType::Bool,
            SqlValue::Blob(_) => ColumnType::Blob,
        };
        self.bind_as(v, ty)
    }

    /// Adds a bind value for a column of type `ty`.
    fn bind_as(&mut self, v: SqlValue, ty: ColumnType) -> String {
        self.binds.push(v);
        self.types.push(ty);
        match self.dialect {
            Dialect::Sqlite if self.anonymous => "?".to_string(),
            Dialect::Sqlite => format!("?{}", self.binds.len()),
            Dialect::Postgres => format!("${}", self.binds.len()),
        }
    }
}

/// A quoted identifier (names come from the inventory only).
fn ident(name: &str) -> String {
    debug_assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
    format!("\"{name}\"")
}

/// The columns of an entity's table, in order: `id`, `subject_id`, then every
/// declared field but `id`.
pub fn columns(entity: Entity) -> Vec<&'static str> {
    let mut cols = vec!["id", "subject_id"];
    cols.extend(
        inventory::fields(entity)
            .filter(|f| f.name != "id")
            .map(|f| f.name),
    );
    cols
}

/// The stored type of a column.
pub fn column_type_of(entity: Entity, column: &str) -> ColumnType {
    if column == "id" || column == "subject_id" {
        return ColumnType::Text;
    }
    inventory::field(entity, column)
        .map(column_type)
        .unwrap_or(ColumnType::Text)
}

fn select_list(entity: Entity) -> String {
    columns(entity)
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn uuid_value(u: Uuid) -> SqlValue {
    SqlValue::Text(u.to_string())
}

/// INSERT of a whole record.
pub fn insert(d: Dialect, entity: Entity, row: &StoredRow) -> Query {
    let mut q = Query::new(d);
    let mut names = vec![ident("id"), ident("subject_id")];
    let mut marks = vec![q.bind(uuid_value(row.id))];
    let subject = row.subject_id.map(uuid_value).unwrap_or(SqlValue::Null);
    marks.push(q.bind(subject));
    for (name, v) in &row.columns {
        if *name == "id" || *name == "subject_id" {
            continue;
        }
        names.push(ident(name));
        marks.push(q.bind_as(v.clone(), column_type_of(entity, name)));
    }
    q.sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        ident(entity.plural()),
        names.join(", "),
        marks.join(", ")
    );
    q
}

/// Most parameters put in one bulk statement: SQLite allows 32,766 and
/// PostgreSQL 65,535; fewer keeps each statement's text small.
const MAX_BULK_PARAMS: usize = 4096;

/// The statements writing a batch of new records: their subjects' new data
/// keys, the rows (one multi-row INSERT per entity and column set) and their
/// blind-index entries, in that order.
pub fn insert_new(d: Dialect, batch: &NewRecords) -> Vec<Query> {
    let mut out = Vec::new();
    let per = |width: usize| (MAX_BULK_PARAMS / width).max(1);
    for chunk in batch.keys.chunks(per(7)) {
        let mut q = Query::bulk(d);
        let rows: Vec<String> = chunk
            .iter()
            .map(|k| {
                let marks = [
                    q.bind(uuid_value(k.subject_id)),
                    q.bind(SqlValue::Int(k.dek_version)),
                    q.bind(SqlValue::Text(k.kind.name().into())),
                    q.bind_as(
                        k.wrapped_key.clone().map_or(SqlValue::Null, SqlValue::Blob),
                        ColumnType::Blob,
                    ),
                    q.bind(SqlValue::Int(k.kek_version)),
                    q.bind(SqlValue::Int(k.created_at)),
                    q.bind_as(
                        k.shredded_at.map_or(SqlValue::Null, SqlValue::Int),
                        ColumnType::Int,
                    ),
                ];
                format!("({})", marks.join(", "))
            })
            .collect();
        q.sql = format!(
            "INSERT INTO subject_keys (subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at) VALUES {}",
            rows.join(", ")
        );
        out.push(q);
    }
    // Rows of one entity with the same columns share a statement.
    let mut groups: Vec<(Entity, Vec<&'static str>, Vec<&StoredRow>)> = Vec::new();
    for (entity, row) in &batch.rows {
        let names: Vec<&'static str> = row
            .columns
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| *n != "id" && *n != "subject_id")
            .collect();
        match groups
            .iter_mut()
            .find(|(e, n, _)| e == entity && *n == names)
        {
            Some(g) => g.2.push(row),
            None => groups.push((*entity, names, vec![row])),
        }
    }
    for (entity, names, rows) in groups {
        for chunk in rows.chunks(per(names.len() + 2)) {
            let mut q = Query::bulk(d);
            let values: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let mut marks = vec![
                        q.bind(uuid_value(row.id)),
                        q.bind(row.subject_id.map(uuid_value).unwrap_or(SqlValue::Null)),
                    ];
                    for (name, v) in &row.columns {
                        if *name != "id" && *name != "subject_id" {
                            marks.push(q.bind_as(v.clone(), column_type_of(entity, name)));
                        }
                    }
                    format!("({})", marks.join(", "))
                })
                .collect();
            let mut cols = vec![ident("id"), ident("subject_id")];
            cols.extend(names.iter().map(|n| ident(n)));
            q.sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                ident(entity.plural()),
                cols.join(", "),
                values.join(", ")
            );
            out.push(q);
        }
    }
    // In index order: entries that land on the same page of the index are
    // written together.
    let mut blind: Vec<&crate::BlindEntry> = batch.blind.iter().collect();
    blind.sort_by(|a, b| {
        (a.entity.name(), a.field, &a.hash).cmp(&(b.entity.name(), b.field, &b.hash))
    });
    for chunk in blind.chunks(per(4)) {
        out.extend(insert_blind_rows(
            d,
            chunk
                .iter()
                .map(|b| (b.entity, b.field, b.hash.as_slice(), b.record_id)),
        ));
    }
    out
}

/// SELECT of every data-key version of these subjects, by subject then version.
pub fn subject_keys_of(d: Dialect, subjects: &[Uuid]) -> Query {
    let mut q = Query::bulk(d);
    let marks: Vec<String> = subjects.iter().map(|s| q.bind(uuid_value(*s))).collect();
    q.sql = format!(
        "SELECT subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at \
         FROM subject_keys WHERE subject_id IN ({}) ORDER BY subject_id, dek_version",
        marks.join(", ")
    );
    q
}

/// SELECT of the ledger leaves at these indexes, in index order.
pub fn leaves_at(d: Dialect, indexes: &[u64]) -> Query {
    let mut q = Query::new(d);
    let marks: Vec<String> = indexes
        .iter()
        .map(|i| q.bind(SqlValue::Int(i64::try_from(*i).unwrap_or(i64::MAX))))
        .collect();
    q.sql = format!(
        "SELECT idx, data, leaf_hash FROM ledger_leaves WHERE idx IN ({}) ORDER BY idx",
        marks.join(", ")
    );
    q
}

/// Joins SQLite bulk statements into one, so they travel to the database in
/// one round trip (their plain placeholders bind in order across them).
/// `None` when there is nothing to run.
pub fn concat(queries: Vec<Query>) -> Option<Query> {
    let mut it = queries.into_iter();
    let mut first = it.next()?;
    for q in it {
        debug_assert!(q.anonymous && first.anonymous && q.dialect == Dialect::Sqlite);
        first.sql.push_str(";\n");
        first.sql.push_str(&q.sql);
        first.binds.extend(q.binds);
        first.types.extend(q.types);
    }
    Some(first)
}

/// UPDATE of some columns.
pub fn update(d: Dialect, entity: Entity, id: Uuid, columns: &[(&'static str, SqlValue)]) -> Query {
    let mut q = Query::new(d);
    let sets = set_list(&mut q, entity, columns);
    let idm = q.bind(uuid_value(id));
    q.sql = format!(
        "UPDATE {} SET {sets} WHERE \"id\" = {idm}",
        ident(entity.plural())
    );
    q
}

/// UPDATE of the same columns to the same values on several records, in one
/// statement (callers keep `ids` to a few hundred).
pub fn update_many(
    d: Dialect,
    entity: Entity,
    ids: &[Uuid],
    columns: &[(&'static str, SqlValue)],
) -> Query {
    let mut q = Query::bulk(d);
    let sets = set_list(&mut q, entity, columns);
    let marks: Vec<String> = ids.iter().map(|id| q.bind(uuid_value(*id))).collect();
    q.sql = format!(
        "UPDATE {} SET {sets} WHERE \"id\" IN ({})",
        ident(entity.plural()),
        marks.join(", ")
    );
    q
}

/// `"column" = placeholder, …` of an UPDATE.
fn set_list(q: &mut Query, entity: Entity, columns: &[(&'static str, SqlValue)]) -> String {
    columns
        .iter()
        .map(|(n, v)| {
            let mark = q.bind_as(v.clone(), column_type_of(entity, n));
            format!("{} = {mark}", ident(n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// SELECT of one record by id.
pub fn get(d: Dialect, entity: Entity, id: Uuid) -> Query {
    let mut q = Query::new(d);
    let idm = q.bind(uuid_value(id));
    q.sql = format!(
        "SELECT {} FROM {} WHERE \"id\" = {idm}",
        select_list(entity),
        ident(entity.plural())
    );
    q
}

/// `SELECT` of a table's columns (`cols`, comma-separated) found by
/// `token_hash`, joined with its user's record: the user's columns follow,
/// all NULL when the user is gone.
pub fn with_user(d: Dialect, table: &str, cols: &str) -> String {
    let own: Vec<String> = cols.split(", ").map(|c| format!("t.{c}")).collect();
    let user: Vec<String> = columns(Entity::User)
        .iter()
        .map(|c| format!("u.{}", ident(c)))
        .collect();
    let mark = match d {
        Dialect::Sqlite => "?1",
        Dialect::Postgres => "$1",
    };
    format!(
        "SELECT {}, {} FROM {table} t LEFT JOIN {} u ON u.\"id\" = t.user_id WHERE t.token_hash = {mark}",
        own.join(", "),
        user.join(", "),
        ident(Entity::User.plural())
    )
}

/// SELECT of one record with its subject's active processing flags
/// (comma-separated, NULL when none) in a last column.
pub fn get_with_flags(d: Dialect, entity: Entity, id: Uuid) -> Query {
    let mut q = Query::new(d);
    let idm = q.bind(uuid_value(id));
    let agg = match d {
        Dialect::Sqlite => "group_concat(f.flag, ',')",
        Dialect::Postgres => "string_agg(f.flag, ',')",
    };
    q.sql = format!(
        "SELECT {}, (SELECT {agg} FROM processing_flags f WHERE f.lifted_at IS NULL AND f.subject_id = r.\"subject_id\") \
         FROM {} r WHERE r.\"id\" = {idm}",
        select_list(entity),
        ident(entity.plural())
    );
    q
}

/// DELETE of one record.
pub fn delete(d: Dialect, entity: Entity, id: Uuid) -> Query {
    let mut q = Query::new(d);
    let idm = q.bind(uuid_value(id));
    q.sql = format!(
        "DELETE FROM {} WHERE \"id\" = {idm}",
        ident(entity.plural())
    );
    q
}

/// DELETE of a record's blind-index rows (all fields, or one).
pub fn delete_blind(d: Dialect, entity: Entity, record_id: Uuid, field: Option<&str>) -> Query {
    let mut q = Query::new(d);
    let e = q.bind(SqlValue::Text(entity.name().into()));
    let r = q.bind(uuid_value(record_id));
    q.sql = format!("DELETE FROM blind_index WHERE entity = {e} AND record_id = {r}");
    if let Some(f) = field {
        let f = q.bind(SqlValue::Text(f.into()));
        q.sql.push_str(&format!(" AND field = {f}"));
    }
    q
}

/// The start of an INSERT of blind-index rows. They never break a
/// constraint (never NULL; the service writes a value once per field), and on
/// SQLite `OR IGNORE` says so: a statement that cannot stop half-way needs no
/// statement journal. A multi-row insert at random places in the index
/// otherwise copies every page it touches into that journal first, which was
/// most of a bulk import's blind-index time.
fn insert_blind_into(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "INSERT OR IGNORE INTO",
        Dialect::Postgres => "INSERT INTO",
    }
}

/// INSERT of blind-index rows (entity, field, hash, record id) in one
/// statement; `None` when there are none.
pub fn insert_blind_rows<'a>(
    d: Dialect,
    rows: impl IntoIterator<Item = (Entity, &'a str, &'a [u8], Uuid)>,
) -> Option<Query> {
    let mut q = Query::bulk(d);
    let values: Vec<String> = rows
        .into_iter()
        .map(|(entity, field, hash, record_id)| {
            let marks = [
                q.bind(SqlValue::Text(entity.name().into())),
                q.bind(SqlValue::Text(field.into())),
                q.bind(SqlValue::Blob(hash.to_vec())),
                q.bind(uuid_value(record_id)),
            ];
            format!("({})", marks.join(", "))
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    q.sql = format!(
        "{} blind_index (entity, field, hash, record_id) VALUES {}",
        insert_blind_into(d),
        values.join(", ")
    );
    Some(q)
}

/// A record's active processing flags from the comma-separated last column
/// of [`get_with_flags`].
pub fn flag_list(joined: Option<String>) -> Vec<String> {
    joined
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// A LIKE pattern for a case-insensitive "contains". SQLite's lower() folds only
/// ASCII, so every non-ASCII character becomes `_` (any one character): the SQL
/// over-approximates and the service confirms each match with Unicode case
/// folding.
fn like_pattern(needle: &str) -> String {
    let mut p = String::from("%");
    for c in needle.to_lowercase().chars() {
        if !c.is_ascii() {
            p.push('_');
            continue;
        }
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Whether every row has a value in this sortable column: `created_at` and
/// `updated_at`, the fields a record must have (required on create, never
/// cleared), and the columns Custos always sets on data-subject requests and
/// consents. Both schemas declare exactly these NOT NULL among the sortable
/// columns (a test of each backend checks it).
pub fn never_null(entity: Entity, field: &str) -> bool {
    matches!(field, "created_at" | "updated_at")
        || inventory::field(entity, field).is_some_and(|f| f.presence == Presence::Required)
        || matches!(
            (entity, field),
            (Entity::Request, "state" | "received_at" | "due_at")
                | (Entity::Consent, "recorded_at")
        )
}

/// The sort key of a list. A column every row has sorts bare, so its
/// (column, id) index serves each keyset page. A column that may be NULL
/// sorts through COALESCE, so NULLs take one place on both backends (SQLite
/// sorts them first, PostgreSQL last) and the keyset comparison never meets
/// a NULL; migration 13 indexes each such expression with the id.
pub fn sort_expr(entity: Entity, field: &str) -> String {
    if never_null(entity, field) {
        return ident(field);
    }
    match column_type_of(entity, field) {
        ColumnType::Int => format!("COALESCE({}, {})", ident(field), i64::MIN),
        ColumnType::Bool => format!("COALESCE({}, FALSE)", ident(field)),
        _ => format!("COALESCE({}, '')", ident(field)),
    }
}

/// The cursor's sort value as the sort key's type. A crafted cursor may carry a
/// value of another type; PostgreSQL refuses to compare across types, so it is
/// mapped to where SQLite's cross-type order puts it (numbers before text and
/// bytes, booleans as 0 and 1) and both backends answer the same page.
fn sort_sentinel(entity: Entity, field: &str, v: &SqlValue) -> SqlValue {
    match (column_type_of(entity, field), v) {
        (ColumnType::Int, SqlValue::Null) => SqlValue::Int(i64::MIN),
        (ColumnType::Int, SqlValue::Int(i)) => SqlValue::Int(*i),
        (ColumnType::Int, SqlValue::Bool(b)) => SqlValue::Int(i64::from(*b)),
        (ColumnType::Int, SqlValue::Text(_) | SqlValue::Blob(_)) => SqlValue::Int(i64::MAX),
        (ColumnType::Bool, SqlValue::Null) => SqlValue::Bool(false),
        (ColumnType::Bool, SqlValue::Bool(b)) => SqlValue::Bool(*b),
        (ColumnType::Bool, SqlValue::Int(i)) => SqlValue::Bool(*i > 0),
        (ColumnType::Bool, SqlValue::Text(_) | SqlValue::Blob(_)) => SqlValue::Bool(true),
        (_, SqlValue::Text(t)) => SqlValue::Text(t.clone()),
        (_, _) => SqlValue::Text(String::new()),
    }
}

fn condition(q: &mut Query, entity: Entity, c: &Condition) -> String {
    match c {
        Condition::Eq(f, v) => {
            let mark = q.bind_as(v.clone(), column_type_of(entity, f));
            let hinted = q.dialect == Dialect::Sqlite
                && q.hint_sort
                    .is_some_and(|s| s != *f && !sorted_within(entity, f, s))
                && broad(entity, f);
            // Unary plus: the same value, but not a column an index can answer.
            let plus = if hinted { "+" } else { "" };
            format!("{plus}{} = {mark}", ident(f))
        }
        Condition::IsNull(f) => format!("{} IS NULL", ident(f)),
        Condition::NotNull(f) => format!("{} IS NOT NULL", ident(f)),
        Condition::AtLeast(f, v) => {
            let mark = q.bind_as(v.clone(), column_type_of(entity, f));
            format!("{} >= {mark}", ident(f))
        }
        Condition::Before(f, v) => {
            let mark = q.bind_as(v.clone(), column_type_of(entity, f));
            format!("{} < {mark}", ident(f))
        }
        Condition::SortKeyBefore(f, v) => {
            let mark = q.bind(sort_sentinel(entity, f, v));
            format!("{} < {mark}", sort_expr(entity, f))
        }
        Condition::SortKeyAfter(f, v) => {
            let mark = q.bind(sort_sentinel(entity, f, v));
            format!("{} > {mark}", sort_expr(entity, f))
        }
        Condition::Blind { field, hash } => {
            let e = q.bind(SqlValue::Text(entity.name().into()));
            let f = q.bind(SqlValue::Text((*field).into()));
            let h = q.bind(SqlValue::Blob(hash.clone()));
            format!(
                "\"id\" IN (SELECT record_id FROM blind_index WHERE entity = {e} AND field = {f} AND hash = {h})"
            )
        }
        Condition::BlindAny { field, hashes } => {
            if hashes.is_empty() {
                return "1 = 0".into();
            }
            let e = q.bind(SqlValue::Text(entity.name().into()));
            let f = q.bind(SqlValue::Text((*field).into()));
            let hs: Vec<String> = hashes
                .iter()
                .map(|h| q.bind(SqlValue::Blob(h.clone())))
                .collect();
            format!(
                "\"id\" IN (SELECT record_id FROM blind_index WHERE entity = {e} AND field = {f} AND hash IN ({}))",
                hs.join(", ")
            )
        }
        Condition::Contains(f, needle) => {
            format!(
                "lower({}) LIKE {} ESCAPE '\\'",
                ident(f),
                q.bind(SqlValue::Text(like_pattern(needle)))
            )
        }
        Condition::RefContains {
            field,
            target,
            target_field,
            needle,
        } => {
            let p = q.bind(SqlValue::Text(like_pattern(needle)));
            format!(
                "{} IN (SELECT \"id\" FROM {} WHERE lower({}) LIKE {p} ESCAPE '\\')",
                ident(field),
                ident(target.plural()),
                ident(target_field)
            )
        }
        Condition::IdIn(ids) => {
            if ids.is_empty() {
                return "1 = 0".into();
            }
            let marks: Vec<String> = ids.iter().map(|u| q.bind(uuid_value(*u))).collect();
            format!("\"id\" IN ({})", marks.join(", "))
        }
        Condition::In(f, values) => {
            if values.is_empty() {
                return "1 = 0".into();
            }
            let ty = column_type_of(entity, f);
            let marks: Vec<String> = values.iter().map(|v| q.bind_as(v.clone(), ty)).collect();
            format!("{} IN ({})", ident(f), marks.join(", "))
        }
        Condition::And(cs) => {
            if cs.is_empty() {
                return "1 = 1".into();
            }
            let parts: Vec<String> = cs.iter().map(|c| condition(q, entity, c)).collect();
            format!("({})", parts.join(" AND "))
        }
        Condition::Or(cs) => {
            if cs.is_empty() {
                return "1 = 0".into();
            }
            let parts: Vec<String> = cs.iter().map(|c| condition(q, entity, c)).collect();
            format!("({})", parts.join(" OR "))
        }
    }
}

/// " WHERE a AND b", or nothing without conditions.
fn where_text(wheres: &[String]) -> String {
    if wheres.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", wheres.join(" AND "))
    }
}

fn where_clause(q: &mut Query, entity: Entity, conditions: &[Condition]) -> Vec<String> {
    conditions.iter().map(|c| condition(q, entity, c)).collect()
}

/// Whether a column holds one of a few values (a kind, a stage, a status, a
/// currency, yes or no): each value is a large share of the table, so an
/// index on such a column is no way to find one page of it.
pub fn broad(entity: Entity, column: &str) -> bool {
    inventory::field(entity, column).is_some_and(|f| {
        matches!(
            f.kind,
            FieldKind::Enum { .. } | FieldKind::Stage | FieldKind::Currency | FieldKind::Bool
        )
    })
}

/// Whether both schemas have an index that starts with this column of an
/// entity's table: the id, references to records and owners, every sortable
/// column (migration 13)
/// and whether a task is done (the dashboard's open tasks). A test of each
/// backend checks this against the schema.
pub fn indexed(entity: Entity, column: &str) -> bool {
    column == "id"
        || (entity, column) == (Entity::Activity, "done")
        || inventory::field(entity, column).is_some_and(|f| {
            f.sortable
                || f.name == "owner_id"
                || matches!(f.kind, FieldKind::Ref { entity } if entity != Entity::User)
        })
}

/// Indexes that start with a column of few values and then a list's sort
/// key (entity, column, sort field): a list filtered by that column and in
/// that order is one range of the index. Tasks by due date: the due time is
/// NULL on every other kind, and in that order a walk would pass them all
/// before the first task. A test of each backend checks the schema has them.
pub const SORTED_WITHIN: &[(Entity, &str, &str)] = &[(Entity::Activity, "kind", "due_at")];

fn sorted_within(entity: Entity, column: &str, sort: &str) -> bool {
    SORTED_WITHIN.contains(&(entity, column, sort))
}

/// Whether an index finds the rows of this condition directly, so that a list
/// in `sort` order under it reads about as many rows as match: a reference,
/// a blind-index hash, a list of ids, a value of a sortable column, a value of
/// a column of few values when the list is sorted by that column. A column of
/// few values in another order, a text search or a range does not.
fn narrows(entity: Entity, sort: &str, c: &Condition) -> bool {
    match c {
        Condition::Eq(f, _) if broad(entity, f) => *f == sort || sorted_within(entity, f, sort),
        Condition::Eq(f, _) | Condition::In(f, _) => indexed(entity, f),
        Condition::IsNull(_)
        | Condition::NotNull(_)
        | Condition::AtLeast(..)
        | Condition::Before(..)
        | Condition::SortKeyBefore(..)
        | Condition::SortKeyAfter(..)
        | Condition::Contains(..) => false,
        Condition::Blind { .. }
        | Condition::BlindAny { .. }
        | Condition::IdIn(_)
        | Condition::RefContains { .. } => true,
        Condition::And(cs) => cs.iter().any(|c| narrows(entity, sort, c)),
        Condition::Or(cs) => !cs.is_empty() && cs.iter().all(|c| narrows(entity, sort, c)),
    }
}

/// Whether a list reads its rows in its own order, testing each against its
/// conditions (none of which an index answers, see [`narrows`]). Such a list
/// may read far for a rare value, so it is read a window at a time
/// ([`window_end`], [`list_until`]).
pub fn windowed(query: &ListQuery) -> bool {
    !query.conditions.is_empty()
        && !query
            .conditions
            .iter()
            .any(|c| narrows(query.entity, query.sort.field, c))
}

/// Whether counting the rows under these conditions, up to a limit, reads
/// about as many rows as it counts: no conditions, one an index answers
/// directly, or only values of indexed columns. A text search or a value of
/// a column without an index may read the whole table for a few matches.
pub fn count_bounded(entity: Entity, conditions: &[Condition]) -> bool {
    conditions.iter().any(|c| narrows(entity, "", c))
        || conditions
            .iter()
            .all(|c| matches!(c, Condition::Eq(f, _) if indexed(entity, f)))
}

/// SELECT of a page of records with keyset pagination.
pub fn list(d: Dialect, query: &ListQuery) -> Query {
    list_query(d, query, None, false)
}

/// SELECT of the row `window` rows into a list (after its cursor, in its
/// order, whatever its conditions) and of the row after it: where a window of
/// a [`windowed`] list ends, and whether the list goes on after it. No row:
/// the list ends within the window; one row: the list ends with the window.
pub fn window_end(d: Dialect, query: &ListQuery, window: u32) -> Query {
    let bare = ListQuery {
        conditions: Vec::new(),
        limit: 2,
        ..query.clone()
    };
    let mut q = list_query(d, &bare, None, false);
    q.sql
        .push_str(&format!(" OFFSET {}", window.saturating_sub(1)));
    q
}

/// SELECT of a page of records with keyset pagination that ends at `until`
/// (that row included): the rows of a window ([`window_end`]) that match. On
/// SQLite an equality on a column of few values is kept from the planner
/// (see [`broad`]) unless the list is sorted by it: with no statistics it
/// would take that column's index and sort every row of the value, a million
/// orders of one status, where walking the list's order stops at a page.
pub fn list_until(d: Dialect, query: &ListQuery, until: Option<&(SqlValue, Uuid)>) -> Query {
    list_query(d, query, until, true)
}

fn list_query(
    d: Dialect,
    query: &ListQuery,
    until: Option<&(SqlValue, Uuid)>,
    hint: bool,
) -> Query {
    let mut q = Query::new(d);
    if hint {
        q.hint_sort = Some(query.sort.field);
    }
    let entity = query.entity;
    let mut wheres = where_clause(&mut q, entity, &query.conditions);
    let key = sort_expr(entity, query.sort.field);
    let (cmp, back, dir) = if query.sort.descending {
        ("<", ">", "DESC")
    } else {
        (">", "<", "ASC")
    };
    if let Some((v, id)) = &query.after {
        let vm = q.bind(sort_sentinel(entity, query.sort.field, v));
        let im = q.bind(uuid_value(*id));
        // The sort key alone first: SQLite takes the row-value comparison
        // as a range of an index on a column but not of one on an
        // expression, and would walk such an index from its start.
        wheres.push(format!("{key} {cmp}= {vm}"));
        wheres.push(format!("({key}, \"id\") {cmp} ({vm}, {im})"));
    }
    if let Some((v, id)) = until {
        let vm = q.bind(sort_sentinel(entity, query.sort.field, v));
        let im = q.bind(uuid_value(*id));
        wheres.push(format!("{key} {back}= {vm}"));
        wheres.push(format!("({key}, \"id\") {back}= ({vm}, {im})"));
    }
    let wh = where_text(&wheres);
    let limit = q.bind(SqlValue::Int(i64::from(query.limit)));
    q.sql = format!(
        "SELECT {} FROM {}{wh} ORDER BY {key} {dir}, \"id\" {dir} LIMIT {limit}",
        select_list(entity),
        ident(entity.plural())
    );
    q
}

/// SELECT of the records under `conditions` grouped by the values of the
/// columns `group`: each group's values, its count, how many have a value in
/// `sum`, and their sum (as a 64-bit integer on both backends).
pub fn group(
    d: Dialect,
    entity: Entity,
    conditions: &[Condition],
    group: &[&'static str],
    sum: &'static str,
) -> Query {
    let mut q = Query::new(d);
    let wheres = where_clause(&mut q, entity, conditions);
    let wh = where_text(&wheres);
    let cols = group
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let s = ident(sum);
    q.sql = format!(
        "SELECT {cols}, COUNT(*), COUNT({s}), CAST(COALESCE(SUM({s}), 0) AS BIGINT) \
         FROM {}{wh} GROUP BY {cols} ORDER BY {cols}",
        ident(entity.plural())
    );
    q
}

/// SELECT of the number of records and of how many hold a value in each of
/// `fields` (COUNT of the column: sealed columns are counted as stored,
/// never opened), in one scan of the table.
pub fn count_values(d: Dialect, entity: Entity, fields: &[&'static str]) -> Query {
    let mut q = Query::new(d);
    let mut cols = vec!["COUNT(*)".to_string()];
    cols.extend(fields.iter().map(|f| format!("COUNT({})", ident(f))));
    q.sql = format!("SELECT {} FROM {}", cols.join(", "), ident(entity.plural()));
    q
}

/// SELECT COUNT(*) with filters; with `up_to`, of at most that many rows, a
/// count that stops there (a list's total costs the same at ten million rows
/// as at ten thousand).
pub fn count(d: Dialect, entity: Entity, conditions: &[Condition], up_to: Option<u64>) -> Query {
    let mut q = Query::new(d);
    let wheres = where_clause(&mut q, entity, conditions);
    let wh = where_text(&wheres);
    let table = ident(entity.plural());
    q.sql = match up_to {
        None => format!("SELECT COUNT(*) FROM {table}{wh}"),
        Some(n) => {
            let limit = q.bind(SqlValue::Int(i64::try_from(n).unwrap_or(i64::MAX)));
            format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table}{wh} LIMIT {limit}) AS counted")
        }
    };
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sort;

    #[test]
    fn list_binds_every_value_and_orders_by_key_then_id() {
        let q = list(
            Dialect::Postgres,
            &ListQuery {
                entity: Entity::Contact,
                conditions: vec![Condition::Contains("first_name", "50%_off".into())],
                sort: Sort {
                    field: "created_at",
                    descending: true,
                },
                after: Some((SqlValue::Null, Uuid::nil())),
                limit: 51,
            },
        );
        // NOT NULL everywhere: the bare column, so its (column, id) index is used.
        assert!(
            q.sql.contains("ORDER BY \"created_at\" DESC, \"id\" DESC"),
            "{}",
            q.sql
        );
        assert!(q.sql.contains("< ($2, $3)"));
        assert_eq!(q.binds[0], SqlValue::Text("%50\\%\\_off%".into()));
        assert_eq!(q.binds[1], SqlValue::Int(i64::MIN));
        assert_eq!(q.binds.len(), 4);
        assert!(!q.sql.contains("50%"));
    }

    #[test]
    fn a_cursor_value_of_another_type_is_mapped_to_the_sort_key_type() {
        let page = |v: SqlValue| {
            list(
                Dialect::Postgres,
                &ListQuery {
                    entity: Entity::Contact,
                    conditions: vec![],
                    sort: Sort {
                        field: "created_at",
                        descending: true,
                    },
                    after: Some((v, Uuid::nil())),
                    limit: 10,
                },
            )
            .binds[0]
                .clone()
        };
        // Where SQLite's cross-type order puts them: text after every number.
        assert_eq!(page(SqlValue::Text("zzz".into())), SqlValue::Int(i64::MAX));
        assert_eq!(page(SqlValue::Bool(true)), SqlValue::Int(1));
        assert_eq!(page(SqlValue::Null), SqlValue::Int(i64::MIN));
        assert_eq!(page(SqlValue::Int(7)), SqlValue::Int(7));
    }

    #[test]
    fn a_nullable_sort_key_puts_nulls_first() {
        let q = list(
            Dialect::Sqlite,
            &ListQuery {
                entity: Entity::Deal,
                conditions: vec![],
                sort: Sort {
                    field: "amount",
                    descending: false,
                },
                after: None,
                limit: 10,
            },
        );
        assert!(
            q.sql
                .contains("ORDER BY COALESCE(\"amount\", -9223372036854775808) ASC"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn a_required_column_sorts_bare_and_a_nullable_one_through_its_indexed_expression() {
        let page = |field: &'static str| {
            list(
                Dialect::Sqlite,
                &ListQuery {
                    entity: Entity::Deal,
                    conditions: Vec::new(),
                    sort: Sort {
                        field,
                        descending: false,
                    },
                    after: Some((SqlValue::Int(5), Uuid::nil())),
                    limit: 51,
                },
            )
            .sql
        };
        // Required (NOT NULL): the (stage, id) index serves it as it is.
        let stage = page("stage");
        assert!(
            stage.contains("ORDER BY \"stage\" ASC, \"id\" ASC"),
            "{stage}"
        );
        assert!(
            stage.contains("\"stage\" >= ?1 AND (\"stage\", \"id\") > (?1, ?2)"),
            "{stage}"
        );
        // Optional: the expression migration 13 indexes, bounded alone first.
        let amount = page("amount");
        let key = format!("COALESCE(\"amount\", {})", i64::MIN);
        assert!(amount.contains(&format!("ORDER BY {key} ASC")), "{amount}");
        assert!(
            amount.contains(&format!("{key} >= ?1 AND ({key}, \"id\") > (?1, ?2)")),
            "{amount}"
        );
        let migration = include_str!("../migrations/sqlite/0013_sort_indexes.sql");
        assert!(migration.contains(&format!("deals ({}, id)", key.replace('"', ""))));
    }

    #[test]
    fn a_count_up_to_a_limit_counts_a_limited_subquery() {
        let q = count(Dialect::Postgres, Entity::Order, &[], Some(10_001));
        assert_eq!(
            q.sql,
            "SELECT COUNT(*) FROM (SELECT 1 FROM \"orders\" LIMIT $1) AS counted"
        );
        assert_eq!(q.binds, vec![SqlValue::Int(10_001)]);
    }

    #[test]
    fn empty_id_list_matches_nothing() {
        let q = count(
            Dialect::Sqlite,
            Entity::Deal,
            &[Condition::IdIn(vec![])],
            None,
        );
        assert!(q.sql.ends_with("WHERE 1 = 0"));
        let q = count(
            Dialect::Sqlite,
            Entity::Deal,
            &[Condition::In("contact_id", vec![])],
            None,
        );
        assert!(q.sql.ends_with("WHERE 1 = 0"));
    }

    #[test]
    fn a_value_list_binds_each_value_as_the_column_type() {
        let q = count(
            Dialect::Postgres,
            Entity::Deal,
            &[Condition::In(
                "contact_id",
                vec![SqlValue::Text("a".into()), SqlValue::Text("b".into())],
            )],
            None,
        );
        assert!(
            q.sql.ends_with("WHERE \"contact_id\" IN ($1, $2)"),
            "{}",
            q.sql
        );
        assert_eq!(q.binds.len(), 2);
        assert_eq!(q.types[0], column_type_of(Entity::Deal, "contact_id"));
    }

    #[test]
    fn a_window_keeps_columns_of_few_values_from_the_sqlite_planner() {
        let query = |field| ListQuery {
            entity: Entity::Order,
            conditions: vec![
                Condition::Eq("status", SqlValue::Text("completed".into())),
                Condition::Eq("total", SqlValue::Int(5)),
            ],
            sort: Sort {
                field,
                descending: true,
            },
            after: None,
            limit: 51,
        };
        let end = (SqlValue::Int(7), Uuid::nil());
        let q = list_until(Dialect::Sqlite, &query("created_at"), Some(&end));
        // The status is a filter, the total (a column of many values) may
        // use its index, and the page stops at the window's end.
        assert!(
            q.sql.contains("+\"status\" = ?1 AND \"total\" = ?2"),
            "{}",
            q.sql
        );
        assert!(
            q.sql
                .contains("\"created_at\" >= ?3 AND (\"created_at\", \"id\") >= (?3, ?4)"),
            "{}",
            q.sql
        );
        // Sorted by the status, its index is the way to the page.
        let q = list_until(Dialect::Sqlite, &query("status"), None);
        assert!(q.sql.contains("WHERE \"status\" = ?1"), "{}", q.sql);
        // PostgreSQL plans by statistics; plain lists are unchanged.
        let q = list_until(Dialect::Postgres, &query("created_at"), None);
        assert!(q.sql.contains("WHERE \"status\" = $1"), "{}", q.sql);
        let q = list(Dialect::Sqlite, &query("created_at"));
        assert!(q.sql.contains("WHERE \"status\" = ?1"), "{}", q.sql);
        // A range of the sort key, as the list sorts it (NULL lowest).
        let q = list(
            Dialect::Postgres,
            &ListQuery {
                conditions: vec![
                    Condition::SortKeyAfter("completed_at", SqlValue::Int(1)),
                    Condition::SortKeyBefore("completed_at", SqlValue::Int(9)),
                ],
                ..query("created_at")
            },
        );
        let key = sort_expr(Entity::Order, "completed_at");
        assert!(
            q.sql.contains(&format!("{key} > $1 AND {key} < $2")),
            "{}",
            q.sql
        );
        // The window's end: the row `window` rows on, whatever the filters.
        let q = window_end(Dialect::Sqlite, &query("created_at"), 500);
        assert!(!q.sql.contains("WHERE"), "{}", q.sql);
        assert!(q.sql.ends_with("LIMIT ?1 OFFSET 499"), "{}", q.sql);
    }

    #[test]
    fn lists_and_counts_know_which_conditions_an_index_answers() {
        let list = |entity, conditions, field| ListQuery {
            entity,
            conditions,
            sort: Sort {
                field,
                descending: true,
            },
            after: None,
            limit: 51,
        };
        let kind = || Condition::Eq("kind", SqlValue::Text("task".into()));
        let contact = || Condition::Eq("contact_id", SqlValue::Text("c".into()));
        let search = || Condition::Contains("title", "x".into());
        let currency = || Condition::Eq("currency", SqlValue::Text("EUR".into()));
        // No conditions: a plain page.
        assert!(!windowed(&list(Entity::Activity, vec![], "created_at")));
        assert!(windowed(&list(
            Entity::Activity,
            vec![kind()],
            "created_at"
        )));
        assert!(!windowed(&list(Entity::Activity, vec![kind()], "kind")));
        // Tasks by due date: an index holds each kind in due order.
        assert!(!windowed(&list(Entity::Activity, vec![kind()], "due_at")));
        let q = list_until(
            Dialect::Sqlite,
            &list(Entity::Activity, vec![kind()], "due_at"),
            None,
        );
        assert!(q.sql.contains("WHERE \"kind\" = ?1"), "{}", q.sql);
        assert!(!windowed(&list(
            Entity::Activity,
            vec![kind(), contact()],
            "created_at"
        )));
        assert!(windowed(&list(Entity::Deal, vec![search()], "created_at")));
        // An owner's records (a role's scope) narrow any list.
        let scope = Condition::Or(vec![Condition::Eq("owner_id", SqlValue::Text("u".into()))]);
        assert!(!windowed(&list(
            Entity::Deal,
            vec![search(), scope.clone()],
            "created_at"
        )));
        // Counts: an indexed column of few values counts through its index;
        // a column without one, or a text search, may read the whole table.
        assert!(count_bounded(Entity::Activity, &[]));
        assert!(count_bounded(Entity::Activity, &[kind()]));
        assert!(!count_bounded(Entity::Order, &[currency()]));
        assert!(!count_bounded(Entity::Deal, &[search()]));
        assert!(count_bounded(Entity::Deal, &[search(), scope]));
    }
}
