//! Issue 16: what the authorize service refuses from an OpenID provider that misbehaves. A small
//! provider of the test's own (discovery, keys, an authorization endpoint that answers at once, a
//! token endpoint that checks our client secret and PKCE verifier) signs the ID token it is told
//! to: a good one first (so the refusals below are the token's fault, nothing else), then tampered,
//! for another audience, from the future, expired, with the nonce of an earlier sign-in, HS256
//! keyed with the public key, `alg: none`, signed by a key it does not publish, from another
//! issuer. Each ends on a page saying what happened, with "try again", and an audit event. The
//! interplay with a real provider is tests/tests/federation.rs.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use protocol::keys::{SigningAlg, SigningKey};
use serde_json::{Value, json};
use server::config::ProviderSettings;

use super::support::*;

const OP_CLIENT: &str = "sallyport";
const OP_SECRET: &str = "fake-provider-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Good,
    Tampered,
    WrongAudience,
    FromTheFuture,
    Expired,
    OldNonce,
    Hs256,
    AlgNone,
    UnpublishedKey,
    OtherIssuer,
}

/// The fake provider's memory: what each authorization request asked for, by code.
struct Op {
    scenario: Mutex<Scenario>,
    /// code -> (nonce, code_challenge)
    codes: Mutex<HashMap<String, (String, String)>>,
    nonces: Mutex<Vec<String>>,
    key: SigningKey,
    other: SigningKey,
    issuer: Mutex<String>,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

impl Op {
    fn id_token(&self, nonce: &str) -> String {
        let issuer = self.issuer.lock().expect("lock").clone();
        let now = chrono::Utc::now().timestamp();
        let scenario = *self.scenario.lock().expect("lock");
        let old_nonce = self.nonces.lock().expect("lock").first().cloned().unwrap_or_default();
        let mut claims = json!({
            "iss": issuer, "sub": "fake-1", "aud": OP_CLIENT, "iat": now, "exp": now + 300, "nonce": nonce,
            "preferred_username": "fakeuser", "email": "fake@example.com", "email_verified": true,
        });
        match scenario {
            Scenario::WrongAudience => claims["aud"] = json!("someone-else"),
            Scenario::FromTheFuture => claims["iat"] = json!(now + 600),
            Scenario::Expired => {
                claims["iat"] = json!(now - 900);
                claims["exp"] = json!(now - 600);
            }
            Scenario::OldNonce => claims["nonce"] = json!(old_nonce),
            Scenario::OtherIssuer => claims["iss"] = json!("https://evil.example"),
            _ => {}
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key.kid.clone());
        match scenario {
            Scenario::Hs256 => {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some(self.key.kid.clone());
                let public = serde_json::to_vec(&self.key.public_jwk).expect("jwk");
                jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&public)).expect("sign")
            }
            Scenario::AlgNone => format!("{}.{}.", b64(&json!({"alg": "none", "kid": self.key.kid})), b64(&claims)),
            Scenario::UnpublishedKey => jsonwebtoken::encode(&header, &claims, &self.other.encoding).expect("sign"),
            Scenario::Tampered => {
                let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding).expect("sign");
                let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                claims["sub"] = json!("admin");
                parts[1] = b64(&claims);
                parts.join(".")
            }
            _ => jsonwebtoken::encode(&header, &claims, &self.key.encoding).expect("sign"),
        }
    }
}

fn discovery(op: web::Data<Op>) -> HttpResponse {
    let iss = op.issuer.lock().expect("lock").clone();
    HttpResponse::Ok().json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/auth"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

/// Answers at once, as if the user had signed in and consented.
fn authorize(op: web::Data<Op>, req: HttpRequest) -> HttpResponse {
    let q = query(&format!("?{}", req.query_string()));
    let code = format!("code-{}", uuid::Uuid::new_v4());
    let nonce = q.get("nonce").cloned().unwrap_or_default();
    op.nonces.lock().expect("lock").push(nonce.clone());
    op.codes.lock().expect("lock").insert(code.clone(), (nonce, q.get("code_challenge").cloned().unwrap_or_default()));
    let iss = op.issuer.lock().expect("lock").clone();
    let back = format!(
        "{}?code={}&state={}&iss={}",
        q["redirect_uri"],
        enc(&code),
        enc(q.get("state").map(String::as_str).unwrap_or_default()),
        enc(&iss)
    );
    HttpResponse::Found().insert_header(("location", back)).finish()
}

/// Checks our client authentication (`client_secret_post`) and the PKCE verifier, then answers
/// with the ID token of the scenario.
fn token(op: web::Data<Op>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let f = form.into_inner();
    let bad = |e: &str| HttpResponse::BadRequest().json(json!({ "error": e }));
    if f.get("client_id").map(String::as_str) != Some(OP_CLIENT)
        || f.get("client_secret").map(String::as_str) != Some(OP_SECRET)
    {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
    }
    let Some((nonce, challenge)) = f.get("code").and_then(|c| op.codes.lock().expect("lock").remove(c)) else {
        return bad("invalid_grant");
    };
    if f.get("code_verifier").map(|v| protocol::pkce::s256(v)) != Some(challenge) {
        return bad("invalid_grant");
    }
    HttpResponse::Ok().json(json!({ "access_token": "at", "token_type": "Bearer", "id_token": op.id_token(&nonce) }))
}

fn jwks(op: web::Data<Op>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [op.key.public_jwk] }))
}

async fn fake_provider() -> (testkit::TestServer, web::Data<Op>) {
    let op = web::Data::new(Op {
        scenario: Mutex::new(Scenario::Good),
        codes: Mutex::new(HashMap::new()),
        nonces: Mutex::new(Vec::new()),
        key: SigningKey::generate(SigningAlg::Es256).expect("key").0,
        other: SigningKey::generate(SigningAlg::Es256).expect("key").0,
        issuer: Mutex::new(String::new()),
    });
    let data = op.clone();
    let server = testkit::spawn(None, move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route("/.well-known/openid-configuration", web::get().to(|op: web::Data<Op>| async move { discovery(op) }))
            .route("/auth", web::get().to(|op: web::Data<Op>, req: HttpRequest| async move { authorize(op, req) }))
            .route(
                "/token",
                web::post().to(|op: web::Data<Op>, f: web::Form<HashMap<String, String>>| async move { token(op, f) }),
            )
            .route("/jwks", web::get().to(|op: web::Data<Op>| async move { jwks(op) }));
    });
    *op.issuer.lock().expect("lock") = server.url.trim_end_matches('/').to_owned();
    (server, op)
}

fn settings(issuer: &str) -> ProviderSettings {
    ProviderSettings {
        id: "fake".into(),
        name: "Fake ID".into(),
        issuer: issuer.into(),
        client_id: OP_CLIENT.into(),
        client_secret: Some(OP_SECRET.into()),
        client_secret_env: None,
        scopes: vec!["openid".into(), "email".into()],
        username_claim: None,
        allowed_email_domains: Vec::new(),
        required_claims: Default::default(),
        allow_private_hosts: true,
    }
}

/// The sign-in page, the provider's button, the provider, and the callback: its response.
async fn through_the_provider(env: &Env, b: &reqwest::Client) -> reqwest::Response {
    let res = b.get(env.authorize_url("")).send().await.expect("authorize");
    let login = location(&res);
    let html = b.get(&login).send().await.expect("login page").text().await.expect("html");
    assert!(html.contains("id=\"provider-fake\"") && html.contains("Sign in with Fake ID"), "{html}");
    let form = [
        ("request", field(&html, "request").expect("request")),
        ("csrf_token", field(&html, "csrf_token").expect("csrf")),
        ("provider", "fake".to_owned()),
    ];
    let res = b.post(format!("{}/oauth2/login", env.server.url)).form(&form).send().await.expect("press");
    assert_eq!(res.status(), 303, "to the provider");
    let at_op = location(&res);
    let q = query(&at_op);
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert!(q.contains_key("nonce") && q.contains_key("state") && q.contains_key("code_challenge"), "{at_op}");
    let res = b.get(&at_op).send().await.expect("provider");
    let callback = location(&res);
    assert!(callback.starts_with(&format!("{}/oauth2/login/fake/callback?", env.issuer())), "{callback}");
    b.get(&callback).send().await.expect("callback")
}

async fn last_reason(env: &Env) -> String {
    let mut conn = env.db.conn().await;
    let e = store::audit::recent(&mut conn, 1).await.expect("audit").pop().expect("an event");
    format!("{} {}", e.kind, e.detail["reason"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread")]
async fn id_tokens_a_provider_should_not_have_sent_are_refused() {
    testkit::init_logging();
    let (_op_server, op) = fake_provider().await;
    let issuer = op.issuer.lock().expect("lock").clone();
    let env = Env::with(|s| s.login.providers = vec![settings(&issuer)]).await;

    // the fake provider itself passes: a good token signs the user in (created just in time)
    let res = through_the_provider(&env, &browser()).await;
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    assert!(location(&res).starts_with(&format!("{}/oauth2/authorize?", env.issuer())));
    assert_eq!(last_reason(&env).await, "user.federated_sign_in ");
    let mut conn = env.db.conn().await;
    assert!(store::users::find_by_username(&mut conn, "fakeuser").await.expect("query").is_some());
    drop(conn);

    for (scenario, says, reason) in [
        (Scenario::Tampered, "signature is invalid", "id_token:signature"),
        (Scenario::WrongAudience, "meant for another client", "id_token:audience"),
        (Scenario::FromTheFuture, "clocks", "id_token:issued_in_future"),
        (Scenario::Expired, "clocks", "id_token:expired"),
        (Scenario::OldNonce, "does not answer this sign-in", "id_token:nonce"),
        (Scenario::Hs256, "algorithm that is not accepted", "id_token:algorithm"),
        (Scenario::AlgNone, "is malformed", "id_token:malformed"),
        (Scenario::UnpublishedKey, "signature is invalid", "id_token:signature"),
        (Scenario::OtherIssuer, "another issuer", "id_token:issuer"),
    ] {
        *op.scenario.lock().expect("lock") = scenario;
        let res = through_the_provider(&env, &browser()).await;
        assert_eq!(res.status(), 400, "{scenario:?}");
        assert!(set_cookies(&res).iter().all(|c| !c.starts_with("sallyport_session=")), "{scenario:?}: no session");
        let page = res.text().await.expect("page");
        assert!(page.contains(says) && page.contains("id=\"try-again\""), "{scenario:?}: {page}");
        assert!(!page.contains("panicked") && !page.contains("jsonwebtoken"), "{scenario:?}: {page}");
        assert_eq!(last_reason(&env).await, format!("user.federated_sign_in_failed {reason}"), "{scenario:?}");
    }
    assert_eq!(env.count("sessions").await, 1, "only the good sign-in made a session");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_passwords_off_the_form_is_gone_and_its_post_refused() {
    let (_op_server, op) = fake_provider().await;
    let issuer = op.issuer.lock().expect("lock").clone();
    let env = Env::with(|s| {
        s.login.providers = vec![settings(&issuer)];
        s.login.password = false;
    })
    .await;
    let b = browser();
    let res = b.get(env.authorize_url("")).send().await.expect("authorize");
    let html = b.get(location(&res)).send().await.expect("login page").text().await.expect("html");
    assert!(html.contains("provider-fake") && !html.contains("id=\"password\""), "{html}");
    let res = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.expect("page").contains("password is turned off"));
    assert_eq!(env.count("sessions").await, 0);
}
