//! `grant_type=refresh_token` (RFC 6749 §6, OAuth 2.1 §4.3, RFC 8707 §2.2).
//!
//! The hot path is one statement and one durable commit ([`refresh_tokens::rotate`]): the old
//! token is marked used only if it is still good and the requested narrowing fits, and its
//! successor inserted. Only when that statement finds nothing does a second query find out why;
//! a token that was already used or revoked then revokes its whole family.

use diesel_async::AsyncPgConnection;
use protocol::client::{Client, GrantType};
use protocol::clock::after;
use protocol::ident::PresentedSecret;
use protocol::scope::Scopes;
use protocol::secret::{PlainSecret, SecretKind};
use server::OAuthError;
use store::refresh_tokens::{self, Rotation};
use store::revocations::{self, GrantRevocation};
use uuid::Uuid;

use super::{Caller, keep_revoked_until, offered_by, require_grant, revoke_family};
use crate::State;
use crate::form::Form;
use crate::issue::{AccessGrant, TokenResponse, access_token};
use crate::rules;

pub async fn exchange(
    state: &State,
    client: &Client,
    form: &Form,
    caller: &Caller,
) -> Result<TokenResponse, OAuthError> {
    require_grant(client, GrantType::RefreshToken)?;
    let presented = form.require_parsed("refresh_token", PresentedSecret::parse)?;
    let scope = rules::requested_scope(form.get("scope"))?;
    let resources = rules::requested_resources(form.all("resource"))?;
    let offered = offered_by(state, &resources).await?;
    rules::audience_scope(scope.as_ref(), offered.as_ref())?;
    let now = state.clock.now();
    let next = PlainSecret::generate(SecretKind::RefreshToken);
    let rotation = Rotation {
        presented_hash: presented.hash(),
        client_id: client.client_id.clone(),
        scopes: scope.clone().unwrap_or_default(),
        resources,
        now,
        new_id: Uuid::now_v7(),
        new_hash: next.hash(),
        idle_expires_at: after(now, state.config.tokens.refresh_idle_ttl_secs.as_secs()),
    };

    let mut conn = state.pool.get().await?;
    let Some(rotated) = refresh_tokens::rotate(&mut conn, &rotation).await? else {
        return Err(refused(state, &mut conn, client, &rotation, scope, caller).await?);
    };
    drop(conn);

    let audience = rules::narrow_audience(&rotation.resources, &rotated.resources)?;
    let scope = match scope {
        Some(s) => s.to_string(),
        None => rules::token_scope(rotated.scope, offered.as_ref())?,
    };
    let grant = AccessGrant {
        sub: rotated.user_id.map_or_else(|| client.client_id.clone(), |u| u.to_string()),
        client_id: client.client_id.clone(),
        audience,
        scope,
        auth_time: Some(rotated.auth_time),
        grant_id: Some(rotated.grant_id),
    };
    let mut response = access_token(state, grant, now)?;
    response.refresh_token = Some(next.into_inner());
    Ok(response)
}

/// Why a rotation found nothing to rotate: the error to answer with (revoking the family on reuse).
async fn refused(
    state: &State,
    conn: &mut AsyncPgConnection,
    client: &Client,
    rotation: &Rotation,
    scope: Option<Scopes>,
    caller: &Caller,
) -> Result<OAuthError, OAuthError> {
    let now = rotation.now;
    let Some(row) = refresh_tokens::find_by_hash(conn, rotation.presented_hash.as_bytes()).await? else {
        return Ok(OAuthError::invalid_grant("unknown refresh token"));
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        // OAuth 2.1 §4.3.1: a rotated token presented again means one of two parties holding it is
        // not the client; the server cannot tell which, so the whole family goes.
        let keep_until = keep_revoked_until(state, row.family_expires_at);
        revoke_family(
            state,
            conn,
            row.grant_id,
            GrantRevocation::RefreshReuse,
            keep_until,
            &row.client_id,
            row.user_id,
            caller,
        )
        .await?;
        return Ok(OAuthError::invalid_grant(if row.used_at.is_some() {
            "the refresh token was already used; its grant is revoked"
        } else {
            "the refresh token was revoked"
        }));
    }
    if row.client_id != client.client_id {
        return Ok(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    if row.expires_at <= now || row.family_expires_at <= now {
        return Ok(OAuthError::invalid_grant("the refresh token has expired"));
    }
    if revocations::find_grant(conn, row.grant_id).await?.is_some() {
        return Ok(OAuthError::invalid_grant("the grant was revoked"));
    }
    if let Some(user_id) = row.user_id
        && store::users::find(conn, user_id).await?.is_none_or(|u| u.disabled)
    {
        return Ok(OAuthError::invalid_grant("the user is disabled"));
    }
    let granted = rules::stored_scope(&row.scope)?;
    if let Err(e) = rules::narrow_scope(scope, &granted) {
        return Ok(e);
    }
    if let Err(e) = rules::narrow_audience(&rotation.resources, &row.resources) {
        return Ok(e);
    }
    // it was good when we looked: the state changed in between (e.g. a concurrent use)
    Ok(OAuthError::invalid_grant("the refresh token cannot be used"))
}
