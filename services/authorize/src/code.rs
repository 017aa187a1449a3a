//! Authorization codes (RFC 6749 §4.1.2): 256 random bits with the `spac_` prefix, stored only as
//! SHA-256 in one insert, with every column the token service checks (CONTRACTS.md).

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use protocol::clock::after;
use protocol::secret::{PlainSecret, SecretKind};
use server::error::OAuthError;
use store::codes::{self, CodeRow};
use uuid::Uuid;

use crate::request::Validated;
use crate::session::Session;

/// Issues a code for a validated request and the signed-in user; returns the code to send.
pub async fn issue(
    conn: &mut AsyncPgConnection,
    request: &Validated,
    session: &Session,
    ttl_secs: u64,
    now: DateTime<Utc>,
) -> Result<PlainSecret, OAuthError> {
    let code = PlainSecret::generate(SecretKind::AuthorizationCode);
    let row = CodeRow {
        code_hash: code.hash().to_vec(),
        // the grant family of every token issued from this code
        grant_id: Uuid::now_v7(),
        client_id: request.target.client.client_id.clone(),
        user_id: session.user_id,
        redirect_uri: request.target.redirect.as_str().to_owned(),
        redirect_uri_sent: request.target.redirect_sent,
        code_challenge: request.challenge.clone(),
        resources: request.resource_ids(),
        scope: request.scope.to_string(),
        auth_time: session.auth_time,
        created_at: now,
        expires_at: after(now, ttl_secs),
        used_at: None,
    };
    codes::insert(conn, row).await?;
    Ok(code)
}
