//! Which path goes where: the authorization server's paths to its four services (under the
//! issuer's path when it has one), configured routes by longest prefix at segment boundaries,
//! everything else a JSON 404.

use reqwest::StatusCode;
use serde_json::Value;

use super::support::Stack;

async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("json body")
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_server_paths_reach_their_services() {
    let s = Stack::start().await;
    let cases = [
        ("GET", "/.well-known/oauth-authorization-server", "metadata"),
        ("GET", "/.well-known/oauth-protected-resource/mcp", "metadata"),
        ("GET", "/.well-known/openid-configuration", "metadata"),
        ("GET", "/oauth2/openapi.json", "metadata"),
        ("POST", "/oauth2/register", "registration"),
        ("GET", "/oauth2/register/some-client", "registration"),
        ("DELETE", "/oauth2/register/some-client", "registration"),
        ("GET", "/oauth2/authorize", "authorize"),
        ("POST", "/oauth2/login", "authorize"),
        ("POST", "/oauth2/consent", "authorize"),
        ("POST", "/oauth2/logout", "authorize"),
        ("POST", "/oauth2/token", "token"),
        ("POST", "/oauth2/revoke", "token"),
    ];
    for (method, path, service) in cases {
        let res = s
            .http
            .request(method.parse().expect("method"), s.url(&format!("{path}?a=1&b=%2F")))
            .body("x=1")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{method} {path}");
        let seen = json(res).await;
        assert_eq!(seen["service"], service, "{method} {path}");
        assert_eq!(seen["path"], path, "{method} {path}");
        assert_eq!(seen["method"], method);
        assert_eq!(seen["query"], "a=1&b=%2F", "the raw query passes untouched");
        assert_eq!(seen["body"], "x=1");
    }
    // the JWKS and introspection are the token service's too (served by the stub itself)
    let jwks = json(s.http.get(s.url("/oauth2/jwks")).send().await.expect("jwks")).await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    let res = s
        .http
        .post(s.url("/oauth2/introspect"))
        .basic_auth(super::support::INTROSPECTION_ID, Some(super::support::INTROSPECTION_SECRET))
        .form(&[("token", s.token())])
        .send()
        .await
        .expect("introspect");
    assert_eq!(json(res).await["active"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_json_404s() {
    let s = Stack::start().await;
    for path in ["/nothing", "/oauth2/tokens", "/oauth2", "/mcpx", "/.well-known/security.txt", "/publicity"] {
        let res = s.http.get(s.url(path)).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(res.headers()["content-type"].to_str().expect("ct").starts_with("application/json"), "{path}");
        assert_eq!(json(res).await["error"], "not_found", "{path}");
    }
    let health = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_path_prefixes_the_oauth_endpoints() {
    let s = Stack::start_with(|settings, urls| {
        settings.issuer = server::config::Issuer::parse(&format!("{}/tenant", urls.gateway)).expect("issuer")
    })
    .await;
    let res = s.http.post(s.url("/tenant/oauth2/token")).send().await.expect("token");
    let seen = json(res).await;
    assert_eq!(seen["service"], "token");
    assert_eq!(seen["path"], "/oauth2/token", "forwarded without the issuer path");
    let seen = json(s.http.get(s.url("/tenant/oauth2/authorize?x=y")).send().await.expect("authorize")).await;
    assert_eq!(
        (seen["service"].as_str(), seen["path"].as_str(), seen["query"].as_str()),
        (Some("authorize"), Some("/oauth2/authorize"), Some("x=y"))
    );
    // RFC 8414 §3.1: the path-inserted document stays at the root, forwarded as it is
    let seen =
        json(s.http.get(s.url("/.well-known/oauth-authorization-server/tenant")).send().await.expect("asm")).await;
    assert_eq!(seen["service"], "metadata");
    assert_eq!(seen["path"], "/.well-known/oauth-authorization-server/tenant");
    // the `{path}/.well-known/openid-configuration` probe reaches the metadata service (its 404)
    let seen = json(s.http.get(s.url("/tenant/.well-known/openid-configuration")).send().await.expect("oidc")).await;
    assert_eq!(
        (seen["service"].as_str(), seen["path"].as_str()),
        (Some("metadata"), Some("/.well-known/openid-configuration"))
    );
    let res = s.http.post(s.url("/oauth2/token")).send().await.expect("token at the root");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "without the issuer path there is no token endpoint");
}

#[tokio::test(flavor = "multi_thread")]
async fn longest_prefix_wins_and_the_prefix_is_replaced_by_the_upstream_path() {
    let s = Stack::start().await;
    let res = s.http.get(s.url("/public/a/b?q=1")).send().await.expect("public");
    assert_eq!(res.status(), StatusCode::OK);
    let seen = json(res).await;
    assert_eq!((seen["path"].as_str(), seen["query"].as_str()), (Some("/public/a/b"), Some("q=1")));

    // /mcp/admin/... belongs to the longer prefix: a token for /mcp is not for it
    let admin = s.get_with("/mcp/admin/users", &s.token()).await;
    assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
    let token = s.token_with(|c| {
        c.aud = protocol::jwt::Audience::One(s.url("/mcp/admin"));
        c.scope = "admin".into();
    });
    let seen = json(s.get_with("/mcp/admin/users", &token).await).await;
    assert_eq!(seen["path"], "/admin/users", "prefix /mcp/admin replaced by the upstream's /admin");
    // a segment boundary: /mcp/administrator is under /mcp
    let seen = json(s.get_with("/mcp/administrator", &s.token()).await).await;
    assert_eq!(seen["path"], "/mcp/administrator");
    let seen = json(s.get_with("/mcp", &s.token()).await).await;
    assert_eq!(seen["path"], "/mcp");
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_never_reach_an_upstream() {
    let s = Stack::start().await;
    // sent raw: a client library would normalise these away
    for path in ["/public/../mcp", "/public/%2e%2e/mcp", "/public/..%2Fmcp", "/oauth2/register/../token"] {
        let res = raw_get(&s.gateway.url, path).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{path}: {res}");
        assert!(res.contains("invalid_request"), "{path}: {res}");
    }
}

/// A GET written to the socket byte for byte.
pub async fn raw_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}
