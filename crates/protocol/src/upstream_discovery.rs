//! Discovery of an upstream MCP server's authorization server, as the MCP authorization spec asks
//! of a client (2026-07-28, "Authorization Server Discovery"; 2025-11-25 §2.3): the RFC 9728
//! `resource_metadata` of the upstream's 401 challenge, else its well-known URLs (path inserted,
//! then root); then the RFC 8414 metadata of an authorization server it names, else OpenID
//! discovery, in the spec's order; each document checked before use. Pure functions over URLs and
//! JSON: the fetching (through the SSRF policy) is the caller's.

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the document is not the JSON object its specification describes: {0}")]
    Malformed(String),
    /// RFC 9728 §3.3: a document about another resource must not be used.
    #[error("the protected resource metadata is for {found}, not {expected}")]
    WrongResource { expected: String, found: String },
    /// RFC 8414 §3.3 (and OpenID Connect Discovery §4.3): the issuer must be the one asked for.
    #[error("the authorization server metadata names issuer {found}, not {expected}")]
    WrongIssuer { expected: String, found: String },
    #[error("the protected resource names no authorization server")]
    NoAuthorizationServer,
    /// The MCP authorization spec: no PKCE S256 advertised, no flow.
    #[error("the authorization server does not advertise PKCE with S256 (code_challenge_methods_supported)")]
    NoPkce,
    #[error("{0} is not an https URL (http only on a loopback host)")]
    InsecureUrl(String),
}

/// The `resource_metadata` parameter of a `Bearer` challenge in `WWW-Authenticate` values
/// (RFC 9728 §5.1); `None` when no Bearer challenge carries one.
pub fn resource_metadata_from_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values.into_iter().find_map(|v| {
        challenges(v)
            .into_iter()
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .find_map(|(_, params)| params.into_iter().find(|(k, _)| k.eq_ignore_ascii_case("resource_metadata")))
            .map(|(_, v)| v)
    })
}

/// RFC 9110 §11.6.1: `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, several per
/// header value, comma-separated. Parameters with a quoted-string value are unescaped; a token68
/// is skipped. Lenient where senders are (spaces around `=`).
fn challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let b = value.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && !matches!(b[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        value[start..*i].to_owned()
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            return out;
        }
        let word = token(&mut i);
        if word.is_empty() {
            // a stray `=` (token68 padding) or quote: step over it
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        let padding = j + 1 < b.len() && b[j + 1] == b'=';
        if j < b.len() && b[j] == b'=' && !out.is_empty() && !padding {
            // an auth-param of the current challenge
            i = j + 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            let v = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch = value[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.1.push((word, v));
            }
        } else if j < b.len() && b[j] == b'=' {
            // a token68 or a parameter before any scheme: skip the `=` padding
            i = j;
            while i < b.len() && b[i] == b'=' {
                i += 1;
            }
        } else {
            out.push((word, Vec::new()));
        }
    }
}

/// RFC 9728 §3.1 and the MCP spec: the path-inserted well-known URL of the resource, then the root
/// one (only the root for a resource at the root).
pub fn protected_resource_metadata_urls(resource: &Url) -> Vec<Url> {
    let mut root = resource.clone();
    root.set_query(None);
    root.set_fragment(None);
    root.set_path("/.well-known/oauth-protected-resource");
    let path = resource.path().trim_end_matches('/');
    if path.is_empty() {
        return vec![root];
    }
    let mut inserted = root.clone();
    inserted.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
    inserted.set_query(resource.query());
    vec![inserted, root]
}

/// The MCP spec's order of authorization server metadata URLs for an issuer: with a path, RFC 8414
/// path insertion, OpenID path insertion, OpenID path appending; without, RFC 8414 then OpenID.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |p: String| {
        let mut u = issuer.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.set_path(&p);
        u
    };
    if path.is_empty() {
        return vec![
            at("/.well-known/oauth-authorization-server".into()),
            at("/.well-known/openid-configuration".into()),
        ];
    }
    vec![
        at(format!("/.well-known/oauth-authorization-server{path}")),
        at(format!("/.well-known/openid-configuration{path}")),
        at(format!("{path}/.well-known/openid-configuration")),
    ]
}

/// The members of RFC 9728 protected resource metadata Sallyport uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

impl ResourceMetadata {
    /// Parses and checks a document fetched for `resource` (RFC 9728 §3.3: its `resource` is the
    /// resource asked about, compared as a string).
    pub fn parse(body: &[u8], resource: &str) -> Result<Self, DiscoveryError> {
        let doc: Self = serde_json::from_slice(body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
        if doc.resource != resource {
            return Err(DiscoveryError::WrongResource { expected: resource.to_owned(), found: doc.resource });
        }
        if doc.authorization_servers.is_empty() {
            return Err(DiscoveryError::NoAuthorizationServer);
        }
        Ok(doc)
    }
}

/// The members of RFC 8414 (or OpenID provider) metadata Sallyport uses as a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`, which the client must then check.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Client ID metadata documents (MCP 2025-11-25, SEP-991) are accepted as client ids.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

impl AuthorizationServerMetadata {
    /// Parses and checks a document fetched for `issuer`: the issuer identical (RFC 8414 §3.3),
    /// PKCE S256 advertised, every endpoint https (or http on a loopback host when `allow_http`).
    pub fn parse(body: &[u8], issuer: &str, allow_http: bool) -> Result<Self, DiscoveryError> {
        let doc: Self = serde_json::from_slice(body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
        if doc.issuer != issuer {
            return Err(DiscoveryError::WrongIssuer { expected: issuer.to_owned(), found: doc.issuer });
        }
        if !doc.code_challenge_methods_supported.iter().any(|m| m == "S256") {
            return Err(DiscoveryError::NoPkce);
        }
        let endpoints = [Some(&doc.authorization_endpoint), Some(&doc.token_endpoint)]
            .into_iter()
            .chain([doc.registration_endpoint.as_ref(), doc.revocation_endpoint.as_ref()]);
        for url in endpoints.flatten() {
            if !secure(url, allow_http) {
                return Err(DiscoveryError::InsecureUrl(url.clone()));
            }
        }
        Ok(doc)
    }

    /// How Sallyport identifies itself to this server, in the issue's order of preference.
    pub fn client_identity(&self, configured: bool) -> Option<ClientIdentity> {
        if configured {
            Some(ClientIdentity::Configured)
        } else if self.client_id_metadata_document_supported {
            Some(ClientIdentity::MetadataDocument)
        } else if self.registration_endpoint.is_some() {
            Some(ClientIdentity::DynamicRegistration)
        } else {
            None
        }
    }
}

/// Sallyport's client identity at an upstream authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIdentity {
    /// The route names a client id (and secret) registered by hand: it overrides discovery.
    Configured,
    /// Sallyport's own client ID metadata document, served under its issuer.
    MetadataDocument,
    /// RFC 7591, once per upstream authorization server, the result stored.
    DynamicRegistration,
}

fn secure(raw: &str, allow_http: bool) -> bool {
    match Url::parse(raw) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => true,
        Ok(u) if u.scheme() == "http" && allow_http => u.host().is_some_and(|h| crate::uri::is_loopback_host(&h)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn resource_metadata_of_the_bearer_challenge() {
        let v = r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="a b""#;
        assert_eq!(
            resource_metadata_from_challenges([v]).as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        // another scheme first, a token68, odd spacing and case, escapes in a quoted string
        let v = r#"Basic realm="x", Negotiate abc==, bearer  Resource_Metadata = "https://a.example/\"q\"", realm=r"#;
        assert_eq!(resource_metadata_from_challenges([v]).as_deref(), Some(r#"https://a.example/"q""#));
        // in the second header value; a token value
        assert_eq!(
            resource_metadata_from_challenges(["Basic realm=\"x\"", "Bearer resource_metadata=https://b.example/m"])
                .as_deref(),
            Some("https://b.example/m")
        );
        assert_eq!(resource_metadata_from_challenges(["Basic resource_metadata=\"https://c\""]), None, "not Bearer");
        assert_eq!(resource_metadata_from_challenges(["Bearer realm=\"x\""]), None);
        assert_eq!(resource_metadata_from_challenges(["", "Bearer", "\"unterminated"]), None);
    }

    #[test]
    fn well_known_urls_in_the_specs_order() {
        let prm = protected_resource_metadata_urls(&url("https://example.com/public/mcp"));
        assert_eq!(
            prm.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://example.com/.well-known/oauth-protected-resource"
            ]
        );
        let prm = protected_resource_metadata_urls(&url("https://example.com/"));
        assert_eq!(
            prm.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["https://example.com/.well-known/oauth-protected-resource"]
        );

        let asm = authorization_server_metadata_urls(&url("https://auth.example.com/tenant1"));
        assert_eq!(
            asm.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        let asm = authorization_server_metadata_urls(&url("https://auth.example.com"));
        assert_eq!(
            asm.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn documents_are_checked_before_use() {
        let prm = br#"{"resource":"https://mcp.example/mcp","authorization_servers":["https://as.example"]}"#;
        let doc = ResourceMetadata::parse(prm, "https://mcp.example/mcp").expect("valid");
        assert_eq!(doc.authorization_servers, ["https://as.example"]);
        assert!(matches!(
            ResourceMetadata::parse(prm, "https://other.example/mcp"),
            Err(DiscoveryError::WrongResource { .. })
        ));
        let none = br#"{"resource":"https://mcp.example/mcp","authorization_servers":[]}"#;
        assert_eq!(
            ResourceMetadata::parse(none, "https://mcp.example/mcp"),
            Err(DiscoveryError::NoAuthorizationServer)
        );
        assert!(matches!(ResourceMetadata::parse(b"[]", "x"), Err(DiscoveryError::Malformed(_))));

        let asm = |extra: &str| {
            format!(
                r#"{{"issuer":"https://as.example","authorization_endpoint":"https://as.example/authorize",
                "token_endpoint":"https://as.example/token"{extra}}}"#
            )
        };
        let ok =
            asm(r#","code_challenge_methods_supported":["S256"],"registration_endpoint":"https://as.example/reg""#);
        let doc = AuthorizationServerMetadata::parse(ok.as_bytes(), "https://as.example", false).expect("valid");
        assert_eq!(doc.client_identity(false), Some(ClientIdentity::DynamicRegistration));
        assert_eq!(doc.client_identity(true), Some(ClientIdentity::Configured), "a configured client overrides");
        assert!(!doc.authorization_response_iss_parameter_supported);
        let cimd = asm(
            r#","code_challenge_methods_supported":["S256"],"client_id_metadata_document_supported":true,"registration_endpoint":"https://as.example/reg""#,
        );
        let doc = AuthorizationServerMetadata::parse(cimd.as_bytes(), "https://as.example", false).expect("valid");
        assert_eq!(doc.client_identity(false), Some(ClientIdentity::MetadataDocument), "preferred to registration");
        let bare = asm(r#","code_challenge_methods_supported":["S256"]"#);
        let doc = AuthorizationServerMetadata::parse(bare.as_bytes(), "https://as.example", false).expect("valid");
        assert_eq!(doc.client_identity(false), None, "no way in without a configured client");

        assert!(matches!(
            AuthorizationServerMetadata::parse(ok.as_bytes(), "https://honest.example", false),
            Err(DiscoveryError::WrongIssuer { .. })
        ));
        let plain = asm(r#","code_challenge_methods_supported":["plain"]"#);
        assert_eq!(
            AuthorizationServerMetadata::parse(plain.as_bytes(), "https://as.example", false),
            Err(DiscoveryError::NoPkce)
        );
        assert_eq!(
            AuthorizationServerMetadata::parse(asm("").as_bytes(), "https://as.example", false),
            Err(DiscoveryError::NoPkce)
        );
        let loopback = r#"{"issuer":"http://127.0.0.1:9","authorization_endpoint":"http://127.0.0.1:9/a",
            "token_endpoint":"http://127.0.0.1:9/t","code_challenge_methods_supported":["S256"]}"#;
        assert!(AuthorizationServerMetadata::parse(loopback.as_bytes(), "http://127.0.0.1:9", true).is_ok());
        assert!(matches!(
            AuthorizationServerMetadata::parse(loopback.as_bytes(), "http://127.0.0.1:9", false),
            Err(DiscoveryError::InsecureUrl(_))
        ));
        let remote_http = r#"{"issuer":"http://as.example","authorization_endpoint":"http://as.example/a",
            "token_endpoint":"http://as.example/t","code_challenge_methods_supported":["S256"]}"#;
        assert!(AuthorizationServerMetadata::parse(remote_http.as_bytes(), "http://as.example", true).is_err());
    }
}
