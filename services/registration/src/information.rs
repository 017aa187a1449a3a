//! The client information response (RFC 7591 §3.2.1, RFC 7592 §3) and the URL of each client's
//! configuration endpoint.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use protocol::client::{Client, ClientInformation};
use protocol::issuer::Issuer;
use protocol::secret::PlainSecret;

/// `registration_client_uri` (CONTRACTS.md): the issuer, `/oauth2/register/`, and the client id
/// percent-encoded as one path segment.
pub fn registration_client_uri(issuer: &Issuer, client_id: &str) -> String {
    issuer.endpoint(&format!("/oauth2/register/{}", encode_segment(client_id)))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any client id is one segment.
fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The echo of `client`, with the secret issued by this very request (shown once, never stored) and
/// the registration access token that is valid now (RFC 7592 §3 requires it in every response).
pub fn information(
    issuer: &Issuer,
    client: &Client,
    client_secret: Option<PlainSecret>,
    registration_access_token: String,
) -> ClientInformation {
    let mut info = ClientInformation::of(client);
    info.client_secret = client_secret.map(|s| s.into_inner().into());
    info.registration_access_token = Some(registration_access_token.into());
    info.registration_client_uri = Some(registration_client_uri(issuer, &client.client_id));
    info
}

/// A JSON response that no cache may keep: it may carry a secret (RFC 7591 §3.2.1's example).
pub fn respond(status: StatusCode, info: &ClientInformation) -> HttpResponse {
    let body = match serde_json::to_vec(info) {
        Ok(body) => body,
        Err(e) => return actix_web::ResponseError::error_response(&server::OAuthError::internal(e)),
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_uri_encodes_one_segment() {
        let s = Issuer::parse("https://auth.example/tenant").expect("issuer");
        assert_eq!(
            registration_client_uri(&s, "0193a2b4-5c6d-7e8f-9012-3456789abcde"),
            "https://auth.example/tenant/oauth2/register/0193a2b4-5c6d-7e8f-9012-3456789abcde"
        );
        assert_eq!(
            registration_client_uri(&s, "https://app.example/c d?x#y"),
            "https://auth.example/tenant/oauth2/register/https%3A%2F%2Fapp.example%2Fc%20d%3Fx%23y"
        );
        assert_eq!(encode_segment("é~_.-"), "%C3%A9~_.-");
    }
}
