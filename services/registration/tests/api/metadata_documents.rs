//! Client ID metadata documents (`server::cimd`) fetched over real HTTP from a local document
//! server: what is accepted, what is refused and why, SSRF protection, and caching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use protocol::cimd::CimdError;
use protocol::client::{AuthMethod, ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::scope::Scopes;
use protocol::{Clock, ErrorCode};
use serde_json::json;
use server::cimd::MetadataDocuments;
use server::config::MetadataDocumentSettings;
use store::clients;
use testkit::{TestDb, TestServer};

/// What the document server counts and serves.
#[derive(Default)]
struct Docs {
    hits: Mutex<HashMap<String, usize>>,
    /// `client_name` of `/renamed.json`.
    name: Mutex<String>,
}

impl Docs {
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("lock").get(path).copied().unwrap_or(0)
    }
}

fn document(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "Document Client",
        "client_uri": "https://app.example.com",
        "redirect_uris": ["http://127.0.0.1:33418/callback", "https://app.example.com/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

async fn serve_document(req: HttpRequest, docs: web::Data<Docs>) -> HttpResponse {
    let path = req.path().to_owned();
    *docs.hits.lock().expect("lock").entry(path.clone()).or_default() += 1;
    let own_url = format!("http://{}{}", req.connection_info().host(), path);
    let doc = document(&own_url);
    match path.as_str() {
        "/valid.json" => HttpResponse::Ok().insert_header(("cache-control", "public, max-age=120")).json(doc),
        "/no-store.json" => HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(doc),
        "/renamed.json" => {
            let mut doc = doc;
            doc["client_name"] = json!(docs.name.lock().expect("lock").clone());
            HttpResponse::Ok().json(doc)
        }
        "/mismatch.json" => HttpResponse::Ok().json(document("http://127.0.0.1:1/other.json")),
        "/trailing-slash.json" => HttpResponse::Ok().json(document(&format!("{own_url}/"))),
        "/confidential.json" => {
            let mut doc = doc;
            doc["token_endpoint_auth_method"] = json!("client_secret_basic");
            HttpResponse::Ok().json(doc)
        }
        "/with-secret.json" => {
            let mut doc = doc;
            doc["client_secret"] = json!("spcs_in_a_public_document");
            HttpResponse::Ok().json(doc)
        }
        "/no-redirect-uris.json" => {
            let mut doc = doc;
            doc.as_object_mut().expect("object").remove("redirect_uris");
            doc["grant_types"] = json!(["refresh_token"]);
            doc.as_object_mut().expect("object").remove("response_types");
            HttpResponse::Ok().json(doc)
        }
        "/unsafe-redirect.json" => {
            let mut doc = doc;
            doc["redirect_uris"] = json!(["javascript:alert(1)"]);
            HttpResponse::Ok().json(doc)
        }
        "/big.json" => {
            let mut doc = doc;
            doc["padding"] = json!("x".repeat(70 * 1024));
            HttpResponse::Ok().json(doc)
        }
        "/big-chunked.json" => {
            let chunks = (0..10).map(|_| Ok::<_, actix_web::Error>(web::Bytes::from(vec![b' '; 8 * 1024])));
            HttpResponse::Ok().content_type("application/json").streaming(futures_util::stream::iter(chunks))
        }
        "/slow.json" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            HttpResponse::Ok().json(doc)
        }
        "/not-json" => HttpResponse::Ok().content_type("text/html").body("<html><body>hello</body></html>"),
        "/redirect.json" => HttpResponse::Found().insert_header(("location", "/valid.json")).finish(),
        "/gone.json" => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

struct Setup {
    server: TestServer,
    docs: Arc<Docs>,
    clock: Clock,
    db: TestDb,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn documents(&self, tweak: impl FnOnce(&mut MetadataDocumentSettings)) -> MetadataDocuments {
        // testkit's settings: loopback and http allowed (the server is local), a 1 s timeout
        let mut settings = testkit::settings(&self.db).metadata_documents;
        tweak(&mut settings);
        MetadataDocuments::new(settings).expect("client").with_clock(self.clock.clone())
    }
}

async fn setup() -> Setup {
    testkit::init_logging();
    let docs = Arc::new(Docs { name: Mutex::new("v1".into()), ..Docs::default() });
    let data = web::Data::from(docs.clone());
    let server = testkit::spawn(None, move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone()).route("/{name}", web::get().to(serve_document));
    });
    Setup { server, docs, clock: Clock::system(), db: TestDb::new().await }
}

fn policy() -> MetadataPolicy {
    MetadataPolicy {
        max_redirect_uris: 10,
        default_scopes: Scopes::parse("mcp").expect("scope"),
        allowed_scopes: Scopes::parse("mcp files:read").expect("scope"),
    }
}

async fn fetch_err(s: &Setup, path: &str) -> CimdError {
    s.documents(|_| {}).fetch(&s.url(path), &policy()).await.expect_err("refused")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_document_becomes_a_public_client() {
    let s = setup().await;
    let url = s.url("/valid.json");
    let client = s.documents(|_| {}).resolve(&s.db.pool(), &url, &policy()).await.expect("resolved");
    assert_eq!(client.client_id, url);
    assert_eq!(client.source, ClientSource::MetadataDocument);
    assert_eq!(client.metadata.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(client.metadata.client_name.as_deref(), Some("Document Client"));
    assert_eq!(client.metadata.scope.to_string(), "mcp", "the deployment's defaults");
    assert!(client.resolve_redirect(Some("http://127.0.0.1:40000/callback")).is_some());

    // mirrored into clients, so codes and tokens can refer to it; as every service reads clients
    let mut conn = s.db.conn().await;
    let row = clients::find_row(&mut conn, &url).await.expect("query").expect("mirrored");
    assert_eq!(row.source, "metadata_document");
    assert_eq!(row.token_endpoint_auth_method, "none");
    assert!(row.client_secret_hash.is_none() && row.registration_token_hash.is_none());
    let stored = clients::find(&mut conn, &url).await.expect("query").expect("client");
    assert_eq!(stored.metadata.redirect_uris, client.metadata.redirect_uris);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_their_reason() {
    let s = setup().await;
    assert_eq!(fetch_err(&s, "/mismatch.json").await, CimdError::ClientIdMismatch);
    assert_eq!(fetch_err(&s, "/trailing-slash.json").await, CimdError::ClientIdMismatch, "compared exactly");
    assert_eq!(fetch_err(&s, "/big.json").await, CimdError::TooLarge(64 * 1024));
    assert_eq!(fetch_err(&s, "/big-chunked.json").await, CimdError::TooLarge(64 * 1024), "no Content-Length");
    assert!(matches!(fetch_err(&s, "/not-json").await, CimdError::Invalid(m) if m.contains("JSON")));
    assert!(
        matches!(fetch_err(&s, "/confidential.json").await, CimdError::Invalid(m) if m.contains("client_secret_basic"))
    );
    assert!(matches!(fetch_err(&s, "/with-secret.json").await, CimdError::Invalid(m) if m.contains("client_secret")));
    assert!(matches!(fetch_err(&s, "/no-redirect-uris.json").await, CimdError::Invalid(_)));
    assert!(matches!(fetch_err(&s, "/unsafe-redirect.json").await, CimdError::Invalid(m) if m.contains("redirect")));
    assert_eq!(fetch_err(&s, "/gone.json").await, CimdError::Fetch("status 404".into()));

    // resolve turns each into invalid_client and stores nothing
    let err = s.documents(|_| {}).resolve(&s.db.pool(), &s.url("/mismatch.json"), &policy()).await.expect_err("no");
    assert_eq!(err.code, ErrorCode::InvalidClient);
    assert!(clients::list(&mut *s.db.conn().await).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed() {
    let s = setup().await;
    assert_eq!(fetch_err(&s, "/redirect.json").await, CimdError::Fetch("status 302".into()));
    assert_eq!(s.docs.hits("/valid.json"), 0, "the redirect target was never requested");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_a_fixed_message() {
    let s = setup().await;
    let err = s.documents(|_| {}).fetch("http://127.0.0.1:9/client.json", &policy()).await.expect_err("closed port");
    let CimdError::Transport(detail) = &err else { panic!("{err:?}") };
    assert_eq!(err.to_string(), "the client's metadata document could not be fetched");
    // the log gets the cause, which the client never sees
    assert!(detail.contains("onnect"), "{detail}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_server_times_out() {
    let s = setup().await;
    let started = Instant::now();
    let err = s
        .documents(|m| m.timeout_ms = Duration::from_millis(500))
        .fetch(&s.url("/slow.json"), &policy())
        .await
        .expect_err("slow");
    assert_eq!(err, CimdError::Fetch("timed out".into()));
    assert!(started.elapsed() < Duration::from_millis(2_500), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn private_addresses_are_refused_unless_allowed() {
    let s = setup().await;
    let strict = s.documents(|m| m.allow_private_hosts = false);
    for url in [s.url("/valid.json"), s.url("/valid.json").replace("127.0.0.1", "localhost")] {
        assert_eq!(strict.fetch(&url, &policy()).await.expect_err("ssrf"), CimdError::ForbiddenHost, "{url}");
    }
    assert_eq!(s.docs.hits("/valid.json"), 0, "no request reached the internal server");
    let https_only = s.documents(|m| m.allow_http = false);
    assert_eq!(
        https_only.fetch(&s.url("/valid.json"), &policy()).await.expect_err("http"),
        CimdError::BadUrl("must be https")
    );
    let disabled = s.documents(|m| m.enabled = false);
    assert_eq!(disabled.fetch(&s.url("/valid.json"), &policy()).await.expect_err("off"), CimdError::Disabled);
    assert_eq!(s.docs.hits("/valid.json"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_are_cached_per_their_headers_within_bounds() {
    let s = setup().await;
    let pool = s.db.pool();
    let docs = s.documents(|m| {
        m.cache_min_secs = Duration::from_secs(30);
        m.cache_max_secs = Duration::from_secs(300);
    });
    // max-age=120: served from the cache until then
    let url = s.url("/valid.json");
    docs.resolve(&pool, &url, &policy()).await.expect("first");
    docs.resolve(&pool, &url, &policy()).await.expect("cached");
    assert_eq!(s.docs.hits("/valid.json"), 1);
    s.clock.advance(100);
    docs.resolve(&pool, &url, &policy()).await.expect("still cached");
    assert_eq!(s.docs.hits("/valid.json"), 1);
    s.clock.advance(21);
    docs.resolve(&pool, &url, &policy()).await.expect("refetched");
    assert_eq!(s.docs.hits("/valid.json"), 2);

    // no-store: kept for the configured minimum only
    let url = s.url("/no-store.json");
    docs.resolve(&pool, &url, &policy()).await.expect("first");
    docs.resolve(&pool, &url, &policy()).await.expect("cached for the minimum");
    assert_eq!(s.docs.hits("/no-store.json"), 1);
    s.clock.advance(31);
    docs.resolve(&pool, &url, &policy()).await.expect("refetched");
    assert_eq!(s.docs.hits("/no-store.json"), 2);

    // a maximum below max-age wins
    let short = s.documents(|m| {
        m.cache_min_secs = Duration::from_secs(0);
        m.cache_max_secs = Duration::from_secs(10);
    });
    let url = s.url("/valid.json");
    short.resolve(&pool, &url, &policy()).await.expect("fetched");
    s.clock.advance(11);
    short.resolve(&pool, &url, &policy()).await.expect("refetched");
    assert_eq!(s.docs.hits("/valid.json"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_document_updates_the_mirrored_client() {
    let s = setup().await;
    let pool = s.db.pool();
    let docs = s.documents(|m| m.cache_min_secs = Duration::from_secs(60));
    let url = s.url("/renamed.json");
    assert_eq!(docs.resolve(&pool, &url, &policy()).await.expect("v1").metadata.client_name.as_deref(), Some("v1"));
    *s.docs.name.lock().expect("lock") = "v2".into();
    s.clock.advance(61);
    assert_eq!(docs.resolve(&pool, &url, &policy()).await.expect("v2").metadata.client_name.as_deref(), Some("v2"));
    let row = clients::find_row(&mut *s.db.conn().await, &url).await.expect("query").expect("row");
    assert_eq!(row.client_name.as_deref(), Some("v2"));
    assert_eq!(clients::list(&mut *s.db.conn().await).await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_never_overwrites_another_kind_of_client() {
    let s = setup().await;
    let url = s.url("/valid.json");
    let m = ClientMetadataRequest {
        redirect_uris: Some(vec!["https://operator.example/cb".into()]),
        client_name: Some("operator's".into()),
        ..Default::default()
    }
    .validate(&policy())
    .expect("valid");
    let mut row = clients::ClientRow::new(url.clone(), ClientSource::Admin, &m, chrono::Utc::now());
    row.client_secret_hash = Some(protocol::secret::SecretHash::of("spcs_x").to_vec());
    clients::insert(&mut *s.db.conn().await, &row).await.expect("insert");

    let err = s.documents(|_| {}).resolve(&s.db.pool(), &url, &policy()).await.expect_err("refused");
    assert_eq!(err.code, ErrorCode::InvalidClient);
    let stored = clients::find_row(&mut *s.db.conn().await, &url).await.expect("query").expect("row");
    assert_eq!(stored.source, "admin");
    assert_eq!(stored.client_name.as_deref(), Some("operator's"));
}
