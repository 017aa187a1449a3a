//! Enterprise-managed authorization (SEP-990) through the whole system: the authorization server
//! metadata advertises the JWT bearer grant, a client registers for it (RFC 7591), exchanges an
//! ID-JAG its enterprise IdP signed (the test plays the IdP: own keys, metadata and JWKS on a
//! loopback port) at the gateway's token endpoint, and calls the MCP server behind the gateway
//! with the token through the official Rust MCP SDK. Then the official TypeScript SDK's
//! cross-app access client (`@modelcontextprotocol/client`, installed in tests/node by tests/run)
//! does the same on its own: discovery, the token exchange at the IdP, the grant, a tool call.

use std::net::TcpListener;

use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use sallyport::up::{Options, REVOCATION_CHECK, System};
use serde_json::{Value, json};
use testkit::TestDb;
use testkit::idp::{Idp, JWT_BEARER};

async fn start(db: &TestDb, idp: &Idp) -> System {
    let mut base = testkit::settings(db);
    idp.configure(&mut base);
    System::start(Options {
        gateway: TcpListener::bind("127.0.0.1:0").expect("bind"),
        database_url: db.url.clone(),
        base,
        demo_password: Some("unused-demo-password".into()),
        workers: 2,
        revocation_check: REVOCATION_CHECK,
        clock: protocol::Clock::system(),
    })
    .await
    .expect("the system starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enterprise_idp_grants_mcp_access_without_a_browser() {
    testkit::init_logging();
    let db = TestDb::new().await;
    let idp = Idp::start();
    let system = start(&db, &idp).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // RFC 8414 metadata: the grant and the ID-JAG profile, and no list of trusted issuers (draft §7.4)
    let meta: Value = http
        .get(format!("{}/.well-known/oauth-authorization-server", system.issuer))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    let grants: Vec<&str> =
        meta["grant_types_supported"].as_array().expect("grants").iter().filter_map(Value::as_str).collect();
    assert!(grants.contains(&JWT_BEARER), "{meta}");
    assert_eq!(meta["authorization_grant_profiles_supported"], json!(["urn:ietf:params:oauth:grant-profile:id-jag"]));
    assert!(!meta.to_string().contains(&idp.issuer), "trusted issuers are not disclosed");

    // RFC 7591: a confidential client registers for the grant alone (no redirect URI needed)
    let res = http
        .post(format!("{}/oauth2/register", system.issuer))
        .json(&json!({
            "client_name": "enterprise agent",
            "grant_types": [JWT_BEARER],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "mcp",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    let client: Value = res.json().await.expect("json");
    assert_eq!(client["grant_types"], json!([JWT_BEARER]));
    let (id, secret) = (client["client_id"].as_str().expect("id"), client["client_secret"].as_str().expect("secret"));
    // a public client cannot (draft §7.1)
    let res = http
        .post(format!("{}/oauth2/register", system.issuer))
        .json(&json!({"grant_types": [JWT_BEARER], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // the ID-JAG for the MCP server, exchanged at the gateway's token endpoint
    let assertion = idp.sign(&idp.claims(&system.issuer, id, "00u1enterprise", &system.mcp_url));
    let token_url = format!("{}/oauth2/token", system.issuer);
    let res = http
        .post(&token_url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())])
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();

    // the token works at the gateway: initialize and tools/call with the SDK's transport
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(system.mcp_url.as_str()).auth_header(token.as_str()),
    );
    let mcp = ().serve(transport).await.expect("initialize through the gateway");
    let args = json!({"message": "hello from the enterprise"}).as_object().cloned().expect("object");
    let result = mcp.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.expect("tools/call");
    let text = serde_json::to_string(&result.content).expect("json");
    assert!(text.contains("hello from the enterprise"), "{text}");
    assert!(text.contains(&format!("client {id}")), "the upstream learned which client called: {text}");
    let _ = mcp.cancel().await;

    // the user the IdP named, created just in time
    let links = store::federation::list(&mut system.pool.get().await.expect("conn")).await.expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!((links[0].issuer.as_str(), links[0].subject.as_str()), (idp.issuer.as_str(), "00u1enterprise"));

    // replayed at the gateway: refused as RFC 7523 §3.1 says
    let res = http
        .post(&token_url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())])
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // the TypeScript SDK's CrossAppAccessProvider, end to end
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/node");
    assert!(
        std::path::Path::new(node_dir).join("node_modules/@modelcontextprotocol/client").is_dir(),
        "the TypeScript MCP SDK is missing: run tests/run, or `npm ci` in {node_dir}"
    );
    let envs = [
        ("MCP_URL", system.mcp_url.clone()),
        ("ISSUER", system.issuer.clone()),
        ("IDP_TOKEN_ENDPOINT", format!("{}/token", idp.issuer)),
        ("SUBJECT", "00u2typescript".to_owned()),
        ("CLIENT_ID", id.to_owned()),
        ("CLIENT_SECRET", secret.to_owned()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node").arg("idjag-client.mjs").current_dir(node_dir).envs(envs).output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the TypeScript client failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("its report");
    assert_eq!(seen["authorizationServerUrl"], system.issuer.as_str(), "{seen}");
    assert_eq!(seen["resourceUrl"], system.mcp_url.as_str(), "{seen}");
    assert_eq!(seen["tokenType"], "Bearer", "{seen}");
    assert_eq!(seen["refreshToken"], Value::Null, "{seen}");
    assert!(seen["text"].as_str().is_some_and(|t| t.contains("hello from the TypeScript SDK")), "{seen}");
    let links = store::federation::list(&mut system.pool.get().await.expect("conn")).await.expect("links");
    assert!(links.iter().any(|l| l.subject == "00u2typescript"), "the SDK's user was linked");
}
