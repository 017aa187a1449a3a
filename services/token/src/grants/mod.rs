//! The grants of `POST /oauth2/token`, one module each. Each is one short database statement or
//! transaction (none for client_credentials); signing happens after it.

pub mod client_credentials;
pub mod code;
pub mod jwt_bearer;
pub mod refresh;

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use protocol::client::{Client, GrantType};
use protocol::error::ErrorCode;
use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use server::OAuthError;
use store::audit::{self, NewAuditEvent};
use store::revocations::{self, GrantRevocation};
use uuid::Uuid;

use crate::State;

/// Tolerance verifiers may allow on `exp`; revocation records outlive tokens by this much.
const VERIFIER_LEEWAY_SECS: i64 = 300;

/// Audit `kind`s written by the token service.
pub mod kind {
    /// RFC 6749 §4.1.2: an authorization code was used twice; its grant family was revoked.
    pub const CODE_REPLAYED: &str = "token.code_replayed";
    /// A rotated refresh token was used again; its grant family was revoked.
    pub const REFRESH_REUSED: &str = "token.refresh_reused";
    /// RFC 7009: a client revoked a refresh token (and so its family).
    pub const GRANT_REVOKED: &str = "token.grant_revoked";
}

/// The client is not allowed this grant (RFC 6749 §5.2 `unauthorized_client`).
pub fn require_grant(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client is not registered for the {} grant", grant.as_str()),
        ))
    }
}

/// How long a revoked family must stay recorded: past the last instant at which any token of it
/// (a refresh token until `family_expires_at`, and access tokens minted until then) could verify.
pub fn keep_revoked_until(state: &State, family_expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let ttl = i64::try_from(state.config.tokens.access_token_ttl_secs.as_secs()).unwrap_or(i64::MAX / 1000);
    family_expires_at
        .checked_add_signed(TimeDelta::seconds(ttl.saturating_add(VERIFIER_LEEWAY_SECS)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The scopes the requested resources offer, or `None` when the request names none (RFC 8707
/// §2.2: the audience is then the whole grant). A resource unknown to the registry offers nothing.
pub async fn offered_by(state: &State, resources: &[ResourceUri]) -> Result<Option<Scopes>, OAuthError> {
    if resources.is_empty() {
        return Ok(None);
    }
    let all = state.registry.all(&state.pool).await?;
    let offered =
        all.iter().filter(|r| resources.contains(&r.id)).fold(Scopes::default(), |acc, r| acc.union(&r.scopes));
    Ok(Some(offered))
}

/// Who asked: for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: String,
}

/// Revokes a grant family and records why, in one statement plus an audit row. Takes the
/// caller's connection: a request never holds two (that could starve the pool under load).
#[expect(clippy::too_many_arguments, reason = "each is a distinct fact of the event")]
pub async fn revoke_family(
    state: &State,
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    reason: GrantRevocation,
    keep_until: DateTime<Utc>,
    client_id: &str,
    user_id: Option<Uuid>,
    caller: &Caller,
) -> Result<u64, OAuthError> {
    let now = state.clock.now();
    let revoked = revocations::revoke_grant(conn, grant_id, reason, now, keep_until).await?;
    state.metrics.family_revoked(reason.as_str());
    let kind = match reason {
        GrantRevocation::CodeReplay => kind::CODE_REPLAYED,
        GrantRevocation::RefreshReuse => kind::REFRESH_REUSED,
        GrantRevocation::Revoked => kind::GRANT_REVOKED,
    };
    let event = NewAuditEvent {
        occurred_at: now,
        kind,
        client_id: Some(client_id),
        user_id,
        ip: Some(&caller.ip),
        detail: serde_json::json!({ "grant_id": grant_id, "refresh_tokens_revoked": revoked }),
    };
    if let Err(e) = audit::record(conn, &event).await {
        // the revocation stands; a missing audit row must not turn it into an error
        tracing::error!(error = %e, "cannot record an audit event");
    }
    match reason {
        GrantRevocation::Revoked => tracing::info!(%grant_id, client_id, revoked, "grant family revoked by its client"),
        _ => tracing::warn!(%grant_id, client_id, reason = reason.as_str(), revoked, "grant family revoked"),
    }
    Ok(revoked)
}
