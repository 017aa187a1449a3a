//! Bearer credentials of the registration endpoints: the operator's initial access token
//! (RFC 7591 §3) and each client's registration access token (RFC 7592 §1.2). Both are compared as
//! SHA-256 hashes in constant time; every failure is 401 with `WWW-Authenticate: Bearer
//! error="invalid_token"` (RFC 6750 §3.1), and an unknown client looks exactly like a wrong token.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use protocol::ErrorCode;
use protocol::client::Client;
use protocol::error::quote;
use protocol::ident::{ClientId, MAX_TOKEN_LEN};
use protocol::secret::SecretHash;
use server::OAuthError;
use store::clients::{self, ClientRow};

use crate::State;

/// The token of a single `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme is
/// case-insensitive). Several `Authorization` headers, another scheme, or a token outside the
/// `b64token` syntax (within `MAX_TOKEN_LEN`) count as none.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim_matches(' ');
    let well_formed = token.len() <= MAX_TOKEN_LEN && protocol::ident::is_b64token(token.as_bytes());
    (scheme.eq_ignore_ascii_case("bearer") && well_formed).then_some(token)
}

/// 401 `invalid_token` with its RFC 6750 challenge.
pub fn invalid_token(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, description)
        .with_challenge(format!("Bearer error=\"invalid_token\", error_description={}", quote(description)))
}

/// RFC 7591 §3: when the operator set an initial access token, registration requires it.
pub fn check_initial_access(state: &State, headers: &HeaderMap) -> Result<(), OAuthError> {
    let Some(expected) = &state.initial_access_token else {
        return Ok(());
    };
    let presented = bearer(headers).ok_or_else(|| invalid_token("registration requires an initial access token"))?;
    if SecretHash::of(presented).matches(expected.as_bytes()) {
        Ok(())
    } else {
        Err(invalid_token("the initial access token is not valid"))
    }
}

/// A client authenticated by its registration access token: the principal of RFC 7592 requests.
pub struct ManagedClient {
    pub client: Client,
    pub row: ClientRow,
    /// The token presented: still valid when tokens do not rotate, so the response echoes it.
    pub token: PresentedToken,
    /// The hash of the token presented, for compare-and-set writes.
    pub token_hash: SecretHash,
}

/// A registration access token as the client presented it; `Debug` never shows it.
pub struct PresentedToken(String);

impl PresentedToken {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedToken(<redacted>)")
    }
}

impl FromRequest for ManagedClient {
    type Error = OAuthError;
    type Future = LocalBoxFuture<'static, Result<Self, OAuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// Stands in for a missing stored hash, so an unknown client costs the same comparison as a known one.
const NO_HASH: [u8; 32] = [0; 32];

async fn authenticate(req: &HttpRequest) -> Result<ManagedClient, OAuthError> {
    let state = req
        .app_data::<web::Data<State>>()
        .ok_or_else(|| OAuthError::internal("the registration state is not configured"))?;
    state.spend_budget(req)?;
    let token = bearer(req.headers()).ok_or_else(|| invalid_token("a registration access token is required"))?;
    let presented = SecretHash::of(token);
    // RFC 7592 §2.1: a path that cannot name a client (invalid UTF-8, NUL, …) is answered like
    // an unknown client, and never reaches a query
    let client_id = web::Path::<String>::extract(req)
        .await
        .ok()
        .and_then(|id| ClientId::parse(&id).ok())
        .ok_or_else(|| invalid_token("the registration access token is not valid for this client"))?;
    let row = {
        let mut conn = state.ctx.pool.get().await?;
        clients::find_row(&mut conn, &client_id).await?
    };
    let stored = row.as_ref().and_then(|r| r.registration_token_hash.as_deref());
    let matches = presented.matches(stored.unwrap_or(&NO_HASH));
    // RFC 7592 §2.1: an unknown client is 401 too, never a 404 that would reveal which ids exist
    let row = match row {
        Some(row) if matches && stored.is_some() => row,
        _ => return Err(invalid_token("the registration access token is not valid for this client")),
    };
    let client = Client::try_from(row.clone())?;
    Ok(ManagedClient { client, row, token: PresentedToken(token.to_owned()), token_hash: presented })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&auth(&["Bearer abc"])), Some("abc"));
        assert_eq!(bearer(&auth(&["bearer abc"])), Some("abc"));
        assert_eq!(bearer(&auth(&["BEARER  abc "])), Some("abc"));
        assert_eq!(bearer(&auth(&["Basic YTpi"])), None);
        assert_eq!(bearer(&auth(&["Bearer"])), None);
        assert_eq!(bearer(&auth(&["Bearer "])), None);
        assert_eq!(bearer(&auth(&["Bearer a b"])), None);
        for malformed in ["Bearer a\"b", "Bearer a,b", "Bearer =", "Bearer a=b", "Bearer \u{e9}"] {
            assert_eq!(bearer(&auth(&[malformed])), None, "{malformed:?}");
        }
        assert_eq!(bearer(&auth(&["Bearer abc-._~+/=="])), Some("abc-._~+/=="));
        assert_eq!(bearer(&auth(&[&format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1))])), None);
        assert_eq!(bearer(&auth(&["Bearer a", "Bearer b"])), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn invalid_token_carries_the_challenge() {
        let e = invalid_token("nope");
        assert_eq!(e.code, ErrorCode::InvalidToken);
        assert_eq!(e.challenge.as_deref(), Some("Bearer error=\"invalid_token\", error_description=\"nope\""));
    }
}
