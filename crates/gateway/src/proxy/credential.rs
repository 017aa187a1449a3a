//! The credential a route sends its upstream in place of the client's (`upstream_auth`): an API
//! key header or a set of static headers, built once when the route is, or a user's upstream
//! bearer token (`oauth2`, built once per cached token); values marked sensitive (HTTP/2 HPACK
//! never indexes them) and never shown by `Debug`.

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use protocol::redact::SecretString;
use protocol::upstream_auth::{UpstreamAuth, check_credential};

#[derive(Clone, PartialEq)]
pub struct UpstreamCredential {
    headers: HeaderMap,
}

impl std::fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCredential").field("headers", &self.headers.keys().collect::<Vec<_>>()).finish()
    }
}

impl UpstreamCredential {
    /// The static credential of a route; `None` for `upstream_auth = "none"`, and for `"oauth2"`,
    /// whose credential is each user's token (`crate::upstream_oauth`). The headers are checked
    /// again here (`protocol::upstream_auth`), whatever their source.
    pub fn new(kind: UpstreamAuth, pairs: &[(String, SecretString)]) -> Result<Option<Self>, String> {
        let names = check_credential(kind, pairs.iter().map(|(n, v)| (n.as_str(), v.expose())))?;
        if names.is_empty() {
            return Ok(None);
        }
        let mut headers = HeaderMap::with_capacity(names.len());
        for (name, (_, value)) in names.iter().zip(pairs) {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name} is not a header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("the value of {name} is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Some(Self { headers }))
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1): a user's upstream access token.
    /// `None` when the token cannot be a header value.
    pub fn bearer(token: &SecretString) -> Option<Self> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(AUTHORIZATION, value);
        Some(Self { headers })
    }

    /// Puts the credential on an upstream request: the client's `Authorization` goes (it was for
    /// Sallyport; MCP authorization spec, "no token passthrough"), and a header the client sent
    /// under a credential's name is replaced, never doubled.
    pub fn apply(&self, out: &mut HeaderMap) {
        out.remove(AUTHORIZATION);
        for (name, value) in &self.headers {
            out.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_clients_authorization_and_same_named_headers() {
        let pairs = vec![("X-API-Key".to_owned(), SecretString::from("k-1"))];
        let credential = UpstreamCredential::new(UpstreamAuth::ApiKey, &pairs).expect("valid").expect("some");
        assert!(!format!("{credential:?}").contains("k-1"));
        let mut out = HeaderMap::new();
        out.insert("authorization", HeaderValue::from_static("Bearer client-token"));
        out.append("x-api-key", HeaderValue::from_static("forged"));
        out.append("x-api-key", HeaderValue::from_static("forged-2"));
        out.insert("accept", HeaderValue::from_static("application/json"));
        credential.apply(&mut out);
        assert!(out.get("authorization").is_none());
        assert_eq!(out.get_all("x-api-key").iter().collect::<Vec<_>>(), ["k-1"]);
        assert!(out.get("x-api-key").is_some_and(HeaderValue::is_sensitive));
        assert_eq!(out.get("accept").map(HeaderValue::as_bytes), Some(&b"application/json"[..]));

        let bearer = vec![("Authorization".to_owned(), SecretString::from("Bearer upstream"))];
        let credential = UpstreamCredential::new(UpstreamAuth::ApiKey, &bearer).expect("valid").expect("some");
        let mut out = HeaderMap::new();
        out.insert("authorization", HeaderValue::from_static("Bearer client-token"));
        credential.apply(&mut out);
        assert_eq!(out.get_all("authorization").iter().collect::<Vec<_>>(), ["Bearer upstream"]);
        assert_eq!(UpstreamCredential::new(UpstreamAuth::None, &[]), Ok(None));
        assert!(UpstreamCredential::new(UpstreamAuth::Headers, &[]).is_err());
        assert_eq!(UpstreamCredential::new(UpstreamAuth::OAuth2, &[]), Ok(None), "per user, not per route");

        let user = UpstreamCredential::bearer(&SecretString::from("up-at-1")).expect("bearer");
        assert!(!format!("{user:?}").contains("up-at-1"));
        let mut out = HeaderMap::new();
        out.insert("authorization", HeaderValue::from_static("Bearer sallyport-token"));
        user.apply(&mut out);
        assert_eq!(out.get_all("authorization").iter().collect::<Vec<_>>(), ["Bearer up-at-1"]);
        assert!(out.get("authorization").is_some_and(HeaderValue::is_sensitive));
        assert!(UpstreamCredential::bearer(&SecretString::from("a\r\nb")).is_none());
    }
}
