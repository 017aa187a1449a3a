//! Authorization responses at the client's redirect URI (RFC 6749 §4.1.2 and §4.1.2.1): the code or
//! the error, `state` when one was sent, and always `iss` (RFC 9207), byte for byte the issuer.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use server::error::OAuthError;
use url::form_urlencoded;

use crate::request::Target;

/// `redirect` with `pairs` appended to its query, keeping any query it already has (RFC 6749 §3.1.2).
/// Built on the string, so the registered URI is not re-normalised on the way.
pub fn with_params(redirect: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let query = query.finish();
    let sep = match redirect.find('?') {
        None => "?",
        Some(_) if redirect.ends_with('?') || redirect.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{redirect}{sep}{query}")
}

/// The success response: `code`, then `state` and `iss`.
pub fn success_url(target: &Target, code: &str, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(s) = &target.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_params(target.redirect.as_str(), &pairs)
}

/// The error response: `error`, `error_description`, then `state` and `iss`.
pub fn error_url(target: &Target, error: &OAuthError, issuer: &str) -> String {
    let mut pairs = vec![("error", error.code.as_str())];
    if let Some(d) = &error.description {
        pairs.push(("error_description", d));
    }
    if let Some(s) = &target.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_params(target.redirect.as_str(), &pairs)
}

/// A redirect that is never cached and leaks no referrer: 302 after a GET, 303 after a POST (the
/// browser must follow it with a GET; OAuth 2.1 §7.5.1 forbids 307).
pub fn to(location: &str, status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
    use protocol::scope::Scopes;
    use protocol::uri::RedirectUri;

    fn target(redirect: &str, state: Option<&str>) -> Target {
        let policy = MetadataPolicy {
            max_redirect_uris: 5,
            default_scopes: Scopes::default(),
            allowed_scopes: Scopes::default(),
        };
        let metadata = ClientMetadataRequest {
            redirect_uris: Some(vec![redirect.into()]),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        }
        .validate(&policy)
        .expect("valid");
        let client = protocol::client::Client {
            client_id: "c".into(),
            source: ClientSource::Admin,
            metadata,
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: chrono::Utc::now(),
        };
        Target {
            client: Arc::new(client),
            redirect: RedirectUri::parse(redirect).expect("uri"),
            redirect_sent: true,
            state: state.map(str::to_owned),
        }
    }

    #[test]
    fn keeps_the_registered_query() {
        assert_eq!(with_params("https://a.example/cb", &[("a", "1")]), "https://a.example/cb?a=1");
        assert_eq!(with_params("https://a.example/cb?x=y", &[("a", "1")]), "https://a.example/cb?x=y&a=1");
        assert_eq!(with_params("https://a.example/cb?", &[("a", "1")]), "https://a.example/cb?a=1");
        assert_eq!(with_params("com.example.app:/cb", &[("a", "b c")]), "com.example.app:/cb?a=b+c");
    }

    #[test]
    fn success_and_error_carry_state_and_exact_iss() {
        let t = target("http://127.0.0.1:5/cb", Some("s&1"));
        let ok = success_url(&t, "spac_x", "https://as.example/tenant");
        assert_eq!(ok, "http://127.0.0.1:5/cb?code=spac_x&state=s%261&iss=https%3A%2F%2Fas.example%2Ftenant");
        let err = error_url(&t, &OAuthError::bare(protocol::ErrorCode::AccessDenied), "https://as.example");
        assert_eq!(err, "http://127.0.0.1:5/cb?error=access_denied&state=s%261&iss=https%3A%2F%2Fas.example");
        let no_state = target("https://a.example/cb", None);
        let err = error_url(&no_state, &OAuthError::invalid_scope("bad scope"), "https://as.example");
        assert_eq!(
            err,
            "https://a.example/cb?error=invalid_scope&error_description=bad+scope&iss=https%3A%2F%2Fas.example"
        );
    }
}
