//! The HTTP client side: one pooled reqwest client per scenario (redirects not followed, so a 302
//! is an answer), a cookie jar for the browser flows, and short descriptions of failures that make
//! good keys for error counts.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, SET_COOKIE};
use url::Url;

/// A client for `connections` concurrent workers: keep-alive, no redirects, a generous timeout.
pub fn build(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .user_agent(concat!("sallyport-bench/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Cookies by name. The bench talks to one host (all services on loopback) and every cookie the
/// stack sets has `Path=/`, so names are enough.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    /// Takes the `Set-Cookie` headers of a response; `Max-Age=0` or an empty value removes a cookie.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(line) = value.to_str() else { continue };
            self.absorb_line(line);
        }
    }

    fn absorb_line(&mut self, line: &str) {
        let mut parts = line.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else { return };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() {
            return;
        }
        let expired = parts.any(|attr| {
            attr.split_once('=').is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("max-age") && v.trim() == "0")
        });
        if expired || value.is_empty() {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_owned(), value.to_owned());
        }
    }

    /// The `Cookie` request header, if there is any cookie.
    pub fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The request's path, for messages: never the query (it may hold a code or a state).
pub fn what(method: &str, url: &Url) -> String {
    format!("{method} {}", url.path())
}

/// "POST /oauth2/token: 400 invalid_grant" — the status and, for an OAuth error body, its code.
pub async fn unexpected(method: &str, url: &Url, res: reqwest::Response) -> String {
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap_or_default();
    format!("{}: {status}{}", what(method, url), error_code(&body))
}

/// " invalid_grant": the `error` of an OAuth error body, after a space; "" for any other body.
pub fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(|e| format!(" {e}")))
        .unwrap_or_default()
}

/// "GET /x: connection refused" — a transport failure, without the URL (it may carry a secret).
pub fn transport(method: &str, url: &Url, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    format!("{}: {kind}", what(method, url))
}

/// Whether a status is a success for the bench: 2xx, or 302 (the authorization response).
pub fn is_success(status: reqwest::StatusCode) -> bool {
    status.is_success() || status == reqwest::StatusCode::FOUND
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn cookie_jar() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("sallyport_session=spss_abc; Path=/; HttpOnly; SameSite=Lax"));
        h.append(SET_COOKIE, HeaderValue::from_static("sallyport_session_login=xyz; Path=/; Max-Age=600"));
        jar.absorb(&h);
        assert_eq!(jar.header().as_deref(), Some("sallyport_session=spss_abc; sallyport_session_login=xyz"));
        let mut removal = HeaderMap::new();
        removal.append(SET_COOKIE, HeaderValue::from_static("sallyport_session_login=; Path=/; Max-Age=0"));
        jar.absorb(&removal);
        assert_eq!(jar.header().as_deref(), Some("sallyport_session=spss_abc"));
        jar.absorb_line("sallyport_session=gone; max-age=0");
        assert!(jar.is_empty());
        jar.absorb_line("garbage");
        jar.absorb_line("=x");
        assert!(jar.is_empty());
    }

    #[test]
    fn success_statuses() {
        use reqwest::StatusCode;
        assert!(is_success(StatusCode::OK));
        assert!(is_success(StatusCode::CREATED));
        assert!(is_success(StatusCode::FOUND));
        assert!(!is_success(StatusCode::SEE_OTHER));
        assert!(!is_success(StatusCode::NOT_MODIFIED));
        assert!(!is_success(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_success(StatusCode::INTERNAL_SERVER_ERROR));
    }

    #[test]
    fn messages_never_carry_the_query() {
        let url = Url::parse("http://127.0.0.1:1/oauth2/authorize?code_challenge=secret").expect("url");
        assert_eq!(what("GET", &url), "GET /oauth2/authorize");
    }
}
