//! `POST /oauth2/token` (RFC 6749 §3.2): parse, authenticate the client, run the grant.

use actix_web::{HttpRequest, HttpResponse, web};
use protocol::client::GrantType;
use protocol::error::{ErrorBody, ErrorCode};
use server::OAuthError;

use crate::State;
use crate::client_auth::authenticate;
use crate::form::Form;
use crate::grants::{self, Caller};
use crate::issue::{TokenResponse, json_no_store};

/// The token request, form-encoded: `authorization_code` (RFC 6749 §4.1.3 with RFC 7636 PKCE),
/// `refresh_token` (§6) or `client_credentials` (§4.4), each with optional RFC 8707 `resource`s.
/// Each grant requires its own parameters; the others are ignored.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema: the handler reads these parameters from crate::form::Form")]
pub struct TokenRequest {
    grant_type: GrantType,
    /// `authorization_code`: the code from the authorization response.
    #[schema(required = false)]
    code: String,
    /// `authorization_code`: the `redirect_uri` of the authorization request, when it sent one.
    #[schema(required = false)]
    redirect_uri: String,
    /// `authorization_code`: the PKCE verifier (43 to 128 characters, RFC 7636 §4.1).
    #[schema(required = false)]
    code_verifier: String,
    /// `refresh_token`: the refresh token (single use; the answer carries its successor).
    #[schema(required = false)]
    refresh_token: String,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): the Identity Assertion JWT
    /// Authorization Grant (ID-JAG, `typ` `oauth-id-jag+jwt`) of a trusted identity provider.
    #[schema(required = false)]
    assertion: String,
    /// `refresh_token`, `client_credentials`, the jwt-bearer grant: space-separated scopes, within
    /// what was granted.
    #[schema(required = false)]
    scope: String,
    /// RFC 8707 resource indicators: the audience of the token (repeatable).
    #[schema(required = false)]
    resource: Vec<String>,
    /// Public clients (`none`) and `client_secret_post`.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`.
    #[schema(required = false)]
    client_secret: String,
}

/// The token endpoint (RFC 6749 §3.2).
#[utoipa::path(post, path = "/oauth2/token", operation_id = "token", tag = "token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens issued (RFC 6749 §5.1); never cached.", body = TokenResponse),
        (status = 400, description = "Refused (RFC 6749 §5.2): `invalid_request`, `invalid_grant`, `unauthorized_client`, \
            `unsupported_grant_type`, `invalid_scope`, `invalid_target`.", body = ErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`).", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"sallyport\"`"))),
        (status = 413, description = "The body exceeds 64 KiB (`invalid_request`).", body = ErrorBody),
        (status = 429, description = "The client's address spent its budget at the gateway (`rate_limited`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database or the signing key is unavailable (`temporarily_unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security((), ("client_secret_basic" = [])),
)]
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let grant = form.require("grant_type").map(|g| (g, GrantType::parse(g)));
    let label = match grant {
        Ok((_, Some(g))) => g.as_str(),
        Ok((_, None)) => "unsupported",
        Err(_) => "none",
    };
    let result = grant_response(&req, &state, &form, grant).await;
    state.metrics.token_grant(label, result.as_ref().map_or_else(|e| e.code.as_str(), |_| "issued"));
    result
}

async fn grant_response(
    req: &HttpRequest,
    state: &State,
    form: &Form,
    grant: Result<(&str, Option<GrantType>), OAuthError>,
) -> Result<HttpResponse, OAuthError> {
    let (grant_type, grant) = grant?;
    // the JWT bearer grant exists only where an identity provider is trusted (`[identity]`)
    let grant = grant.filter(|g| *g != GrantType::JwtBearer || !state.issuers.is_empty()).ok_or_else(|| {
        OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type {grant_type} is not supported"))
    })?;
    let client = authenticate(state, req.headers(), form).await?;
    let caller = Caller { ip: server::http::client_ip(req, state.config.trust_forwarded_for).to_string() };
    let response = match grant {
        GrantType::AuthorizationCode => grants::code::exchange(state, &client, form, &caller).await?,
        GrantType::RefreshToken => grants::refresh::exchange(state, &client, form, &caller).await?,
        GrantType::ClientCredentials => grants::client_credentials::exchange(state, &client, form).await?,
        GrantType::JwtBearer => grants::jwt_bearer::exchange(state, &client, form).await?,
    };
    json_no_store(&response)
}
