//! RFC 6750 on protected routes: extraction, verification, challenges, scope, identity headers,
//! the token cache and the JWKS refetch; and the middleware on a plain actix app.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::web;
use reqwest::StatusCode;
use serde_json::Value;

use gateway::{BearerAuth, Cors, Principal, ResourcePolicy, TokenVerifier, VerifierConfig};
use protocol::jwt::{ACCESS_TOKEN_TYP, Audience};
use protocol::keys::{SigningAlg, SigningKey};

use super::support::{BROWSER_ORIGIN, Stack};

fn challenges(res: &reqwest::Response) -> Vec<String> {
    res.headers().get_all("www-authenticate").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect()
}

fn metadata_url(s: &Stack) -> String {
    s.url("/.well-known/oauth-protected-resource/mcp")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_is_401_with_one_challenge_for_every_method_and_path() {
    let s = Stack::start().await;
    let expected = format!(r#"Bearer resource_metadata="{}", scope="mcp""#, metadata_url(&s));
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"] {
        for path in ["/mcp", "/mcp/", "/mcp/no/such/thing"] {
            let res = s.http.request(method.parse().expect("method"), s.url(path)).send().await.expect("request");
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            let expected = if method == "DELETE" {
                expected.replace("scope=\"mcp\"", "scope=\"mcp mcp:admin\"")
            } else {
                expected.clone()
            };
            assert_eq!(challenges(&res), vec![expected], "{method} {path}");
        }
    }
    // another scheme is no bearer token: the same plain challenge
    let res = s.http.get(s.url("/mcp")).basic_auth("user", Some("pw")).send().await.expect("basic");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&res), vec![expected]);
    assert!(res.headers()["content-type"].to_str().expect("ct").starts_with("application/json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_passes_without_its_credentials_and_with_the_identity() {
    let s = Stack::start().await;
    let res = s
        .http
        .post(s.url("/mcp/echo"))
        .header("authorization", format!("bEaReR {}", s.token()))
        .header("x-sallyport-subject", "admin")
        .header("X-Sallyport-Role", "root")
        .header("x-sallyport-subject-type", "client")
        // naming them hop-by-hop must not remove the identity the gateway adds
        .header("connection", "keep-alive, X-Sallyport-Subject, x-sallyport-client-id, x-sallyport-scope")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    let h = &seen["headers"];
    assert!(h.get("authorization").is_none(), "the client's token reached the upstream");
    assert!(h.get("x-sallyport-role").is_none(), "a client-sent identity header reached the upstream");
    assert_eq!(h["x-sallyport-subject"], serde_json::json!(["user-1"]));
    assert_eq!(h["x-sallyport-client-id"], serde_json::json!(["client-1"]));
    assert_eq!(h["x-sallyport-scope"], serde_json::json!(["mcp"]));
    assert_eq!(h["x-sallyport-subject-type"], serde_json::json!(["user"]), "the client's copy never passes");
    assert_eq!(seen["body"], r#"{"jsonrpc":"2.0"}"#);
}

/// Issue 13: a token without a user (RFC 9068 §2.2: `sub` is the client) reaches only resources
/// that accept one (`accept_machine_tokens`, in `[[resources]]` or the `resources` table); the
/// others answer 401 `invalid_token` "this resource needs a user", with the usual challenge.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_without_a_user_only_reach_resources_that_accept_them() {
    let s = Stack::start_with(|settings, urls| {
        settings.resources.push(server::config::ResourceSettings {
            resource: format!("{}/query", urls.gateway),
            name: "machines welcome".into(),
            scopes: vec!["mcp".into()],
            documentation: None,
            accept_machine_tokens: true,
        });
    })
    .await;
    let machine = |aud: String| {
        s.token_with(|c| {
            c.sub = "batch-job".into();
            c.client_id = "batch-job".into();
            c.aud = Audience::One(aud);
            c.gid = None;
        })
    };
    // /form's resource accepts them through `sallyport resource add --accept-machine-tokens` (a row
    // the registry reads, cached for seconds: written before the first machine token arrives)
    let row = store::resources::ResourceRow {
        resource: s.url("/form"),
        name: "added at run time".into(),
        scopes: vec![Some("mcp".into())],
        documentation_url: None,
        created_at: chrono::Utc::now(),
        accept_machine_tokens: true,
    };
    store::resources::upsert(&mut s.pool().get().await.expect("conn"), &row).await.expect("row");
    // /mcp: its resource says nothing, so it needs a user
    let res = s.get_with("/mcp/echo", &machine(s.url("/mcp"))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let c = challenges(&res);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].starts_with(r#"Bearer error="invalid_token", error_description="this resource needs a user""#),
        "{c:?}"
    );
    assert!(c[0].contains(&format!(r#"resource_metadata="{}""#, metadata_url(&s))), "{c:?}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        (body["error"].as_str(), body["error_description"].as_str()),
        (Some("invalid_token"), Some("this resource needs a user"))
    );

    // /query's resource accepts them (configuration): the upstream learns it is a client
    let res = s.http.get(s.url("/query/echo")).bearer_auth(machine(s.url("/query"))).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    assert_eq!(seen["headers"]["x-sallyport-subject"], serde_json::json!(["batch-job"]));
    assert_eq!(seen["headers"]["x-sallyport-subject-type"], serde_json::json!(["client"]));

    let res = s.get_with("/form/echo", &machine(s.url("/form"))).await;
    assert_eq!(res.status(), StatusCode::OK, "the registry's row counts");

    // a user's token still passes /mcp
    assert_eq!(s.get_with("/mcp/echo", &s.token()).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_routes_strip_client_identity_headers_too() {
    let s = Stack::start().await;
    let res = s.http.get(s.url("/public")).header("x-sallyport-subject", "admin").send().await.expect("request");
    let seen: Value = res.json().await.expect("json");
    assert!(seen["headers"].get("x-sallyport-subject").is_none());
}

/// 401 `invalid_token` with a description, the metadata URL and the scope.
async fn assert_invalid(s: &Stack, token: &str, why: &str) {
    let res = s.get_with("/mcp", token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why}");
    let c = challenges(&res);
    assert_eq!(c.len(), 1, "{why}: {c:?}");
    assert!(c[0].starts_with(r#"Bearer error="invalid_token", error_description=""#), "{why}: {}", c[0]);
    assert!(c[0].contains(&format!(r#"resource_metadata="{}""#, metadata_url(s))), "{why}: {}", c[0]);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_token", "{why}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_invalid_token() {
    let s = Stack::start().await;
    let now = s.clock.unix();
    assert_invalid(&s, &s.token_with(|c| c.exp = now - 31), "expired beyond the leeway").await;
    assert_invalid(&s, &s.token_with(|c| c.nbf = Some(now + 120)), "not yet valid").await;
    assert_invalid(&s, &s.token_with(|c| c.aud = Audience::One("http://other.example/mcp".into())), "another audience")
        .await;
    assert_invalid(&s, &s.token_with(|c| c.aud = Audience::One(s.url("/mcpx"))), "a sibling resource").await;
    assert_invalid(&s, &s.token_with(|c| c.iss = format!("{}/", s.settings.issuer)), "issuer with a slash").await;
    assert_invalid(&s, &s.token_with(|c| c.scope = "bad\\scope".into()), "malformed scope").await;
    assert_invalid(&s, "abc.def.ghi", "garbage").await;
    assert_invalid(&s, "not-a-jwt", "not a JWT").await;

    // signed by a key the token service never published
    let (stranger, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    assert_invalid(&s, &protocol::jwt::sign(&s.claims(), &stranger).expect("sign"), "unknown key").await;
    // another key under our kid
    let mut forger = stranger.clone();
    forger.kid = s.key.kid.clone();
    assert_invalid(&s, &protocol::jwt::sign(&s.claims(), &forger).expect("sign"), "forged signature").await;

    // typ JWT is not an access token (RFC 9068 §4)
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(s.key.kid.clone());
    let plain = jsonwebtoken::encode(&header, &s.claims(), &s.key.encoding).expect("sign");
    assert_invalid(&s, &plain, "typ JWT").await;
    // HS256 with the public key as the secret, and alg none
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some(ACCESS_TOKEN_TYP.into());
    hs.kid = Some(s.key.kid.clone());
    let secret = serde_json::to_vec(&s.key.public_jwk).expect("json");
    let confused =
        jsonwebtoken::encode(&hs, &s.claims(), &jsonwebtoken::EncodingKey::from_secret(&secret)).expect("sign");
    assert_invalid(&s, &confused, "HS256").await;
    let b64 = |v: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
    let none = format!(
        "{}.{}.",
        b64(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#, s.key.kid).as_bytes()),
        b64(&serde_json::to_vec(&s.claims()).expect("json"))
    );
    assert_invalid(&s, &none, "alg none").await;
    // ES256 header on an EdDSA key: the key decides the algorithm
    let (ed, _) = SigningKey::generate(SigningAlg::EdDsa).expect("key");
    s.stub.keys.lock().expect("lock").push(ed.public_jwk.clone());
    s.clock.advance(10);
    let mut es_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    es_header.typ = Some(ACCESS_TOKEN_TYP.into());
    es_header.kid = Some(ed.kid.clone());
    let mismatched = jsonwebtoken::encode(&es_header, &s.claims(), &s.key.encoding).expect("sign");
    assert_invalid(&s, &mismatched, "algorithm not the key's").await;
    assert_eq!(
        s.get_with("/mcp", &protocol::jwt::sign(&s.claims(), &ed).expect("sign")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leeway_normalised_audiences_and_audience_lists_are_accepted() {
    let s = Stack::start().await;
    let now = s.clock.unix();
    for (token, why) in [
        (s.token_with(|c| c.exp = now - 10), "expired within the leeway"),
        (s.token_with(|c| c.nbf = Some(now + 10)), "nbf within the leeway"),
        (s.token_with(|c| c.aud = Audience::One(format!("{}/", s.url("/mcp")))), "trailing slash"),
        (s.token_with(|c| c.aud = Audience::One(s.url("/mcp").replace("http://", "HTTP://"))), "scheme case"),
        (s.token_with(|c| c.aud = Audience::Many(vec!["http://a.example".into(), s.url("/mcp")])), "one of several"),
    ] {
        assert_eq!(s.get_with("/mcp", &token).await.status(), StatusCode::OK, "{why}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_scopes_are_403_with_the_full_required_set() {
    let s = Stack::start().await;
    let res = s.get_with("/mcp", &s.token_with(|c| c.scope = "other".into())).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenges(&res),
        vec![format!(
            r#"Bearer error="insufficient_scope", error_description="the token lacks a scope this request needs", resource_metadata="{}", scope="mcp""#,
            metadata_url(&s)
        )]
    );
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "insufficient_scope");
    // DELETE needs mcp:admin as well: the challenge names both
    let res = s.http.delete(s.url("/mcp")).bearer_auth(s.token()).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(challenges(&res)[0].ends_with(r#"scope="mcp mcp:admin""#), "{:?}", challenges(&res));
    let admin = s.token_with(|c| c.scope = "mcp:admin mcp".into());
    let res = s.http.delete(s.url("/mcp")).bearer_auth(admin).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::OK);
}

async fn assert_invalid_request(res: reqwest::Response, why: &str) {
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{why}");
    let c = challenges(&res);
    assert_eq!(c.len(), 1, "{why}");
    assert!(c[0].starts_with(r#"Bearer error="invalid_request""#), "{why}: {}", c[0]);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "invalid_request", "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_and_more_than_one_method_are_invalid_request() {
    let s = Stack::start().await;
    let t = s.token();
    let res = s.http.get(s.url("/mcp")).header("authorization", "Bearer").send().await.expect("r");
    assert_invalid_request(res, "empty credentials").await;
    let res = s.http.get(s.url("/mcp")).header("authorization", "Bearer a b").send().await.expect("r");
    assert_invalid_request(res, "two tokens in one header").await;
    let res = s
        .http
        .get(s.url("/mcp"))
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .expect("r");
    assert_invalid_request(res, "two Authorization headers").await;
    // MCP forbids tokens in URLs: refused where the route does not enable them
    let res = s.http.get(s.url(&format!("/mcp?access_token={t}"))).send().await.expect("r");
    assert_invalid_request(res, "query token on a header-only route").await;
    let res = s.http.get(s.url(&format!("/query?access_token={t}"))).bearer_auth(&t).send().await.expect("r");
    assert_invalid_request(res, "header and query").await;
    let res = s.http.get(s.url(&format!("/query?access_token={t}&access_token={t}"))).send().await.expect("r");
    assert_invalid_request(res, "repeated parameter").await;
    let res = s
        .http
        .post(s.url("/form"))
        .bearer_auth(&t)
        .form(&[("access_token", t.as_str()), ("a", "1")])
        .send()
        .await
        .expect("r");
    assert_invalid_request(res, "header and form body").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_and_form_tokens_where_enabled_never_reach_the_upstream() {
    let s = Stack::start().await;
    let t = s.token_with(|c| c.aud = Audience::One(s.url("/query")));
    let res = s.http.get(s.url(&format!("/query/x?a=%20&access_token={t}&b=2"))).send().await.expect("query");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    assert_eq!((seen["path"].as_str(), seen["query"].as_str()), (Some("/q/x"), Some("a=%20&b=2")));
    assert_eq!(seen["headers"]["x-sallyport-subject"][0], "user-1");

    let t = s.token_with(|c| c.aud = Audience::One(s.url("/form")));
    let res = s
        .http
        .post(s.url("/form"))
        .form(&[("a", "1 2"), ("access_token", t.as_str()), ("b", "&")])
        .send()
        .await
        .expect("form");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    assert_eq!(seen["body"], "a=1+2&b=%26");
    assert_eq!(seen["headers"]["content-length"][0], "11");
    // a form without a token is put back untouched, and the plain challenge follows
    let res = s.http.post(s.url("/form")).form(&[("a", "1")]).send().await.expect("form");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = s.http.post(s.url("/form")).bearer_auth(&t).form(&[("a", "1")]).send().await.expect("form");
    assert_eq!(res.json::<Value>().await.expect("json")["body"], "a=1");
    // GET has no body semantics (RFC 6750 §2.2)
    let res = s
        .http
        .get(s.url("/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn verified_tokens_are_cached_until_they_expire() {
    let s = Stack::start().await;
    let cached = s.token();
    assert_eq!(s.get_with("/mcp", &cached).await.status(), StatusCode::OK);
    // the token service rotates its key away and the gateway's copy of the key set goes stale
    let (next, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    *s.stub.keys.lock().expect("lock") = vec![next.public_jwk.clone()];
    s.clock.advance(301);
    // the cached token skips verification; a new token under the withdrawn key does not pass
    assert_eq!(s.get_with("/mcp", &cached).await.status(), StatusCode::OK, "served from the cache");
    assert_invalid(&s, &s.token(), "a key no longer published").await;
    assert_eq!(
        s.get_with("/mcp", &protocol::jwt::sign(&s.claims(), &next).expect("sign")).await.status(),
        StatusCode::OK
    );
    // valid until exp (+ leeway), not beyond
    s.clock.advance(900 - 301 + 31);
    assert_invalid(&s, &cached, "a cached token past its exp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_refetches_the_key_set_at_most_every_few_seconds() {
    let s = Stack::start().await;
    assert_eq!(s.get_with("/mcp", &s.token()).await.status(), StatusCode::OK);
    assert_eq!(s.stub.jwks_fetches.load(Ordering::SeqCst), 1);
    let (rotated, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    s.stub.keys.lock().expect("lock").push(rotated.public_jwk.clone());
    let new_token = protocol::jwt::sign(&s.claims(), &rotated).expect("sign");
    // just fetched: an unknown kid does not make the gateway ask again at once
    assert_invalid(&s, &new_token, "kid unknown within the refetch interval").await;
    assert_eq!(s.stub.jwks_fetches.load(Ordering::SeqCst), 1);
    s.clock.advance(6);
    assert_eq!(s.get_with("/mcp", &new_token).await.status(), StatusCode::OK, "refetched for the new kid");
    assert_eq!(s.stub.jwks_fetches.load(Ordering::SeqCst), 2);
    // forged kids cannot make it hammer the token service
    let (stranger, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    for _ in 0..5 {
        assert_invalid(&s, &protocol::jwt::sign(&s.claims(), &stranger).expect("sign"), "unknown kid").await;
    }
    assert_eq!(s.stub.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_key_set_is_503_not_401() {
    let s = Stack::start().await;
    s.stub.jwks_down.store(true, Ordering::SeqCst);
    let res = s.get_with("/mcp", &s.token()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    assert!(res.headers().get("www-authenticate").is_none(), "no challenge: the client must not re-authorize");
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "temporarily_unavailable");
    let res = s.get_with("/mcp", &s.token()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "still unknown until the next attempt");
    s.stub.jwks_down.store(false, Ordering::SeqCst);
    s.clock.advance(6);
    assert_eq!(s.get_with("/mcp", &s.token()).await.status(), StatusCode::OK);
}

/// The middleware on an ordinary actix resource server, with the `Principal` extractor.
#[tokio::test(flavor = "multi_thread")]
async fn the_middleware_protects_any_actix_app() {
    let s = Stack::start().await;
    let config = VerifierConfig::from_config(&gateway::Config::from(&s.settings));
    let verifier = Arc::new(TokenVerifier::new(config, s.clock.clone()).expect("verifier"));
    let resource = "http://127.0.0.1:1/api".to_owned();
    let auth = BearerAuth::new(
        verifier,
        ResourcePolicy { resource: resource.clone(), scopes: vec!["read".into()], ..Default::default() },
    )
    .expect("policy");
    assert_eq!(auth.resource_metadata(), "http://127.0.0.1:1/.well-known/oauth-protected-resource/api");
    let cors = Cors::for_resource(&[BROWSER_ORIGIN.into()], &["http://127.0.0.1:1".into()]).expect("cors");
    let app =
        testkit::spawn(None, move |cfg| {
            cfg.service(web::scope("/api").wrap(auth.clone()).wrap(cors.clone()).route(
                "/me",
                web::get().to(|p: Principal| async move {
                    format!("{} via {} with {}", p.subject(), p.client_id(), p.scopes())
                }),
            ));
        });
    let token = s.token_with(|c| {
        c.aud = Audience::One(resource.clone());
        c.scope = "read write".into();
    });
    let res = s.http.get(app.url("/api/me")).bearer_auth(&token).send().await.expect("me");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.expect("text"), "user-1 via client-1 with read write");
    // 401 before the app's own 404 and 405
    for (method, path) in [("GET", "/api/nowhere"), ("POST", "/api/me")] {
        let res = s.http.request(method.parse().expect("m"), app.url(path)).send().await.expect("r");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // authenticated, the app gives its own answer: `serve`'s JSON 404 for a method no route takes
    let res = s.http.post(app.url("/api/me")).bearer_auth(&token).send().await.expect("r");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "not_found");
    let res = s.http.get(app.url("/api/me")).bearer_auth(s.token()).send().await.expect("r");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a token for /mcp is not for /api");
}
