//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with ID-JAGs (SEP-990). The test plays
//! the enterprise IdP: its own signing keys, its RFC 8414 metadata and JWKS served on a loopback
//! port, ID-JAGs signed with jsonwebtoken (not Sallyport's signer).

use std::sync::atomic::Ordering;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use protocol::client::{AuthMethod, ClientSource, GrantType};
use protocol::keys::{SigningAlg, SigningKey};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

use testkit::idp::{Idp, JWT_BEARER, TYP, sign_with};

fn enterprise_client() -> ClientSpec<'static> {
    ClientSpec {
        auth: AuthMethod::ClientSecretBasic,
        grants: &[GrantType::JwtBearer],
        scope: "mcp",
        source: ClientSource::Dynamic,
        ..Default::default()
    }
}

async fn grant(env: &Env, client: &TestClient, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    form.extend_from_slice(extra);
    env.post_form("/oauth2/token", &client.post_auth(&form)).await
}

async fn start() -> (Idp, Env) {
    let idp = Idp::start();
    let env = Env::start_with(|s| {
        idp.configure(s);
        s.identity.jwks_min_refetch_secs = Duration::from_secs(1);
    })
    .await;
    (idp, env)
}

fn audience(env: &Env) -> String {
    env.settings.issuer.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_jag_is_exchanged_once_for_a_token_of_its_user() {
    let (idp, env) = start().await;
    let client = env.client(enterprise_client()).await;
    let assertion = idp.sign(&idp.claims(&audience(&env), &client.id, "U019488227", MCP));

    // Basic authentication, as the extension's example does
    let res = env
        .post_basic(
            "/oauth2/token",
            &client.id,
            client.secret.as_deref().expect("secret"),
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp");
    assert!(body.get("refresh_token").is_none(), "no refresh token (draft §4.4.3): {body}");
    let claims = env.verify_jwt(body["access_token"].as_str().expect("at"), MCP).await;
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "mcp");

    // the subject became a user, linked by (issuer, sub), named after its email
    let link = store::federation::list(&mut *env.db.conn().await).await.expect("links");
    assert_eq!(link.len(), 1);
    assert_eq!((link[0].issuer.as_str(), link[0].subject.as_str()), (idp.issuer.as_str(), "U019488227"));
    assert_eq!(link[0].provider, "Test IdP");
    assert_eq!(claims["sub"], link[0].user_id.to_string());
    let users = store::users::list(&mut *env.db.conn().await).await.expect("users");
    assert_eq!(users[0].username, "U019488227@corp.example");

    // the same assertion again: refused, whatever the client authentication
    let (status, body) = grant(&env, &client, &assertion, &[]).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("already used")), "{body}");
    assert_eq!(env.count("used_assertions").await, 1);

    // a new assertion for the same subject: the same user, no second one
    let again = idp.sign(&idp.claims(&audience(&env), &client.id, "U019488227", MCP));
    let (status, body) = grant(&env, &client, &again, &[("resource", MCP), ("scope", "mcp")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims_of(&body)["sub"], link[0].user_id.to_string());
    assert_eq!(env.count("users").await, 1);

    // a disabled user gets nothing
    store::users::set_disabled(&mut *env.db.conn().await, "U019488227@corp.example", true, chrono::Utc::now())
        .await
        .expect("disable");
    let disabled = idp.sign(&idp.claims(&audience(&env), &client.id, "U019488227", MCP));
    let (status, body) = grant(&env, &client, &disabled, &[]).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "{body}");
}

fn claims_of(body: &Value) -> Value {
    claims(body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_assertion_is_refused_with_the_rfc_error() {
    let (idp, env) = start().await;
    let client = env.client(enterprise_client()).await;
    let aud = audience(&env);
    let valid = || idp.claims(&aud, &client.id, "U1", MCP);
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = valid();
        change(c.as_object_mut().expect("object"));
        c
    };
    let now = chrono::Utc::now().timestamp();
    let (stranger, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    let current_kid = jsonwebtoken::decode_header(idp.sign(&valid())).expect("header").kid.expect("kid");
    let mut impostor = stranger.clone();
    impostor.kid = current_kid.clone();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some(TYP.into());
    hs.kid = Some(current_kid);
    let hs256 = jsonwebtoken::encode(&hs, &valid(), &EncodingKey::from_secret(b"the idp's public key")).expect("hs");
    let other_issuer = with(&|c| drop(c.insert("iss".into(), json!("https://evil.example"))));

    let cases: Vec<(&str, String, &str)> = vec![
        ("typ JWT", sign_with(&stranger, Some("JWT"), &valid()), "invalid_grant"),
        ("no typ", sign_with(&stranger, None, &valid()), "invalid_grant"),
        ("signature by another key under the IdP's kid", sign_with(&impostor, Some(TYP), &valid()), "invalid_grant"),
        ("a key the IdP never published", sign_with(&stranger, Some(TYP), &valid()), "invalid_grant"),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": TYP})), b64(&valid())), "invalid_grant"),
        ("HS256", hs256, "invalid_grant"),
        ("unknown issuer", sign_with(&stranger, Some(TYP), &other_issuer), "invalid_grant"),
        (
            "aud another server",
            idp.sign(&with(&|c| drop(c.insert("aud".into(), json!("https://other.example"))))),
            "invalid_grant",
        ),
        (
            "aud two servers",
            idp.sign(&with(&|c| drop(c.insert("aud".into(), json!([aud.clone(), "https://other.example"]))))),
            "invalid_grant",
        ),
        ("expired", idp.sign(&with(&|c| drop(c.insert("exp".into(), json!(now - 120))))), "invalid_grant"),
        ("iat in the future", idp.sign(&with(&|c| drop(c.insert("iat".into(), json!(now + 600))))), "invalid_grant"),
        ("lifetime too long", idp.sign(&with(&|c| drop(c.insert("exp".into(), json!(now + 86_400))))), "invalid_grant"),
        ("no jti", idp.sign(&with(&|c| drop(c.remove("jti")))), "invalid_grant"),
        ("no sub", idp.sign(&with(&|c| drop(c.remove("sub")))), "invalid_grant"),
        (
            "client_id of another client",
            idp.sign(&with(&|c| drop(c.insert("client_id".into(), json!("someone-else"))))),
            "invalid_grant",
        ),
        ("key-bound (cnf)", idp.sign(&with(&|c| drop(c.insert("cnf".into(), json!({"jkt": "x"}))))), "invalid_grant"),
        ("no resource", idp.sign(&with(&|c| drop(c.remove("resource")))), "invalid_grant"),
        (
            "resource not protected here",
            idp.sign(&with(&|c| drop(c.insert("resource".into(), json!("https://elsewhere.example/mcp"))))),
            "invalid_target",
        ),
        ("not a JWT", "not-a-jwt".to_owned(), "invalid_grant"),
    ];
    for (what, assertion, want) in &cases {
        let (status, body) = grant(&env, &client, assertion, &[]).await;
        assert_eq!((status, error(&body)), (400, *want), "{what}: {body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(!description.contains(&client.id) && !description.contains("eyJ"), "{what}: leaks {description}");
    }
    assert_eq!(env.count("used_assertions").await, 0, "no refused assertion spent a jti");
    assert_eq!(env.count("users").await, 0, "no refused assertion made a user");

    // scope beyond the assertion's, a resource the assertion does not name: the request's fault
    let (status, body) = grant(&env, &client, &idp.sign(&valid()), &[("scope", "mcp:admin")]).await;
    assert_eq!((status, error(&body)), (400, "invalid_scope"), "{body}");
    let (status, body) = grant(&env, &client, &idp.sign(&valid()), &[("resource", FILES)]).await;
    assert_eq!((status, error(&body)), (400, "invalid_target"), "{body}");
    let (status, body) = env.post_form("/oauth2/token", &client.post_auth(&[("grant_type", JWT_BEARER)])).await;
    assert_eq!((status, error(&body)), (400, "invalid_request"), "{body}");

    // the client: its secret, the grant in its registration, confidential
    let wrong = TestClient { id: client.id.clone(), secret: Some("wrong-secret".into()) };
    let (status, body) = grant(&env, &wrong, &idp.sign(&valid()), &[]).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"), "{body}");
    let code_only = env.client(ClientSpec { auth: AuthMethod::ClientSecretBasic, ..Default::default() }).await;
    let (status, body) = grant(&env, &code_only, &idp.sign(&idp.claims(&aud, &code_only.id, "U1", MCP)), &[]).await;
    assert_eq!((status, error(&body)), (400, "unauthorized_client"), "{body}");
    let public = env.client(ClientSpec { grants: &[GrantType::JwtBearer], ..Default::default() }).await;
    let (status, body) = grant(&env, &public, &idp.sign(&idp.claims(&aud, &public.id, "U1", MCP)), &[]).await;
    assert_eq!((status, error(&body)), (400, "unauthorized_client"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grant_is_unsupported_without_a_trusted_issuer() {
    let env = Env::start().await;
    let client = env.client(enterprise_client()).await;
    let (status, body) = grant(&env, &client, "a.b.c", &[]).await;
    assert_eq!((status, error(&body)), (400, "unsupported_grant_type"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_at_the_idp_is_followed_and_unknown_kids_do_not_hammer_it() {
    let (idp, env) = start().await;
    let client = env.client(enterprise_client()).await;
    let aud = audience(&env);
    let (status, body) = grant(&env, &client, &idp.sign(&idp.claims(&aud, &client.id, "U1", MCP)), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    let (status, _) = grant(&env, &client, &idp.sign(&idp.claims(&aud, &client.id, "U1", MCP)), &[]).await;
    assert_eq!((status, idp.fetches.load(Ordering::SeqCst)), (200, 1), "cached");

    // made-up kids right after a fetch: refused without asking the IdP again
    let (stranger, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
    for _ in 0..3 {
        let (status, body) =
            grant(&env, &client, &sign_with(&stranger, Some(TYP), &idp.claims(&aud, &client.id, "U1", MCP)), &[]).await;
        assert_eq!((status, error(&body)), (400, "invalid_grant"));
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "rate-limited refetch");

    // the IdP rotates: its new kid is fetched (once the refetch interval has passed) and works
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.rotate();
    let (status, body) = grant(&env, &client, &idp.sign(&idp.claims(&aud, &client.id, "U1", MCP)), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    let (status, _) = grant(&env, &client, &idp.sign(&idp.claims(&aud, &client.id, "U1", MCP)), &[]).await;
    assert_eq!((status, idp.fetches.load(Ordering::SeqCst)), (200, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jti_is_single_use_across_replicas() {
    let (idp, env) = start().await;
    // a second token service on the same database, as a second replica
    let second = token::app(env.ctx.clone(), (&env.settings).into()).await.expect("second replica");
    let second = testkit::spawn_app(&second, Some(env.ctx.pool.clone()));
    let client = env.client(enterprise_client()).await;
    let aud = audience(&env);
    let post = |url: String, assertion: String| {
        let http = env.http.clone();
        let (id, secret) = (client.id.clone(), client.secret.clone().expect("secret"));
        async move {
            let res = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())])
                .send()
                .await
                .expect("post");
            (res.status().as_u16(), res.json::<Value>().await.expect("json"))
        }
    };
    let assertion = idp.sign(&idp.claims(&aud, &client.id, "U1", MCP));
    let (status, _) = post(env.url("/oauth2/token"), assertion.clone()).await;
    assert_eq!(status, 200);
    let (status, body) = post(second.url("/oauth2/token"), assertion).await;
    assert_eq!((status, error(&body)), (400, "invalid_grant"), "{body}");

    // presented to both at once, a few times: exactly one token each time, for a new subject (the
    // first sign-in's transaction) and for a known one (the single statement)
    for i in 0..6 {
        let sub = if i % 2 == 0 { format!("U{}", Uuid::new_v4().simple()) } else { "U1".to_owned() };
        let assertion = idp.sign(&idp.claims(&aud, &client.id, &sub, MCP));
        let (a, b) = tokio::join!(
            post(env.url("/oauth2/token"), assertion.clone()),
            post(second.url("/oauth2/token"), assertion)
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
    }
    assert_eq!(env.count("users").await, 4, "one user per subject, however many replicas raced");
}
