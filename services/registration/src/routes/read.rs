//! `GET /oauth2/register/{client_id}`: RFC 7592 §2.1 client read.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use protocol::ErrorBody;
use protocol::client::ClientInformation;
use protocol::secret::{PlainSecret, SecretKind};
use server::OAuthError;
use server::http::client_ip;
use store::audit::{self, NewAuditEvent, kind};
use store::clients;

use crate::State;
use crate::auth::{ManagedClient, invalid_token};
use crate::information::{information, respond};

/// The client's current metadata and registration access token (RFC 7592 §3): the presented one,
/// or with `registration.rotate_registration_token` a new one, the presented one then stops working.
#[utoipa::path(get, path = "/oauth2/register/{client_id}", operation_id = "read_client", tag = "registration",
    params(("client_id" = String, Path, description = "The client's id, as in `registration_client_uri`.")),
    responses(
        (status = 400, description = "The path is not canonical (an encoded `/` or `\\`, a dot segment, …): the gateway \
            refuses it (`invalid_request`).", body = ErrorBody),
        (status = 200, description = "The client's metadata and current registration access token (RFC 7592 §3).",
            body = ClientInformation),
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
pub async fn read(
    req: HttpRequest,
    state: web::Data<State>,
    managed: ManagedClient,
) -> Result<HttpResponse, OAuthError> {
    let token = if state.config.registration.rotate_registration_token {
        rotate(&req, &state, &managed).await?.into_inner()
    } else {
        managed.token.into_inner()
    };
    Ok(respond(StatusCode::OK, &information(&state.config.issuer, &managed.client, None, token)))
}

/// Replaces the registration access token, only if the presented one is still current.
async fn rotate(req: &HttpRequest, state: &State, managed: &ManagedClient) -> Result<PlainSecret, OAuthError> {
    let token = PlainSecret::generate(SecretKind::RegistrationAccessToken);
    let now = state.ctx.clock.now();
    let ip = client_ip(req, state.config.trust_forwarded_for).to_string();
    let client_id = managed.client.client_id.as_str();
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::REGISTRATION_TOKEN_ROTATED,
        client_id: Some(client_id),
        user_id: None,
        ip: Some(&ip),
        detail: serde_json::json!({"reason": "read"}),
    };
    let new_hash = token.hash();
    let mut conn = state.ctx.pool.get().await?;
    let rotated = conn
        .transaction(async |conn| {
            let rotated = clients::rotate_registration_token(
                conn,
                client_id,
                managed.token_hash.as_bytes(),
                new_hash.as_bytes(),
                now,
            )
            .await?;
            if rotated {
                audit::record(conn, &event).await?;
            }
            Ok::<_, diesel::result::Error>(rotated)
        })
        .await?;
    if !rotated {
        // another request rotated it, or the client was deleted, since we authenticated
        return Err(invalid_token("the registration access token is not valid for this client"));
    }
    Ok(token)
}
