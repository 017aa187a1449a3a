//! The deployment's registration policy: per-IP rate limit, the optional initial access token,
//! default and allowed scopes, and CORS for browser clients.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{assert_error, assert_invalid_token_challenge, client_count, start, start_with};

fn body() -> serde_json::Value {
    json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"})
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_are_rate_limited_per_ip() {
    let app = start_with(|s| s.registration.per_ip_per_minute = 3).await;
    for _ in 0..3 {
        app.register_ok(&body()).await;
    }
    let res = app.register(&body()).await;
    let headers = assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let wait: u64 = headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(client_count(&app).await, 3);
}

/// RFC 7592 requests spend the same per-IP budget: guessing registration access tokens is throttled.
#[tokio::test(flavor = "multi_thread")]
async fn client_management_shares_the_budget() {
    let app = start_with(|s| s.registration.per_ip_per_minute = 3).await;
    let info = app.register_ok(&body()).await;
    assert_eq!(app.read(&info, Some(crate::common::token_of(&info))).await.status(), StatusCode::OK);
    assert_eq!(app.read(&info, Some("spreg_a-guess")).await.status(), StatusCode::UNAUTHORIZED);
    let res = app.read(&info, Some(crate::common::token_of(&info))).await;
    let headers = assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_client_ip_has_its_own_budget() {
    let app = start_with(|s| {
        s.registration.per_ip_per_minute = 1;
        s.trust_forwarded_for = true;
    })
    .await;
    // the gateway's one client-address header; a forwarded-for chain is not the service's to read
    let from = |ip: &'static str| {
        app.http
            .post(app.register_url())
            .header("x-sallyport-client-ip", ip)
            .header("x-forwarded-for", "198.51.100.77")
            .json(&body())
    };
    assert_eq!(from("203.0.113.1").send().await.expect("request").status(), StatusCode::CREATED);
    assert_eq!(from("203.0.113.2").send().await.expect("request").status(), StatusCode::CREATED);
    let res = from("203.0.113.1").send().await.expect("request");
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // IPv6 clients are budgeted by their /64: a neighbour in the same /64 shares the spent budget
    assert_eq!(from("2001:db8:1:2::1").send().await.expect("request").status(), StatusCode::CREATED);
    let res = from("2001:db8:1:2:ffff::9").send().await.expect("request");
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(from("2001:db8:1:3::1").send().await.expect("request").status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_access_token_gates_registration_when_set() {
    const IAT: &str = "spiat_operator-chosen-initial-token";
    let app = start_with(|s| s.registration.initial_access_token = Some(IAT.into())).await;
    let longer = format!("Bearer {IAT}x");
    // a token outside RFC 6750's b64token is no bearer token, even when the rest of it matches
    let quoted = format!("Bearer \"{IAT}\"");
    let cases = [
        None,
        Some("Bearer spiat_wrong"),
        Some("Basic c3BpYXQ6eA=="),
        Some(longer.as_str()),
        Some(quoted.as_str()),
        Some("Bearer a,b"),
    ];
    for auth in cases {
        let mut req = app.http.post(app.register_url()).json(&body());
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let headers = assert_error(req.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert_invalid_token_challenge(&headers);
    }
    assert_eq!(client_count(&app).await, 0);
    let res = app.http.post(app.register_url()).bearer_auth(IAT).json(&body()).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    // the initial token is checked before the body: an unauthenticated caller learns nothing about it
    let res = app.http.post(app.register_url()).body("not json").send().await.expect("request");
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn open_registration_ignores_a_stray_bearer_token() {
    let app = start().await;
    let res = app.http.post(app.register_url()).bearer_auth("whatever").json(&body()).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_default_scopes() {
    let app = start_with(|s| s.registration.default_scopes = vec!["mcp".into(), "profile".into()]).await;
    let cb = ["http://127.0.0.1/cb"];
    let none = app.register_ok(&json!({"redirect_uris": cb})).await;
    assert_eq!(none["scope"], "mcp profile", "the configured defaults");
    let empty = app.register_ok(&json!({"redirect_uris": cb, "scope": ""})).await;
    assert_eq!(empty["scope"], "mcp profile");
    let supported = app.register_ok(&json!({"redirect_uris": cb, "scope": "files:read"})).await;
    assert_eq!(supported["scope"], "files:read", "any supported scope may be registered");
    let mixed = app.register_ok(&json!({"redirect_uris": cb, "scope": "profile admin"})).await;
    assert_eq!(mixed["scope"], "profile", "a default scope is allowed, an unknown one dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_without_scopes_registers_clients_without_scope() {
    let app = start_with(|s| s.resources.clear()).await;
    let info = app.register_ok(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "scope": "mcp"})).await;
    assert!(info.get("scope").is_none(), "omitted, never \"\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_may_register_cross_origin() {
    let app = start().await;
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.register_url())
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, authorization, mcp-protocol-version")
        .send()
        .await
        .expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let methods = res.headers()["access-control-allow-methods"].to_str().expect("ascii");
    assert!(methods.contains("POST") && methods.contains("PUT") && methods.contains("DELETE"), "{methods}");
    let allowed = res.headers()["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed.contains("content-type") && allowed.contains("authorization"), "{allowed}");

    let res = app.http.post(app.register_url()).header("origin", "http://localhost:6274").json(&body()).send().await;
    let res = res.expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    let exposed = res.headers()["access-control-expose-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}
