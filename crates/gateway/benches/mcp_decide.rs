//! The per-request work of an `mcp = true` route before it forwards: parse the JSON-RPC body,
//! check the `Mcp-Method`/`Mcp-Name` headers against it and decide the tool against a 10-rule
//! policy (3 allow, 3 deny, 4 tool_scopes). Target: <= 10 µs for a typical 500-byte `tools/call`.
//!
//! `cargo bench -p sallyport-gateway --bench mcp_decide`

use std::hint::black_box;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use criterion::{Criterion, criterion_group, criterion_main};
use gateway::mcp::policy::ToolPolicy;
use gateway::mcp::{headers, message};
use protocol::scope::Scopes;
use server::config::{RouteSettings, ToolRules};

fn policy() -> ToolPolicy {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    ToolPolicy::from_route(&RouteSettings {
        prefix: "/mcp".into(),
        upstream: server::config::HttpUrl::parse("http://127.0.0.1:9000/mcp").expect("upstream"),
        resource: Some("https://mcp.example.com/mcp".into()),
        scopes: strings(&["mcp"]),
        method_scopes: Default::default(),
        auth: true,
        allowed_origins: vec![],
        allow_form_token: false,
        allow_query_token: false,
        mcp: true,
        tools: ToolRules {
            allow: strings(&["search_*", "get_*", "*_issue"]),
            deny: strings(&["drop_*", "*_database", "exec_shell"]),
        },
        tool_scopes: [
            ("delete_issue", "mcp:admin"),
            ("admin_*", "mcp:admin"),
            ("*_secret", "secrets:read"),
            ("update_*", "issues:write"),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_owned(), vec![s.to_owned()]))
        .collect(),
        upstream_auth: Default::default(),
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: None,
    })
    .expect("policy")
}

/// A typical `tools/call` of about 500 bytes.
fn body() -> Vec<u8> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_issues",
            "arguments": {
                "query": "label:bug state:open sort:updated-desc gateway timeout after deploy",
                "repository": "sallyport/sallyport",
                "limit": 25,
                "fields": ["number", "title", "state", "labels", "assignees", "updated_at", "comments"],
                "include_closed": false,
                "since": "2026-11-01T00:00:00Z",
                "cursor": "Y3Vyc29yOnYyOpK5MjAyNi0xMS0zMFQxMjowMDowMCswMDowMM4AAAAAAABCDw=="
            },
            "_meta": {"progressToken": "c2b8e0d4-7f1a-4b6e-9a3d-5e2f1c8b7a90"}
        }
    });
    serde_json::to_vec(&body).expect("json")
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let body = body();
    assert!((450..=600).contains(&body.len()), "a typical request: {} bytes", body.len());
    let granted = Scopes::parse("mcp").expect("scopes");
    let mut with_headers = HeaderMap::new();
    with_headers.insert(HeaderName::from_static("mcp-method"), HeaderValue::from_static("tools/call"));
    with_headers.insert(HeaderName::from_static("mcp-name"), HeaderValue::from_static("search_issues"));
    let without = HeaderMap::new();

    let mut group = c.benchmark_group("mcp");
    group.measurement_time(Duration::from_secs(3));
    for (label, hdrs) in
        [("parse+check+decide (Mcp-* headers)", &with_headers), ("parse+decide (no headers)", &without)]
    {
        group.bench_function(label, |b| {
            b.iter(|| {
                let request = message::parse(black_box(&body)).expect("parses");
                headers::check(hdrs, &request).expect("headers match");
                let tool = request.calls[0].tool().expect("a tool call");
                black_box(policy.decide(tool, Some(&granted)))
            })
        });
    }
    group.bench_function("decide only", |b| {
        b.iter(|| black_box(policy.decide(black_box("search_issues"), Some(&granted))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
