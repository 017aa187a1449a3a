//! Issue 20, the connect side: a user of one Sallyport connects their account at an `oauth2`
//! route's upstream, whose authorization server is real and no one mocked: a second Sallyport
//! stack (its own database, issuer, demo user and demo MCP server), once as it comes (Sallyport
//! presents its client ID metadata document) and once with documents off (Sallyport registers
//! dynamically, RFC 7591); and node-oidc-provider (tests/oidc-provider) with a client configured
//! on the route. A cookie-keeping HTTP client plays the browser and every hop is checked: sign-in
//! at `/oauth2/connections`, Connect, login and consent at the upstream, the callback; the tokens
//! sealed (a dump of the table shows none), usable at the upstream; Disconnect revokes them there
//! (its introspection says inactive). Refusals: the upstream denied, a replayed `state`, a callback
//! in another session.

use std::net::TcpListener;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::{Value, json};
use testkit::{TestDb, forms};

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::op::{Op, OpOptions};
use support::upstream::{DOWN_PASSWORD, UP_PASSWORD, audit_kinds, browser, demo_user, introspect};
use support::{absolute, location};

const ROUTE: &str = "/linear";

/// The upstream: a whole Sallyport, documents on or off.
async fn upstream(db: &TestDb, documents: bool) -> System {
    support::upstream::start(db, documents, protocol::Clock::system(), |_| {}).await
}

/// The gateway users' side, with the `oauth2` route (a database route, as `sallyport route add
/// --upstream-auth oauth2` stores it).
async fn gateway_side(db: &TestDb, upstream: &str, oauth: Value, secret: Option<&str>) -> System {
    let system = support::start(db, DOWN_PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    let kek = system.settings.keys.encryption_key.as_ref().expect("kek").bytes();
    let now = chrono::Utc::now();
    let row = store::gateway_routes::GatewayRouteRow {
        prefix: ROUTE.into(),
        upstream: upstream.into(),
        // the demo resource, so a token of the code flow `support` drives passes the bearer check
        resource: Some(system.mcp_url.clone()),
        scopes: vec![],
        auth: true,
        mcp: true,
        allowed_origins: vec![],
        upstream_auth: "oauth2".into(),
        upstream_header_names: vec![],
        upstream_secret_enc: secret
            .map(|s| server::upstream_oauth::seal_client_secret(kek, ROUTE, &s.into()).expect("seal")),
        created_at: now,
        updated_at: now,
        upstream_oauth: Some(oauth),
    };
    store::gateway_routes::upsert(&mut system.pool.get().await.expect("conn"), &row).await.expect("route");
    system
}

fn connect_url(system: &System) -> String {
    format!("{}/oauth2/connections/connect?route=%2Flinear", system.issuer)
}

fn callback_prefix(system: &System) -> String {
    format!("{}/oauth2/connections/callback", system.issuer)
}

/// Signs in on the connections pages' own form (shown for `url`), then follows to where it leads.
async fn sign_in_at(b: &reqwest::Client, system: &System, url: &str) -> reqwest::Response {
    let res = b.get(url).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "{url}: the sign-in form");
    let html = res.text().await.expect("html");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("password")).expect("a sign-in form");
    let action = absolute(url, &form.action);
    assert!(action.ends_with("/oauth2/connections/login"), "{action}");
    let fields = form.submission(&[("username", system.demo_user.as_str()), ("password", DOWN_PASSWORD)], None);
    let res = b.post(&action).form(&fields).send().await.expect("sign in");
    let next = if url.contains("/connect?") {
        // signed in for a Connect: a page that goes on by itself (a meta refresh, and a link),
        // not a 303 a browser would hold to the sign-in page's CSP form-action at the upstream
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.expect("html");
        let at = html.find("\" id=\"continue\"").unwrap_or_else(|| panic!("a Continue link: {html}"));
        let raw = &html[html[..at].rfind("href=\"").expect("its href") + 6..at];
        assert_eq!(forms::decode_entities(raw), url, "back to the Connect");
        assert!(html.contains(&format!("<meta http-equiv=\"refresh\" content=\"0; url={raw}\">")), "{html}");
        url.to_owned()
    } else {
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        absolute(&action, &location(&res))
    };
    b.get(&next).send().await.expect("after sign-in")
}

/// From the redirect to the upstream AS on: its login (Sallyport's or node-oidc-provider's),
/// its consent (`decision` at a Sallyport), until it sends the browser to `callback`: that URL.
async fn at_upstream(
    b: &reqwest::Client,
    mut url: String,
    user: &str,
    password: &str,
    decision: &str,
    callback: &str,
) -> String {
    for _ in 0..20 {
        let res = b.get(&url).send().await.expect("GET at the upstream");
        if res.status().is_redirection() {
            url = absolute(&url, &location(&res));
            if url.starts_with(callback) {
                return url;
            }
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let html = res.text().await.expect("html");
        let forms = forms::parse(&html);
        let (form, fields) = if let Some(f) = forms.iter().find(|f| f.has_input("username")) {
            (f, f.submission(&[("username", user), ("password", password)], None))
        } else if let Some(f) = forms.iter().find(|f| f.has_input("login")) {
            (f, f.submission(&[("login", user), ("password", password)], None))
        } else if let Some(f) = forms.iter().find(|f| f.has_button("decision", decision)) {
            (f, f.submission(&[], Some(("decision", decision))))
        } else {
            let f = <[forms::Form]>::first(&forms).unwrap_or_else(|| panic!("a form at {url}: {html}"));
            (f, f.submission(&[], None))
        };
        let action = absolute(&url, &form.action);
        let res = b.post(&action).form(&fields).send().await.expect("POST at the upstream");
        assert!(res.status().is_redirection(), "{action}: {}", res.status());
        url = absolute(&action, &location(&res));
        if url.starts_with(callback) {
            return url;
        }
    }
    panic!("the upstream never sent the browser back")
}

/// Connect in browser `b` (signed in already) up to the callback URL, not yet visited.
async fn connect_to_callback(b: &reqwest::Client, down: &System, user: &str, password: &str, decision: &str) -> String {
    let res = b.get(connect_url(down)).send().await.expect("connect");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "connect redirects to the upstream");
    at_upstream(b, location(&res), user, password, decision, &callback_prefix(down)).await
}

#[derive(QueryableByName)]
struct Dump {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

/// `upstream_connections` as a dump shows it (bytea as hex).
async fn dump(system: &System) -> String {
    let mut conn = system.pool.get().await.expect("conn");
    let rows: Vec<Dump> = diesel::sql_query("SELECT row_to_json(c)::text AS t FROM upstream_connections c")
        .load(&mut conn)
        .await
        .expect("dump");
    rows.into_iter().map(|r| r.t).collect::<Vec<_>>().join("\n")
}

/// The whole Connect against a second Sallyport; `documents` picks the client identity.
const CALLBACK: &str = "http://127.0.0.1:47127/callback";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-upstream-0123";

/// The gateway side's demo user's Sallyport access token, from a whole code flow.
async fn sallyport_token(down: &System) -> String {
    let support::AtSignIn { client_id, browser, action, form, .. } =
        support::public_client_at_sign_in(down, "upstream-connect", CALLBACK, VERIFIER).await;
    let fields = form.submission(&[("username", "demo"), ("password", DOWN_PASSWORD)], None);
    let code = support::sign_in_and_allow(&browser, &action, &fields, CALLBACK).await;
    let tokens = support::redeem(down, &client_id, &code, CALLBACK, VERIFIER).await;
    tokens["access_token"].as_str().expect("access token").to_owned()
}

/// An MCP `initialize` through the gateway side's `oauth2` route: the JSON-RPC answer's text.
async fn initialize(down: &System, token: &str) -> (StatusCode, String) {
    let res = support::http()
        .post(format!("{}{ROUTE}", down.issuer))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {"url": {}}},
                       "clientInfo": {"name": "upstream-connect", "version": "1"}},
        }))
        .send()
        .await
        .expect("initialize");
    (res.status(), res.text().await.expect("body"))
}

async fn against_sallyport(documents: bool) {
    let (db_up, db_down) = (TestDb::new().await, TestDb::new().await);
    let up = upstream(&db_up, documents).await;
    let down = gateway_side(&db_down, &up.mcp_url, json!({ "allow_private_hosts": true }), None).await;
    let callback = callback_prefix(&down);
    let b = browser();

    // an MCP client with a Sallyport token, not connected yet: the URL elicitation names the
    // connect page (MCP 2025-11-25, URL elicitation required), and nothing reaches the upstream
    let token = sallyport_token(&down).await;
    // the route is a row of gateway_routes: served after the gateway's next reload (2 s)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = initialize(&down, &token).await;
        if status != StatusCode::NOT_FOUND || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!(answer["error"]["code"], -32042, "{answer}");
    assert_eq!(answer["error"]["data"]["elicitations"][0]["mode"], "url");
    assert_eq!(answer["error"]["data"]["elicitations"][0]["url"], connect_url(&down).as_str());

    // signed out: the page signs in first and comes back to the Connect it was asked for
    let res = sign_in_at(&b, &down, &connect_url(&down)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the Connect starts right after signing in");
    let to_upstream = location(&res);
    assert!(to_upstream.starts_with(&format!("{}/oauth2/authorize?", up.issuer)), "{to_upstream}");
    let q: std::collections::HashMap<_, _> =
        url::Url::parse(&to_upstream).expect("url").query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], up.mcp_url, "RFC 8707: the upstream's resource, from its RFC 9728 metadata");
    assert_eq!(q["redirect_uri"], callback);
    assert_eq!(q["scope"], "mcp", "the upstream's scopes_supported");
    let client_id = q["client_id"].clone();
    let mut conn = down.pool.get().await.expect("conn");
    let registered =
        store::upstream_clients::find(&mut conn, &up.issuer).await.expect("query").expect("a client at the upstream");
    drop(conn);
    if documents {
        assert_eq!(client_id, format!("{}/oauth2/upstream-client", down.issuer), "the client ID metadata document");
        assert_eq!(
            (registered.method.as_str(), registered.token_endpoint_auth_method.as_str()),
            ("metadata_document", "none")
        );
        let doc: Value = reqwest::get(&client_id).await.expect("document").json().await.expect("json");
        assert_eq!(doc["client_id"], client_id.as_str());
        assert_eq!(doc["redirect_uris"], json!([callback]));
    } else {
        assert_eq!(registered.method, "dynamic", "registered at the upstream (RFC 7591)");
        assert_eq!(registered.client_id, client_id);
        assert_eq!(registered.token_endpoint_auth_method, "client_secret_basic");
        assert!(registered.client_secret_enc.is_some(), "the secret is kept, sealed");
    }

    // the upstream's user declines: nothing connected, a page that says so and how to retry
    let back = at_upstream(&b, to_upstream, &up.demo_user, UP_PASSWORD, "deny", &callback).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let res = b.get(&back).send().await.expect("callback");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.expect("page");
    assert!(page.contains("declined") && page.contains("id=\"try-again\""), "{page}");

    // a callback in another browser (another session, or none): refused, and used up
    let back = connect_to_callback(&b, &down, &up.demo_user, UP_PASSWORD, "allow").await;
    let other = browser();
    let res = sign_in_at(&other, &down, &format!("{}/oauth2/connections", down.issuer)).await;
    assert_eq!(res.status(), StatusCode::OK, "the connections page");
    let res = other.get(&back).send().await.expect("callback in another session");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.expect("page").contains("another sign-in"));
    let res = b.get(&back).send().await.expect("the same state again, in the right session");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "single use");

    // Connect, allowed: the tokens stored for (user, route), sealed
    let back = connect_to_callback(&b, &down, &up.demo_user, UP_PASSWORD, "allow").await;
    let q: std::collections::HashMap<_, _> = url::Url::parse(&back).expect("url").query_pairs().into_owned().collect();
    assert_eq!(q.get("iss").map(String::as_str), Some(up.issuer.as_str()), "RFC 9207");
    let res = b.get(&back).send().await.expect("callback");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("page").contains("return to your MCP client"));
    let res = b.get(&back).send().await.expect("replayed");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a replayed state");
    assert!(res.text().await.expect("page").contains("already used"));

    let user = demo_user(&down).await;
    let mut conn = down.pool.get().await.expect("conn");
    let row = store::upstream_connections::find(&mut conn, user, ROUTE).await.expect("query").expect("connected");
    drop(conn);
    assert_eq!((row.issuer.as_str(), row.has_refresh_token), (up.issuer.as_str(), true));
    assert!(row.expires_at.is_some());
    let kek = down.settings.keys.encryption_key.as_ref().expect("kek").bytes();
    let tokens = store::upstream_connections::unseal_tokens(kek, user, ROUTE, &row.tokens_enc).expect("opens");
    let (access, refresh) =
        (tokens.access_token.expose().to_owned(), tokens.refresh_token.expect("rt").expose().to_owned());
    let dumped = dump(&down).await;
    for secret in [&access, &refresh] {
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dumped.contains(secret.as_str()) && !dumped.contains(&hex), "no token in a dump of the table");
    }
    assert!(introspect(&up, &access).await, "the upstream's token is live");

    // the client's retry, with the same Sallyport token: the gateway sends the upstream's token
    let (status, body) = initialize(&down, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("serverInfo") && !body.contains("-32042"), "the upstream answered: {body}");

    // the connections page shows it, with Disconnect
    let page = b.get(format!("{}/oauth2/connections", down.issuer)).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("connected") && html.contains(ROUTE), "{html}");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("route")).expect("the Disconnect form");
    let action = absolute(&down.issuer, &form.action);
    let res = b.post(&action).form(&form.submission(&[], None)).send().await.expect("disconnect");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mut conn = down.pool.get().await.expect("conn");
    assert!(store::upstream_connections::find(&mut conn, user, ROUTE).await.expect("query").is_none(), "deleted");
    drop(conn);
    assert!(!introspect(&up, &access).await, "revoked at the upstream (RFC 7009)");
    assert!(!introspect(&up, &refresh).await);

    // a forged Disconnect (no token) changes nothing
    let res = b.post(&action).form(&[("route", ROUTE)]).send().await.expect("forged");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let kinds = audit_kinds(&down).await;
    for want in [
        "upstream.connected",
        "upstream.disconnected",
        "upstream.connect_failed access_denied",
        "upstream.connect_failed session_mismatch",
    ] {
        assert!(kinds.iter().any(|k| k == want), "{want} missing in {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_at_a_sallyport_upstream_with_a_client_id_metadata_document() {
    against_sallyport(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_at_a_sallyport_upstream_with_dynamic_registration() {
    against_sallyport(false).await;
}

const OP_CLIENT: &str = "sallyport-gateway";
const OP_SECRET: &str = "a-client-secret-at-the-non-sallyport-upstream";

/// The test provider as the upstream's authorization server, revocation and introspection on.
fn start_op(port: u16, redirect_uri: &str) -> Op {
    Op::start(
        port,
        &OpOptions { client_id: OP_CLIENT, client_secret: OP_SECRET, redirect_uri, accounts: None, revocation: true },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_at_node_oidc_provider_with_a_configured_client() {
    let db = TestDb::new().await;
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let op_issuer = format!("http://127.0.0.1:{port}");
    let oauth = json!({
        "issuer": op_issuer,
        "client_id": OP_CLIENT,
        "scopes": ["openid"],
        "allow_private_hosts": true,
    });
    // the upstream MCP server's URL: its authorization server is configured, not discovered
    let down = gateway_side(&db, "http://127.0.0.1:9/mcp", oauth, Some(OP_SECRET)).await;
    let _op = start_op(port, &callback_prefix(&down));
    let b = browser();
    let res = sign_in_at(&b, &down, &connect_url(&down)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = at_upstream(&b, location(&res), "alice", "any", "allow", &callback_prefix(&down)).await;
    let q: std::collections::HashMap<_, _> = url::Url::parse(&back).expect("url").query_pairs().into_owned().collect();
    assert_eq!(q.get("iss").map(String::as_str), Some(op_issuer.as_str()), "RFC 9207 at node-oidc-provider");
    let res = b.get(&back).send().await.expect("callback");
    let status = res.status();
    assert_eq!(status, StatusCode::OK, "{back}");

    let user = demo_user(&down).await;
    let mut conn = down.pool.get().await.expect("conn");
    let row = store::upstream_connections::find(&mut conn, user, ROUTE).await.expect("query").expect("connected");
    assert_eq!(row.issuer, op_issuer);
    let client = store::upstream_clients::find(&mut conn, &op_issuer).await.expect("query").expect("metadata kept");
    assert_eq!((client.method.as_str(), client.client_id.as_str()), ("configured", OP_CLIENT));
    assert!(client.client_secret_enc.is_none(), "the configured secret stays in the route's sealed column");
    drop(conn);

    // a wrong `iss` (mix-up, RFC 9207): refused
    let back = connect_to_callback(&b, &down, "alice", "any", "allow").await;
    let forged = back.replace(&format!("iss={}", url_encode(&op_issuer)), "iss=http%3A%2F%2F127.0.0.1%3A1");
    assert_ne!(forged, back);
    let res = b.get(&forged).send().await.expect("callback");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("page").contains("wrong service"));

    // Disconnect from the page: deleted, and revoked at node-oidc-provider
    let html =
        b.get(format!("{}/oauth2/connections", down.issuer)).send().await.expect("page").text().await.expect("html");
    let form = forms::parse(&html).into_iter().find(|f| f.has_input("route")).expect("the Disconnect form");
    let res =
        b.post(absolute(&down.issuer, &form.action)).form(&form.submission(&[], None)).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mut conn = down.pool.get().await.expect("conn");
    assert!(store::upstream_connections::find(&mut conn, user, ROUTE).await.expect("query").is_none());
    let events = store::audit::recent(&mut conn, 20).await.expect("audit");
    let disconnected = events.iter().find(|e| e.kind == "upstream.disconnected").expect("audited");
    assert_eq!(disconnected.detail["revoked"], true, "{:?}", disconnected.detail);
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
