//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5, RFC 8707 §2.2).
//!
//! One transaction: the code is marked used and returned by one statement (so of any number of
//! concurrent redemptions exactly one sees it fresh), checked, and the refresh token inserted.
//! A failed check still commits: a code presented once is spent.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use protocol::client::{Client, GrantType};
use protocol::clock::after;
use protocol::ident::{self, PresentedSecret};
use protocol::pkce::CodeVerifier;
use protocol::secret::{PlainSecret, SecretKind};
use protocol::uri::{MAX_URI_LEN, ResourceUri};
use server::OAuthError;
use store::codes::{self, CodeRow, Redemption};
use store::refresh_tokens::{self, RefreshTokenRow};
use store::revocations::GrantRevocation;
use store::users;
use uuid::Uuid;

use super::{Caller, keep_revoked_until, offered_by, require_grant, revoke_family};
use crate::State;
use crate::form::Form;
use crate::issue::{AccessGrant, TokenResponse, access_token};
use crate::rules;

/// What the redemption transaction decided.
enum Outcome {
    Issued { code: Box<CodeRow>, audience: Vec<String> },
    Refused(OAuthError),
    Replayed(Box<CodeRow>),
}

pub async fn exchange(
    state: &State,
    client: &Client,
    form: &Form,
    caller: &Caller,
) -> Result<TokenResponse, OAuthError> {
    require_grant(client, GrantType::AuthorizationCode)?;
    let code = form.require_parsed("code", PresentedSecret::parse)?;
    // RFC 7636 §4.5: every code here was issued with a challenge, so the verifier is required
    let verifier = form.require_parsed("code_verifier", CodeVerifier::parse)?;
    let redirect_uri = form.parsed("redirect_uri", |v| ident::vschar(v, MAX_URI_LEN))?;
    let resources = rules::requested_resources(form.all("resource"))?;
    let offered = offered_by(state, &resources).await?;
    let now = state.clock.now();
    let hash = code.hash();
    let refresh = client.allows_grant(GrantType::RefreshToken).then(|| PlainSecret::generate(SecretKind::RefreshToken));
    let tokens = &state.config.tokens;

    let mut conn = state.pool.get().await?;
    let outcome = conn
        .transaction(async |conn| {
            let row = match codes::redeem(conn, hash.as_bytes(), now).await? {
                Redemption::Unknown => return Ok(Outcome::Refused(OAuthError::invalid_grant("unknown code"))),
                Redemption::Replayed(row) => return Ok(Outcome::Replayed(Box::new(row))),
                Redemption::Fresh(row) => row,
            };
            let audience = match check(&row, client, redirect_uri, &verifier, &resources, now) {
                Ok(audience) => audience,
                Err(e) => return Ok(Outcome::Refused(e)),
            };
            // issue 13: a user disabled since signing in gets nothing from the code (it is spent)
            if !users::is_active(conn, row.user_id).await? {
                return Ok(Outcome::Refused(OAuthError::invalid_grant("the user of this code is disabled")));
            }
            if let Some(secret) = &refresh {
                let family_expires_at = after(now, tokens.refresh_absolute_ttl_secs.as_secs());
                let new = RefreshTokenRow {
                    id: Uuid::now_v7(),
                    token_hash: secret.hash().to_vec(),
                    grant_id: row.grant_id,
                    parent_id: None,
                    client_id: client.client_id.clone(),
                    user_id: Some(row.user_id),
                    scope: row.scope.clone(),
                    resources: row.resources.clone(),
                    auth_time: row.auth_time,
                    created_at: now,
                    expires_at: after(now, tokens.refresh_idle_ttl_secs.as_secs()).min(family_expires_at),
                    family_expires_at,
                    used_at: None,
                    revoked_at: None,
                };
                refresh_tokens::insert(conn, &new).await?;
            }
            Ok::<_, diesel::result::Error>(Outcome::Issued { code: Box::new(row), audience })
        })
        .await?;
    drop(conn);

    match outcome {
        Outcome::Refused(e) => Err(e),
        Outcome::Replayed(row) => {
            // RFC 6749 §4.1.2: revoke everything issued from the code. Its family may still be
            // rotating until refresh_absolute_ttl after the first redemption.
            let first_use = row.used_at.unwrap_or(now);
            let keep_until = keep_revoked_until(state, after(first_use, tokens.refresh_absolute_ttl_secs.as_secs()));
            let mut conn = state.pool.get().await?;
            revoke_family(
                state,
                &mut conn,
                row.grant_id,
                GrantRevocation::CodeReplay,
                keep_until,
                &row.client_id,
                Some(row.user_id),
                caller,
            )
            .await?;
            Err(OAuthError::invalid_grant("the code was already presented; any tokens issued from it are revoked"))
        }
        Outcome::Issued { code, audience } => {
            let grant = AccessGrant {
                sub: code.user_id.to_string(),
                client_id: client.client_id.clone(),
                audience,
                scope: rules::token_scope(code.scope.clone(), offered.as_ref())?,
                auth_time: Some(code.auth_time),
                grant_id: Some(code.grant_id),
            };
            let mut response = access_token(state, grant, now)?;
            response.refresh_token = refresh.map(PlainSecret::into_inner);
            Ok(response)
        }
    }
}

/// The checks of RFC 6749 §4.1.3 on a freshly redeemed code; returns the token's audience.
fn check(
    row: &CodeRow,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: &CodeVerifier,
    requested: &[ResourceUri],
    now: DateTime<Utc>,
) -> Result<Vec<String>, OAuthError> {
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if row.expires_at <= now {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    rules::check_redirect_uri(&row.redirect_uri, row.redirect_uri_sent, redirect_uri)?;
    protocol::pkce::verify(Some(verifier.as_str()), &row.code_challenge)
        .map_err(|e| OAuthError::invalid_grant(format!("PKCE: {e}")))?;
    let granted: Vec<String> = row.resources.iter().flatten().cloned().collect();
    rules::narrow_audience(requested, &granted)
}
