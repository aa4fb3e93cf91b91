//! Staff accounts managed through the generic record use cases (admins only):
//! disabling an account and changing a role take effect on the next request.

use crate::common::*;
use custos_domain::{Entity, Role};
use custos_service::{ListParams, RequestMeta, ServiceError};
use custos_testkit::AsJson;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_sign_ins() -> TestResult {
    let env = Env::new().await?;
    let pw = SecretString::from(PASSWORD);
    let u = env
        .custos
        .create_user(&env.admin, "sales@custos.test", Role::Sales, &pw, None)
        .await?;
    let login = env
        .custos
        .login(&RequestMeta::default(), "sales@custos.test", &pw)
        .await?;
    let token = env
        .custos
        .create_api_token(&env.admin, "sales@custos.test", "ci", None)
        .await?;
    env.custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?;
    let view = env
        .custos
        .update(&env.admin, Entity::User, u.id, &json!({"disabled": true}))
        .await?;
    assert_eq!(view.to_json()["disabled"], json!(true));
    for t in [login.token.expose_secret(), token.token.expose_secret()] {
        let r = env.custos.authenticate(t, &RequestMeta::default()).await;
        assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    }
    let r = env
        .custos
        .login(&RequestMeta::default(), "sales@custos.test", &pw)
        .await;
    assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    env.custos
        .update(&env.admin, Entity::User, u.id, &json!({"disabled": false}))
        .await?;
    env.custos
        .login(&RequestMeta::default(), "sales@custos.test", &pw)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_role_change_applies_to_the_next_request() -> TestResult {
    let env = Env::new().await?;
    let sales = env.user("sales@custos.test", Role::Sales).await?;
    let ada = env
        .make_id(Entity::Contact, person("Ada", "Lovelace"))
        .await?;
    assert!(matches!(
        env.custos.delete(&sales, Entity::Contact, ada).await,
        Err(ServiceError::Forbidden(_))
    ));
    let login = env
        .custos
        .login(
            &RequestMeta::default(),
            "sales@custos.test",
            &SecretString::from(PASSWORD),
        )
        .await?;
    env.custos
        .update(
            &env.admin,
            Entity::User,
            sales.user_id,
            &json!({"role": "manager"}),
        )
        .await?;
    let now_manager = env
        .custos
        .authenticate(login.token.expose_secret(), &RequestMeta::default())
        .await?;
    assert_eq!(now_manager.role, Role::Manager);
    env.custos
        .delete(&now_manager, Entity::Contact, ada)
        .await?;
    Ok(())
}

#[tokio::test]
async fn user_records_never_show_the_password_hash() -> TestResult {
    let env = Env::new().await?;
    let u = env
        .custos
        .create_user(
            &env.admin,
            "sales@custos.test",
            Role::Sales,
            &SecretString::from(PASSWORD),
            Some("Sam"),
        )
        .await?;
    let view = env.custos.get(&env.admin, Entity::User, u.id).await?;
    let j = view.to_json();
    assert_eq!(j["email"], json!("sales@custos.test"));
    assert_eq!(j["display_name"], json!("Sam"));
    assert_eq!(j["role"], json!("sales"));
    assert!(
        j.get("password_hash").is_none(),
        "credentials never leave the service: {j}"
    );
    assert!(!j.to_string().contains("argon2"), "{j}");
    let listed = env
        .custos
        .list(
            &env.admin,
            Entity::User,
            &ListParams::parse(Entity::User, &[])?,
        )
        .await?;
    assert_eq!(listed.items.len(), 1);
    assert!(!listed.items[0].to_json().to_string().contains("argon2"));
    Ok(())
}

#[tokio::test]
async fn every_masked_name_is_a_masked_field_in_the_json() -> TestResult {
    let env = Env::new().await?;
    let u = env
        .custos
        .create_user(
            &env.admin,
            "sales@custos.test",
            Role::Sales,
            &SecretString::from(PASSWORD),
            None,
        )
        .await?;
    let j = env
        .custos
        .get(&env.admin, Entity::User, u.id)
        .await?
        .to_json();
    for name in j["masked"].as_array().ok_or("masked is a list")? {
        let name = name.as_str().ok_or("names are strings")?;
        assert_eq!(j[name], json!("•••"), "{name} is named in masked: {j}");
    }
    Ok(())
}
