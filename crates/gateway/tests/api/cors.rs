//! CORS and the Origin allow-list: `*` on the public AS endpoints, configured origins on protected
//! routes, preflights answered without authentication, foreign origins refused (DNS rebinding).

use reqwest::StatusCode;
use serde_json::Value;

use super::support::{BROWSER_ORIGIN, Stack};

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().expect("ascii"))
}

async fn preflight(s: &Stack, path: &str, origin: &str) -> reqwest::Response {
    s.http
        .request(reqwest::Method::OPTIONS, s.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, mcp-protocol-version")
        .send()
        .await
        .expect("preflight")
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_on_protected_routes_need_no_token() {
    let s = Stack::start().await;
    let res = preflight(&s, "/mcp", BROWSER_ORIGIN).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(BROWSER_ORIGIN));
    assert!(header(&res, "access-control-allow-methods").is_some_and(|m| m.contains("POST") && m.contains("DELETE")));
    assert_eq!(
        header(&res, "access-control-allow-headers"),
        Some("authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id")
    );
    assert!(header(&res, "vary").is_some_and(|v| v.contains("Origin")));
    assert!(header(&res, "access-control-allow-credentials").is_none());
    assert!(header(&res, "www-authenticate").is_none());
    // an OPTIONS that is no preflight is an ordinary request: it needs a token
    let res = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/mcp"))
        .header("origin", BROWSER_ORIGIN)
        .send()
        .await
        .expect("options");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_can_read_the_challenge_and_the_session() {
    let s = Stack::start().await;
    let res = s.http.post(s.url("/mcp")).header("origin", BROWSER_ORIGIN).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(BROWSER_ORIGIN));
    assert_eq!(
        header(&res, "access-control-expose-headers"),
        Some("WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version")
    );
    // the upstream's own CORS headers are replaced, credentials never allowed
    let res = s
        .http
        .get(s.url("/mcp/cors"))
        .header("origin", BROWSER_ORIGIN)
        .bearer_auth(s.token())
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(BROWSER_ORIGIN));
    assert!(header(&res, "access-control-allow-credentials").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_are_refused_before_the_token_is_looked_at() {
    let s = Stack::start().await;
    for origin in ["http://evil.example", "http://localhost:6275", "null"] {
        let res =
            s.http.get(s.url("/mcp/echo")).header("origin", origin).bearer_auth(s.token()).send().await.expect("get");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(header(&res, "access-control-allow-origin").is_none(), "{origin}");
        assert_eq!(res.json::<Value>().await.expect("json")["error"], "access_denied");
        let res = preflight(&s, "/mcp", origin).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "preflight from {origin}");
    }
    // public (auth-off) routes are guarded the same way
    let res = s.http.get(s.url("/public")).header("origin", "http://evil.example").send().await.expect("get");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // the gateway's own origin and requests without Origin pass
    let res = s
        .http
        .get(s.url("/mcp/echo"))
        .header("origin", s.gateway.url.as_str())
        .bearer_auth(s.token())
        .send()
        .await
        .expect("same origin");
    assert_eq!(res.status(), StatusCode::OK);
    let res = s.get_with("/mcp/echo", &s.token()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_route_allows_every_origin() {
    let s = Stack::start_with(|settings, _| {
        for route in &mut settings.gateway.routes {
            if route.prefix == "/public" {
                route.allowed_origins = vec!["*".into()];
            }
        }
    })
    .await;
    let res = s.http.get(s.url("/public")).header("origin", "http://anywhere.example").send().await.expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
}

#[tokio::test(flavor = "multi_thread")]
async fn public_authorization_server_endpoints_allow_any_origin_without_credentials() {
    let s = Stack::start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/mcp",
        "/oauth2/register",
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/jwks",
    ] {
        let res = preflight(&s, path, "http://inspector.example").await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&res, "access-control-allow-origin"), Some("*"), "{path}");
        assert!(
            header(&res, "access-control-allow-headers").is_some_and(|h| h.contains("mcp-protocol-version")),
            "{path}"
        );
        assert!(header(&res, "access-control-allow-credentials").is_none(), "{path}");
        let res = s.http.post(s.url(path)).header("origin", "http://inspector.example").send().await.expect("post");
        assert_eq!(header(&res, "access-control-allow-origin"), Some("*"), "{path}");
        assert!(
            header(&res, "access-control-expose-headers").is_some_and(|h| h.contains("WWW-Authenticate")),
            "{path}"
        );
    }
    // front-channel pages are navigations, not CORS endpoints
    let res =
        s.http.get(s.url("/oauth2/authorize")).header("origin", "http://inspector.example").send().await.expect("get");
    assert!(header(&res, "access-control-allow-origin").is_none());
}
