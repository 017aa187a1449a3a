//! Where each request goes. Everything is addressed as the public stack serves it — the issuer for
//! `/oauth2/*`, its origin for `/.well-known/*` — unless a service has a direct base URL, in which
//! case its paths go straight to it (CONTRACTS.md: every service serves its public paths exactly).
//! URLs the server hands back (redirects, form actions) are mapped the same way, so a flow can run
//! against the services directly while their pages name the gateway.

use anyhow::{Context, bail};
use url::Url;

/// One of the authorization server's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Registration,
    Authorize,
    Token,
    Metadata,
}

impl Service {
    /// The service that serves an authorization-server path (CONTRACTS.md, "Public paths").
    pub fn of_path(path: &str) -> Option<Self> {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        if path.starts_with("/.well-known/") {
            Some(Self::Metadata)
        } else if under("/oauth2/register") {
            Some(Self::Registration)
        } else if ["/oauth2/authorize", "/oauth2/login", "/oauth2/consent", "/oauth2/logout"].iter().any(|p| under(p)) {
            Some(Self::Authorize)
        } else if ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", "/oauth2/jwks"].iter().any(|p| under(p)) {
            Some(Self::Token)
        } else {
            None
        }
    }
}

/// The stack's addresses.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The issuer (the gateway's authorization-server base URL), without a trailing slash.
    pub issuer: Url,
    pub registration: Option<Url>,
    pub authorize: Option<Url>,
    pub token: Option<Url>,
    pub metadata: Option<Url>,
}

fn join(base: &Url, path_and_query: &str) -> anyhow::Result<Url> {
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{path_and_query}")).with_context(|| format!("not a URL: {base}{path_and_query}"))
}

impl Endpoints {
    /// Every path through the issuer (the gateway).
    pub fn through(issuer: Url) -> Self {
        Self { issuer, registration: None, authorize: None, token: None, metadata: None }
    }

    fn direct(&self, service: Service) -> Option<&Url> {
        match service {
            Service::Registration => self.registration.as_ref(),
            Service::Authorize => self.authorize.as_ref(),
            Service::Token => self.token.as_ref(),
            Service::Metadata => self.metadata.as_ref(),
        }
    }

    /// The issuer's path ("" for an origin).
    pub fn issuer_path(&self) -> &str {
        self.issuer.path().trim_end_matches('/')
    }

    /// The issuer exactly as documents and tokens carry it (no trailing slash).
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// The URL of an authorization-server path (`/oauth2/token`, `/.well-known/...`), with an optional query.
    pub fn url(&self, path_and_query: &str) -> anyhow::Result<Url> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if let Some(base) = Service::of_path(path).and_then(|s| self.direct(s)) {
            return join(base, path_and_query);
        }
        if path.starts_with("/.well-known/") {
            join(&origin(&self.issuer)?, path_and_query)
        } else {
            join(&self.issuer, path_and_query)
        }
    }

    /// RFC 8414 §3.1: the metadata document of an issuer with a path has the path after the well-known part.
    pub fn as_metadata_url(&self) -> anyhow::Result<Url> {
        self.url(&format!("/.well-known/oauth-authorization-server{}", self.issuer_path()))
    }

    /// RFC 9728 §3.1: the protected-resource metadata URL of `resource`, on the resource's origin
    /// (or at the metadata service directly).
    pub fn prm_url(&self, resource: &str) -> anyhow::Result<Url> {
        let res = Url::parse(resource).with_context(|| format!("resource {resource} is not a URL"))?;
        let path = format!("/.well-known/oauth-protected-resource{}", res.path().trim_end_matches('/'));
        match &self.metadata {
            Some(base) => join(base, &path),
            None => join(&origin(&res)?, &path),
        }
    }

    /// Where to send a URL the server handed back (a `Location` or a form `action`, possibly
    /// relative to `base`): an authorization-server URL goes to its service's direct address.
    pub fn follow(&self, base: &Url, location: &str) -> anyhow::Result<Url> {
        let abs = base.join(location).with_context(|| format!("cannot resolve {location} against {base}"))?;
        if origin(&abs)? != origin(&self.issuer)? {
            return Ok(abs);
        }
        let issuer_path = self.issuer_path();
        let rest = abs.path().strip_prefix(issuer_path).filter(|r| r.starts_with("/oauth2/")).unwrap_or(abs.path());
        if Service::of_path(rest).is_none() {
            return Ok(abs);
        }
        let query = abs.query().map(|q| format!("?{q}")).unwrap_or_default();
        self.url(&format!("{rest}{query}"))
    }
}

/// The origin of a URL, as a URL with path `/`.
fn origin(url: &Url) -> anyhow::Result<Url> {
    let o = url.origin();
    if !o.is_tuple() {
        bail!("{url} has no origin");
    }
    Url::parse(&o.ascii_serialization()).with_context(|| format!("origin of {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn services_by_path() {
        assert_eq!(Service::of_path("/oauth2/register"), Some(Service::Registration));
        assert_eq!(Service::of_path("/oauth2/register/abc"), Some(Service::Registration));
        assert_eq!(Service::of_path("/oauth2/login"), Some(Service::Authorize));
        assert_eq!(Service::of_path("/oauth2/consent"), Some(Service::Authorize));
        assert_eq!(Service::of_path("/oauth2/token"), Some(Service::Token));
        assert_eq!(Service::of_path("/oauth2/jwks"), Some(Service::Token));
        assert_eq!(Service::of_path("/.well-known/oauth-authorization-server"), Some(Service::Metadata));
        assert_eq!(Service::of_path("/oauth2/tokenx"), None);
        assert_eq!(Service::of_path("/mcp"), None);
    }

    #[test]
    fn through_the_gateway() {
        let ep = Endpoints::through(u("http://127.0.0.1:8080/tenant"));
        assert_eq!(ep.url("/oauth2/token").expect("url").as_str(), "http://127.0.0.1:8080/tenant/oauth2/token");
        assert_eq!(
            ep.as_metadata_url().expect("url").as_str(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server/tenant"
        );
        assert_eq!(
            ep.prm_url("http://127.0.0.1:8080/bench/").expect("url").as_str(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/bench"
        );
        let base = u("http://127.0.0.1:8080/tenant/oauth2/authorize?x=1");
        assert_eq!(
            ep.follow(&base, "/tenant/oauth2/login?a=b").expect("url").as_str(),
            "http://127.0.0.1:8080/tenant/oauth2/login?a=b"
        );
        assert_eq!(
            ep.follow(&base, "http://127.0.0.1:9/cb?code=1").expect("url").as_str(),
            "http://127.0.0.1:9/cb?code=1"
        );
    }

    #[test]
    fn direct_to_the_services() {
        let ep = Endpoints {
            issuer: u("http://127.0.0.1:8080"),
            registration: Some(u("http://127.0.0.1:8081")),
            authorize: Some(u("http://127.0.0.1:8082/")),
            token: Some(u("http://127.0.0.1:8083")),
            metadata: Some(u("http://127.0.0.1:8084")),
        };
        assert_eq!(ep.url("/oauth2/register").expect("url").as_str(), "http://127.0.0.1:8081/oauth2/register");
        assert_eq!(
            ep.url("/oauth2/authorize?a=1").expect("url").as_str(),
            "http://127.0.0.1:8082/oauth2/authorize?a=1"
        );
        assert_eq!(
            ep.as_metadata_url().expect("url").as_str(),
            "http://127.0.0.1:8084/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            ep.prm_url("http://127.0.0.1:8080/bench").expect("url").as_str(),
            "http://127.0.0.1:8084/.well-known/oauth-protected-resource/bench"
        );
        // the login page's form names the issuer; the bench posts to the authorize service
        let page = u("http://127.0.0.1:8082/oauth2/login?x");
        assert_eq!(
            ep.follow(&page, "http://127.0.0.1:8080/oauth2/login").expect("url").as_str(),
            "http://127.0.0.1:8082/oauth2/login"
        );
        assert_eq!(ep.follow(&page, "/oauth2/consent").expect("url").as_str(), "http://127.0.0.1:8082/oauth2/consent");
        assert_eq!(
            ep.follow(&page, "http://127.0.0.1:8080/bench").expect("url").as_str(),
            "http://127.0.0.1:8080/bench"
        );
        assert_eq!(ep.issuer_str(), "http://127.0.0.1:8080");
    }
}
