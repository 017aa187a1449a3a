//! The streaming reverse proxy: SSE event by event, bodies of any size, cancellation, hop-by-hop
//! and forwarding headers, redirects passed on, 502 and 504 as JSON, TLS to `https` upstreams.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use server::config::RouteSettings;

use super::support::{SilentUpstream, Stack, http_url};

#[tokio::test(flavor = "multi_thread")]
async fn sse_events_reach_the_client_one_by_one() {
    let s = Stack::start().await;
    let res = s
        .http
        .get(s.url("/mcp/sse"))
        .bearer_auth(s.token())
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("sse");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert!(res.headers().get("content-length").is_none(), "a stream has no length");
    let mut stream = res.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("bytes");
    let sent_when_first_arrived = s.up.events_sent.load(Ordering::SeqCst);
    assert!(String::from_utf8_lossy(&first).starts_with("id: 0\n"), "{first:?}");
    assert!(
        sent_when_first_arrived < 5,
        "the first event arrived before the last one was sent ({sent_when_first_arrived} sent)"
    );
    let mut all = first.to_vec();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.expect("bytes"));
    }
    let text = String::from_utf8(all).expect("utf-8");
    assert_eq!(text.matches("data: ").count(), 5, "{text}");
    assert!(text.ends_with("id: 4\ndata: {\"n\":4}\n\n"));
}

/// SIGTERM drains: a stream in flight on one worker is not cut when the other worker, idle, stops
/// first, even when the stream rides an upstream connection that worker opened. Workers take
/// connections in turn, so one and then two warm-up requests put the stream on each worker.
#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_lets_a_stream_in_flight_finish() {
    for warm_ups in [1, 2] {
        let s = Stack::start().await;
        let token = s.token();
        let fresh = || reqwest::Client::builder().no_proxy().build().expect("client");
        for _ in 0..warm_ups {
            let res = fresh().get(s.url("/mcp/hop")).bearer_auth(&token).send().await.expect("warm-up");
            assert_eq!(res.status(), StatusCode::OK);
            res.bytes().await.expect("warm-up body");
        }
        let res = fresh().get(s.url("/mcp/sse")).bearer_auth(&token).send().await.expect("sse");
        assert_eq!(res.status(), StatusCode::OK);
        let mut stream = res.bytes_stream();
        let mut all = stream.next().await.expect("a first event").expect("bytes").to_vec();
        let gateway = s.gateway;
        let stopping = tokio::spawn(gateway.stop());
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.expect("the stream is not cut"));
        }
        let text = String::from_utf8(all).expect("utf-8");
        assert_eq!(text.matches("data: ").count(), 5, "after {warm_ups} warm-up(s): {text}");
        tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("stopped").expect("stop task");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    let s = Stack::start().await;
    let res = s.get_with("/mcp/forever", &s.token()).await;
    let mut stream = res.bytes_stream();
    stream.next().await.expect("an event").expect("bytes");
    assert!(!s.up.stream_dropped.load(Ordering::SeqCst));
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.up.stream_dropped.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upstream stream is still running after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_before_the_answer_cancels_the_upstream_request() {
    let silent = SilentUpstream::start().await;
    let upstream = silent.url.clone();
    let s = Stack::start_with(move |settings, _| {
        settings.gateway.upstream_timeout_ms = Duration::from_secs(20);
        let public = settings.gateway.routes.iter().find(|r| r.prefix == "/public").expect("public").clone();
        settings.gateway.routes.push(RouteSettings {
            prefix: "/silent".into(),
            upstream: http_url(&upstream),
            ..public
        });
    })
    .await;
    let waiting = tokio::spawn(s.http.get(s.url("/silent")).send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !silent.started.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upstream never got the request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!silent.closed.load(Ordering::SeqCst));
    waiting.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !silent.closed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upstream request still runs after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways() {
    let s = Stack::start().await;
    // 3 MiB in 64 KiB chunks with no declared length: chunked all the way to the upstream
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let expected_sum: u64 = chunk.iter().map(|b| u64::from(*b)).sum::<u64>() * 48;
    let chunks = futures_util::stream::iter((0..48).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let res = s
        .http
        .post(s.url("/mcp/count"))
        .bearer_auth(s.token())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    assert_eq!(seen["bytes"], 48 * 65_536);
    assert_eq!(seen["sum"], expected_sum);

    // a declared length above the buffering limit streams too
    let big = vec![7u8; 200_000];
    let res = s.http.post(s.url("/mcp/count")).bearer_auth(s.token()).body(big).send().await.expect("upload");
    let seen: Value = res.json().await.expect("json");
    assert_eq!((seen["bytes"].as_u64(), seen["sum"].as_u64()), (Some(200_000), Some(1_400_000)));
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let s = Stack::start().await;
    let res = s
        .http
        .post(s.url("/mcp/echo"))
        .bearer_auth(s.token())
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-end-to-end", "kept")
        .header("mcp-session-id", "session-1")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.expect("json");
    let headers = &seen["headers"];
    for gone in ["x-secret-hop", "te", "proxy-authorization", "keep-alive", "upgrade", "transfer-encoding"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the upstream: {headers}");
    }
    assert_eq!(headers["x-end-to-end"][0], "kept");
    assert_eq!(headers["mcp-session-id"][0], "session-1");
    assert_eq!(seen["body"], "{}");

    let res = s.get_with("/mcp/hop", &s.token()).await;
    for gone in ["keep-alive", "proxy-authenticate", "trailer"] {
        assert!(res.headers().get(gone).is_none(), "{gone} reached the client");
    }
    assert_eq!(res.headers()["x-end-to-end"], "kept");
    assert_eq!(res.headers()["content-length"], "3", "a known length is kept");
    assert_eq!(res.text().await.expect("body"), "hop");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_name_the_client() {
    let s = Stack::start().await;
    let res = s
        .http
        .get(s.url("/public/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.9")
        .send()
        .await
        .expect("request");
    let seen: Value = res.json().await.expect("json");
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1", "an untrusted chain is dropped");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], s.gateway.url.trim_start_matches("http://"));
    assert!(h.get("forwarded").is_none());

    let trusting = Stack::start_with(|settings, _| settings.gateway.trust_forwarded_for = true).await;
    let res = trusting
        .http
        .get(trusting.url("/public/x"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "gw.example.com")
        .send()
        .await
        .expect("request");
    let seen: Value = res.json().await.expect("json");
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"][0], "203.0.113.9, 198.51.100.2, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-host"][0], "gw.example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_and_statuses_pass_through() {
    let s = Stack::start().await;
    let res = s.get_with("/mcp/redirect", &s.token()).await;
    assert_eq!(res.status(), StatusCode::FOUND, "the proxy does not follow redirects");
    assert_eq!(res.headers()["location"], "/elsewhere");
    let res = s.http.head(s.url("/public/x")).send().await.expect("head");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_upstream_is_a_json_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let s = Stack::start_with(move |settings, _| {
        for route in &mut settings.gateway.routes {
            if route.prefix == "/public" {
                route.upstream = http_url(&format!("http://127.0.0.1:{port}/public"));
            }
        }
    })
    .await;
    let res = s.http.get(s.url("/public/x")).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().contains(&port.to_string()), "no internals in the body: {body}");
}

/// A server certificate for `localhost` that no platform trusts (self-signed, made for this test;
/// its subject names no system root, such as a distribution's `CN=localhost` snake-oil one).
const SELF_SIGNED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBwzCCAWmgAwIBAgIUAR3EhTmQb7InCTSs0TmPyE/6sd4wCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXU2FsbHlwb3J0IHRlc3QgdXBzdHJlYW0wIBcNMjYxMjA3MjM1
NDAzWhgPMjEyNjExMTMyMzU0MDNaMCIxIDAeBgNVBAMMF1NhbGx5cG9ydCB0ZXN0
IHVwc3RyZWFtMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAuLtrBL9WdBdm/Aa
Q5tnv8Bb97H+jK2FDPcBKUdhlBELx6UpdLCfcbE5Jc0pMzB1rD2d658mGTCfiVSd
YAK/rqN7MHkwHQYDVR0OBBYEFJXq8RkTyCX2WolOlEKaeZW9UdGpMB8GA1UdIwQY
MBaAFJXq8RkTyCX2WolOlEKaeZW9UdGpMBQGA1UdEQQNMAuCCWxvY2FsaG9zdDAM
BgNVHRMBAf8EAjAAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gA
MEUCIQD/E55iZbKTjncpoYVlNheW483oTdvmE8Km38QhCemRxQIgN6LmClhyAoZF
kqZ99DwVCkwsXWsRcoL8UZp7EOH3FS4=
-----END CERTIFICATE-----
";
const SELF_SIGNED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYz8Lv7tzKLB0mjnY
Gg6q/NLf3aVF2/7eTvqIqDIFGWehRANCAAQC4u2sEv1Z0F2b8BpDm2e/wFv3sf6M
rYUM9wEpR2GUEQvHpSl0sJ9xsTklzSkzMHWsPZ3rnyYZMJ+JVJ1gAr+u
-----END PRIVATE KEY-----
";

/// An `https` upstream is reached over TLS, named by SNI and offered HTTP/1.1 by ALPN, and its
/// certificate is checked against the platform's roots: one nobody vouches for ends the handshake
/// (the gateway's alert) and the client gets a JSON 502.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_is_verified_and_an_untrusted_one_is_a_json_502() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(SELF_SIGNED_CERT.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).expect("key");
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else { return };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let mut tls = rustls::ServerConnection::new(config).expect("server connection");
        let handshake = tls.complete_io(&mut tcp);
        let _ = seen_tx.send((
            tls.server_name().map(str::to_owned),
            tls.alpn_protocol().map(<[u8]>::to_vec),
            handshake.err().map(|e| e.to_string()),
        ));
    });
    let s = Stack::start_with(move |settings, _| {
        let public = settings.gateway.routes.iter().find(|r| r.prefix == "/public").expect("public").clone();
        settings.gateway.routes.push(RouteSettings {
            prefix: "/tls".into(),
            upstream: http_url(&format!("https://localhost:{port}")),
            ..public
        });
    })
    .await;
    let res = s.http.get(s.url("/tls/x")).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "temporarily_unavailable");
    let (sni, alpn, handshake) = seen_rx.recv_timeout(Duration::from_secs(5)).expect("the upstream saw a handshake");
    assert_eq!(sni.as_deref(), Some("localhost"));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let error = handshake.expect("the gateway refused the certificate");
    // the gateway's fatal alert (`UnknownCA` here; which one depends on the platform's verifier)
    assert!(error.contains("received fatal alert"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_cannot_be_connected_to_in_time_is_a_json_504() {
    // a listener that never accepts, its backlog filled: the kernel drops further SYNs, so a
    // connection attempt hangs as it would against a host that is down
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let _listener = socket.listen(1).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            fillers.push(stream);
        }
    }
    let s = Stack::start_with(move |settings, _| {
        settings.gateway.upstream_connect_timeout_ms = Duration::from_millis(300);
        settings.gateway.upstream_timeout_ms = Duration::from_secs(20);
        let public = settings.gateway.routes.iter().find(|r| r.prefix == "/public").expect("public").clone();
        settings.gateway.routes.push(RouteSettings {
            prefix: "/down".into(),
            upstream: http_url(&format!("http://{addr}")),
            ..public
        });
    })
    .await;
    let started = Instant::now();
    let res = s.http.get(s.url("/down")).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5), "the connect timeout, not the header timeout, ended it");
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "temporarily_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_is_a_json_504() {
    let s = Stack::start_with(|settings, _| settings.gateway.upstream_timeout_ms = Duration::from_millis(300)).await;
    let started = Instant::now();
    let res = s.get_with("/mcp/slow", &s.token()).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3), "answered at the timeout, not when the upstream did");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    // a stream that started in time may run longer than the timeout
    let res = s.get_with("/mcp/sse", &s.token()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.expect("whole stream").matches("data: ").count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn services_and_upstreams_get_one_client_address() {
    let send = |s: &Stack, path: &'static str| {
        s.http
            .post(s.url(path))
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
            .header("x-sallyport-client-ip", "192.0.2.66")
            .send()
    };
    let ips = |seen: &Value| seen["headers"]["x-sallyport-client-ip"].clone();
    let untrusting = Stack::start().await;
    for path in ["/public/x", "/oauth2/register"] {
        let seen: Value = send(&untrusting, path).await.expect("request").json().await.expect("json");
        assert_eq!(ips(&seen), serde_json::json!(["127.0.0.1"]), "{path}: the socket's address, one header");
    }
    let trusting = Stack::start_with(|settings, _| settings.gateway.trust_forwarded_for = true).await;
    for path in ["/public/x", "/oauth2/register", "/oauth2/login"] {
        let seen: Value = send(&trusting, path).await.expect("request").json().await.expect("json");
        assert_eq!(ips(&seen), serde_json::json!(["198.51.100.2"]), "{path}: the address the ingress saw");
    }
}
