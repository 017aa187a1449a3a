//! Shared by the end-to-end tests that drive `sallyport up` without Chromium: the system started
//! as `up` starts it, and a browser's part of the code flow (redirects followed by hand, consent
//! allowed when it is asked).

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
    let mut base = testkit::settings(db);
    tweak(&mut base);
    System::start(Options {
        gateway: TcpListener::bind("127.0.0.1:0").expect("bind"),
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
