//! `grant_type=refresh_token`: rotation, reuse detection, narrowing, lifetimes, concurrency.

use oauth2::{RefreshToken, Scope, TokenResponse};
use protocol::client::{AuthMethod, GrantType};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn rotation_with_the_oauth2_crate_and_reuse_revokes_the_family() {
    let env = Env::start().await;
    let client = env.client(ClientSpec { auth: AuthMethod::ClientSecretBasic, ..Default::default() }).await;
    let rs = env.resource_server().await;
    let first = env.tokens_for(&client).await;
    let r1 = first["refresh_token"].as_str().expect("refresh token").to_owned();

    let oauth = env.oauth2(&client);
    let second = oauth
        .exchange_refresh_token(&RefreshToken::new(r1.clone()))
        .request_async(&oauth2_http())
        .await
        .expect("the refresh succeeds");
    let r2 = second.refresh_token().expect("a new refresh token").secret().clone();
    assert_ne!(r1, r2, "rotated");
    let claims = env.verify_jwt(second.access_token().secret(), MCP).await;
    assert_eq!(
        claims["gid"],
        crate::support::claims(first["access_token"].as_str().expect("at"))["gid"],
        "same family"
    );
    assert_eq!(claims["scope"], "mcp");

    // the old token again: refused, and the whole family is gone
    let (status, body) = env.refresh(&client, &r1).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    let (status, body) = env.refresh(&client, &r2).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "the successor is revoked too");
    assert_eq!(env.introspect(&rs, second.access_token().secret()).await, json!({"active": false}));
    assert_eq!(env.introspect(&rs, first["access_token"].as_str().expect("at")).await, json!({"active": false}));
    let events = store::audit::for_client(&mut *env.db.conn().await, &client.id).await.expect("audit");
    assert!(events.iter().any(|e| e.kind == "token.refresh_reused"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scope_may_narrow_never_widen_and_the_grant_keeps_its_scope() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let user = env.user().await;
    let code = env.code(&client.id, user, CodeSpec { scope: "mcp mcp:admin", ..Default::default() }).await;
    let (_, body) = env
        .post_form(
            "/oauth2/token",
            &client.post_auth(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", CALLBACK),
            ]),
        )
        .await;
    let r1 = body["refresh_token"].as_str().expect("rt").to_owned();

    // widening is invalid_scope, and does not spend the token
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &client.post_auth(&[("grant_type", "refresh_token"), ("refresh_token", &r1), ("scope", "mcp files")]),
        )
        .await;
    assert_eq!((status, error(&body)), (400, "invalid_scope"));

    let narrowed = env
        .oauth2(&client)
        .exchange_refresh_token(&RefreshToken::new(r1))
        .add_scope(Scope::new("mcp".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&oauth2_http())
        .await
        .expect("narrowing succeeds");
    assert_eq!(env.verify_jwt(narrowed.access_token().secret(), MCP).await["scope"], "mcp");
    let r2 = narrowed.refresh_token().expect("rt").secret().clone();

    // RFC 6749 §6: the new refresh token has the scope of the grant, not the narrowed one
    let (status, body) = env.refresh(&client, &r2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "mcp mcp:admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_may_narrow_the_audience() {
    let env = Env::start_with(with_files).await;
    let client = env.client(ClientSpec::default()).await;
    let code = env
        .code(
            &client.id,
            env.user().await,
            CodeSpec { resources: &[MCP, FILES], scope: "mcp files", ..Default::default() },
        )
        .await;
    // the code exchange narrows to one resource: its token carries that resource's scope alone
    let (_, body) = env
        .post_form(
            "/oauth2/token",
            &client.post_auth(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", CALLBACK),
                ("resource", MCP),
            ]),
        )
        .await;
    let at = claims(body["access_token"].as_str().expect("at"));
    assert_eq!((at["aud"].as_str(), at["scope"].as_str()), (Some(MCP), Some("mcp")), "{at}");
    let r1 = body["refresh_token"].as_str().expect("rt").to_owned();
    let refresh_with = |rt: String, resource: &'static str| {
        let form: Vec<(String, String)> = client
            .post_auth(&[("grant_type", "refresh_token"), ("refresh_token", &rt), ("resource", resource)])
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let http = env.http.clone();
        let url = env.url("/oauth2/token");
        async move {
            let res = http.post(url).form(&form).send().await.expect("post");
            (res.status().as_u16(), res.json::<serde_json::Value>().await.expect("json"))
        }
    };
    let (status, body) = refresh_with(r1.clone(), "https://other.example/api").await;
    assert_eq!((status, error(&body)), (400, "invalid_target"));
    // a scope the narrowed audience does not offer is refused before the token rotates
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &client.post_auth(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("resource", FILES),
                ("scope", "mcp"),
            ]),
        )
        .await;
    assert_eq!((status, error(&body)), (400, "invalid_scope"), "{body}");
    let (status, body) = refresh_with(r1, FILES).await;
    assert_eq!(status, 200, "{body}");
    env.verify_jwt(body["access_token"].as_str().expect("at"), FILES).await;
    let narrowed = claims(body["access_token"].as_str().expect("at"));
    assert_eq!(narrowed["aud"], FILES);
    assert_eq!(
        (narrowed["scope"].as_str(), body["scope"].as_str()),
        (Some("files"), Some("files")),
        "only FILES' scope"
    );
    let (status, body) = env.refresh(&client, body["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 200);
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["aud"], json!([MCP, FILES]), "the grant keeps both");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_absolute_lifetimes() {
    let env = Env::start_with(|s| {
        s.tokens.refresh_idle_ttl_secs = std::time::Duration::from_secs(100);
        s.tokens.refresh_absolute_ttl_secs = std::time::Duration::from_secs(250);
    })
    .await;
    let client = env.client(ClientSpec::default()).await;

    // idle: unused for longer than 100 s
    let rt = env.tokens_for(&client).await["refresh_token"].as_str().expect("rt").to_owned();
    env.clock().advance(101);
    let (status, body) = env.refresh(&client, &rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    assert!(body["error_description"].as_str().expect("description").contains("expired"));

    // absolute: used every 90 s, the family still ends 250 s after the code was exchanged
    let mut rt = env.tokens_for(&client).await["refresh_token"].as_str().expect("rt").to_owned();
    for _ in 0..2 {
        env.clock().advance(90);
        let (status, body) = env.refresh(&client, &rt).await;
        assert_eq!(status, 200, "{body}");
        rt = body["refresh_token"].as_str().expect("rt").to_owned();
    }
    env.clock().advance(71);
    let (status, body) = env.refresh(&client, &rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "past the family's absolute lifetime");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_refreshes() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rt = env.tokens_for(&client).await["refresh_token"].as_str().expect("rt").to_owned();

    let (status, body) = env.refresh(&client, "sprt_unknown").await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    let (status, body) = env.post_form("/oauth2/token", &client.post_auth(&[("grant_type", "refresh_token")])).await;
    assert_eq!((status, error(&body)), (400, "invalid_request"));

    // another client presenting it
    let other = env.client(ClientSpec::default()).await;
    let (status, body) = env.refresh(&other, &rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));

    // a client that may not refresh
    let no_refresh = env.client(ClientSpec { grants: &[GrantType::AuthorizationCode], ..Default::default() }).await;
    let (status, body) = env.refresh(&no_refresh, &rt).await;
    assert_eq!((status, error(&body)), (400, "unauthorized_client"));

    // none of that spent it
    let (status, body) = env.refresh(&client, &rt).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().expect("rt").to_owned();

    // a disabled user's grants stop refreshing
    let user: uuid::Uuid =
        claims(body["access_token"].as_str().expect("at"))["sub"].as_str().expect("sub").parse().expect("uuid");
    let mut conn = env.db.conn().await;
    let row = store::users::find(&mut conn, user).await.expect("query").expect("user");
    store::users::set_disabled(&mut conn, &row.username, true, chrono::Utc::now()).await.expect("disable");
    let (status, body) = env.refresh(&client, &rt).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    assert!(body["error_description"].as_str().expect("description").contains("disabled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_simultaneous_uses_of_one_refresh_token_give_exactly_one_success() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rt = env.tokens_for(&client).await["refresh_token"].as_str().expect("rt").to_owned();
    let form: Vec<(String, String)> = client
        .post_auth(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let url = env.url("/oauth2/token");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, form) = (env.http.clone(), url.clone(), form.clone());
            tokio::spawn(async move { http.post(url).form(&form).send().await.expect("post").status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
    assert_eq!(env.count("refresh_tokens").await, 2, "exactly one successor was inserted");
}
