//! The authorization server's issuer identifier (RFC 8414 §2), which clients compare byte for byte
//! with the one they derived from a URL (RFC 8414 §3.3, RFC 9207 §2.4).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::uri::is_loopback_host;

/// Why a string is not an issuer identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("not an absolute URL")]
    NotAbsolute,
    #[error("must be an http(s) URL")]
    Scheme,
    #[error("must have no query or fragment (RFC 8414 §2)")]
    QueryOrFragment,
    #[error("must not end with '/': clients compare it byte for byte")]
    TrailingSlash,
    #[error("must have no user information")]
    Credentials,
    #[error("must be written in normalised form ({0}): clients compare it byte for byte")]
    NotNormalised(String),
}

/// An issuer identifier: an `https` (or `http`) URL with no query, fragment, user information or
/// trailing slash, written exactly as URL parsing normalises it (lowercase scheme and host, no
/// default port, no dot segments), so the string a client derives matches it byte for byte.
/// Whether `http` is acceptable on a given host is the deployment's decision ([`Issuer::is_loopback`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Issuer {
    text: String,
    /// `scheme://host[:port]`, where the well-known documents live.
    origin: String,
    /// The path ("" for an origin): RFC 8414 §3.1 inserts the well-known segment before it.
    path: String,
    https: bool,
    loopback: bool,
}

impl Issuer {
    pub fn parse(raw: &str) -> Result<Self, IssuerError> {
        let url = Url::parse(raw).map_err(|_| IssuerError::NotAbsolute)?;
        if url.query().is_some() || url.fragment().is_some() || raw.contains('#') {
            return Err(IssuerError::QueryOrFragment);
        }
        if raw.ends_with('/') {
            return Err(IssuerError::TrailingSlash);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(IssuerError::Credentials);
        }
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(IssuerError::Scheme),
        };
        let Some(host) = url.host() else { return Err(IssuerError::NotAbsolute) };
        let canonical = if url.path() == "/" { url.as_str().trim_end_matches('/') } else { url.as_str() };
        if canonical != raw {
            return Err(IssuerError::NotNormalised(canonical.to_owned()));
        }
        Ok(Self {
            text: raw.to_owned(),
            origin: url.origin().ascii_serialization(),
            path: url.path().trim_end_matches('/').to_owned(),
            https,
            loopback: is_loopback_host(&host),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The path, "" for an issuer at its origin.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// On 127.0.0.1, [::1] or localhost, where `http` is acceptable (RFC 8252 §8.3).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// An endpoint URL under the issuer, e.g. `endpoint("/oauth2/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.text)
    }
}

impl TryFrom<String> for Issuer {
    type Error = IssuerError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Issuer> for String {
    fn from(i: Issuer) -> String {
        i.text
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl PartialEq<str> for Issuer {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_issuers_are_accepted_with_their_parts() {
        let i = Issuer::parse("https://a.example:8443/tenant/x").expect("issuer");
        assert_eq!(i.origin(), "https://a.example:8443");
        assert_eq!(i.path(), "/tenant/x");
        assert_eq!(i.endpoint("/oauth2/token"), "https://a.example:8443/tenant/x/oauth2/token");
        assert!(i.is_https() && !i.is_loopback());
        let local = Issuer::parse("http://127.0.0.1:8080").expect("issuer");
        assert_eq!((local.origin(), local.path()), ("http://127.0.0.1:8080", ""));
        assert!(!local.is_https() && local.is_loopback());
        assert!(Issuer::parse("http://[::1]:8080").expect("v6").is_loopback());
        assert!(Issuer::parse("http://localhost:8080").expect("name").is_loopback());
        assert!(!Issuer::parse("http://10.0.0.1:8080").expect("private").is_loopback());
    }

    #[test]
    fn other_forms_are_refused_with_the_reason() {
        use IssuerError as E;
        for (raw, why) in [
            ("not a url", E::NotAbsolute),
            ("ftp://a.example", E::Scheme),
            ("https://a.example/", E::TrailingSlash),
            ("https://a.example?x=1", E::QueryOrFragment),
            ("https://a.example#x", E::QueryOrFragment),
            ("https://u@a.example", E::Credentials),
            ("HTTPS://a.example", E::NotNormalised("https://a.example".into())),
            ("https://A.example", E::NotNormalised("https://a.example".into())),
            ("https://a.example:443", E::NotNormalised("https://a.example".into())),
            ("https://a.example/x/../y", E::NotNormalised("https://a.example/y".into())),
        ] {
            assert_eq!(Issuer::parse(raw).err(), Some(why), "{raw}");
        }
    }

    #[test]
    fn serde_goes_through_the_parser() {
        let i: Issuer = serde_json::from_str("\"https://a.example\"").expect("parses");
        assert_eq!(serde_json::to_string(&i).expect("json"), "\"https://a.example\"");
        assert!(serde_json::from_str::<Issuer>("\"https://a.example/\"").is_err());
    }
}
