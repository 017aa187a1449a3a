//! How a gateway route authenticates to its upstream (`upstream_auth`), and the rules a static
//! upstream credential (an API key header, a set of headers) keeps, whether it comes from the
//! configuration or from `sallyport route add`.

use serde::{Deserialize, Serialize};

/// What the gateway sends upstream in place of the client's `Authorization`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAuth {
    /// Nothing: the upstream trusts the gateway's identity headers (the behaviour before issue 20).
    #[default]
    None,
    /// One header with a key, the same for every user.
    ApiKey,
    /// A set of static headers, the same for every user.
    Headers,
    /// A per-user token from the upstream's own authorization server, which each user connects
    /// once (`/oauth2/connections`); see [`UpstreamOAuth`].
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl UpstreamAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ApiKey => "api_key",
            Self::Headers => "headers",
            Self::OAuth2 => "oauth2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "api_key" => Some(Self::ApiKey),
            "headers" => Some(Self::Headers),
            "oauth2" => Some(Self::OAuth2),
            _ => None,
        }
    }
}

/// `upstream_auth = "oauth2"`: what a route says explicitly about its upstream's authorization
/// server and Sallyport's client there. Whatever is left out is discovered (RFC 9728, then RFC 8414
/// or OpenID discovery, as the MCP authorization spec orders them); what is given overrides
/// discovery, for providers that publish no metadata. The client secret is not here: it is a
/// secret, sealed in the route's row or read from the configuration (`ConfigSecret`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOAuth {
    /// The upstream authorization server's issuer identifier (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 7009, used by Disconnect when given or advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// A client registered by hand at the upstream; without it Sallyport presents its client ID
    /// metadata document or registers dynamically (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scopes to ask the upstream for; default: its `scopes_supported` (RFC 9728).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The upstream's resource identifier (RFC 8707) to ask tokens for; default: the `resource` of
    /// its protected resource metadata (RFC 9728); none with a configured issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Let discovery, registration and token requests reach loopback and private addresses (and
    /// http on loopback): an upstream inside the deployment's network, tests, `sallyport up`. Off:
    /// global unicast only, the SSRF policy of client ID metadata documents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_hosts: bool,
}

/// Headers an upstream credential may not set: the message framing and the connection
/// (RFC 9110 §7.6.1, §8.6), what the gateway itself writes (`X-Forwarded-*`, `X-Sallyport-*`)
/// and what would make the upstream see another origin (`Host`, `Forwarded`).
fn reserved(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "content-type"
            | "expect"
            | "forwarded"
    ) || name.starts_with("proxy-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("x-sallyport-")
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one header of a static credential; the name comes back lowercased (header names are
/// case-insensitive, RFC 9110 §5.1). The error never repeats the value.
pub fn check_header(name: &str, value: &str) -> Result<String, String> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() || !lower.bytes().all(is_tchar) {
        return Err(format!("{name:?} is not a header name"));
    }
    if reserved(&lower) {
        return Err(format!("{lower} cannot be set by an upstream credential"));
    }
    // RFC 9110 §5.5: visible characters, spaces and tabs inside, none around; never CR or LF
    let bytes = value.as_bytes();
    let visible = |b: &u8| (0x21..=0x7e).contains(b) || *b >= 0x80;
    if value.is_empty()
        || !bytes.iter().all(|b| visible(b) || *b == b' ' || *b == b'\t')
        || !bytes.first().is_some_and(visible)
        || !bytes.last().is_some_and(visible)
    {
        return Err(format!("the value of {lower} is empty or not a valid header value"));
    }
    Ok(lower)
}

/// Checks a whole credential for its kind: `none` has no header, `api_key` exactly one, `headers`
/// at least one; no name twice. Returns the lowercased names, in order.
pub fn check_credential<'a>(
    kind: UpstreamAuth,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for (name, value) in headers {
        let name = check_header(name, value)?;
        if names.contains(&name) {
            return Err(format!("{name} is given twice"));
        }
        names.push(name);
    }
    match (kind, names.len()) {
        (UpstreamAuth::None | UpstreamAuth::OAuth2, 0) | (UpstreamAuth::ApiKey, 1) => Ok(names),
        (UpstreamAuth::Headers, n) if n > 0 => Ok(names),
        (UpstreamAuth::None, _) => Err("upstream_auth = \"none\" sends no credential: remove the headers".into()),
        (UpstreamAuth::ApiKey, _) => Err("upstream_auth = \"api_key\" needs exactly one header and its value".into()),
        (UpstreamAuth::Headers, _) => Err("upstream_auth = \"headers\" needs at least one header".into()),
        (UpstreamAuth::OAuth2, _) => {
            Err("upstream_auth = \"oauth2\" sends each user's own upstream token: remove the static headers".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [UpstreamAuth::None, UpstreamAuth::ApiKey, UpstreamAuth::Headers, UpstreamAuth::OAuth2] {
            assert_eq!(UpstreamAuth::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(UpstreamAuth::parse("basic"), None);
    }

    #[test]
    fn header_rules() {
        assert_eq!(check_header("X-API-Key", "k 1").as_deref(), Ok("x-api-key"));
        assert_eq!(check_header("Authorization", "Bearer abc").as_deref(), Ok("authorization"));
        for (name, value, why) in [
            ("", "v", "empty name"),
            ("x key", "v", "space in name"),
            ("x:k", "v", "colon in name"),
            ("x-k", "", "empty value"),
            ("x-k", " v", "leading space"),
            ("x-k", "a\r\nx-evil: 1", "CRLF"),
            ("x-k", "a\0b", "NUL"),
            ("Host", "evil", "host"),
            ("Content-Length", "1", "framing"),
            ("X-Sallyport-Subject", "admin", "identity"),
            ("X-Forwarded-For", "1.2.3.4", "forwarding"),
            ("Proxy-Authorization", "x", "proxy"),
        ] {
            let e = check_header(name, value).expect_err(why);
            assert!(!e.contains("evil") || name == "Host", "the value is not repeated: {e}");
        }
    }

    #[test]
    fn credential_shapes() {
        assert_eq!(check_credential(UpstreamAuth::None, []), Ok(vec![]));
        assert!(check_credential(UpstreamAuth::None, [("x-a", "1")]).is_err());
        assert_eq!(check_credential(UpstreamAuth::ApiKey, [("X-A", "1")]), Ok(vec!["x-a".into()]));
        assert!(check_credential(UpstreamAuth::ApiKey, []).is_err());
        assert!(check_credential(UpstreamAuth::ApiKey, [("x-a", "1"), ("x-b", "2")]).is_err());
        assert!(check_credential(UpstreamAuth::Headers, []).is_err());
        assert!(check_credential(UpstreamAuth::Headers, [("x-a", "1"), ("X-A", "2")]).is_err(), "twice");
        assert_eq!(check_credential(UpstreamAuth::Headers, [("x-a", "1"), ("x-b", "2")]).map(|n| n.len()), Ok(2));
        assert_eq!(check_credential(UpstreamAuth::OAuth2, []), Ok(vec![]));
        assert!(check_credential(UpstreamAuth::OAuth2, [("x-a", "1")]).is_err());
    }
}
