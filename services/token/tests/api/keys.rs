//! Signing keys: the JWKS, creation on first start, rotation with overlap, encryption at rest.

use std::time::Duration;

use chrono::TimeDelta;
use protocol::keys::SigningAlg;
use serde_json::json;
use server::config::EncryptionKey;
use store::signing_keys::{self, SigningKeyRow};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_jwks_publishes_public_keys_only_and_may_be_cached() {
    let env = Env::start().await;
    let res = env.http.get(env.url("/oauth2/jwks")).send().await.expect("jwks");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let body: serde_json::Value = res.json().await.expect("json");
    let keys = body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    assert!(key["kid"].is_string() && key.get("d").is_none(), "{key}");
    let res = env.http.get(env.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 200);

    // the private part is stored sealed, bound to its kid
    let rows = signing_keys::list(&mut *env.db.conn().await).await.expect("rows");
    assert_eq!(rows.len(), 1);
    let kek = *env.settings.keys.encryption_key.as_ref().expect("kek").bytes();
    assert!(rows[0].unseal(&kek).is_ok());
    assert!(rows[0].unseal(&[1u8; 32]).is_err());
    assert!(!rows[0].private_key_enc.windows(4).any(|w| w == b"\x30\x81\x87\x02"), "no PKCS#8 in the clear");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_until_its_tokens_expired() {
    let env = Env::start_with(|s| s.keys.retired_publish_secs = Duration::from_secs(3_600)).await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let old = env.tokens_for(&client).await;
    let old_at = old["access_token"].as_str().expect("at").to_owned();
    let old_kid = jsonwebtoken::decode_header(&old_at).expect("header").kid.expect("kid");

    // what `sallyport keys rotate` does: the next key signs 600 s from now
    let now = env.clock().now();
    let kek = *env.settings.keys.encryption_key.as_ref().expect("kek").bytes();
    let next = SigningKeyRow::generate(SigningAlg::Es256, &kek, now, now + TimeDelta::seconds(600)).expect("key");
    let retired = signing_keys::rotate(&mut *env.db.conn().await, &next, 3_600).await.expect("rotate");
    assert_eq!(retired, std::slice::from_ref(&old_kid));
    env.wait_for_jwks(|set| set.find(&next.kid).is_some()).await;
    assert!(env.jwks().await.find(&old_kid).is_some());

    // published, not yet signing
    let (_, body) = env.refresh(&client, old["refresh_token"].as_str().expect("rt")).await;
    let kid_of =
        |t: &serde_json::Value| jsonwebtoken::decode_header(t.as_str().expect("at")).expect("header").kid.expect("kid");
    assert_eq!(kid_of(&body["access_token"]), old_kid);

    // activation: the new key signs, the old key's tokens still verify until they expire
    env.clock().advance(600);
    let (_, body) = env.refresh(&client, body["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(kid_of(&body["access_token"]), next.kid);
    env.verify_jwt(body["access_token"].as_str().expect("at"), MCP).await;
    env.verify_jwt(&old_at, MCP).await;
    assert_eq!(env.introspect(&rs, &old_at).await["active"], true);
    env.clock().advance(301);
    assert_eq!(env.introspect(&rs, &old_at).await, json!({"active": false}), "expired, not because of the key");
    assert!(env.jwks().await.find(&old_kid).is_some(), "still published: retired_publish_secs");

    // unpublished once retired_publish_secs passed
    env.clock().advance(3_600);
    let set = env.jwks().await;
    assert!(set.find(&old_kid).is_none() && set.find(&next.kid).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_refuses_to_start_without_the_encryption_key_or_with_a_wrong_one() {
    let db = testkit::TestDb::new().await;
    let mut settings = base_settings(&db);
    settings.keys.encryption_key = None;
    let err = token::app(testkit::context(&db), (&settings).into()).await.err().expect("refused");
    assert!(err.to_string().contains("keys.encryption_key"), "{err}");

    // a first key made under one key-encryption key, a replica started with another
    token::app(testkit::context(&db), (&base_settings(&db)).into()).await.expect("first start");
    settings.keys.encryption_key = Some(EncryptionKey::from_bytes([7u8; 32]));
    let err = token::app(testkit::context(&db), (&settings).into()).await.err().expect("refused");
    assert!(err.to_string().contains("unseal"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_create_one_key() {
    let db = testkit::TestDb::new().await;
    let starts: Vec<_> = (0..4).map(|_| token::app(testkit::context(&db), (&base_settings(&db)).into())).collect();
    for app in futures_util::future::join_all(starts).await {
        app.expect("start");
    }
    assert_eq!(signing_keys::list(&mut *db.conn().await).await.expect("rows").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_until_keys_are_loaded() {
    let db = testkit::TestDb::new().await;
    let mut settings = base_settings(&db);
    // a database that is not there (yet): the service builds and reports not ready
    settings.database.url = testkit::db_url("token_no_such_database");
    settings.database.connect_timeout_ms = Duration::from_millis(500);
    settings.database.acquire_timeout_ms = Duration::from_millis(500);
    let pool = store::db::pool(&settings.database).expect("pool");
    let ctx =
        server::service::Context { pool: pool.clone(), clock: protocol::Clock::system(), metrics: Default::default() };
    let app = token::app(ctx, (&settings).into()).await.expect("builds without keys");
    let server = testkit::spawn_app(&app, Some(pool));
    let res = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(res.status(), 503);
    assert!(res.text().await.expect("body").contains("\"dependencies\":false"));
    let res = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "x")])
        .send()
        .await
        .expect("post");
    assert!(res.status().is_server_error(), "{}", res.status());
}
