//! The one SSRF policy of outbound fetches (DESIGN.md): client ID metadata documents and OpenID
//! providers' discovery documents, keys, token and userinfo endpoints. No redirects, no proxy, and a
//! DNS resolver that drops every address `protocol::ssrf` forbids unless private hosts are allowed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protocol::ssrf::is_forbidden_ip;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A DNS resolver that drops forbidden addresses, so a name cannot be pointed at an internal
/// address (also not between our check and the connection: the check *is* the resolution).
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the host resolves to no allowed address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client under the policy: redirects not followed, no proxy, `timeout` for the connection
/// and for the whole exchange, only global unicast addresses unless `allow_private`. A URL naming
/// an IP literal skips DNS: callers check such hosts with [`host_allowed`].
pub fn guarded_client(allow_private: bool, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .user_agent(concat!("sallyport/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
}

/// Whether a URL's host passes the policy before any connection: an IP literal must be global
/// unicast and `localhost` is refused, unless private hosts are allowed (names are judged at
/// resolution).
pub fn host_allowed(url: &url::Url, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_forbidden_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => !is_forbidden_ip(ip.into()),
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
