//! `upstream_auth = "oauth2"`: each user's own upstream token, from a real upstream authorization
//! server (Sallyport's token service over a database of its own, another issuer), sent to a
//! protected upstream that accepts only that server's tokens; refreshed exactly once when it
//! expires or is refused; and the user asked to connect (URL elicitation, or a 403) when nothing
//! else can be done. Connections are written through the store, as the connect flow writes them.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{TimeDelta, Utc};
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use uuid::Uuid;

use protocol::client::{ApplicationType, AuthMethod, ClientMetadata, ClientSource, GrantType};
use protocol::jwt::Audience;
use protocol::redact::SecretString;
use protocol::scope::Scopes;
use protocol::secret::{PlainSecret, SecretKind};
use protocol::upstream_auth::UpstreamAuth;
use protocol::uri::{RedirectUri, ResourceUri};
use server::config::{ResourceSettings, RouteSettings, UpstreamOAuthSettings};
use store::upstream_connections::{self as connections, UpstreamConnectionRow, UpstreamTokens};
use testkit::{TestDb, TestServer};

use super::support::{Stack, http_url};

const CALLBACK: &str = "http://127.0.0.1:4321/callback";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-0123456789";

/// What the protected upstream saw and refuses.
#[derive(Default)]
struct Seen {
    /// Every `Authorization` it received, in order.
    authorizations: Mutex<Vec<String>>,
    /// Bodies of the requests it accepted.
    bodies: Mutex<Vec<String>>,
    /// Access tokens it answers 401 for (as a resource server that learned of their revocation).
    refused: Mutex<Vec<String>>,
}

/// The upstream side: an authorization server (the token service, its own issuer and database),
/// a public client registered there, one user, and the protected upstream.
struct Upstream {
    db: TestDb,
    issuer: String,
    resource: String,
    client_id: String,
    user: Uuid,
    seen: Arc<Seen>,
    _as: TestServer,
    _protected: TestServer,
    http: reqwest::Client,
}

impl Upstream {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let as_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let issuer = format!("http://127.0.0.1:{}", as_listener.local_addr().expect("addr").port());
        let protected_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let resource = format!("http://127.0.0.1:{}/files", protected_listener.local_addr().expect("addr").port());
        let mut settings = testkit::settings(&db);
        settings.issuer = server::config::Issuer::parse(&issuer).expect("issuer");
        settings.resources = vec![ResourceSettings {
            resource: resource.clone(),
            name: "Files".into(),
            scopes: vec!["files".into()],
            documentation: None,
            accept_machine_tokens: false,
        }];
        let ctx = testkit::context_with(&db, &settings);
        let app = token::app(ctx, (&settings).into()).await.expect("the upstream AS builds");
        let authorization_server = testkit::spawn_app_on(as_listener, &app, Some(db.pool()));
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let jwks: JwkSet =
            http.get(format!("{issuer}/oauth2/jwks")).send().await.expect("jwks").json().await.expect("jwks json");
        let seen = Arc::new(Seen::default());
        let protected = spawn_protected(protected_listener, Arc::clone(&seen), jwks, &issuer, &resource);

        let metadata = ClientMetadata {
            redirect_uris: vec![RedirectUri::parse(CALLBACK).expect("redirect")],
            token_endpoint_auth_method: AuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            response_types: vec!["code".into()],
            application_type: ApplicationType::Native,
            client_name: Some("Sallyport at the upstream".into()),
            client_uri: None,
            logo_uri: None,
            tos_uri: None,
            policy_uri: None,
            contacts: vec![],
            scope: Scopes::parse("files").expect("scope"),
            jwks_uri: None,
            jwks: None,
            software_id: None,
            software_version: None,
        };
        let client_id = format!("sallyport-{}", Uuid::new_v4().simple());
        let mut conn = db.conn().await;
        let row = store::clients::ClientRow::new(client_id.clone(), ClientSource::Admin, &metadata, Utc::now());
        store::clients::insert(&mut conn, &row).await.expect("client");
        let user = store::users::UserRow::new("upstream-alice", "$argon2id$x".into(), Utc::now());
        store::users::insert(&mut conn, &user).await.expect("user");
        drop(conn);
        Self {
            db,
            issuer,
            resource,
            client_id,
            user: user.id,
            seen,
            _as: authorization_server,
            _protected: protected,
            http,
        }
    }

    /// A real token response of the upstream AS: an authorization code (inserted as its
    /// authorize service would) redeemed with PKCE at its token endpoint.
    async fn tokens(&self) -> Value {
        let code = PlainSecret::generate(SecretKind::AuthorizationCode);
        let now = Utc::now();
        let row = store::codes::CodeRow {
            code_hash: code.hash().to_vec(),
            grant_id: Uuid::now_v7(),
            client_id: self.client_id.clone(),
            user_id: self.user,
            redirect_uri: CALLBACK.into(),
            redirect_uri_sent: true,
            code_challenge: protocol::pkce::s256(VERIFIER),
            resources: vec![ResourceUri::parse(&self.resource).expect("resource")],
            scope: "files".into(),
            auth_time: now,
            created_at: now,
            expires_at: now + TimeDelta::seconds(60),
            used_at: None,
        };
        store::codes::insert(&mut *self.db.conn().await, row).await.expect("code");
        let res = self
            .http
            .post(format!("{}/oauth2/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("redirect_uri", CALLBACK),
                ("client_id", &self.client_id),
                ("code_verifier", VERIFIER),
                ("resource", &self.resource),
            ])
            .send()
            .await
            .expect("redeem");
        assert_eq!(res.status(), 200);
        let tokens: Value = res.json().await.expect("json");
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        tokens
    }

    /// Refresh tokens the upstream AS has issued (one more per refresh: they rotate).
    async fn refresh_tokens_issued(&self) -> i64 {
        count(&mut *self.db.conn().await, "refresh_tokens").await
    }

    /// RFC 7009 at the upstream AS, as a user revoking Sallyport's access there would.
    async fn revoke(&self, token: &str) {
        let res = self
            .http
            .post(format!("{}/oauth2/revoke", self.issuer))
            .form(&[("token", token), ("client_id", self.client_id.as_str())])
            .send()
            .await
            .expect("revoke");
        assert_eq!(res.status(), 200);
    }
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result(conn).await.expect("count");
    n.n
}

/// A resource server of the upstream AS: a valid token of that issuer for its resource, or 401.
fn spawn_protected(listener: TcpListener, seen: Arc<Seen>, jwks: JwkSet, issuer: &str, resource: &str) -> TestServer {
    let expect = Arc::new((jwks, issuer.to_owned(), resource.to_owned()));
    testkit::spawn_on(listener, None, move |cfg| {
        let (seen, expect) = (Arc::clone(&seen), Arc::clone(&expect));
        cfg.service(web::scope("").default_service(web::to(move |req: HttpRequest, mut body: web::Payload| {
            let (seen, expect) = (Arc::clone(&seen), Arc::clone(&expect));
            async move {
                let mut bytes = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    bytes.extend_from_slice(&chunk);
                }
                let authorization =
                    req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                seen.authorizations.lock().expect("lock").push(authorization.clone());
                let token = authorization.strip_prefix("Bearer ").unwrap_or("");
                if seen.refused.lock().expect("lock").iter().any(|t| t == token) {
                    return HttpResponse::Unauthorized().insert_header(("www-authenticate", "Bearer")).finish();
                }
                let Some(claims) = verify(token, &expect.0, &expect.1, &expect.2) else {
                    return HttpResponse::Unauthorized().insert_header(("www-authenticate", "Bearer")).finish();
                };
                let body = String::from_utf8_lossy(&bytes).into_owned();
                seen.bodies.lock().expect("lock").push(body.clone());
                let id = serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("id").cloned());
                HttpResponse::Ok().json(json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "result": {"sub": claims["sub"], "path": req.path(), "body": body},
                }))
            }
        })));
    })
}

fn verify(token: &str, jwks: &JwkSet, issuer: &str, resource: &str) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref()?)?).ok()?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[resource]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).ok().map(|t| t.claims)
}

fn oauth_route(prefix: &str, gw: &str, upstream: &Upstream, mcp: bool) -> RouteSettings {
    RouteSettings {
        prefix: prefix.into(),
        upstream: http_url(&upstream.resource),
        resource: Some(format!("{gw}{prefix}")),
        scopes: vec!["mcp".into()],
        method_scopes: Default::default(),
        auth: true,
        allowed_origins: vec![],
        allow_form_token: false,
        allow_query_token: false,
        mcp,
        tools: Default::default(),
        tool_scopes: Default::default(),
        upstream_auth: UpstreamAuth::OAuth2,
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: Some(UpstreamOAuthSettings {
            authorization_endpoint: Some(http_url(&format!("{}/oauth2/authorize", upstream.issuer))),
            token_endpoint: Some(http_url(&format!("{}/oauth2/token", upstream.issuer))),
            revocation_endpoint: Some(http_url(&format!("{}/oauth2/revoke", upstream.issuer))),
            client_id: Some(upstream.client_id.clone()),
            scopes: vec!["files".into()],
            resource: Some(upstream.resource.clone()),
            // the test's authorization server is on loopback
            allow_private_hosts: true,
            ..Default::default()
        }),
    }
}

/// The gateway with `/files` (plain) and `/files-mcp` (MCP) in front of the protected upstream.
async fn stack(upstream: &Upstream) -> Stack {
    Stack::start_with(|settings, urls| {
        for (prefix, mcp) in
            [("/files", false), ("/files-mcp", true), ("/files-down", false), ("/files-guarded", false)]
        {
            let mut route = oauth_route(prefix, &urls.gateway, upstream, mcp);
            if prefix == "/files-guarded" {
                // the same loopback authorization server, on a route that does not allow private hosts
                route.upstream_oauth.as_mut().expect("oauth").allow_private_hosts = false;
            }
            if prefix == "/files-down" {
                // an upstream AS that does not answer (nothing listens on the discard port)
                let oauth = route.upstream_oauth.as_mut().expect("oauth");
                oauth.token_endpoint = Some(http_url("http://127.0.0.1:9/oauth2/token"));
            }
            settings.gateway.routes.push(route);
            settings.resources.push(ResourceSettings {
                resource: format!("{}{prefix}", urls.gateway),
                name: prefix.into(),
                scopes: vec!["mcp".into()],
                documentation: None,
                // to show that such a token passes the bearer check and is then refused here
                accept_machine_tokens: true,
            });
        }
    })
    .await
}

/// A user of the gateway's side (the upstream_connections row refers to it).
async fn user(s: &Stack) -> Uuid {
    let row = store::users::UserRow::new(&format!("u{}", Uuid::new_v4().simple()), "$argon2id$x".into(), Utc::now());
    store::users::insert(&mut s.pool().get().await.expect("conn"), &row).await.expect("user");
    row.id
}

/// Stores the user's connection as the connect flow's callback would; `expired` backdates it.
async fn connect(s: &Stack, user: Uuid, route: &str, tokens: &Value, upstream: &Upstream, expired: bool) {
    let key = s.settings.keys.encryption_key.as_ref().expect("a key");
    let sealed = UpstreamTokens {
        access_token: SecretString::from(tokens["access_token"].as_str().expect("at")),
        refresh_token: tokens["refresh_token"].as_str().map(SecretString::from),
    };
    let now = Utc::now();
    let expires_at = if expired {
        now - TimeDelta::seconds(60)
    } else {
        now + TimeDelta::seconds(tokens["expires_in"].as_i64().expect("expires_in"))
    };
    let row = UpstreamConnectionRow {
        user_id: user,
        route: route.into(),
        issuer: upstream.issuer.clone(),
        tokens_enc: connections::seal_tokens(key.bytes(), user, route, &sealed).expect("seal"),
        has_refresh_token: sealed.refresh_token.is_some(),
        scope: Some("files".into()),
        expires_at: Some(expires_at),
        generation: 0,
        created_at: now,
        updated_at: now,
    };
    connections::upsert(&mut s.pool().get().await.expect("conn"), &row).await.expect("connect");
}

fn sallyport_token(s: &Stack, user: Uuid, prefix: &str) -> String {
    s.token_with(|c| {
        c.sub = user.to_string();
        c.aud = Audience::One(s.url(prefix));
    })
}

async fn post_json(s: &Stack, url: &str, token: &str, body: &Value) -> reqwest::Response {
    s.http.post(url).bearer_auth(token).json(body).send().await.expect("request")
}

fn tool_call(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "read", "arguments": {}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connected_user_reaches_the_upstream_with_their_upstream_token_only() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    let tokens = up.tokens().await;
    connect(&s, alice, "/files", &tokens, &up, false).await;
    let token = sallyport_token(&s, alice, "/files");

    let res = post_json(&s, &s.url("/files/doc?x=1"), &token, &json!({"q": 1})).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["result"]["sub"], up.user.to_string(), "the upstream AS's user");
    assert_eq!(answer["result"]["path"], "/files/doc");
    let at = tokens["access_token"].as_str().expect("at");
    let seen = up.seen.authorizations.lock().expect("lock").clone();
    assert_eq!(seen, [format!("Bearer {at}")], "the upstream token, and only it");
    assert!(!seen.iter().any(|a| a.contains(&token)), "the Sallyport token never reaches the upstream");
    assert_eq!(up.refresh_tokens_issued().await, 1, "a fresh token is not refreshed");

    // a second request comes from the cache: the same token, no refresh
    assert_eq!(s.get_with("/files/doc", &token).await.status(), 200);
    assert_eq!(up.seen.authorizations.lock().expect("lock").len(), 2);
    assert_eq!(up.refresh_tokens_issued().await, 1);

    // a token without a user cannot use a per-user upstream: 403, nothing forwarded
    let machine = s.token_with(|c| {
        c.sub = c.client_id.clone();
        c.aud = Audience::One(s.url("/files"));
    });
    let res = s.get_with("/files/doc", &machine).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "access_denied");
    assert_eq!(up.seen.authorizations.lock().expect("lock").len(), 2, "not forwarded");

    // a leaked dump of the table reveals no token
    let mut conn = s.pool().get().await.expect("conn");
    let dump: Vec<String> = diesel::sql_query("SELECT t::text AS line FROM upstream_connections t")
        .load::<Line>(&mut conn)
        .await
        .expect("dump")
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(dump.len(), 1);
    for secret in [at, tokens["refresh_token"].as_str().expect("rt")] {
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump[0].contains(secret) && !dump[0].contains(&hex), "no token in {}", dump[0]);
        // nor any recognisable piece of it (a JWT's header and payload are base64 of JSON)
        assert!(!dump[0].contains(&secret[..16]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refreshed_exactly_once_for_100_concurrent_requests_on_two_gateways() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let replica = s.replica().await;
    let alice = user(&s).await;
    let tokens = up.tokens().await;
    connect(&s, alice, "/files", &tokens, &up, true).await;
    let token = sallyport_token(&s, alice, "/files");
    assert_eq!(up.refresh_tokens_issued().await, 1);

    let requests = (0..100).map(|i| {
        let url = if i % 2 == 0 { s.url("/files/doc") } else { replica.url("/files/doc") };
        let (http, token) = (s.http.clone(), token.clone());
        async move { http.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(200))), "{statuses:?}");
    assert_eq!(up.refresh_tokens_issued().await, 2, "one refresh at the upstream AS, for both gateways");

    let row = connections::find(&mut s.pool().get().await.expect("conn"), alice, "/files")
        .await
        .expect("find")
        .expect("still connected");
    assert_eq!(row.generation, 1);
    assert!(row.expires_at.is_some_and(|at| at > Utc::now()), "the new expiry is stored");
    let key = s.settings.keys.encryption_key.as_ref().expect("key");
    let stored = connections::unseal_tokens(key.bytes(), alice, "/files", &row.tokens_enc).expect("unseal");
    assert_ne!(stored.refresh_token.as_ref().map(SecretString::expose), tokens["refresh_token"].as_str(), "rotated");
    let fresh = format!("Bearer {}", stored.access_token.expose());
    let seen = up.seen.authorizations.lock().expect("lock").clone();
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|a| *a == fresh), "every request carried the refreshed token");
    let metrics = |url: String| {
        let http = s.http.clone();
        async move { http.get(url).send().await.expect("metrics").text().await.expect("text") }
    };
    let (one, two) = (metrics(s.url("/metrics")).await, metrics(replica.url("/metrics")).await);
    // one gateway refreshed; the other took its tokens (`reused`, when it was waiting for the
    // row) or found them already stored
    let refreshed = r#"sallyport_gateway_upstream_token_refreshes_total{outcome="refreshed"} "#;
    let counted = |text: &str| {
        text.lines().find_map(|l| l.strip_prefix(refreshed)).map_or(0.0, |n| n.trim().parse::<f64>().unwrap_or(-1.0))
    };
    assert_eq!(counted(&one) + counted(&two), 1.0, "one refresh counted:\n{one}\n{two}");
    for text in [&one, &two] {
        let ours = text.lines().filter(|l| l.starts_with("sallyport_gateway_upstream_token_refreshes_total"));
        assert!(ours.clone().all(|l| l.contains("refreshed") || l.contains("reused")), "{text}");
    }

    // the old refresh token was rotated away at the upstream: using it again is refused there
    let res = up
        .http
        .post(format!("{}/oauth2/token", up.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().expect("rt")),
            ("client_id", &up.client_id),
        ])
        .send()
        .await
        .expect("reuse");
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_401_refreshes_once_and_replays_the_kept_body() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    let tokens = up.tokens().await;
    connect(&s, alice, "/files-mcp", &tokens, &up, false).await;
    let token = sallyport_token(&s, alice, "/files-mcp");
    let at = tokens["access_token"].as_str().expect("at").to_owned();
    up.seen.refused.lock().expect("lock").push(at.clone());

    let res = post_json(&s, &s.url("/files-mcp"), &token, &tool_call(7)).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["sub"], up.user.to_string());
    let seen = up.seen.authorizations.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "refused once, replayed once");
    assert_eq!(seen[0], format!("Bearer {at}"));
    assert_ne!(seen[1], seen[0], "replayed with the refreshed token");
    assert_eq!(up.seen.bodies.lock().expect("lock").clone(), [tool_call(7).to_string()], "the body, byte for byte");
    assert_eq!(up.refresh_tokens_issued().await, 2);

    // the refreshed token is cached: the next call needs no refresh
    assert_eq!(post_json(&s, &s.url("/files-mcp"), &token, &tool_call(8)).await.status(), 200);
    assert_eq!(up.refresh_tokens_issued().await, 2);

    // a body beyond 1 MiB streams through once: its 401 is the upstream's, with no refresh
    let alice_files = sallyport_token(&s, alice, "/files");
    connect(&s, alice, "/files", &up.tokens().await, &up, false).await;
    let stored =
        connections::find(&mut s.pool().get().await.expect("conn"), alice, "/files").await.expect("find").expect("row");
    let key = s.settings.keys.encryption_key.as_ref().expect("key");
    let at = connections::unseal_tokens(key.bytes(), alice, "/files", &stored.tokens_enc).expect("unseal");
    up.seen.refused.lock().expect("lock").push(at.access_token.expose().to_owned());
    let issued = up.refresh_tokens_issued().await;
    let before = up.seen.authorizations.lock().expect("lock").len();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let res = s.http.post(s.url("/files/upload")).bearer_auth(&alice_files).body(big).send().await.expect("post");
    assert_eq!(res.status(), 401);
    assert_eq!(up.seen.authorizations.lock().expect("lock").len(), before + 1, "sent once");
    assert_eq!(up.refresh_tokens_issued().await, issued);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_upstream_authorization_server_is_a_502_and_audited() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    connect(&s, alice, "/files-down", &up.tokens().await, &up, true).await;
    let res = s.get_with("/files-down/doc", &sallyport_token(&s, alice, "/files-down")).await;
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(up.seen.authorizations.lock().expect("lock").is_empty(), "nothing forwarded without a token");
    let mut conn = s.pool().get().await.expect("conn");
    assert!(
        connections::find(&mut conn, alice, "/files-down").await.expect("find").is_some(),
        "kept: not the user's fault"
    );
    let events = store::audit::for_user(&mut conn, alice).await.expect("audit");
    let failed = events.iter().find(|e| e.kind == "upstream.refresh_failed").expect("audited");
    assert_eq!(failed.detail["reason"], "unreachable");
    assert_eq!(failed.detail["route"], "/files-down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_on_a_private_address_is_not_called_unless_the_route_allows_it() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    connect(&s, alice, "/files-guarded", &up.tokens().await, &up, true).await;
    let issued = up.refresh_tokens_issued().await;
    let res = s.get_with("/files-guarded/doc", &sallyport_token(&s, alice, "/files-guarded")).await;
    assert_eq!(res.status(), 502);
    assert_eq!(up.refresh_tokens_issued().await, issued, "the SSRF policy kept the refresh from leaving");
    assert!(up.seen.authorizations.lock().expect("lock").is_empty());
    let mut conn = s.pool().get().await.expect("conn");
    let events = store::audit::for_user(&mut conn, alice).await.expect("audit");
    let failed = events.iter().find(|e| e.kind == "upstream.refresh_failed").expect("audited");
    assert_eq!(failed.detail["reason"], "endpoint_not_allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_is_asked_to_connect_when_not_connected_or_revoked() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    let token = sallyport_token(&s, alice, "/files-mcp");
    let connect_uri = format!("{}/oauth2/connections/connect?route=%2Ffiles-mcp", s.url(""));

    // not connected: an MCP request gets the URL elicitation (MCP 2025-11-25, -32042)
    let res = post_json(&s, &s.url("/files-mcp"), &token, &tool_call(3)).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("www-authenticate").is_none(), "the Sallyport token is fine");
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["error"]["code"], -32042);
    assert_eq!(answer["error"]["message"], "URL elicitation required");
    let elicitations = answer["error"]["data"]["elicitations"].as_array().expect("elicitations");
    assert_eq!(elicitations.len(), 1);
    assert_eq!(elicitations[0]["mode"], "url");
    assert_eq!(elicitations[0]["url"], connect_uri.as_str());
    assert!(Uuid::parse_str(elicitations[0]["elicitationId"].as_str().expect("id")).is_ok());
    assert!(elicitations[0]["message"].as_str().is_some_and(|m| m.contains("/files-mcp")));
    assert!(up.seen.authorizations.lock().expect("lock").is_empty(), "nothing forwarded");

    // connected with a refresh token the upstream has since revoked: the connection ends
    let tokens = up.tokens().await;
    up.revoke(tokens["refresh_token"].as_str().expect("rt")).await;
    connect(&s, alice, "/files-mcp", &tokens, &up, true).await;
    let answer: Value = post_json(&s, &s.url("/files-mcp"), &token, &tool_call(4)).await.json().await.expect("json");
    assert_eq!(answer["error"]["code"], -32042, "{answer}");
    assert_eq!(answer["id"], 4);
    let mut conn = s.pool().get().await.expect("conn");
    assert!(connections::find(&mut conn, alice, "/files-mcp").await.expect("find").is_none(), "deleted");
    let events = store::audit::for_user(&mut conn, alice).await.expect("audit");
    let revoked = events.iter().find(|e| e.kind == "upstream.revoked").expect("audited");
    assert_eq!(revoked.detail["route"], "/files-mcp");
    assert_eq!(revoked.detail["reason"], "invalid_grant");
    assert!(!revoked.detail.to_string().contains(tokens["refresh_token"].as_str().expect("rt")));

    // a plain route: 403 with the connect page
    let plain = sallyport_token(&s, alice, "/files");
    let tokens = up.tokens().await;
    up.revoke(tokens["refresh_token"].as_str().expect("rt")).await;
    connect(&s, alice, "/files", &tokens, &up, true).await;
    let res = s.get_with("/files/doc", &plain).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "upstream_authorization_required");
    assert_eq!(body["connect_uri"], format!("{}/oauth2/connections/connect?route=%2Ffiles", s.url("")));
    assert!(connections::find(&mut conn, alice, "/files").await.expect("find").is_none());

    // the user connects again: the client's retry succeeds with the same Sallyport token
    connect(&s, alice, "/files-mcp", &up.tokens().await, &up, false).await;
    let answer: Value = post_json(&s, &s.url("/files-mcp"), &token, &tool_call(5)).await.json().await.expect("json");
    assert_eq!(answer["result"]["sub"], up.user.to_string(), "{answer}");
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth2_route_of_the_table_is_served_with_its_explicit_settings() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    let now = Utc::now();
    let explicit = protocol::upstream_auth::UpstreamOAuth {
        token_endpoint: Some(format!("{}/oauth2/token", up.issuer)),
        client_id: Some(up.client_id.clone()),
        resource: Some(up.resource.clone()),
        allow_private_hosts: true,
        ..Default::default()
    };
    let row = store::gateway_routes::GatewayRouteRow {
        prefix: "/db-files".into(),
        upstream: up.resource.clone(),
        resource: Some(s.url("/files")),
        scopes: vec![Some("mcp".into())],
        auth: true,
        mcp: false,
        allowed_origins: vec![],
        upstream_auth: "oauth2".into(),
        upstream_header_names: vec![],
        upstream_secret_enc: None,
        created_at: now,
        updated_at: now,
        upstream_oauth: Some(serde_json::to_value(&explicit).expect("json")),
    };
    store::gateway_routes::upsert(&mut s.pool().get().await.expect("conn"), &row).await.expect("route");
    connect(&s, alice, "/db-files", &up.tokens().await, &up, true).await;
    let token = sallyport_token(&s, alice, "/files");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let res = loop {
        let res = s.get_with("/db-files/doc", &token).await;
        if res.status() != 404 || std::time::Instant::now() > deadline {
            break res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(res.status(), 200, "served within the reload");
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["result"]["sub"], up.user.to_string());
    assert_eq!(answer["result"]["path"], "/files/doc");
    assert_eq!(up.refresh_tokens_issued().await, 2, "expired: refreshed with the row's token endpoint");

    // not connected on this route: the connect page names the table's prefix
    let bob = user(&s).await;
    let res = s.get_with("/db-files/doc", &sallyport_token(&s, bob, "/files")).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["connect_uri"], format!("{}/oauth2/connections/connect?route=%2Fdb-files", s.url("")));
}

/// Whether the gateway's connection listening for changed rows is up (`LISTEN` is the last
/// statement it sent).
async fn gateway_listens(s: &Stack) -> bool {
    let mut conn = s.pool().get().await.expect("conn");
    let rows: Vec<Line> = diesel::sql_query(
        "SELECT query AS line FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
    )
    .load(&mut conn)
    .await
    .expect("pg_stat_activity");
    rows.iter().any(|r| r.line.contains("upstream_connections"))
}

/// Sends `request` until `done` says its answer is the one awaited, at most 3 s (an entry cached
/// for a row that changed would otherwise be used for 30 s): the time it took.
async fn until<F, D>(request: F, done: D) -> std::time::Duration
where
    F: AsyncFn() -> reqwest::Response,
    D: Fn(&reqwest::Response) -> bool,
{
    let start = std::time::Instant::now();
    loop {
        let res = request().await;
        if done(&res) {
            return start.elapsed();
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(3), "still {} after 3 s", res.status());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disconnect_or_a_reconnect_is_seen_by_the_gateway_at_once_not_after_its_cache() {
    let up = Upstream::start().await;
    let s = stack(&up).await;
    let alice = user(&s).await;
    let token = sallyport_token(&s, alice, "/files");
    assert!(!gateway_listens(&s).await, "no connection is held before an oauth2 token is cached");

    let first = up.tokens().await;
    connect(&s, alice, "/files", &first, &up, false).await;
    assert_eq!(s.get_with("/files/doc", &token).await.status(), 200, "cached now");
    for _ in 0..150 {
        if gateway_listens(&s).await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gateway_listens(&s).await, "the gateway listens once it caches a token");
    assert_eq!(s.get_with("/files/doc", &token).await.status(), 200);

    // a reconnect with other tokens (the connect flow's upsert): the next requests carry the new
    // one, though the old one is cached and still good at the upstream
    let second = up.tokens().await;
    connect(&s, alice, "/files", &second, &up, false).await;
    let new = format!("Bearer {}", second["access_token"].as_str().expect("at"));
    let seen = Arc::clone(&up.seen);
    let took = until(
        async || s.get_with("/files/doc", &token).await,
        |_| seen.authorizations.lock().expect("lock").last() == Some(&new),
    )
    .await;
    assert!(took < std::time::Duration::from_secs(1), "the reconnect seen after {took:?}");

    // Disconnect (`/oauth2/connections` and `sallyport connection revoke` delete the row): the
    // upstream still takes the token, yet the very next requests are asked to connect
    let mut conn = s.pool().get().await.expect("conn");
    connections::delete(&mut conn, alice, "/files").await.expect("delete").expect("a row");
    let took = until(async || s.get_with("/files/doc", &token).await, |res| res.status() == 403).await;
    assert!(took < std::time::Duration::from_secs(1), "the Disconnect seen after {took:?}");
    let body: Value = s.get_with("/files/doc", &token).await.json().await.expect("json");
    assert_eq!(body["error"], "upstream_authorization_required");
}
