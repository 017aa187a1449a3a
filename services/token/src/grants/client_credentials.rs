//! `grant_type=client_credentials` (RFC 6749 §4.4): confidential clients an operator created only,
//! for resources that accept tokens without a user, no refresh token, and no database write at all. The token carries no `gid`; it can be revoked on its own by `jti`.

use protocol::client::{Client, GrantType};
use protocol::error::ErrorCode;
use protocol::scope::Scopes;
use server::OAuthError;
use server::registry::Resource;

use super::require_grant;
use crate::State;
use crate::form::Form;
use crate::issue::{AccessGrant, TokenResponse, access_token};
use crate::rules;

pub async fn exchange(state: &State, client: &Client, form: &Form) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        // RFC 6749 §4.4: "MUST only be used by confidential clients"
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials is only for confidential clients",
        ));
    }
    if client.source.is_self_registered() {
        // issue 13: a client anyone could have registered never acts without a user, even when an
        // older row lists the grant
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials is only for clients an operator created; this client registered itself",
        ));
    }
    require_grant(client, GrantType::ClientCredentials)?;
    let requested = rules::requested_resources(form.all("resource"))?;
    let scope = rules::requested_scope(form.get("scope"))?;
    let all = state.registry.all(&state.pool).await?;
    let resources: Vec<&Resource> = if requested.is_empty() {
        // RFC 8707 §2: without a resource the single registered one is meant, else the client must say
        match all.as_slice() {
            [only] => vec![only],
            _ => return Err(OAuthError::invalid_target("resource is required")),
        }
    } else {
        requested
            .iter()
            .map(|r| {
                all.iter()
                    .find(|known| &known.id == r)
                    .ok_or_else(|| OAuthError::invalid_target(format!("unknown resource {}", r.as_str())))
            })
            .collect::<Result<_, _>>()?
    };
    // issue 13: a resource takes a token without a user only when its configuration says so; the
    // gateway refuses such tokens for the others too, this keeps them from being minted at all
    if let Some(r) = resources.iter().find(|r| !r.accept_machine_tokens) {
        return Err(OAuthError::invalid_target(format!(
            "resource {} needs a user: it does not accept tokens without one (accept_machine_tokens)",
            r.id.as_str()
        )));
    }
    let offered = resources.iter().fold(Scopes::default(), |acc, r| acc.union(&r.scopes));
    let scope = rules::client_credentials_scope(scope, &client.metadata.scope, &offered)?;
    let grant = AccessGrant {
        sub: client.client_id.clone(),
        client_id: client.client_id.clone(),
        audience: resources.iter().map(|r| r.id.as_str().to_owned()).collect(),
        scope: scope.to_string(),
        auth_time: None,
        grant_id: None,
    };
    access_token(state, grant, state.clock.now())
}
