//! What the tests share: a registration service on its own database, and helpers to call it.

use std::net::TcpListener;

use reqwest::StatusCode;
use serde_json::Value;
use server::Settings;
use server::config::{Issuer, ResourceSettings};
use testkit::{TestDb, TestServer};

/// The protected resource every test deployment has; its scopes are what clients may register.
pub const RESOURCE: &str = "https://mcp.example.com/mcp";

pub struct App {
    pub server: TestServer,
    /// What the service was built from.
    pub settings: Settings,
    pub http: reqwest::Client,
    // dropped last: the server and pool use it
    pub db: TestDb,
}

pub async fn start() -> App {
    start_with(|_| {}).await
}

/// A service whose issuer is its own URL, so `registration_client_uri` can be followed as is.
pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> App {
    testkit::init_logging();
    let db = TestDb::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut settings = testkit::settings(&db);
    settings.issuer = Issuer::parse(&format!("http://127.0.0.1:{port}")).expect("issuer");
    settings.resources = vec![ResourceSettings {
        resource: RESOURCE.into(),
        name: "Example MCP".into(),
        scopes: vec!["mcp".into(), "files:read".into()],
        documentation: None,
        accept_machine_tokens: false,
    }];
    tweak(&mut settings);
    let ctx = testkit::context(&db);
    let app = registration::app(ctx.clone(), (&settings).into()).await.expect("build the service");
    let server = testkit::spawn_app_on(listener, &app, Some(ctx.pool));
    App { server, settings, http: reqwest::Client::new(), db }
}

impl App {
    pub fn register_url(&self) -> String {
        self.server.url("/oauth2/register")
    }

    /// POST a JSON body to the registration endpoint.
    pub async fn register(&self, body: &Value) -> reqwest::Response {
        self.http.post(self.register_url()).json(body).send().await.expect("request")
    }

    /// Registers and returns the 201 body, checking what every successful registration must satisfy.
    pub async fn register_ok(&self, body: &Value) -> Value {
        let res = self.register(body).await;
        let status = res.status();
        let headers = res.headers().clone();
        let info: Value = res.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::CREATED, "{info}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cache-control"], "no-store");
        assert_client_information(&info);
        assert!(info["registration_access_token"].as_str().is_some_and(|t| t.starts_with("sprat_")), "{info}");
        let uri = info["registration_client_uri"].as_str().expect("registration_client_uri");
        assert_eq!(
            uri,
            format!("{}/oauth2/register/{}", self.settings.issuer, info["client_id"].as_str().expect("id"))
        );
        info
    }

    /// GET the client's configuration with `token`.
    pub async fn read(&self, info: &Value, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(info["registration_client_uri"].as_str().expect("uri"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }

    pub async fn conn(&self) -> store::db::PooledConn {
        self.db.conn().await
    }
}

pub fn token_of(info: &Value) -> &str {
    info["registration_access_token"].as_str().expect("registration_access_token")
}

/// RFC 7591 §3.2.1 as strict clients parse it: `client_id` and `redirect_uris` present, no member
/// `null` or `""` at any depth, and the secret members consistent with the auth method.
pub fn assert_client_information(info: &Value) {
    assert!(info["client_id"].as_str().is_some_and(|id| !id.is_empty()), "{info}");
    assert!(info["redirect_uris"].is_array(), "redirect_uris is always present: {info}");
    assert!(info["client_id_issued_at"].is_i64(), "{info}");
    assert_no_empty_members(info);
    let public = info["token_endpoint_auth_method"] == "none";
    if public {
        assert!(info.get("client_secret").is_none() && info.get("client_secret_expires_at").is_none(), "{info}");
    } else {
        assert_eq!(info["client_secret_expires_at"], 0, "{info}");
    }
}

pub fn assert_no_empty_members(v: &Value) {
    match v {
        Value::Null => panic!("a null member"),
        Value::String(s) => assert!(!s.is_empty(), "an empty string member"),
        Value::Array(items) => items.iter().for_each(assert_no_empty_members),
        Value::Object(map) => {
            for (k, v) in map {
                assert!(!v.is_null(), "member {k} is null");
                assert!(v != "", "member {k} is \"\"");
                assert_no_empty_members(v);
            }
        }
        _ => {}
    }
}

/// Asserts an RFC 6749 §5.2 error response and returns its headers.
pub async fn assert_error(res: reqwest::Response, status: StatusCode, code: &str) -> reqwest::header::HeaderMap {
    let headers = res.headers().clone();
    let got = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    assert_eq!(headers["content-type"], "application/json", "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error body");
    assert_eq!(body["error"], code, "{text}");
    assert!(body.get("error_description").is_none_or(|d| d.as_str().is_some_and(|d| !d.is_empty())));
    headers
}

/// The challenge of a failed registration-token check (RFC 6750 §3.1).
pub fn assert_invalid_token_challenge(headers: &reqwest::header::HeaderMap) {
    let challenge = headers["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
}

/// How many clients exist.
pub async fn client_count(app: &App) -> usize {
    store::clients::list(&mut *app.conn().await).await.expect("list").len()
}
