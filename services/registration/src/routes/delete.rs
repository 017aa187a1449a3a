//! `DELETE /oauth2/register/{client_id}`: RFC 7592 §2.3 client delete.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use protocol::ErrorBody;
use protocol::clock::after;
use server::OAuthError;
use server::http::client_ip;
use store::audit::{NewAuditEvent, kind};
use store::clients;

use crate::State;
use crate::auth::{ManagedClient, invalid_token};

/// Deletes the client and revokes what it holds: its grant families are recorded as revoked for
/// one access-token lifetime (so outstanding JWTs fail introspection), and its codes, refresh
/// tokens and consents go with the row. 204 on success (RFC 7592 §2.3).
#[utoipa::path(delete, path = "/oauth2/register/{client_id}", operation_id = "delete_client", tag = "registration",
    params(("client_id" = String, Path, description = "The client's id, as in `registration_client_uri`.")),
    responses(
        (status = 400, description = "The path is not canonical (an encoded `/` or `\\`, a dot segment, …): the gateway \
            refuses it (`invalid_request`).", body = ErrorBody),
        (status = 204, description = "Deleted, with everything the client held (RFC 7592 §2.3)."),
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
pub async fn delete(
    req: HttpRequest,
    state: web::Data<State>,
    managed: ManagedClient,
) -> Result<HttpResponse, OAuthError> {
    let now = state.ctx.clock.now();
    let revoked_until = after(now, state.config.access_token_ttl.as_secs());
    let ip = client_ip(&req, state.config.trust_forwarded_for).to_string();
    let client_id = managed.client.client_id.as_str();
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::CLIENT_DELETED,
        client_id: Some(client_id),
        user_id: None,
        ip: Some(&ip),
        detail: serde_json::json!({"source": managed.client.source.as_str()}),
    };
    let mut conn = state.ctx.pool.get().await?;
    let Some(revoked) = clients::delete_revoking(&mut conn, client_id, now, revoked_until, event).await? else {
        // deleted by a concurrent request since we authenticated
        return Err(invalid_token("the registration access token is not valid for this client"));
    };
    tracing::info!(client_id, revoked_grants = revoked, "client deleted");
    Ok(HttpResponse::NoContent().insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store"))).finish())
}
