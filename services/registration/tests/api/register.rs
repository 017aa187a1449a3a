//! RFC 7591 registration with the bodies real MCP clients send; each must yield a usable client.

use protocol::client::{AuthMethod, ClientSource, GrantType};
use protocol::secret::SecretHash;
use reqwest::StatusCode;
use serde_json::{Value, json};
use store::{audit, clients};

use crate::common::{App, client_count, start, token_of};

/// Proves a registration is usable: it reads back with its registration access token, the stored
/// row holds only hashes (the token's and, for confidential clients, the secret's) that verify
/// the returned values, and it parses as the `Client` every other service works with.
async fn assert_usable(app: &App, info: &Value) -> protocol::client::Client {
    let res = app.read(info, Some(token_of(info))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let read: Value = res.json().await.expect("json");
    crate::common::assert_client_information(&read);
    for member in ["client_id", "redirect_uris", "grant_types", "response_types", "token_endpoint_auth_method", "scope"]
    {
        assert_eq!(read.get(member), info.get(member), "{member} reads back as registered");
    }
    assert!(read.get("client_secret").is_none(), "a secret is shown once, at registration");

    let id = info["client_id"].as_str().expect("id");
    let mut conn = app.conn().await;
    let row = clients::find_row(&mut conn, id).await.expect("query").expect("stored");
    let token_hash = row.registration_token_hash.as_deref().expect("token hash");
    assert!(SecretHash::of(token_of(info)).matches(token_hash));
    assert_eq!(row.source, "dynamic");
    match info["client_secret"].as_str() {
        Some(secret) => {
            assert!(secret.starts_with("spcs_"));
            let stored = row.client_secret_hash.as_deref().expect("secret hash");
            assert_eq!(stored.len(), 32, "only the SHA-256 is stored");
            assert!(SecretHash::of(secret).matches(stored), "the stored hash verifies the returned secret");
        }
        None => assert!(row.client_secret_hash.is_none()),
    }
    let client = clients::find(&mut conn, id).await.expect("query").expect("client");
    assert_eq!(client.source, ClientSource::Dynamic);
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_shape() {
    let app = start().await;
    let info = app
        .register_ok(&json!({
            "client_name": "rmcp",
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "response_types": ["code"],
            "application_type": "native"
        }))
        .await;
    assert_eq!(info["token_endpoint_auth_method"], "none");
    assert!(info.get("client_secret").is_none(), "a public client gets no secret");
    assert_eq!(info["redirect_uris"], json!(["http://127.0.0.1:8765/callback"]));
    assert_eq!(info["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(info["response_types"], json!(["code"]));
    assert_eq!(info["application_type"], "native");
    assert_eq!(info["client_name"], "rmcp");
    assert_eq!(info["scope"], "files:read mcp", "no scope asked: the deployment's defaults");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 5..=now + 5).contains(&info["client_id_issued_at"].as_i64().expect("issued at")));

    let client = assert_usable(&app, &info).await;
    assert!(client.is_public());
    assert!(client.allows_grant(GrantType::RefreshToken));
    let redirect = client.resolve_redirect(Some("http://127.0.0.1:50123/callback")).expect("loopback port may vary");
    assert_eq!(redirect.as_str(), "http://127.0.0.1:50123/callback");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_shape_gets_a_secret() {
    let app = start().await;
    // no token_endpoint_auth_method at all; optional members sent as null by some serialisers
    let info = app
        .register_ok(&json!({
            "redirect_uris": ["http://localhost:3030/callback"],
            "client_name": "mcp-python",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "mcp",
            "client_uri": null,
            "logo_uri": null,
            "contacts": null,
            "software_version": null
        }))
        .await;
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic", "RFC 7591 §2 default");
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(info["scope"], "mcp");
    for absent in ["client_uri", "logo_uri", "contacts", "software_version"] {
        assert!(info.get(absent).is_none(), "{absent} is omitted, not null");
    }
    let client = assert_usable(&app, &info).await;
    assert_eq!(client.metadata.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert!(!client.is_public());
}

#[tokio::test(flavor = "multi_thread")]
async fn inspector_shapes_with_empty_scope() {
    let app = start().await;
    for callback in ["http://localhost:6274/oauth/callback", "http://127.0.0.1:6276/oauth/callback"] {
        let info = app
            .register_ok(&json!({
                "redirect_uris": [callback],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "MCP Inspector",
                "client_uri": "https://github.com/modelcontextprotocol/inspector",
                "scope": ""
            }))
            .await;
        assert_eq!(info["scope"], "files:read mcp", "scope \"\" means the defaults");
        assert_eq!(info["client_uri"], "https://github.com/modelcontextprotocol/inspector");
        assert_eq!(info["redirect_uris"], json!([callback]));
        assert_usable(&app, &info).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn desktop_client_without_scope() {
    let app = start().await;
    let info = app
        .register_ok(&json!({
            "client_name": "Desktop Assistant",
            "redirect_uris": ["http://localhost/callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "logo_uri": "",
            "tos_uri": "   "
        }))
        .await;
    assert_eq!(info["scope"], "files:read mcp");
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(info["grant_types"], json!(["authorization_code"]), "the RFC 7591 §2 default");
    assert_eq!(info["response_types"], json!(["code"]));
    assert_eq!(info["application_type"], "web");
    assert!(info.get("logo_uri").is_none() && info.get("tos_uri").is_none(), "empty members are dropped");
    assert_usable(&app, &info).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_member_is_echoed() {
    let app = start().await;
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "use": "sig"}]});
    let info = app
        .register_ok(&json!({
            "redirect_uris": ["https://app.example.com/cb", "com.example.app:/oauth2redirect"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "web",
            "client_name": "Everything",
            "client_uri": "https://app.example.com",
            "logo_uri": "https://app.example.com/logo.png",
            "tos_uri": "https://app.example.com/tos",
            "policy_uri": "https://app.example.com/privacy",
            "contacts": ["ops@app.example.com"],
            "scope": "mcp files:read admin",
            "jwks": jwks,
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1",
            "client_id": "i-would-like-this-id",
            "x-vendor-extension": {"ignored": true}
        }))
        .await;
    for member in ["client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "software_id", "software_version"]
    {
        assert!(info[member].is_string(), "{member} echoed: {info}");
    }
    assert_eq!(info["contacts"], json!(["ops@app.example.com"]));
    assert_eq!(info["jwks"], jwks);
    assert_eq!(info["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(info["redirect_uris"], json!(["https://app.example.com/cb", "com.example.app:/oauth2redirect"]));
    assert_eq!(info["scope"], "files:read mcp", "narrowed to what the deployment supports");
    assert_ne!(info["client_id"], "i-would-like-this-id", "the server assigns client ids");
    assert!(info.get("x-vendor-extension").is_none());
    assert_usable(&app, &info).await;
}

/// Issue 13: open registration hands out no token without a user. A client that wants
/// client_credentials is one an operator creates (`sallyport client add`); the refusal says so.
#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_is_refused_to_self_registered_clients() {
    let app = start().await;
    for body in [
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
        json!({"grant_types": ["client_credentials"], "scope": "mcp", "client_name": "batch job"}),
        json!({"grant_types": ["authorization_code", "client_credentials"], "redirect_uris": ["https://a.example/cb"],
               "token_endpoint_auth_method": "client_secret_basic"}),
    ] {
        let res = app.register(&body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["error"], "invalid_client_metadata", "{err}");
        let why = err["error_description"].as_str().expect("description");
        assert!(why.contains("client_credentials") && why.contains("sallyport client add"), "{why}");
    }
    assert_eq!(client_count(&app).await, 0, "nothing was stored");
    // a confidential client for users registers as before
    let info = app
        .register_ok(
            &json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .await;
    let client = assert_usable(&app, &info).await;
    assert!(!client.allows_grant(GrantType::ClientCredentials));
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_scopes_fall_back_to_the_defaults() {
    let app = start().await;
    let cb = ["http://127.0.0.1/cb"];
    let only_unknown = app.register_ok(&json!({"redirect_uris": cb, "scope": "admin root"})).await;
    assert_eq!(only_unknown["scope"], "files:read mcp");
    let narrower = app.register_ok(&json!({"redirect_uris": cb, "scope": "files:read offline_access"})).await;
    assert_eq!(narrower["scope"], "files:read");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_registration_is_audited_without_secrets() {
    let app = start().await;
    let public = app
        .register_ok(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
                             "client_name": "audited", "software_id": "sw-1"}))
        .await;
    let confidential = app.register_ok(&json!({"redirect_uris": ["http://127.0.0.1/cb"]})).await;
    assert_eq!(client_count(&app).await, 2);
    let mut conn = app.conn().await;
    for info in [&public, &confidential] {
        let id = info["client_id"].as_str().expect("id");
        let events = audit::for_client(&mut conn, id).await.expect("audit");
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, "client.registered");
        assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(event.detail["redirect_uris"], info["redirect_uris"]);
        assert_eq!(event.detail["token_endpoint_auth_method"], info["token_endpoint_auth_method"]);
        let text = event.detail.to_string();
        assert!(!text.contains(token_of(info)), "no registration token in the audit log");
        if let Some(secret) = info["client_secret"].as_str() {
            assert!(!text.contains(secret), "no client secret in the audit log");
        }
    }
    let events = audit::for_client(&mut conn, public["client_id"].as_str().expect("id")).await.expect("audit");
    assert_eq!(events[0].detail["client_name"], "audited");
    assert_eq!(events[0].detail["software_id"], "sw-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_and_its_audit_event_commit_together() {
    let app = start().await;
    let info = app.register_ok(&json!({"redirect_uris": ["http://127.0.0.1/cb"]})).await;
    let id = info["client_id"].as_str().expect("id");
    let mut conn = app.conn().await;
    // the same id again: the insert fails, and so does its audit event
    let row = clients::find_row(&mut conn, id).await.expect("query").expect("row");
    let event = audit::NewAuditEvent {
        occurred_at: chrono::Utc::now(),
        kind: audit::kind::CLIENT_REGISTERED,
        client_id: Some(id),
        user_id: None,
        ip: None,
        detail: json!({}),
    };
    assert!(clients::insert_audited(&mut conn, &row, &event).await.is_err());
    assert_eq!(audit::for_client(&mut conn, id).await.expect("audit").len(), 1);
    assert_eq!(client_count(&app).await, 1);
}
