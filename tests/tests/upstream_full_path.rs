//! Issue 20, the full path, with nothing mocked: an MCP client built on the official Rust MCP SDK
//! (`rmcp`, its OAuth client) signs in to Sallyport once and uses the `oauth2` route of `sallyport
//! up`'s quick start (`/mcp-connected`, wired by `up::connected::with_route`) whose upstream is a
//! second Sallyport (its own database, issuer, demo user and demo MCP server). Headless Chromium
//! plays the person: it opens the URL of the elicitation, signs in at `/oauth2/connections`, logs
//! in and consents at the upstream, and lands on the page that says the account is connected.
//!
//! 1. The SDK's first request needs the upstream's token: the gateway answers the JSON-RPC error
//!    `-32042` (URL elicitation required, MCP 2025-11-25 "Elicitation"), which the SDK hands over as
//!    that error, not as a transport failure.
//! 2. After Connect in the browser, the same SDK client (its one Sallyport token) calls `echo`: it
//!    reaches the upstream with the upstream's token, and Sallyport issued no second code.
//! 3. The upstream's access token expires (the upstream's clock says so): the next call refreshes
//!    it at the upstream (a `refresh_token` grant: the refresh token rotated there) and succeeds.
//! 4. Disconnect in the browser: the same session's next `tools/call` elicits again; Connect again
//!    from that URL, and the session's retry succeeds.
//! 5. The upstream's user revokes the application at the upstream (its own `/oauth2/connections`,
//!    Revoke): once the access token has expired, the refresh is refused and the call elicits.
//!
//! Time: the upstream's access tokens live 60 s, the shortest `tokens.access_token_ttl_secs` a
//! configuration may set, and both Sallyports share a clock the test moves forward instead of
//! waiting (the gateway refreshes a token 30 s before it expires, `upstream_oauth::tokens`).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use fantoccini::Locator;
use protocol::secret::SecretHash;
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitationCapability, ErrorData, Implementation,
    UrlElicitationCapability,
};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use sallyport::up::System;
use sallyport::up::connected::{self, PREFIX};
use serde_json::json;
use testkit::TestDb;

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::upstream::{DOWN_PASSWORD, UP_PASSWORD, audit_kinds, demo_user, introspect};

/// The MCP client's loopback redirect (the test reads the code from the redirect; nothing listens).
const CALLBACK: &str = "http://127.0.0.1:47131/callback";
/// The upstream's access-token lifetime: the shortest a configuration may set.
const UPSTREAM_TTL: u64 = 60;

type Session = RunningService<RoleClient, ClientConfig>;

/// The MCP client as it introduces itself: it can open URLs for the user (URL-mode elicitation).
fn client_config() -> ClientConfig {
    let mut capabilities = ClientCapabilities::default();
    capabilities.elicitation = Some(ElicitationCapability::new().with_url(UrlElicitationCapability::new()));
    ClientConfig::new(capabilities, Implementation::new("sallyport upstream full path", "1"))
}

fn transport(
    auth: &AuthClient<reqwest::Client>,
    url: &str,
) -> StreamableHttpClientTransport<AuthClient<reqwest::Client>> {
    StreamableHttpClientTransport::with_client(auth.clone(), StreamableHttpClientTransportConfig::with_uri(url))
}

async fn echo(session: &Session, message: &str) -> Result<String, ServiceError> {
    let args = json!({ "message": message }).as_object().cloned().expect("object");
    let result = session.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await?;
    Ok(serde_json::to_string(&result.content).expect("json"))
}

/// The checks of MCP 2025-11-25, client/elicitation, "URL Elicitation Required Error": code
/// `-32042`, `data.elicitations` a list of URL-mode elicitations, each with an `elicitationId`, the
/// `url` to open (the route's connect page) and a `message` for the user. Returns the URL.
fn url_elicitation(error: &ErrorData, connect_url: &str) -> String {
    assert_eq!(error.code.0, -32042, "{error:?}");
    let data = error.data.as_ref().unwrap_or_else(|| panic!("the error has data: {error:?}"));
    let elicitations = data["elicitations"].as_array().unwrap_or_else(|| panic!("a list of elicitations: {data}"));
    assert_eq!(elicitations.len(), 1, "{data}");
    let e = &elicitations[0];
    assert_eq!(e["mode"], "url", "{e}");
    let id = e["elicitationId"].as_str().unwrap_or_else(|| panic!("an elicitationId: {e}"));
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(e["url"], connect_url, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.contains(PREFIX)), "a message for the user: {e}");
    e["url"].as_str().expect("a URL").to_owned()
}

/// An elicitation's id, to see that each error carries a new one.
fn elicitation_id(error: &ErrorData) -> String {
    error.data.as_ref().and_then(|d| d["elicitations"][0]["elicitationId"].as_str()).expect("an id").to_owned()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Authorization codes the gateway users' side ever issued: one per sign-in of an MCP client.
async fn codes_issued(down: &System) -> i64 {
    let mut conn = down.pool.get().await.expect("conn");
    let rows: Vec<Count> =
        diesel::sql_query("SELECT count(*) AS n FROM authorization_codes").load(&mut conn).await.expect("count");
    rows[0].n
}

/// The user's connection of the route, if any.
async fn connection(down: &System, user: uuid::Uuid) -> Option<store::upstream_connections::UpstreamConnectionRow> {
    let mut conn = down.pool.get().await.expect("conn");
    store::upstream_connections::find(&mut conn, user, PREFIX).await.expect("query")
}

/// The upstream's access and refresh tokens stored for (user, route), unsealed.
async fn stored_tokens(down: &System, user: uuid::Uuid) -> (String, String, i64) {
    let row = connection(down, user).await.expect("connected");
    let kek = down.settings.keys.encryption_key.as_ref().expect("kek").bytes();
    let tokens = store::upstream_connections::unseal_tokens(kek, user, PREFIX, &row.tokens_enc).expect("opens");
    let refresh = tokens.refresh_token.expect("a refresh token").expose().to_owned();
    (tokens.access_token.expose().to_owned(), refresh, row.generation)
}

async fn refresh_row(up: &System, token: &str) -> Option<store::refresh_tokens::RefreshTokenRow> {
    let mut conn = up.pool.get().await.expect("conn");
    store::refresh_tokens::find_by_hash(&mut conn, SecretHash::of(token).as_bytes()).await.expect("query")
}

type BrowserResult<T> = Result<T, fantoccini::error::CmdError>;

/// Waits (at most 30 s) until the browser shows another page than `from`, on which the test used
/// `acted`: another URL, or the same URL loaded again (a page that says what went wrong), which
/// leaves `acted` stale.
async fn left(c: &fantoccini::Client, from: &url::Url, acted: &fantoccini::elements::Element) -> BrowserResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.current_url().await? == *from && acted.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "the browser stayed at {from}: {}", c.source().await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// In the browser, from `url` (the elicitation's) to the connect callback's page: signs in where a
/// sign-in form is shown (at the gateway users' side or at the upstream, each with its own demo
/// user), allows where a consent page is shown. Returns the final page's title and message.
async fn connect_in_browser(c: &fantoccini::Client, url: &str, down: &System, up: &System) -> (String, String) {
    let callback = format!("{}/oauth2/connections/callback", down.issuer);
    let run = async {
        c.goto(url).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = c.current_url().await?;
            if now.as_str().starts_with(&callback)
                && let Ok(message) = c.find(Locator::Id("message")).await
            {
                let title = c.find(Locator::Css("h1")).await?.text().await?;
                return Ok((title, message.text().await?));
            }
            assert!(Instant::now() < deadline, "the connect did not finish: at {now}: {}", c.source().await?);
            if let Ok(allow) = c.find(Locator::Id("allow")).await {
                allow.clone().click().await?;
                left(c, &now, &allow).await?;
            } else if let Ok(username) = c.find(Locator::Id("username")).await {
                let (user, password) = if now.as_str().starts_with(&up.issuer) {
                    (up.demo_user.as_str(), UP_PASSWORD)
                } else {
                    (down.demo_user.as_str(), DOWN_PASSWORD)
                };
                username.clear().await?;
                username.send_keys(user).await?;
                c.find(Locator::Id("password")).await?.send_keys(password).await?;
                c.find(Locator::Id("sign-in")).await?.click().await?;
                left(c, &now, &username).await?;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let outcome: BrowserResult<(String, String)> = run.await;
    outcome.unwrap_or_else(|e| panic!("the browser: {e}"))
}

/// Presses the button `button` on `page` (a connections page, already signed in), then waits
/// until `gone` no longer matches there.
async fn press_on(c: &fantoccini::Client, page: &str, button: &str, gone: &str) {
    let run = async {
        c.goto(page).await?;
        c.wait().for_element(Locator::Css(button)).await?.click().await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.find(Locator::Css(gone)).await.is_ok() {
            assert!(Instant::now() < deadline, "{gone} is still on the page: {}", c.source().await?);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        BrowserResult::Ok(())
    };
    run.await.unwrap_or_else(|e| panic!("the browser at {page}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_connects_an_upstream_account_in_a_browser_and_keeps_using_it() {
    let browser = support::chromium::start("upstream-full-path").await;
    // the path runs as a task of its own so that Chromium is closed whatever it ends with
    let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(180), full_path(browser.client.clone())));
    let outcome = run.await;
    browser.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the full path took longer than 3 minutes"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{e}"),
    }
}

async fn full_path(c: fantoccini::Client) {
    let (db_up, db_down) = (TestDb::new().await, TestDb::new().await);
    let clock = protocol::Clock::system();
    let up = support::upstream::start(&db_up, true, clock.clone(), |s| {
        s.tokens.access_token_ttl_secs = Duration::from_secs(UPSTREAM_TTL);
    })
    .await;
    // the gateway users' side as `sallyport up` wires it: the quick start's `/mcp-connected` route
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let down = support::start_on(listener, &db_down, DOWN_PASSWORD, 1, clock.clone(), |s| {
        *s = connected::with_route(std::mem::take(s), &up, addr).expect("the /mcp-connected route");
    })
    .await;
    let mcp_url = format!("{}{PREFIX}", down.issuer);
    let connect_url = format!("{}/oauth2/connections/connect?route=%2Fmcp-connected", down.issuer);
    let (user, up_user) = (demo_user(&down).await, demo_user(&up).await);

    // the SDK signs in to Sallyport: the 401's challenge, discovery, registration (RFC 7591),
    // PKCE, the code redeemed
    let res = reqwest::Client::new().post(&mcp_url).json(&json!({})).send().await.expect("POST");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").to_owned();
    let mut oauth = OAuthState::new(&mcp_url, None).await.expect("oauth state");
    oauth
        .start_authorization(
            AuthorizationRequest::new(CALLBACK).with_client_name("upstream full path").with_challenge(challenge),
        )
        .await
        .expect("discovery and registration");
    let authorization_url = oauth.get_authorization_url().await.expect("authorization url");
    let back = support::browser_consents(&authorization_url, CALLBACK, DOWN_PASSWORD).await;
    oauth.handle_callback_url(&back).await.expect("code exchange");
    let manager = oauth.into_authorization_manager().expect("authorized");
    let sallyport_token = manager.get_access_token().await.expect("access token");
    let auth = AuthClient::new(reqwest::Client::default(), manager);
    assert_eq!(codes_issued(&down).await, 1);

    // 1. its first request needs the upstream's token, which the user has not connected: the URL
    // elicitation, as the JSON-RPC error the SDK hands over (not a transport failure)
    let error = match client_config().serve(transport(&auth, &mcp_url)).await {
        Err(ClientInitializeError::JsonRpcError(error)) => error,
        Err(other) => panic!("the elicitation as a JSON-RPC error, not {other:?}"),
        Ok(_) => panic!("no upstream account is connected, yet initialize went through"),
    };
    let elicitation = url_elicitation(&error, &connect_url);
    assert!(connection(&down, user).await.is_none());

    // 2. the person opens the URL: signs in at the connections page, then logs in and consents
    // at the upstream, and lands on the page that says connected
    let (title, message) = connect_in_browser(&c, &elicitation, &down, &up).await;
    assert_eq!(title, "Connected", "{message}");
    assert!(message.contains(&format!("{PREFIX} is connected")), "{message}");
    let row = connection(&down, user).await.expect("connected");
    assert_eq!((row.issuer.as_str(), row.generation), (up.issuer.as_str(), 0));
    assert!(row.expires_at.is_some(), "the upstream said when its token expires");

    // the same client, with its one Sallyport token, retries: the session starts and `echo` runs
    // at the upstream, called with the upstream's token for the upstream's user and Sallyport's
    // client there, never with the client's Sallyport token
    let session = client_config().serve(transport(&auth, &mcp_url)).await.expect("initialize after the Connect");
    let server = session.peer_info().expect("server info");
    assert_eq!(server.server_info.as_ref().map(|i| i.name.as_str()), Some("sallyport-demo"));
    let text = echo(&session, "after connecting").await.expect("tools/call after the Connect");
    let mut conn = down.pool.get().await.expect("conn");
    let at_upstream = store::upstream_clients::find(&mut conn, &up.issuer).await.expect("query").expect("our client");
    drop(conn);
    assert!(text.contains("after connecting"), "{text}");
    assert!(text.contains(&format!("subject {up_user}")), "the upstream's own user: {text}");
    assert!(text.contains(&format!("client {}", at_upstream.client_id)), "Sallyport's client at the upstream: {text}");
    let (access, refresh, generation) = stored_tokens(&down, user).await;
    assert_eq!(generation, 0, "the token of the Connect, not a refreshed one");
    assert!(introspect(&up, &access).await);
    // no new sign-in: no second code at the gateway users' side, the same Sallyport token
    assert_eq!(codes_issued(&down).await, 1);
    assert_eq!(auth.get_access_token().await.expect("token"), sallyport_token);

    // 3. the upstream's access token expires; the next call refreshes it at the upstream without
    // the user (RFC 6749 §6), with a rotated refresh token (RFC 9700 §4.14.2)
    clock.advance(i64::try_from(UPSTREAM_TTL).expect("secs") + 1);
    assert!(!introspect(&up, &access).await, "expired at the upstream");
    let text = echo(&session, "after the expiry").await.expect("tools/call after the token expired");
    assert!(text.contains("after the expiry"), "{text}");
    let (fresh, rotated, generation) = stored_tokens(&down, user).await;
    assert_eq!(generation, 1, "one refresh");
    assert!(fresh != access && rotated != refresh);
    assert!(introspect(&up, &fresh).await);
    let old = refresh_row(&up, &refresh).await.expect("the first refresh token at the upstream");
    assert!(old.used_at.is_some(), "the upstream redeemed it (a refresh_token grant)");
    let new = refresh_row(&up, &rotated).await.expect("its successor at the upstream");
    assert_eq!((new.parent_id, new.grant_id), (Some(old.id), old.grant_id), "rotated from it");

    // 4. Disconnect in the browser: gone here, revoked there (RFC 7009), and the same session's
    // next call elicits again. The revocation alone does not make it: the upstream's gateway
    // (revocation checks cached 30 s, as `up` runs it) still takes the token it saw active a moment
    // ago, so the gateway must drop its cached copy when the user disconnects.
    let connections = format!("{}/oauth2/connections", down.issuer);
    let route = format!("li.route[data-route=\"{PREFIX}\"]");
    press_on(&c, &connections, &format!("{route} button.disconnect"), &format!("{route} .connected")).await;
    assert!(connection(&down, user).await.is_none(), "deleted");
    assert!(!introspect(&up, &rotated).await, "revoked at the upstream");
    let error = match echo(&session, "after the disconnect").await {
        Err(ServiceError::McpError(error)) => error,
        Err(other) => panic!("the elicitation as a JSON-RPC error, not {other:?}"),
        Ok(text) => panic!("disconnected, yet the call went through: {text}"),
    };
    let elicitation = url_elicitation(&error, &connect_url);
    let first_id = elicitation_id(&error);

    // Connect again from the elicitation (signed in on both sides already), and the session's
    // retry goes through
    let (title, message) = connect_in_browser(&c, &elicitation, &down, &up).await;
    assert_eq!(title, "Connected", "{message}");
    let text = echo(&session, "after connecting again").await.expect("the retry in the same session");
    assert!(text.contains("after connecting again") && text.contains(&format!("subject {up_user}")), "{text}");

    // 5. the upstream's user revokes the application at the upstream (its own connections page):
    // its refresh token stops working there; once the access token has expired, the refresh is
    // refused (invalid_grant) and the call elicits again
    let (_, refresh, _) = stored_tokens(&down, user).await;
    assert!(introspect(&up, &refresh).await);
    let app = format!("li.app[data-client=\"{}\"]", at_upstream.client_id);
    press_on(&c, &format!("{}/oauth2/connections", up.issuer), &format!("{app} button.revoke"), &app).await;
    assert!(!introspect(&up, &refresh).await, "revoked at the upstream");
    clock.advance(i64::try_from(UPSTREAM_TTL).expect("secs") + 1);
    let error = match echo(&session, "after the revocation").await {
        Err(ServiceError::McpError(error)) => error,
        Err(other) => panic!("the elicitation as a JSON-RPC error, not {other:?}"),
        Ok(text) => panic!("revoked at the upstream, yet the call went through: {text}"),
    };
    url_elicitation(&error, &connect_url);
    assert_ne!(elicitation_id(&error), first_id, "each elicitation has its own id");
    let says = error.data.as_ref().and_then(|d| d["elicitations"][0]["message"].as_str()).unwrap_or_default();
    assert!(says.contains("again"), "the user is told to connect again: {says}");
    assert!(connection(&down, user).await.is_none(), "the dead connection is gone");

    // all of it with the one sign-in of the MCP client
    assert_eq!(codes_issued(&down).await, 1);
    assert_eq!(auth.get_access_token().await.expect("token"), sallyport_token);
    let kinds = audit_kinds(&down).await;
    for want in ["upstream.connected", "upstream.disconnected", "upstream.revoked invalid_grant"] {
        assert!(kinds.iter().any(|k| k == want), "{want} missing in {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| *k == "upstream.connected").count(), 2, "{kinds:?}");

    let _ = session.cancel().await;
    down.stop().await;
    up.stop().await;
}
