//! What the token tests share: a service on a free port over its own database, clients, users
//! and codes inserted directly, an `oauth2` client, raw form posts, and an independent JWT check.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use diesel_async::RunQueryDsl;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, IntrospectionUrl, RedirectUrl, TokenUrl};
use protocol::Clock;
use protocol::client::{ApplicationType, AuthMethod, ClientMetadata, ClientSource, GrantType};
use protocol::scope::Scopes;
use protocol::secret::{PlainSecret, SecretKind};
use protocol::uri::RedirectUri;
use serde_json::Value;
use server::Settings;
use server::config::ResourceSettings;
use server::service::Context;
use store::{clients, codes, users};
use testkit::{TestDb, TestServer};
use uuid::Uuid;

pub const MCP: &str = "https://mcp.example/mcp";
pub const FILES: &str = "https://files.example/api";
pub const CALLBACK: &str = "http://127.0.0.1:4321/callback";

/// A running token service with its database.
pub struct Env {
    pub db: TestDb,
    pub server: TestServer,
    pub ctx: Context,
    /// What the service was built from.
    pub settings: Settings,
    pub http: reqwest::Client,
}

/// Settings with one resource (`MCP`, scopes `mcp` and `mcp:admin`).
pub fn base_settings(db: &TestDb) -> Settings {
    let mut s = testkit::settings(db);
    s.resources = vec![ResourceSettings {
        resource: MCP.into(),
        name: "MCP".into(),
        scopes: vec!["mcp".into(), "mcp:admin".into()],
        documentation: None,
        accept_machine_tokens: true,
    }];
    s
}

/// Adds a second resource (`FILES`, scope `files`).
pub fn with_files(s: &mut Settings) {
    s.resources.push(ResourceSettings {
        resource: FILES.into(),
        name: "Files".into(),
        scopes: vec!["files".into()],
        documentation: None,
        accept_machine_tokens: true,
    });
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Settings)) -> Self {
        testkit::init_logging();
        let db = TestDb::new().await;
        let mut settings = base_settings(&db);
        change(&mut settings);
        let ctx = testkit::context_with(&db, &settings);
        let app = token::app(ctx.clone(), (&settings).into()).await.expect("build the token service");
        let server = testkit::spawn_app(&app, Some(ctx.pool.clone()));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http");
        Self { db, server, ctx, settings, http }
    }

    pub fn clock(&self) -> &Clock {
        &self.ctx.clock
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Inserts a client; returns its secret for a confidential method.
    pub async fn client(&self, spec: ClientSpec<'_>) -> TestClient {
        let metadata = ClientMetadata {
            redirect_uris: vec![RedirectUri::parse(CALLBACK).expect("redirect")],
            token_endpoint_auth_method: spec.auth,
            grant_types: spec.grants.to_vec(),
            response_types: vec!["code".into()],
            application_type: ApplicationType::Native,
            client_name: Some("test client".into()),
            client_uri: None,
            logo_uri: None,
            tos_uri: None,
            policy_uri: None,
            contacts: vec![],
            scope: Scopes::parse(spec.scope).expect("scope"),
            jwks_uri: None,
            jwks: None,
            software_id: None,
            software_version: None,
        };
        let id = spec.id.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let mut row = clients::ClientRow::new(id.clone(), spec.source, &metadata, Utc::now());
        let secret = spec.auth.is_confidential().then(|| PlainSecret::generate(SecretKind::ClientSecret));
        row.client_secret_hash = secret.as_ref().map(|s| s.hash().to_vec());
        row.may_introspect = spec.may_introspect;
        clients::insert(&mut *self.db.conn().await, &row).await.expect("insert client");
        TestClient { id, secret: secret.map(PlainSecret::into_inner) }
    }

    pub async fn user(&self) -> Uuid {
        let row = users::UserRow::new(&format!("u{}", Uuid::new_v4().simple()), "$argon2id$x".into(), Utc::now());
        users::insert(&mut *self.db.conn().await, &row).await.expect("insert user");
        row.id
    }

    /// Inserts an authorization code as the authorize service would; returns the plain code.
    pub async fn code(&self, client_id: &str, user: Uuid, spec: CodeSpec<'_>) -> String {
        let code = PlainSecret::generate(SecretKind::AuthorizationCode);
        let now = self.clock().now();
        let row = codes::CodeRow {
            code_hash: code.hash().to_vec(),
            grant_id: Uuid::now_v7(),
            client_id: client_id.into(),
            user_id: user,
            redirect_uri: CALLBACK.into(),
            redirect_uri_sent: spec.redirect_uri_sent,
            code_challenge: protocol::pkce::s256(spec.verifier),
            resources: spec
                .resources
                .iter()
                .map(|r| protocol::uri::ResourceUri::parse(r).expect("a valid resource"))
                .collect(),
            scope: spec.scope.into(),
            auth_time: now - TimeDelta::seconds(30),
            created_at: now,
            expires_at: now + TimeDelta::seconds(60),
            used_at: None,
        };
        codes::insert(&mut *self.db.conn().await, row).await.expect("insert code");
        code.into_inner()
    }

    /// A user, a code for `client`, and the token response of its exchange (raw form post).
    pub async fn tokens_for(&self, client: &TestClient) -> Value {
        let user = self.user().await;
        let code = self.code(&client.id, user, CodeSpec::default()).await;
        let (status, body) = self
            .post_form(
                "/oauth2/token",
                &client.post_auth(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", VERIFIER),
                    ("redirect_uri", CALLBACK),
                ]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POSTs a form; returns the status and the JSON body (`Null` for an empty body).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self.http.post(self.url(path)).form(form).send().await.expect("post");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json body") })
    }

    /// POSTs a form with HTTP Basic credentials.
    pub async fn post_basic(&self, path: &str, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url(path)).basic_auth(id, Some(secret)).form(form).send().await.expect("post")
    }

    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> (u16, Value) {
        self.post_form(
            "/oauth2/token",
            &client.post_auth(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]),
        )
        .await
    }

    /// Asks introspection as `introspector` (which must be allowed to).
    pub async fn introspect(&self, introspector: &TestClient, token: &str) -> Value {
        let (status, body) = self.post_form("/oauth2/introspect", &introspector.post_auth(&[("token", token)])).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A confidential client allowed to introspect.
    pub async fn resource_server(&self) -> TestClient {
        self.client(ClientSpec {
            auth: AuthMethod::ClientSecretBasic,
            may_introspect: true,
            grants: &[],
            ..Default::default()
        })
        .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let n: N = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut *self.db.conn().await)
            .await
            .expect("count");
        n.n
    }

    /// The JWKS as published.
    pub async fn jwks(&self) -> JwkSet {
        self.http.get(self.url("/oauth2/jwks")).send().await.expect("jwks").json().await.expect("jwks json")
    }

    /// Verifies an access token independently of the service's code: the published JWKS,
    /// `DecodingKey::from_jwk`, jsonwebtoken's own validation of iss, aud and exp.
    pub async fn verify_jwt(&self, token: &str, audience: &str) -> Value {
        let header = jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 typ");
        let kid = header.kid.clone().expect("kid");
        let set = self.jwks().await;
        let jwk = set.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not published"));
        let key = DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the token verifies").claims
    }

    /// An `oauth2` crate client for `client`, with every endpoint of this service.
    pub fn oauth2(&self, client: &TestClient) -> OAuth2Client {
        let mut c = BasicClient::new(ClientId::new(client.id.clone()));
        if let Some(secret) = &client.secret {
            c = c.set_client_secret(ClientSecret::new(secret.clone()));
        }
        c.set_auth_uri(AuthUrl::new("http://127.0.0.1:9/oauth2/authorize".into()).expect("url"))
            .set_token_uri(TokenUrl::new(self.url("/oauth2/token")).expect("url"))
            .set_introspection_url(IntrospectionUrl::new(self.url("/oauth2/introspect")).expect("url"))
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("url"))
    }

    /// Waits (polling, up to 15 s) until the JWKS satisfies `check`; key reloads are every 3 s.
    pub async fn wait_for_jwks(&self, check: impl Fn(&JwkSet) -> bool) {
        for _ in 0..75 {
            if check(&self.jwks().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the JWKS never reached the expected state");
    }
}

pub type OAuth2Client = BasicClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointSet>;

/// The oauth2 crate's HTTP client (its own reqwest), never following redirects.
pub fn oauth2_http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new().redirect(oauth2::reqwest::redirect::Policy::none()).build().expect("http")
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier";

#[derive(Debug, Clone, Copy)]
pub struct ClientSpec<'a> {
    pub id: Option<&'a str>,
    pub auth: AuthMethod,
    pub grants: &'a [GrantType],
    pub scope: &'a str,
    pub may_introspect: bool,
    /// An operator's client unless said otherwise.
    pub source: ClientSource,
}

impl Default for ClientSpec<'_> {
    fn default() -> Self {
        Self {
            id: None,
            auth: AuthMethod::None,
            grants: &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            scope: "mcp mcp:admin files",
            may_introspect: false,
            source: ClientSource::Admin,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CodeSpec<'a> {
    pub verifier: &'a str,
    pub redirect_uri_sent: bool,
    pub resources: &'a [&'a str],
    pub scope: &'a str,
}

impl Default for CodeSpec<'_> {
    fn default() -> Self {
        Self { verifier: VERIFIER, redirect_uri_sent: true, resources: &[MCP], scope: "mcp" }
    }
}

#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestClient {
    /// `params` plus `client_id` (and `client_secret` for a confidential client): client_secret_post / none.
    pub fn post_auth<'a>(&'a self, params: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = params.to_vec();
        v.push(("client_id", &self.id));
        if let Some(s) = &self.secret {
            v.push(("client_secret", s));
        }
        v
    }
}

/// The `error` member of an error body.
pub fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// Claims of a JWT without verifying (to look at what the service put in).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
        .expect("claims json")
}
