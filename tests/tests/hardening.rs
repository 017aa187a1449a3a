//! The gateway's hardening, against the whole system as `sallyport up` starts it: revocation that
//! bites with `up`'s own revocation check, and one client address from an ingress to the services'
//! budgets and audit rows.

use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::{Value, json};
use server::Settings;
use testkit::TestDb;
use testkit::forms;

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::{absolute, http, location};

const PASSWORD: &str = "demo-password-for-hardening";
const CALLBACK: &str = "http://127.0.0.1:47124/callback";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-0123456789";

async fn start(db: &TestDb, clock: &protocol::Clock, tweak: impl FnOnce(&mut Settings)) -> System {
    support::start(db, PASSWORD, 2, clock.clone(), tweak).await
}

/// RFC 7591 registration of a public client from `ip` (as an ingress would forward it).
async fn register(system: &System, ip: &str) -> reqwest::Response {
    http()
        .post(format!("{}/oauth2/register", system.issuer))
        .header("x-forwarded-for", ip)
        .json(&json!({
            "client_name": "hardening",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .expect("register")
}

fn authorization_url(system: &System, client_id: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", system.issuer)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "mcp")
        .append_pair("resource", &system.mcp_url)
        .append_pair("state", "s1")
        .append_pair("code_challenge", &protocol::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// The sign-in form for a new browser: the browser and the form's absolute action and fields.
async fn sign_in_form(system: &System, client_id: &str) -> (reqwest::Client, String, forms::Form) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let start = authorization_url(system, client_id);
    let res = browser.get(&start).send().await.expect("authorize");
    let login = absolute(&start, &location(&res));
    let html = browser.get(&login).send().await.expect("login page").text().await.expect("html");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("password")).expect("the sign-in form");
    (browser, absolute(&login, &form.action), form)
}

/// Signs in, consents, and redeems the code: (code, access token, refresh token).
async fn tokens(system: &System, client_id: &str) -> (String, String, String) {
    let (browser, action, form) = sign_in_form(system, client_id).await;
    let fields = form.submission(&[("username", "demo"), ("password", PASSWORD)], None);
    let code = support::sign_in_and_allow(&browser, &action, &fields, CALLBACK).await;
    let res = redeem(system, client_id, &code).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    let token = |k: &str| body[k].as_str().expect(k).to_owned();
    (code, token("access_token"), token("refresh_token"))
}

async fn redeem(system: &System, client_id: &str, code: &str) -> reqwest::Response {
    http()
        .post(format!("{}/oauth2/token", system.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
            ("resource", &system.mcp_url),
        ])
        .send()
        .await
        .expect("token")
}

async fn refresh(system: &System, client_id: &str, refresh_token: &str) -> reqwest::Response {
    http()
        .post(format!("{}/oauth2/token", system.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)])
        .send()
        .await
        .expect("refresh")
}

/// What the gateway answers an MCP `initialize` with this token.
async fn mcp(system: &System, token: &str) -> StatusCode {
    http()
        .post(&system.mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
        .send()
        .await
        .expect("POST /mcp")
        .status()
}

async fn client_id(res: reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.expect("json")["client_id"].as_str().expect("client_id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_ups_revocation_check_a_replayed_code_and_a_reused_refresh_token_stop_at_the_gateway() {
    let db = TestDb::new().await;
    let clock = protocol::Clock::system();
    let system = start(&db, &clock, |_| {}).await;
    let cache = system.settings.gateway.revocation_cache_secs.as_secs();
    assert_eq!(system.settings.gateway.revocation_check, server::config::RevocationCheck::Cached);
    let id = client_id(register(&system, "192.0.2.1").await).await;

    // a replayed code revokes what its first redemption issued (RFC 6749 §4.1.2)
    let (code, access, _) = tokens(&system, &id).await;
    assert_eq!(mcp(&system, &access).await, StatusCode::OK);
    assert_eq!(redeem(&system, &id, &code).await.status(), StatusCode::BAD_REQUEST, "the replay is refused");
    clock.advance(i64::try_from(cache).expect("secs") + 1);
    assert_eq!(mcp(&system, &access).await, StatusCode::UNAUTHORIZED, "within the cache time it stops");

    // a rotated refresh token used again revokes its whole family, access tokens included
    let (_, _, first_refresh) = tokens(&system, &id).await;
    let res = refresh(&system, &id, &first_refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.expect("json");
    let access = rotated["access_token"].as_str().expect("access").to_owned();
    assert_eq!(mcp(&system, &access).await, StatusCode::OK);
    assert_eq!(refresh(&system, &id, &first_refresh).await.status(), StatusCode::BAD_REQUEST, "reuse is refused");
    assert_eq!(mcp(&system, &access).await, StatusCode::OK, "the gateway's answer is cached for a while");
    clock.advance(i64::try_from(cache).expect("secs") + 1);
    assert_eq!(mcp(&system, &access).await, StatusCode::UNAUTHORIZED);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_an_ingress_each_client_address_has_its_own_budgets_and_audit_rows() {
    let db = TestDb::new().await;
    let clock = protocol::Clock::system();
    let system = start(&db, &clock, |s| {
        s.gateway.trust_forwarded_for = true;
        s.registration.per_ip_per_minute = 1;
        s.login.per_ip_per_minute = 1;
    })
    .await;

    // registration: the services' budget is per client, not per ingress
    let a = client_id(register(&system, "198.51.100.1").await).await;
    assert_eq!(register(&system, "198.51.100.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
    let b = client_id(register(&system, "10.0.0.1, 198.51.100.2").await).await;
    // IPv6 clients count by their /64
    client_id(register(&system, "2001:db8:5:6::1").await).await;
    assert_eq!(register(&system, "2001:db8:5:6:aaaa::2").await.status(), StatusCode::TOO_MANY_REQUESTS);
    let mut conn = system.pool.get().await.expect("conn");
    for (id, ip) in [(&a, "198.51.100.1"), (&b, "198.51.100.2")] {
        let rows = store::audit::for_client(&mut conn, id).await.expect("audit");
        assert_eq!(rows[0].ip.as_deref(), Some(ip), "the audit row records the client's address");
    }
    drop(conn);

    // sign-in attempts: one per minute per client address at the authorize service
    let attempt = |ip: &'static str| {
        let (system, a) = (&system, a.clone());
        async move {
            let (browser, action, form) = sign_in_form(system, &a).await;
            let fields = form.submission(&[("username", "demo"), ("password", "wrong")], None);
            browser.post(&action).header("x-forwarded-for", ip).form(&fields).send().await.expect("sign in").status()
        }
    };
    assert_eq!(attempt("203.0.113.1").await, StatusCode::BAD_REQUEST, "a wrong password");
    assert_eq!(attempt("203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt("203.0.113.2").await, StatusCode::BAD_REQUEST, "another client has its own budget");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trust_a_forwarded_address_is_ignored() {
    let db = TestDb::new().await;
    let clock = protocol::Clock::system();
    let system = start(&db, &clock, |s| s.registration.per_ip_per_minute = 1).await;
    assert!(!system.settings.gateway.trust_forwarded_for);
    let a = client_id(register(&system, "198.51.100.1").await).await;
    // neither a forwarded-for chain nor a forged client-address header buys a new budget
    let res = http()
        .post(format!("{}/oauth2/register", system.issuer))
        .header("x-forwarded-for", "198.51.100.2")
        .header("x-sallyport-client-ip", "198.51.100.3")
        .json(&json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let mut conn = system.pool.get().await.expect("conn");
    let rows = store::audit::for_client(&mut conn, &a).await.expect("audit");
    assert_eq!(rows[0].ip.as_deref(), Some("127.0.0.1"), "the gateway's peer, not the header");
    system.stop().await;
}
