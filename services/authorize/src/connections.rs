//! What the connections pages share (issue 20): the `oauth2` routes, the key that seals, audit.

use diesel_async::AsyncPgConnection;
use server::error::OAuthError;
use server::upstream_oauth::{self, OAuthRoute};
use uuid::Uuid;

use crate::State;

impl State {
    /// `keys.encryption_key`, as the sealing functions take it.
    pub fn kek(&self) -> Option<&[u8; 32]> {
        self.config.encryption_key.as_ref().map(server::config::EncryptionKey::bytes)
    }

    /// Every `oauth2` route: the configuration's, then the database's.
    pub async fn oauth_routes(&self, conn: &mut AsyncPgConnection) -> Result<Vec<OAuthRoute>, OAuthError> {
        upstream_oauth::routes(conn, &self.config.routes, self.kek()).await
    }

    /// The connect URL of a route (also the gateway's URL elicitation).
    pub fn connect_url(&self, prefix: &str) -> String {
        upstream_oauth::connect_uri(&self.config.issuer, prefix)
    }
}

/// Records an audit event about a user's upstream account; a failure is logged, never shown (the
/// user's action happened either way).
pub async fn audit(
    conn: &mut AsyncPgConnection,
    now: chrono::DateTime<chrono::Utc>,
    kind: &str,
    user_id: Uuid,
    ip: Option<&str>,
    detail: serde_json::Value,
) {
    let event =
        store::audit::NewAuditEvent { occurred_at: now, kind, client_id: None, user_id: Some(user_id), ip, detail };
    if let Err(e) = store::audit::record(conn, &event).await {
        tracing::warn!(error = %e, kind, "an audit event could not be recorded");
    }
}
