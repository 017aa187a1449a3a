//! A running authorize service on its own database, a user, a client, and a browser-like client.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use chrono::Utc;
use protocol::Clock;
use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::scope::Scopes;
use reqwest::header::{LOCATION, SET_COOKIE};
use server::config::{ResourceSettings, Settings};
use store::Pool;
use store::{clients, users};
use testkit::{TestDb, TestServer};

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery";
pub const REDIRECT: &str = "http://127.0.0.1:3000/callback";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct Env {
    pub db: TestDb,
    pub server: TestServer,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub client_id: String,
}

impl Env {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// An environment whose settings `tweak` adjusts (the issuer is the server's own URL).
    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::with_redirects(&[REDIRECT], "mcp:tools mcp:admin", tweak).await
    }

    pub async fn with_redirects(redirects: &[&str], scope: &str, tweak: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new().await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut s = testkit::settings(&db);
        s.issuer = server::config::Issuer::parse(&format!("http://127.0.0.1:{port}")).expect("issuer");
        s.resources = vec![ResourceSettings {
            resource: RESOURCE.into(),
            name: "Demo MCP".into(),
            scopes: vec!["mcp:tools".into(), "mcp:admin".into(), "mcp:other".into()],
            documentation: None,
            accept_machine_tokens: false,
        }];
        tweak(&mut s);
        let mut ctx = testkit::context(&db);
        // the service's own pool, as configured (tests may shrink it)
        ctx.pool = store::db::pool(&s.database).expect("pool");
        let clock = ctx.clock.clone();
        let app = authorize::app(ctx, (&s).into()).await.expect("build the app");
        let settings = std::sync::Arc::new(s);
        let server = testkit::spawn_app_on(listener, &app, Some(db.pool()));
        add_user(&db.pool(), USER, PASSWORD).await;
        // self-registered (the consent page warns) and confidential, so its remembered consent
        // stands (RFC 8252 §8.6: it proves its secret to redeem a code)
        let client_id =
            add_client(&db.pool(), "Test Client", redirects, scope, ClientSource::Dynamic, "client_secret_basic").await;
        Self { db, server, clock, settings, client_id }
    }

    pub fn issuer(&self) -> &str {
        self.settings.issuer.as_str()
    }

    /// An authorization URL with PKCE, state and our client; `extra` is appended as is.
    pub fn authorize_url(&self, extra: &str) -> String {
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=st%26te{extra}",
            self.server.url,
            enc(&self.client_id),
            enc(REDIRECT)
        )
    }

    pub async fn count(&self, table: &str) -> i64 {
        use diesel::sql_types::BigInt;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let row: N = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut *self.db.conn().await)
            .await
            .expect("count");
        row.n
    }
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn add_user(pool: &Pool, name: &str, password: &str) -> uuid::Uuid {
    let hash = store::password::hash(password).expect("hash");
    let row = users::UserRow::new(name, hash, Utc::now());
    users::insert(&mut pool.get().await.expect("conn"), &row).await.expect("insert user");
    row.id
}

pub async fn add_client(
    pool: &Pool,
    name: &str,
    redirects: &[&str],
    scope: &str,
    source: ClientSource,
    auth_method: &str,
) -> String {
    let policy = MetadataPolicy {
        max_redirect_uris: 10,
        default_scopes: Scopes::parse(scope).expect("scope"),
        allowed_scopes: Scopes::parse("mcp:tools mcp:admin mcp:other").expect("scope"),
    };
    let metadata = ClientMetadataRequest {
        redirect_uris: Some(redirects.iter().map(|r| (*r).to_owned()).collect()),
        token_endpoint_auth_method: Some(auth_method.into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        client_name: Some(name.into()),
        client_uri: Some("https://client.example.org/about".into()),
        scope: Some(scope.into()),
        ..Default::default()
    }
    .validate(&policy)
    .expect("valid client");
    let id = uuid::Uuid::new_v4().to_string();
    let mut row = clients::ClientRow::new(id.clone(), source, &metadata, Utc::now());
    if auth_method != "none" {
        row.client_secret_hash = Some(protocol::secret::SecretHash::of("spcs_test-secret").to_vec());
    }
    clients::insert(&mut pool.get().await.expect("conn"), &row).await.expect("insert client");
    id
}

/// A browser: a cookie jar, redirects not followed (each hop is checked).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

/// The query of a URL, decoded.
pub fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// A hidden or text field's value in a page (askama's escapes undone).
pub fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&#60;", "<")
            .replace("&#62;", ">")
            .replace("&#38;", "&"),
    )
}

/// Follows the authorization URL to the login page, signs in, and returns where the login sent
/// the browser (back to the authorization endpoint).
pub async fn sign_in(env: &Env, b: &reqwest::Client, authorize_url: &str) -> String {
    let res = b.get(authorize_url).send().await.expect("authorize");
    assert_eq!(res.status(), 302, "to the login page");
    let login = location(&res);
    assert!(login.starts_with(&format!("{}/oauth2/login?", env.issuer())), "{login}");
    let page = b.get(&login).send().await.expect("login page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let res = post_login(env, b, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 303, "signed in");
    location(&res)
}

/// Submits the login form found in `html`.
pub async fn post_login(env: &Env, b: &reqwest::Client, html: &str, user: &str, password: &str) -> reqwest::Response {
    let form = [
        ("request", field(html, "request").expect("request field")),
        ("csrf_token", field(html, "csrf_token").expect("csrf field")),
        ("username", user.to_owned()),
        ("password", password.to_owned()),
    ];
    b.post(format!("{}/oauth2/login", env.server.url)).form(&form).send().await.expect("post login")
}

/// Signs in and opens the consent page; returns its HTML.
pub async fn consent_page(env: &Env, b: &reqwest::Client, authorize_url: &str) -> String {
    let back = sign_in(env, b, authorize_url).await;
    let res = b.get(&back).send().await.expect("authorize after login");
    assert_eq!(res.status(), 200, "the consent page");
    res.text().await.expect("html")
}

/// Submits the consent form found in `html` with `decision`.
pub async fn decide(env: &Env, b: &reqwest::Client, html: &str, decision: &str) -> reqwest::Response {
    let form = [
        ("request", field(html, "request").expect("request field")),
        ("csrf_token", field(html, "csrf_token").expect("csrf field")),
        ("decision", decision.to_owned()),
    ];
    b.post(format!("{}/oauth2/consent", env.server.url)).form(&form).send().await.expect("post consent")
}

/// Asserts an error response at the redirect URI: the error, `state` and `iss` exactly.
pub fn assert_error_redirect(env: &Env, location: &str, error: &str) -> HashMap<String, String> {
    assert!(location.starts_with(REDIRECT), "sent to the client: {location}");
    let q = query(location);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{location}");
    assert_eq!(q.get("state").map(String::as_str), Some("st&te"), "{location}");
    assert_eq!(q.get("iss").map(String::as_str), Some(env.issuer()), "{location}");
    assert!(!q.contains_key("code"));
    q
}
