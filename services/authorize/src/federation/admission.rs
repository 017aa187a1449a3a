//! Who may come in through a provider, judged on every sign-in (so a user taken out of a group, or
//! whose domain is no longer allowed, cannot sign in again), and the name a new user gets.

use protocol::oidc::{claim_has, claim_text, email_domain, email_verified};
use serde_json::{Map, Value};
use server::config::ProviderSettings;

/// Why the provider's user was not let in: shown to the user and written in the audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("your email address at the provider is not verified")]
    EmailUnverified,
    #[error("your email address is not in a domain allowed here")]
    DomainNotAllowed,
    #[error("your account lacks the required {0} claim value")]
    MissingClaim(String),
    #[error("the provider did not say which name to give you ({0})")]
    NoUsername(String),
}

impl Refusal {
    /// A fixed word for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EmailUnverified => "email_unverified",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::MissingClaim(_) => "missing_claim",
            Self::NoUsername(_) => "no_username",
        }
    }
}

/// `allowed_email_domains` (only a verified email counts) and `required_claims`.
pub fn admit(settings: &ProviderSettings, claims: &Map<String, Value>) -> Result<(), Refusal> {
    if !settings.allowed_email_domains.is_empty() {
        let domain = claim_text(claims, "email").and_then(|e| email_domain(&e));
        let allowed =
            domain.as_deref().is_some_and(|d| settings.allowed_email_domains.iter().any(|a| a.eq_ignore_ascii_case(d)));
        if !allowed {
            return Err(Refusal::DomainNotAllowed);
        }
        if !email_verified(claims) {
            return Err(Refusal::EmailUnverified);
        }
    }
    for (claim, value) in &settings.required_claims {
        if !claim_has(claims, claim, value) {
            return Err(Refusal::MissingClaim(claim.clone()));
        }
    }
    Ok(())
}

/// The claims a sign-in needs from this provider: the username claim(s), `email` (and its
/// verification) for a domain rule, and the required claims. Missing ones are asked of userinfo.
pub fn needed_claims(settings: &ProviderSettings) -> Vec<&str> {
    let mut needed: Vec<&str> = match settings.username_claim.as_deref() {
        Some(c) => vec![c],
        None => vec!["preferred_username"],
    };
    if !settings.allowed_email_domains.is_empty() {
        needed.extend(["email", "email_verified"]);
    }
    needed.extend(settings.required_claims.keys().map(String::as_str));
    needed
}

/// The name a first sign-in creates the user under: `username_claim`, or by default
/// `preferred_username`, then `email`.
pub fn username(settings: &ProviderSettings, claims: &Map<String, Value>) -> Result<String, Refusal> {
    let found = match settings.username_claim.as_deref() {
        Some(c) => claim_text(claims, c),
        None => claim_text(claims, "preferred_username").or_else(|| claim_text(claims, "email")),
    };
    let name = settings.username_claim.clone().unwrap_or_else(|| "preferred_username or email".into());
    let found = found.ok_or_else(|| Refusal::NoUsername(name.clone()))?;
    // the same rules as a local username: printable, bounded
    protocol::ident::Username::parse(&found).map(|u| u.as_str().to_owned()).map_err(|_| Refusal::NoUsername(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(domains: &[&str], required: &[(&str, &str)]) -> ProviderSettings {
        ProviderSettings {
            id: "corp".into(),
            name: "Corp".into(),
            issuer: "https://op.example".into(),
            client_id: "c".into(),
            client_secret: Some("s".into()),
            client_secret_env: None,
            scopes: vec!["openid".into()],
            username_claim: None,
            allowed_email_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            required_claims: required.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            allow_private_hosts: false,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn domains_count_only_when_verified_and_claims_must_match() {
        let p = provider(&["example.com"], &[("groups", "mcp-users")]);
        let ok = claims(json!({"email": "a@Example.com", "email_verified": true, "groups": ["x", "mcp-users"]}));
        assert_eq!(admit(&p, &ok), Ok(()));
        let unverified = claims(json!({"email": "a@example.com", "email_verified": false, "groups": ["mcp-users"]}));
        assert_eq!(admit(&p, &unverified), Err(Refusal::EmailUnverified));
        let other = claims(json!({"email": "a@evil.example", "email_verified": true, "groups": ["mcp-users"]}));
        assert_eq!(admit(&p, &other), Err(Refusal::DomainNotAllowed));
        let sub_domain = claims(json!({"email": "a@x.example.com", "email_verified": true, "groups": ["mcp-users"]}));
        assert_eq!(admit(&p, &sub_domain), Err(Refusal::DomainNotAllowed));
        let no_group = claims(json!({"email": "a@example.com", "email_verified": true, "groups": ["staff"]}));
        assert_eq!(admit(&p, &no_group), Err(Refusal::MissingClaim("groups".into())));
        let single = claims(json!({"email": "a@example.com", "email_verified": "true", "groups": "mcp-users"}));
        assert_eq!(admit(&p, &single), Ok(()));
        assert_eq!(admit(&provider(&[], &[]), &claims(json!({}))), Ok(()));
    }

    #[test]
    fn the_username_comes_from_the_configured_claim() {
        let mut p = provider(&[], &[]);
        assert_eq!(username(&p, &claims(json!({"preferred_username": "al", "email": "a@x"}))), Ok("al".into()));
        assert_eq!(username(&p, &claims(json!({"email": "a@x"}))), Ok("a@x".into()));
        assert!(username(&p, &claims(json!({"sub": "1"}))).is_err());
        p.username_claim = Some("upn".into());
        assert_eq!(username(&p, &claims(json!({"upn": "u@corp", "preferred_username": "al"}))), Ok("u@corp".into()));
        assert!(username(&p, &claims(json!({"preferred_username": "al"}))).is_err());
        assert!(username(&p, &claims(json!({"upn": "a\u{0}b"}))).is_err());
    }
}
