//! What a presented token is, for revocation and introspection: one of our refresh tokens (by
//! hash), one of our access tokens (by signature), or nothing we know.

use chrono::{DateTime, Utc};
use protocol::ident::PresentedSecret;
use protocol::jwt::{AccessTokenClaims, Expectations};
use protocol::secret::SecretKind;
use server::OAuthError;
use store::refresh_tokens::{self, RefreshTokenRow};

use crate::State;

/// The token kinds of RFC 7009 §2.1 / RFC 7662 §2.1 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccessToken,
    RefreshToken,
}

/// The search order a hint asks for; an unknown hint is ignored (RFC 7009 §2.1: the server
/// extends its search to every type anyway).
pub fn search_order(hint: Option<&str>) -> [Kind; 2] {
    match hint {
        Some("refresh_token") => [Kind::RefreshToken, Kind::AccessToken],
        _ => [Kind::AccessToken, Kind::RefreshToken],
    }
}

#[derive(Debug)]
pub enum Found {
    Refresh(Box<RefreshTokenRow>),
    /// An access token with a valid signature of ours and our issuer, not expired.
    Access(Box<AccessTokenClaims>),
    Nothing,
}

/// Looks the token up in the hinted order.
pub async fn find(
    state: &State,
    token: &PresentedSecret,
    hint: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Found, OAuthError> {
    let presented = token;
    let token = token.expose();
    for kind in search_order(hint) {
        match kind {
            Kind::AccessToken => {
                if let Some(claims) = verify_access_token(state, token, now) {
                    return Ok(Found::Access(Box::new(claims)));
                }
            }
            // only strings shaped like our refresh tokens are worth a query
            Kind::RefreshToken if token.starts_with(SecretKind::RefreshToken.prefix()) => {
                let mut conn = state.pool.get().await?;
                if let Some(row) = refresh_tokens::find_by_hash(&mut conn, presented.hash().as_bytes()).await? {
                    return Ok(Found::Refresh(Box::new(row)));
                }
            }
            Kind::RefreshToken => {}
        }
    }
    Ok(Found::Nothing)
}

/// Verifies an access token against our published keys and issuer, without leeway.
pub fn verify_access_token(state: &State, token: &str, now: DateTime<Utc>) -> Option<AccessTokenClaims> {
    if token.bytes().filter(|&b| b == b'.').count() != 2 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = state.keys.verifying_key(header.kid.as_deref()?, now)?;
    let expect = Expectations { issuer: state.config.issuer.as_str(), audience: None, now: now.timestamp(), leeway: 0 };
    protocol::jwt::verify_with_key(token, &header, &key.decoding, &expect).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_order_the_search() {
        assert_eq!(search_order(Some("refresh_token")), [Kind::RefreshToken, Kind::AccessToken]);
        assert_eq!(search_order(Some("access_token")), [Kind::AccessToken, Kind::RefreshToken]);
        assert_eq!(search_order(Some("something_else")), [Kind::AccessToken, Kind::RefreshToken]);
        assert_eq!(search_order(None), [Kind::AccessToken, Kind::RefreshToken]);
    }
}
