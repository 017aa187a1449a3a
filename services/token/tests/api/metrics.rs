//! `/metrics` of the token service: real grants, over HTTP, move the counters under the right
//! labels, and no label carries a client id or a token.

use protocol::client::{AuthMethod, GrantType};

use crate::support::*;

/// The value of one series of an OpenMetrics text, by its exact name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn scrape(env: &Env) -> String {
    let res = reqwest::get(env.url("/metrics")).await.expect("scrape");
    assert_eq!(res.status(), 200);
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(kind.starts_with("application/openmetrics-text; version=1.0.0"), "{kind}");
    let text = res.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "a complete OpenMetrics exposition");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_reuse_and_requests_are_counted_with_bounded_labels() {
    let env = Env::start().await;
    let service = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretBasic,
            grants: &[GrantType::ClientCredentials],
            scope: "mcp",
            ..Default::default()
        })
        .await;
    let secret = service.secret.as_deref().expect("secret");
    for _ in 0..2 {
        let res = env.post_basic("/oauth2/token", &service.id, secret, &[("grant_type", "client_credentials")]).await;
        assert_eq!(res.status(), 200);
    }
    let res =
        env.post_basic("/oauth2/token", &service.id, "not-the-secret", &[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 401);
    let (status, body) = env.post_form("/oauth2/token", &[("grant_type", "password"), ("client_id", "x")]).await;
    assert_eq!((status, error(&body)), (400, "unsupported_grant_type"));

    // a rotated refresh token used again: reuse detected, the family revoked
    let app = env.client(ClientSpec::default()).await;
    let tokens = env.tokens_for(&app).await;
    let first = tokens["refresh_token"].as_str().expect("refresh token");
    assert_eq!(env.refresh(&app, first).await.0, 200);
    assert_eq!(env.refresh(&app, first).await.0, 400, "reuse is invalid_grant");

    let text = scrape(&env).await;
    let grants = |labels: &str| sample(&text, &format!("sallyport_token_grants_total{{{labels}}}"));
    assert_eq!(grants(r#"grant_type="client_credentials",outcome="issued""#), Some(2.0), "{text}");
    assert_eq!(grants(r#"grant_type="client_credentials",outcome="invalid_client""#), Some(1.0));
    assert_eq!(grants(r#"grant_type="unsupported",outcome="unsupported_grant_type""#), Some(1.0));
    assert_eq!(grants(r#"grant_type="authorization_code",outcome="issued""#), Some(1.0));
    assert_eq!(grants(r#"grant_type="refresh_token",outcome="issued""#), Some(1.0));
    assert_eq!(grants(r#"grant_type="refresh_token",outcome="invalid_grant""#), Some(1.0));
    assert_eq!(sample(&text, r#"sallyport_grant_family_revocations_total{reason="refresh_reuse"}"#), Some(1.0));

    let requests = |labels: &str| {
        sample(&text, &format!(r#"sallyport_http_request_duration_seconds_count{{service="token",{labels}}}"#))
    };
    assert_eq!(requests(r#"route="/oauth2/token",method="POST",status="2xx""#), Some(4.0), "{text}");
    assert_eq!(requests(r#"route="/oauth2/token",method="POST",status="4xx""#), Some(3.0));
    assert!(text.contains(r#"sallyport_build_info{version=""#), "build info");
    assert_eq!(sample(&text, "sallyport_db_pool_max_connections"), Some(8.0), "the test pool's size");
    assert!(sample(&text, "sallyport_signing_key_age_seconds").is_some_and(|age| age >= 0.0), "{text}");
    for secret_or_id in [service.id.as_str(), app.id.as_str(), first] {
        assert!(!text.contains(secret_or_id), "no id or token is a label");
    }

    // an unknown path is counted under one label, not under its own
    let res = reqwest::get(env.url("/no/such/path/4711")).await.expect("get");
    assert_eq!(res.status(), 404);
    let text = scrape(&env).await;
    assert!(!text.contains("4711"));
    assert_eq!(
        sample(
            &text,
            r#"sallyport_http_request_duration_seconds_count{service="token",route="unmatched",method="GET",status="4xx"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_switched_off_are_neither_kept_nor_served() {
    let env = Env::start_with(|s| s.metrics.enabled = false).await;
    let res = reqwest::get(env.url("/metrics")).await.expect("scrape");
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(error(&body), "not_found");
}
