//! An enterprise identity provider for tests and the bench: its own ES256 keys, its RFC 8414
//! metadata and JWKS served on a loopback port (issuer `http://127.0.0.1:<port>/tenant`, a path so
//! that discovery's path insertion is exercised), and ID-JAGs signed with jsonwebtoken, the way
//! an IdP's token exchange (RFC 8693) would issue them — also through a token exchange endpoint
//! (`/tenant/token`), for clients such as the MCP SDKs that ask the IdP themselves. It never uses
//! Sallyport's signer. Being a test IdP, it takes the `subject_token` for the user's subject
//! identifier as it is (a real IdP validates an ID token there) and puts the requesting
//! `client_id` in the ID-JAG unchanged (one client id at both servers).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use jsonwebtoken::Header;
use jsonwebtoken::jwk::JwkSet;
use protocol::idjag::AssertionAlg;
use protocol::keys::{SigningAlg, SigningKey};
use serde_json::{Value, json};
use server::Settings;
use server::config::TrustedIssuerSettings;
use uuid::Uuid;

use crate::TestServer;

/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER: &str = protocol::idjag::JWT_BEARER;
/// The JOSE `typ` of an ID-JAG.
pub const TYP: &str = protocol::idjag::ID_JAG_TYP;

/// A running IdP; stops when dropped.
pub struct Idp {
    pub issuer: String,
    /// The key it signs with now; `published` is what its JWKS serves.
    key: Arc<Mutex<SigningKey>>,
    published: Arc<Mutex<Vec<SigningKey>>>,
    /// How often its JWKS was fetched.
    pub fetches: Arc<AtomicUsize>,
    _server: TestServer,
}

impl Idp {
    /// Starts on a free port of 127.0.0.1 with one key.
    ///
    /// # Panics
    /// When no port can be bound or no key generated.
    pub fn start() -> Self {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        let published = Arc::new(Mutex::new(vec![key.clone()]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let issuer = format!("http://127.0.0.1:{}/tenant", listener.local_addr().expect("addr").port());
        let key = Arc::new(Mutex::new(key));
        let (keys, count, iss, signer) = (published.clone(), fetches.clone(), issuer.clone(), key.clone());
        let server = crate::spawn_on(listener, None, move |cfg| {
            let (keys, count, iss, signer) = (keys.clone(), count.clone(), iss.clone(), signer.clone());
            let exchange_iss = iss.clone();
            // RFC 8414 §3.1: the issuer's path goes after the well-known prefix
            cfg.route(
                "/.well-known/oauth-authorization-server/tenant",
                web::get().to(move || {
                    let iss = iss.clone();
                    async move {
                        HttpResponse::Ok().json(json!({
                            "issuer": iss,
                            "token_endpoint": format!("{iss}/token"),
                            "jwks_uri": format!("{iss}/jwks"),
                            "identity_chaining_requested_token_types_supported": ["urn:ietf:params:oauth:token-type:id-jag"],
                        }))
                    }
                }),
            )
            .route(
                "/tenant/token",
                web::post().to(move |form: web::Form<std::collections::HashMap<String, String>>| {
                    let (signer, iss) = (signer.clone(), exchange_iss.clone());
                    async move { token_exchange(&signer, &iss, &form) }
                }),
            )
            .route(
                "/tenant/jwks",
                web::get().to(move || {
                    let (keys, count) = (keys.clone(), count.clone());
                    async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        let set = JwkSet {
                            keys: keys.lock().map(|k| k.iter().map(|k| k.public_jwk.clone()).collect()).unwrap_or_default(),
                        };
                        HttpResponse::Ok().json(set)
                    }
                }),
            );
        });
        Self { issuer, key, published, fetches, _server: server }
    }

    /// The trusted-issuer entry for this IdP (keys found by discovery).
    pub fn trusted(&self) -> TrustedIssuerSettings {
        TrustedIssuerSettings {
            issuer: self.issuer.clone(),
            jwks_uri: None,
            name: Some("Test IdP".into()),
            algorithms: vec![AssertionAlg::Es256, AssertionAlg::Rs256],
        }
    }

    /// Trusts this IdP in `s`, which may reach it on loopback over http.
    pub fn configure(&self, s: &mut Settings) {
        s.identity.trusted_issuers = vec![self.trusted()];
        s.identity.allow_private_hosts = true;
        s.identity.allow_http = true;
    }

    /// Valid claims for `client_id` at the authorization server `audience`, for `resource`, scope
    /// `mcp`, with a fresh `jti`, valid for five minutes.
    pub fn claims(&self, audience: &str, client_id: &str, sub: &str, resource: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "sub": sub, "aud": audience, "client_id": client_id,
            "jti": Uuid::new_v4().to_string(), "iat": now, "exp": now + 300,
            "resource": resource, "scope": "mcp", "email": format!("{sub}@corp.example"), "email_verified": true,
        })
    }

    /// Signs `claims` as an ID-JAG with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        let key = self.key.lock().expect("key").clone();
        sign_with(&key, Some(TYP), claims)
    }

    /// The current signing key (to sign many assertions without the lock).
    pub fn key(&self) -> SigningKey {
        self.key.lock().expect("key").clone()
    }

    /// Publishes a new key and signs with it from now on (the old one stays published).
    pub fn rotate(&self) -> String {
        let (key, _) = SigningKey::generate(SigningAlg::Es256).expect("key");
        self.published.lock().expect("keys").push(key.clone());
        let kid = key.kid.clone();
        *self.key.lock().expect("key") = key;
        kid
    }
}

/// RFC 8693 token exchange for an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant §4.3).
fn token_exchange(
    signer: &Mutex<SigningKey>,
    issuer: &str,
    form: &std::collections::HashMap<String, String>,
) -> HttpResponse {
    let param = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let error = |description: &str| {
        HttpResponse::BadRequest().json(json!({"error": "invalid_request", "error_description": description}))
    };
    if param("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        || param("requested_token_type").map(String::as_str) != Some("urn:ietf:params:oauth:token-type:id-jag")
    {
        return error("only ID-JAG token exchange is supported");
    }
    let (Some(audience), Some(resource), Some(subject), Some(client_id)) =
        (param("audience"), param("resource"), param("subject_token"), param("client_id"))
    else {
        return error("audience, resource, subject_token and client_id are required");
    };
    let now = chrono::Utc::now().timestamp();
    let scope = param("scope").cloned().unwrap_or_else(|| "mcp".into());
    let claims = json!({
        "iss": issuer, "sub": subject, "aud": audience, "client_id": client_id,
        "jti": Uuid::new_v4().to_string(), "iat": now, "exp": now + 300, "resource": resource, "scope": scope,
    });
    let Ok(key) = signer.lock().map(|k| k.clone()) else { return HttpResponse::InternalServerError().finish() };
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({
        "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
        "access_token": sign_with(&key, Some(TYP), &claims),
        "token_type": "N_A",
        "scope": scope,
        "expires_in": 300,
    }))
}

/// Signs `claims` with `key` under `typ` (an ID-JAG has `oauth-id-jag+jwt`).
///
/// # Panics
/// When jsonwebtoken cannot sign (a broken key).
pub fn sign_with(key: &SigningKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg.jwt());
    header.typ = typ.map(str::to_owned);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}
