//! OpenTelemetry traces of the whole system as `sallyport up` starts it, received in this process
//! by an OTLP/HTTP endpoint of its own (protobuf, decoded with `opentelemetry-proto`): one refresh
//! through the gateway is one trace, gateway → token service → the refresh statement; no span
//! carries a parameter; an upstream behind the gateway continues the trace from the gateway's
//! span; an untrusted caller's `traceparent` is not adopted; and with no
//! `telemetry.otlp_endpoint` nothing is sent at all (in a process of its own, since the exporter
//! belongs to the process's one subscriber).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::StatusCode;
use sallyport::up::System;
use serde_json::Value;
use server::config::{HttpUrl, LogFormat, LogSettings, RouteSettings, TelemetrySettings, TrustedNet};
use server::telemetry::Traces;
use testkit::TestDb;

#[allow(dead_code, reason = "the shared support module; this test uses part of it")]
mod support;

use support::http;

const PASSWORD: &str = "demo-password-for-traces";
const CALLBACK: &str = "http://127.0.0.1:47126/callback";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-traces-01234";

/// A span as received, with the `service.name` of the resource it came under.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

/// An OTLP/HTTP receiver on a loopback port: every POST to `/v1/traces` is decoded and kept.
#[derive(Clone)]
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    posts: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Self { url, spans: Arc::default(), posts: Arc::default() };
        let serving = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let serving = serving.clone();
                std::thread::spawn(move || serving.serve(stream));
            }
        });
        receiver
    }

    /// HTTP/1.1 with keep-alive, as the exporter's client speaks it: request line, headers,
    /// a `Content-Length` body, then an empty 200 (an empty `ExportTraceServiceResponse`).
    fn serve(&self, stream: TcpStream) {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            let mut kind = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().expect("content-length");
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    kind = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            self.posts.lock().expect("lock").push(format!("{} {kind}", request_line.trim()));
            if request_line.starts_with("POST /v1/traces ") && kind == "application/x-protobuf" {
                let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP protobuf export");
                let mut spans = self.spans.lock().expect("lock");
                for resource in export.resource_spans {
                    let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                    let service = text(&attributes, "service.name").unwrap_or_default();
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans.into_iter().map(|span| Received { service: service.clone(), span }));
                    }
                }
            }
            let _ = writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        }
    }

    fn received(&self) -> Vec<Received> {
        self.spans.lock().expect("lock").clone()
    }
}

/// The `traceparent` and `tracestate` of each request an upstream received.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// An upstream behind a public gateway route: answers `ok` to anything, and keeps the
/// `traceparent` and `tracestate` each request came with.
fn upstream() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Seen = Arc::default();
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                loop {
                    let (mut traceparent, mut tracestate) = (None, None);
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            match name.to_ascii_lowercase().as_str() {
                                "traceparent" => traceparent = Some(value.trim().to_owned()),
                                "tracestate" => tracestate = Some(value.trim().to_owned()),
                                _ => {}
                            }
                        }
                    }
                    kept.lock().expect("lock").push((traceparent, tracestate));
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                }
            });
        }
    });
    (url, seen)
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This process's subscriber, exporting to its receiver: installed once, before anything logs.
fn traced() -> &'static (Receiver, Traces) {
    static TRACED: OnceLock<(Receiver, Traces)> = OnceLock::new();
    TRACED.get_or_init(|| {
        let receiver = Receiver::start();
        let telemetry = TelemetrySettings {
            otlp_endpoint: Some(HttpUrl::parse(&receiver.url).expect("url")),
            ..TelemetrySettings::default()
        };
        let log = LogSettings { format: LogFormat::Json, filter: "warn".into() };
        let traces = server::telemetry::init_traced(&log, &telemetry, "sallyport").expect("telemetry");
        assert!(traces.enabled(), "the first subscriber of this test process");
        (receiver, traces)
    })
}

/// Sends every finished span now, and waits until the receiver has them.
async fn flush() {
    tokio::task::spawn_blocking(|| traced().1.flush()).await.expect("flush");
}

/// Registers a public client through the gateway, signs the demo user in, consents and redeems
/// the code: the client id and the refresh token.
async fn signed_in(system: &System) -> (String, String) {
    let support::AtSignIn { client_id, browser, login, action, form } =
        support::public_client_at_sign_in(system, "traces", CALLBACK, VERIFIER).await;
    assert!(login.starts_with(&system.issuer), "the sign-in page is the issuer's: {login}");
    let fields = form.submission(&[("username", "demo"), ("password", PASSWORD)], None);
    let code = support::sign_in_and_allow(&browser, &action, &fields, CALLBACK).await;
    let tokens = support::redeem(system, &client_id, &code, CALLBACK, VERIFIER).await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh token").to_owned();
    (client_id, refresh)
}

/// A refresh through the gateway from `client`, with this `traceparent`: the new refresh token.
async fn refresh(client: &reqwest::Client, system: &System, client_id: &str, token: &str, traceparent: &str) -> String {
    let res = client
        .post(format!("{}/oauth2/token", system.issuer))
        .header("traceparent", traceparent)
        .header("tracestate", "caller=1")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client_id)])
        .send()
        .await
        .expect("refresh");
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.expect("json")["refresh_token"].as_str().expect("refresh token").to_owned()
}

fn is_server_of(r: &Received, service: &str) -> bool {
    r.span.kind == SpanKind::Server as i32 && text(&r.span.attributes, "sallyport.service").as_deref() == Some(service)
}

/// The spans of one request through the gateway to the token service: the gateway's server span
/// (its root here), the gateway's client span to the token service, the token service's server
/// span, and the refresh statement below it; each the child of the one before.
fn one_refresh_trace(spans: &[Received]) -> [Received; 4] {
    let trace = &spans[0].span.trace_id;
    assert!(spans.iter().all(|r| &r.span.trace_id == trace), "one trace");
    let find = |what: &str, f: &dyn Fn(&Received) -> bool| -> Received {
        let found: Vec<&Received> = spans.iter().filter(|r| f(r)).collect();
        assert_eq!(found.len(), 1, "one {what} in {spans:#?}");
        found[0].clone()
    };
    let gateway = find("gateway server span", &|r| is_server_of(r, "gateway"));
    let upstream = find("gateway client span", &|r| {
        r.span.kind == SpanKind::Client as i32 && r.span.parent_span_id == gateway.span.span_id
    });
    let token = find("token server span", &|r| is_server_of(r, "token"));
    assert_eq!(token.span.parent_span_id, upstream.span.span_id, "the token service continues the gateway's span");
    assert_eq!(text(&upstream.span.attributes, "http.response.status_code").as_deref(), Some("200"));
    let rotate = find("refresh statement", &|r| r.span.name == "refresh_tokens.rotate");
    assert_eq!(text(&rotate.span.attributes, "db.system").as_deref(), Some("postgresql"));
    assert_eq!(rotate.span.kind, SpanKind::Client as i32);
    // the statement lies below the token service's request span
    let mut parent = rotate.span.parent_span_id.clone();
    while parent != token.span.span_id {
        let up =
            spans.iter().find(|r| r.span.span_id == parent).unwrap_or_else(|| panic!("a broken chain: {spans:#?}"));
        parent = up.span.parent_span_id.clone();
    }
    assert_eq!(gateway.span.name, "POST /oauth2/token");
    assert_eq!(token.span.name, "POST /oauth2/token");
    [gateway, upstream, token, rotate]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_is_one_trace_from_the_gateway_through_the_token_service_to_its_statement() {
    let (receiver, _) = traced();
    let (upstream_url, upstream_saw) = upstream();
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |s| {
        s.telemetry.otlp_endpoint = Some(HttpUrl::parse(&receiver.url).expect("url"));
        // the test's own address is trusted; 127.0.0.2 is a caller like any other
        s.telemetry.trusted_traceparent_sources = vec![TrustedNet::parse("127.0.0.1").expect("net")];
        s.gateway.routes.push(RouteSettings {
            prefix: "/echo".into(),
            upstream: HttpUrl::parse(&upstream_url).expect("url"),
            resource: None,
            scopes: Vec::new(),
            method_scopes: Default::default(),
            auth: false,
            allowed_origins: Vec::new(),
            allow_form_token: false,
            allow_query_token: false,
            mcp: false,
            tools: Default::default(),
            tool_scopes: Default::default(),
            upstream_auth: Default::default(),
            upstream_api_key: None,
            upstream_headers: Default::default(),
            upstream_oauth: None,
        });
    })
    .await;
    let (client_id, first) = signed_in(&system).await;

    // a trusted caller's trace is continued
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let second = refresh(&http(), &system, &client_id, &first, &format!("00-{caller_trace}-{caller_span}-01")).await;
    flush().await;
    let continued: Vec<Received> =
        receiver.received().into_iter().filter(|r| hex(&r.span.trace_id) == caller_trace).collect();
    assert!(!continued.is_empty(), "the caller's trace id is kept");
    let [gateway, ..] = one_refresh_trace(&continued);
    assert_eq!(hex(&gateway.span.parent_span_id), caller_span, "the gateway's span is the caller's child");
    assert!(continued.iter().all(|r| r.service == "sallyport"), "one process: `up`'s service name");

    // an untrusted caller's is not: a new trace starts at the gateway, and still spans the hop
    let seen = receiver.received().len();
    let outsider = reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 2])).build().expect("client");
    let foreign_trace = "0af7651916cd43dd8448eb211c80319c";
    let third =
        refresh(&outsider, &system, &client_id, &second, &format!("00-{foreign_trace}-b7ad6b7169203331-01")).await;
    flush().await;
    let all = receiver.received();
    assert!(all.iter().all(|r| hex(&r.span.trace_id) != foreign_trace), "the outsider's trace id is never adopted");
    let fresh: Vec<&Received> = all[seen..].iter().filter(|r| is_server_of(r, "gateway")).collect();
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    assert!(fresh[0].span.parent_span_id.is_empty(), "the gateway starts the trace: no parent");
    let new_trace: Vec<Received> =
        all[seen..].iter().filter(|r| r.span.trace_id == fresh[0].span.trace_id).cloned().collect();
    one_refresh_trace(&new_trace);

    // an upstream gets the gateway's client span as its parent, never the caller's headers
    let echo_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let res = http()
        .get(format!("{}/echo/x", system.issuer))
        .header("traceparent", format!("00-{echo_trace}-{caller_span}-01"))
        .header("tracestate", "caller=1")
        .send()
        .await
        .expect("GET /echo");
    assert_eq!(res.status(), StatusCode::OK);
    let (traceparent, tracestate) =
        upstream_saw.lock().expect("lock").last().cloned().expect("the upstream was called");
    assert_eq!(tracestate.as_deref(), Some("caller=1"), "a trusted caller's tracestate goes on with its trace");
    let traceparent = traceparent.expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", echo_trace, "01"), "{traceparent}");
    assert_ne!(parts[2], caller_span, "the gateway's own span, not the caller's");
    flush().await;
    let all = receiver.received();
    let client = all.iter().find(|r| hex(&r.span.span_id) == parts[2]).expect("the gateway's client span");
    assert_eq!(client.span.kind, SpanKind::Client as i32);
    let server = all.iter().find(|r| r.span.span_id == client.span.parent_span_id).expect("its server span");
    assert!(is_server_of(server, "gateway"));
    assert_eq!(hex(&server.span.parent_span_id), caller_span);
    assert_eq!(server.span.name, "GET /echo");

    // an outsider's trace context reaches no upstream
    let res = outsider
        .get(format!("{}/echo/y", system.issuer))
        .header("traceparent", format!("00-{foreign_trace}-b7ad6b7169203331-01"))
        .header("tracestate", "outsider=1")
        .send()
        .await
        .expect("GET /echo");
    assert_eq!(res.status(), StatusCode::OK);
    let (traceparent, tracestate) =
        upstream_saw.lock().expect("lock").last().cloned().expect("the upstream was called");
    assert_eq!(tracestate, None, "an untrusted caller's tracestate stays at the gateway");
    let traceparent = traceparent.expect("the gateway's traceparent");
    assert!(!traceparent.contains(foreign_trace) && traceparent.starts_with("00-"), "{traceparent}");

    // no parameter of any statement or request reaches any span
    for r in &all {
        for kv in &r.span.attributes {
            let value = format!("{:?}", kv.value);
            for secret in [first.as_str(), second.as_str(), third.as_str(), PASSWORD, VERIFIER] {
                assert!(!value.contains(secret), "{} = {value} of {}", kv.key, r.span.name);
            }
        }
    }
    system.stop().await;
}

/// The receiver for the child process of the test below, when this process is that child.
const CHILD_RECEIVER: &str = "SALLYPORT_TRACES_TEST_RECEIVER";

#[test]
fn with_no_otlp_endpoint_nothing_is_exported() {
    let receiver = Receiver::start();
    // the same test binary, running only the test below, in a process of its own; the standard
    // OpenTelemetry variables point at the receiver too: only `telemetry.otlp_endpoint` turns traces on
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "traces_off_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_RECEIVER, &receiver.url)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{}/v1/traces", receiver.url))
        .output()
        .expect("run the child");
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("1 passed"), "the child ran: {shown}");
    assert!(!shown.contains("trace_id"), "no log line names a trace: {shown}");
    assert!(receiver.posts.lock().expect("lock").is_empty(), "nothing was sent");
}

/// Run by [`with_no_otlp_endpoint_nothing_is_exported`] in a child process: the system with
/// default telemetry settings, one refresh with a `traceparent`, and the exporter flushed (were
/// there one) before the process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of with_no_otlp_endpoint_nothing_is_exported"]
async fn traces_off_child() {
    assert!(std::env::var(CHILD_RECEIVER).is_ok(), "run by with_no_otlp_endpoint_nothing_is_exported");
    // info: the access log of every request would show a trace id, were there one
    let log = LogSettings { format: LogFormat::Json, filter: "info".into() };
    let traces = server::telemetry::init_traced(&log, &TelemetrySettings::default(), "sallyport").expect("telemetry");
    assert!(!traces.enabled());
    let db = TestDb::new().await;
    let system = support::start(&db, PASSWORD, 1, protocol::Clock::system(), |_| {}).await;
    assert!(system.settings.telemetry.otlp_endpoint.is_none());
    let (client_id, first) = signed_in(&system).await;
    refresh(&http(), &system, &client_id, &first, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").await;
    system.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::spawn_blocking(move || traces.shutdown()).await.expect("shutdown");
}
