//! Custom roles (issue 4): permissions per data category (read in full, masked
//! or not at all; write; export; erase) and per record scope (own, team, all);
//! invitations; API-token scopes. Every refusal is a `Forbidden` with a reason.

use crate::common::*;
use custos_domain::{Entity, Grant, Permissions, ReadLevel, RecordScope, Role};
use custos_service::{ListParams, Principal, RequestMeta, RoleInput, ServiceError};
use custos_testkit::AsJson;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

fn grant(read: ReadLevel, write: bool) -> Grant {
    Grant {
        read,
        write,
        export: false,
        erase: false,
    }
}

/// A role input: `base`'s built-in permissions with `changes` applied.
fn role(name: &str, base: Role, scope: RecordScope, changes: &[(&str, Grant)]) -> RoleInput {
    let mut permissions = Permissions::builtin(base);
    permissions.scope = scope;
    for (c, g) in changes {
        permissions.categories.insert(c.to_string(), *g);
    }
    RoleInput {
        name: name.into(),
        label: name.replace('_', " "),
        base,
        permissions,
    }
}

/// Invites a user with `role` (and `team`), sets their password through the
/// invitation, signs them in through the real path.
async fn member(env: &Env, email: &str, role: &str, team: Option<&str>) -> TestResult<Principal> {
    let inv = env
        .custos
        .invite_user(&env.admin, email, role, None, team)
        .await?;
    let pw = SecretString::from(PASSWORD);
    env.custos
        .accept_invitation(inv.token.expose_secret(), &pw, &RequestMeta::default())
        .await?;
    let login = env
        .custos
        .login(&RequestMeta::default(), email, &pw)
        .await?;
    Ok(env
        .custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?)
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, ServiceError>, what: &str) -> String {
    match r {
        Err(ServiceError::Forbidden(m)) => m,
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, ServiceError>, what: &str) -> String {
    match r {
        Err(ServiceError::Invalid(e)) => format!("{e:?}"),
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

async fn ids(env: &Env, p: &Principal, entity: Entity) -> TestResult<Vec<Uuid>> {
    let params = ListParams::parse(entity, &[("limit".into(), "100".into())])?;
    let mut v: Vec<Uuid> = env
        .custos
        .list(p, entity, &params)
        .await?
        .items
        .iter()
        .map(|r| r.id())
        .collect();
    v.sort();
    Ok(v)
}

#[tokio::test]
async fn a_masked_read_level_shows_only_the_shape_and_allows_no_write() -> TestResult {
    let env = Env::new().await?;
    env.custos
        .save_role(
            &env.admin,
            role(
                "callers",
                Role::Sales,
                RecordScope::All,
                &[
                    ("contact_details", grant(ReadLevel::Masked, false)),
                    ("financial", grant(ReadLevel::None, false)),
                ],
            ),
            true,
        )
        .await?;
    let ada = env
        .make_id(
            Entity::Contact,
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "email": "ada@example.com", "phone": "+44 20 7946 0958"}),
        )
        .await?;
    let caller = member(&env, "caller@custos.test", "callers", None).await?;
    assert_eq!(caller.role, Role::Sales);
    assert_eq!(caller.role_name, "callers");

    let j = env
        .custos
        .get(&caller, Entity::Contact, ada)
        .await?
        .to_json();
    assert_eq!(j["first_name"], "Ada", "identity is read in full");
    assert_eq!(j["email"], "a•••@example.com");
    assert_eq!(j["phone"], "•••58");
    let masked: Vec<&str> = j["masked"]
        .as_array()
        .ok_or("masked is a list")?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        masked.contains(&"email") && masked.contains(&"phone"),
        "{j}"
    );
    assert!(!masked.contains(&"first_name"), "{j}");

    // Masked is not readable: it may not be written or searched.
    let before = env.ledger_size().await?;
    let m = forbidden(
        env.custos
            .update(
                &caller,
                Entity::Contact,
                ada,
                &json!({"email": "x@example.com"}),
            )
            .await,
        "writing a masked category",
    );
    assert!(m.contains("contact_details"), "{m}");
    let events = env.events_since(before).await?;
    assert_eq!(
        events.last().map(|e| e.event.outcome.as_str()),
        Some("denied")
    );
    let params = ListParams::parse(
        Entity::Contact,
        &[("email".into(), "ada@example.com".into())],
    )?;
    forbidden(
        env.custos.list(&caller, Entity::Contact, &params).await,
        "searching a masked category",
    );
    // The email is unchanged.
    let j = env
        .custos
        .get(&env.admin, Entity::Contact, ada)
        .await?
        .to_json();
    assert_eq!(j["email"], "ada@example.com");
    Ok(())
}

#[tokio::test]
async fn record_scopes_limit_reads_lists_and_writes_to_own_or_team_records() -> TestResult {
    let env = Env::new().await?;
    env.custos
        .save_role(
            &env.admin,
            role("own_sales", Role::Sales, RecordScope::Own, &[]),
            true,
        )
        .await?;
    env.custos
        .save_role(
            &env.admin,
            role("team_sales", Role::Sales, RecordScope::Team, &[]),
            true,
        )
        .await?;
    let olga = member(&env, "olga@custos.test", "own_sales", Some("north")).await?;
    let nils = member(&env, "nils@custos.test", "team_sales", Some("north")).await?;
    let sven = member(&env, "sven@custos.test", "team_sales", Some("south")).await?;
    let contact = |n: &str| json!({"first_name": n, "last_name": "Test"});
    let by_olga = env
        .custos
        .create(&olga, Entity::Contact, &contact("Olga's"))
        .await?
        .id();
    let by_nils = env
        .custos
        .create(&nils, Entity::Contact, &contact("Nils's"))
        .await?
        .id();
    let by_sven = env
        .custos
        .create(&sven, Entity::Contact, &contact("Sven's"))
        .await?
        .id();
    let by_admin = env.make_id(Entity::Contact, contact("Admin's")).await?;

    // Own: only what Olga owns.
    assert_eq!(ids(&env, &olga, Entity::Contact).await?, vec![by_olga]);
    forbidden(
        env.custos.get(&olga, Entity::Contact, by_nils).await,
        "reading a teammate's contact with own scope",
    );
    forbidden(
        env.custos
            .update(
                &olga,
                Entity::Contact,
                by_admin,
                &json!({"first_name": "X"}),
            )
            .await,
        "changing another's contact",
    );
    forbidden(
        env.custos.delete(&olga, Entity::Contact, by_sven).await,
        "deleting another's contact",
    );
    // Nor can she hand a record to someone outside her scope.
    forbidden(
        env.custos
            .update(
                &olga,
                Entity::Contact,
                by_olga,
                &json!({"owner_id": sven.user_id.to_string()}),
            )
            .await,
        "giving a record away outside the scope",
    );

    // Team: everything the north team owns, nothing of the south's.
    let mut north = vec![by_olga, by_nils];
    north.sort();
    assert_eq!(ids(&env, &nils, Entity::Contact).await?, north);
    env.custos.get(&nils, Entity::Contact, by_olga).await?;
    env.custos
        .update(
            &nils,
            Entity::Contact,
            by_olga,
            &json!({"first_name": "Olga"}),
        )
        .await?;
    forbidden(
        env.custos.get(&nils, Entity::Contact, by_sven).await,
        "reading another team's contact",
    );
    assert_eq!(ids(&env, &sven, Entity::Contact).await?, vec![by_sven]);

    // Activities follow the same rule; the built-in sales role reaches all.
    let act = env
        .custos
        .create(
            &sven,
            Entity::Activity,
            &json!({"kind": "call", "contact_id": by_sven.to_string(), "body": "Hello", "occurred_at": "2026-01-30T14:00:00Z"}),
        )
        .await?
        .id();
    assert!(ids(&env, &nils, Entity::Activity).await?.is_empty());
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    assert_eq!(ids(&env, &sales, Entity::Activity).await?, vec![act]);
    assert_eq!(ids(&env, &sales, Entity::Contact).await?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn role_definitions_are_checked_audited_and_kept_while_held() -> TestResult {
    let env = Env::new().await?;
    let bad = |name: &str, base: Role, changes: &[(&str, Grant)]| {
        role(name, base, RecordScope::All, changes)
    };
    for (input, what) in [
        (bad("X", Role::Sales, &[]), "upper-case name"),
        (bad("sales", Role::Sales, &[]), "a built-in role's name"),
        (bad("super", Role::Admin, &[]), "based on admin"),
        (
            bad(
                "w",
                Role::Sales,
                &[("identity", grant(ReadLevel::Masked, true))],
            ),
            "a one-letter name",
        ),
        (
            bad(
                "writer",
                Role::Sales,
                &[("identity", grant(ReadLevel::Masked, true))],
            ),
            "writing without full read",
        ),
        (
            bad(
                "peeker",
                Role::Sales,
                &[("credentials", grant(ReadLevel::Full, false))],
            ),
            "reading credentials",
        ),
    ] {
        invalid(env.custos.save_role(&env.admin, input, true).await, what);
    }
    assert_eq!(
        env.custos.list_roles(&env.admin).await?.len(),
        Role::ALL.len()
    );

    let before = env.ledger_size().await?;
    env.custos
        .save_role(
            &env.admin,
            role("analysts", Role::Manager, RecordScope::Team, &[]),
            true,
        )
        .await?;
    let events = env.events_since(before).await?;
    let created = events
        .iter()
        .find(|e| e.event.action == "role.create")
        .expect("role.create on record");
    let detail = created.event.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("role=analysts") && detail.contains("scope=team"),
        "{detail}"
    );
    assert!(matches!(
        env.custos
            .save_role(
                &env.admin,
                role("analysts", Role::Manager, RecordScope::All, &[]),
                true,
            )
            .await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        env.custos
            .save_role(
                &env.admin,
                role("nobody", Role::Sales, RecordScope::All, &[]),
                false
            )
            .await,
        Err(ServiceError::NotFound(_))
    ));

    // Held roles stay; a change applies on the holder's next request.
    let ann = member(&env, "ann@custos.test", "analysts", None).await?;
    assert_eq!(ann.scope(), RecordScope::Team);
    assert!(matches!(
        env.custos.delete_role(&env.admin, "analysts").await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        env.custos.delete_role(&env.admin, "manager").await,
        Err(ServiceError::Conflict(_))
    ));
    env.custos
        .save_role(
            &env.admin,
            role("analysts", Role::Manager, RecordScope::Own, &[]),
            false,
        )
        .await?;
    let login = env
        .custos
        .login(
            &RequestMeta::default(),
            "ann@custos.test",
            &SecretString::from(PASSWORD),
        )
        .await?;
    let ann = env
        .custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?;
    assert_eq!(ann.scope(), RecordScope::Own);
    invalid(
        env.custos
            .set_user_role(&env.admin, ann.user_id, "no_such_role", None)
            .await,
        "an unknown role",
    );
    env.custos
        .set_user_role(&env.admin, ann.user_id, "support", Some("north"))
        .await?;
    env.custos.delete_role(&env.admin, "analysts").await?;
    assert_eq!(
        env.custos.list_roles(&env.admin).await?.len(),
        Role::ALL.len()
    );

    // Only administrators see or change roles.
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    forbidden(
        env.custos.list_roles(&sales).await,
        "a salesperson listing roles",
    );
    forbidden(
        env.custos
            .save_role(
                &sales,
                role("mine", Role::Sales, RecordScope::All, &[]),
                true,
            )
            .await,
        "a salesperson making a role",
    );
    Ok(())
}

#[tokio::test]
async fn erasing_and_exporting_need_those_rights_on_every_personal_category() -> TestResult {
    let env = Env::new().await?;
    let mut no_erase = BTreeMap::new();
    for c in [
        "identity",
        "contact_details",
        "communications",
        "behavioural",
    ] {
        no_erase.insert(
            c,
            Grant {
                read: ReadLevel::Full,
                write: true,
                export: true,
                erase: c != "communications",
            },
        );
    }
    let changes: Vec<(&str, Grant)> = no_erase.into_iter().collect();
    env.custos
        .save_role(
            &env.admin,
            role(
                "dpo_deputy",
                Role::PrivacyOfficer,
                RecordScope::All,
                &changes,
            ),
            true,
        )
        .await?;
    let ada = env
        .make_id(
            Entity::Contact,
            json!({"first_name": "Ada", "last_name": "L"}),
        )
        .await?;
    let deputy = member(&env, "deputy@custos.test", "dpo_deputy", None).await?;
    let m = forbidden(
        env.custos.erase_subject(&deputy, ada).await,
        "erasing without erase on communications",
    );
    assert!(m.contains("erase"), "{m}");
    // Still there.
    env.custos.get(&env.admin, Entity::Contact, ada).await?;
    let po = env.user("po@custos.test", Role::PrivacyOfficer).await?;
    env.custos.erase_subject(&po, ada).await?;
    assert!(matches!(
        env.custos.get(&env.admin, Entity::Contact, ada).await,
        Err(ServiceError::Gone(_))
    ));
    Ok(())
}

#[tokio::test]
async fn invitations_set_a_password_once_and_expire() -> TestResult {
    let env = Env::new().await?;
    let inv = env
        .custos
        .invite_user(
            &env.admin,
            "new@custos.test",
            "support",
            Some("New"),
            Some("help"),
        )
        .await?;
    let token = inv.token.expose_secret().to_string();
    assert!(token.len() >= 32);
    assert!(env.custos.invitation_live(&token).await?);
    assert_eq!(inv.user.team.as_deref(), Some("help"));
    // Nobody can sign in before the password is set.
    assert!(
        env.custos
            .login(
                &RequestMeta::default(),
                "new@custos.test",
                &SecretString::from(PASSWORD)
            )
            .await
            .is_err()
    );
    invalid(
        env.custos
            .accept_invitation(
                &token,
                &SecretString::from("short"),
                &RequestMeta::default(),
            )
            .await,
        "a short password",
    );
    assert!(
        env.custos.invitation_live(&token).await?,
        "a refused try keeps the link"
    );
    let pw = SecretString::from(PASSWORD);
    env.custos
        .accept_invitation(&token, &pw, &RequestMeta::default())
        .await?;
    env.custos
        .login(&RequestMeta::default(), "new@custos.test", &pw)
        .await?;
    forbidden(
        env.custos
            .accept_invitation(&token, &pw, &RequestMeta::default())
            .await,
        "a used invitation",
    );
    forbidden(
        env.custos
            .accept_invitation("csi_made_up", &pw, &RequestMeta::default())
            .await,
        "an unknown invitation",
    );

    let late = env
        .custos
        .invite_user(&env.admin, "late@custos.test", "sales", None, None)
        .await?;
    env.clock.advance(Duration::from_secs(8 * 24 * 3600));
    assert!(
        !env.custos
            .invitation_live(late.token.expose_secret())
            .await?
    );
    forbidden(
        env.custos
            .accept_invitation(late.token.expose_secret(), &pw, &RequestMeta::default())
            .await,
        "an expired invitation",
    );
    // Inviting needs an administrator and a role that exists.
    invalid(
        env.custos
            .invite_user(&env.admin, "x@custos.test", "wizard", None, None)
            .await,
        "an unknown role",
    );
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    forbidden(
        env.custos
            .invite_user(&sales, "y@custos.test", "sales", None, None)
            .await,
        "a salesperson inviting",
    );
    Ok(())
}

#[tokio::test]
async fn api_token_scopes_limit_what_the_token_does() -> TestResult {
    let env = Env::new().await?;
    env.user("sales@custos.test", Role::Sales).await?;
    let token = env
        .custos
        .create_scoped_token(
            &env.admin,
            "sales@custos.test",
            "read only",
            Some(Duration::from_secs(3600)),
            Some(vec!["read".into()]),
        )
        .await?;
    let p = env
        .custos
        .authenticate(token.token.expose_secret(), &RequestMeta::default())
        .await?;
    ids(&env, &p, Entity::Contact).await?;
    let m = forbidden(
        env.custos
            .create(
                &p,
                Entity::Contact,
                &json!({"first_name": "No", "last_name": "Way"}),
            )
            .await,
        "a read-only token creating",
    );
    assert!(m.contains("write scope"), "{m}");
    assert_eq!(ids(&env, &env.admin, Entity::Contact).await?.len(), 0);

    // An administrator's token without the admin scope cannot manage users.
    env.user("admin@custos.test", Role::Admin).await?;
    let t = env
        .custos
        .create_scoped_token(
            &env.admin,
            "admin@custos.test",
            "crm only",
            None,
            Some(vec!["read".into(), "write".into()]),
        )
        .await?;
    let admin_token = env
        .custos
        .authenticate(t.token.expose_secret(), &RequestMeta::default())
        .await?;
    forbidden(
        env.custos.list_users(&admin_token).await,
        "users without admin scope",
    );
    env.custos
        .create(
            &admin_token,
            Entity::Contact,
            &json!({"first_name": "Yes", "last_name": "Way"}),
        )
        .await?;
    // Expired tokens stop working.
    env.clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        env.custos
            .authenticate(token.token.expose_secret(), &RequestMeta::default())
            .await,
        Err(ServiceError::Unauthenticated)
    ));
    Ok(())
}
