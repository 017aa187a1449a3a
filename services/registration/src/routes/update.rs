//! `PUT /oauth2/register/{client_id}`: RFC 7592 §2.2 client update.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use protocol::client::{Client, ClientInformation, ClientMetadataRequest, parse_metadata_json, refuse_machine_grant};
use protocol::secret::{PlainSecret, SecretHash, SecretKind};
use protocol::{ErrorBody, ErrorCode};
use server::OAuthError;
use server::http::client_ip;
use store::audit::{self, NewAuditEvent, kind};
use store::clients::{self, ClientRow};
use store::consents;

use crate::State;
use crate::auth::{ManagedClient, invalid_token};
use crate::body::read_json;
use crate::information::{information, respond};

fn metadata_error(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// RFC 7592 §2.2: the body must name the client it updates, and may repeat the current secret
/// but never choose one. The server-assigned members (`registration_access_token`,
/// `registration_client_uri`, `client_id_issued_at`, `client_secret_expires_at`) are ignored
/// like any unknown member.
pub fn check_identity(request: &ClientMetadataRequest, row: &ClientRow) -> Result<(), OAuthError> {
    match request.client_id.as_deref() {
        Some(id) if id == row.client_id => {}
        Some(_) => return Err(metadata_error("client_id does not match the client being updated")),
        None => return Err(metadata_error("an update must include the client's client_id (RFC 7592 §2.2)")),
    }
    if let Some(secret) = request.client_secret.as_deref()
        && !row.client_secret_hash.as_deref().is_some_and(|h| SecretHash::of(secret).matches(h))
    {
        return Err(metadata_error("client_secret must equal the current secret; a client cannot choose its secret"));
    }
    Ok(())
}

/// Replaces the client's metadata, validated exactly like a registration. Omitted members are
/// removed or reset to their defaults. Switching to a confidential method issues a secret;
/// switching to `none` drops it; the registration access token rotates only when configured to,
/// and the response carries the current one either way (RFC 7592 §3).
#[utoipa::path(put, path = "/oauth2/register/{client_id}", operation_id = "update_client", tag = "registration",
    params(("client_id" = String, Path, description = "The client's id, as in `registration_client_uri`.")),
    request_body(content = ClientMetadataRequest, content_type = "application/json",
        description = "The whole new metadata, with the client's `client_id` (RFC 7592 §2.2)."),
    responses(
        (status = 200, description = "Replaced: the client's metadata, a new secret when it became confidential, \
            and its current registration access token.", body = ClientInformation),
        (status = 400, description = "Invalid metadata (`invalid_client_metadata`, `invalid_redirect_uri`), or a path \
            that is not canonical, which the gateway refuses (`invalid_request`).", body = ErrorBody),
        (status = 413, description = "The body exceeds 64 KiB (`invalid_request`).", body = ErrorBody),
        (status = 401, description = "The registration access token is missing or wrong, or the client is unknown \
            (`invalid_token`, RFC 7592 §2.1).", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\", …`"))),
        (status = 429, description = "The client's address spent its budget (`rate_limited`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("registration_access_token" = [])),
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<State>,
    managed: ManagedClient,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let config = &state.config;
    let body = read_json(req.headers(), payload).await?;
    let request = parse_metadata_json(&body)?;
    check_identity(&request, &managed.row)?;
    let metadata = request.validate(&state.policy().await?)?;
    if managed.client.source.is_self_registered() {
        refuse_machine_grant(&metadata)?;
    }

    let current = &managed.row;
    let (secret_hash, new_secret) =
        match (metadata.token_endpoint_auth_method.is_confidential(), &current.client_secret_hash) {
            (false, _) => (None, None),
            (true, Some(hash)) => (Some(hash.clone()), None),
            (true, None) => {
                let secret = PlainSecret::generate(SecretKind::ClientSecret);
                (Some(secret.hash().to_vec()), Some(secret))
            }
        };
    let new_token = config
        .registration
        .rotate_registration_token
        .then(|| PlainSecret::generate(SecretKind::RegistrationAccessToken));

    let now = state.ctx.clock.now();
    let mut row = ClientRow::new(current.client_id.clone(), managed.client.source, &metadata, current.created_at);
    row.client_secret_expires_at = secret_hash.as_ref().and(current.client_secret_expires_at);
    row.client_secret_hash = secret_hash;
    row.registration_token_hash =
        new_token.as_ref().map(|t| t.hash().to_vec()).or_else(|| current.registration_token_hash.clone());
    row.may_introspect = current.may_introspect;
    row.updated_at = now;

    // a new place for the codes to go is not what the users approved: they are asked again
    let mut old_redirects: Vec<&str> = current.redirect_uris.iter().map(|r| r.as_str()).collect();
    let mut new_redirects: Vec<&str> = metadata.redirect_uris.iter().map(|r| r.as_str()).collect();
    old_redirects.sort_unstable();
    new_redirects.sort_unstable();
    let redirects_changed = old_redirects != new_redirects;
    let mut detail = metadata.audit_detail();
    if let Some(obj) = detail.as_object_mut() {
        obj.insert("secret_issued".into(), new_secret.is_some().into());
        obj.insert("registration_token_rotated".into(), new_token.is_some().into());
    }
    let ip = client_ip(&req, config.trust_forwarded_for).to_string();
    let mut event = NewAuditEvent {
        occurred_at: now,
        kind: kind::CLIENT_UPDATED,
        client_id: Some(&row.client_id),
        user_id: None,
        ip: Some(&ip),
        detail,
    };
    let mut conn = state.ctx.pool.get().await?;
    let replaced = conn
        .transaction(async |conn| {
            let replaced = clients::replace(conn, &row, managed.token_hash.as_bytes()).await?;
            if replaced {
                if redirects_changed {
                    let forgotten = consents::forget_client(conn, &row.client_id).await?;
                    if let Some(obj) = event.detail.as_object_mut() {
                        obj.insert("consents_forgotten".into(), forgotten.into());
                    }
                }
                audit::record(conn, &event).await?;
            }
            Ok::<_, diesel::result::Error>(replaced)
        })
        .await?;
    drop(conn);
    if !replaced {
        // rotated or deleted by a concurrent request since we authenticated
        return Err(invalid_token("the registration access token is not valid for this client"));
    }
    tracing::info!(client_id = %row.client_id, "client updated");

    let client = Client {
        client_id: row.client_id.clone(),
        source: managed.client.source,
        secret_hash: row.client_secret_hash.clone(),
        secret_expires_at: row.client_secret_expires_at,
        may_introspect: row.may_introspect,
        created_at: row.created_at,
        metadata,
    };
    // RFC 7592 §3: the response carries the token that is valid now, rotated or the one presented
    let token = new_token.map_or_else(|| managed.token.into_inner(), PlainSecret::into_inner);
    Ok(respond(StatusCode::OK, &information(&config.issuer, &client, new_secret, token)))
}
