//! Issue 16: signing in with a company's OpenID provider, end to end against a real one —
//! node-oidc-provider (tests/oidc-provider, installed by `tests/run` with `npm ci`) with its
//! development login and consent pages — and the whole system as `sallyport up` starts it. An MCP
//! client's authorization request (a public client, PKCE S256, `resource`), "Sign in with" the
//! provider, the provider's login and consent, Sallyport's consent, the code, the token, and a
//! call through the gateway; in headless Chromium once, then by hand (a cookie-keeping HTTP
//! client, every redirect checked) for the refusals: unverified email with a domain rule, a domain
//! not allowed, a required group missing, the provider's `access_denied`, a replayed or foreign
//! callback (`state`), a disabled user, an unreachable provider, and the provider rotating its key;
//! and a user who signed in before but no longer passes the admission rules (out of the required
//! group, or their address moved out of the allowed domains at the provider) is refused as well.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::{Value, json};
use server::config::ProviderSettings;
use testkit::{TestDb, forms};

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::op::{Op, OpOptions};
use support::{absolute, free_port, http, location, temp_dir};

const PASSWORD: &str = "demo-password-for-federation";
const CALLBACK: &str = "http://127.0.0.1:47125/callback";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-federation-0";
const OP_CLIENT: &str = "sallyport-test";
const OP_SECRET: &str = "a-client-secret-of-the-test-provider-0123456789";

/// The test provider with this test's client.
fn start_op(port: u16, redirect_uri: &str, accounts: Option<&Path>) -> Op {
    Op::start(
        port,
        &OpOptions { client_id: OP_CLIENT, client_secret: OP_SECRET, redirect_uri, accounts, revocation: false },
    )
}

fn provider(id: &str, issuer: &str) -> ProviderSettings {
    ProviderSettings {
        id: id.into(),
        name: if id == "corp" { "Corp ID".into() } else { "Down ID".into() },
        issuer: issuer.into(),
        client_id: OP_CLIENT.into(),
        client_secret: Some(OP_SECRET.into()),
        client_secret_env: None,
        scopes: vec!["openid".into(), "email".into(), "profile".into(), "groups".into()],
        username_claim: None,
        allowed_email_domains: vec!["example.com".into()],
        required_claims: [("groups".to_owned(), "mcp-users".to_owned())].into(),
        allow_private_hosts: true,
    }
}

/// The system with the provider `corp` (at `op_port`, started later) and `down` (nothing listens).
async fn start(db: &TestDb, op_port: u16) -> System {
    let down = format!("http://127.0.0.1:{}", free_port());
    support::start(db, PASSWORD, 2, protocol::Clock::system(), |s| {
        s.login.providers = vec![provider("corp", &format!("http://127.0.0.1:{op_port}")), provider("down", &down)];
    })
    .await
}

fn redirect_uri(system: &System) -> String {
    format!("{}/oauth2/login/corp/callback", system.issuer)
}

/// RFC 7591 registration as the Rust MCP SDK sends it: a public client on a loopback redirect.
async fn register(system: &System) -> String {
    let res = http()
        .post(format!("{}/oauth2/register", system.issuer))
        .json(&json!({
            "client_name": "federation test",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.expect("json")["client_id"].as_str().expect("client_id").to_owned()
}

fn authorization_url(system: &System, client_id: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", system.issuer)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "mcp")
        .append_pair("resource", &system.mcp_url)
        .append_pair("state", "client-state")
        .append_pair("code_challenge", &protocol::pkce::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Sallyport's sign-in page for a new authorization request: its URL and forms.
async fn sign_in_page(browser: &reqwest::Client, system: &System, client_id: &str) -> (String, Vec<forms::Form>) {
    let start = authorization_url(system, client_id);
    let res = browser.get(&start).send().await.expect("authorize");
    let login = absolute(&start, &location(&res));
    let html = browser.get(&login).send().await.expect("login page").text().await.expect("html");
    (login, forms::parse(&html))
}

/// Presses "Sign in with {provider}": the response to the button.
async fn press(
    browser: &reqwest::Client,
    system: &System,
    client_id: &str,
    provider: &str,
) -> (String, reqwest::Response) {
    let (login, forms) = sign_in_page(browser, system, client_id).await;
    let form = forms.into_iter().find(|f| f.has_button("provider", provider)).expect("the provider's button");
    let action = absolute(&login, &form.action);
    let res = browser
        .post(&action)
        .form(&form.submission(&[], Some(("provider", provider))))
        .send()
        .await
        .expect("press the button");
    (action, res)
}

/// At the provider, as `login`: the login page, then its consent page; returns the URL it sends
/// the browser back to (Sallyport's callback), not yet visited. With `cancel`, the user cancels
/// at the login page instead.
async fn at_provider(browser: &reqwest::Client, mut url: String, login: &str, cancel: bool) -> String {
    for _ in 0..20 {
        if url.contains("/oauth2/login/") {
            return url;
        }
        let res = browser.get(&url).send().await.expect("GET at the provider");
        if res.status().is_redirection() {
            url = absolute(&url, &location(&res));
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let html = res.text().await.expect("html");
        let form = forms::parse(&html).into_iter().next().unwrap_or_else(|| panic!("a form at {url}: {html}"));
        let action = absolute(&url, &form.action);
        let fields = if form.has_input("login") {
            if cancel {
                url = absolute(&url, &format!("{}/abort", form.action));
                continue;
            }
            form.submission(&[("login", login), ("password", "any")], None)
        } else {
            form.submission(&[], None)
        };
        let res = browser.post(&action).form(&fields).send().await.expect("POST at the provider");
        assert!(res.status().is_redirection(), "{action}: {}", res.status());
        url = absolute(&action, &location(&res));
    }
    panic!("the provider never sent the browser back")
}

/// From the callback on: Sallyport's consent (allowed) and the code at the client.
async fn back_at_sallyport(browser: &reqwest::Client, callback: &str) -> Result<String, (StatusCode, String)> {
    let res = browser.get(callback).send().await.expect("callback");
    if !res.status().is_redirection() {
        return Err((res.status(), res.text().await.expect("page")));
    }
    let next = absolute(callback, &location(&res));
    assert!(next.contains("/oauth2/authorize?"), "back to the pending request: {next}");
    let res = browser.get(&next).send().await.expect("authorize");
    let html = res.text().await.expect("consent page");
    let form = forms::parse(&html).into_iter().find(|f| f.has_button("decision", "allow")).expect("consent");
    let res = browser
        .post(absolute(&next, &form.action))
        .form(&form.submission(&[], Some(("decision", "allow"))))
        .send()
        .await
        .expect("allow");
    let landed = location(&res);
    assert!(landed.starts_with(CALLBACK), "{landed}");
    Ok(url::Url::parse(&landed).expect("url").query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned())
}

/// The code redeemed (with the verifier and the resource) and the token used at the gateway.
async fn call_through_gateway(system: &System, client_id: &str, code: &str) -> StatusCode {
    let res = http()
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
        .expect("token");
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.expect("json")["access_token"].as_str().expect("access_token").to_owned();
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

/// One whole sign-in as `login` in a new browser: the code, or the page Sallyport ended on.
async fn sign_in_as(system: &System, client_id: &str, login: &str) -> Result<String, (StatusCode, String)> {
    let b = browser();
    let (action, res) = press(&b, system, client_id, "corp").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let callback = at_provider(&b, absolute(&action, &location(&res)), login, false).await;
    back_at_sallyport(&b, &callback).await
}

/// What `sallyport user disable <username>` does: the flag, the user's sessions ended, their grants
/// revoked (the verb's own function; its parsing and configuration are crates/sallyport/tests/cli.rs').
async fn disable(system: &System, username: &str) {
    let now = chrono::Utc::now();
    let mut conn = system.pool.get().await.expect("conn");
    sallyport::commands::user::disable(&mut conn, username, now, now + chrono::TimeDelta::hours(1))
        .await
        .expect("sallyport user disable");
}

async fn audit_reasons(system: &System) -> Vec<String> {
    let mut conn = system.pool.get().await.expect("conn");
    store::audit::recent(&mut conn, 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.kind.starts_with("user.federated_sign_in"))
        .map(|e| format!("{} {}", e.kind, e.detail["reason"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_sign_in_with_a_real_openid_provider_and_the_rules_hold() {
    let db = TestDb::new().await;
    let op_port = free_port();
    let system = start(&db, op_port).await;
    let op = start_op(op_port, &redirect_uri(&system), None);
    let client_id = register(&system).await;

    // the sign-in page: a button per provider above the password form
    let (_, forms) = sign_in_page(&browser(), &system, &client_id).await;
    assert!(forms.iter().any(|f| f.has_button("provider", "corp")) && forms.iter().any(|f| f.has_input("password")));

    // alice: verified example.com address, in mcp-users; the ID token carries only `sub`, so her
    // name, email and groups come from userinfo
    let code = sign_in_as(&system, &client_id, "alice").await.expect("alice signs in");
    assert_eq!(call_through_gateway(&system, &client_id, &code).await, StatusCode::OK);
    let mut conn = system.pool.get().await.expect("conn");
    let alice = store::users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice was created");
    assert_eq!(alice.password_hash, store::federation::NO_PASSWORD);
    let links = store::federation::for_user(&mut conn, alice.id).await.expect("links");
    assert_eq!((links.len(), links[0].subject.as_str(), links[0].issuer.as_str()), (1, "alice", op.issuer().as_str()));
    assert_eq!(links[0].email.as_deref(), Some("alice@example.com"));
    drop(conn);
    // the second sign-in finds the same user
    let code = sign_in_as(&system, &client_id, "alice").await.expect("alice again");
    assert_eq!(call_through_gateway(&system, &client_id, &code).await, StatusCode::OK);
    assert_eq!(store::federation::list(&mut system.pool.get().await.expect("conn")).await.expect("links").len(), 1);

    // the admission rules, each on a page that says what happened, with "try again"
    for (login, says) in [
        ("bob", "is not verified"),
        ("carol", "not in a domain allowed here"),
        ("dave", "lacks the required groups claim value"),
    ] {
        let (status, page) = sign_in_as(&system, &client_id, login).await.expect_err(login);
        assert_eq!(status, StatusCode::FORBIDDEN, "{login}");
        assert!(page.contains(says) && page.contains("id=\"try-again\""), "{login}: {page}");
        let mut conn = system.pool.get().await.expect("conn");
        assert!(
            store::users::find_by_username(&mut conn, login).await.expect("query").is_none(),
            "{login} not created"
        );
    }

    // the user cancels at the provider: access_denied
    let b = browser();
    let (action, res) = press(&b, &system, &client_id, "corp").await;
    let callback = at_provider(&b, absolute(&action, &location(&res)), "alice", true).await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let (status, page) = back_at_sallyport(&b, &callback).await.expect_err("denied");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("did not allow the sign-in") && page.contains("try-again"), "{page}");

    // a callback is used once, and only in the browser that started it
    let b = browser();
    let (action, res) = press(&b, &system, &client_id, "corp").await;
    let callback = at_provider(&b, absolute(&action, &location(&res)), "alice", false).await;
    let (status, page) = back_at_sallyport(&browser(), &callback).await.expect_err("another browser");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("started in another browser"), "{page}");
    let b = browser();
    let (action, res) = press(&b, &system, &client_id, "corp").await;
    let callback = at_provider(&b, absolute(&action, &location(&res)), "alice", false).await;
    back_at_sallyport(&b, &callback).await.expect("the first use");
    let (status, page) = back_at_sallyport(&b, &callback).await.expect_err("a replay");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");

    // a provider that cannot be reached: a page, no redirect loop
    let (_, res) = press(&browser(), &system, &client_id, "down").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let page = res.text().await.expect("page");
    assert!(page.contains("Down ID could not be reached") && page.contains("try-again"), "{page}");

    // key rotation at the provider: restarted with a new key, the next sign-in fetches the keys again
    drop(op);
    tokio::time::sleep(Duration::from_secs(authorize_keys_refetch_secs())).await;
    let op = start_op(op_port, &redirect_uri(&system), None);
    let code = sign_in_as(&system, &client_id, "alice").await.expect("alice after the key rotation");
    assert_eq!(call_through_gateway(&system, &client_id, &code).await, StatusCode::OK);

    // a user disabled by `sallyport user disable` cannot sign in through the provider either
    disable(&system, "alice").await;
    let (status, page) = sign_in_as(&system, &client_id, "alice").await.expect_err("disabled");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("disabled"), "{page}");

    let reasons = audit_reasons(&system).await;
    for want in [
        "user.federated_sign_in ",
        "user.federated_sign_in_failed not_admitted:email_unverified",
        "user.federated_sign_in_failed not_admitted:domain_not_allowed",
        "user.federated_sign_in_failed not_admitted:missing_claim",
        "user.federated_sign_in_failed provider_error:access_denied",
        "user.federated_sign_in_failed expired_or_replayed",
        "user.federated_sign_in_failed user_disabled",
        "user.federated_sign_in_failed provider_unreachable",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} missing in {reasons:?}");
    }
    drop(op);
}

/// A JSON file of accounts for the provider (`OP_ACCOUNTS`), rewritten as the provider's
/// administrator would change a user.
fn write_accounts(path: &Path, erin: Value) {
    std::fs::write(path, json!({ "erin": erin }).to_string()).expect("write the accounts file");
}

fn erin(email: &str, groups: &[&str]) -> Value {
    json!({
        "email": email, "email_verified": true, "groups": groups,
        "name": "Erin Example", "preferred_username": "erin",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_no_longer_passes_the_admission_rules_cannot_sign_in_again() {
    let db = TestDb::new().await;
    let op_port = free_port();
    let system = start(&db, op_port).await;
    let dir = temp_dir("federation-accounts");
    let accounts = dir.join("accounts.json");
    write_accounts(&accounts, erin("erin@example.com", &["mcp-users"]));
    let _op = start_op(op_port, &redirect_uri(&system), Some(&accounts));
    let client_id = register(&system).await;

    // erin passes the rules and becomes a user
    let code = sign_in_as(&system, &client_id, "erin").await.expect("erin signs in");
    assert_eq!(call_through_gateway(&system, &client_id, &code).await, StatusCode::OK);
    let mut conn = system.pool.get().await.expect("conn");
    let user = store::users::find_by_username(&mut conn, "erin").await.expect("query").expect("erin was created");
    drop(conn);

    // taken out of the required group at the provider: the existing link does not let her in
    write_accounts(&accounts, erin("erin@example.com", &["staff"]));
    let (status, page) = sign_in_as(&system, &client_id, "erin").await.expect_err("out of the group");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("lacks the required groups claim value") && page.contains("id=\"try-again\""), "{page}");
    // her address moved to a domain not allowed here: refused too
    write_accounts(&accounts, erin("erin@elsewhere.test", &["mcp-users"]));
    let (status, page) = sign_in_as(&system, &client_id, "erin").await.expect_err("domain not allowed");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("not in a domain allowed here"), "{page}");
    // neither refusal touched her user or its link (the refusals come before the sign-in)
    let mut conn = system.pool.get().await.expect("conn");
    let links = store::federation::for_user(&mut conn, user.id).await.expect("links");
    assert_eq!((links.len(), links[0].email.as_deref()), (1, Some("erin@example.com")));
    drop(conn);

    // back in the group with her address: the same user again
    write_accounts(&accounts, erin("erin@example.com", &["mcp-users"]));
    let code = sign_in_as(&system, &client_id, "erin").await.expect("erin is admitted again");
    assert_eq!(call_through_gateway(&system, &client_id, &code).await, StatusCode::OK);
    let mut conn = system.pool.get().await.expect("conn");
    let again = store::users::find_by_username(&mut conn, "erin").await.expect("query").expect("erin");
    assert_eq!(again.id, user.id);
    let erins =
        store::users::list(&mut conn).await.expect("users").into_iter().filter(|u| u.username.starts_with("erin"));
    assert_eq!(erins.count(), 1, "no second user for her");
    drop(conn);

    let reasons = audit_reasons(&system).await;
    for want in [
        "user.federated_sign_in_failed not_admitted:missing_claim",
        "user.federated_sign_in_failed not_admitted:domain_not_allowed",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} missing in {reasons:?}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// The MCP client's loopback redirect target: answers every request with a small page.
async fn client_callback_page() -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:47125").await.expect("the client's callback port");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = "<h1>the client got its code</h1>";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_with_the_provider_in_chromium() {
    use fantoccini::Locator;
    let db = TestDb::new().await;
    let op_port = free_port();
    let system = start(&db, op_port).await;
    let _op = start_op(op_port, &redirect_uri(&system), None);
    let client_id = register(&system).await;
    let page = client_callback_page().await;
    let browser = support::chromium::start("federation").await;
    let c = browser.client.clone();
    let run = async {
        c.goto(&authorization_url(&system, &client_id)).await?;
        c.wait().for_element(Locator::Id("provider-corp")).await?.click().await?;
        // the provider's own login page (any password; the name picks the account)
        c.wait().for_element(Locator::Css("input[name=login]")).await?.send_keys("alice").await?;
        c.find(Locator::Css("input[name=password]")).await?.send_keys("any").await?;
        c.find(Locator::Css("button[type=submit]")).await?.click().await?;
        // the provider's consent, then Sallyport's
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "no consent page: {}", c.current_url().await?);
            if let Ok(allow) = c.find(Locator::Id("allow")).await {
                let source = c.source().await?;
                assert!(source.contains("federation test") && source.contains("alice"), "{source}");
                allow.click().await?;
                break;
            }
            if let Ok(go) = c.find(Locator::Css("input[name=prompt][value=consent] ~ button")).await {
                go.click().await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let landed = loop {
            let now = c.current_url().await?;
            if now.as_str().starts_with(CALLBACK) {
                break now;
            }
            assert!(Instant::now() < deadline, "never back at the client: {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok::<url::Url, fantoccini::error::CmdError>(landed)
    };
    let outcome = run.await;
    let landed = match outcome {
        Ok(landed) => landed,
        Err(e) => {
            browser.close().await;
            panic!("the browser run: {e}");
        }
    };
    let q: std::collections::HashMap<_, _> = landed.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("client-state"));
    assert_eq!(q.get("iss").map(String::as_str), Some(system.issuer.as_str()));
    let code = q.get("code").expect("a code");
    assert_eq!(call_through_gateway(&system, &client_id, code).await, StatusCode::OK);

    // `sallyport user disable alice`: her session here ends, so the next authorization request
    // asks her to sign in again, and the provider's answer (she is still signed in there) is
    // refused with a page that says why
    disable(&system, "alice").await;
    let again = async {
        c.goto(&authorization_url(&system, &client_id)).await?;
        c.wait().for_element(Locator::Id("provider-corp")).await?.click().await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = c.source().await?;
            if source.contains("Your account here is disabled") {
                break Ok::<_, fantoccini::error::CmdError>((c.current_url().await?, source));
            }
            assert!(Instant::now() < deadline, "no refusal page: {}", c.current_url().await?);
            if let Ok(login) = c.find(Locator::Css("input[name=login]")).await {
                login.send_keys("alice").await?;
                c.find(Locator::Css("input[name=password]")).await?.send_keys("any").await?;
                c.find(Locator::Css("button[type=submit]")).await?.click().await?;
            } else if let Ok(go) = c.find(Locator::Css("input[name=prompt][value=consent] ~ button")).await {
                go.click().await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let outcome = again.await;
    browser.close().await;
    page.abort();
    let (at, source) = outcome.expect("the browser run after the disable");
    assert!(at.path().ends_with("/oauth2/login/corp/callback"), "{at}");
    assert!(source.contains("id=\"try-again\""), "{source}");
}

/// How long a rotated-in key may have to wait for the keys to be fetched again (the authorize
/// service refetches at most this often).
fn authorize_keys_refetch_secs() -> u64 {
    5
}
