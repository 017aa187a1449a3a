//! RFC 7009 revocation.

use protocol::client::{AuthMethod, GrantType};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_refresh_token_revokes_its_family() {
    let env = Env::start().await;
    let client = env.client(ClientSpec { auth: AuthMethod::ClientSecretBasic, ..Default::default() }).await;
    let rs = env.resource_server().await;
    let tokens = env.tokens_for(&client).await;
    let (status, rotated) = env.refresh(&client, tokens["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 200);
    let rt = rotated["refresh_token"].as_str().expect("rt");

    // (the oauth2 crate insists on an https revocation URL, so this one is a plain form post)
    let secret = client.secret.as_deref().expect("secret");
    let res = env
        .post_basic("/oauth2/revoke", &client.id, secret, &[("token", rt), ("token_type_hint", "refresh_token")])
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let (status, body) = env.refresh(&client, rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    for at in [&tokens["access_token"], &rotated["access_token"]] {
        assert_eq!(env.introspect(&rs, at.as_str().expect("at")).await, json!({"active": false}));
    }
    // revoking it again, or anything unknown, still answers 200 (RFC 7009 §2.2)
    for token in [rt, "sprt_unknown", "not.a.jwt", "garbage"] {
        let (status, body) = env.post_form("/oauth2/revoke", &client.post_auth(&[("token", token)])).await;
        assert_eq!((status, body), (200, serde_json::Value::Null), "{token}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_an_access_token_records_its_jti_only() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let tokens = env.tokens_for(&client).await;
    let at = tokens["access_token"].as_str().expect("at");
    let (_, rotated) = env.refresh(&client, tokens["refresh_token"].as_str().expect("rt")).await;

    let (status, _) =
        env.post_form("/oauth2/revoke", &client.post_auth(&[("token", at), ("token_type_hint", "access_token")])).await;
    assert_eq!(status, 200);
    assert_eq!(env.introspect(&rs, at).await, json!({"active": false}));
    assert_eq!(env.count("revoked_access_tokens").await, 1);
    assert_eq!(env.count("revoked_grants").await, 0);
    // the family lives on
    assert_eq!(env.introspect(&rs, rotated["access_token"].as_str().expect("at")).await["active"], true);
    let (status, _) = env.refresh(&client, rotated["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 200);

    let other_at = env.tokens_for(&client).await["access_token"].as_str().expect("at").to_owned();
    // a wrong hint does not stop the search (RFC 7009 §2.1)
    let (status, _) = env
        .post_form("/oauth2/revoke", &client.post_auth(&[("token", &other_at), ("token_type_hint", "refresh_token")]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.introspect(&rs, &other_at).await, json!({"active": false}), "found despite the hint");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_credentials_token_is_revoked_by_jti() {
    let env = Env::start().await;
    let client = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretPost,
            grants: &[GrantType::ClientCredentials],
            scope: "mcp",
            ..Default::default()
        })
        .await;
    let rs = env.resource_server().await;
    let (_, body) = env.post_form("/oauth2/token", &client.post_auth(&[("grant_type", "client_credentials")])).await;
    let at = body["access_token"].as_str().expect("at");
    assert_eq!(env.introspect(&rs, at).await["active"], true);
    let (status, _) =
        env.post_form("/oauth2/revoke", &client.post_auth(&[("token", at), ("token_type_hint", "access_token")])).await;
    assert_eq!(status, 200);
    assert_eq!(env.introspect(&rs, at).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_is_for_the_token_owner_only() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let other = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let tokens = env.tokens_for(&client).await;
    for token in [&tokens["access_token"], &tokens["refresh_token"]] {
        let (status, body) =
            env.post_form("/oauth2/revoke", &other.post_auth(&[("token", token.as_str().expect("t"))])).await;
        assert_eq!((status, error(&body)), (400, "unauthorized_client"));
    }
    let (status, body) =
        env.post_form("/oauth2/revoke", &[("token", tokens["access_token"].as_str().expect("at"))]).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"), "unauthenticated");
    let (status, body) = env.post_form("/oauth2/revoke", &client.post_auth(&[])).await;
    assert_eq!((status, error(&body)), (400, "invalid_request"), "no token");
    assert_eq!(env.introspect(&rs, tokens["access_token"].as_str().expect("at")).await["active"], true);
    let res =
        env.http.post(env.url("/oauth2/revoke")).form(&client.post_auth(&[("token", "x")])).send().await.expect("post");
    assert_eq!(res.headers()["cache-control"], "no-store");
}
