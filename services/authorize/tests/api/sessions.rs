//! Sessions: idle and absolute expiry by the service's clock, prompt=none and prompt=login, and a
//! disabled user's session ends at once.

use super::support::*;

async fn signed_in(env: &Env) -> reqwest::Client {
    let b = browser();
    let html = consent_page(env, &b, &env.authorize_url("")).await;
    let res = decide(env, &b, &html, "allow").await;
    assert!(location(&res).contains("code=spac_"));
    b
}

async fn straight_to_code(env: &Env, b: &reqwest::Client) -> bool {
    let res = b.get(env.authorize_url("&prompt=none")).send().await.expect("authorize");
    assert_eq!(res.status(), 302);
    let to = location(&res);
    if to.contains("code=spac_") {
        return true;
    }
    assert_error_redirect(env, &to, "login_required");
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_expiry() {
    let env = Env::with(|s| {
        s.sessions.idle_ttl_secs = std::time::Duration::from_secs(600);
        s.sessions.absolute_ttl_secs = std::time::Duration::from_secs(3600);
    })
    .await;
    let b = signed_in(&env).await;
    assert!(straight_to_code(&env, &b).await);
    env.clock.advance(500);
    assert!(straight_to_code(&env, &b).await, "used within the idle time (and last_seen_at refreshed)");
    env.clock.advance(500);
    assert!(straight_to_code(&env, &b).await, "idle time counts from the last use");
    env.clock.advance(601);
    assert!(!straight_to_code(&env, &b).await, "idle too long");
    assert_eq!(env.count("sessions").await, 0, "the expired session is gone");
    let res = b.get(env.authorize_url("")).send().await.expect("authorize");
    assert!(location(&res).contains("/oauth2/login?"), "back to the login page");
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_expiry() {
    let env = Env::with(|s| {
        s.sessions.idle_ttl_secs = std::time::Duration::from_secs(600);
        s.sessions.absolute_ttl_secs = std::time::Duration::from_secs(1200);
    })
    .await;
    let b = signed_in(&env).await;
    for _ in 0..2 {
        env.clock.advance(500);
        assert!(straight_to_code(&env, &b).await);
    }
    env.clock.advance(201);
    assert!(!straight_to_code(&env, &b).await, "past the absolute lifetime, however active");
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_login_asks_again() {
    let env = Env::new().await;
    let b = signed_in(&env).await;
    let res = b.get(env.authorize_url("&prompt=login")).send().await.expect("authorize");
    assert_eq!(res.status(), 302);
    let login = location(&res);
    assert!(login.contains("/oauth2/login?") && login.contains("prompt=login"), "{login}");
    let html = b.get(&login).send().await.expect("page").text().await.expect("html");
    let res = post_login(&env, &b, &html, USER, PASSWORD).await;
    let back = location(&res);
    assert!(!back.contains("prompt=login"), "no loop after a fresh login: {back}");
    let res = b.get(&back).send().await.expect("back");
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));
    assert_eq!(env.count("sessions").await, 1, "the old session was replaced, not kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_user_ends_their_sessions() {
    let env = Env::new().await;
    let b = signed_in(&env).await;
    assert!(straight_to_code(&env, &b).await);
    let mut conn = env.db.conn().await;
    store::users::set_disabled(&mut conn, USER, true, env.clock.now()).await.expect("disable");
    assert!(!straight_to_code(&env, &b).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_sweeps_sessions_past_their_absolute_expiry() {
    let env = Env::new().await;
    let mut conn = env.db.conn().await;
    let user = store::users::find_by_username(&mut conn, USER).await.expect("q").expect("alice");
    let then = env.clock.now() - chrono::TimeDelta::days(30);
    let stale = store::sessions::SessionRow {
        id: uuid::Uuid::now_v7(),
        session_hash: protocol::secret::SecretHash::of("spss_stale").to_vec(),
        user_id: user.id,
        auth_time: then,
        created_at: then,
        last_seen_at: then,
        expires_at: then + chrono::TimeDelta::days(7),
    };
    store::sessions::insert(&mut conn, &stale).await.expect("insert");
    let _b = signed_in(&env).await;
    assert_eq!(env.count("sessions").await, 1, "only the new session is left");
}
