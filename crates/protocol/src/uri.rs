//! Redirect-URI and resource-URI rules (RFC 6749 §3.1.2, RFC 8252 §7, RFC 8707 §2, OAuth 2.1 §2.3.1).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not an absolute URI")]
    NotAbsolute,
    #[error("must not contain a fragment")]
    Fragment,
    #[error("must not contain user credentials")]
    Credentials,
    #[error("scheme '{0}' is not allowed")]
    Scheme(String),
    #[error("http is allowed only on a loopback host (127.0.0.1, [::1], localhost)")]
    InsecureHttp,
    #[error("too long")]
    TooLong,
}

/// URIs longer than this are refused outright: no client needs more and they bloat every row and log line.
pub const MAX_URI_LEN: usize = 2000;

/// RFC 8252 §7.3: the loopback hosts whose redirect port may vary.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => *ip == std::net::Ipv4Addr::LOCALHOST,
        Host::Ipv6(ip) => *ip == std::net::Ipv6Addr::LOCALHOST,
    }
}

fn parse_absolute(raw: &str) -> Result<Url, UriError> {
    if raw.len() > MAX_URI_LEN {
        return Err(UriError::TooLong);
    }
    // `Url::parse` would quietly trim surrounding spaces and accept a relative reference's failure
    // modes differently: refuse whitespace up front so the stored string is exactly what was sent.
    if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UriError::NotAbsolute);
    }
    let url = Url::parse(raw).map_err(|_| UriError::NotAbsolute)?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(UriError::Fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UriError::Credentials);
    }
    Ok(url)
}

fn is_loopback_url(url: &Url) -> bool {
    url.host().is_some_and(|h| is_loopback_host(&h))
}

/// Schemes that execute or read locally when a browser follows them.
const DANGEROUS_SCHEMES: &[&str] =
    &["javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ws", "wss"];

/// A validated redirect URI, kept exactly as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// `https`; `http` only on a loopback host; or a private-use scheme in reverse-domain form
    /// for native apps (RFC 8252 §7.1, e.g. `com.example.app:/callback`).
    pub fn parse(raw: &str) -> Result<Self, UriError> {
        let url = parse_absolute(raw)?;
        match url.scheme() {
            "https" => {
                if url.host().is_none() {
                    return Err(UriError::NotAbsolute);
                }
            }
            "http" => {
                if !is_loopback_url(&url) {
                    return Err(UriError::InsecureHttp);
                }
            }
            s if DANGEROUS_SCHEMES.contains(&s) => return Err(UriError::Scheme(s.to_owned())),
            // RFC 8252 §7.1: private-use schemes must be reverse-domain names the app controls
            s if s.contains('.') && s.split('.').all(|label| !label.is_empty()) => {}
            s => return Err(UriError::Scheme(s.to_owned())),
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` matches this registered URI: exactly, except that for a loopback
    /// `http` redirect any port is accepted (RFC 8252 §7.3), including a registration without one.
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        let (Ok(reg), Ok(got)) = (Url::parse(&self.0), Url::parse(presented)) else {
            return false;
        };
        reg.scheme() == "http"
            && got.scheme() == "http"
            && is_loopback_url(&reg)
            && reg.host() == got.host()
            && reg.path() == got.path()
            && reg.query() == got.query()
            && got.fragment().is_none()
            && got.username().is_empty()
            && got.password().is_none()
    }

    /// The host the browser will be sent to, for the consent page.
    pub fn host(&self) -> Option<String> {
        Url::parse(&self.0).ok().and_then(|u| u.host_str().map(str::to_owned))
    }

    /// Whether this redirect goes to the user's own machine.
    pub fn is_loopback(&self) -> bool {
        Url::parse(&self.0).is_ok_and(|u| is_loopback_url(&u))
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = UriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RedirectUri> for String {
    fn from(r: RedirectUri) -> String {
        r.0
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A protected resource's identifier (RFC 8707 §2), normalised: lowercase scheme and host (by URL
/// parsing), default port dropped, no fragment, and trailing slashes removed so that
/// `https://h/mcp/` and `https://h/` compare equal to `https://h/mcp` and `https://h`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceUri(String);

impl ResourceUri {
    pub fn parse(raw: &str) -> Result<Self, UriError> {
        let url = parse_absolute(raw)?;
        match url.scheme() {
            "https" => {}
            "http" => {}
            s => return Err(UriError::Scheme(s.to_owned())),
        }
        if url.host().is_none() {
            return Err(UriError::NotAbsolute);
        }
        let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            out.push(':');
            out.push_str(&port.to_string());
        }
        // every trailing slash: stripping one would leave `https://h//` as `https://h/`, which
        // normalises again to something else (found by the property test of idempotence)
        out.push_str(url.path().trim_end_matches('/'));
        if let Some(q) = url.query() {
            out.push('?');
            out.push_str(q);
        }
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path part (empty for an origin), for RFC 9728 §3.1 path insertion.
    pub fn path(&self) -> String {
        Url::parse(&self.0).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default()
    }

    /// `scheme://host[:port]` of the resource.
    pub fn origin(&self) -> String {
        Url::parse(&self.0).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }
}

impl TryFrom<String> for ResourceUri {
    type Error = UriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResourceUri> for String {
    fn from(r: ResourceUri) -> String {
        r.0
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An informational URL in client metadata (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`,
/// `jwks_uri`): absolute, https, or http only on loopback.
pub fn validate_info_url(raw: &str) -> Result<(), UriError> {
    let url = parse_absolute(raw)?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback_url(&url) => Ok(()),
        "http" => Err(UriError::InsecureHttp),
        s => Err(UriError::Scheme(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_accepted() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:6276/oauth/callback",
            "http://localhost/callback",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn redirect_uris_refused() {
        let cases = [
            ("javascript:alert(1)", UriError::Scheme("javascript".into())),
            ("data:text/html,hi", UriError::Scheme("data".into())),
            ("file:///etc/passwd", UriError::Scheme("file".into())),
            ("http://example.com/cb", UriError::InsecureHttp),
            ("http://127.0.0.2/cb", UriError::InsecureHttp),
            ("https://app.example.com/cb#frag", UriError::Fragment),
            ("https://app.example.com/cb#", UriError::Fragment),
            ("/relative/cb", UriError::NotAbsolute),
            ("", UriError::NotAbsolute),
            (" https://a.example/cb", UriError::NotAbsolute),
            ("myapp:/cb", UriError::Scheme("myapp".into())),
            ("https://user:pw@app.example.com/cb", UriError::Credentials),
        ];
        for (raw, want) in cases {
            assert_eq!(RedirectUri::parse(raw), Err(want), "{raw}");
        }
        assert_eq!(
            RedirectUri::parse(&format!("https://a.example/{}", "x".repeat(MAX_URI_LEN))),
            Err(UriError::TooLong)
        );
    }

    #[test]
    fn exact_match_except_loopback_port() {
        let r = RedirectUri::parse("https://app.example.com/cb").expect("valid");
        assert!(r.matches("https://app.example.com/cb"));
        assert!(!r.matches("https://app.example.com/cb/"));
        assert!(!r.matches("https://app.example.com:8443/cb"));
        assert!(!r.matches("https://APP.example.com/cb"));
        assert!(!r.matches("https://app.example.com/cb?x=1"));

        let l = RedirectUri::parse("http://127.0.0.1:6276/oauth/callback").expect("valid");
        assert!(l.matches("http://127.0.0.1:51234/oauth/callback"));
        assert!(l.matches("http://127.0.0.1/oauth/callback"));
        assert!(!l.matches("http://localhost:6276/oauth/callback"));
        assert!(!l.matches("http://127.0.0.1:6276/other"));
        assert!(!l.matches("http://127.0.0.1:6276/oauth/callback#x"));
        assert!(!l.matches("https://127.0.0.1:6276/oauth/callback"));

        let portless = RedirectUri::parse("http://localhost/callback").expect("valid");
        assert!(portless.matches("http://localhost:33418/callback"));
        let v6 = RedirectUri::parse("http://[::1]/cb").expect("valid");
        assert!(v6.matches("http://[::1]:9/cb"));
    }

    #[test]
    fn resource_normalisation() {
        let n = |s: &str| ResourceUri::parse(s).map(|r| r.0);
        assert_eq!(n("HTTPS://MCP.Example.COM:443/mcp").as_deref(), Ok("https://mcp.example.com/mcp"));
        assert_eq!(n("http://127.0.0.1:80/").as_deref(), Ok("http://127.0.0.1"));
        assert_eq!(n("http://127.0.0.1:8080").as_deref(), Ok("http://127.0.0.1:8080"));
        assert_eq!(n("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
        assert_eq!(n("https://h.example/mcp/").as_deref(), Ok("https://h.example/mcp"));
        assert_eq!(n("https://h.example//").as_deref(), Ok("https://h.example"));
        assert_eq!(n("https://h.example/a/b?x=1").as_deref(), Ok("https://h.example/a/b?x=1"));
        assert_eq!(n("https://h.example/mcp#x"), Err(UriError::Fragment));
        assert_eq!(n("mcp"), Err(UriError::NotAbsolute));
        assert_eq!(n("urn:example:mcp"), Err(UriError::Scheme("urn".into())));
        let r = ResourceUri::parse("https://h.example:8443/a/b/").expect("valid");
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.origin(), "https://h.example:8443");
        assert_eq!(ResourceUri::parse("https://h.example").expect("valid").path(), "");
    }

    #[test]
    fn info_urls() {
        assert!(validate_info_url("https://example.com").is_ok());
        assert!(validate_info_url("http://localhost:6274").is_ok());
        assert_eq!(validate_info_url("http://example.com"), Err(UriError::InsecureHttp));
        assert_eq!(validate_info_url("javascript:alert(1)"), Err(UriError::Scheme("javascript".into())));
        assert_eq!(validate_info_url("not a url"), Err(UriError::NotAbsolute));
    }
}
