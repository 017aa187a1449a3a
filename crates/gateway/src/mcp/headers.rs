//! The request metadata headers of the Streamable HTTP transport (MCP 2026-07-28, "Standard
//! Request Headers"): `Mcp-Method` mirrors `method`, `Mcp-Name` mirrors `params.name` or
//! `params.uri`. A component that reads the body must refuse a request whose headers disagree
//! with it, or the upstream and anything routing on the headers would see different calls.

use std::borrow::Cow;

use actix_web::http::header::{HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::message::Request;

pub const MCP_METHOD: &str = "mcp-method";
pub const MCP_NAME: &str = "mcp-name";

/// The names as `HeaderName`s: looked up by a `&str`, each request would parse the name again
/// and allocate it (actix's `AsHeaderName` for `&str`).
static METHOD_HEADER: HeaderName = HeaderName::from_static(MCP_METHOD);
static NAME_HEADER: HeaderName = HeaderName::from_static(MCP_NAME);

/// Why the headers and the body disagree (answered 400 with JSON-RPC -32020 `HeaderMismatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub &'static str);

/// Checks the mirrored headers against the body. Without `Mcp-Method` the request is of an
/// older protocol version and the body alone decides.
pub fn check(headers: &HeaderMap, request: &Request) -> Result<(), Mismatch> {
    let method = one(headers, &METHOD_HEADER)?;
    let name = one(headers, &NAME_HEADER)?;
    let Some(method) = method else {
        return match name {
            Some(_) => Err(Mismatch("Mcp-Name without Mcp-Method")),
            None => Ok(()),
        };
    };
    // the header era has no batches, and one header cannot describe several messages
    let [call] = request.calls.as_slice() else {
        return Err(Mismatch("Mcp-Method on a request that is not exactly one message"));
    };
    if request.batch {
        return Err(Mismatch("Mcp-Method on a batch"));
    }
    if method != call.method.as_bytes() {
        return Err(Mismatch("the Mcp-Method header does not match the body's method"));
    }
    match (name, call.name.as_deref()) {
        (None, None) => Ok(()),
        (Some(header), Some(body)) if *decode(header)? == *body.as_bytes() => Ok(()),
        (Some(_), Some(_)) => Err(Mismatch("the Mcp-Name header does not match the body")),
        (None, Some(_)) => Err(Mismatch("Mcp-Name is required for this method")),
        (Some(_), None) => Err(Mismatch("Mcp-Name on a method without a name")),
    }
}

/// The one value of a header; a repeated header is ambiguous.
fn one<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a [u8]>, Mismatch> {
    let mut values = headers.get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(Mismatch("a repeated Mcp-Method or Mcp-Name header"));
    }
    Ok(first.map(|v| v.as_bytes()))
}

/// "Value Encoding": `=?base64?{value}?=` carries what plain header characters cannot.
fn decode(value: &[u8]) -> Result<Cow<'_, [u8]>, Mismatch> {
    match value.strip_prefix(b"=?base64?").and_then(|v| v.strip_suffix(b"?=")) {
        Some(encoded) => STANDARD.decode(encoded).map(Cow::Owned).map_err(|_| Mismatch("Mcp-Name is not valid Base64")),
        None => Ok(Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;
    use crate::mcp::message::parse;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        h
    }

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#;

    #[test]
    fn matching_or_absent_headers_pass() {
        let req = parse(CALL).expect("parses");
        assert_eq!(check(&headers(&[]), &req), Ok(()));
        assert_eq!(check(&headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_weather")]), &req), Ok(()));
        assert_eq!(
            check(&headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?Z2V0X3dlYXRoZXI=?=")]), &req),
            Ok(())
        );
        let list = parse(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).expect("parses");
        assert_eq!(check(&headers(&[("mcp-method", "tools/list")]), &list), Ok(()));
    }

    #[test]
    fn disagreements_are_refused() {
        let req = parse(CALL).expect("parses");
        for bad in [
            headers(&[("mcp-method", "tools/list")]),
            headers(&[("mcp-method", "tools/call")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?ZWNobw==?=")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?***?=")]),
            headers(&[("mcp-name", "get_weather")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call"), ("mcp-name", "get_weather")]),
            headers(&[("mcp-method", "Tools/Call"), ("mcp-name", "get_weather")]),
        ] {
            assert!(check(&bad, &req).is_err(), "{bad:?}");
        }
        let batch = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#).expect("parses");
        assert!(check(&headers(&[("mcp-method", "tools/list")]), &batch).is_err());
    }
}
