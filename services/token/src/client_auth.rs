//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, and `none` (a public client names itself).

use actix_web::http::header::{self, HeaderMap};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use protocol::client::Client;
use protocol::ident::{ClientId, PresentedSecret};
use server::OAuthError;

use std::sync::Arc;

use crate::State;
use crate::form::{Form, form_decode};

/// The challenge sent with every 401 `invalid_client` (RFC 6749 §5.2, RFC 9110 §11.6.1).
pub const CHALLENGE: &str = "Basic realm=\"sallyport\"";

/// Standard base64 that tolerates missing padding, as some clients send it.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// 401 `invalid_client` with the Basic challenge.
pub fn invalid_client(description: &'static str) -> OAuthError {
    OAuthError::invalid_client(description).with_challenge(CHALLENGE)
}

/// What the client presented, parsed; the secret is `None` for a public client (or an empty secret).
pub struct Credentials {
    pub client_id: ClientId,
    pub secret: Option<PresentedSecret>,
    pub via_basic: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("via_basic", &self.via_basic)
            .finish()
    }
}

/// Reads the credentials from the `Authorization` header and the body. RFC 6749 §2.3: a client
/// uses one method only; a body `client_id` equal to the Basic one is tolerated (clients send it).
pub fn credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => parse_basic(value.to_str().map_err(|_| invalid_client("malformed Authorization header"))?)?,
    };
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    match basic {
        Some((client_id, secret)) => {
            if body_secret.is_some() {
                return Err(invalid_client("the client used more than one authentication method"));
            }
            if body_id.is_some_and(|id| id != client_id.as_str()) {
                return Err(invalid_client("client_id differs from the authenticated client"));
            }
            Ok(Credentials { client_id, secret, via_basic: true })
        }
        None => {
            let client_id = body_id.ok_or_else(|| invalid_client("client authentication is required"))?;
            Ok(Credentials {
                client_id: parse_client_id(client_id)?,
                secret: body_secret.map(parse_secret).transpose()?,
                via_basic: false,
            })
        }
    }
}

/// RFC 6749 §5.2: a client id that cannot be one names no client, so it is `invalid_client`.
fn parse_client_id(raw: &str) -> Result<ClientId, OAuthError> {
    ClientId::parse(raw).map_err(|_| invalid_client("client_id is malformed (RFC 6749 Appendix A.1)"))
}

fn parse_secret(raw: &str) -> Result<PresentedSecret, OAuthError> {
    PresentedSecret::parse(raw).map_err(|_| invalid_client("client_secret is malformed (RFC 6749 Appendix A.2)"))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1). Another scheme (e.g. a
/// stray Bearer) is not client authentication and is ignored.
fn parse_basic(value: &str) -> Result<Option<(ClientId, Option<PresentedSecret>)>, OAuthError> {
    let Some((scheme, rest)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = BASIC_B64.decode(rest.trim()).map_err(|_| invalid_client("malformed Basic credentials"))?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or_else(|| invalid_client("malformed Basic credentials"))?;
    let client_id = form_decode(&decoded[..colon]);
    let secret = form_decode(&decoded[colon + 1..]);
    if client_id.is_empty() {
        return Err(invalid_client("malformed Basic credentials"));
    }
    let secret = Some(secret).filter(|s| !s.is_empty()).as_deref().map(parse_secret).transpose()?;
    Ok(Some((parse_client_id(&client_id)?, secret)))
}

/// Checks the presented secret against the client: a confidential client must present its
/// unexpired secret (compared as SHA-256 in constant time); a public client presents none.
/// Either secret method is accepted for a confidential client: both carry the same secret.
pub fn verify(client: &Client, creds: &Credentials, now: DateTime<Utc>) -> Result<(), OAuthError> {
    match (&client.secret_hash, &creds.secret) {
        (None, None) if client.is_public() => Ok(()),
        (None, _) => Err(invalid_client("a public client has no secret")),
        (Some(_), None) => Err(invalid_client("client authentication failed")),
        (Some(stored), Some(secret)) => {
            if !secret.hash().matches(stored) {
                return Err(invalid_client("client authentication failed"));
            }
            if client.secret_expires_at.is_some_and(|at| at <= now) {
                return Err(invalid_client("the client secret has expired"));
            }
            Ok(())
        }
    }
}

/// Authenticates the client of a request: credentials, the client they name, the secret.
pub async fn authenticate(state: &State, headers: &HeaderMap, form: &Form) -> Result<Arc<Client>, OAuthError> {
    let creds = credentials(headers, form)?;
    let client = state.clients.get(&state.pool, &state.registry, &state.config.registration, &creds.client_id).await?;
    verify(&client, &creds, state.clock.now())?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use protocol::ErrorCode;

    #[test]
    fn credentials_debug_prints_no_secret() {
        let form = Form::default();
        let creds = credentials(&headers(Some(&basic("c", "introspect-secret-1"))), &form).expect("basic");
        let shown = format!("{creds:?}");
        assert!(!shown.contains("introspect-secret-1") && shown.contains("<redacted>"), "{shown}");
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).expect("header"));
        }
        h
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    }

    fn form(s: &str) -> Form {
        Form::parse(s.as_bytes()).expect("form")
    }

    #[test]
    fn basic_is_form_decoded() {
        let c = credentials(&headers(Some(&basic("my%20client", "s%3Ae+t"))), &form("")).expect("creds");
        assert_eq!(c.client_id.as_str(), "my client");
        assert_eq!(c.secret.as_ref().map(PresentedSecret::expose), Some("s:e t"));
        assert!(c.via_basic);
        // a secret containing ':' after the first one, unencoded, is still the rest of the string
        let c = credentials(&headers(Some(&basic("id", "a:b"))), &form("")).expect("creds");
        assert_eq!(c.secret.as_ref().map(PresentedSecret::expose), Some("a:b"));
        let unpadded = basic("a", "");
        assert!(unpadded.ends_with('='));
        let c = credentials(&headers(Some(unpadded.trim_end_matches('='))), &form("")).expect("unpadded");
        assert_eq!(c.client_id.as_str(), "a");
        assert!(c.secret.is_none(), "empty secret is absent");
    }

    #[test]
    fn one_method_only() {
        let h = headers(Some(&basic("id", "secret")));
        let err = credentials(&h, &form("client_secret=other")).expect_err("two methods");
        assert_eq!(err.code, ErrorCode::InvalidClient);
        assert_eq!(err.challenge.as_deref(), Some(CHALLENGE));
        assert!(credentials(&h, &form("client_id=id")).is_ok(), "same id in the body is tolerated");
        assert!(credentials(&h, &form("client_id=other")).is_err(), "a different id is not");
        assert!(credentials(&h, &form("client_secret=")).is_ok(), "an empty body secret is absent");
    }

    #[test]
    fn post_and_none() {
        let c = credentials(&headers(None), &form("client_id=a&client_secret=b")).expect("post");
        assert_eq!(
            (c.client_id.as_str(), c.secret.as_ref().map(PresentedSecret::expose), c.via_basic),
            ("a", Some("b"), false)
        );
        let c = credentials(&headers(None), &form("client_id=a&client_secret=")).expect("none");
        assert!(c.secret.is_none());
        assert_eq!(credentials(&headers(None), &form("")).expect_err("nothing").code, ErrorCode::InvalidClient);
        // a Bearer header is not client authentication
        assert!(credentials(&headers(Some("Bearer x")), &form("client_id=a")).is_ok());
        for bad in ["Basic !!!", "Basic Zm9v", "Basic OnNlY3JldA=="] {
            assert_eq!(credentials(&headers(Some(bad)), &form("")).expect_err(bad).code, ErrorCode::InvalidClient);
        }
    }

    #[test]
    fn malformed_ids_and_secrets_are_invalid_client() {
        let basic_bytes = |raw: &[u8]| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
        let cases = [
            (headers(Some(&basic("a%00b", "s"))), form("")),
            (headers(Some(&basic_bytes(b"a\0b:s"))), form("")),
            (headers(Some(&basic_bytes(b"\xff\xfe:s"))), form("")),
            (headers(Some(&basic("id", "s%0Ds"))), form("")),
            (headers(None), form("client_id=%00")),
            (headers(None), form("client_id=%C3%28")),
            (headers(None), form("client_id=a%0D%0Ab")),
            (headers(None), form("client_id=a&client_secret=%00")),
            (headers(None), form(&format!("client_id={}", "a".repeat(9000)))),
        ];
        for (h, f) in cases {
            let err = credentials(&h, &f).expect_err("malformed");
            assert_eq!(err.code, ErrorCode::InvalidClient, "{f:?}");
            assert_eq!(err.challenge.as_deref(), Some(CHALLENGE));
        }
    }
}
