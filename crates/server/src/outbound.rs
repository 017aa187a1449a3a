//! The one SSRF policy of outbound fetches (DESIGN.md): client ID metadata documents, OpenID
//! providers' discovery documents, keys, token and userinfo endpoints, and trusted ID-JAG issuers'
//! metadata and keys. An HTTP client whose DNS resolver drops every address that is not global
//! unicast (`protocol::ssrf`), no redirects, no proxy, bounded time; and the same rule for a URL
//! whose host is an IP literal (which no resolver sees).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protocol::ssrf::is_forbidden_ip;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

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
/// an IP literal skips DNS: callers check such hosts with [`host_allowed`] (or [`check_url`]).
pub fn guarded_client(allow_private: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
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
pub fn host_allowed(url: &Url, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => !is_forbidden_ip(ip.into()),
        Some(Host::Ipv6(ip)) => !is_forbidden_ip(ip.into()),
        Some(Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `url` may be fetched: http(s) (http only with `allow_http`), no credentials, and an IP
/// literal host only when it is global unicast or private hosts are allowed.
pub fn check_url(url: &Url, allow_http: bool, allow_private: bool) -> Result<(), &'static str> {
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err("must be https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.host().is_none() {
        return Err("has no host");
    }
    if !host_allowed(url, allow_private) {
        return Err("points at a private or special-purpose address");
    }
    Ok(())
}

/// GETs `url` as JSON: status 200 and at most `max` bytes, else an error for the log.
pub async fn get_json(http: &reqwest::Client, url: &Url, max: usize) -> Result<serde_json::Value, String> {
    let res =
        http.get(url.clone()).header(reqwest::header::ACCEPT, "application/json").send().await.map_err(describe)?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", res.status().as_u16()));
    }
    let body = read_bounded(res, max).await.map_err(|e| match e {
        BodyError::TooLarge => format!("larger than {max} bytes"),
        BodyError::Transport(detail) => detail,
    })?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// Why an answer's body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than allowed (by its `Content-Length`, or as it arrived).
    TooLarge,
    /// The connection failed mid-body: [`describe`]d.
    Transport(String),
}

/// An answer's body, refused beyond `max` bytes before it is all in memory.
pub async fn read_bounded(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| BodyError::Transport(describe(e)))? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error for the log: without its URL, with its whole cause chain (where reqwest keeps
/// the actual reason).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(check_url(&u("https://idp.example/keys"), false, false).is_ok());
        assert!(check_url(&u("http://idp.example/keys"), false, false).is_err());
        assert!(check_url(&u("http://idp.example/keys"), true, false).is_ok());
        assert!(check_url(&u("https://u:p@idp.example/keys"), false, false).is_err());
        for private in ["https://127.0.0.1/k", "https://10.1.2.3/k", "https://[::1]/k", "https://169.254.169.254/k"] {
            assert!(check_url(&u(private), false, false).is_err(), "{private}");
            assert!(check_url(&u(private), false, true).is_ok(), "{private} allowed");
        }
        assert!(check_url(&u("https://8.8.8.8/k"), false, false).is_ok());
        assert!(check_url(&u("https://localhost/k"), false, false).is_err());
    }
}
