//! Header rules of a reverse proxy (RFC 9110 §7.6.1): hop-by-hop headers stay on their hop, the
//! upstream learns who called through `X-Forwarded-*`, and actix's `http` 0.2 types become
//! the upstream client's `http` 1 types here, at this one boundary.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{self as ax, HeaderMap as AxHeaderMap, HeaderName as AxName, HeaderValue as AxValue};
use http::header::{self as up, HeaderMap as UpHeaderMap, HeaderName as UpName, HeaderValue as UpValue};

use server::cookies::OwnCookies;
use server::http::CLIENT_IP_HEADER;

use crate::principal::Principal;

/// The prefix of the identity headers the gateway adds; client-sent copies never pass.
pub const IDENTITY_PREFIX: &str = "x-sallyport-";

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// `Proxy-*` family and the non-standard `Keep-Alive`/`Proxy-Connection`.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade")
        || name.starts_with("proxy-")
}

/// The header names listed in `Connection` (lowercase): they are hop-by-hop too.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Who called the gateway, for the `X-Forwarded-*` headers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's address (the client, or the ingress in front of the gateway).
    pub peer: Option<IpAddr>,
    /// The client's address as the gateway derived it (`server::http::forwarded_client_ip`): sent
    /// as the one `X-Sallyport-Client-Ip`, the only client address the services read.
    pub client_ip: IpAddr,
    /// `https` when the gateway itself terminated TLS.
    pub scheme: &'static str,
    /// Keep the incoming `X-Forwarded-*` chain and `Forwarded` (the gateway sits behind a trusted proxy).
    pub trust_forwarded: bool,
    /// Who the bearer middleware verified, on a protected route: the upstream learns it from the
    /// `X-Sallyport-*` headers the proxy writes itself. Whatever `X-Sallyport-*` headers the
    /// request carries are never copied, so neither a client nor its `Connection` header can
    /// forge or remove the identity.
    pub identity: Option<Principal>,
    /// Sallyport's cookies, kept from this upstream both ways: removed from `Cookie`, and a
    /// `Set-Cookie` naming one is dropped. `None` when the target is one of Sallyport's services.
    pub strip_cookies: Option<Arc<OwnCookies>>,

    /// The route's upstream credential (`upstream_auth`), which replaces the client's `Authorization`.
    pub credential: Option<Arc<super::UpstreamCredential>>,
    /// Pass the caller's W3C `traceparent`/`tracestate` on unchanged: only with traces off, from a
    /// trusted caller (`telemetry.trusted_traceparent_sources`). Otherwise they are dropped, and
    /// with traces on the proxy writes its own (`server::telemetry::propagation`).
    pub keep_traceparent: bool,
    /// The `Host` of the target, made once at start (`router::Upstream::host_header`); `None`
    /// leaves it to hyper, which derives it from the URL for every request.
    pub upstream_host: Option<UpValue>,
}

/// The request headers for the upstream: end-to-end headers of the client's request, without
/// `Host` (the upstream URL decides it), `Expect` (answered by the gateway), client-sent
/// forwarding headers unless trusted, and with `X-Forwarded-For/Proto/Host` set.
pub fn upstream_request_headers(incoming: &AxHeaderMap, caller: &Caller) -> UpHeaderMap {
    let named = connection_tokens(incoming.get_all(ax::CONNECTION).map(AxValue::as_bytes));
    let mut out = UpHeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || named.iter().any(|t| t == n)
            || matches!(n, "host" | "expect" | "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host")
            || (n == "forwarded" && !caller.trust_forwarded)
            || n.starts_with(IDENTITY_PREFIX)
            || (!caller.keep_traceparent && matches!(n, "traceparent" | "tracestate"))
        {
            continue;
        }
        if n == "cookie"
            && let Some(own) = &caller.strip_cookies
        {
            if let Some(kept) = foreign_cookies(value.as_bytes(), own) {
                out.append(up::COOKIE, kept);
            }
            continue;
        }
        if let (Ok(name), Ok(value)) = (UpName::from_bytes(n.as_bytes()), UpValue::from_bytes(value.as_bytes())) {
            out.append(name, value);
        }
    }
    // the client's Host was dropped above: the upstream's URL decides it
    if let Some(host) = &caller.upstream_host {
        out.insert(up::HOST, host.clone());
    }
    // overwritten, never appended: the services budget and audit by this one address
    let client_ip = ip_value(caller.client_ip);
    out.insert(UpName::from_static(CLIENT_IP_HEADER), client_ip.clone());
    if let Some(principal) = &caller.identity {
        let token = principal.token();
        for (name, value) in [
            ("x-sallyport-subject", &token.subject_header),
            ("x-sallyport-client-id", &token.client_id_header),
            ("x-sallyport-scope", &token.scope_header),
            ("x-sallyport-subject-type", &token.subject_type_header),
        ] {
            if let Ok(value) = UpValue::from_bytes(value.as_bytes()) {
                out.insert(UpName::from_static(name), value);
            }
        }
    }
    // the usual case, the peer alone, shares the client address's bytes instead of formatting it again
    let forwarded_for = match caller.peer {
        Some(peer) if !caller.trust_forwarded && peer == caller.client_ip => Some(client_ip),
        _ => UpValue::from_str(&forwarded_for(incoming, caller)).ok(),
    };
    if let Some(v) = forwarded_for {
        out.insert(up::HeaderName::from_static("x-forwarded-for"), v);
    }
    let trusted = |name: &str| caller.trust_forwarded.then(|| incoming.get(name).cloned()).flatten();
    let proto = trusted("x-forwarded-proto").and_then(|v| UpValue::from_bytes(v.as_bytes()).ok());
    out.insert(
        up::HeaderName::from_static("x-forwarded-proto"),
        proto.unwrap_or_else(|| UpValue::from_static(caller.scheme)),
    );
    let host = trusted("x-forwarded-host").or_else(|| incoming.get(ax::HOST).cloned());
    if let Some(v) = host.and_then(|v| UpValue::from_bytes(v.as_bytes()).ok()) {
        out.insert(up::HeaderName::from_static("x-forwarded-host"), v);
    }
    if let Some(credential) = &caller.credential {
        credential.apply(&mut out);
    }
    out
}

/// An IP address as a header value, formatted without an intermediate `String`.
fn ip_value(ip: IpAddr) -> UpValue {
    use std::io::Write;
    // the longest IPv6 text form is 45 bytes
    let mut buf = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    UpValue::from_bytes(&buf[..len]).unwrap_or_else(|_| UpValue::from_static("0.0.0.0"))
}

/// A `Cookie` header without Sallyport's cookies; `None` when nothing else is left.
fn foreign_cookies(value: &[u8], own: &OwnCookies) -> Option<UpValue> {
    let value = String::from_utf8_lossy(value);
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !own.is_ours(pair.split_once('=').map_or(*pair, |(name, _)| name)))
        .collect();
    if kept.is_empty() { None } else { UpValue::from_str(&kept.join("; ")).ok() }
}

/// Whether an upstream's `Set-Cookie` would set one of Sallyport's cookies. A nameless cookie
/// (`=name=value`, or no `=` at all) counts by its value: a browser sends it back as that value
/// alone, which a server reads as `name=value` (RFC 6265bis §5.7).
fn sets_own_cookie(value: &[u8], own: &OwnCookies) -> bool {
    let value = String::from_utf8_lossy(value);
    let pair = value.split(';').next().unwrap_or_default();
    let (name, rest) = pair.split_once('=').unwrap_or(("", pair));
    let name = if name.trim().is_empty() { rest.split_once('=').map_or(rest, |(n, _)| n) } else { name };
    own.is_ours(name)
}

/// `X-Forwarded-For`: the incoming chain when trusted, then the peer's address.
fn forwarded_for(incoming: &AxHeaderMap, caller: &Caller) -> String {
    let mut chain: Vec<String> = Vec::new();
    if caller.trust_forwarded {
        chain.extend(
            incoming
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    if let Some(peer) = caller.peer {
        chain.push(peer.to_string());
    }
    chain.join(", ")
}

/// The response headers for the client: end-to-end headers of the upstream's response. Framing
/// (`Content-Length`) is left to actix, which derives it from the body it streams, except on a
/// 304, whose `Content-Length` describes the cached representation (RFC 9110 §8.6).
/// An upstream (`strip_cookies`) cannot set Sallyport's cookies: such a `Set-Cookie` is dropped.
pub fn client_response_headers(
    upstream: &UpHeaderMap,
    keep_content_length: bool,
    strip_cookies: Option<&OwnCookies>,
) -> AxHeaderMap {
    let named = connection_tokens(upstream.get_all(up::CONNECTION).iter().map(UpValue::as_bytes));
    let mut out = AxHeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || named.iter().any(|t| t == n)
            || (n == "content-length" && !keep_content_length)
            || (n == "set-cookie" && strip_cookies.is_some_and(|own| sets_own_cookie(value.as_bytes(), own)))
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (AxName::from_bytes(n.as_bytes()), AxValue::from_bytes(value.as_bytes())) {
            out.append(name, value);
        }
    }
    out
}

/// The declared body length of a request, if any; `None` for a chunked or absent one.
pub fn content_length(headers: &AxHeaderMap) -> Option<u64> {
    headers.get(ax::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Whether a request carries a body (RFC 9112 §6.3: `Transfer-Encoding` or a non-zero `Content-Length`).
pub fn has_body(headers: &AxHeaderMap) -> bool {
    headers.contains_key(ax::TRANSFER_ENCODING) || content_length(headers).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::VerifiedToken;

    fn map(pairs: &[(&str, &str)]) -> AxHeaderMap {
        let mut m = AxHeaderMap::new();
        for (k, v) in pairs {
            m.append(AxName::from_bytes(k.as_bytes()).expect("name"), AxValue::from_str(v).expect("value"));
        }
        m
    }

    fn caller(trust: bool) -> Caller {
        Caller {
            peer: Some("10.1.1.1".parse().expect("ip")),
            client_ip: "10.1.1.1".parse().expect("ip"),
            scheme: "http",
            trust_forwarded: trust,
            identity: None,
            strip_cookies: None,

            credential: None,
            keep_traceparent: false,
            upstream_host: None,
        }
    }

    /// The client's `Host` never reaches the upstream; the upstream's own, made at start, does.
    #[test]
    fn the_host_is_the_upstreams_never_the_clients() {
        let incoming = map(&[("host", "gateway.example"), ("accept", "*/*")]);
        assert!(upstream_request_headers(&incoming, &caller(false)).get(up::HOST).is_none(), "left to hyper");
        let to_up = Caller { upstream_host: Some(UpValue::from_static("up:9000")), ..caller(false) };
        let out = upstream_request_headers(&incoming, &to_up);
        assert_eq!(out.get_all(up::HOST).iter().collect::<Vec<_>>(), [&UpValue::from_static("up:9000")]);
        assert_eq!(out.get("x-forwarded-host").map(UpValue::as_bytes), Some(&b"gateway.example"[..]));
    }

    /// W3C trace context passes only from a trusted caller with traces off; otherwise it is dropped
    /// (with traces on the proxy then writes the gateway's own).
    #[test]
    fn a_callers_trace_context_passes_only_when_trusted() {
        let incoming = map(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", "vendor=x"),
            ("accept", "*/*"),
        ]);
        let out = upstream_request_headers(&incoming, &caller(false));
        assert!(out.get("traceparent").is_none() && out.get("tracestate").is_none(), "{out:?}");
        assert_eq!(out.get("accept").map(|v| v.as_bytes()), Some(&b"*/*"[..]));
        let trusted = Caller { keep_traceparent: true, ..caller(false) };
        let out = upstream_request_headers(&incoming, &trusted);
        assert_eq!(
            out.get("traceparent").map(|v| v.as_bytes()),
            Some(&b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"[..])
        );
        assert_eq!(out.get("tracestate").map(|v| v.as_bytes()), Some(&b"vendor=x"[..]));
    }

    /// A principal as the bearer middleware leaves it: subject `user-1`, client `client-1`, scope `mcp`.
    fn verified() -> Principal {
        let claims = protocol::jwt::AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "user-1".into(),
            aud: protocol::jwt::Audience::One("https://mcp.example/mcp".into()),
            client_id: "client-1".into(),
            scope: "mcp".into(),
            iat: 0,
            exp: 1,
            nbf: None,
            jti: uuid::Uuid::nil(),
            auth_time: None,
            gid: None,
        };
        Principal::new(std::sync::Arc::new(VerifiedToken::new(claims).expect("verified")))
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let incoming = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("host", "gw.example"),
            ("expect", "100-continue"),
            ("x-sallyport-subject", "admin"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("accept", "application/json"),
            ("mcp-session-id", "abc"),
        ]);
        let out = upstream_request_headers(&incoming, &caller(false));
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "proxy-connection",
            "host",
            "expect",
            "x-sallyport-subject",
        ] {
            assert!(!names.contains(&gone), "{gone} must not be forwarded");
        }
        assert_eq!(out.get_all("accept").iter().count(), 2, "repeated end-to-end headers all pass");
        assert_eq!(out["mcp-session-id"], "abc");
        assert_eq!(out["x-forwarded-host"], "gw.example");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-for"], "10.1.1.1");
    }

    #[test]
    fn connection_cannot_remove_the_identity_the_bearer_middleware_added() {
        let incoming = map(&[
            ("connection", "X-Sallyport-Subject, x-sallyport-client-id, X-Sallyport-Scope, x-other"),
            ("x-sallyport-subject", "user-1"),
            ("x-sallyport-client-id", "client-1"),
            ("x-sallyport-scope", "mcp"),
            ("x-other", "1"),
        ]);
        let behind_bearer = Caller { identity: Some(verified()), ..caller(false) };
        let out = upstream_request_headers(&incoming, &behind_bearer);
        assert_eq!(out["x-sallyport-subject"], "user-1");
        assert_eq!(out["x-sallyport-client-id"], "client-1");
        assert_eq!(out["x-sallyport-scope"], "mcp");
        assert!(out.get("x-other").is_none(), "other named headers are still hop-by-hop");
    }

    #[test]
    fn forwarding_headers_are_trusted_only_when_configured() {
        let incoming = map(&[
            ("host", "gw.internal"),
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "gw.example.com"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        let untrusted = upstream_request_headers(&incoming, &caller(false));
        assert_eq!(untrusted["x-forwarded-for"], "10.1.1.1");
        assert_eq!(untrusted["x-forwarded-proto"], "http");
        assert_eq!(untrusted["x-forwarded-host"], "gw.internal");
        assert!(untrusted.get("forwarded").is_none());
        let trusted = upstream_request_headers(&incoming, &caller(true));
        assert_eq!(trusted["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.1.1.1");
        assert_eq!(trusted["x-forwarded-proto"], "https");
        assert_eq!(trusted["x-forwarded-host"], "gw.example.com");
        assert_eq!(trusted["forwarded"], "for=1.1.1.1");
    }

    #[test]
    fn response_headers() {
        let mut upstream = UpHeaderMap::new();
        upstream.insert(up::CONNECTION, UpValue::from_static("close, x-hop"));
        upstream.insert("x-hop", UpValue::from_static("1"));
        upstream.insert(up::TRANSFER_ENCODING, UpValue::from_static("chunked"));
        upstream.insert(up::CONTENT_LENGTH, UpValue::from_static("12"));
        upstream.insert("proxy-authenticate", UpValue::from_static("Basic"));
        upstream.append(up::SET_COOKIE, UpValue::from_static("a=1"));
        upstream.append(up::SET_COOKIE, UpValue::from_static("b=2"));
        upstream.insert("mcp-session-id", UpValue::from_static("s1"));
        let out = client_response_headers(&upstream, false, None);
        assert_eq!(out.get_all(ax::SET_COOKIE).count(), 2);
        assert_eq!(out.get("mcp-session-id").expect("kept"), "s1");
        for gone in ["connection", "x-hop", "transfer-encoding", "content-length", "proxy-authenticate"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(client_response_headers(&upstream, true, None).get(ax::CONTENT_LENGTH).expect("304 keeps it"), "12");
    }

    fn own() -> Arc<OwnCookies> {
        let issuer = server::config::Issuer::parse("https://as.example").expect("issuer");
        Arc::new(OwnCookies::new(&issuer, "sallyport_session"))
    }

    #[test]
    fn sallyports_cookies_never_reach_an_upstream() {
        let incoming = map(&[
            ("cookie", "theme=dark; __Secure-sallyport_session=spss_x; sallyport_session_login=abc"),
            ("cookie", "sallyport_session=spss_y"),
            ("cookie", "a=1;b=2"),
        ]);
        let to_upstream = Caller { strip_cookies: Some(own()), ..caller(false) };
        let out = upstream_request_headers(&incoming, &to_upstream);
        let cookies: Vec<&str> = out.get_all(up::COOKIE).iter().map(|v| v.to_str().expect("ascii")).collect();
        assert_eq!(cookies, ["theme=dark", "a=1; b=2"]);
        let to_service = upstream_request_headers(&incoming, &caller(false));
        assert_eq!(to_service.get_all(up::COOKIE).iter().count(), 3, "Sallyport's own services get them");
    }

    #[test]
    fn an_upstream_cannot_set_sallyports_cookies() {
        let mut upstream = UpHeaderMap::new();
        for v in [
            "theirs=1; Path=/",
            "sallyport_session=spss_planted; Path=/oauth2",
            "__Secure-sallyport_session=spss_planted; Secure",
            "__Host-SALLYPORT_SESSION_LOGIN=x; Secure; Path=/",
            "=sallyport_session=spss_nameless",
            "sallyport_session",
            "other=sallyport_session",
        ] {
            upstream.append(up::SET_COOKIE, UpValue::from_static(v));
        }
        let out = client_response_headers(&upstream, false, Some(&own()));
        let kept: Vec<&str> = out.get_all(ax::SET_COOKIE).map(|v| v.to_str().expect("ascii")).collect();
        assert_eq!(kept, ["theirs=1; Path=/", "other=sallyport_session"]);
    }

    #[test]
    fn the_client_address_is_one_header_the_client_cannot_write() {
        let incoming = map(&[("x-sallyport-client-ip", "203.0.113.66"), ("x-forwarded-for", "198.51.100.1")]);
        let from = Caller { client_ip: "192.0.2.7".parse().expect("ip"), ..caller(true) };
        let out = upstream_request_headers(&incoming, &from);
        let ips: Vec<&str> = out.get_all(CLIENT_IP_HEADER).iter().map(|v| v.to_str().expect("ascii")).collect();
        assert_eq!(ips, ["192.0.2.7"]);
    }

    #[test]
    fn bodies() {
        assert!(!has_body(&map(&[])));
        assert!(!has_body(&map(&[("content-length", "0")])));
        assert!(has_body(&map(&[("content-length", "3")])));
        assert!(has_body(&map(&[("transfer-encoding", "chunked")])));
        assert_eq!(content_length(&map(&[("content-length", "42")])), Some(42));
    }
}
