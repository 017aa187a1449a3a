//! The routing table as plain data: which paths belong to the authorization server's services,
//! which to protected upstreams, and how a gateway path becomes an upstream URL. Prefixes match
//! at a path-segment boundary (`/mcp` matches `/mcp` and `/mcp/x`, never `/mcpx`); the longest wins.

use server::config::{RouteSettings, ServiceUrls};
use url::Url;

/// One of the authorization server's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsService {
    Registration,
    Authorize,
    Token,
    Metadata,
}

impl AsService {
    /// The configured base URL of this service.
    pub fn base_url(self, urls: &ServiceUrls) -> &Url {
        match self {
            Self::Registration => urls.registration.url(),
            Self::Authorize => urls.authorize.url(),
            Self::Token => urls.token.url(),
            Self::Metadata => urls.metadata.url(),
        }
    }
}

/// Which per-IP budget an endpoint draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    None,
    /// Every non-preflight request (RFC 7591 registration and RFC 7592 management).
    Register,
    /// Every non-preflight request.
    Token,
    /// Only `POST` (the credential check); showing the form costs nothing.
    Login,
}

/// A public endpoint of the authorization server (CONTRACTS.md, "Public paths").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsEndpoint {
    pub path: &'static str,
    pub service: AsService,
    /// `Access-Control-Allow-Origin: *` without credentials (documents and endpoints browser clients call).
    pub public_cors: bool,
    pub budget: Budget,
    /// Served under the issuer's path (`/oauth2/*`); the well-known documents live at the origin root.
    pub under_issuer: bool,
}

const fn ep(
    path: &'static str,
    service: AsService,
    public_cors: bool,
    budget: Budget,
    under_issuer: bool,
) -> AsEndpoint {
    AsEndpoint { path, service, public_cors, budget, under_issuer }
}

/// Every public endpoint of the authorization server.
pub const AS_ENDPOINTS: &[AsEndpoint] = &[
    ep("/.well-known/oauth-authorization-server", AsService::Metadata, true, Budget::None, false),
    ep("/.well-known/oauth-protected-resource", AsService::Metadata, true, Budget::None, false),
    ep("/.well-known/openid-configuration", AsService::Metadata, true, Budget::None, false),
    ep("/oauth2/openapi.json", AsService::Metadata, true, Budget::None, true),
    ep("/oauth2/register", AsService::Registration, true, Budget::Register, true),
    ep("/oauth2/authorize", AsService::Authorize, false, Budget::None, true),
    ep("/oauth2/login", AsService::Authorize, false, Budget::Login, true),
    ep("/oauth2/consent", AsService::Authorize, false, Budget::None, true),
    ep("/oauth2/logout", AsService::Authorize, false, Budget::None, true),
    // issue 20: a user's upstream accounts (`/connect`, `/callback`, `/login`, ...) and Sallyport's
    // client ID metadata document at upstream authorization servers
    ep("/oauth2/connections", AsService::Authorize, false, Budget::None, true),
    ep("/oauth2/upstream-client", AsService::Authorize, true, Budget::None, true),
    ep("/oauth2/token", AsService::Token, true, Budget::Token, true),
    ep("/oauth2/revoke", AsService::Token, true, Budget::None, true),
    ep("/oauth2/introspect", AsService::Token, false, Budget::None, true),
    ep("/oauth2/jwks", AsService::Token, true, Budget::None, true),
];

/// An AS endpoint as mounted on the gateway: `mount` is what the gateway matches, `strip` the part
/// removed before forwarding (the issuer's path), `base` the service URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsMount {
    pub endpoint: AsEndpoint,
    pub mount: String,
    pub strip: String,
    pub base: Upstream,
}

impl AsMount {
    /// The upstream URI for a request path and raw query that matched this mount.
    pub fn upstream_url(&self, path: &str, query: &str) -> http::Uri {
        self.base.join(path.strip_prefix(self.strip.as_str()).unwrap_or(path), query)
    }
}

/// Every AS mount for an issuer path (`""` for an issuer at the origin). The `/oauth2/*` endpoints
/// live under the issuer path; the well-known documents at the root (RFC 8414 §3.1 path insertion
/// is the metadata service's job) and, for the `{path}/.well-known/openid-configuration` probe some
/// clients make, also under the issuer path.
pub fn as_mounts(issuer_path: &str, urls: &ServiceUrls) -> Vec<AsMount> {
    let issuer_path = issuer_path.trim_end_matches('/');
    let mut mounts = Vec::new();
    for endpoint in AS_ENDPOINTS {
        let base = Upstream::new(endpoint.service.base_url(urls));
        let mut add = |strip: &str| {
            mounts.push(AsMount {
                endpoint: *endpoint,
                mount: format!("{strip}{}", endpoint.path),
                strip: strip.to_owned(),
                base: base.clone(),
            });
        };
        if endpoint.under_issuer {
            add(issuer_path);
        } else {
            add("");
            if !issuer_path.is_empty() {
                add(issuer_path);
            }
        }
    }
    mounts
}

/// A configured upstream route, with its prefix normalised (no trailing slash; `/` becomes `""`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub prefix: String,
    pub upstream: Upstream,
    pub settings: RouteSettings,
    /// What replaces the client's credentials upstream (`upstream_auth`); `None` for `none`.
    pub credential: Option<std::sync::Arc<crate::proxy::UpstreamCredential>>,
    /// `upstream_auth = "oauth2"`: each user's own upstream token replaces the client's.
    pub oauth: Option<std::sync::Arc<crate::upstream_oauth::OAuthRoute>>,
}

impl Route {
    pub fn new(settings: &RouteSettings) -> Self {
        Self {
            prefix: settings.prefix.trim_end_matches('/').to_owned(),
            upstream: Upstream::new(settings.upstream.url()),
            settings: settings.clone(),
            credential: None,
            oauth: None,
        }
    }

    /// The prefix is replaced by the upstream URL's path: with prefix `/mcp` and upstream
    /// `http://up:9000/mcp`, `/mcp/x?q` goes to `http://up:9000/mcp/x?q`; with upstream
    /// `http://up:9000` it goes to `http://up:9000/x?q`.
    pub fn upstream_url(&self, path: &str, query: &str) -> http::Uri {
        self.upstream.join(path.strip_prefix(self.prefix.as_str()).unwrap_or(path), query)
    }
}

/// Routes ordered so that the first match is the longest prefix.
pub fn routes_longest_first(settings: &[RouteSettings]) -> Vec<Route> {
    let mut routes: Vec<Route> = settings.iter().map(Route::new).collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    routes
}

/// Whether `path` is `prefix` or lies below it (a segment boundary follows the prefix).
pub fn prefix_matches(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// An upstream's base URL, parsed once at start: a request's URI is its scheme and authority
/// (kept as `http` types, so each request only clones them) with the request's path appended and
/// its query. Nothing of the base is parsed again per request, and the URI goes to the client
/// without another parse of a whole URL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    url: Url,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The URL's path without its trailing slash, to append a path to.
    path: String,
    /// The `Host` header its requests carry (RFC 9112 §3.2: the URL's host, and its port unless the
    /// scheme's default), made once here; hyper would format it again for every request. The
    /// upstream client speaks HTTP/1.1 only (`crate::proxy::client`), for `https` too.
    host: http::HeaderValue,
}

impl Upstream {
    /// # Panics
    /// Never for a URL `server::config::HttpUrl` accepted (`http` or `https`, with a host); a URL
    /// whose authority `http` cannot hold would be a bug there.
    pub fn new(url: &Url) -> Self {
        let mut url = url.clone();
        url.set_fragment(None);
        url.set_query(None);
        let path = url.path().trim_end_matches('/').to_owned();
        let host = url.host_str().unwrap_or_default();
        let authority = url.port().map_or_else(|| host.to_owned(), |p| format!("{host}:{p}"));
        let scheme = if url.scheme() == "https" { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
        let host = http::HeaderValue::from_str(&authority).expect("a URL's authority is a header value");
        let authority = http::uri::Authority::try_from(authority).expect("a URL's authority is a URI authority");
        Self { url, scheme, authority, path, host }
    }

    /// The `Host` header of this upstream's requests, made at start.
    pub fn host_header(&self) -> http::HeaderValue {
        self.host.clone()
    }

    /// The base URL with its path trimmed of a trailing slash (`http://up:9000/mcp`).
    pub fn as_str(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }

    /// The base path followed by `rest`, and `?query` unless empty, percent-encoded as the `url`
    /// crate would (the bytes an upstream received when reqwest sent a `Url`): `rest` and `query`
    /// come from a request line `http` has parsed, so only a few characters it lets through are
    /// left to encode (`"`, `{`, `}` in a path, `"` and `'` in a query). An empty path is `/`
    /// (RFC 9110 §4.2.1: the request line says `GET /`).
    fn join(&self, rest: &str, query: &str) -> http::Uri {
        let mut pq = Vec::with_capacity(self.path.len() + rest.len() + query.len() + 2);
        pq.extend_from_slice(self.path.as_bytes());
        encode_into(&mut pq, rest, in_path_set);
        if pq.is_empty() {
            pq.push(b'/');
        }
        if !query.is_empty() {
            pq.push(b'?');
            encode_into(&mut pq, query, in_special_query_set);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        // the canonical-path check and actix's parse leave nothing `http` refuses; `/` if one did
        parts.path_and_query = Some(
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))
                .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/")),
        );
        http::Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    }
}

/// The `url` crate's query percent-encode set (WHATWG URL, "query percent-encode set"): C0
/// controls, space, `"`, `#`, `<`, `>`, and bytes beyond ASCII.
fn in_query_set(b: u8) -> bool {
    !(0x21..=0x7e).contains(&b) || matches!(b, b'"' | b'#' | b'<' | b'>')
}

/// The special-query set (`http` and `https` URLs): the query set and `'`.
fn in_special_query_set(b: u8) -> bool {
    in_query_set(b) || b == b'\''
}

/// The path percent-encode set: the query set and `?`, `` ` ``, `{`, `}`.
fn in_path_set(b: u8) -> bool {
    in_query_set(b) || matches!(b, b'?' | b'`' | b'{' | b'}')
}

/// Appends `s` with the bytes of `set` percent-encoded; a run at a time, so the usual string,
/// with nothing to encode, is one copy.
fn encode_into(out: &mut Vec<u8>, s: &str, set: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if set(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls() -> ServiceUrls {
        let url = |u: &str| server::config::HttpUrl::parse(u).expect("url");
        ServiceUrls {
            registration: url("http://reg:1"),
            authorize: url("http://authz:2/"),
            token: url("http://tok:3"),
            metadata: url("http://meta:4"),
        }
    }

    /// The Host an upstream's requests carry is its URL's authority, as hyper would write it: the
    /// port left out when it is the scheme's default.
    #[test]
    fn an_upstream_has_its_host_header_made_once() {
        let host = |u: &str| Upstream::new(&Url::parse(u).expect("url")).host_header();
        assert_eq!(host("http://up:9000/mcp").as_bytes(), b"up:9000");
        assert_eq!(host("http://up:80/x").as_bytes(), b"up", "default port left out");
        assert_eq!(host("http://[::1]:8080").as_bytes(), b"[::1]:8080");
        assert_eq!(host("https://up:8443/mcp").as_bytes(), b"up:8443");
        assert_eq!(host("https://up:443/mcp").as_bytes(), b"up");
    }

    /// A request's URI has the bytes `url` made of the same path and query when reqwest sent a
    /// `Url`: the few characters `http` lets through raw are percent-encoded the same way.
    #[test]
    fn the_upstream_uri_is_what_url_would_make() {
        let base = Url::parse("http://up:9000/base/").expect("url");
        let upstream = Upstream::new(&base);
        for (rest, query) in [
            ("/x", ""),
            ("", ""),
            ("", "a=1"),
            ("/a%20b/c", "q=%22x%22&r=1"),
            ("/json/{\"k\":\"v\"}", "s='x'&t={\"y\"}|z^`"),
            ("/!$&'()*+,:=@[]|~^", "a=!$&()*+,/:;=?@[]~"),
        ] {
            let mut url = base.clone();
            url.set_path(&format!("/base{rest}"));
            url.set_query((!query.is_empty()).then_some(query));
            assert_eq!(upstream.join(rest, query).to_string(), url.as_str(), "{rest}?{query}");
        }
        let https = Upstream::new(&Url::parse("https://up/").expect("url"));
        assert_eq!(https.join("/v1", "").to_string(), "https://up/v1");
    }

    fn find<'a>(mounts: &'a [AsMount], path: &str) -> Option<&'a AsMount> {
        mounts.iter().find(|m| prefix_matches(path, &m.mount))
    }

    #[test]
    fn segment_boundaries() {
        assert!(prefix_matches("/mcp", "/mcp"));
        assert!(prefix_matches("/mcp/", "/mcp"));
        assert!(prefix_matches("/mcp/a/b", "/mcp"));
        assert!(!prefix_matches("/mcpx", "/mcp"));
        assert!(!prefix_matches("/mc", "/mcp"));
        assert!(prefix_matches("/anything", ""), "the root prefix matches every path");
        assert!(prefix_matches("/", ""));
    }

    #[test]
    fn as_paths_at_the_root_issuer() {
        let mounts = as_mounts("", &urls());
        let token = find(&mounts, "/oauth2/token").expect("token");
        assert_eq!(token.endpoint.service, AsService::Token);
        assert_eq!(token.upstream_url("/oauth2/token", "").to_string(), "http://tok:3/oauth2/token");
        let reg = find(&mounts, "/oauth2/register/abc").expect("rfc 7592");
        assert_eq!(reg.upstream_url("/oauth2/register/abc", "x=1").to_string(), "http://reg:1/oauth2/register/abc?x=1");
        let login = find(&mounts, "/oauth2/login").expect("login");
        assert_eq!(login.upstream_url("/oauth2/login", "").to_string(), "http://authz:2/oauth2/login");
        let prm = find(&mounts, "/.well-known/oauth-protected-resource/mcp").expect("prm");
        assert_eq!(
            prm.upstream_url("/.well-known/oauth-protected-resource/mcp", "").to_string(),
            "http://meta:4/.well-known/oauth-protected-resource/mcp"
        );
        assert!(find(&mounts, "/oauth2/tokens").is_none());
        assert!(find(&mounts, "/oauth2").is_none());
        assert!(find(&mounts, "/.well-known/security.txt").is_none());
    }

    #[test]
    fn as_paths_under_an_issuer_path() {
        let mounts = as_mounts("/tenant", &urls());
        assert!(find(&mounts, "/oauth2/token").is_none(), "the AS lives under the issuer path");
        let token = find(&mounts, "/tenant/oauth2/token").expect("token");
        assert_eq!(token.upstream_url("/tenant/oauth2/token", "a=b").to_string(), "http://tok:3/oauth2/token?a=b");
        // RFC 8414 §3.1: the path-inserted document is at the root and forwarded as it is
        let asm = find(&mounts, "/.well-known/oauth-authorization-server/tenant").expect("as metadata");
        assert_eq!(
            asm.upstream_url("/.well-known/oauth-authorization-server/tenant", "").to_string(),
            "http://meta:4/.well-known/oauth-authorization-server/tenant"
        );
        let oidc = find(&mounts, "/tenant/.well-known/openid-configuration").expect("oidc probe");
        assert_eq!(
            oidc.upstream_url("/tenant/.well-known/openid-configuration", "").to_string(),
            "http://meta:4/.well-known/openid-configuration"
        );
    }

    fn route(prefix: &str, upstream: &str) -> RouteSettings {
        RouteSettings {
            prefix: prefix.into(),
            upstream: server::config::HttpUrl::parse(upstream).expect("upstream"),
            resource: Some("http://gw/x".into()),
            scopes: vec![],
            method_scopes: Default::default(),
            auth: true,
            allowed_origins: vec![],
            allow_form_token: false,
            allow_query_token: false,
            mcp: false,
            tools: Default::default(),
            tool_scopes: Default::default(),
            upstream_auth: Default::default(),
            upstream_api_key: None,
            upstream_headers: Default::default(),
            upstream_oauth: None,
        }
    }

    #[test]
    fn longest_prefix_first_and_prefix_replacement() {
        let routes = routes_longest_first(&[
            route("/", "http://root"),
            route("/mcp/", "http://up:9000/mcp"),
            route("/mcp/admin", "http://admin"),
        ]);
        let pick = |path: &str| routes.iter().find(|r| prefix_matches(path, &r.prefix)).map(|r| r.upstream.as_str());
        assert_eq!(pick("/mcp/admin/x"), Some("http://admin"));
        assert_eq!(pick("/mcp/administrator"), Some("http://up:9000/mcp"));
        assert_eq!(pick("/mcp"), Some("http://up:9000/mcp"));
        assert_eq!(pick("/other"), Some("http://root"));
        let mcp = routes.iter().find(|r| r.prefix == "/mcp").expect("mcp");
        assert_eq!(mcp.upstream_url("/mcp", "").to_string(), "http://up:9000/mcp");
        assert_eq!(mcp.upstream_url("/mcp/a%20b", "q=1").to_string(), "http://up:9000/mcp/a%20b?q=1");
        let bare = Route::new(&route("/api", "http://up:9000/"));
        assert_eq!(bare.upstream_url("/api/v1", "").to_string(), "http://up:9000/v1");
        // an empty path is `/` in an http URL (RFC 9110 §4.2.1): the request line says `GET /`
        assert_eq!(bare.upstream_url("/api", "").to_string(), "http://up:9000/");
    }
}
