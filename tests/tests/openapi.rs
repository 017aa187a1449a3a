//! The OpenAPI document the system serves at `{issuer}/oauth2/openapi.json`: it lists every public
//! route of the authorization server (but the authorize service's HTML pages), and only routes
//! that exist, each answering with a status the document lists. Also the regression tests of what
//! Schemathesis found fuzzing a running `sallyport up` against it (`.ci/fuzz-api`), over real HTTP.

use gateway::router::{AS_ENDPOINTS, AsService};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::TestDb;

#[expect(dead_code, reason = "the browser half of the shared support is for the flow tests")]
mod support;

use support::http;

const PASSWORD: &str = "demo-password-for-openapi";

async fn document(issuer: &str) -> Value {
    let res = http().get(format!("{issuer}/oauth2/openapi.json")).send().await.expect("openapi.json");
    assert_eq!(res.status(), StatusCode::OK);
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(kind, "application/json");
    assert!(res.headers().contains_key("etag"));
    res.json().await.expect("a JSON document")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_served_and_lists_every_route() {
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    let doc = document(&system.issuer).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], system.issuer.as_str());
    let paths = doc["paths"].as_object().expect("paths");

    // every public path of the gateway's table, but the sign-in and consent pages
    for endpoint in AS_ENDPOINTS.iter().filter(|e| e.service != AsService::Authorize) {
        assert!(paths.contains_key(endpoint.path), "{} is not in the document", endpoint.path);
    }
    for path in ["/oauth2/register/{client_id}", "/.well-known/oauth-protected-resource/{path}", "/healthz", "/readyz"]
    {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    assert!(!paths.keys().any(|p| p.starts_with("/oauth2/authorize") || p.starts_with("/oauth2/login")));

    // every documented operation exists: the running system answers it (with no credentials and
    // no body) with a status the document lists for it, never the catch-all 404 or a 405
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            if !operation.is_object() || method == Method::OPTIONS {
                continue;
            }
            let url =
                format!("{}{}", system.issuer, path.replace("{client_id}", "no-such-client").replace("{path}", "mcp"));
            let res = http().request(method.clone(), &url).send().await.expect("request");
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            assert!(
                operation["responses"].get(status.as_str()).is_some(),
                "{method} {path} answered {status}, which the document does not list: {body}"
            );
            assert!(!body.contains("no such endpoint"), "{method} {path}: {body}");
            operations += 1;
        }
    }
    assert!(operations >= 13, "{operations} operations");
    system.stop().await;
}

/// The metadata service answers on its own port with the document the gateway forwards.
#[tokio::test(flavor = "multi_thread")]
async fn the_metadata_service_serves_the_same_document() {
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    let direct = document(&system.metadata_url).await;
    assert_eq!(direct, document(&system.issuer).await);
    system.stop().await;
}

/// Schemathesis: `TRACE /healthz`, `/readyz` and `/.well-known/openid-configuration` answered 404
/// (the catch-all, or the OpenID probe's answer to any method) where a method the document does not
/// list for an existing path is 405 with `Allow` (RFC 9110 §15.5.6), as on every other endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn undocumented_methods_of_documented_paths_are_405() {
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    let cases = [
        (&system.issuer, "/healthz", "GET"),
        (&system.issuer, "/readyz", "GET"),
        (&system.token_url, "/healthz", "GET"),
        (&system.issuer, "/.well-known/openid-configuration", "GET, HEAD"),
        (&system.metadata_url, "/.well-known/openid-configuration/x", "GET, HEAD"),
    ];
    for (base, path, allow) in cases {
        for method in ["TRACE", "POST", "DELETE"] {
            let res =
                http().request(method.parse().expect("method"), format!("{base}{path}")).send().await.expect("request");
            assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {base}{path}");
            assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
            let body: Value = res.json().await.expect("a JSON error");
            assert_eq!(body["error"], "invalid_request", "{method} {path}");
        }
    }
    // the documented methods still answer as before
    let health = http().get(format!("{}/healthz", system.issuer)).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.expect("json"), serde_json::json!({"status": "ok"}));
    let oidc = http().get(format!("{}/.well-known/openid-configuration", system.issuer)).send().await.expect("oidc");
    assert_eq!(oidc.status(), StatusCode::NOT_FOUND);
    assert_eq!(oidc.json::<Value>().await.expect("json")["error"], "not_found");
    system.stop().await;
}

/// Schemathesis: a protected-resource path parameter carrying an encoded `/` or `\` is refused by
/// the gateway with 400 `invalid_request` (CONTRACTS.md, "Gateway → services"), a status the
/// document did not list for that operation; it does now, with the RFC 6749 body it always had.
#[tokio::test(flavor = "multi_thread")]
async fn a_non_canonical_resource_path_is_a_documented_400() {
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    let doc = document(&system.issuer).await;
    for (path, operation) in [
        ("/.well-known/oauth-protected-resource/uE%1F%C3%99%5C", "/.well-known/oauth-protected-resource/{path}"),
        ("/oauth2/register/a%2Fb", "/oauth2/register/{client_id}"),
    ] {
        let res = http().get(format!("{}{path}", system.issuer)).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = res.json().await.expect("a JSON error");
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert!(doc["paths"][operation]["get"]["responses"]["400"].is_object(), "{operation} documents 400");
    }
    system.stop().await;
}
