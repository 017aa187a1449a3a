//! A second, whole Sallyport as the upstream of an `oauth2` route (issue 20): its own database,
//! issuer, demo user and demo MCP server, a standards-complete MCP authorization server no one
//! mocked; and what the tests ask of either side (the demo user's id, upstream audit events,
//! introspection at the upstream).

use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::scope::Scopes;
use protocol::secret::SecretHash;
use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::Value;
use server::Settings;
use testkit::TestDb;

/// The demo user's password on the gateway users' side and at the upstream.
pub const DOWN_PASSWORD: &str = "demo-password-of-the-gateway-users-side";
pub const UP_PASSWORD: &str = "demo-password-of-the-upstream-side-0123";
/// A client of the upstream that may introspect (RFC 7662): the tests' view of its tokens.
pub const INTROSPECTOR: &str = "introspector";
pub const INTROSPECTOR_SECRET: &str = "introspector-secret-of-the-upstream";

/// A browser as an HTTP client: cookies kept, every redirect shown.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The upstream: a whole Sallyport (client ID metadata documents on or off, `tweak` over its
/// settings), its session cookie named apart (both stacks live on 127.0.0.1, and cookies do not
/// keep ports apart), with a client that may introspect.
pub async fn start(db: &TestDb, documents: bool, clock: protocol::Clock, tweak: impl FnOnce(&mut Settings)) -> System {
    let system = super::start(db, UP_PASSWORD, 1, clock, |s| {
        s.metadata_documents.enabled = documents;
        s.sessions.cookie_name = "upstream_session".into();
        tweak(s);
    })
    .await;
    let policy =
        MetadataPolicy { max_redirect_uris: 1, default_scopes: Scopes::default(), allowed_scopes: Scopes::default() };
    let meta = ClientMetadataRequest { grant_types: Some(vec!["client_credentials".into()]), ..Default::default() }
        .validate(&policy)
        .expect("metadata");
    let mut rs = store::clients::ClientRow::new(INTROSPECTOR.into(), ClientSource::Admin, &meta, chrono::Utc::now());
    rs.client_secret_hash = Some(SecretHash::of(INTROSPECTOR_SECRET).to_vec());
    rs.may_introspect = true;
    store::clients::insert(&mut system.pool.get().await.expect("conn"), &rs).await.expect("introspector");
    system
}

pub async fn demo_user(system: &System) -> uuid::Uuid {
    let mut conn = system.pool.get().await.expect("conn");
    store::users::find_by_username(&mut conn, &system.demo_user).await.expect("query").expect("demo user").id
}

/// The `upstream.*` audit events of `system`, newest first, as `kind reason`.
pub async fn audit_kinds(system: &System) -> Vec<String> {
    let mut conn = system.pool.get().await.expect("conn");
    store::audit::recent(&mut conn, 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.kind.starts_with("upstream."))
        .map(|e| format!("{} {}", e.kind, e.detail["reason"].as_str().unwrap_or("")).trim_end().to_owned())
        .collect()
}

/// Whether the upstream says `token` (access or refresh) is active (RFC 7662).
pub async fn introspect(up: &System, token: &str) -> bool {
    let res = reqwest::Client::new()
        .post(format!("{}/oauth2/introspect", up.issuer))
        .basic_auth(INTROSPECTOR, Some(INTROSPECTOR_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.expect("json")["active"].as_bool().expect("active")
}
