//! Where a bearer token may come from (RFC 6750 §2): the `Authorization` header always, a form
//! body (§2.2) or the query (§2.3) only where the route enables them. Pure functions.

use std::borrow::Cow;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};

/// Longer credentials are not access tokens this gateway issued.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The parameter name of §2.2 and §2.3.
const PARAM: &str = "access_token";

/// `b64token` (RFC 6750 §2.1) within [`MAX_TOKEN_LEN`].
pub fn is_b64token(token: &[u8]) -> bool {
    token.len() <= MAX_TOKEN_LEN && protocol::ident::is_b64token(token)
}

/// The token in `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
/// `Ok(None)` when there is no such header or it carries another scheme (that is no bearer token,
/// RFC 6750 §3.1); `Err` when it is malformed. One pass over the bytes.
pub fn from_header(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION);
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err("the request has more than one Authorization header");
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    let end = rest.iter().rposition(|b| *b != b' ').map_or(start, |last| last + 1);
    let token = &rest[start..end];
    if token.is_empty() {
        return Err("the Bearer credentials are empty");
    }
    if !is_b64token(token) {
        return Err("the bearer token is malformed");
    }
    // b64token is ASCII: this cannot fail
    std::str::from_utf8(token).map(Some).map_err(|_| "the bearer token is malformed")
}

/// The `access_token` parameter of a form-urlencoded string (a query or a form body), and the
/// string without it, every other pair kept byte for byte. `Err` when the parameter is repeated
/// (RFC 6750 §3.1 `invalid_request`) or malformed.
pub fn take_param(encoded: &str) -> Result<Option<(String, String)>, &'static str> {
    let mut token = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in encoded.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key) != PARAM {
            kept.push(pair);
            continue;
        }
        if token.is_some() {
            return Err("the access_token parameter is repeated");
        }
        token = Some(decode(value).into_owned());
    }
    match token {
        Some(t) if is_b64token(t.as_bytes()) => Ok(Some((t, kept.join("&")))),
        Some(_) => Err("the access_token parameter is malformed"),
        None => Ok(None),
    }
}

/// One form-urlencoded component, decoded (`+` is a space).
fn decode(component: &str) -> Cow<'_, str> {
    if !component.contains(['%', '+']) {
        return Cow::Borrowed(component);
    }
    // a lone component parses as a key; an `=` inside a value must not split it
    let escaped = component.replace('=', "%3D");
    let decoded = url::form_urlencoded::parse(escaped.as_bytes()).next().map(|(k, _)| k.into_owned());
    Cow::Owned(decoded.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn b64token_syntax() {
        for ok in ["a", "aZ09-._~+/", "abc==", "eyJ.eyJ.sig"] {
            assert!(is_b64token(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "=", "a=b", "a b", "a,b", "a\"b", "\u{e9}", "a\tb"] {
            assert!(!is_b64token(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn header_scheme_is_case_insensitive() {
        for v in ["Bearer abc.def-_~+/==", "bearer abc.def-_~+/==", "BEARER  abc.def-_~+/=="] {
            assert_eq!(from_header(&headers(&[v])), Ok(Some("abc.def-_~+/==")), "{v}");
        }
    }

    #[test]
    fn other_schemes_are_no_bearer_token() {
        assert_eq!(from_header(&headers(&[])), Ok(None));
        assert_eq!(from_header(&headers(&["Basic dXNlcjpwdw=="])), Ok(None));
        assert_eq!(from_header(&headers(&["Bearerx abc"])), Ok(None));
    }

    #[test]
    fn malformed_headers() {
        assert!(from_header(&headers(&["Bearer"])).is_err());
        assert!(from_header(&headers(&["Bearer   "])).is_err());
        assert!(from_header(&headers(&["Bearer a b"])).is_err());
        assert!(from_header(&headers(&["Bearer a,b"])).is_err());
        assert!(from_header(&headers(&["Bearer =="])).is_err());
        let mut binary = HeaderMap::new();
        binary.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer ab\xffcd").expect("value"));
        assert!(from_header(&binary).is_err());
        assert!(from_header(&headers(&["Bearer a", "Bearer b"])).is_err());
        assert!(from_header(&headers(&[&format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1))])).is_err());
    }

    #[test]
    fn parameters() {
        assert_eq!(take_param("a=1&b=2"), Ok(None));
        assert_eq!(take_param(""), Ok(None));
        assert_eq!(take_param("access_token=t0k.en&a=1+2"), Ok(Some(("t0k.en".into(), "a=1+2".into()))));
        assert_eq!(take_param("a=%26&access%5Ftoken=xyz&b=%20"), Ok(Some(("xyz".into(), "a=%26&b=%20".into()))));
        assert_eq!(take_param("access_token=xyz"), Ok(Some(("xyz".into(), String::new()))));
        assert!(take_param("access_token=a&access_token=b").is_err());
        assert!(take_param("access_token=").is_err());
        assert!(take_param("access_token=a%20b").is_err());
    }
}
