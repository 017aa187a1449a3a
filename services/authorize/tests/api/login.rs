//! Login: wrong and unknown users look the same, lockout per user, throttle per IP, login CSRF.

use super::support::*;

async fn login_html(env: &Env, b: &reqwest::Client) -> String {
    let res = b.get(env.authorize_url("")).send().await.expect("authorize");
    let page = b.get(location(&res)).send().await.expect("login page");
    assert_eq!(page.status(), 200);
    page.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_and_unknown_users_get_the_same_answer() {
    let env = Env::new().await;
    let b = browser();
    let html = login_html(&env, &b).await;
    let wrong = post_login(&env, &b, &html, USER, "not the password").await;
    assert_eq!(wrong.status(), 400);
    assert!(set_cookies(&wrong).iter().all(|c| !c.starts_with("sallyport_session=")));
    let wrong_text = wrong.text().await.expect("html");
    let unknown = post_login(&env, &b, &html, "mallory", "not the password").await;
    assert_eq!(unknown.status(), 400);
    let unknown_text = unknown.text().await.expect("html");
    let message = |t: &str| t.split("id=\"error\"").nth(1).and_then(|s| s.split("</p>").next()).map(str::to_owned);
    assert!(message(&wrong_text).is_some());
    assert_eq!(message(&wrong_text), message(&unknown_text), "no user enumeration");
    assert!(unknown_text.contains("value=\"mallory\""), "the username is kept in the form");
    assert_eq!(env.count("sessions").await, 0);
    let ok = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(ok.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_locked_after_repeated_failures() {
    let env = Env::with(|s| {
        s.login.max_failures = 2;
        s.login.lockout_secs = std::time::Duration::from_secs(300);
    })
    .await;
    let b = browser();
    let html = login_html(&env, &b).await;
    for _ in 0..2 {
        assert_eq!(post_login(&env, &b, &html, USER, "wrong password!").await.status(), 400);
    }
    let locked = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(locked.status(), 400, "locked: even the right password is refused");
    env.clock.advance(301);
    // the lock expired: the count starts again, so one more wrong password does not lock
    assert_eq!(post_login(&env, &b, &html, USER, "wrong password!").await.status(), 400);
    let mut conn = env.db.conn().await;
    let alice = store::users::find_by_username(&mut conn, USER).await.expect("q").expect("alice");
    assert_eq!((alice.failed_logins, alice.locked_until), (1, None), "a new run after the lockout expired");
    let ok = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(ok.status(), 303, "not locked");
    let alice = store::users::find_by_username(&mut conn, USER).await.expect("q").expect("alice");
    assert_eq!(alice.failed_logins, 0, "a success resets the count");
}

/// Issue 13: each attempt is counted before its password is checked, in one statement, so 30
/// concurrent guesses for one user get at most `login.max_failures` checks; the one that locks the
/// user ends the sessions they already had (and is audited), and the right password is refused.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_guesses_cannot_outrun_the_lockout() {
    use store::{audit, users};
    let env = Env::with(|s| {
        s.login.max_failures = 5;
        s.login.per_ip_per_minute = 1000;
    })
    .await;
    // the user is signed in elsewhere
    let victim = browser();
    let back = sign_in(&env, &victim, &env.authorize_url("")).await;
    assert_eq!(victim.get(&back).send().await.expect("consent").status(), 200, "signed in: the consent page");
    assert_eq!(env.count("sessions").await, 1);

    let b = browser();
    let html = login_html(&env, &b).await;
    let guesses = (0..30).map(|i| {
        let (env, b, html) = (&env, &b, &html);
        async move { post_login(env, b, html, USER, &format!("guess number {i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");

    let mut conn = env.db.conn().await;
    let alice = users::find_by_username(&mut conn, USER).await.expect("q").expect("alice");
    assert_eq!(alice.failed_logins, 5, "only max_failures of the 30 guesses were checked");
    assert!(alice.locked_until.is_some_and(|t| t > env.clock.now()));
    let locked: Vec<_> = audit::for_user(&mut conn, alice.id)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.kind == "user.locked_out")
        .collect();
    assert_eq!(locked.len(), 1, "one lockout, audited once: {locked:?}");
    assert_eq!(locked[0].detail["sessions_ended"], 1);
    assert_eq!(locked[0].ip.as_deref(), Some("127.0.0.1"));
    drop(conn);

    assert_eq!(env.count("sessions").await, 0, "the lockout ended the user's session");
    let res = victim.get(env.authorize_url("")).send().await.expect("authorize");
    assert_eq!(res.status(), 302);
    assert!(location(&res).contains("/oauth2/login?"), "signed out: {}", location(&res));
    assert_eq!(post_login(&env, &b, &html, USER, PASSWORD).await.status(), 400, "locked");
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_are_throttled_per_ip() {
    let env = Env::with(|s| s.login.per_ip_per_minute = 3).await;
    let b = browser();
    let html = login_html(&env, &b).await;
    for _ in 0..3 {
        assert_eq!(post_login(&env, &b, &html, "nobody", "wrong password!").await.status(), 400);
    }
    let res = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers().get("retry-after").expect("retry-after").to_str().expect("a").parse().expect("n");
    assert!((1..=60).contains(&wait));
    assert_eq!(env.count("sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_needs_the_forms_csrf_token() {
    let env = Env::new().await;
    let b = browser();
    let html = login_html(&env, &b).await;
    let form = [
        ("request", field(&html, "request").expect("request")),
        ("username", USER.to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let res = b.post(format!("{}/oauth2/login", env.server.url)).form(&form).send().await.expect("post");
    assert_eq!(res.status(), 403, "no token");
    // a token without the browser's pre-login cookie: another site posting its own form
    let res = browser()
        .post(format!("{}/oauth2/login", env.server.url))
        .form(&[
            ("request", field(&html, "request").expect("request")),
            ("csrf_token", field(&html, "csrf_token").expect("token")),
            ("username", USER.to_owned()),
            ("password", PASSWORD.to_owned()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403, "login CSRF");
    assert_eq!(env.count("sessions").await, 0);
    // a login page without a valid authorization request is a page, not a form
    let res = b.get(format!("{}/oauth2/login", env.server.url)).send().await.expect("bare login");
    assert_eq!(res.status(), 400);
}
