//! A small OpenID provider (OpenID Connect Core 1.0 §3.1, the authorization code flow) on a
//! loopback port, for the bench and for tests that need one without Node: its discovery document,
//! an authorization endpoint, a token endpoint (`client_secret_post`, PKCE S256 required) that
//! issues ES256 ID tokens with every claim in them (so no userinfo call is needed), and its keys.
//! The user is whoever the browser's provider session cookie ([`SESSION_COOKIE`]) names: a person
//! who is signed in at the company's provider already, the common case of single sign-on, so the
//! authorization endpoint answers at once with a code. It counts the time it spends serving, per
//! endpoint kind, so that a benchmark can tell the provider's share of a flow from the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::jwk::JwkSet;
use protocol::keys::{SigningAlg, SigningKey};
use serde_json::{Value, json};

use crate::TestServer;
use crate::idp::sign_with;

/// The cookie that names the signed-in user at the provider (its single sign-on session).
pub const SESSION_COOKIE: &str = "op_user";
/// The groups claim every user of this provider has.
pub const GROUP: &str = "mcp-users";
/// How long a code may wait to be exchanged.
const CODE_TTL: Duration = Duration::from_secs(60);

/// Time spent serving, in nanoseconds, and requests served, since the start.
#[derive(Debug, Default)]
pub struct Busy {
    /// The authorization endpoint (the browser waits on it).
    pub authorize_ns: AtomicU64,
    pub authorize_requests: AtomicU64,
    /// Token endpoint, keys, discovery (the relying party waits on them).
    pub back_channel_ns: AtomicU64,
    pub back_channel_requests: AtomicU64,
}

/// A snapshot of [`Busy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusySnapshot {
    pub authorize_ns: u64,
    pub authorize_requests: u64,
    pub back_channel_ns: u64,
    pub back_channel_requests: u64,
}

impl Busy {
    pub fn snapshot(&self) -> BusySnapshot {
        BusySnapshot {
            authorize_ns: self.authorize_ns.load(Ordering::Relaxed),
            authorize_requests: self.authorize_requests.load(Ordering::Relaxed),
            back_channel_ns: self.back_channel_ns.load(Ordering::Relaxed),
            back_channel_requests: self.back_channel_requests.load(Ordering::Relaxed),
        }
    }

    fn add(&self, path: &str, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        if path == "/authorize" {
            self.authorize_ns.fetch_add(ns, Ordering::Relaxed);
            self.authorize_requests.fetch_add(1, Ordering::Relaxed);
        } else {
            self.back_channel_ns.fetch_add(ns, Ordering::Relaxed);
            self.back_channel_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::ops::Sub for BusySnapshot {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            authorize_ns: self.authorize_ns.saturating_sub(earlier.authorize_ns),
            authorize_requests: self.authorize_requests.saturating_sub(earlier.authorize_requests),
            back_channel_ns: self.back_channel_ns.saturating_sub(earlier.back_channel_ns),
            back_channel_requests: self.back_channel_requests.saturating_sub(earlier.back_channel_requests),
        }
    }
}

/// A code waiting to be exchanged.
struct Pending {
    user: String,
    nonce: Option<String>,
    challenge: String,
    issued: Instant,
}

struct Op {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    key: SigningKey,
    codes: Mutex<HashMap<String, Pending>>,
}

/// A running provider; stops when dropped.
pub struct OpenIdProvider {
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub busy: Arc<Busy>,
    _server: TestServer,
}

impl OpenIdProvider {
    /// Starts on a free port of 127.0.0.1 with one client, registered with `redirect_uri`.
    ///
    /// # Panics
    /// When no port can be bound or no key generated.
    pub fn start(redirect_uri: &str) -> Self {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let op = Arc::new(Op {
            issuer: issuer.clone(),
            client_id: "sallyport".into(),
            client_secret: protocol::secret::random_token(24),
            redirect_uri: redirect_uri.to_owned(),
            key,
            codes: Mutex::new(HashMap::new()),
        });
        let busy = Arc::new(Busy::default());
        let (shared, timer) = (op.clone(), busy.clone());
        let server = crate::spawn_on(listener, None, move |cfg| {
            let (op, busy) = (shared.clone(), timer.clone());
            // the time from the request's head to the response, extractors included
            let timed = web::scope("").wrap_fn(move |req, srv| {
                let (busy, path, started) = (busy.clone(), req.path().to_owned(), Instant::now());
                let fut = srv.call(req);
                async move {
                    let res = fut.await;
                    busy.add(&path, started.elapsed());
                    res
                }
            });
            let (a, t, k, d) = (op.clone(), op.clone(), op.clone(), op);
            cfg.service(
                timed
                    .route("/.well-known/openid-configuration", web::get().to(move || discovery(d.clone())))
                    .route(
                        "/authorize",
                        web::get().to(move |req: HttpRequest, q: web::Query<HashMap<String, String>>| {
                            authorize(a.clone(), req, q.into_inner())
                        }),
                    )
                    .route(
                        "/token",
                        web::post()
                            .to(move |form: web::Form<HashMap<String, String>>| token(t.clone(), form.into_inner())),
                    )
                    .route("/jwks", web::get().to(move || jwks(k.clone()))),
            );
        });
        Self { issuer, client_id: op.client_id.clone(), client_secret: op.client_secret.clone(), busy, _server: server }
    }
}

async fn discovery(op: Arc<Op>) -> HttpResponse {
    let iss = &op.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(op: Arc<Op>) -> HttpResponse {
    HttpResponse::Ok().json(JwkSet { keys: vec![op.key.public_jwk.clone()] })
}

/// Core §3.1.2: a known client, its registered redirect URI, `code` with PKCE S256 and `openid`;
/// the signed-in user (the session cookie) gets a code at once. Without a session: `login_required`
/// (Core §3.1.2.6) back at the client, as for `prompt=none`.
async fn authorize(op: Arc<Op>, req: HttpRequest, q: HashMap<String, String>) -> HttpResponse {
    let param = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if param("client_id") != Some(op.client_id.as_str()) || param("redirect_uri") != Some(op.redirect_uri.as_str()) {
        // never redirect to a URI that is not the client's
        return HttpResponse::BadRequest().body("unknown client or redirect_uri");
    }
    let mut back = match url::Url::parse(&op.redirect_uri) {
        Ok(u) => u,
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    {
        let mut pairs = back.query_pairs_mut();
        let openid = param("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid"));
        let pkce = param("code_challenge_method") == Some("S256") && param("code_challenge").is_some();
        let user = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()).filter(|u| !u.is_empty());
        match (param("response_type"), openid, pkce, user) {
            (Some("code"), true, true, Some(user)) => {
                let code = protocol::secret::random_token(24);
                let pending = Pending {
                    user,
                    nonce: param("nonce").map(str::to_owned),
                    challenge: param("code_challenge").unwrap_or_default().to_owned(),
                    issued: Instant::now(),
                };
                let Ok(mut codes) = op.codes.lock() else { return HttpResponse::InternalServerError().finish() };
                // codes that were never exchanged do not pile up
                if codes.len() > 10_000 {
                    codes.retain(|_, p| p.issued.elapsed() < CODE_TTL);
                }
                codes.insert(code.clone(), pending);
                pairs.append_pair("code", &code);
            }
            (Some("code"), true, true, None) => {
                pairs.append_pair("error", "login_required");
            }
            _ => {
                pairs.append_pair("error", "invalid_request");
            }
        }
        if let Some(state) = param("state") {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", &op.issuer);
    }
    HttpResponse::Found().insert_header(("location", back.to_string())).finish()
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6: the client's secret in the body, the code once, the verifier.
async fn token(op: Arc<Op>, form: HashMap<String, String>) -> HttpResponse {
    let param = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let refuse = |status: u16, error: &str| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
            .json(json!({ "error": error }))
    };
    let secret_ok = protocol::secret::constant_time_eq(param("client_secret").as_bytes(), op.client_secret.as_bytes());
    if param("client_id") != op.client_id || !secret_ok {
        return refuse(401, "invalid_client");
    }
    if param("grant_type") != "authorization_code" || param("redirect_uri") != op.redirect_uri {
        return refuse(400, "invalid_request");
    }
    let pending = match op.codes.lock() {
        Ok(mut codes) => codes.remove(param("code")),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    let Some(p) = pending.filter(|p| p.issued.elapsed() < CODE_TTL) else { return refuse(400, "invalid_grant") };
    if protocol::pkce::s256(param("code_verifier")) != p.challenge {
        return refuse(400, "invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": op.issuer, "sub": format!("op-{}", p.user), "aud": op.client_id, "azp": op.client_id,
        "iat": now, "exp": now + 300, "auth_time": now,
        "email": format!("{}@corp.example", p.user), "email_verified": true,
        "name": format!("User {}", p.user), "preferred_username": p.user, "groups": [GROUP],
    });
    if let Some(nonce) = p.nonce {
        claims["nonce"] = Value::String(nonce);
    }
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({
        "access_token": protocol::secret::random_token(24),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": sign_with(&op.key, None, &claims),
    }))
}
