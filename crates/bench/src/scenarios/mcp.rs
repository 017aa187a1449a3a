//! `mcp`: one MCP `tools/call` POST through two protected routes to the same upstream — a route
//! with `mcp = true` and a 10-rule tool policy that allows the call, and the same route with
//! `mcp = false` — so the report can give the cost of reading, checking and auditing tool calls
//! (issue 15: >= 90 % of the `mcp = false` throughput). Both get the very same request: a bearer
//! token, a ~500-byte JSON-RPC body, and the `Mcp-Method`/`Mcp-Name` headers a 2026-07-28 client
//! sends (Streamable HTTP, "Request Headers"). The upstream answers as an MCP server does.

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use url::Url;

use super::client_credentials::access_token;
use super::{Bench, run_once};
use crate::client::transport;
use crate::conn::{self, Conn};
use crate::report::{Row, RunStats};
use crate::runner::Worker;

/// A typical tool call of an agent (search with filters, a progress token): about 500 bytes.
pub const TOOL_CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues","arguments":{"repository":"sallyport/sallyport","query":"gateway returns 502 when the upstream closes an SSE stream early","state":"open","labels":["bug","gateway","mcp"],"assignee":null,"created_after":"2026-11-01T00:00:00Z","fields":["number","title","state","labels","updated_at","html_url"],"sort":"updated","order":"desc","per_page":20,"page":1},"_meta":{"progressToken":"b3c1f0e2-7a4d-4e0c-9a51-2f6d8c1e4b7a"}}}"#;
const TOOL: &str = "search_issues";
/// A call the policy refuses (`drop_*` is denied): proves the policy is in force before loading.
const DENIED_CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"drop_database","arguments":{}}}"#;

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let targets = b.mcp.as_ref().context(
        "the mcp scenario needs --start: its two routes (mcp = true with a tool policy, mcp = false) are in \
         the configuration the bench generates",
    )?;
    let token = match &b.access_token {
        Some(t) => t.clone(),
        None => {
            let client = super::oauth::machine_client(b).await?;
            access_token(b, &client).await?
        }
    };
    let headers = tool_call_headers(&format!("Bearer {token}"), TOOL)?;
    // untimed: both routes forward the call and answer its result, both are protected, and the
    // policy of the mcp route is in force (a denied tool gets the JSON-RPC error, not the upstream)
    for url in [&targets.policy, &targets.plain] {
        let answer = post(b, url, &headers, TOOL_CALL, StatusCode::OK).await?;
        if !is_result(answer.as_bytes()) || !answer.contains(r#""id":42"#) {
            bail!("POST {}: not the upstream's tools/call result: {answer}", url.path());
        }
        post(b, url, &headers[1..], TOOL_CALL, StatusCode::UNAUTHORIZED).await.context("without a token")?;
    }
    let denied = tool_call_headers(&format!("Bearer {token}"), "drop_database")?;
    let refusal = post(b, &targets.policy, &denied, DENIED_CALL, StatusCode::OK).await?;
    if !refusal.contains("-32602") {
        bail!("POST {}: the tool policy did not refuse drop_database: {refusal}", targets.policy.path());
    }

    // the two variants take turns in alternating order, so drift on a shared machine hits both
    // sides of the ratio alike (as in the gateway scenario)
    let variants = [("mcp/policy", &targets.policy), ("mcp/off", &targets.plain)];
    let body = Bytes::from_static(TOOL_CALL.as_bytes());
    let mut workers = Vec::with_capacity(variants.len());
    for (_, url) in &variants {
        workers.push(Some(ToolCallWorker::per_worker(b, url, &headers, &body)?));
    }
    let mut runs: Vec<Vec<RunStats>> = vec![Vec::with_capacity(b.runs); variants.len()];
    for i in 0..b.runs {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in order {
            let label = format!("{} run {}/{}", variants[v].0, i + 1, b.runs);
            let (stats, back) = run_once(b, &label, workers[v].take().unwrap_or_default()).await;
            workers[v] = Some(back);
            runs[v].push(stats);
        }
    }
    let rows = variants
        .iter()
        .zip(runs)
        .map(|((name, url), runs)| {
            let request =
                format!("POST {} tools/call, {} B (Bearer, Mcp-Method, Mcp-Name)", url.path(), TOOL_CALL.len());
            Row::new(name, &request, &url.origin().ascii_serialization(), runs)
        })
        .collect();
    Ok(rows)
}

/// The headers of a Streamable HTTP POST of a `tools/call`, the bearer token first.
fn tool_call_headers(authorization: &str, tool: &str) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    Ok(vec![
        (AUTHORIZATION, HeaderValue::from_str(authorization)?),
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (ACCEPT, HeaderValue::from_static("application/json, text/event-stream")),
        (HeaderName::from_static("mcp-protocol-version"), HeaderValue::from_static("2026-07-28")),
        (HeaderName::from_static("mcp-method"), HeaderValue::from_static("tools/call")),
        (HeaderName::from_static("mcp-name"), HeaderValue::from_str(tool)?),
    ])
}

/// A JSON-RPC response with a result (a refused call also answers 200, with an error member).
fn is_result(body: &[u8]) -> bool {
    const RESULT: &[u8] = br#""result":"#;
    body.windows(RESULT.len()).any(|w| w == RESULT)
}

/// One untimed POST that must answer `expect`; returns the body.
async fn post(
    b: &Bench,
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    body: &'static str,
    expect: StatusCode,
) -> anyhow::Result<String> {
    let mut req = b.http.post(url.clone()).body(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let res = req.send().await.map_err(|e| anyhow::anyhow!(transport("POST", url, &e)))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if status != expect {
        bail!("POST {}: {} (expected {}): {text}", url.path(), status.as_u16(), expect.as_u16());
    }
    Ok(text)
}

/// Posts the same tool call on its own keep-alive connection; anything but a 200 carrying a
/// JSON-RPC result is an error.
pub struct ToolCallWorker {
    conn: Conn,
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl ToolCallWorker {
    fn per_worker(
        b: &Bench,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
    ) -> anyhow::Result<Vec<Self>> {
        (0..b.workers)
            .map(|_| {
                Ok(Self {
                    conn: Conn::to(url)?,
                    target: conn::target(url),
                    headers: headers.to_vec(),
                    body: body.clone(),
                })
            })
            .collect()
    }
}

impl Worker for ToolCallWorker {
    async fn call(&mut self) -> Result<(), String> {
        let reply = self.conn.send(hyper::Method::POST, &self.target, &self.headers, Some(self.body.clone())).await?;
        if reply.status == StatusCode::OK && is_result(&reply.body) {
            Ok(())
        } else if reply.status == StatusCode::OK {
            Err(format!("POST {}: 200 without a JSON-RPC result", self.target))
        } else {
            Err(conn::refused(&format!("POST {}", self.target), &reply))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_tool_call_is_a_typical_one() {
        assert!((450..=550).contains(&TOOL_CALL.len()), "{} bytes", TOOL_CALL.len());
        let v: serde_json::Value = serde_json::from_str(TOOL_CALL).expect("JSON");
        assert_eq!((v["method"].as_str(), v["params"]["name"].as_str()), (Some("tools/call"), Some(TOOL)));
        let denied: serde_json::Value = serde_json::from_str(DENIED_CALL).expect("JSON");
        assert_eq!(denied["params"]["name"], "drop_database");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn workers_post_tool_calls_and_want_a_result() {
        let (addr, server) =
            crate::upstream::spawn(Arc::new(|n| if n % 4 == 0 { 503 } else { 200 })).await.expect("stub");
        let url = Url::parse(&format!("http://{addr}/bench-mcp")).expect("url");
        let headers = tool_call_headers("Bearer t", TOOL).expect("headers");
        let mut one = Conn::to(&url).expect("conn");
        let reply =
            one.send(hyper::Method::POST, "/bench-mcp", &headers, Some(Bytes::from_static(TOOL_CALL.as_bytes())));
        let reply = reply.await.expect("reply");
        let answer: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(answer["id"], 42, "the upstream answers with the request's id");
        assert_eq!(answer["result"]["isError"], false);
        assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));

        let body = Bytes::from_static(TOOL_CALL.as_bytes());
        let workers: Vec<_> = (0..4)
            .map(|_| ToolCallWorker {
                conn: Conn::to(&url).expect("conn"),
                target: conn::target(&url),
                headers: headers.clone(),
                body: body.clone(),
            })
            .collect();
        let timing = crate::runner::Timing { warmup: Duration::from_millis(50), duration: Duration::from_millis(250) };
        let (m, _) = crate::runner::run(workers, timing).await;
        server.abort();
        let total = m.ok + m.errors;
        assert!(total > 20, "the stub answered {total} requests");
        assert!(m.errors > 0 && m.ok > m.errors, "{} errors of {total}", m.errors);
        assert_eq!(m.error_kinds.keys().cloned().collect::<Vec<_>>(), vec!["POST /bench-mcp: 503".to_owned()]);
    }

    #[test]
    fn a_refusal_is_not_a_result() {
        assert!(is_result(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(!is_result(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: x"}}"#));
    }
}
