//! `grant_type=client_credentials`.

use oauth2::{Scope, TokenResponse};
use protocol::client::{AuthMethod, ClientSource, GrantType};
use serde_json::json;

use crate::support::*;

fn service(scope: &str) -> ClientSpec<'_> {
    ClientSpec {
        auth: AuthMethod::ClientSecretBasic,
        grants: &[GrantType::ClientCredentials],
        scope,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_gets_a_token_with_the_oauth2_crate_and_nothing_is_written() {
    let env = Env::start_with(with_files).await;
    let client = env.client(service("mcp files")).await;
    let token = env
        .oauth2(&client)
        .exchange_client_credentials()
        .add_scope(Scope::new("mcp".into()))
        .add_extra_param("resource", MCP)
        .request_async(&oauth2_http())
        .await
        .expect("client_credentials succeeds");
    assert!(token.refresh_token().is_none());
    let claims = env.verify_jwt(token.access_token().secret(), MCP).await;
    assert_eq!(claims["sub"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "mcp");
    assert!(claims.get("gid").is_none() && claims.get("auth_time").is_none(), "{claims}");
    for table in ["refresh_tokens", "revoked_grants", "revoked_access_tokens", "audit_events"] {
        assert_eq!(env.count(table).await, 0, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_is_required_unless_there_is_a_single_one() {
    let env = Env::start().await;
    let client = env.client(service("mcp")).await;
    let secret = client.secret.as_deref().expect("secret");
    let res = env.post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["aud"], MCP, "the single resource");
    assert_eq!(body["scope"], "mcp");
    assert!(body.get("refresh_token").is_none());

    let env = Env::start_with(with_files).await;
    let client = env.client(service("mcp files")).await;
    let secret = client.secret.as_deref().expect("secret");
    let res = env.post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(error(&res.json().await.expect("json")), "invalid_target");
    let res = env
        .post_basic(
            "/oauth2/token",
            &client.id,
            secret,
            &[("grant_type", "client_credentials"), ("resource", "https://unknown.example/x")],
        )
        .await;
    assert_eq!(error(&res.json().await.expect("json")), "invalid_target");
    let res = env
        .post_basic(
            "/oauth2/token",
            &client.id,
            secret,
            &[("grant_type", "client_credentials"), ("resource", MCP), ("resource", FILES)],
        )
        .await;
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["aud"], json!([MCP, FILES]));
    assert_eq!(body["scope"], "files mcp");
}

#[tokio::test(flavor = "multi_thread")]
async fn scope_stays_within_the_registered_scope() {
    let env = Env::start().await;
    let client = env.client(service("mcp")).await;
    let secret = client.secret.as_deref().expect("secret");
    for (scope, expected) in
        [("mcp:admin", "invalid_scope"), ("mcp other", "invalid_scope"), ("b\"ad", "invalid_scope")]
    {
        let res = env
            .post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials"), ("scope", scope)])
            .await;
        assert_eq!(res.status(), 400, "{scope}");
        assert_eq!(error(&res.json().await.expect("json")), expected, "{scope}");
    }
    let res = env
        .post_basic(
            "/oauth2/token",
            &client.id,
            secret,
            &[("grant_type", "client_credentials"), ("scope", "mcp offline_access")],
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_confidential_clients_registered_for_it() {
    let env = Env::start().await;
    let public = env.client(ClientSpec { grants: &[GrantType::ClientCredentials], ..Default::default() }).await;
    let (status, body) =
        env.post_form("/oauth2/token", &public.post_auth(&[("grant_type", "client_credentials")])).await;
    assert_eq!((status, error(&body)), (400, "unauthorized_client"));

    let not_registered = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretPost,
            grants: &[GrantType::AuthorizationCode],
            ..Default::default()
        })
        .await;
    let (status, body) =
        env.post_form("/oauth2/token", &not_registered.post_auth(&[("grant_type", "client_credentials")])).await;
    assert_eq!((status, error(&body)), (400, "unauthorized_client"));
}

/// Issue 13: a client that registered itself (RFC 7591 or a metadata document) never gets a token
/// without a user, even when its row, written before the rule, lists the grant.
#[tokio::test(flavor = "multi_thread")]
async fn self_registered_clients_are_refused_even_with_an_old_row() {
    let env = Env::start().await;
    for source in [ClientSource::Dynamic, ClientSource::MetadataDocument] {
        let client = env.client(ClientSpec { source, ..service("mcp") }).await;
        let secret = client.secret.as_deref().expect("secret");
        let res = env.post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials")]).await;
        assert_eq!(res.status(), 400, "{source:?}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(error(&body), "unauthorized_client", "{source:?}: {body}");
        assert!(body["error_description"].as_str().expect("why").contains("operator"), "{body}");
    }
    // the operator's client with the same metadata gets its token
    let client = env.client(service("mcp")).await;
    let secret = client.secret.as_deref().expect("secret");
    let res = env.post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 200);
}

/// Issue 13: a token without a user is minted only for resources that accept one
/// (`accept_machine_tokens`); FILES does not.
#[tokio::test(flavor = "multi_thread")]
async fn only_for_resources_that_accept_machine_tokens() {
    let env = Env::start_with(|s| {
        with_files(s);
        s.resources[1].accept_machine_tokens = false;
    })
    .await;
    let client = env.client(service("mcp files")).await;
    let secret = client.secret.as_deref().expect("secret");
    for resources in [vec![FILES], vec![MCP, FILES]] {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(resources.iter().map(|r| ("resource", *r)));
        let res = env.post_basic("/oauth2/token", &client.id, secret, &form).await;
        assert_eq!(res.status(), 400, "{resources:?}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(error(&body), "invalid_target", "{body}");
        assert!(body["error_description"].as_str().expect("why").contains("needs a user"), "{body}");
    }
    let res = env
        .post_basic("/oauth2/token", &client.id, secret, &[("grant_type", "client_credentials"), ("resource", MCP)])
        .await;
    assert_eq!(res.status(), 200, "MCP accepts machine tokens");
}
