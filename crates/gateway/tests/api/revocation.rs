//! Revocation through the token service's introspection: strict asks every time, cached remembers
//! the answer for a while, and a revocation check that cannot be made fails closed (503).

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::Value;

use server::config::RevocationCheck;

use super::support::{Stack, revocation};

fn revoke(s: &Stack, token: &str) {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("json");
    s.stub.revoked.lock().expect("lock").insert(claims["jti"].as_str().expect("jti").to_owned());
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_asks_on_every_request() {
    let s = Stack::start_with(|settings, _| revocation(settings, RevocationCheck::Strict)).await;
    let token = s.token();
    for n in 1..=3 {
        assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::OK);
        assert_eq!(s.stub.introspections.load(Ordering::SeqCst), n);
    }
    revoke(&s, &token);
    let res = s.get_with("/mcp", &token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token", error_description="the token has been revoked""#),
        "{challenge}"
    );
    // the cache of verified tokens does not hide a revocation
    assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.get_with("/mcp", &s.token()).await.status(), StatusCode::OK, "other tokens still pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_remembers_answers_for_the_configured_time() {
    let s = Stack::start_with(|settings, _| {
        revocation(settings, RevocationCheck::Cached);
        settings.gateway.revocation_cache_secs = std::time::Duration::from_secs(30);
    })
    .await;
    let token = s.token();
    assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::OK);
    assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::OK);
    assert_eq!(s.stub.introspections.load(Ordering::SeqCst), 1, "the second call used the cached answer");
    revoke(&s, &token);
    assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::OK, "still within the cache time");
    s.clock.advance(31);
    assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.stub.introspections.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_revocation_check_fails_closed() {
    let s = Stack::start_with(|settings, _| revocation(settings, RevocationCheck::Strict)).await;
    s.stub.broken.store(true, Ordering::SeqCst);
    let res = s.get_with("/mcp", &s.token()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "temporarily_unavailable");

    // credentials the token service refuses are no better
    let wrong = Stack::start_with(|settings, _| {
        revocation(settings, RevocationCheck::Strict);
        settings.gateway.introspection_client_secret = Some("not-the-secret".into());
    })
    .await;
    assert_eq!(wrong.get_with("/mcp", &wrong.token()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(wrong.stub.introspections.load(Ordering::SeqCst), 1);
}
