//! Validation of an authorization request, in two stages that follow RFC 6749 §4.1.2.1: first the
//! client and its redirect URI (a failure there is shown to the user, never redirected), then
//! everything else (a failure there goes back to the redirect URI). Pure functions over the loaded
//! client and the resource registry, so every rule is tested without a server.

use std::borrow::Cow;
use std::sync::Arc;

use protocol::client::{Client, GrantType};
use protocol::error::ErrorCode;
use protocol::pkce;
use protocol::scope::Scopes;
use protocol::uri::{RedirectUri, ResourceUri};
use server::error::OAuthError;
use server::registry::Resource;

use crate::params::AuthzParams;

/// The scope that asks for a refresh token: always accepted, never part of the granted scope.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Where the answer to a request goes, once the client and its redirect URI are trusted.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Arc<Client>,
    /// Where the browser is sent: the presented URI, or the single registered one.
    pub redirect: RedirectUri,
    /// Whether the request carried `redirect_uri` (RFC 6749 §4.1.3: then the token request repeats it).
    pub redirect_sent: bool,
    pub state: Option<String>,
}

/// `prompt` values we honour (OpenID Connect Core §3.1.2.1, as MCP clients send them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Validated {
    pub target: Target,
    pub challenge: String,
    /// The requested resources, at least one, without duplicates.
    pub resources: Vec<Resource>,
    /// The scope to grant (without `offline_access`).
    pub scope: Scopes,
    pub prompt: Prompt,
    pub params: AuthzParams,
}

impl Validated {
    pub fn resource_ids(&self) -> Vec<ResourceUri> {
        self.resources.iter().map(|r| r.id.clone()).collect()
    }
}

/// Why a request is refused.
#[derive(Debug)]
pub enum Rejection {
    /// No trustworthy redirect URI: a page for the user, never a redirect.
    Page(Cow<'static, str>),
    /// An error for the client, delivered at its redirect URI.
    Redirect(Box<Target>, OAuthError),
}

fn page(message: impl Into<Cow<'static, str>>) -> Rejection {
    Rejection::Page(message.into())
}

/// Stage one: the client and the redirect URI.
pub fn target(params: &AuthzParams, client: Option<Arc<Client>>) -> Result<Target, Rejection> {
    if params.repeated.contains(&"client_id") {
        return Err(page("The request names more than one client_id."));
    }
    if params.malformed.contains(&"client_id") {
        return Err(page("The request's client_id is malformed."));
    }
    if params.client_id.is_none() {
        return Err(page("The request names no application (client_id is missing)."));
    }
    let client = client.ok_or_else(|| page("The application is not registered here (unknown client_id)."))?;
    if params.repeated.contains(&"redirect_uri") {
        return Err(page("The request carries more than one redirect_uri."));
    }
    if params.malformed.contains(&"redirect_uri") {
        return Err(page("The request's redirect_uri is malformed."));
    }
    let presented = params.redirect_uri.as_deref();
    let redirect = client.resolve_redirect(presented).ok_or_else(|| match presented {
        Some(_) => page("The redirect_uri is not one this application registered."),
        None => page("The application registered several redirect URIs, so the request must name one (redirect_uri)."),
    })?;
    Ok(Target { client, redirect, redirect_sent: presented.is_some(), state: params.state.clone() })
}

/// The identifiers the request asks for, normalised, or the single registered resource when it
/// names none; used to fetch remembered consents before the full validation.
pub fn requested_resource_ids(params: &AuthzParams, all: &[Resource]) -> Vec<ResourceUri> {
    if params.resources.is_empty() {
        return match all {
            [only] => vec![only.id.clone()],
            _ => Vec::new(),
        };
    }
    params.resources.iter().filter_map(|r| ResourceUri::parse(r).ok()).collect()
}

/// Stage two: every other rule. `all` is the resource registry's content.
pub fn validate(params: &AuthzParams, target: Target, all: &[Resource]) -> Result<Validated, Rejection> {
    let fail = |t: &Target, e: OAuthError| Err(Rejection::Redirect(Box::new(t.clone()), e));
    if let Some(name) = params.repeated.first() {
        // RFC 6749 §3.1: request parameters must not be included more than once
        return fail(&target, OAuthError::invalid_request(format!("{name} was sent more than once")));
    }
    if let Some(name) = params.malformed.first() {
        // RFC 6749 §4.1.2.1: a malformed parameter is invalid_request; a malformed state is not echoed
        return fail(&target, OAuthError::invalid_request(format!("{name} is malformed")));
    }
    if params.request_object {
        return fail(&target, OAuthError::invalid_request("request objects (request, request_uri) are not supported"));
    }
    match params.response_type.as_deref() {
        None => return fail(&target, OAuthError::invalid_request("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return fail(
                &target,
                OAuthError::new(ErrorCode::UnsupportedResponseType, "only response_type=code is supported"),
            );
        }
    }
    if !target.client.allows_grant(GrantType::AuthorizationCode) {
        return fail(
            &target,
            OAuthError::new(ErrorCode::UnauthorizedClient, "the client is not registered for authorization_code"),
        );
    }
    if params.response_mode.as_deref().is_some_and(|m| m != "query") {
        return fail(&target, OAuthError::invalid_request("only response_mode=query is supported"));
    }
    // RFC 7636 §4.4.1 and OAuth 2.1 §4.1.1: PKCE is required, S256 only
    let challenge =
        match pkce::validate_challenge(params.code_challenge.as_deref(), params.code_challenge_method.as_deref()) {
            Ok(c) => c,
            Err(e) => return fail(&target, OAuthError::invalid_request(e.to_string())),
        };
    let resources = match resources(params, all) {
        Ok(r) => r,
        Err(e) => return fail(&target, e),
    };
    let scope = match scope(params, &target.client, &resources) {
        Ok(s) => s,
        Err(e) => return fail(&target, e),
    };
    let prompt = match prompt(params.prompt.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&target, e),
    };
    Ok(Validated { target, challenge, resources, scope, prompt, params: params.clone() })
}

/// RFC 8707 §2: each resource absolute, without a fragment, and one we protect; none given means
/// the only registered resource, when there is exactly one.
fn resources(params: &AuthzParams, all: &[Resource]) -> Result<Vec<Resource>, OAuthError> {
    if params.resources.is_empty() {
        return match all {
            [only] => Ok(vec![only.clone()]),
            [] => Err(OAuthError::invalid_target("no protected resource is registered")),
            _ => Err(OAuthError::invalid_target("resource is required: this server protects several resources")),
        };
    }
    let mut out: Vec<Resource> = Vec::with_capacity(params.resources.len());
    for raw in &params.resources {
        let id = ResourceUri::parse(raw).map_err(|e| OAuthError::invalid_target(format!("resource {raw:?}: {e}")))?;
        let found = all
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| OAuthError::invalid_target(format!("resource {raw:?} is not protected by this server")))?;
        if !out.iter().any(|r| r.id == id) {
            out.push(found.clone());
        }
    }
    Ok(out)
}

/// CONTRACTS: an absent or empty scope means (client's scope) ∩ (union of the resources' scopes);
/// `offline_access` is accepted and not granted as scope. A requested scope must lie within what the
/// resources offer, and, for a client an operator made, within its registered scope too. A client
/// that registered itself declared its own scope (RFC 7591 §2), so that scope is its default, not a
/// cap: MCP clients register with the scope of the first challenge and must be able to ask for more
/// when a tool answers 403 `insufficient_scope` (step-up, MCP authorization 2025-11-25). The user
/// still consents to every scope the client never had.
fn scope(params: &AuthzParams, client: &Client, resources: &[Resource]) -> Result<Scopes, OAuthError> {
    let on_offer = resources.iter().fold(Scopes::default(), |acc, r| acc.union(&r.scopes));
    let registered = on_offer.intersection(&client.metadata.scope);
    let Some(raw) = params.scope.as_deref().filter(|s| !s.trim().is_empty()) else {
        // a grant of nothing where the resources need scopes would only earn a 403 at the
        // resource, whose `insufficient_scope` the client could never obtain: refuse it now
        if registered.is_empty() && resources.iter().any(|r| !r.scopes.is_empty()) {
            return Err(OAuthError::invalid_scope(
                "the client is registered for none of the scopes the resource offers",
            ));
        }
        return Ok(registered);
    };
    let requested = Scopes::parse(raw).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let requested: Scopes = requested.iter().filter(|t| *t != OFFLINE_ACCESS).map(str::to_owned).collect();
    let allowed = if client.source.is_self_registered() { on_offer } else { registered };
    let refused = requested.difference(&allowed);
    if !refused.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "scope not available to this client for the requested resource: {refused}"
        )));
    }
    Ok(requested)
}

fn prompt(raw: Option<&str>) -> Result<Prompt, OAuthError> {
    let mut p = Prompt::default();
    let mut count = 0;
    for value in raw.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
        count += 1;
        match value {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            // other values (select_account, create) are not ours to honour: ignored
            _ => {}
        }
    }
    // OpenID Connect Core §3.1.2.1: none with any other value is an error
    if p.none && count > 1 {
        return Err(OAuthError::invalid_request("prompt=none cannot be combined with other values"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(uris: &[&str], scope: &str) -> Arc<Client> {
        let policy = MetadataPolicy {
            max_redirect_uris: 5,
            default_scopes: Scopes::parse(scope).expect("scope"),
            allowed_scopes: Scopes::parse("mcp files:read files:write").expect("scope"),
        };
        let metadata = ClientMetadataRequest {
            redirect_uris: Some(uris.iter().map(|u| (*u).to_owned()).collect()),
            token_endpoint_auth_method: Some("none".into()),
            scope: Some(scope.into()),
            ..Default::default()
        }
        .validate(&policy)
        .expect("valid metadata");
        Arc::new(Client {
            client_id: "c1".into(),
            source: ClientSource::Dynamic,
            metadata,
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: chrono::Utc::now(),
        })
    }

    fn resource(id: &str, scopes: &str) -> Resource {
        Resource {
            id: ResourceUri::parse(id).expect("uri"),
            name: id.into(),
            scopes: Scopes::parse(scopes).expect("scope"),
            documentation: None,
            accept_machine_tokens: false,
        }
    }

    fn params(extra: &str) -> AuthzParams {
        AuthzParams::parse(
            format!("response_type=code&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}")
                .as_bytes(),
        )
    }

    fn run(extra: &str, all: &[Resource]) -> Result<Validated, Rejection> {
        let p = params(extra);
        let t = target(&p, Some(client(&["http://127.0.0.1:3000/cb"], "mcp files:read"))).expect("target");
        validate(&p, t, all)
    }

    fn error_of(r: Result<Validated, Rejection>) -> (ErrorCode, String) {
        match r {
            Err(Rejection::Redirect(_, e)) => (e.code, e.description.map(|d| d.into_owned()).unwrap_or_default()),
            Err(Rejection::Page(m)) => panic!("expected a redirect, got a page: {m}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn client_and_redirect_failures_are_pages() {
        let one = client(&["https://app.example/cb"], "mcp");
        let two = client(&["https://app.example/cb", "https://app.example/other"], "mcp");
        let page_for = |q: &str, c: Option<Arc<Client>>| matches!(target(&params(q), c), Err(Rejection::Page(_)));
        assert!(page_for("", None), "unknown client");
        assert!(matches!(target(&AuthzParams::default(), Some(one.clone())), Err(Rejection::Page(_))));
        assert!(page_for("&redirect_uri=https%3A%2F%2Fevil.example%2Fcb", Some(one.clone())));
        assert!(page_for("&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%2F", Some(one.clone())));
        assert!(page_for("", Some(two.clone())), "several registered: redirect_uri required");
        assert!(page_for("&client_id=other", Some(one.clone())));
        let ok = target(&params(""), Some(one)).expect("single registered URI");
        assert_eq!(ok.redirect.as_str(), "https://app.example/cb");
        assert!(!ok.redirect_sent);
    }

    #[test]
    fn loopback_redirect_on_another_port() {
        let c = client(&["http://127.0.0.1:3000/cb"], "mcp");
        let t = target(&params("&redirect_uri=http%3A%2F%2F127.0.0.1%3A49152%2Fcb"), Some(c)).expect("any port");
        assert_eq!(t.redirect.as_str(), "http://127.0.0.1:49152/cb");
        assert!(t.redirect_sent);
    }

    #[test]
    fn response_type_pkce_and_duplicates() {
        let all = [resource("https://mcp.example/mcp", "mcp")];
        let p = AuthzParams::parse(b"client_id=c1&code_challenge=x");
        let t = target(&p, Some(client(&["http://127.0.0.1:3000/cb"], "mcp"))).expect("target");
        assert_eq!(error_of(validate(&p, t, &all)).0, ErrorCode::InvalidRequest);
        let p = AuthzParams::parse(b"client_id=c1&response_type=token");
        let t = target(&p, Some(client(&["http://127.0.0.1:3000/cb"], "mcp"))).expect("target");
        assert_eq!(error_of(validate(&p, t, &all)).0, ErrorCode::UnsupportedResponseType);
        let p = AuthzParams::parse(b"client_id=c1&response_type=code");
        let t = target(&p, Some(client(&["http://127.0.0.1:3000/cb"], "mcp"))).expect("target");
        let (code, desc) = error_of(validate(&p, t, &all));
        assert_eq!(code, ErrorCode::InvalidRequest);
        assert!(desc.contains("code_challenge"), "{desc}");
        let (code, desc) = error_of(run("&code_challenge_method=plain", &all));
        assert_eq!(code, ErrorCode::InvalidRequest);
        assert!(desc.contains("more than once"), "{desc}");
        let p = AuthzParams::parse(
            format!("response_type=code&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=plain")
                .as_bytes(),
        );
        let t = target(&p, Some(client(&["http://127.0.0.1:3000/cb"], "mcp"))).expect("target");
        let (code, desc) = error_of(validate(&p, t, &all));
        assert_eq!(code, ErrorCode::InvalidRequest);
        assert!(desc.contains("S256"), "{desc}");
        assert_eq!(error_of(run("&response_mode=fragment", &all)).0, ErrorCode::InvalidRequest);
        assert_eq!(error_of(run("&request_uri=urn%3Ax", &all)).0, ErrorCode::InvalidRequest);
    }

    #[test]
    fn resources() {
        let one = [resource("https://mcp.example/mcp", "mcp files:read")];
        let two = [resource("https://mcp.example/mcp", "mcp"), resource("https://files.example", "files:read")];
        let v = run("", &one).expect("the only resource is the default");
        let uris = |u: &[&str]| u.iter().map(|u| ResourceUri::parse(u).expect("uri")).collect::<Vec<_>>();
        assert_eq!(v.resource_ids(), uris(&["https://mcp.example/mcp"]));
        assert_eq!(error_of(run("", &two)).0, ErrorCode::InvalidTarget);
        assert_eq!(error_of(run("", &[])).0, ErrorCode::InvalidTarget);
        let v = run("&resource=HTTPS%3A%2F%2Fmcp.example%2Fmcp%2F&resource=https%3A%2F%2Fmcp.example%2Fmcp", &one)
            .expect("normalised and deduplicated");
        assert_eq!(v.resources.len(), 1);
        assert_eq!(error_of(run("&resource=https%3A%2F%2Fother.example%2Fmcp", &one)).0, ErrorCode::InvalidTarget);
        assert_eq!(error_of(run("&resource=https%3A%2F%2Fmcp.example%2Fmcp%23x", &one)).0, ErrorCode::InvalidTarget);
        assert_eq!(error_of(run("&resource=mcp", &one)).0, ErrorCode::InvalidTarget);
        let v = run("&resource=https%3A%2F%2Fmcp.example%2Fmcp&resource=https%3A%2F%2Ffiles.example", &two)
            .expect("two resources");
        assert_eq!(v.scope.to_string(), "files:read mcp");
        assert_eq!(
            requested_resource_ids(&params("&resource=https%3A%2F%2FMCP.example%2Fmcp%2F&resource=bad"), &two),
            uris(&["https://mcp.example/mcp"])
        );
        assert_eq!(requested_resource_ids(&params(""), &one), uris(&["https://mcp.example/mcp"]));
        assert!(requested_resource_ids(&params(""), &two).is_empty());
    }

    #[test]
    fn scopes() {
        let all = [resource("https://mcp.example/mcp", "mcp files:read files:write")];
        assert_eq!(run("", &all).expect("defaults").scope.to_string(), "files:read mcp");
        assert_eq!(run("&scope=mcp", &all).expect("subset").scope.to_string(), "mcp");
        assert_eq!(run("&scope=mcp+offline_access", &all).expect("offline_access").scope.to_string(), "mcp");
        assert!(run("&scope=offline_access", &all).expect("only offline_access").scope.is_empty());
        // a self-registered client may step up beyond its registered scope, within the resource's
        let v = run("&scope=mcp+files:write", &all).expect("step-up of a self-registered client");
        assert_eq!(v.scope.to_string(), "files:write mcp");
        // an operator's client may not
        let mut operator = (*client(&["http://127.0.0.1:3000/cb"], "mcp files:read")).clone();
        operator.source = ClientSource::Admin;
        let p = params("&scope=mcp+files:write");
        let t = target(&p, Some(Arc::new(operator))).expect("target");
        let (code, desc) = error_of(validate(&p, t, &all));
        assert_eq!(code, ErrorCode::InvalidScope, "outside the operator client's scope");
        assert!(desc.contains("files:write"), "{desc}");
        assert_eq!(error_of(run("&scope=admin", &all)).0, ErrorCode::InvalidScope);
        assert_eq!(error_of(run("&scope=a%22b", &all)).0, ErrorCode::InvalidScope);
        let other = [resource("https://mcp.example/mcp", "admin")];
        let (code, desc) = error_of(run("", &other));
        assert_eq!(code, ErrorCode::InvalidScope, "the defaults would be nothing: {desc}");
        let open = [resource("https://mcp.example/mcp", "")];
        assert!(run("", &open).expect("a resource without scopes").scope.is_empty());
    }

    #[test]
    fn prompts() {
        let all = [resource("https://mcp.example/mcp", "mcp")];
        assert_eq!(run("&prompt=none", &all).expect("none").prompt, Prompt { none: true, ..Prompt::default() });
        let p = run("&prompt=login+consent+select_account", &all).expect("several").prompt;
        assert!(p.login && p.consent && !p.none);
        assert_eq!(error_of(run("&prompt=none+login", &all)).0, ErrorCode::InvalidRequest);
    }
}
