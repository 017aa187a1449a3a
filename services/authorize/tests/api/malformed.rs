//! Issue 18: odd values — NUL, control characters, CR LF, invalid UTF-8, emoji, 9,000 bytes — in
//! every parameter of the authorization request (GET and POST), the login, consent and logout
//! forms. A bad `client_id` or `redirect_uri` is the HTML error page without a redirect; any other
//! bad parameter is the RFC 6749 §4.1.2.1 error at the redirect URI; a bad username or password
//! is an ordinary failed sign-in. Never a 5xx.

use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::support::*;

fn odd_values() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "%00".into()),
        ("NUL inside", "abc%00def".into()),
        ("control character", "a%01b".into()),
        ("CR LF", "a%0D%0Ab".into()),
        ("DEL", "a%7Fb".into()),
        ("invalid UTF-8", "%FF".into()),
        ("invalid UTF-8 sequence", "%C3%28".into()),
        ("emoji", "%F0%9F%98%80".into()),
        ("9,000 bytes", "a".repeat(9000)),
    ]
}

fn encode(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// A valid authorization request, percent-encoded.
fn request(env: &Env) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", enc(&env.client_id)),
        ("redirect_uri", enc(REDIRECT)),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
        ("state", "st%26te".into()),
        ("scope", "mcp%3Atools".into()),
        ("resource", enc(RESOURCE)),
    ]
}

fn replaced(pairs: &[(&'static str, String)], name: &'static str, value: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<_> = pairs.iter().filter(|(k, _)| *k != name).cloned().collect();
    out.push((name, value.to_owned()));
    out
}

/// Asserts an HTML page with `status`, and no redirect; returns the page.
async fn assert_page(what: &str, res: reqwest::Response, status: u16) -> String {
    assert!(res.status().as_u16() < 500, "{what}: a 5xx for a malformed request: {}", res.status());
    assert_eq!(res.status().as_u16(), status, "{what}");
    assert!(res.headers().get(LOCATION).is_none(), "{what}: never a redirect");
    let ct = res.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/html"), "{what}: {ct}");
    let html = res.text().await.expect("html");
    assert!(!html.contains("Something went wrong"), "{what}: {html}");
    html
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issue_example_is_a_page_not_a_500() {
    let env = Env::new().await;
    let res = browser().get(format!("{}/oauth2/authorize?client_id=%00", env.server.url)).send().await.expect("get");
    let html = assert_page("client_id=%00", res, 400).await;
    assert!(html.contains("client_id is malformed"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_authorization_parameter_refuses_odd_values() {
    let env = Env::new().await;
    let b = browser();
    let base = request(&env);
    let mut sent = 0;
    for (name, expected) in [
        ("client_id", None),
        ("redirect_uri", None),
        ("state", Some("invalid_request")),
        ("response_type", Some("invalid_request")),
        ("code_challenge", Some("invalid_request")),
        ("code_challenge_method", Some("invalid_request")),
        ("prompt", Some("invalid_request")),
        ("response_mode", Some("invalid_request")),
        ("scope", Some("invalid_scope")),
        ("resource", Some("invalid_target")),
    ] {
        for (label, value) in odd_values() {
            let pairs = replaced(&base, name, &value);
            let what = format!("{name}={label}");
            let get = b.get(format!("{}/oauth2/authorize?{}", env.server.url, encode(&pairs))).send().await;
            let post = b
                .post(format!("{}/oauth2/authorize", env.server.url))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(encode(&pairs))
                .send()
                .await;
            for (res, redirect_status) in [(get.expect("get"), 302), (post.expect("post"), 303)] {
                sent += 1;
                let Some(error) = expected else {
                    let html = assert_page(&what, res, 400).await;
                    assert!(html.contains(name), "{what}: the page names the parameter: {html}");
                    continue;
                };
                assert_eq!(res.status().as_u16(), redirect_status, "{what}");
                let to = location(&res);
                assert!(to.starts_with(REDIRECT), "{what}: {to}");
                let q = query(&to);
                assert_eq!(q.get("error").map(String::as_str), Some(error), "{what}: {to}");
                assert_eq!(q.get("iss").map(String::as_str), Some(env.issuer()), "{what}");
                // a malformed state is never echoed; a good one always is
                let state = if name == "state" { None } else { Some("st&te") };
                assert_eq!(q.get("state").map(String::as_str), state, "{what}: {to}");
                assert!(!q.contains_key("code"), "{what}");
            }
        }
    }
    assert_eq!(sent, 10 * odd_values().len() * 2);
    assert_eq!(env.count("authorization_codes").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_consent_and_logout_forms_refuse_odd_values() {
    let env = Env::with(|s| s.login.per_ip_per_minute = 10_000).await;
    let b = browser();
    let authorize = env.authorize_url("");
    let res = b.get(&authorize).send().await.expect("authorize");
    let login = location(&res);
    let html = b.get(&login).send().await.expect("login page").text().await.expect("html");
    let fields = [
        ("request", enc(&field(&html, "request").expect("request"))),
        ("csrf_token", enc(&field(&html, "csrf_token").expect("csrf"))),
        ("username", enc(USER)),
        ("password", enc(PASSWORD)),
    ];
    let post = |path: &str, body: String| {
        b.post(format!("{}{path}", env.server.url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // the login page's own query, like the authorization request
    for (label, value) in odd_values() {
        let pairs = replaced(&request(&env), "client_id", &value);
        let res = b.get(format!("{}/oauth2/login?{}", env.server.url, encode(&pairs))).send().await.expect("get");
        assert_page(&format!("GET login client_id={label}"), res, 400).await;
    }
    for (name, status) in [("username", 400), ("password", 400), ("request", 400), ("csrf_token", 403)] {
        for (label, value) in odd_values() {
            let what = format!("POST login {name}={label}");
            let res = post("/oauth2/login", encode(&replaced(&fields, name, &value))).await.expect("post");
            let html = assert_page(&what, res, status).await;
            if matches!(name, "username" | "password") {
                assert!(html.contains("Wrong username or password"), "{what}: an ordinary failed sign-in: {html}");
            }
        }
    }
    // a user whose name is Unicode signs in as given
    add_user(&env.db.pool(), "Zo\u{eb} \u{1f600}", PASSWORD).await;
    let unicode = replaced(&fields, "username", &enc("Zo\u{eb} \u{1f600}"));
    let res = post("/oauth2/login", encode(&unicode)).await.expect("post");
    assert_eq!(res.status(), 303, "signed in");

    // the consent form, signed in
    let html = b.get(location(&res)).send().await.expect("consent page").text().await.expect("html");
    let consent = [
        ("request", enc(&field(&html, "request").expect("request"))),
        ("csrf_token", enc(&field(&html, "csrf_token").expect("csrf"))),
        ("decision", "allow".to_owned()),
    ];
    for (name, status) in [("request", 400), ("csrf_token", 403), ("decision", 400)] {
        for (label, value) in odd_values() {
            let res = post("/oauth2/consent", encode(&replaced(&consent, name, &value))).await.expect("post");
            assert_page(&format!("POST consent {name}={label}"), res, status).await;
        }
    }
    assert_eq!(env.count("authorization_codes").await, 0, "nothing was allowed");

    // logout: a bad CSRF token keeps the session, whatever else the form carries
    for name in ["request", "csrf_token"] {
        for (label, value) in odd_values() {
            let body = encode(&[(name, value.clone())]);
            let res = post("/oauth2/logout", body).await.expect("post");
            assert_page(&format!("POST logout {name}={label}"), res, 403).await;
        }
    }
}
