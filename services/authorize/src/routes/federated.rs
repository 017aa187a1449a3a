//! Signing in with an OpenID provider. `start` (the provider's button on the sign-in page, a POST
//! to `/oauth2/login` checked like the password form) stores the pending sign-in and sends the
//! browser to the provider with PKCE S256, `state` and `nonce`; `GET /oauth2/login/{id}/callback`
//! takes the pending sign-in once, checks it belongs to this browser, exchanges the code, validates
//! the ID token completely, asks userinfo for missing claims, applies the admission rules, links
//! or creates the user by (issuer, `sub`), and starts a session exactly as a password sign-in does.
//! Every failure ends on a page saying what happened, with "try again" when the request is known.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use protocol::clock::after;
use protocol::oidc::{IdTokenError, IdTokenExpectations, ProviderMetadata, peek_kid, verify_id_token};
use protocol::secret::{SecretHash, constant_time_eq, random_token};
use serde_json::{Map, Value};
use server::error::OAuthError;
use store::audit::{self, NewAuditEvent, kind};
use store::federated_logins::{self, FederatedLoginRow};

use crate::federation::admission::{self, Refusal};
use crate::federation::{FetchError, Provider, flow};
use crate::login::AuthenticatedUser;
use crate::params::AuthzParams;
use crate::request::Validated;
use crate::{State, redirect, session};

/// How long the browser has to come back from the provider.
const PENDING_SECS: u64 = 600;
/// Clock skew tolerated on the ID token's `exp` and `iat`.
const LEEWAY_SECS: i64 = 60;

/// The provider's button was pressed (the form's CSRF token and the per-IP budget are checked).
pub async fn start(
    state: &State,
    req: &HttpRequest,
    request: &Validated,
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    let encoded = request.params.encode();
    let retry = Some(format!("{}?{}", state.login_url, encoded));
    let meta = match provider.metadata().await {
        Ok(m) => m,
        Err(e) => {
            let failure = Failure::Fetch(e);
            let ip = server::http::client_ip(req, state.config.trust_forwarded_for).to_string();
            state.ctx.metrics.sign_in_with("openid", "failure");
            audit_failure(state, provider, None, &failure, &ip).await;
            return Ok(failure_page(state, provider, &failure, retry.as_deref()));
        }
    };
    let Some(cookie) = super::login::login_cookie(state, req) else {
        // the form was checked against this cookie a moment ago
        return Err(OAuthError::internal("pre-login cookie vanished"));
    };
    let state_value = random_token(32);
    let now = state.ctx.clock.now();
    let row = FederatedLoginRow {
        state_hash: SecretHash::of(&state_value).to_vec(),
        provider: provider.id().to_owned(),
        browser_hash: flow::browser_hash(&cookie).to_vec(),
        request: encoded,
        created_at: now,
        expires_at: after(now, PENDING_SECS),
    };
    let mut conn = state.ctx.pool.get().await?;
    federated_logins::insert(&mut conn, &row).await?;
    prune(state, &mut conn, now).await;
    drop(conn);
    let mut url = url::Url::parse(&meta.authorization_endpoint).map_err(OAuthError::internal)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.settings.client_id)
        .append_pair("redirect_uri", &provider.redirect_uri)
        .append_pair("scope", &provider.settings.scopes.join(" "))
        .append_pair("state", &state_value)
        .append_pair("nonce", &flow::nonce(&cookie, &state_value))
        .append_pair("code_challenge", &protocol::pkce::s256(&flow::verifier(&cookie, &state_value)))
        .append_pair("code_challenge_method", "S256");
    tracing::info!(provider = provider.id(), "federated sign-in started");
    Ok(redirect::to(url.as_str(), StatusCode::SEE_OTHER))
}

/// Removes abandoned sign-ins now and then (housekeeping: a failure is logged, never shown).
async fn prune(state: &State, conn: &mut diesel_async::AsyncPgConnection, now: DateTime<Utc>) {
    use std::sync::atomic::Ordering;
    const PRUNE_SECS: i64 = 600;
    let last = state.last_federated_prune.load(Ordering::Relaxed);
    if now.timestamp() - last < PRUNE_SECS
        || state
            .last_federated_prune
            .compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    if let Err(e) = federated_logins::prune(conn, now).await {
        tracing::warn!(error = %e, "abandoned federated sign-ins could not be removed");
    }
}

/// Why a federated sign-in did not end in a session.
enum Failure {
    /// The pending sign-in is unknown, used, expired, or another browser's.
    Expired,
    /// The provider answered the authorization request with an error (`access_denied`, ...).
    Provider(String),
    /// The response lacks a code, or names another issuer (RFC 9207 mix-up defence).
    BadResponse(&'static str),
    Fetch(FetchError),
    IdToken(IdTokenError),
    /// Userinfo's `sub` is not the ID token's (Core §5.3.2).
    UserinfoSubject,
    NotAdmitted(Refusal),
    Disabled,
}

impl Failure {
    /// A fixed word for the audit trail and the log.
    fn reason(&self) -> String {
        match self {
            Self::Expired => "expired_or_replayed".into(),
            Self::Provider(code) => format!("provider_error:{code}"),
            Self::BadResponse(why) => format!("bad_response:{why}"),
            Self::Fetch(FetchError::Unreachable(_)) => "provider_unreachable".into(),
            Self::Fetch(FetchError::Invalid(_)) => "provider_invalid_answer".into(),
            Self::Fetch(FetchError::Refused(code)) => format!("code_refused:{code}"),
            Self::IdToken(e) => format!("id_token:{}", id_token_reason(e)),
            Self::UserinfoSubject => "userinfo_subject_mismatch".into(),
            Self::NotAdmitted(r) => format!("not_admitted:{}", r.reason()),
            Self::Disabled => "user_disabled".into(),
        }
    }

    /// What the page says.
    fn message(&self, provider: &str) -> String {
        match self {
            Self::Expired => "This sign-in was already used, has expired, or was started in another browser.".into(),
            Self::Provider(code) if code == "access_denied" => {
                format!("{provider} did not allow the sign-in (access_denied): it was cancelled or refused there.")
            }
            Self::Provider(code) => format!("{provider} answered with an error ({code})."),
            Self::BadResponse(why) => format!("{provider}'s answer could not be used: {why}."),
            Self::Fetch(FetchError::Unreachable(_)) => {
                format!("{provider} could not be reached. It may be down, or the network between us is.")
            }
            Self::Fetch(e) => format!("{provider}'s answer could not be used ({e})."),
            Self::IdToken(IdTokenError::Expired | IdTokenError::IssuedInFuture) => format!(
                "{provider}'s sign-in confirmation was not valid at this time: the clocks of {provider} and this \
                 server disagree, or it took too long."
            ),
            Self::IdToken(e) => format!("{provider}'s sign-in confirmation was refused: {e}."),
            Self::UserinfoSubject => format!("{provider} described a different user than the one who signed in."),
            Self::NotAdmitted(r) => format!("You signed in at {provider}, but may not use this service: {r}."),
            Self::Disabled => "Your account here is disabled. Ask an administrator.".into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Fetch(FetchError::Unreachable(_)) => StatusCode::BAD_GATEWAY,
            Self::NotAdmitted(_) | Self::Disabled | Self::Provider(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

fn id_token_reason(e: &IdTokenError) -> &'static str {
    match e {
        IdTokenError::Malformed => "malformed",
        IdTokenError::Algorithm => "algorithm",
        IdTokenError::UnknownKey(_) => "unknown_key",
        IdTokenError::Signature => "signature",
        IdTokenError::Issuer => "issuer",
        IdTokenError::Audience => "audience",
        IdTokenError::AuthorizedParty => "azp",
        IdTokenError::Expired => "expired",
        IdTokenError::IssuedInFuture => "issued_in_future",
        IdTokenError::Nonce => "nonce",
    }
}

fn failure_page(state: &State, provider: &Provider, failure: &Failure, retry: Option<&str>) -> HttpResponse {
    let name = &provider.settings.name;
    let mut message = failure.message(name);
    if retry.is_none() {
        message.push_str(" Go back to the application and start again.");
    }
    state.message_with_retry(failure.status(), &format!("Sign-in with {name} did not work"), &message, retry)
}

/// `GET /oauth2/login/{id}/callback`: the provider's authorization response (RFC 6749 §4.1.2).
pub async fn callback(state: web::Data<State>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let Some(provider) = state.providers.get(&id).cloned() else {
        return state.message(StatusCode::NOT_FOUND, "Unknown sign-in provider", "No such provider is configured.");
    };
    let query = Query::parse(req.query_string());
    let ip = server::http::client_ip(&req, state.config.trust_forwarded_for).to_string();
    let pending = match take_pending(&state, &req, &provider, &query).await {
        Ok(p) => p,
        Err(e) => return state.failure(e),
    };
    let Some(params) = pending else {
        state.ctx.metrics.sign_in_with("openid", "failure");
        audit_failure(&state, &provider, None, &Failure::Expired, &ip).await;
        return failure_page(&state, &provider, &Failure::Expired, None);
    };
    let retry = format!("{}?{}", state.login_url, params.encode());
    match finish(&state, &req, &provider, &query, &params).await {
        Ok(Ok(res)) => res,
        Ok(Err((failure, user))) => {
            tracing::info!(provider = provider.id(), reason = %failure.reason(), "federated sign-in refused");
            state.ctx.metrics.sign_in_with("openid", "failure");
            audit_failure(&state, &provider, user, &failure, &ip).await;
            failure_page(&state, &provider, &failure, Some(&retry))
        }
        Err(e) => state.failure(e),
    }
}

/// The callback's query parameters (each at most once; a repeated one counts as absent).
#[derive(Default)]
struct Query {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

impl Query {
    fn parse(raw: &str) -> Self {
        let mut seen: Vec<(String, Option<String>)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            match seen.iter_mut().find(|(name, _)| *name == k) {
                Some((_, value)) => *value = None,
                None => seen.push((k.into_owned(), Some(v.into_owned()))),
            }
        }
        let get = |name: &str| {
            seen.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
                .filter(|v| !v.is_empty() && protocol::ident::vschar(v, 8192).is_ok())
        };
        Self { code: get("code"), state: get("state"), error: get("error"), iss: get("iss") }
    }
}

/// Takes the pending sign-in of `state` (once), if it is this provider's, unexpired, and this
/// browser's: the authorization request it was started for.
async fn take_pending(
    state: &State,
    req: &HttpRequest,
    provider: &Provider,
    query: &Query,
) -> Result<Option<AuthzParams>, OAuthError> {
    let (Some(state_value), Some(cookie)) = (query.state.as_deref(), super::login::login_cookie(state, req)) else {
        return Ok(None);
    };
    let mut conn = state.ctx.pool.get().await?;
    let Some(row) = federated_logins::take(&mut conn, SecretHash::of(state_value).as_bytes()).await? else {
        return Ok(None);
    };
    let now = state.ctx.clock.now();
    let ours = row.provider == provider.id()
        && row.expires_at > now
        && constant_time_eq(&row.browser_hash, &flow::browser_hash(&cookie));
    Ok(ours.then(|| AuthzParams::parse(row.request.as_bytes())))
}

type Outcome = Result<HttpResponse, (Failure, Option<uuid::Uuid>)>;

async fn finish(
    state: &State,
    req: &HttpRequest,
    provider: &Provider,
    query: &Query,
    params: &AuthzParams,
) -> Result<Outcome, OAuthError> {
    if let Some(error) = &query.error {
        let code = if error.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') { error.as_str() } else { "error" };
        return Ok(Err((Failure::Provider(code.chars().take(64).collect()), None)));
    }
    let meta = match provider.metadata().await {
        Ok(m) => m,
        Err(e) => return Ok(Err((Failure::Fetch(e), None))),
    };
    // RFC 9207: a provider that names itself must name itself rightly; one that says it always
    // does must have done so
    match query.iss.as_deref() {
        Some(iss) if iss != meta.issuer => return Ok(Err((Failure::BadResponse("it names another issuer"), None))),
        None if meta.authorization_response_iss_parameter_supported => {
            return Ok(Err((Failure::BadResponse("it does not name its issuer"), None)));
        }
        _ => {}
    }
    let (Some(code), Some(state_value)) = (query.code.as_deref(), query.state.as_deref()) else {
        return Ok(Err((Failure::BadResponse("it carries no code"), None)));
    };
    let cookie = super::login::login_cookie(state, req).unwrap_or_default();
    let claims = match verified_claims(state, provider, &meta, code, &cookie, state_value).await {
        Ok(c) => c,
        Err(f) => return Ok(Err((f, None))),
    };
    if let Err(r) = admission::admit(&provider.settings, &claims.1) {
        return Ok(Err((Failure::NotAdmitted(r), None)));
    }
    let username = match admission::username(&provider.settings, &claims.1) {
        Ok(u) => u,
        Err(r) => return Ok(Err((Failure::NotAdmitted(r), None))),
    };
    let (subject, claims) = claims;
    let email = protocol::oidc::claim_text(&claims, "email");
    let display = protocol::oidc::claim_text(&claims, "name");
    let now = state.ctx.clock.now();
    let mut conn = state.ctx.pool.get().await?;
    let user = store::federation::sign_in(
        &mut conn,
        &meta.issuer,
        &subject,
        &store::federation::Claims {
            provider: provider.id(),
            username: &username,
            email: email.as_deref(),
            email_verified: protocol::oidc::email_verified(&claims),
            display_name: display.as_deref(),
        },
        now,
    )
    .await?;
    if user.disabled {
        return Ok(Err((Failure::Disabled, Some(user.id))));
    }
    let authenticated = AuthenticatedUser { id: user.id, username: user.username.clone() };
    let (_, session_cookie) = session::start(&mut conn, req, &state.config, &authenticated, now).await?;
    let ip = server::http::client_ip(req, state.config.trust_forwarded_for).to_string();
    let event = NewAuditEvent {
        occurred_at: now,
        kind: kind::USER_FEDERATED_SIGN_IN,
        client_id: params.client_id.as_deref(),
        user_id: Some(user.id),
        ip: Some(&ip),
        detail: serde_json::json!({
            "provider": provider.id(),
            "issuer": meta.issuer,
            "subject": subject,
            "created": user.created_at == now,
        }),
    };
    audit::record(&mut conn, &event).await?;
    drop(conn);
    state.ctx.metrics.sign_in_with("openid", "success");
    tracing::info!(user_id = %user.id, provider = provider.id(), "signed in through an OpenID provider");
    let back = format!("{}?{}", state.authorize_url, params.after_login().encode());
    let mut res = redirect::to(&back, StatusCode::SEE_OTHER);
    res.add_cookie(&session_cookie).map_err(OAuthError::internal)?;
    let login_cookie = state.config.cookies().login().to_owned();
    res.add_cookie(&session::removal(&state.config, &login_cookie)).map_err(OAuthError::internal)?;
    Ok(Ok(res))
}

/// The code exchanged, the ID token validated (keys fetched again once for an unknown `kid`),
/// and the claims completed from userinfo when the ID token lacks ones we need: `sub` and the
/// claims.
async fn verified_claims(
    state: &State,
    provider: &Provider,
    meta: &ProviderMetadata,
    code: &str,
    cookie: &str,
    state_value: &str,
) -> Result<(String, Map<String, Value>), Failure> {
    let tokens = provider.exchange(meta, code, &flow::verifier(cookie, state_value)).await.map_err(Failure::Fetch)?;
    let kid = peek_kid(&tokens.id_token).map_err(Failure::IdToken)?;
    let keys = provider.keys(meta, kid.as_deref()).await.map_err(Failure::Fetch)?;
    let nonce = flow::nonce(cookie, state_value);
    let algorithms = meta.algorithms();
    let expect = IdTokenExpectations {
        issuer: &meta.issuer,
        client_id: &provider.settings.client_id,
        nonce: &nonce,
        algorithms: &algorithms,
        now: state.ctx.clock.unix(),
        leeway: LEEWAY_SECS,
    };
    let id = verify_id_token(&tokens.id_token, &keys, &expect).map_err(Failure::IdToken)?;
    let mut claims = id.other;
    let missing = admission::needed_claims(&provider.settings).into_iter().any(|c| !claims.contains_key(c))
        || (provider.settings.username_claim.is_none()
            && !claims.contains_key("preferred_username")
            && !claims.contains_key("email"));
    if missing && let (Some(url), Some(token)) = (meta.userinfo_endpoint.as_deref(), tokens.access_token.as_deref()) {
        let info = provider.userinfo(url, token).await.map_err(Failure::Fetch)?;
        if info.get("sub").and_then(Value::as_str) != Some(id.sub.as_str()) {
            return Err(Failure::UserinfoSubject);
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
    }
    Ok((id.sub, claims))
}

async fn audit_failure(state: &State, provider: &Provider, user: Option<uuid::Uuid>, failure: &Failure, ip: &str) {
    let event = NewAuditEvent {
        occurred_at: state.ctx.clock.now(),
        kind: kind::USER_FEDERATED_SIGN_IN_FAILED,
        client_id: None,
        user_id: user,
        ip: Some(ip),
        detail: serde_json::json!({ "provider": provider.id(), "reason": failure.reason() }),
    };
    let recorded = match state.ctx.pool.get().await {
        Ok(mut conn) => audit::record(&mut conn, &event).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "a failed federated sign-in could not be audited");
    }
}
