//! The authenticated caller, as an extractor: a handler behind [`crate::BearerAuth`] that takes a
//! `Principal` says in its signature that it needs a verified token.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use protocol::jwt::AccessTokenClaims;
use protocol::scope::Scopes;
use server::error::OAuthError;

use crate::verifier::VerifiedToken;

/// Who called: the verified token's subject, client and scopes.
#[derive(Debug, Clone)]
pub struct Principal(Arc<VerifiedToken>);

impl Principal {
    pub(crate) fn new(token: Arc<VerifiedToken>) -> Self {
        Self(token)
    }

    /// `sub`: the user id, or the client id for client_credentials.
    pub fn subject(&self) -> &str {
        &self.0.claims.sub
    }

    /// A token without a user (client_credentials): `sub` is then the client.
    pub fn is_machine(&self) -> bool {
        self.0.is_machine()
    }

    pub fn client_id(&self) -> &str {
        &self.0.claims.client_id
    }

    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    pub fn claims(&self) -> &AccessTokenClaims {
        &self.0.claims
    }

    /// The verified token, with the identity headers made once for it.
    pub(crate) fn token(&self) -> &VerifiedToken {
        &self.0
    }
}

impl FromRequest for Principal {
    type Error = OAuthError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| OAuthError::internal("a Principal was asked for on a route without BearerAuth")),
        )
    }
}
