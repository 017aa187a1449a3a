//! The gateway's introspection client: the confidential client, allowed to call RFC 7662
//! introspection, that the gateway's revocation check (`gateway.revocation_check`) authenticates
//! as. `sallyport up` provisions one with a fresh secret at every start; `sallyport migrate`
//! provisions the one the deployment configured (`gateway.introspection_client_id` and
//! `_secret`), so compose and Kubernetes hand the same secret to the migration step and the
//! gateway, the way they hand out every other secret.

use anyhow::{Context as _, bail};
use diesel_async::AsyncConnection as _;
use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::secret::SecretHash;
use store::audit::{self, NewAuditEvent, kind};
use store::clients::{self, ClientRow};

/// A configured secret shorter than this is refused: it stands between the internet and every
/// token's introspection answer.
pub const MIN_SECRET_LEN: usize = 32;

/// What provisioning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    /// The client existed with another secret (a rotation) or without introspection.
    Updated,
    Unchanged,
}

/// Makes `client_id` an operator's confidential client with `secret` that may introspect.
/// An id held by a client that registered itself is refused, never taken over.
pub async fn introspection_client(
    conn: &mut store::db::Conn,
    client_id: &str,
    secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Provisioned> {
    if secret.len() < MIN_SECRET_LEN {
        bail!("gateway.introspection_client_secret must be at least {MIN_SECRET_LEN} characters");
    }
    let hash = SecretHash::of(secret);
    let existing = clients::find_row(conn, client_id).await?;
    let outcome = match &existing {
        Some(row) if row.source != ClientSource::Admin.as_str() => {
            bail!("client {client_id} registered itself: it cannot be the gateway's introspection client")
        }
        Some(row) if row.may_introspect && row.client_secret_hash.as_deref() == Some(hash.as_bytes()) => {
            return Ok(Provisioned::Unchanged);
        }
        Some(_) => Provisioned::Updated,
        None => Provisioned::Created,
    };
    let policy =
        MetadataPolicy { max_redirect_uris: 1, default_scopes: Default::default(), allowed_scopes: Default::default() };
    let metadata = ClientMetadataRequest {
        grant_types: Some(vec!["client_credentials".into()]),
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        client_name: Some("Sallyport gateway".into()),
        ..Default::default()
    }
    .validate(&policy)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut row = ClientRow::new(client_id.to_owned(), ClientSource::Admin, &metadata, now);
    row.created_at = existing.as_ref().map_or(now, |r| r.created_at);
    row.client_secret_hash = Some(hash.as_bytes().to_vec());
    row.may_introspect = true;
    let event = NewAuditEvent {
        occurred_at: now,
        kind: if outcome == Provisioned::Created { kind::CLIENT_CREATED } else { kind::CLIENT_UPDATED },
        client_id: Some(client_id),
        user_id: None,
        ip: None,
        detail: serde_json::json!({"via": "provisioning", "may_introspect": true, "purpose": "gateway introspection"}),
    };
    conn.transaction(async |conn| {
        if existing.is_some() {
            clients::update(conn, &row).await?;
        } else {
            clients::insert(conn, &row).await?;
        }
        audit::record(conn, &event).await
    })
    .await
    .context("cannot store the gateway's introspection client")?;
    Ok(outcome)
}
