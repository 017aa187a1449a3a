//! The request body of the token, revocation and introspection endpoints: form-encoded only
//! (RFC 6749 §4.1.3, RFC 7009 §2.1, RFC 7662 §2.1), parameters at most once (RFC 6749 §3.2),
//! empty values treated as absent (RFC 6749 §3.1).

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use futures_util::StreamExt;
use protocol::error::ErrorCode;
use server::OAuthError;

/// Largest body accepted; a token request is a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Parameters that may be repeated: RFC 8707 §2 allows several `resource` values.
const REPEATABLE: &[&str] = &["resource"];

/// Parameters whose values are secrets: `Debug` shows that they are there, not what they are.
const SECRET: &[&str] = &["client_secret", "code", "code_verifier", "refresh_token", "token", "password", "assertion"];

/// A parsed form: name/value pairs in order, none empty, none repeated unless allowed.
#[derive(Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |(n, v): &(String, String)| {
            let v = if SECRET.contains(&n.as_str()) { protocol::redact::REDACTED } else { v.as_str() };
            (n.clone(), v.to_owned())
        };
        f.debug_map().entries(self.pairs.iter().map(shown)).finish()
    }
}

impl Form {
    /// Checks the content type, reads the body within [`MAX_BODY`] and parses it.
    pub async fn read(req: &HttpRequest, mut payload: web::Payload) -> Result<Self, OAuthError> {
        if !is_form_content_type(req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
            return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| OAuthError::invalid_request(format!("cannot read the body: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(OAuthError::new(ErrorCode::PayloadTooLarge, "the request body is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Self::parse(&body)
    }

    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url_decode_pairs(body) {
            if value.is_empty() {
                continue;
            }
            if !REPEATABLE.contains(&name.as_str()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!("the parameter {name} is repeated")));
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is required")))
    }

    /// A parameter parsed into its protocol type; one that cannot be is `invalid_request`
    /// (RFC 6749 §5.2: "otherwise malformed"), before it reaches a query.
    pub fn parsed<'a, T, E: std::fmt::Display>(
        &'a self,
        name: &str,
        parse: impl FnOnce(&'a str) -> Result<T, E>,
    ) -> Result<Option<T>, OAuthError> {
        self.get(name)
            .map(|v| parse(v).map_err(|e| OAuthError::invalid_request(format!("the parameter {name} {e}"))))
            .transpose()
    }

    /// A parameter that must be present, parsed like [`Form::parsed`].
    pub fn require_parsed<'a, T, E: std::fmt::Display>(
        &'a self,
        name: &str,
        parse: impl FnOnce(&'a str) -> Result<T, E>,
    ) -> Result<T, OAuthError> {
        self.parsed(name, parse)?
            .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is required")))
    }

    /// Every value of a repeatable parameter.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn url_decode_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|&b| b == b'&').filter(|part| !part.is_empty()).map(|part| {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        (form_decode(name), form_decode(value))
    })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a stray `%` stays
/// itself (as browsers do). Invalid UTF-8 becomes U+FFFD, which no identifier or secret contains.
pub fn form_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(raw.get(i + 1).copied()), hex(raw.get(i + 2).copied())) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(b: Option<u8>) -> Option<u8> {
    match b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded`, with or without parameters such as `charset`.
fn is_form_content_type(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_prints_no_secret() {
        let body = b"grant_type=authorization_code&code=spac_code-1&code_verifier=verifier-2&client_id=c\
&client_secret=secret-3&refresh_token=sprt_refresh-4&token=token-5";
        let form = Form::parse(body).expect("form");
        let shown = format!("{form:?}");
        for secret in ["code-1", "verifier-2", "secret-3", "refresh-4", "token-5"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        assert!(shown.contains("authorization_code") && shown.contains("client_id"), "{shown}");
    }

    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(form_decode(b"a+b%20c%2Bd"), "a b c+d");
        assert_eq!(form_decode(b"100%"), "100%");
        assert_eq!(form_decode(b"%zz%4"), "%zz%4");
        assert_eq!(form_decode(b"%C3%A9"), "é");
        assert_eq!(form_decode(b"%FF"), "\u{fffd}");
    }

    #[test]
    fn parameters_once_empty_absent_resource_repeatable() {
        let f = Form::parse(b"grant_type=refresh_token&scope=&resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb")
            .expect("parse");
        assert_eq!(f.get("grant_type"), Some("refresh_token"));
        assert_eq!(f.get("scope"), None, "empty counts as absent");
        assert_eq!(f.all("resource").collect::<Vec<_>>(), ["https://a", "https://b"]);
        let err = Form::parse(b"code=a&code=b").expect_err("repeated");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(Form::parse(b"client_secret=&client_secret=x").is_ok(), "an empty repeat is absent");
        assert!(Form::parse(b"").expect("empty").get("x").is_none());
    }

    #[test]
    fn parsed_parameters() {
        let f = Form::parse(b"code=a%00b&state=ok").expect("parse");
        let err = f.require_parsed("code", protocol::ident::PresentedSecret::parse).expect_err("NUL");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.is_some_and(|d| d.contains("code")));
        assert_eq!(
            f.parsed("state", |v| protocol::ident::vschar(v, 5).map(str::to_owned)).expect("ok").as_deref(),
            Some("ok")
        );
        assert!(f.parsed("absent", protocol::ident::PresentedSecret::parse).expect("absent").is_none());
        let missing = f.require_parsed("absent", protocol::ident::PresentedSecret::parse).expect_err("missing");
        assert_eq!(missing.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn content_types() {
        assert!(is_form_content_type(Some("application/x-www-form-urlencoded")));
        assert!(is_form_content_type(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")));
        assert!(!is_form_content_type(Some("application/json")));
        assert!(!is_form_content_type(Some("multipart/form-data; boundary=x")));
        assert!(!is_form_content_type(None));
    }
}
