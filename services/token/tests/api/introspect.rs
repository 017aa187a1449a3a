//! RFC 7662 introspection.

use oauth2::{AccessToken, TokenIntrospectionResponse};
use protocol::client::{AuthMethod, GrantType};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn active_tokens_are_described() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let tokens = env.tokens_for(&client).await;
    let at = tokens["access_token"].as_str().expect("at");
    let c = claims(at);

    let answer = env
        .oauth2(&rs)
        .introspect(&AccessToken::new(at.into()))
        .request_async(&oauth2_http())
        .await
        .expect("introspection succeeds");
    assert!(answer.active());
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some(client.id.as_str()));

    let body = env.introspect(&rs, at).await;
    assert_eq!(
        body,
        json!({
            "active": true, "scope": "mcp", "client_id": client.id, "sub": c["sub"], "aud": MCP,
            "iss": env.settings.issuer.as_str(), "exp": c["exp"], "iat": c["iat"], "jti": c["jti"], "token_type": "Bearer",
        })
    );
    let rt = env.introspect(&rs, tokens["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(rt["active"], true);
    assert!(rt.get("token_type").is_none(), "RFC 7662 §2.2: a refresh token has no access token type: {rt}");
    assert_eq!(rt["sub"], c["sub"]);
    assert_eq!(rt["aud"], MCP);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_else_is_inactive() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let inactive = json!({"active": false});
    let tokens = env.tokens_for(&client).await;
    let (_, rotated) = env.refresh(&client, tokens["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(env.introspect(&rs, tokens["refresh_token"].as_str().expect("rt")).await, inactive, "used");
    for garbage in ["sprt_unknown", "a.b.c", "nothing"] {
        assert_eq!(env.introspect(&rs, garbage).await, inactive, "{garbage}");
    }
    // a token signed by a key that is not ours
    let (foreign, _) = protocol::keys::SigningKey::generate(protocol::keys::SigningAlg::Es256).expect("key");
    let mut forged = claims(rotated["access_token"].as_str().expect("at"));
    forged["exp"] = json!(forged["exp"].as_i64().expect("exp") + 1000);
    let forged: protocol::jwt::AccessTokenClaims = serde_json::from_value(forged).expect("claims");
    let forged = protocol::jwt::sign(&forged, &foreign).expect("sign");
    assert_eq!(env.introspect(&rs, &forged).await, inactive, "foreign key");

    let at = rotated["access_token"].as_str().expect("at");
    assert_eq!(env.introspect(&rs, at).await["active"], true);
    env.clock().advance(901);
    assert_eq!(env.introspect(&rs, at).await, inactive, "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_whose_client_is_gone_is_inactive() {
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
    store::clients::delete(&mut *env.db.conn().await, &client.id).await.expect("delete");
    assert_eq!(env.introspect(&rs, at).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_clients_allowed_to_introspect_learn_anything() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let tokens = env.tokens_for(&client).await;
    let at = tokens["access_token"].as_str().expect("at");

    let (status, body) = env.post_form("/oauth2/introspect", &client.post_auth(&[("token", at)])).await;
    assert_eq!((status, error(&body)), (403, "unauthorized_client"), "a public client");
    let confidential = env.client(ClientSpec { auth: AuthMethod::ClientSecretPost, ..Default::default() }).await;
    let (status, body) = env.post_form("/oauth2/introspect", &confidential.post_auth(&[("token", at)])).await;
    assert_eq!((status, error(&body)), (403, "unauthorized_client"), "not may_introspect");
    let (status, body) = env.post_form("/oauth2/introspect", &[("token", at)]).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"));
    let rs = env.resource_server().await;
    let res = env.post_basic("/oauth2/introspect", &rs.id, "wrong", &[("token", at)]).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    let body = res.text().await.expect("text");
    assert!(!body.contains("active"), "{body}");
    let (status, body) = env.post_form("/oauth2/introspect", &rs.post_auth(&[])).await;
    assert_eq!((status, error(&body)), (400, "invalid_request"));
}

/// Issue 13: a disabled user's access tokens are inactive at introspection and a code of theirs
/// redeems nothing; what `sallyport user disable` ends (refresh tokens at once, access tokens at
/// introspection) stays ended when the user is enabled again.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_user_gets_nothing_and_enabling_revives_nothing() {
    use store::{audit, users};
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let user = env.user().await;
    let name = users::find(&mut *env.db.conn().await, user).await.expect("q").expect("user").username;
    let redeem = |code: String| {
        let client = &client;
        let env = &env;
        async move {
            let form = client.post_auth(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", CALLBACK),
            ]);
            env.post_form("/oauth2/token", &form).await
        }
    };
    let (status, tokens) = redeem(env.code(&client.id, user, CodeSpec::default()).await).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().expect("at");
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let later_code = env.code(&client.id, user, CodeSpec::default()).await;

    let now = chrono::Utc::now();
    users::set_disabled(&mut *env.db.conn().await, &name, true, now).await.expect("disable");
    assert_eq!(env.introspect(&rs, at).await, json!({"active": false}), "the user is disabled");
    assert_eq!(env.introspect(&rs, rt).await, json!({"active": false}));
    let (status, body) = redeem(later_code).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "{body}");

    // what the CLI's disable does besides the flag: every grant family of the user is revoked
    let until = now + chrono::TimeDelta::seconds(1200);
    let mut conn = env.db.conn().await;
    let ended =
        users::end_access_audited(&mut conn, user, audit::kind::USER_DISABLED, None, now, until).await.expect("end");
    assert_eq!(ended.grants, 2, "the redeemed code's family and the spent one's");
    users::set_disabled(&mut conn, &name, false, now).await.expect("enable");
    drop(conn);
    assert_eq!(env.introspect(&rs, at).await, json!({"active": false}), "enabled: the access token stays dead");
    let (status, body) = env.refresh(&client, rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "the refresh token too: {body}");
    let events = audit::for_user(&mut *env.db.conn().await, user).await.expect("audit");
    assert!(events.iter().any(|e| e.kind == "user.disabled" && e.detail["grants_revoked"] == 2), "{events:?}");

    // a new sign-in works as before
    let (status, fresh) = redeem(env.code(&client.id, user, CodeSpec::default()).await).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(env.introspect(&rs, fresh["access_token"].as_str().expect("at")).await["active"], true);
}
