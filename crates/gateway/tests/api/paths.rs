//! One canonical path: with a protected `/mcp` and a public `/` on the same upstream, no spelling
//! of `/mcp` that some decoder would serve as `/mcp` reaches the upstream through the public route.
//! Such paths are refused with a JSON 400 before any route is chosen; canonical ones are forwarded
//! exactly as matched.

use reqwest::StatusCode;
use serde_json::Value;

use super::routing::raw_get;
use super::support::Stack;

/// The default routes plus a public `/` to the same upstream as `/mcp`.
async fn stack() -> Stack {
    Stack::start_with(|settings, _| {
        let mcp = settings.gateway.routes.iter().find(|r| r.prefix == "/mcp").expect("mcp route").clone();
        let mut root = mcp.clone();
        root.prefix = "/".into();
        root.upstream = super::support::http_url(mcp.upstream.base().trim_end_matches("/mcp"));
        root.resource = None;
        root.auth = false;
        settings.gateway.routes.push(root);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn spellings_of_a_protected_path_never_reach_the_upstream() {
    let s = stack().await;
    for path in [
        "/%6dcp",
        "/%6Dcp/x",
        "/m%63p",
        "//mcp",
        "/x//mcp",
        "/x/..;/mcp",
        "/mcp;x=1",
        "/mcp/..%2f",
        "/x%2f..%2fmcp",
        "/x/..%5cmcp",
        "/x\\..\\mcp",
        "/x/../mcp",
        "/x/%2e%2e/mcp",
        "/x/./mcp",
        "/mcp%00",
        "/mcp%zz",
    ] {
        let res = raw_get(&s.gateway.url, path).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{path}: {res}");
        assert!(!res.to_ascii_lowercase().contains("x-upstream"), "{path} reached the upstream: {res}");
        let body = res.split("\r\n\r\n").nth(1).unwrap_or_default();
        let error: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{path}: JSON body: {res}"));
        assert_eq!(error["error"], "invalid_request", "{path}");
    }
    // the same holds for the authorization server's paths and for CORS preflights
    for path in ["/oauth2/%74oken", "//oauth2/token", "/oauth2/register/..;/token"] {
        assert!(raw_get(&s.gateway.url, path).await.starts_with("HTTP/1.1 400"), "{path}");
    }
    let res = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/%6dcp", s.gateway.url))
        .header("origin", super::support::BROWSER_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn canonical_paths_are_routed_and_forwarded_as_matched() {
    let s = stack().await;
    // the protected prefix still asks for a token, the public root forwards what it matched
    assert_eq!(s.http.get(s.url("/mcp")).send().await.expect("mcp").status(), StatusCode::UNAUTHORIZED);
    for (path, upstream_path) in [("/other/a%20b/", "/other/a%20b/"), ("/mcpx", "/mcpx"), ("/", "/")] {
        let res = s.http.get(s.url(&format!("{path}?q=%2F..%2F;x"))).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let seen: Value = res.json().await.expect("json");
        assert_eq!(seen["path"], upstream_path, "{path}");
        assert_eq!(seen["query"], "q=%2F..%2F;x", "the query is not the path's business");
    }
    let seen: Value = s.get_with("/mcp/a%3Ab", &s.token()).await.json().await.expect("json");
    assert_eq!(seen["path"], "/mcp/a%3Ab", "reserved characters stay encoded as sent");
}
