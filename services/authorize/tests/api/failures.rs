//! Every refusal: a page (never a redirect) while the client or redirect URI is not trusted, then
//! RFC 6749 §4.1.2.1 errors at the redirect URI with `state` and the exact `iss`.

use super::support::*;

async fn page_without_redirect(env: &Env, url: &str) -> String {
    let res = browser().get(url).send().await.expect("authorize");
    assert_eq!(res.status(), 400, "{url}");
    assert!(res.headers().get("location").is_none(), "never a redirect");
    assert!(res.headers().get("content-type").expect("ct").to_str().expect("ascii").starts_with("text/html"));
    assert_eq!(res.headers().get("x-frame-options").expect("xfo"), "DENY");
    let _ = env;
    res.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_client_or_redirect_is_a_page() {
    let env = Env::new().await;
    let evil = env.authorize_url("").replace(&enc(REDIRECT), &enc("https://evil.example/callback"));
    let html = page_without_redirect(&env, &evil).await;
    assert!(html.contains("redirect_uri"), "{html}");
    assert!(!html.contains("evil.example"), "nothing of the attacker's URL is echoed");
    // a different path on the loopback host, or https instead of http, is not the registered URI
    for other in ["http://127.0.0.1:3000/other", "https://127.0.0.1:3000/callback", "http://localhost:3000/callback"] {
        page_without_redirect(&env, &env.authorize_url("").replace(&enc(REDIRECT), &enc(other))).await;
    }
    let unknown = env.authorize_url("").replace(&env.client_id, "no-such-client");
    assert!(page_without_redirect(&env, &unknown).await.contains("unknown client_id"));
    let missing = format!("{}/oauth2/authorize?response_type=code&redirect_uri={}", env.server.url, enc(REDIRECT));
    page_without_redirect(&env, &missing).await;
    let twice = format!("{}&client_id={}", env.authorize_url(""), env.client_id);
    page_without_redirect(&env, &twice).await;
    // an unreachable metadata document is not a client either
    let doc = env.authorize_url("").replace(&env.client_id, &enc("http://127.0.0.1:9/client.json"));
    let html = page_without_redirect(&env, &doc).await;
    // a fixed message; the HTTP client's own text (with hosts, addresses, causes) goes to the log only
    assert!(html.contains("metadata document could not be fetched. "), "{html}");
    assert!(!html.contains("error sending request") && !html.contains("127.0.0.1:9"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_registered_redirects_require_one() {
    let other = "https://app.example.com/cb";
    let env = Env::with_redirects(&[REDIRECT, other], "mcp:tools", |_| {}).await;
    let url = env.authorize_url("").replace(&format!("&redirect_uri={}", enc(REDIRECT)), "");
    page_without_redirect(&env, &url).await;
}

async fn error_for(env: &Env, extra: &str, remove: &str) -> std::collections::HashMap<String, String> {
    let url = env.authorize_url(extra).replace(remove, "");
    let res = browser().get(&url).send().await.expect("authorize");
    assert_eq!(res.status(), 302, "{url}");
    assert_eq!(res.headers().get("cache-control").expect("cc"), "no-store");
    location(&res).split_once('?').map(|_| ()).expect("a query");
    let to = location(&res);
    assert!(to.starts_with(REDIRECT));
    query(&to)
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_go_to_the_redirect_uri_with_state_and_iss() {
    let env = Env::new().await;
    let check = |q: &std::collections::HashMap<String, String>, error: &str| {
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{q:?}");
        assert_eq!(q.get("state").map(String::as_str), Some("st&te"), "{q:?}");
        assert_eq!(q.get("iss").map(String::as_str), Some(env.issuer()), "RFC 9207 iss, byte for byte: {q:?}");
        assert!(!q.contains_key("code"));
    };

    let q = error_for(&env, "", &format!("&code_challenge={CHALLENGE}")).await;
    check(&q, "invalid_request");
    assert!(q["error_description"].contains("code_challenge"), "{q:?}");

    let q = error_for(&env, "", "&code_challenge_method=S256").await;
    check(&q, "invalid_request");
    assert!(q["error_description"].contains("S256"), "absent method means plain: {q:?}");

    let plain = env.authorize_url("").replace("code_challenge_method=S256", "code_challenge_method=plain");
    let res = browser().get(&plain).send().await.expect("plain");
    let q = query(&location(&res));
    check(&q, "invalid_request");
    assert!(q["error_description"].contains("S256"), "{q:?}");

    let q = error_for(&env, &format!("&resource={}", enc("https://unknown.example/mcp")), "").await;
    check(&q, "invalid_target");
    let q = error_for(&env, &format!("&resource={}", enc("https://mcp.example.com/mcp#frag")), "").await;
    check(&q, "invalid_target");

    let q = error_for(&env, "&scope=mcp:tools+unknown:scope", "").await;
    check(&q, "invalid_scope");
    assert!(q["error_description"].contains("unknown:scope"), "{q:?}");
    // a client an operator made is held to its registered scope...
    let operator = add_client(
        &env.db.pool(),
        "Operator client",
        &[REDIRECT],
        "mcp:tools mcp:admin",
        protocol::client::ClientSource::Admin,
        "client_secret_basic",
    )
    .await;
    let url = env.authorize_url("&scope=mcp:other").replace(&enc(&env.client_id), &enc(&operator));
    let res = browser().get(&url).send().await.expect("authorize");
    check(&query(&location(&res)), "invalid_scope");
    // ...while a self-registered one may step up to any scope the resource offers (the user is
    // asked): MCP clients register with the first challenge's scope and re-authorize for more
    let res = browser().get(env.authorize_url("&scope=mcp:tools+mcp:other")).send().await.expect("authorize");
    assert!(!location(&res).contains("error="), "step-up beyond the registered scope: {}", location(&res));

    let token = env.authorize_url("").replace("response_type=code", "response_type=token");
    let res = browser().get(&token).send().await.expect("token");
    check(&query(&location(&res)), "unsupported_response_type");

    let q = error_for(&env, "&prompt=none", "").await;
    check(&q, "login_required");
    let q = error_for(&env, "&prompt=none+login", "").await;
    check(&q, "invalid_request");
    let q = error_for(&env, "&state=again", "").await;
    assert_eq!(q["error"], "invalid_request", "a repeated parameter");

    assert_eq!(env.count("authorization_codes").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn iss_is_the_issuer_byte_for_byte_even_with_a_path() {
    let env =
        Env::with(|s| s.issuer = server::config::Issuer::parse(&format!("{}/tenant-A", s.issuer)).expect("issuer"))
            .await;
    let q = error_for(&env, "&prompt=none", "").await;
    assert_eq!(q["iss"], env.issuer());
    assert!(env.issuer().ends_with("/tenant-A"));
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_csrf_missing_wrong_or_from_another_session() {
    let env = Env::new().await;
    let alice = browser();
    let html = consent_page(&env, &alice, &env.authorize_url("")).await;
    let request = field(&html, "request").expect("request");
    let token = field(&html, "csrf_token").expect("token");

    // another session (the same user in another browser) has its own token
    let other = browser();
    let other_html = consent_page(&env, &other, &env.authorize_url("")).await;
    let other_token = field(&other_html, "csrf_token").expect("token");
    assert_ne!(token, other_token);

    let consent = format!("{}/oauth2/consent", env.server.url);
    for form in [
        vec![("request", request.clone()), ("decision", "allow".to_owned())],
        vec![("request", request.clone()), ("csrf_token", "x".repeat(43)), ("decision", "allow".to_owned())],
        vec![("request", request.clone()), ("csrf_token", other_token.clone()), ("decision", "allow".to_owned())],
        // the token is bound to the request it was shown with
        vec![
            ("request", format!("{request}&scope=mcp:admin")),
            ("csrf_token", token.clone()),
            ("decision", "allow".to_owned()),
        ],
    ] {
        let res = alice.post(&consent).form(&form).send().await.expect("post");
        assert_eq!(res.status(), 403, "{form:?}");
        assert!(res.headers().get("location").is_none());
    }
    // a forged request without the session cookie at all only leads to the login page
    let res = browser()
        .post(&consent)
        .form(&[("request", request.clone()), ("csrf_token", token.clone()), ("decision", "allow".into())])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    assert!(location(&res).contains("/oauth2/login?"));
    assert_eq!(env.count("authorization_codes").await, 0);
    assert_eq!(env.count("consents").await, 0);

    // the right token still works
    let res = decide(&env, &alice, &html, "allow").await;
    assert!(location(&res).contains("code=spac_"));
}
