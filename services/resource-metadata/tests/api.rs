//! The metadata documents over HTTP, as MCP clients fetch them.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::ResourceSettings;
use store::resources::{self, ResourceRow};
use testkit::{TestDb, TestServer};

fn resource(uri: &str, name: &str, scopes: &[&str]) -> ResourceSettings {
    ResourceSettings {
        resource: uri.into(),
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        documentation: None,
        accept_machine_tokens: false,
    }
}

async fn start(db: &TestDb, issuer: &str, configured: Vec<ResourceSettings>) -> TestServer {
    let mut settings = testkit::settings(db);
    settings.issuer = server::config::Issuer::parse(issuer).expect("issuer");
    settings.resources = configured;
    let app = resource_metadata::app(testkit::context(db), (&settings).into()).await.expect("app");
    testkit::spawn_app(&app, Some(db.pool()))
}

async fn get(url: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = reqwest::get(url).await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn assert_no_nulls(v: &Value) {
    match v {
        Value::Null => panic!("a null member"),
        Value::String(s) => assert!(!s.is_empty(), "an empty string member"),
        Value::Array(a) => a.iter().for_each(assert_no_nulls),
        Value::Object(o) => o.values().for_each(assert_no_nulls),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_server_metadata_is_complete() {
    let db = TestDb::new().await;
    let srv = start(
        &db,
        "http://127.0.0.1:8080",
        vec![resource("http://127.0.0.1:8080/mcp", "Demo MCP", &["mcp", "files:read"])],
    )
    .await;
    let (status, headers, doc) = get(&srv.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["cache-control"].to_str().expect("ascii").contains("max-age="));
    assert_no_nulls(&doc);
    insta::assert_json_snapshot!("authorization_server_metadata", doc);
    assert_eq!(doc["issuer"], "http://127.0.0.1:8080");
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_resource_metadata_matches_the_issuer_byte_for_byte() {
    let db = TestDb::new().await;
    let issuer = "http://127.0.0.1:8080";
    let srv = start(
        &db,
        issuer,
        vec![
            resource("http://127.0.0.1:8080/mcp", "Demo MCP", &["mcp"]),
            resource("http://127.0.0.1:8080/team/a/mcp/", "Nested", &[]),
        ],
    )
    .await;
    let (_, _, as_doc) = get(&srv.url("/.well-known/oauth-authorization-server")).await;
    let (status, _, prm) = get(&srv.url("/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_nulls(&prm);
    insta::assert_json_snapshot!("protected_resource_metadata", prm);
    assert_eq!(prm["authorization_servers"][0], as_doc["issuer"]);
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));

    let (status, _, nested) = get(&srv.url("/.well-known/oauth-protected-resource/team/a/mcp")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(nested["resource"], "http://127.0.0.1:8080/team/a/mcp");
    assert!(nested.get("scopes_supported").is_none(), "an empty list is omitted, not null");
    let (status, _, _) = get(&srv.url("/.well-known/oauth-protected-resource/team/a/mcp/")).await;
    assert_eq!(status, StatusCode::OK, "a lone trailing slash equals none");

    let (status, _, body) = get(&srv.url("/.well-known/oauth-protected-resource/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _, _) = get(&srv.url("/.well-known/oauth-protected-resource")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "two resources, none at the root: no default");
}

#[tokio::test(flavor = "multi_thread")]
async fn root_document_serves_the_only_resource_and_table_resources_appear() {
    let db = TestDb::new().await;
    resources::upsert(
        &mut *db.conn().await,
        &ResourceRow {
            resource: "https://files.example.com/api".into(),
            name: "Files".into(),
            scopes: vec![Some("files:write".into())],
            documentation_url: Some("https://files.example.com/docs".into()),
            created_at: Utc::now(),
            accept_machine_tokens: false,
        },
    )
    .await
    .expect("insert resource");
    let srv = start(&db, "http://127.0.0.1:8080", vec![]).await;
    let (status, _, root) = get(&srv.url("/.well-known/oauth-protected-resource")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["resource"], "https://files.example.com/api");
    assert_eq!(root["resource_documentation"], "https://files.example.com/docs");
    let (_, _, as_doc) = get(&srv.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(as_doc["scopes_supported"], json!(["files:write"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn same_path_on_two_origins_is_told_apart_by_host() {
    let db = TestDb::new().await;
    let srv = start(
        &db,
        "https://auth.example.com",
        vec![resource("https://a.example.com/mcp", "A", &["a"]), resource("https://b.example.com/mcp", "B", &["b"])],
    )
    .await;
    let client = reqwest::Client::new();
    for host in ["a.example.com", "b.example.com"] {
        let doc: Value = client
            .get(srv.url("/.well-known/oauth-protected-resource/mcp"))
            .header("host", host)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(doc["resource"], format!("https://{host}/mcp"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_with_a_path_uses_path_insertion() {
    let db = TestDb::new().await;
    let srv =
        start(&db, "https://auth.example.com/tenant", vec![resource("https://mcp.example.com/mcp", "M", &["m"])]).await;
    let (status, _, doc) = get(&srv.url("/.well-known/oauth-authorization-server/tenant")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], "https://auth.example.com/tenant");
    assert_eq!(doc["token_endpoint"], "https://auth.example.com/tenant/oauth2/token");
    let (status, _, _) = get(&srv.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the root belongs to no issuer here");
    for path in [
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
        "/.well-known/openid-configuration",
    ] {
        let res = reqwest::get(srv.url(path)).await.expect("request");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}: never HTML");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etags_round_trip() {
    let db = TestDb::new().await;
    let srv = start(&db, "http://127.0.0.1:8080", vec![resource("http://127.0.0.1:8080/mcp", "M", &["mcp"])]).await;
    let client = reqwest::Client::new();
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp"] {
        let first = client.get(srv.url(path)).send().await.expect("request");
        let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong ETag: {etag}");
        let again = client.get(srv.url(path)).header("if-none-match", &etag).send().await.expect("request");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.expect("body").is_empty());
        let weak =
            client.get(srv.url(path)).header("if-none-match", format!("\"x\", W/{etag}")).send().await.expect("req");
        assert_eq!(weak.status(), StatusCode::NOT_MODIFIED, "weak comparison over a list");
        let other = client.get(srv.url(path)).header("if-none-match", "\"other\"").send().await.expect("request");
        assert_eq!(other.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_can_read_the_documents() {
    let db = TestDb::new().await;
    let srv = start(&db, "http://127.0.0.1:8080", vec![resource("http://127.0.0.1:8080/mcp", "M", &["mcp"])]).await;
    let client = reqwest::Client::new();
    let res = client
        .get(srv.url("/.well-known/oauth-protected-resource/mcp"))
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .expect("request");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let preflight = client
        .request(reqwest::Method::OPTIONS, srv.url("/.well-known/oauth-authorization-server"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .expect("request");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed.contains("mcp-protocol-version"), "{allowed}");
    assert!(preflight.headers().get("access-control-allow-credentials").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_and_paths_are_json_errors() {
    let db = TestDb::new().await;
    let srv = start(&db, "http://127.0.0.1:8080", vec![]).await;
    let client = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        // OPTIONS answers only CORS preflights (tested above); a plain one is not served
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
            let res = client.request(method.clone(), srv.url(path)).send().await.expect("request");
            assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            // RFC 9110 §15.5.6: a 405 names the methods the resource supports
            assert_eq!(res.headers()["allow"], "GET, HEAD", "{method} {path}");
            assert_eq!(res.json::<Value>().await.expect("json")["error"], "invalid_request", "{method} {path}");
        }
    }
    let res = client.get(srv.url("/nothing/here")).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/json");
    let head = client.head(srv.url("/.well-known/oauth-authorization-server")).send().await.expect("request");
    assert_eq!(head.status(), StatusCode::OK);
}
