//! The token endpoint's protocol rules as plain functions: scope and audience narrowing, the
//! redirect-URI check, client-credentials scope. Tested without a server.

use protocol::scope::Scopes;
use protocol::uri::ResourceUri;
use server::OAuthError;

/// Never stored in a grant's scope, always accepted in a request (CONTRACTS.md).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The `scope` parameter, without `offline_access`; `None` when absent or nothing else is left.
pub fn requested_scope(raw: Option<&str>) -> Result<Option<Scopes>, OAuthError> {
    let Some(raw) = raw else { return Ok(None) };
    let scopes = Scopes::parse(raw).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let scopes: Scopes = scopes.iter().filter(|s| *s != OFFLINE_ACCESS).map(str::to_owned).collect();
    Ok(Some(scopes).filter(|s| !s.is_empty()))
}

/// The `resource` parameters (RFC 8707 §2), normalised and without duplicates.
pub fn requested_resources<'a>(raw: impl Iterator<Item = &'a str>) -> Result<Vec<ResourceUri>, OAuthError> {
    let mut out: Vec<ResourceUri> = Vec::new();
    for r in raw {
        let uri = ResourceUri::parse(r).map_err(|e| OAuthError::invalid_target(format!("resource {r}: {e}")))?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// RFC 8707 §2.2: the audience is the requested resources, each of which the grant must hold,
/// or every resource of the grant when none is requested.
pub fn narrow_audience(requested: &[ResourceUri], granted: &[ResourceUri]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.iter().map(|g| g.as_str().to_owned()).collect());
    }
    match requested.iter().find(|r| !granted.contains(r)) {
        Some(r) => Err(OAuthError::invalid_target(format!("the grant does not include the resource {}", r.as_str()))),
        None => Ok(requested.iter().map(|r| r.as_str().to_owned()).collect()),
    }
}

/// RFC 6749 §6: a refresh request may narrow the scope, never widen it.
pub fn narrow_scope(requested: Option<Scopes>, granted: &Scopes) -> Result<Scopes, OAuthError> {
    match requested {
        None => Ok(granted.clone()),
        Some(r) if r.is_subset(granted) => Ok(r),
        Some(r) => {
            Err(OAuthError::invalid_scope(format!("the scope exceeds what was granted: {}", r.difference(granted))))
        }
    }
}

/// The scope of a token whose audience a request narrowed (RFC 8707 §2.2): only what the audience
/// offers, so a token for one resource never carries another's scopes (RFC 9700 §2.3, least
/// privilege). `offered` is `None` when the request named no resource: the audience is then the
/// whole grant, whose scope the authorization already checked against it. A requested scope the
/// audience does not offer is `invalid_scope`; checked before a refresh token rotates, so a refusal
/// leaves the client its token.
pub fn audience_scope(requested: Option<&Scopes>, offered: Option<&Scopes>) -> Result<(), OAuthError> {
    match (requested, offered) {
        (Some(r), Some(o)) if !r.is_subset(o) => Err(OAuthError::invalid_scope(format!(
            "the requested resources do not offer the scope {}",
            r.difference(o)
        ))),
        _ => Ok(()),
    }
}

/// The granted scope cut down to what the (narrowed) audience offers; see [`audience_scope`].
pub fn limit_scope(granted: &Scopes, offered: Option<&Scopes>) -> Scopes {
    offered.map_or_else(|| granted.clone(), |o| granted.intersection(o))
}

/// A scope as the database stores it (written by `Scopes::to_string`); unparseable is a bug.
pub fn stored_scope(raw: &str) -> Result<Scopes, OAuthError> {
    Scopes::parse(raw).map_err(|_| OAuthError::internal("a stored scope is invalid"))
}

/// The `scope` of a token issued from a grant's stored scope: as stored when the request named no
/// resource (no parsing on that path), else [`limit_scope`]d to what the named resources offer.
pub fn token_scope(stored: String, offered: Option<&Scopes>) -> Result<String, OAuthError> {
    match offered {
        None => Ok(stored),
        Some(o) => Ok(limit_scope(&stored_scope(&stored)?, Some(o)).to_string()),
    }
}

/// RFC 6749 §4.1.3: when the authorization request carried `redirect_uri`, the token request must
/// repeat it identically; when it did not, a `redirect_uri` sent now must still be the one used.
pub fn check_redirect_uri(stored: &str, was_sent: bool, presented: Option<&str>) -> Result<(), OAuthError> {
    match (was_sent, presented) {
        (true, None) => Err(OAuthError::invalid_grant("redirect_uri is required: the authorization request had it")),
        (_, Some(p)) if p != stored => {
            Err(OAuthError::invalid_grant("redirect_uri differs from the one of the authorization request"))
        }
        _ => Ok(()),
    }
}

/// The scope of a client_credentials token: what the client registered and the resources offer;
/// a request may ask for less (RFC 6749 §4.4.2), never more (`invalid_scope`).
pub fn client_credentials_scope(
    requested: Option<Scopes>,
    registered: &Scopes,
    offered: &Scopes,
) -> Result<Scopes, OAuthError> {
    let allowed = registered.intersection(offered);
    match requested {
        None => Ok(allowed),
        Some(r) if r.is_subset(&allowed) => Ok(r),
        Some(r) => {
            Err(OAuthError::invalid_scope(format!("scope not allowed for this client: {}", r.difference(&allowed))))
        }
    }
}

/// The scope of a token issued for an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant
/// §4.4.1: the server grants what its policy allows of what the IdP granted). Allowed: what the
/// audience offers, within the assertion's `scope` when it has one, and within the client's
/// registered scope when an operator made it (CONTRACTS.md: a self-registered client's scope is
/// its default, not a cap). A request may ask for less, never more (`invalid_scope`); without one
/// the token gets the assertion's scope, or else the client's registered one, cut to what is allowed.
pub fn assertion_scope(
    requested: Option<Scopes>,
    asserted: Option<&Scopes>,
    registered: &Scopes,
    registered_is_cap: bool,
    offered: &Scopes,
) -> Result<Scopes, OAuthError> {
    let mut allowed = offered.clone();
    if let Some(a) = asserted {
        allowed = allowed.intersection(a);
    }
    if registered_is_cap {
        allowed = allowed.intersection(registered);
    }
    match requested {
        Some(r) if r.is_subset(&allowed) => Ok(r),
        Some(r) => Err(OAuthError::invalid_scope(format!(
            "scope not allowed by the assertion, the client or the resource: {}",
            r.difference(&allowed)
        ))),
        None if asserted.is_some() => Ok(allowed),
        None => Ok(allowed.intersection(registered)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ErrorCode;

    fn s(raw: &str) -> Scopes {
        Scopes::parse(raw).expect("scope")
    }

    fn r(raw: &str) -> ResourceUri {
        ResourceUri::parse(raw).expect("resource")
    }

    #[test]
    fn scope_parameter() {
        assert_eq!(requested_scope(None).expect("none"), None);
        assert_eq!(requested_scope(Some("offline_access")).expect("only offline"), None);
        assert_eq!(requested_scope(Some("mcp  offline_access read")).expect("ok"), Some(s("mcp read")));
        assert_eq!(requested_scope(Some("bad\"scope")).expect_err("invalid").code, ErrorCode::InvalidScope);
    }

    #[test]
    fn resources_are_normalised_and_deduplicated() {
        let got = requested_resources(["https://MCP.example/mcp/", "https://mcp.example/mcp"].into_iter()).expect("ok");
        assert_eq!(got, vec![r("https://mcp.example/mcp")]);
        for bad in ["not a uri", "https://a.example/x#frag", "ftp://a.example/"] {
            assert_eq!(requested_resources([bad].into_iter()).expect_err(bad).code, ErrorCode::InvalidTarget);
        }
    }

    #[test]
    fn audience_narrows_never_widens() {
        let granted = vec![r("https://a.example/mcp"), r("https://b.example/mcp")];
        assert_eq!(narrow_audience(&[], &granted).expect("all"), ["https://a.example/mcp", "https://b.example/mcp"]);
        assert_eq!(narrow_audience(&[r("https://b.example/mcp")], &granted).expect("one"), ["https://b.example/mcp"]);
        let err = narrow_audience(&[r("https://c.example/mcp")], &granted).expect_err("other");
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn scope_narrows_never_widens() {
        assert_eq!(narrow_scope(None, &s("a b")).expect("same"), s("a b"));
        assert_eq!(narrow_scope(Some(s("a")), &s("a b")).expect("narrower"), s("a"));
        assert_eq!(narrow_scope(Some(s("a c")), &s("a b")).expect_err("wider").code, ErrorCode::InvalidScope);
    }

    #[test]
    fn narrowed_audience_narrows_scope() {
        let granted = s("mcp read write");
        let api = s("read write");
        assert_eq!(limit_scope(&granted, None), granted, "no resource named: the whole grant");
        assert_eq!(limit_scope(&granted, Some(&api)), api);
        assert!(limit_scope(&granted, Some(&Scopes::default())).is_empty());
        assert_eq!(token_scope("mcp read write".into(), None).expect("as stored"), "mcp read write");
        assert_eq!(token_scope("mcp read write".into(), Some(&api)).expect("cut"), "read write");
        assert!(token_scope("bad\"scope".into(), Some(&api)).is_err());
        assert!(audience_scope(None, Some(&api)).is_ok());
        assert!(audience_scope(Some(&s("read")), Some(&api)).is_ok());
        assert!(audience_scope(Some(&s("mcp")), None).is_ok(), "checked against the grant instead");
        let err = audience_scope(Some(&s("mcp read")), Some(&api)).expect_err("mcp is not the api's");
        assert_eq!(err.code, ErrorCode::InvalidScope);
    }

    #[test]
    fn redirect_uri_rule() {
        let cb = "http://127.0.0.1:4000/cb";
        assert!(check_redirect_uri(cb, true, Some(cb)).is_ok());
        assert!(check_redirect_uri(cb, false, None).is_ok());
        assert!(check_redirect_uri(cb, false, Some(cb)).is_ok());
        for (sent, presented) in [(true, None), (true, Some("http://127.0.0.1:4001/cb")), (false, Some("https://x/cb"))]
        {
            assert_eq!(check_redirect_uri(cb, sent, presented).expect_err("mismatch").code, ErrorCode::InvalidGrant);
        }
    }

    #[test]
    fn assertion_scope_rule() {
        let offered = s("mcp mcp:admin");
        let registered = s("mcp");
        // the assertion's scope, cut to what the resource offers; a self-registered client is not capped
        assert_eq!(
            assertion_scope(None, Some(&s("mcp mcp:admin other")), &registered, false, &offered).expect("ok"),
            offered
        );
        assert_eq!(assertion_scope(None, Some(&s("mcp:admin")), &registered, true, &offered).expect("capped"), s(""));
        // no scope in the assertion: the client's registered scope
        assert_eq!(assertion_scope(None, None, &registered, false, &offered).expect("default"), s("mcp"));
        assert_eq!(
            assertion_scope(Some(s("mcp")), Some(&s("mcp mcp:admin")), &registered, true, &offered).expect("narrower"),
            s("mcp")
        );
        for (requested, asserted, cap) in
            [("mcp:admin", Some("mcp"), false), ("other", None, false), ("mcp:admin", None, true)]
        {
            let asserted = asserted.map(s);
            let err = assertion_scope(Some(s(requested)), asserted.as_ref(), &registered, cap, &offered)
                .expect_err(requested);
            assert_eq!(err.code, ErrorCode::InvalidScope);
        }
    }

    #[test]
    fn client_credentials_scope_rule() {
        let registered = s("mcp admin");
        let offered = s("mcp read");
        assert_eq!(client_credentials_scope(None, &registered, &offered).expect("default"), s("mcp"));
        assert_eq!(client_credentials_scope(Some(s("mcp")), &registered, &offered).expect("ok"), s("mcp"));
        for wider in ["admin", "read", "mcp other"] {
            let err = client_credentials_scope(Some(s(wider)), &registered, &offered).expect_err(wider);
            assert_eq!(err.code, ErrorCode::InvalidScope);
        }
    }
}
