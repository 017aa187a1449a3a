//! Client ID metadata documents (MCP authorization, 2025-11-25): a `client_id` that is an https URL
//! names a JSON document describing a public client. The rules on the URL, the addresses a document
//! may come from, and the document itself; fetching and caching are the server's.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use url::{Host, Url};

use crate::client::{AuthMethod, Client, ClientMetadataRequest, ClientSource, MetadataPolicy};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    #[error("client metadata documents are disabled")]
    Disabled,
    #[error("the client_id is not a valid metadata document URL: {0}")]
    BadUrl(&'static str),
    #[error("the metadata document's host is not allowed")]
    ForbiddenHost,
    /// The server answered, but not with the document (`status 404`), or not in time.
    #[error("the metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The exchange itself failed (DNS, connection, TLS, a broken body). The detail is reqwest's
    /// text, naming hosts and addresses: it goes to the log only, the client sees a fixed message.
    #[error("the client's metadata document could not be fetched")]
    Transport(String),
    #[error("the metadata document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the metadata document is not valid client metadata: {0}")]
    Invalid(String),
    #[error("the metadata document's client_id does not equal its URL")]
    ClientIdMismatch,
}

/// Whether `client_id` is meant as a metadata-document URL, as opposed to an id we issued (ours are
/// never URLs). Whether the URL is acceptable (https, a path, an allowed host) is `check_url`'s call,
/// so an `http://` id is routed here too and refused there unless `allow_http` is set.
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

pub use crate::ssrf::is_forbidden_ip;

/// What the operator allows beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlRules {
    /// `http://` document URLs (for local testing).
    pub allow_http: bool,
    /// Hosts that are not global unicast (loopback, private, link-local, ...), and ports other
    /// than 443.
    pub allow_private_hosts: bool,
}

/// Checks the URL's shape: https (http only when allowed), a host, a path, no fragment,
/// no credentials, no dot segments.
pub fn check_url(rules: UrlRules, client_id: &str) -> Result<Url, CimdError> {
    let url = Url::parse(client_id).map_err(|_| CimdError::BadUrl("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if rules.allow_http => {}
        _ => return Err(CimdError::BadUrl("must be https")),
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(CimdError::BadUrl("must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl("must not contain credentials"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(CimdError::BadUrl("must have a path"));
    }
    // the URL must be in normal form: it is compared byte for byte with the document's client_id
    if url.as_str() != client_id {
        return Err(CimdError::BadUrl("must be in normalised form"));
    }
    match url.host() {
        None => return Err(CimdError::BadUrl("must have a host")),
        Some(Host::Ipv4(ip)) if !rules.allow_private_hosts && is_forbidden_ip(IpAddr::V4(ip)) => {
            return Err(CimdError::ForbiddenHost);
        }
        Some(Host::Ipv6(ip)) if !rules.allow_private_hosts && is_forbidden_ip(IpAddr::V6(ip)) => {
            return Err(CimdError::ForbiddenHost);
        }
        Some(Host::Domain(d)) if !rules.allow_private_hosts && d.eq_ignore_ascii_case("localhost") => {
            return Err(CimdError::ForbiddenHost);
        }
        _ => {}
    }
    // a document server is a public web server: any other port is some internal service's
    if !rules.allow_private_hosts && url.port_or_known_default() != Some(443) {
        return Err(CimdError::BadUrl("must use port 443"));
    }
    Ok(url)
}

/// The client a fetched document describes, validated like registration metadata; `now` is its
/// creation time.
pub fn client_from_document(
    client_id: &str,
    body: &[u8],
    policy: &MetadataPolicy,
    now: DateTime<Utc>,
) -> Result<Client, CimdError> {
    let request: ClientMetadataRequest =
        serde_json::from_slice(body).map_err(|e| CimdError::Invalid(format!("not a JSON object: {e}")))?;
    if request.client_id.as_deref() != Some(client_id) {
        return Err(CimdError::ClientIdMismatch);
    }
    // documents describe public clients: no shared secret can be carried in a public document
    match request.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => {
            return Err(CimdError::Invalid(format!("token_endpoint_auth_method {other} is not supported")));
        }
    }
    if request.client_secret.is_some() {
        return Err(CimdError::Invalid("a document must not carry a client_secret".into()));
    }
    let request = ClientMetadataRequest { token_endpoint_auth_method: Some("none".into()), ..request };
    let metadata = request.validate(policy).map_err(|e| CimdError::Invalid(e.to_string()))?;
    crate::client::refuse_machine_grant(&metadata).map_err(|e| CimdError::Invalid(e.to_string()))?;
    debug_assert_eq!(metadata.token_endpoint_auth_method, AuthMethod::None);
    if metadata.redirect_uris.is_empty() {
        return Err(CimdError::Invalid("redirect_uris is required".into()));
    }
    Ok(Client {
        client_id: client_id.to_owned(),
        source: ClientSource::MetadataDocument,
        metadata,
        secret_hash: None,
        secret_expires_at: None,
        may_introspect: false,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlRules = UrlRules { allow_http: false, allow_private_hosts: false };
    const OPEN: UrlRules = UrlRules { allow_http: false, allow_private_hosts: true };

    #[test]
    fn url_shape() {
        assert!(check_url(STRICT, "https://app.example.com/client.json").is_ok());
        assert_eq!(check_url(STRICT, "http://app.example.com/client.json"), Err(CimdError::BadUrl("must be https")));
        assert_eq!(check_url(STRICT, "https://app.example.com/"), Err(CimdError::BadUrl("must have a path")));
        assert_eq!(
            check_url(STRICT, "https://app.example.com/c#x"),
            Err(CimdError::BadUrl("must not have a fragment"))
        );
        assert_eq!(
            check_url(STRICT, "https://u:p@app.example.com/c"),
            Err(CimdError::BadUrl("must not contain credentials"))
        );
        assert_eq!(
            check_url(STRICT, "https://APP.example.com/c"),
            Err(CimdError::BadUrl("must be in normalised form"))
        );
        assert_eq!(check_url(STRICT, "https://127.0.0.1/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://[::1]/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://169.254.169.254/latest"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://localhost/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://[64:ff9b::a9fe:a9fe]/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://[::ffff:a9fe:a9fe]/c"), Err(CimdError::ForbiddenHost));
        assert_eq!(check_url(STRICT, "https://app.example.com:8443/c"), Err(CimdError::BadUrl("must use port 443")));
        assert!(check_url(STRICT, "https://app.example.com:443/c").is_err(), "not in normalised form");
        assert!(check_url(OPEN, "https://127.0.0.1/c").is_ok());
        assert!(check_url(OPEN, "https://app.example.com:8443/c").is_ok());
        let http = UrlRules { allow_http: true, ..STRICT };
        assert_eq!(check_url(http, "http://app.example.com/client.json"), Err(CimdError::BadUrl("must use port 443")));
        let http = UrlRules { allow_http: true, ..OPEN };
        assert!(check_url(http, "http://app.example.com/client.json").is_ok());
        assert_eq!(check_url(http, "ftp://app.example.com/client.json"), Err(CimdError::BadUrl("must be https")));
    }

    #[test]
    fn documents_describe_public_clients_at_their_own_url() {
        let url = "https://app.example.com/client.json";
        let policy = MetadataPolicy {
            max_redirect_uris: 3,
            default_scopes: crate::scope::Scopes::parse("mcp").expect("scope"),
            allowed_scopes: crate::scope::Scopes::parse("mcp").expect("scope"),
        };
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let doc = |v: serde_json::Value| client_from_document(url, v.to_string().as_bytes(), &policy, now);
        let cb = serde_json::json!(["http://127.0.0.1:3000/cb"]);

        let client = doc(serde_json::json!({"client_id": url, "redirect_uris": cb})).expect("valid");
        assert_eq!((client.client_id.as_str(), client.source), (url, ClientSource::MetadataDocument));
        assert_eq!(client.metadata.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!((client.secret_hash, client.created_at), (None, now));

        let other = serde_json::json!({"client_id": "https://app.example.com/other.json", "redirect_uris": cb});
        assert_eq!(doc(other).expect_err("mismatch"), CimdError::ClientIdMismatch);
        assert_eq!(doc(serde_json::json!({"redirect_uris": cb})).expect_err("no id"), CimdError::ClientIdMismatch);
        for bad in [
            serde_json::json!({"client_id": url, "redirect_uris": cb, "token_endpoint_auth_method": "client_secret_basic"}),
            serde_json::json!({"client_id": url, "redirect_uris": cb, "client_secret": "s3cret"}),
            serde_json::json!({"client_id": url, "redirect_uris": []}),
            serde_json::json!({"client_id": url}),
            serde_json::json!({"client_id": url, "redirect_uris": cb, "grant_types": ["client_credentials"]}),
            serde_json::json!([url]),
        ] {
            assert!(matches!(doc(bad.clone()), Err(CimdError::Invalid(_))), "{bad}");
        }
    }
}
