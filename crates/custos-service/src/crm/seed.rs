//! Realistic fake data for trying Custos and for benchmarks: people from
//! several locales with companies, deals, activities and orders. It goes
//! through the same sealing and auditing path as real data.

use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::validate::DEFAULT_STAGES;
use custos_domain::{Entity, Value};
use custos_store::{ListQuery, Sort, SqlValue};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What seeding created.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SeedReport {
    /// Contacts.
    pub contacts: u64,
    /// Companies.
    pub companies: u64,
    /// Deals.
    pub deals: u64,
    /// Activities.
    pub activities: u64,
    /// Orders.
    pub orders: u64,
}

struct Locale {
    first: &'static [&'static str],
    last: &'static [&'static str],
    phone: &'static str,
    domain: &'static str,
    cities: &'static [&'static str],
    currency: &'static str,
}

const LOCALES: &[Locale] = &[
    Locale {
        first: &[
            "Olivia", "James", "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Emily",
            "Noah",
        ],
        last: &[
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
            "Evans", "Thomas",
        ],
        phone: "+44 20 7946 ",
        domain: "example.co.uk",
        cities: &["London", "Leeds", "Bristol", "Glasgow"],
        currency: "GBP",
    },
    Locale {
        first: &[
            "Sophie",
            "Lukas",
            "Marie",
            "Jonas",
            "Hannah",
            "Jürgen",
            "Lea",
            "Felix",
            "Anja",
            "Maximilian",
        ],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schäfer",
            "Koch",
        ],
        phone: "+49 30 901820",
        domain: "beispiel.de",
        cities: &["Berlin", "München", "Köln", "Hamburg"],
        currency: "EUR",
    },
    Locale {
        first: &[
            "Camille", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Inès", "Jules",
            "Élodie",
        ],
        last: &[
            "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
            "Leroy", "Moreau",
        ],
        phone: "+33 1 70 18 ",
        domain: "exemple.fr",
        cities: &["Paris", "Lyon", "Marseille", "Toulouse"],
        currency: "EUR",
    },
    Locale {
        first: &[
            "Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Leo", "Julia", "Álvaro", "Paula",
            "Daniel",
        ],
        last: &[
            "García",
            "Rodríguez",
            "González",
            "Fernández",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Ruiz",
        ],
        phone: "+34 91 123 ",
        domain: "ejemplo.es",
        cities: &["Madrid", "Barcelona", "Valencia", "Sevilla"],
        currency: "EUR",
    },
    Locale {
        first: &[
            "Haruto", "Yui", "Sota", "Hina", "Riku", "Mei", "Yuto", "Sakura", "Kaito", "Aoi",
        ],
        last: &[
            "Satō",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Watanabe",
            "Itō",
            "Yamamoto",
            "Nakamura",
            "Kobayashi",
            "Katō",
        ],
        phone: "+81 3 1234 ",
        domain: "example.jp",
        cities: &["Tōkyō", "Ōsaka", "Kyōto", "Sapporo"],
        currency: "JPY",
    },
    Locale {
        first: &[
            "Emma",
            "Liam",
            "Charlotte",
            "Elijah",
            "Mia",
            "Lucas",
            "Harper",
            "Mason",
            "Evelyn",
            "Logan",
        ],
        last: &[
            "Miller",
            "Davis",
            "Garcia",
            "Rodriguez",
            "Martinez",
            "Anderson",
            "Jackson",
            "White",
            "Harris",
            "Clark",
        ],
        phone: "+1 415 555 ",
        domain: "example.com",
        cities: &["San Francisco", "Austin", "Boston", "Denver"],
        currency: "USD",
    },
];

const COMPANY_WORDS: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Adventure",
    "Blue Yonder",
    "Litware",
    "Proseware",
    "Lucerne",
];
const COMPANY_KINDS: &[&str] = &["Ltd", "GmbH", "SARL", "S.L.", "KK", "Inc"];
const NOTES: &[&str] = &[
    "Discussed renewal terms and next quarter's volume.",
    "Sent the proposal; waiting for legal review.",
    "Call about onboarding; asked for a training session.",
    "Met at the trade fair; interested in the premium plan.",
    "Follow up on the open invoice.",
];

/// A small deterministic generator (xorshift64*), so seeded data is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// `s` as the lower-case ASCII letters and digits of an email's local part:
/// accented letters lose their accents (NFKD, then the combining marks are
/// dropped: Álvaro → alvaro, Satō → sato), the few letters that do not
/// decompose are spelled out (ß → ss, Ł → l), anything else is left out.
fn ascii_local(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        match c {
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            'ß' | 'ẞ' => out.push_str("ss"),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ø' | 'Ø' => out.push('o'),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            _ => {}
        }
    }
    out
}

impl Custos {
    /// Creates `contacts` fake people (and their companies, deals, activities
    /// and orders) in batches, each batch one transaction.
    pub async fn seed(
        &self,
        p: &Principal,
        contacts: u64,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<SeedReport> {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ contacts);
        let mut report = SeedReport::default();
        let now = self.now();
        let stages: Vec<String> = {
            let mut tx = self.inner.store.begin().await?;
            Self::stages_in(tx.as_mut()).await?
        };
        let stages = if stages.is_empty() {
            DEFAULT_STAGES.iter().map(|s| s.to_string()).collect()
        } else {
            stages
        };
        let n_companies = (contacts / 20).max(1);
        let mut companies: Vec<Uuid> = Vec::new();
        let batch = 500u64;
        let mut made = 0u64;
        while made < contacts {
            let mut tx = self.inner.store.begin().await?;
            while companies.len() < n_companies as usize && (companies.len() as u64) < made / 20 + 1
            {
                let i = companies.len();
                let name = format!(
                    "{} {} {}",
                    rng.pick(COMPANY_WORDS),
                    i + 1,
                    rng.pick(COMPANY_KINDS)
                );
                let mut v = BTreeMap::new();
                v.insert("name", Value::Text(name.clone()));
                v.insert(
                    "domain",
                    Value::Text(format!("{}.example", ascii_local(&name))),
                );
                companies.push(
                    self.insert_validated(tx.as_mut(), p, Entity::Company, v)
                        .await?
                        .0,
                );
                report.companies += 1;
            }
            let end = (made + batch).min(contacts);
            for i in made..end {
                let loc = &LOCALES[rng.below(LOCALES.len() as u64) as usize];
                let (first, last) = (rng.pick(loc.first), rng.pick(loc.last));
                let mut v = BTreeMap::new();
                v.insert("first_name", Value::Text(first.to_string()));
                v.insert("last_name", Value::Text(last.to_string()));
                v.insert(
                    "email",
                    Value::Text(format!(
                        "{}.{}.{i}@{}",
                        ascii_local(first),
                        ascii_local(last),
                        loc.domain
                    )),
                );
                v.insert(
                    "phone",
                    Value::Text(format!("{}{:04}", loc.phone, i % 10_000)),
                );
                if rng.below(3) == 0 {
                    v.insert(
                        "tags",
                        Value::Tags(vec![
                            ["vip", "newsletter", "partner", "trial"][rng.below(4) as usize]
                                .to_string(),
                        ]),
                    );
                }
                let company = companies[rng.below(companies.len() as u64) as usize];
                v.insert("company_id", Value::Uuid(company));
                let (contact, _) = self
                    .insert_validated(tx.as_mut(), p, Entity::Contact, v)
                    .await?;
                report.contacts += 1;
                if rng.below(3) == 0 {
                    let mut d = BTreeMap::new();
                    d.insert(
                        "title",
                        Value::Text(format!("{} licences", 5 + rng.below(200))),
                    );
                    d.insert(
                        "stage",
                        Value::Text(stages[rng.below(stages.len() as u64) as usize].clone()),
                    );
                    d.insert(
                        "amount",
                        Value::Money(((1 + rng.below(500)) * 10_000) as i64),
                    );
                    d.insert("currency", Value::Text(loc.currency.to_string()));
                    d.insert("company_id", Value::Uuid(company));
                    d.insert("contact_id", Value::Uuid(contact));
                    self.insert_validated(tx.as_mut(), p, Entity::Deal, d)
                        .await?;
                    report.deals += 1;
                }
                for _ in 0..rng.below(4) {
                    let mut a = BTreeMap::new();
                    a.insert("contact_id", Value::Uuid(contact));
                    a.insert(
                        "kind",
                        Value::Text(
                            ["note", "call", "email", "meeting", "task"][rng.below(5) as usize]
                                .to_string(),
                        ),
                    );
                    a.insert("body", Value::Text(rng.pick(NOTES).to_string()));
                    a.insert(
                        "occurred_at",
                        Value::Timestamp(now - time::Duration::hours(rng.below(24 * 90) as i64)),
                    );
                    self.insert_validated(tx.as_mut(), p, Entity::Activity, a)
                        .await?;
                    report.activities += 1;
                }
                if rng.below(2) == 0 {
                    let placed = now - time::Duration::days(rng.below(700) as i64);
                    let mut o = BTreeMap::new();
                    o.insert("contact_id", Value::Uuid(contact));
                    o.insert("status", Value::Text("completed".into()));
                    o.insert("total", Value::Money((rng.below(100_000) + 500) as i64));
                    o.insert("currency", Value::Text(loc.currency.to_string()));
                    o.insert(
                        "shipping_address",
                        Value::Text(format!(
                            "{} Market Street, {}",
                            1 + rng.below(200),
                            rng.pick(loc.cities)
                        )),
                    );
                    o.insert("placed_at", Value::Timestamp(placed));
                    o.insert(
                        "completed_at",
                        Value::Timestamp(placed + time::Duration::days(2)),
                    );
                    self.insert_validated(tx.as_mut(), p, Entity::Order, o)
                        .await?;
                    report.orders += 1;
                }
            }
            tx.commit().await?;
            made = end;
            progress(made, contacts);
        }
        Ok(report)
    }

    /// Adds about `total` fake activities, orders or deals (`entity`) spread evenly
    /// over the existing contacts, plus `focus.1` more for the contact
    /// `focus.0` (for measuring one person's export among many). Batches of
    /// 5,000 records, each batch one transaction, through the same sealing
    /// and audit path as real data. `progress` gets (records made, records
    /// to make).
    pub async fn seed_related(
        &self,
        p: &Principal,
        entity: Entity,
        total: u64,
        focus: Option<(Uuid, u64)>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        if !matches!(entity, Entity::Activity | Entity::Order | Entity::Deal) {
            return Err(ServiceError::invalid(
                "entity",
                "fake records are activities, orders or deals",
            ));
        }
        let now = self.now();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ total);
        let contacts = {
            let mut tx = self.inner.store.begin().await?;
            tx.count_records(Entity::Contact, &[]).await?
        };
        let goal = if contacts == 0 { 0 } else { total } + focus.map_or(0, |f| f.1);
        let per_contact = total.checked_div(contacts).unwrap_or(0);
        let mut extra = total - per_contact * contacts;
        let mut pending: Vec<(Uuid, u64)> = focus.into_iter().collect();
        let mut after: Option<(SqlValue, Uuid)> = None;
        let mut made = 0u64;
        let batch = 5_000u64;
        // Prepared activities, written 500 at a time in a few statements.
        let mut records = custos_store::NewRecords::default();
        loop {
            let mut tx = self.inner.store.begin().await?;
            // Fill this batch from the pending contacts, paging in more
            // contact ids (oldest first) as needed.
            let mut in_batch = 0u64;
            while in_batch < batch {
                if pending.is_empty() {
                    if contacts == 0 {
                        break;
                    }
                    let page = tx
                        .list_records(&ListQuery {
                            entity: Entity::Contact,
                            conditions: Vec::new(),
                            sort: Sort {
                                field: "created_at",
                                descending: false,
                            },
                            after: after.clone(),
                            limit: 500,
                        })
                        .await?;
                    let Some(last) = page.last() else { break };
                    after = Some((last.get("created_at").clone(), last.id));
                    // Their keys in one query, not one per person.
                    let ids: Vec<Uuid> = page.iter().map(|r| r.id).collect();
                    self.inner.keys.preload(tx.as_mut(), &ids).await?;
                    for row in page.iter().rev() {
                        let mut n = per_contact;
                        if extra > 0 {
                            n += 1;
                            extra -= 1;
                        }
                        if n > 0 {
                            pending.push((row.id, n));
                        }
                    }
                    continue;
                }
                let Some((contact, left)) = pending.last_mut() else {
                    break;
                };
                let a = fake_related(entity, *contact, &mut rng, now);
                *left -= 1;
                if *left == 0 {
                    pending.pop();
                }
                self.prepare_new(tx.as_mut(), p, entity, a, &mut records)
                    .await?;
                if records.rows.len() >= 500 {
                    tx.insert_new(&std::mem::take(&mut records)).await?;
                }
                in_batch += 1;
            }
            if in_batch == 0 {
                break;
            }
            tx.insert_new(&std::mem::take(&mut records)).await?;
            tx.commit().await?;
            made += in_batch;
            progress(made, goal);
        }
        Ok(made)
    }
}

/// One fake activity (of any kind, some of them tasks due soon) or order
/// (placed in the last two years, most of them completed) of `contact`.
fn fake_related(
    entity: Entity,
    contact: Uuid,
    rng: &mut Rng,
    now: time::OffsetDateTime,
) -> BTreeMap<&'static str, Value> {
    let mut r = BTreeMap::new();
    r.insert("contact_id", Value::Uuid(contact));
    if entity == Entity::Deal {
        let stages = custos_domain::validate::DEFAULT_STAGES;
        let stage = stages[rng.below(stages.len() as u64) as usize];
        r.insert(
            "title",
            Value::Text(format!("{} licences", 5 + rng.below(200))),
        );
        r.insert("stage", Value::Text(stage.to_string()));
        r.insert(
            "amount",
            Value::Money(((1 + rng.below(500)) * 10_000) as i64),
        );
        r.insert(
            "currency",
            Value::Text(["EUR", "USD", "GBP"][rng.below(3) as usize].to_string()),
        );
        if stage == "won" || stage == "lost" {
            let closed = now - time::Duration::days(rng.below(365) as i64);
            r.insert("close_date", Value::Date(closed.date()));
        }
        return r;
    }
    if entity == Entity::Order {
        let placed = now - time::Duration::hours(rng.below(24 * 730) as i64);
        let status = [
            "pending",
            "paid",
            "shipped",
            "completed",
            "completed",
            "completed",
        ][rng.below(6) as usize];
        r.insert("status", Value::Text(status.to_string()));
        r.insert("total", Value::Money((rng.below(100_000) + 500) as i64));
        r.insert("currency", Value::Text("EUR".into()));
        r.insert(
            "shipping_address",
            Value::Text(format!("{} Market Street", 1 + rng.below(200))),
        );
        r.insert("placed_at", Value::Timestamp(placed));
        if status == "completed" {
            r.insert(
                "completed_at",
                Value::Timestamp(placed + time::Duration::days(2)),
            );
        }
        return r;
    }
    let kind = ["note", "call", "email", "meeting", "task"][rng.below(5) as usize];
    r.insert("kind", Value::Text(kind.to_string()));
    r.insert("body", Value::Text(rng.pick(NOTES).to_string()));
    r.insert(
        "occurred_at",
        Value::Timestamp(now - time::Duration::hours(rng.below(24 * 365) as i64)),
    );
    if kind == "task" {
        r.insert(
            "due_at",
            Value::Timestamp(now + time::Duration::hours(rng.below(24 * 60) as i64 - 24 * 30)),
        );
        r.insert("done", Value::Bool(rng.below(4) != 0));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::{LOCALES, ascii_local};

    #[test]
    fn email_local_parts_transliterate_instead_of_dropping_letters() {
        for (name, local) in [
            ("Álvaro", "alvaro"),
            ("Émilie", "emilie"),
            ("Satō", "sato"),
            ("Müller", "muller"),
            ("Straße", "strasse"),
            ("Łukasz", "lukasz"),
            ("Søren", "soren"),
            ("O'Brien-Smith", "obriensmith"),
            ("Ｆｕｌｌ", "full"),
        ] {
            assert_eq!(ascii_local(name), local, "{name}");
        }
        // Every first and last name of every locale keeps its first letter.
        for l in LOCALES {
            for n in l.first.iter().chain(l.last.iter()) {
                let first = n.chars().next().unwrap_or('?');
                let got = ascii_local(n);
                assert!(
                    got.starts_with(ascii_local(&first.to_string()).as_str()) && !got.is_empty(),
                    "{n} -> {got}"
                );
            }
        }
    }
}
