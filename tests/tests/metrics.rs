//! Prometheus metrics of the whole system as `sallyport up` starts it: after a real sign-in,
//! consent, grant and MCP call, `/metrics` shows the series with the right labels on every port;
//! with `listen.admin` they leave the service ports and the gateway answers none of them; and
//! the real Prometheus server (Debian's `prometheus`) scrapes a running stack and answers a query.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::{Value, json};
use server::Settings;
use testkit::TestDb;
use testkit::forms;

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::http;

const PASSWORD: &str = "demo-password-for-metrics";
const CALLBACK: &str = "http://127.0.0.1:47125/callback";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-metrics-0123";

async fn start(db: &TestDb, tweak: impl FnOnce(&mut Settings)) -> System {
    support::start(db, PASSWORD, 1, protocol::Clock::system(), tweak).await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The value of one series of an OpenMetrics text, by its exact name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn scrape(url: &str) -> String {
    let res = http().get(format!("{url}/metrics")).send().await.expect("scrape");
    assert_eq!(res.status(), StatusCode::OK, "{url}/metrics");
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    res.text().await.expect("body")
}

/// Registers a public client through the gateway, signs the demo user in, consents and redeems
/// the code: the access token.
async fn signed_in_token(system: &System) -> String {
    let support::AtSignIn { client_id, browser, login, action, form } =
        support::public_client_at_sign_in(system, "metrics", CALLBACK, VERIFIER).await;
    // one wrong password first: a failed sign-in
    let wrong = form.submission(&[("username", "demo"), ("password", "not the password")], None);
    assert_eq!(browser.post(&action).form(&wrong).send().await.expect("sign in").status(), StatusCode::BAD_REQUEST);
    let html = browser.get(&login).send().await.expect("login page").text().await.expect("html");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("password")).expect("the sign-in form");
    let fields = form.submission(&[("username", "demo"), ("password", PASSWORD)], None);
    let code = support::sign_in_and_allow(&browser, &action, &fields, CALLBACK).await;
    let tokens = support::redeem(system, &client_id, &code, CALLBACK, VERIFIER).await;
    tokens["access_token"].as_str().expect("access token").to_owned()
}

/// What the gateway answers an MCP `initialize` with this token (none: no `Authorization`).
async fn mcp(system: &System, token: Option<&str>) -> StatusCode {
    let mut req = http()
        .post(&system.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("POST /mcp").status()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_port_of_up_serves_the_series_a_real_flow_moved() {
    let db = TestDb::new().await;
    let system = start(&db, |_| {}).await;
    let token = signed_in_token(&system).await;
    assert_eq!(mcp(&system, Some(&token)).await, StatusCode::OK);
    assert_eq!(mcp(&system, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(mcp(&system, Some("not-a-jwt")).await, StatusCode::UNAUTHORIZED);

    // `up` is one process: every service port serves its one registry
    let urls =
        [&system.issuer, &system.registration_url, &system.authorize_url, &system.token_url, &system.metadata_url];
    for url in urls {
        assert!(scrape(url).await.contains("sallyport_build_info"), "{url}");
    }
    let text = scrape(&system.token_url).await;
    let has = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    has(r#"sallyport_client_registrations_total{outcome="registered"}"#, 1.0);
    has(r#"sallyport_sign_ins_total{method="password",outcome="failure"}"#, 1.0);
    has(r#"sallyport_sign_ins_total{method="password",outcome="success"}"#, 1.0);
    has(r#"sallyport_consent_decisions_total{outcome="approved"}"#, 1.0);
    has(r#"sallyport_token_grants_total{grant_type="authorization_code",outcome="issued"}"#, 1.0);
    // the gateway, per route: a forwarded call and two refusals of its own
    has(r#"sallyport_gateway_requests_total{route="/mcp",outcome="forwarded"}"#, 1.0);
    has(r#"sallyport_gateway_requests_total{route="/mcp",outcome="unauthorized"}"#, 2.0);
    has(r#"sallyport_gateway_requests_total{route="/oauth2/register",outcome="forwarded"}"#, 1.0);
    has(r#"sallyport_gateway_upstream_duration_seconds_count{route="/mcp"}"#, 1.0);
    has(
        r#"sallyport_http_request_duration_seconds_count{service="gateway",route="/mcp",method="POST",status="4xx"}"#,
        2.0,
    );
    has(
        r#"sallyport_http_request_duration_seconds_count{service="token",route="/oauth2/token",method="POST",status="2xx"}"#,
        1.0,
    );
    has(r#"sallyport_gateway_jwks_refreshes_total{outcome="ok"}"#, 1.0);
    // up checks revocation through introspection, remembered for a while: one call for the token
    has(r#"sallyport_gateway_introspection_calls_total{outcome="active"}"#, 1.0);
    assert!(sample(&text, r#"sallyport_gateway_verified_token_cache_total{outcome="miss"}"#).is_some());
    assert!(sample(&text, "sallyport_db_pool_connections_in_use").is_some());
    assert!(sample(&text, "sallyport_db_pool_acquire_duration_seconds_count").is_some_and(|n| n >= 1.0));
    assert_eq!(sample(&text, "sallyport_db_pool_acquire_timeouts_total"), Some(0.0));
    assert!(sample(&text, "sallyport_signing_key_age_seconds").is_some());
    assert!(!text.contains(&token) && !text.contains("demo"), "no token or user is a label");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_admin_listener_no_service_port_and_no_gateway_path_serves_metrics() {
    let db = TestDb::new().await;
    let admin = free_port();
    let system = start(&db, |s| s.listen.admin = Some(([127, 0, 0, 1], admin).into())).await;
    assert_eq!(mcp(&system, None).await, StatusCode::UNAUTHORIZED);
    for url in [&system.token_url, &system.registration_url, &system.authorize_url, &system.metadata_url] {
        let res = http().get(format!("{url}/metrics")).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{url}");
    }
    // through the gateway: its own /metrics, and every way of reaching a service's
    for path in [
        "/metrics",
        "/oauth2/token/metrics",
        "/oauth2/register/metrics",
        "/oauth2/register/..%2Fmetrics",
        "/oauth2/register/%2e%2e/metrics",
        "/.well-known/oauth-authorization-server/metrics",
        "/oauth2/jwks/../../metrics",
        "/mcp/../metrics",
    ] {
        let res = http().get(format!("{}{path}", system.issuer)).send().await.expect("GET");
        let status = res.status();
        let body = res.text().await.expect("body");
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(!body.contains("# TYPE") && !body.contains("sallyport_"), "{path} answered metrics: {body}");
    }
    let text = scrape(&format!("http://127.0.0.1:{admin}")).await;
    assert_eq!(
        sample(&text, r#"sallyport_gateway_requests_total{route="/mcp",outcome="unauthorized"}"#),
        Some(1.0),
        "{text}"
    );
    let res = http().get(format!("http://127.0.0.1:{admin}/healthz")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "the admin listener serves /metrics only");
    system.stop().await;
}

/// A Prometheus server for the test's life, killed (and its data removed) when dropped.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn start_prometheus(binary: &std::path::Path, target: &str) -> Prometheus {
    let dir = std::env::temp_dir().join(format!("sallyport-prometheus-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    // the same scrape job as deploy/prometheus/prometheus.yml, at a test's pace
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sallyport\n    \
         static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start prometheus");
    Prometheus { child, dir, url: format!("http://127.0.0.1:{port}") }
}

/// Asks Prometheus's query API until `query` has a sample (or 60 s pass): its value.
async fn query_until_present(prometheus: &Prometheus, query: &str) -> Option<f64> {
    for _ in 0..120 {
        let url = url::Url::parse_with_params(&format!("{}/api/v1/query", prometheus.url), [("query", query)])
            .expect("query URL");
        let answer = http().get(url).send().await;
        if let Ok(res) = answer
            && let Ok(body) = res.json::<Value>().await
            && let Some(value) = body["data"]["result"][0]["value"][1].as_str()
        {
            return value.parse().ok();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_prometheus_scrapes_a_running_stack_and_answers_a_query() {
    let Some(binary) = prometheus_binary() else {
        eprintln!(
            "SKIPPED: no `prometheus` binary on PATH (Debian package `prometheus`; tests/run and .ci/run install it)"
        );
        return;
    };
    let db = TestDb::new().await;
    let admin = free_port();
    let system = start(&db, |s| s.listen.admin = Some(([127, 0, 0, 1], admin).into())).await;
    // a refused client_credentials grant and a refused MCP call: series Prometheus must see
    let res = http()
        .post(format!("{}/oauth2/token", system.issuer))
        .basic_auth("no-such-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(mcp(&system, None).await, StatusCode::UNAUTHORIZED);

    let prometheus = start_prometheus(&binary, &format!("127.0.0.1:{admin}"));
    let grants = query_until_present(
        &prometheus,
        r#"sallyport_token_grants_total{job="sallyport",grant_type="client_credentials",outcome="invalid_client"}"#,
    )
    .await;
    assert_eq!(grants, Some(1.0), "Prometheus scraped the refused grant");
    let refused =
        query_until_present(&prometheus, r#"sum(sallyport_gateway_requests_total{outcome="unauthorized"})"#).await;
    assert_eq!(refused, Some(1.0));
    let up = query_until_present(&prometheus, r#"up{job="sallyport"}"#).await;
    assert_eq!(up, Some(1.0), "the target is healthy");
    drop(prometheus);
    system.stop().await;
}
