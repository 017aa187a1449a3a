//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1) with an Identity
//! Assertion JWT Authorization Grant as `assertion`: the MCP enterprise-managed authorization
//! extension (SEP-990) and draft-ietf-oauth-identity-assertion-authz-grant-03 §4.4.
//!
//! The assertion is verified without the database (the issuer's keys are cached); then its `jti`
//! is recorded (single use across replicas) together with the sign-in of its subject: one
//! statement for a known subject, one transaction that creates the user just in time for a new
//! one (`store::used_assertions::exchange`), and the access token is signed after it. No
//! refresh token: the draft says the server SHOULD NOT issue one (§4.4.3); the client presents a
//! new ID-JAG instead.

use chrono::{DateTime, TimeDelta, Utc};
use protocol::client::{Client, GrantType};
use protocol::error::ErrorCode;
use protocol::idjag::{self, Expect, IdJag, IdJagError};
use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use server::OAuthError;
use server::issuer_keys::{KeyError, TrustedIssuer};
use server::registry::Resource;
use store::federation::Claims;
use store::used_assertions::{self, Exchange, UsedAssertionRow};

use super::require_grant;
use crate::State;
use crate::form::Form;
use crate::issue::{AccessGrant, TokenResponse, access_token};
use crate::rules;

pub async fn exchange(state: &State, client: &Client, form: &Form) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        // draft §7.1: only for confidential clients; public ones use the authorization code grant
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the JWT bearer grant is only for confidential clients",
        ));
    }
    require_grant(client, GrantType::JwtBearer)?;
    let assertion = form.require("assertion")?;
    let now = state.clock.now();
    let (jag, issuer) = verify(state, assertion, &client.client_id, now).await.map_err(|e| match e {
        Refusal::Assertion(e) => OAuthError::invalid_grant(e.to_string()),
        Refusal::Other(e) => e,
    })?;

    // RFC 8707 §2 as the other grants apply it: every resource the IdP named must be protected
    // here; `resource` parameters may narrow the audience to some of them, never widen it
    let all = state.registry.all(&state.pool).await?;
    let mut granted: Vec<&Resource> = Vec::new();
    for raw in &jag.resources {
        let uri = ResourceUri::parse(raw)
            .map_err(|_| OAuthError::invalid_target("the assertion's resource is not a valid resource identifier"))?;
        let resource = all.iter().find(|r| r.id == uri).ok_or_else(|| {
            OAuthError::invalid_target(format!("the assertion's resource {} is not protected here", uri.as_str()))
        })?;
        if !granted.iter().any(|g| g.id == resource.id) {
            granted.push(resource);
        }
    }
    let requested = rules::requested_resources(form.all("resource"))?;
    let ids: Vec<ResourceUri> = granted.iter().map(|r| r.id.clone()).collect();
    let audience = rules::narrow_audience(&requested, &ids)?;
    let offered = granted
        .iter()
        .filter(|r| audience.iter().any(|a| a == r.id.as_str()))
        .fold(Scopes::default(), |acc, r| acc.union(&r.scopes));
    let scope = rules::assertion_scope(
        rules::requested_scope(form.get("scope"))?,
        jag.scope.as_ref(),
        &client.metadata.scope,
        !client.source.is_self_registered(),
        &offered,
    )?;

    let skew = TimeDelta::seconds(secs(state.config.identity.clock_skew_secs));
    let used = UsedAssertionRow {
        issuer: jag.iss.clone(),
        jti: jag.jti.clone(),
        client_id: client.client_id.clone(),
        used_at: now,
        // remembered for as long as the assertion could verify
        expires_at: DateTime::from_timestamp(jag.exp, 0).unwrap_or(now).checked_add_signed(skew).unwrap_or(now),
    };
    let username = jag.preferred_username.as_deref().or(jag.email.as_deref()).unwrap_or(&jag.sub);
    let claims = Claims {
        provider: issuer.name(),
        username,
        email: jag.email.as_deref(),
        email_verified: jag.email_verified,
        display_name: jag.name.as_deref(),
    };
    let mut conn = state.pool.get().await?;
    let user = match used_assertions::exchange(&mut conn, &used, &jag.sub, &claims, now).await? {
        Exchange::SignedIn(user) => user,
        Exchange::Replayed => return Err(OAuthError::invalid_grant(IdJagError::Replayed.to_string())),
    };
    drop(conn);
    if user.disabled {
        // the jti stays spent: the same assertion would be refused again anyway
        return Err(OAuthError::invalid_grant("the assertion's user is disabled here"));
    }
    let grant = AccessGrant {
        sub: user.id.to_string(),
        client_id: client.client_id.clone(),
        audience,
        scope: scope.to_string(),
        auth_time: jag.auth_time.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
        grant_id: None,
    };
    access_token(state, grant, now)
}

/// Why verification stopped: the assertion (`invalid_grant`), or something that is not the
/// client's fault (the issuer's keys could not be fetched: 503).
enum Refusal {
    Assertion(IdJagError),
    Other(OAuthError),
}

impl From<IdJagError> for Refusal {
    fn from(e: IdJagError) -> Self {
        Self::Assertion(e)
    }
}

/// The header, the issuer (trusted, or nothing is fetched), the signature with its key, the claims.
async fn verify(
    state: &State,
    assertion: &str,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(IdJag, std::sync::Arc<TrustedIssuer>), Refusal> {
    let header = idjag::header(assertion)?;
    let iss = idjag::unverified_issuer(assertion)?;
    let issuer = state.issuers.get(&iss).ok_or(IdJagError::UntrustedIssuer)?;
    if !issuer.algorithms().iter().any(|a| a.jwt() == header.alg) {
        return Err(IdJagError::Algorithm.into());
    }
    let key = state.issuers.key(&issuer, header.kid.as_deref(), header.alg).await.map_err(|e| match e {
        KeyError::Unknown => Refusal::Assertion(IdJagError::UnknownKey),
        KeyError::Unavailable(cause) => {
            Refusal::Other(OAuthError::unavailable(format!("the keys of {} cannot be fetched: {cause}", issuer.name())))
        }
    })?;
    let claims = idjag::verify(assertion, &header, &key, issuer.algorithms())?;
    let identity = &state.config.identity;
    let expect = Expect {
        audience: state.config.issuer.as_str(),
        client_id,
        now: now.timestamp(),
        skew: secs(identity.clock_skew_secs),
        max_lifetime: secs(identity.max_assertion_lifetime_secs),
    };
    let jag = idjag::check(claims, &expect)?;
    if jag.iss != issuer.settings.issuer {
        // the signed `iss` must be the one whose key verified it
        return Err(IdJagError::UntrustedIssuer.into());
    }
    Ok((jag, issuer))
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
