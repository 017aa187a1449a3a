//! Upstream credentials (`upstream_auth`): the echo upstream records what it receives, so these
//! tests see that the route's credential arrives and the client's token does not; routes of the
//! `gateway_routes` table are served (and dropped) within seconds, their credential sealed at rest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use serde_json::Value;

use protocol::redact::SecretString;
use server::config::{ApiKeySettings, ConfigSecret, RouteSettings, UpstreamAuth};
use store::gateway_routes::{self, GatewayRouteRow};

use super::support::{Stack, http_url};

fn received_header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_credentials_replace_the_clients_token() {
    let s = Stack::start_with(|settings, urls| {
        let mcp = settings.gateway.routes.iter().find(|r| r.prefix == "/mcp").expect("mcp").clone();
        let up = mcp.upstream.base().trim_end_matches("/mcp").to_owned();
        settings.gateway.routes.push(RouteSettings {
            prefix: "/keyed".into(),
            upstream: http_url(&format!("{up}/keyed")),
            upstream_auth: UpstreamAuth::ApiKey,
            upstream_api_key: Some(ApiKeySettings {
                header: "X-API-Key".into(),
                value: ConfigSecret::new("k-configured-123"),
            }),
            ..mcp.clone()
        });
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), ConfigSecret::new("Bearer upstream-static-token"));
        headers.insert("X-Tenant".to_owned(), ConfigSecret::new("acme"));
        settings.gateway.routes.push(RouteSettings {
            prefix: "/open-headers".into(),
            upstream: http_url(&format!("{up}/open")),
            resource: None,
            auth: false,
            upstream_auth: UpstreamAuth::Headers,
            upstream_headers: headers,
            upstream_oauth: None,
            ..mcp
        });
        let _ = urls;
    })
    .await;

    let token = s.token();
    let res = s
        .http
        .get(s.url("/keyed/x"))
        .bearer_auth(&token)
        .header("x-api-key", "forged-by-the-client")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.expect("json");
    assert_eq!(echo["path"], "/keyed/x");
    assert_eq!(received_header(&echo, "x-api-key"), ["k-configured-123"], "the route's key, and only it");
    assert!(received_header(&echo, "authorization").is_empty(), "the client's token never reaches the upstream");
    assert!(!echo.to_string().contains(&token));
    assert_eq!(received_header(&echo, "x-sallyport-subject"), ["user-1"], "the identity still goes along");

    // the bearer check still comes first
    let res = s.http.get(s.url("/keyed/x")).send().await.expect("request");
    assert_eq!(res.status(), 401);

    // a public route: the client's Authorization is not passed on either; the route's headers are
    let res = s.http.get(s.url("/open-headers/y")).bearer_auth("client-secret-token").send().await.expect("request");
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.expect("json");
    assert_eq!(received_header(&echo, "authorization"), ["Bearer upstream-static-token"]);
    assert_eq!(received_header(&echo, "x-tenant"), ["acme"]);
    assert!(!echo.to_string().contains("client-secret-token"));

    // a route without upstream_auth is what it was: the echo sees no credential added
    let res = s.get_with("/mcp/plain", &token).await;
    let echo: Value = res.json().await.expect("json");
    assert!(received_header(&echo, "x-api-key").is_empty());
    assert!(received_header(&echo, "authorization").is_empty());
}

/// Waits until `check` holds, for at most 6 s (routes of the table are reloaded every 2 s).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(6);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 6 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(s: &Stack, prefix: &str, kind: UpstreamAuth, headers: &[(&str, &str)]) -> GatewayRouteRow {
    let key = s.settings.keys.encryption_key.as_ref().expect("the test settings have a key");
    let headers: Vec<(String, SecretString)> =
        headers.iter().map(|(n, v)| ((*n).to_owned(), SecretString::from(*v))).collect();
    let sealed =
        (!headers.is_empty()).then(|| gateway_routes::seal_headers(key.bytes(), prefix, &headers).expect("seal"));
    let now = chrono::Utc::now();
    let up = s.settings.gateway.routes.iter().find(|r| r.prefix == "/mcp").expect("mcp").upstream.base().to_owned();
    GatewayRouteRow {
        prefix: prefix.into(),
        upstream: format!("{}/db", up.trim_end_matches("/mcp")),
        resource: Some(s.url("/mcp")),
        scopes: vec![Some("mcp".into())],
        auth: true,
        mcp: false,
        allowed_origins: vec![],
        upstream_auth: kind.as_str().into(),
        upstream_header_names: headers.iter().map(|(n, _)| Some(n.clone())).collect(),
        upstream_secret_enc: sealed,
        created_at: now,
        updated_at: now,
        upstream_oauth: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_of_the_table_are_served_within_seconds_with_their_sealed_credential() {
    let s = Stack::start().await;
    let token = s.token();
    let pool = s.pool();
    assert_eq!(s.get_with("/linear/tools", &token).await.status(), 404, "no such route yet");

    let mut conn = pool.get().await.expect("conn");
    gateway_routes::upsert(&mut conn, &row(&s, "/linear", UpstreamAuth::ApiKey, &[("x-api-key", "lin-secret-1")]))
        .await
        .expect("insert");
    eventually("the new route is served", async || s.get_with("/linear/tools", &token).await.status() == 200).await;
    let res = s.http.get(s.url("/linear/tools?q=1")).bearer_auth(&token).send().await.expect("request");
    let echo: Value = res.json().await.expect("json");
    assert_eq!(echo["path"], "/db/tools");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(received_header(&echo, "x-api-key"), ["lin-secret-1"]);
    assert!(received_header(&echo, "authorization").is_empty(), "no token passthrough");
    assert!(!echo.to_string().contains(&token));

    // the route's bearer check is the configured routes': no token, another resource's token
    let res = s.http.get(s.url("/linear/tools")).send().await.expect("request");
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").is_some());
    let other = s.token_with(|c| c.aud = protocol::jwt::Audience::One(s.url("/mcp/admin")));
    assert_eq!(s.get_with("/linear/tools", &other).await.status(), 401);

    // a leaked dump of the table shows no key
    let dump: Vec<String> = diesel::sql_query("SELECT t::text AS line FROM gateway_routes t")
        .load::<Line>(&mut conn)
        .await
        .expect("dump")
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(dump.len(), 1);
    assert!(dump[0].contains("x-api-key"), "the header name is clear: {}", dump[0]);
    assert!(!dump[0].contains("lin-secret-1"), "the value is not: {}", dump[0]);
    let hex: String = "lin-secret-1".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump[0].contains(&hex), "not even as bytea hex");

    // a rotated key is picked up
    let mut rotated = row(&s, "/linear", UpstreamAuth::ApiKey, &[("x-api-key", "lin-secret-2")]);
    rotated.updated_at = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    gateway_routes::upsert(&mut conn, &rotated).await.expect("rotate");
    eventually("the rotated key is used", async || {
        let echo: Value = s.get_with("/linear/tools", &token).await.json().await.unwrap_or_default();
        received_header(&echo, "x-api-key") == ["lin-secret-2"]
    })
    .await;

    // a value sealed for another route does not open here: that row is left out, the others stay
    let mut swapped = row(&s, "/github", UpstreamAuth::ApiKey, &[("x-api-key", "gh")]);
    swapped.upstream_secret_enc = rotated.upstream_secret_enc.clone();
    gateway_routes::upsert(&mut conn, &swapped).await.expect("insert");
    gateway_routes::upsert(&mut conn, &row(&s, "/plain-db", UpstreamAuth::None, &[])).await.expect("insert");
    eventually("the plain route is served", async || s.get_with("/plain-db/x", &token).await.status() == 200).await;
    assert_eq!(s.get_with("/github/x", &token).await.status(), 404, "a credential that does not open: not served");
    assert_eq!(s.get_with("/linear/tools", &token).await.status(), 200);

    // a configured prefix wins over the table
    let mut shadow = row(&s, "/public", UpstreamAuth::ApiKey, &[("x-api-key", "shadow")]);
    shadow.upstream = "http://127.0.0.1:9/nowhere".into();
    gateway_routes::upsert(&mut conn, &shadow).await.expect("insert");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let echo: Value = s.http.get(s.url("/public/z")).send().await.expect("request").json().await.expect("json");
    assert_eq!(echo["path"], "/public/z", "the configured route");
    assert!(received_header(&echo, "x-api-key").is_empty());

    assert!(gateway_routes::delete(&mut conn, "/linear").await.expect("delete"));
    eventually("the removed route is gone", async || s.get_with("/linear/tools", &token).await.status() == 404).await;
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}
