//! Shared by the end-to-end tests that drive `sallyport up`: the system started as `up` starts it,
//! and a browser's part of the code flow (redirects followed by hand, consent allowed when it is
//! asked); a real browser (`chromium`), node-oidc-provider (`op`) and a second Sallyport as an
//! `oauth2` route's upstream (`upstream`) for the tests that need them.

pub mod chromium;
#[allow(dead_code, reason = "only the tests with an OpenID provider start one")]
pub mod op;
pub mod upstream;

use std::net::TcpListener;

use reqwest::header::LOCATION;
use sallyport::up::{Options, REVOCATION_CHECK, System};
use server::Settings;
use testkit::{TestDb, forms};

/// The whole system on a free port, its demo user signing in with `password`.
pub async fn start(
    db: &TestDb,
    password: &str,
    workers: usize,
    clock: protocol::Clock,
    tweak: impl FnOnce(&mut Settings),
) -> System {
    start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), db, password, workers, clock, tweak).await
}

/// The whole system with its gateway on `gateway` (its address known before the settings are made).
pub async fn start_on(
    gateway: TcpListener,
    db: &TestDb,
    password: &str,
    workers: usize,
    clock: protocol::Clock,
    tweak: impl FnOnce(&mut Settings),
) -> System {
    let mut base = testkit::settings(db);
    tweak(&mut base);
    System::start(Options {
        gateway,
        database_url: db.url.clone(),
        base,
        demo_password: Some(password.into()),
        workers,
        revocation_check: REVOCATION_CHECK,
        clock,
    })
    .await
    .expect("the system starts")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// A fresh directory under the system's temporary one, named after `label` and this process.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sallyport-{label}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// A client that shows each redirect instead of following it, as the tests check every hop.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub fn absolute(base: &str, target: &str) -> String {
    url::Url::parse(base).and_then(|b| b.join(target)).map(|u| u.to_string()).expect("a URL")
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Submits the filled sign-in form, then follows the redirects (allowing on the consent page if
/// one is shown) until one reaches `callback`: returns the authorization code it carries.
pub async fn sign_in_and_allow(
    browser: &reqwest::Client,
    action: &str,
    fields: &[(String, String)],
    callback: &str,
) -> String {
    let res = browser.post(action).form(fields).send().await.expect("sign in");
    let mut url = absolute(action, &location(&res));
    let callback = loop {
        let res = browser.get(&url).send().await.expect("GET");
        if res.status().is_redirection() {
            url = absolute(&url, &location(&res));
            if url.starts_with(callback) {
                break url;
            }
            continue;
        }
        let html = res.text().await.expect("consent page");
        let form = forms::parse(&html).into_iter().find(|f| f.has_button("decision", "allow")).expect("consent");
        let res = browser
            .post(absolute(&url, &form.action))
            .form(&form.submission(&[], Some(("decision", "allow"))))
            .send()
            .await
            .expect("allow");
        break absolute(&url, &location(&res));
    };
    url::Url::parse(&callback)
        .expect("callback")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// A public client registered through the gateway, and a browser (cookies kept, redirects by
/// hand) that made its authorization request (PKCE, the `mcp` resource) and stands at the
/// sign-in form.
pub struct AtSignIn {
    pub client_id: String,
    pub browser: reqwest::Client,
    /// The sign-in page's URL and its form's absolute action.
    pub login: String,
    pub action: String,
    pub form: forms::Form,
}

pub async fn public_client_at_sign_in(system: &System, name: &str, callback: &str, verifier: &str) -> AtSignIn {
    let res = http()
        .post(format!("{}/oauth2/register", system.issuer))
        .json(&serde_json::json!({
            "client_name": name,
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), reqwest::StatusCode::CREATED);
    let registered: serde_json::Value = res.json().await.expect("json");
    let client_id = registered["client_id"].as_str().expect("client_id").to_owned();
    let mut start = url::Url::parse(&format!("{}/oauth2/authorize", system.issuer)).expect("url");
    start
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", callback)
        .append_pair("scope", "mcp")
        .append_pair("resource", &system.mcp_url)
        .append_pair("state", "s1")
        .append_pair("code_challenge", &protocol::pkce::s256(verifier))
        .append_pair("code_challenge_method", "S256");
    let start = start.to_string();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser");
    let res = browser.get(&start).send().await.expect("authorize");
    let login = absolute(&start, &location(&res));
    let html = browser.get(&login).send().await.expect("login page").text().await.expect("html");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("password")).expect("the sign-in form");
    let action = absolute(&login, &form.action);
    AtSignIn { client_id, browser, login, action, form }
}

/// Redeems `code` at the token endpoint through the gateway (PKCE `verifier`, the `mcp`
/// resource): the 200 token response.
pub async fn redeem(system: &System, client_id: &str, code: &str, callback: &str, verifier: &str) -> serde_json::Value {
    let res = http()
        .post(format!("{}/oauth2/token", system.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback),
            ("client_id", client_id),
            ("code_verifier", verifier),
            ("resource", &system.mcp_url),
        ])
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    res.json().await.expect("json")
}

/// Plays the person at the browser for an MCP client's authorization URL: follows it, signs in as
/// the demo user with `password`, allows, and returns the redirect to the client's `callback`
/// (not visited: the client reads the code from it).
pub async fn browser_consents(authorization_url: &str, callback: &str, password: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    walk_forms(&browser, authorization_url, &|_| password.to_owned(), callback).await
}

/// Plays the user in `browser` from `url` on, across Sallyports: signs in as `demo` with the
/// password `password_at` gives for the page's URL, allows, and goes on from a page that does
/// by itself (the `continue` link after signing in for a Connect), until a redirect leads to
/// `until`: that URL, not visited.
pub async fn walk_forms(
    browser: &reqwest::Client,
    url: &str,
    password_at: &(dyn Fn(&str) -> String + Sync),
    until: &str,
) -> String {
    let mut url = url.to_owned();
    for _ in 0..12 {
        let res = browser.get(&url).send().await.expect("GET");
        if res.status().is_redirection() {
            let next = absolute(&url, &location(&res));
            if next.starts_with(until) {
                return next;
            }
            url = next;
            continue;
        }
        assert_eq!(res.status(), reqwest::StatusCode::OK, "{url}");
        let html = res.text().await.expect("html");
        let form = forms::parse(&html).into_iter().find(|f| f.method.eq_ignore_ascii_case("post")).expect("a form");
        let fields = if form.has_input("password") {
            form.submission(&[("username", "demo"), ("password", &password_at(&url))], None)
        } else {
            assert!(form.has_button("decision", "allow"), "the consent page: {html}");
            form.submission(&[], Some(("decision", "allow")))
        };
        let action = absolute(&url, &form.action);
        let res = browser.post(&action).form(&fields).send().await.expect("POST");
        let next = if res.status() == reqwest::StatusCode::OK {
            // a page that goes on by itself: its `continue` link
            let html = res.text().await.expect("html");
            let at = html.find("\" id=\"continue\"").unwrap_or_else(|| panic!("a redirect or a Continue link: {html}"));
            let raw = &html[html[..at].rfind("href=\"").expect("its href") + 6..at];
            absolute(&action, &forms::decode_entities(raw))
        } else {
            assert!(res.status().is_redirection(), "{} from {}", res.status(), form.action);
            absolute(&action, &location(&res))
        };
        if next.starts_with(until) {
            return next;
        }
        url = next;
    }
    panic!("no redirect to {until} after 12 steps")
}
