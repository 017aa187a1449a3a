//! `POST /oauth2/register`: RFC 7591 dynamic client registration.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use protocol::ErrorBody;
use protocol::client::{
    Client, ClientInformation, ClientMetadataRequest, ClientSource, parse_metadata_json, refuse_machine_grant,
};
use protocol::secret::{PlainSecret, SecretKind};
use server::OAuthError;
use store::audit::{NewAuditEvent, kind};
use store::clients::{self, ClientRow};

use crate::State;
use crate::auth::check_initial_access;
use crate::body::read_json;
use crate::information::{information, respond};

/// Registers a client: rate limit, initial access token, a JSON body validated against the
/// deployment's policy, then one short transaction (the client and its audit event). The secret
/// (confidential clients only) and the registration access token are returned once and stored as
/// SHA-256 hashes.
#[utoipa::path(post, path = "/oauth2/register", operation_id = "register_client", tag = "registration",
    request_body(content = ClientMetadataRequest, content_type = "application/json",
        description = "RFC 7591 §2 client metadata, at most 64 KiB; unknown members are ignored."),
    responses(
        (status = 201, description = "Registered (RFC 7591 §3.2.1): the client's metadata, its secret (confidential \
            clients) and its registration access token, each shown once.", body = ClientInformation),
        (status = 400, description = "Invalid metadata (`invalid_client_metadata`, `invalid_redirect_uri`).", body = ErrorBody),
        (status = 401, description = "The initial access token is missing or wrong, when one is configured (`invalid_token`).",
            body = ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\", …`"))),
        (status = 413, description = "The body exceeds 64 KiB (`invalid_request`).", body = ErrorBody),
        (status = 429, description = "The client's address spent its budget (`rate_limited`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable (`temporarily_unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security((), ("initial_access_token" = [])),
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let result = registered(req, &state, payload).await;
    state.ctx.metrics.registration(result.as_ref().map_or_else(|e| e.code.as_str(), |_| "registered"));
    result
}

async fn registered(req: HttpRequest, state: &State, payload: web::Payload) -> Result<HttpResponse, OAuthError> {
    let config = &state.config;
    let ip = state.spend_budget(&req)?;
    check_initial_access(state, req.headers())?;
    let body = read_json(req.headers(), payload).await?;
    // RFC 7591 §3.1: unknown members are ignored; a client_id sent here is not the client's to choose
    let metadata = parse_metadata_json(&body)?.validate(&state.policy().await?)?;
    refuse_machine_grant(&metadata)?;

    let now = state.ctx.clock.now();
    let client_id = uuid::Uuid::new_v4().to_string();
    let secret =
        metadata.token_endpoint_auth_method.is_confidential().then(|| PlainSecret::generate(SecretKind::ClientSecret));
    let token = PlainSecret::generate(SecretKind::RegistrationAccessToken);
    let mut row = ClientRow::new(client_id.clone(), ClientSource::Dynamic, &metadata, now);
    row.client_secret_hash = secret.as_ref().map(|s| s.hash().to_vec());
    row.registration_token_hash = Some(token.hash().to_vec());

    let ip = ip.to_string();
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::CLIENT_REGISTERED,
        client_id: Some(&client_id),
        user_id: None,
        ip: Some(&ip),
        detail: metadata.audit_detail(),
    };
    let mut conn = state.ctx.pool.get().await?;
    // the client and its audit event commit together, in one statement
    clients::insert_audited(&mut conn, &row, &event).await?;
    drop(conn);
    tracing::info!(client_id, auth_method = metadata.token_endpoint_auth_method.as_str(), "client registered");

    let client = Client {
        client_id,
        source: ClientSource::Dynamic,
        secret_hash: row.client_secret_hash,
        secret_expires_at: None,
        may_introspect: false,
        created_at: now,
        metadata,
    };
    Ok(respond(StatusCode::CREATED, &information(&config.issuer, &client, secret, token.into_inner())))
}
