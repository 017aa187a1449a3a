//! `grant_type=authorization_code`.

use oauth2::{AuthorizationCode, PkceCodeVerifier, TokenResponse};
use protocol::client::{AuthMethod, GrantType};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_public_client_exchanges_a_code_with_the_oauth2_crate() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let user = env.user().await;
    let code = env.code(&client.id, user, CodeSpec { scope: "mcp mcp:admin", ..Default::default() }).await;

    let token = env
        .oauth2(&client)
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(VERIFIER.into()))
        .add_extra_param("resource", MCP)
        .request_async(&oauth2_http())
        .await
        .expect("the code exchange succeeds");
    assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(900));
    assert!(token.refresh_token().expect("refresh token").secret().starts_with("sprt_"));
    let scopes: Vec<String> = token.scopes().expect("scope").iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["mcp", "mcp:admin"]);

    let claims = env.verify_jwt(token.access_token().secret(), MCP).await;
    assert_eq!(claims["iss"], env.settings.issuer.as_str());
    assert_eq!(claims["sub"], user.to_string());
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "mcp mcp:admin");
    assert!(claims["gid"].is_string() && claims["jti"].is_string() && claims["auth_time"].is_i64());
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 900);
    assert_eq!(env.count("refresh_tokens").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confidential_client_authenticates_with_basic_and_gets_no_refresh_token_without_the_grant() {
    let env = Env::start().await;
    let client = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretBasic,
            grants: &[GrantType::AuthorizationCode],
            ..Default::default()
        })
        .await;
    let code = env.code(&client.id, env.user().await, CodeSpec::default()).await;
    let token = env
        .oauth2(&client)
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(VERIFIER.into()))
        .request_async(&oauth2_http())
        .await
        .expect("the code exchange succeeds");
    assert!(token.refresh_token().is_none());
    env.verify_jwt(token.access_token().secret(), MCP).await;
    assert_eq!(env.count("refresh_tokens").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audience_is_the_requested_resource_or_every_authorized_one() {
    let env = Env::start_with(with_files).await;
    let client = env.client(ClientSpec::default()).await;
    let user = env.user().await;
    let spec = CodeSpec { resources: &[MCP, FILES], scope: "mcp files", ..Default::default() };

    let code = env.code(&client.id, user, spec).await;
    let base = [("grant_type", "authorization_code"), ("code_verifier", VERIFIER), ("redirect_uri", CALLBACK)];
    let mut form = client.post_auth(&base);
    form.push(("code", &code));
    let (status, body) = env.post_form("/oauth2/token", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["aud"], serde_json::json!([MCP, FILES]));

    let code = env.code(&client.id, user, spec).await;
    let mut form = client.post_auth(&base);
    form.extend([("code", code.as_str()), ("resource", "https://FILES.example/api/")]);
    let (status, body) = env.post_form("/oauth2/token", &form).await;
    assert_eq!(status, 200, "{body}");
    env.verify_jwt(body["access_token"].as_str().expect("at"), FILES).await;
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["aud"], FILES, "normalised, narrowed");
}

/// One failing exchange: a fresh code, `change` applied to the form, then the expected error.
async fn refused(env: &Env, client: &TestClient, spec: CodeSpec<'_>, change: &[(&str, Option<&str>)]) -> (u16, String) {
    let code = env.code(&client.id, env.user().await, spec).await;
    let mut form: Vec<(&str, &str)> = client.post_auth(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", CALLBACK),
    ]);
    for (name, value) in change {
        form.retain(|(n, _)| n != name);
        if let Some(v) = value {
            form.push((name, v));
        }
    }
    let (status, body) = env.post_form("/oauth2/token", &form).await;
    let outcome = if status == 200 { "ok".to_owned() } else { error(&body).to_owned() };
    (status, outcome)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_of_a_code_exchange() {
    let env = Env::start_with(with_files).await;
    let client = env.client(ClientSpec::default()).await;
    let spec = CodeSpec::default();
    let bad = |s: &str| (400, s.to_owned());

    assert_eq!(refused(&env, &client, spec, &[("code", Some("spac_unknown"))]).await, bad("invalid_grant"));
    let other_verifier = "x".repeat(50);
    assert_eq!(refused(&env, &client, spec, &[("code_verifier", Some(&other_verifier))]).await, bad("invalid_grant"));
    // a verifier outside RFC 7636 §4.1's syntax is a malformed request (RFC 6749 §5.2), refused before the code is spent
    assert_eq!(refused(&env, &client, spec, &[("code_verifier", Some("short"))]).await, bad("invalid_request"));
    assert_eq!(refused(&env, &client, spec, &[("code_verifier", None)]).await, bad("invalid_request"));
    assert_eq!(refused(&env, &client, spec, &[("code", None)]).await, bad("invalid_request"));
    // RFC 6749 §4.1.3: redirect_uri repeated when it was sent, identical when present
    assert_eq!(refused(&env, &client, spec, &[("redirect_uri", None)]).await, bad("invalid_grant"));
    let other_port = "http://127.0.0.1:4322/callback";
    assert_eq!(refused(&env, &client, spec, &[("redirect_uri", Some(other_port))]).await, bad("invalid_grant"));
    let unsent = CodeSpec { redirect_uri_sent: false, ..spec };
    assert_eq!(refused(&env, &client, unsent, &[("redirect_uri", Some(other_port))]).await, bad("invalid_grant"));
    assert_eq!(
        refused(&env, &client, unsent, &[("redirect_uri", None)]).await,
        (200, "ok".into()),
        "not sent, not needed"
    );
    // RFC 8707: only an authorized resource
    assert_eq!(refused(&env, &client, spec, &[("resource", Some(FILES))]).await, bad("invalid_target"));
    assert_eq!(refused(&env, &client, spec, &[("resource", Some("not a uri"))]).await, bad("invalid_target"));

    // another client's code
    let thief = env.client(ClientSpec::default()).await;
    let code = env.code(&client.id, env.user().await, spec).await;
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &thief.post_auth(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", CALLBACK),
            ]),
        )
        .await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));

    // a client not registered for the grant
    let cc = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretPost,
            grants: &[GrantType::ClientCredentials],
            ..Default::default()
        })
        .await;
    assert_eq!(refused(&env, &cc, spec, &[]).await, bad("unauthorized_client"));
    assert_eq!(env.count("refresh_tokens").await, 1, "only the one good exchange issued a refresh token");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_refused() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let code = env.code(&client.id, env.user().await, CodeSpec::default()).await;
    env.clock().advance(61);
    let (status, body) = env
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
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    assert!(body["error_description"].as_str().expect("description").contains("expired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_code_revokes_everything_issued_from_it() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let rs = env.resource_server().await;
    let code = env.code(&client.id, env.user().await, CodeSpec::default()).await;
    let form = client.post_auth(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", CALLBACK),
    ]);
    let (status, first) = env.post_form("/oauth2/token", &form).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().expect("access token");
    let refresh = first["refresh_token"].as_str().expect("refresh token");
    assert_eq!(env.introspect(&rs, access).await["active"], true);

    let (status, again) = env.post_form("/oauth2/token", &form).await;
    assert_eq!((status, error(&again)), (400, "invalid_grant"));

    assert_eq!(env.introspect(&rs, access).await, serde_json::json!({"active": false}), "access token revoked");
    assert_eq!(env.introspect(&rs, refresh).await, serde_json::json!({"active": false}), "refresh token revoked");
    let (status, body) = env.refresh(&client, refresh).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"));
    assert_eq!(env.count("revoked_grants").await, 1);
    let events = store::audit::for_client(&mut *env.db.conn().await, &client.id).await.expect("audit");
    assert!(events.iter().any(|e| e.kind == "token.code_replayed"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_simultaneous_redemptions_of_one_code_give_exactly_one_token() {
    let env = Env::start().await;
    let client = env.client(ClientSpec::default()).await;
    let code = env.code(&client.id, env.user().await, CodeSpec::default()).await;
    let form: Vec<(String, String)> = client
        .post_auth(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", CALLBACK),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let url = env.url("/oauth2/token");
    let tasks: Vec<_> = (0..50)
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
    assert_eq!(env.count("refresh_tokens").await, 1);
}
