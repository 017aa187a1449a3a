//! The browser's part of the flow, through the public pages only: the authorization request
//! without a session leads to the login form, which is filled in and posted like a person would
//! (documented field names `username` and `password`, every hidden field as it came, cookies kept),
//! then consent is given if the page asks (`decision=allow`), and the flow ends in a code at the
//! redirect URI.

use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use testkit::forms;
use url::Url;

use super::Bench;
use super::oauth::{Pkce, PublicClient, authorize_base, code_from, with_challenge};
use crate::client::{CookieJar, transport};

/// The first error message on a page (`id="error"`), to explain a refused login.
fn page_error(html: &str) -> Option<String> {
    let at = html.find("id=\"error\"")?;
    let text = &html[at..];
    let start = text.find('>')? + 1;
    let end = text[start..].find('<')? + start;
    Some(forms::decode_entities(text[start..end].trim()))
}

/// A browser's sign-in: the authorization request without a session leads to the login form;
/// it is filled in and posted, consent is given if the page asks, and the flow ends in a code.
/// Returns the cookies (the session) and checks that a code came back.
pub async fn sign_in(b: &Bench, client: &PublicClient) -> anyhow::Result<CookieJar> {
    let user = b.user.as_ref().context("the authorize, code and refresh scenarios need --username and --password")?;
    let pkce = Pkce::new();
    let state = protocol::secret::random_token(12);
    let mut jar = CookieJar::default();
    let first = Url::parse(&with_challenge(authorize_base(b, client)?.as_str(), &pkce.challenge, &state))
        .context("authorize URL")?;
    let mut next = Step::Get(first);
    let (mut signed_in, mut consented) = (false, false);
    for _ in 0..10 {
        let (method, url, req) = match &next {
            Step::Get(url) => ("GET", url.clone(), b.http.get(url.clone())),
            Step::Post(url, fields) => ("POST", url.clone(), b.http.post(url.clone()).form(fields)),
        };
        let req = match jar.header() {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let res = req.send().await.map_err(|e| anyhow!(transport(method, &url, &e)))?;
        jar.absorb(res.headers());
        let status = res.status();
        if status == StatusCode::FOUND || status == StatusCode::SEE_OTHER {
            let location =
                res.headers().get(LOCATION).and_then(|v| v.to_str().ok()).context("redirect without Location")?;
            if location.starts_with(&client.redirect_uri) {
                code_from(location, &client.redirect_uri, &state, b.ep.issuer_str()).map_err(|e| anyhow!(e))?;
                return Ok(jar);
            }
            next = Step::Get(b.ep.follow(&url, location)?);
            continue;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            bail!("{method} {}: 429: sign-in is rate limited (raise login.per_ip_per_minute)", url.path());
        }
        if !status.is_success() {
            let html = res.text().await.unwrap_or_default();
            let why = page_error(&html).map(|e| format!(": {e}")).unwrap_or_default();
            bail!("{method} {}: {}{why}", url.path(), status.as_u16());
        }
        let html = res.text().await.context("reading a page")?;
        let forms = forms::parse(&html);
        if let Some(login) = forms.iter().find(|f| f.has_input("password")) {
            if signed_in {
                bail!("signed in, but the login form came back (wrong --username or --password?)");
            }
            let fields = login.submission(&[("username", &user.username), ("password", &user.password)], None);
            next = Step::Post(b.ep.follow(&url, &login.action)?, fields);
            signed_in = true;
        } else if let Some(consent) = forms.iter().find(|f| f.has_button("decision", "allow")) {
            if consented {
                bail!("consent was given, but the consent page came back");
            }
            next =
                Step::Post(b.ep.follow(&url, &consent.action)?, consent.submission(&[], Some(("decision", "allow"))));
            consented = true;
        } else {
            bail!("{method} {}: a page with neither a login nor a consent form", url.path());
        }
    }
    bail!("the sign-in did not end in a code after 10 steps")
}

enum Step {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_errors() {
        let html = r#"<p class="error" id="error" role="alert">Wrong username &amp; password</p>"#;
        assert_eq!(page_error(html).as_deref(), Some("Wrong username & password"));
        assert_eq!(page_error("<p>fine</p>"), None);
    }
}
