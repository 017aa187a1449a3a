//! Per-IP budgets on registration, token and login: 429 with `Retry-After` when spent.

use reqwest::StatusCode;
use serde_json::Value;

use super::support::Stack;

async fn assert_limited(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let wait: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{what}: Retry-After {wait}");
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "rate_limited", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_token_and_login_have_per_ip_budgets() {
    let s = Stack::start_with(|settings, _| {
        settings.gateway.register_per_ip_per_minute = 2;
        settings.gateway.token_per_ip_per_minute = 3;
        settings.gateway.login_per_ip_per_minute = 2;
    })
    .await;
    let post = |path: &'static str| s.http.post(s.url(path)).send();

    // preflights are free
    for _ in 0..3 {
        let res = s
            .http
            .request(reqwest::Method::OPTIONS, s.url("/oauth2/register"))
            .header("origin", "http://a.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(post("/oauth2/register").await.expect("r").status(), StatusCode::OK);
    let res = s.http.get(s.url("/oauth2/register/c1")).send().await.expect("r");
    assert_eq!(res.status(), StatusCode::OK, "RFC 7592 reads share the budget");
    assert_limited(post("/oauth2/register").await.expect("r"), "registration").await;

    for _ in 0..3 {
        assert_eq!(post("/oauth2/token").await.expect("r").status(), StatusCode::OK);
    }
    assert_limited(post("/oauth2/token").await.expect("r"), "token").await;
    assert_eq!(post("/oauth2/revoke").await.expect("r").status(), StatusCode::OK, "revocation has no budget");

    // showing the login form is free, each attempt costs
    for _ in 0..5 {
        assert_eq!(s.http.get(s.url("/oauth2/login")).send().await.expect("r").status(), StatusCode::OK);
    }
    assert_eq!(post("/oauth2/login").await.expect("r").status(), StatusCode::OK);
    assert_eq!(post("/oauth2/login").await.expect("r").status(), StatusCode::OK);
    assert_limited(post("/oauth2/login").await.expect("r"), "login").await;
    assert_eq!(s.http.get(s.url("/oauth2/authorize")).send().await.expect("r").status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let s = Stack::start_with(|settings, _| {
        settings.gateway.trust_forwarded_for = true;
        settings.gateway.token_per_ip_per_minute = 1;
    })
    .await;
    let from = |ip: &str| s.http.post(s.url("/oauth2/token")).header("x-forwarded-for", ip.to_owned()).send();
    assert_eq!(from("198.51.100.1").await.expect("r").status(), StatusCode::OK);
    assert_limited(from("198.51.100.1").await.expect("r"), "same client").await;
    assert_eq!(from("198.51.100.2").await.expect("r").status(), StatusCode::OK, "another client");
}
