//! MCP-aware routes end to end: the whole system as `sallyport up` starts it, a real MCP server
//! (rmcp, several tools) behind two `mcp = true` routes, one answering with SSE and one with JSON,
//! real tokens from the token service (an operator's client, then client_credentials), and the
//! official Rust MCP SDK as the client. Checked from outside: allow, deny, globs, the SEP-835
//! step-up challenge and the retry with the larger scope, `tools/list` filtering, batches,
//! header/body mismatch, the body limit, the resource metadata and the audit rows.

use std::net::TcpListener;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::WWWAuthenticateParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::{RoleClient, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use sallyport::up::{Options, System};
use serde_json::{Value, json};
use server::config::{ResourceSettings, RevocationCheck, RouteSettings, ToolRules};
use testkit::TestDb;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct IssueArgs {
    /// An issue number or a search text.
    q: String,
}

/// An issue tracker with tools of every kind a policy tells apart.
#[derive(Debug, Clone)]
struct Tracker {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tracker {
    fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Search issues")]
    fn search_issues(&self, Parameters(IssueArgs { q }): Parameters<IssueArgs>) -> String {
        format!("found: {q}")
    }

    #[tool(description = "Delete an issue")]
    fn delete_issue(&self, Parameters(IssueArgs { q }): Parameters<IssueArgs>) -> String {
        format!("deleted: {q}")
    }

    #[tool(description = "Reset the tracker")]
    fn admin_reset(&self) -> String {
        "reset".into()
    }

    #[tool(description = "Drop the database")]
    fn drop_database(&self) -> String {
        "dropped".into()
    }

    #[tool(description = "Echo")]
    fn echo(&self, Parameters(IssueArgs { q }): Parameters<IssueArgs>) -> String {
        q
    }
}

#[tool_handler(router = self.tool_router, name = "tracker", version = "1.0.0")]
impl ServerHandler for Tracker {}

struct Stack {
    system: System,
    http: reqwest::Client,
    stop: CancellationToken,
    /// `/tracker`: SSE answers, `tools.deny = ["drop_*"]`.
    sse: String,
    /// `/tracker-json`: JSON answers, `tools.allow = ["search_*", "delete_*", "admin_*", "echo"]`.
    json: String,
}

async fn upstream(json_response: bool, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let mut config = StreamableHttpServerConfig::default();
    if json_response {
        config.json_response = true;
        config.legacy_session_mode = false;
    }
    tokio::spawn(sallyport::demo_mcp::serve_with(listener, config, stop.clone(), Tracker::new));
    url
}

fn route(prefix: &str, upstream: String, issuer: &str, tools: ToolRules) -> RouteSettings {
    RouteSettings {
        prefix: prefix.into(),
        upstream: server::config::HttpUrl::parse(&upstream).expect("upstream"),
        resource: Some(format!("{issuer}{prefix}")),
        scopes: vec!["mcp".into()],
        method_scopes: Default::default(),
        auth: true,
        allowed_origins: vec![],
        allow_form_token: false,
        allow_query_token: false,
        mcp: true,
        tools,
        tool_scopes: [("delete_issue", "mcp:admin"), ("admin_*", "mcp:admin")]
            .into_iter()
            .map(|(p, s)| (p.to_owned(), vec![s.to_owned()]))
            .collect(),
        upstream_auth: Default::default(),
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: None,
    }
}

async fn start(db: &TestDb) -> Stack {
    let stop = CancellationToken::new();
    let (sse_up, json_up) = (upstream(false, &stop).await, upstream(true, &stop).await);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let mut base = testkit::settings(db);
    for prefix in ["/tracker", "/tracker-json"] {
        base.resources.push(ResourceSettings {
            resource: format!("{issuer}{prefix}"),
            name: "Tracker".into(),
            scopes: vec!["mcp".into(), "offline_access".into()],
            documentation: None,
            // the test's tokens come from client_credentials (an operator's client)
            accept_machine_tokens: true,
        });
    }
    let deny = ToolRules { allow: vec![], deny: vec!["drop_*".into()] };
    let allow =
        ToolRules { allow: vec!["search_*".into(), "delete_*".into(), "admin_*".into(), "echo".into()], deny: vec![] };
    base.gateway.routes.push(route("/tracker", sse_up, &issuer, deny));
    base.gateway.routes.push(route("/tracker-json", json_up, &issuer, allow));
    let system = System::start(Options {
        gateway: listener,
        database_url: db.url.clone(),
        base,
        demo_password: Some("demo-password-for-policy".into()),
        workers: 2,
        revocation_check: RevocationCheck::Off,
        clock: protocol::Clock::system(),
    })
    .await
    .expect("the system starts");
    Stack {
        sse: format!("{issuer}/tracker"),
        json: format!("{issuer}/tracker-json"),
        system,
        http: reqwest::Client::new(),
        stop,
    }
}

impl Stack {
    /// A confidential client an operator made (`sallyport client add`), allowed `mcp` and
    /// `mcp:admin`: self-registered clients may not use client_credentials.
    async fn client(&self, db: &TestDb) -> (String, String) {
        use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
        use protocol::scope::Scopes;
        use protocol::secret::SecretHash;
        use store::clients;
        let scopes = Scopes::parse("mcp mcp:admin").expect("scope");
        let policy = MetadataPolicy { max_redirect_uris: 1, default_scopes: scopes.clone(), allowed_scopes: scopes };
        let metadata = ClientMetadataRequest {
            client_name: Some("policy test".into()),
            grant_types: Some(vec!["client_credentials".into()]),
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            scope: Some("mcp mcp:admin".into()),
            ..Default::default()
        }
        .validate(&policy)
        .expect("metadata");
        let (id, secret) = (format!("policy-{}", uuid::Uuid::new_v4()), "a-policy-test-secret".to_owned());
        let mut row = clients::ClientRow::new(id.clone(), ClientSource::Admin, &metadata, chrono::Utc::now());
        row.client_secret_hash = Some(SecretHash::of(&secret).to_vec());
        clients::insert(&mut *db.conn().await, &row).await.expect("client");
        (id, secret)
    }

    /// A client_credentials access token from the token service for `resource` and `scope`.
    async fn token(&self, client: &(String, String), resource: &str, scope: &str) -> String {
        let res = self
            .http
            .post(format!("{}/oauth2/token", self.system.issuer))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "client_credentials"), ("resource", resource), ("scope", scope)])
            .send()
            .await
            .expect("token");
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["scope"], scope);
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// The official SDK client on `url` with this token.
    async fn sdk(&self, url: &str, token: &str) -> RunningService<RoleClient, ()> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
        );
        ().serve(transport).await.expect("initialize through the gateway")
    }

    /// A raw JSON-RPC POST.
    async fn post(
        &self,
        url: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.body(body).send().await.expect("POST")
    }

    async fn stop(self) {
        self.stop.cancel();
        self.system.stop().await;
    }
}

fn args(q: &str) -> serde_json::Map<String, Value> {
    json!({"q": q}).as_object().cloned().expect("object")
}

async fn names(client: &RunningService<RoleClient, ()>) -> Vec<String> {
    let mut names: Vec<String> =
        client.list_tools(None).await.expect("tools/list").tools.into_iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_string(&result.content).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_allowed_denied_filtered_and_stepped_up() {
    let db = TestDb::new().await;
    let stack = start(&db).await;
    let client = stack.client(&db).await;
    let basic = stack.token(&client, &stack.sse, "mcp").await;

    // SSE route: deny wins (drop_*), tool_scopes hide what the token cannot call
    let sdk = stack.sdk(&stack.sse, &basic).await;
    assert_eq!(names(&sdk).await, vec!["echo", "search_issues"], "tools/list is filtered for an `mcp` token");
    let found =
        sdk.call_tool(CallToolRequestParams::new("search_issues").with_arguments(args("42"))).await.expect("allowed");
    assert!(text(&found).contains("found: 42"));

    // a denied tool is an unknown tool: a JSON-RPC error, not an HTTP one
    let denied = sdk.call_tool(CallToolRequestParams::new("drop_database")).await.expect_err("denied");
    let message = denied.to_string();
    assert!(message.contains("-32602") || message.contains("Unknown tool"), "{message}");
    assert!(!message.contains("deny"), "no policy internals: {message}");

    // step-up (SEP-835): 403 naming every scope the call needs, then the larger token succeeds
    let refused =
        sdk.call_tool(CallToolRequestParams::new("delete_issue").with_arguments(args("7"))).await.expect_err("403");
    let challenge = refused.auth_challenge().expect("a WWW-Authenticate challenge").to_owned();
    let params = WWWAuthenticateParams::parse(&challenge, &url::Url::parse(&stack.sse).expect("url"));
    assert!(params.is_insufficient_scope(), "{challenge}");
    assert_eq!(params.scope.as_deref(), Some("mcp mcp:admin"), "the full set, with the scope the token has");
    assert_eq!(
        params.resource_metadata_url.map(|u| u.to_string()),
        Some(format!("{}/.well-known/oauth-protected-resource/tracker", stack.system.issuer))
    );
    let _ = sdk.cancel().await;
    let admin = stack.token(&client, &stack.sse, params.scope.as_deref().expect("scope")).await;
    let sdk = stack.sdk(&stack.sse, &admin).await;
    assert_eq!(
        names(&sdk).await,
        vec!["admin_reset", "delete_issue", "echo", "search_issues"],
        "gained scope, sees more"
    );
    let deleted =
        sdk.call_tool(CallToolRequestParams::new("delete_issue").with_arguments(args("7"))).await.expect("allowed");
    assert!(text(&deleted).contains("deleted: 7"));
    let reset = sdk.call_tool(CallToolRequestParams::new("admin_reset")).await.expect("glob admin_*");
    assert!(text(&reset).contains("reset"));
    sdk.call_tool(CallToolRequestParams::new("drop_database")).await.expect_err("deny wins over any scope");
    let _ = sdk.cancel().await;

    // the JSON route: tools.allow limits, the answer is application/json and filtered too
    let json_token = stack.token(&client, &stack.json, "mcp").await;
    let res = stack.post(&stack.json, &json_token, r#"{"jsonrpc":"2.0","id":"l1","method":"tools/list"}"#, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.expect("json");
    let mut listed: Vec<&str> =
        body["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    listed.sort_unstable();
    assert_eq!(listed, vec!["echo", "search_issues"], "{body}");
    let sdk = stack.sdk(&stack.json, &json_token).await;
    assert_eq!(names(&sdk).await, vec!["echo", "search_issues"]);
    sdk.call_tool(CallToolRequestParams::new("drop_database")).await.expect_err("not in tools.allow");
    let _ = sdk.cancel().await;

    // RFC 9728: the tool scopes are listed, offline_access never
    let prm: Value = stack
        .http
        .get(format!("{}/.well-known/oauth-protected-resource/tracker", stack.system.issuer))
        .send()
        .await
        .expect("PRM")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["scopes_supported"], json!(["mcp", "mcp:admin"]));

    // the audit: one row per tools/call, written off the request path
    let rows = audit_rows(&stack, 7).await;
    let tool_rows: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.detail["tool"].as_str().unwrap_or_default().to_owned(),
                r.detail["decision"].as_str().unwrap_or_default().to_owned(),
                r.detail["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let has = |tool: &str, decision: &str, reason: Option<&str>| {
        tool_rows.iter().any(|(t, d, r)| t == tool && d == decision && r.as_deref() == reason)
    };
    assert!(has("search_issues", "allowed", None), "{tool_rows:?}");
    assert!(has("drop_database", "denied", Some("denied by tools.deny")), "{tool_rows:?}");
    assert!(has("delete_issue", "denied", Some("insufficient_scope")), "{tool_rows:?}");
    assert!(has("delete_issue", "allowed", None), "{tool_rows:?}");
    assert!(has("drop_database", "denied", Some("not in tools.allow")), "{tool_rows:?}");
    let allowed =
        rows.iter().find(|r| r.detail["tool"] == "delete_issue" && r.detail["decision"] == "allowed").expect("row");
    assert_eq!(allowed.client_id.as_deref(), Some(client.0.as_str()));
    assert_eq!(allowed.detail["route"], "/tracker");
    assert_eq!(allowed.detail["upstream_status"], 200);
    assert_eq!(allowed.detail["subject"], client.0.as_str());
    assert!(allowed.detail["duration_ms"].is_u64());
    stack.stop().await;
}

async fn audit_rows(stack: &Stack, at_least: usize) -> Vec<store::audit::AuditEventRow> {
    let filter = store::audit::Filter { limit: 1000, ..Default::default() };
    for _ in 0..50 {
        let mut conn = stack.system.pool.get().await.expect("conn");
        let rows: Vec<_> = store::audit::list(&mut conn, &filter)
            .await
            .expect("audit")
            .into_iter()
            .filter(|r| r.kind == store::audit::kind::TOOL_CALL)
            .collect();
        if rows.len() >= at_least {
            return rows;
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {at_least} tool-call audit rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_headers_and_the_body_limit() {
    let db = TestDb::new().await;
    let stack = start(&db).await;
    let client = stack.client(&db).await;
    let token = stack.token(&client, &stack.json, "mcp").await;
    let url = &stack.json;

    // a batch holding a denied call is answered by the gateway, call by call
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"q":"x"}}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_database"}},
        {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}]"#;
    let res = stack.post(url, &token, batch, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body[0]["id"], 1);
    assert_eq!(body[0]["error"]["code"], -32600);
    assert_eq!(
        body[1],
        json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Unknown tool: drop_database"}})
    );
    assert_eq!(body.as_array().map(Vec::len), Some(2), "a notification gets no answer");

    // a batch needing a larger scope is a step-up, like a single call
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin_reset"}}]"#;
    let res = stack.post(url, &token, batch, &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenges: Vec<_> = res.headers().get_all(WWW_AUTHENTICATE).iter().collect();
    assert_eq!(challenges.len(), 1);
    let challenge = challenges[0].to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"mcp mcp:admin\"") && challenge.contains("resource_metadata="), "{challenge}");
    assert!(!challenge.contains("offline_access"));

    // an allowed batch reaches the upstream byte for byte (which then answers as it does)
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"q":"x"}}}]"#;
    let res = stack.post(url, &token, batch, &[]).await;
    let status = res.status();
    let body = res.text().await.expect("body");
    assert!(!body.contains("Unknown tool") && status != StatusCode::FORBIDDEN, "{status} {body}");

    // Mcp-Method / Mcp-Name must match the body (MCP 2026-07-28: 400, HeaderMismatch -32020)
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"drop_database"}}"#;
    for headers in [
        &[("mcp-method", "tools/call"), ("mcp-name", "search_issues")][..],
        &[("mcp-method", "tools/list")][..],
        &[("mcp-method", "tools/call")][..],
        &[("mcp-name", "drop_database")][..],
    ] {
        let res = stack.post(url, &token, call, headers).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], -32020, "{headers:?}");
        assert_eq!(body["id"], 9);
    }
    // matching headers (also Base64-encoded) are judged like the body
    let res = stack
        .post(url, &token, call, &[("mcp-method", "tools/call"), ("mcp-name", "=?base64?ZHJvcF9kYXRhYmFzZQ==?=")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], -32602);

    // not JSON, not JSON-RPC
    let res = stack.post(url, &token, "{not json", &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.expect("json")["error"]["code"], -32700);
    let res = stack.post(url, &token, r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#, &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.expect("json")["error"]["code"], -32600);

    // the body limit: 413 JSON, declared or streamed
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"q":"{}"}}}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let res = stack.post(url, &token, big.clone(), &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "invalid_request");
    let chunks: Vec<Result<String, std::io::Error>> =
        big.as_bytes().chunks(64 * 1024).map(|c| Ok(String::from_utf8_lossy(c).into_owned())).collect();
    let res = stack.post(url, &token, reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)), &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    stack.stop().await;
}
