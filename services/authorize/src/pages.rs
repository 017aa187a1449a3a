//! The HTML pages (askama templates, compiled in; no JavaScript) and the headers every page carries:
//! a strict `Content-Security-Policy`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-store`. Form field names are stable (README, "Theming the pages").

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use protocol::secret::sha256;
use protocol::uri::RedirectUri;

/// The pages' one stylesheet, inlined and allowed by its hash. Edit `templates/style.css` to theme.
pub const STYLE: &str = include_str!("../templates/style.css");

/// The CSP source that allows exactly [`STYLE`].
pub fn style_source() -> String {
    format!("'sha256-{}'", STANDARD.encode(sha256(STYLE.as_bytes())))
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub style: &'a str,
    pub action: &'a str,
    pub client_name: &'a str,
    pub request: &'a str,
    pub csrf_token: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// `login.password`: show the password form.
    pub password: bool,
    /// One button each: (id, name).
    pub providers: Vec<(&'a str, &'a str)>,
}

/// A resource as the consent page shows it.
pub struct ResourceView {
    pub name: String,
    pub id: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub style: &'a str,
    pub action: &'a str,
    pub logout_action: &'a str,
    pub client_name: &'a str,
    pub client_host: Option<String>,
    pub redirect_host: String,
    pub target_name: String,
    pub resources: Vec<ResourceView>,
    pub scopes: Vec<String>,
    pub self_registered: bool,
    pub loopback_only: bool,
    pub document_host: Option<String>,
    pub username: &'a str,
    pub request: &'a str,
    pub csrf_token: &'a str,
    pub logout_token: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub style: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    /// A "try again" link (the sign-in page of the pending request).
    pub retry: Option<&'a str>,
    /// Where the page continues by itself (a meta refresh), with a "Continue" link.
    pub next: Option<&'a str>,
}

/// One `oauth2` route on the connections page.
pub struct RouteView {
    pub prefix: String,
    pub connected: bool,
    pub scope: Option<String>,
    pub connect_url: String,
    pub csrf_token: String,
}

/// One remembered consent on the connections page.
pub struct AppView {
    pub client_id: String,
    pub resource: String,
    pub scopes: String,
    pub csrf_token: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
pub struct ConnectionsPage<'a> {
    pub style: &'a str,
    pub username: &'a str,
    pub notice: Option<&'a str>,
    pub routes: Vec<RouteView>,
    pub apps: Vec<AppView>,
    pub disconnect_action: &'a str,
    pub revoke_action: &'a str,
}

/// Where forms on a page may submit to: our own endpoints and, because browsers apply
/// `form-action` to the redirects that follow a submission, the client's redirect target.
#[derive(Debug, Clone, Default)]
pub struct FormTargets(Vec<String>);

impl FormTargets {
    pub fn new(issuer_origin: &str) -> Self {
        Self(vec![issuer_origin.to_owned()])
    }

    /// Adds an origin a form's submission may be redirected to (an OpenID provider's
    /// authorization endpoint).
    pub fn with_origin(mut self, url: &str) -> Self {
        if let Ok(u) = url::Url::parse(url)
            && matches!(u.scheme(), "http" | "https")
        {
            let origin = u.origin().ascii_serialization();
            if !self.0.contains(&origin) {
                self.0.push(origin);
            }
        }
        self
    }

    /// Adds the redirect URI's origin (`scheme:` for a private-use scheme).
    pub fn with_redirect(mut self, redirect: &RedirectUri) -> Self {
        if let Some(source) = csp_source(redirect) {
            self.0.push(source);
        }
        self
    }
}

/// A CSP source expression for a redirect URI; URL parsing guarantees it holds no `;`, `,` or space.
fn csp_source(redirect: &RedirectUri) -> Option<String> {
    let url = url::Url::parse(redirect.as_str()).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

/// An HTML page with the security headers. A template that fails to render is an internal error.
pub fn html(
    status: StatusCode,
    body: Result<String, askama::Error>,
    style: &str,
    targets: &FormTargets,
) -> HttpResponse {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            return HttpResponse::InternalServerError().insert_header((CACHE_CONTROL, "no-store")).finish();
        }
    };
    let mut form_action = String::from("'self'");
    for t in &targets.0 {
        form_action.push(' ');
        form_action.push_str(t);
    }
    let csp = format!(
        "default-src 'none'; style-src {style}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CONTENT_SECURITY_POLICY, csp))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The host a person recognises in a URL (`client_uri`, a document URL).
pub fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned))
}

/// Where the browser goes after the decision, as the consent page names it.
pub fn redirect_label(redirect: &RedirectUri) -> String {
    match redirect.host() {
        Some(host) => host,
        None => {
            let scheme = redirect.as_str().split(':').next().unwrap_or_default();
            format!("the app {scheme} on this device")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_hash_matches_the_rendered_style() {
        let page =
            MessagePage { style: STYLE, title: "t", message: "m", retry: None, next: None }.render().expect("render");
        let inline = page.split("<style>").nth(1).and_then(|s| s.split("</style>").next()).expect("style element");
        assert_eq!(inline, STYLE);
        assert!(style_source().starts_with("'sha256-"));
    }

    #[test]
    fn text_is_escaped() {
        let page = MessagePage { style: "", title: "<b>", message: "\"><script>x</script>", retry: None, next: None }
            .render()
            .expect("render");
        assert!(!page.contains("<script>x"));
        assert!(!page.contains("<b>") && page.contains("b&#62;"), "{page}");
        assert!(!page.contains("http-equiv") && !page.contains("id=\"continue\""), "goes nowhere by itself");
    }

    #[test]
    fn a_continuing_page_refreshes_to_its_next_url_and_links_it() {
        let next = "https://as.example/oauth2/connections/connect?route=%2Fa&x=\"><script>";
        let page = MessagePage { style: "", title: "Signed in", message: "m", retry: None, next: Some(next) }
            .render()
            .expect("render");
        let escaped = "https://as.example/oauth2/connections/connect?route=%2Fa&#38;x=&#34;&#62;&#60;script&#62;";
        assert!(page.contains(&format!("<meta http-equiv=\"refresh\" content=\"0; url={escaped}\">")), "{page}");
        assert!(page.contains(&format!("<a href=\"{escaped}\" id=\"continue\">Continue</a>")), "{page}");
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn form_targets_name_the_redirect_origin() {
        let t = FormTargets::new("https://as.example")
            .with_redirect(&RedirectUri::parse("http://127.0.0.1:3000/cb?x=1").expect("uri"));
        assert_eq!(t.0, vec!["https://as.example", "http://127.0.0.1:3000"]);
        let t = FormTargets::default().with_redirect(&RedirectUri::parse("com.example.app:/cb").expect("uri"));
        assert_eq!(t.0, vec!["com.example.app:"]);
        let res = html(StatusCode::OK, Ok("x".into()), "'sha256-a'", &FormTargets::new("https://as.example"));
        let csp = res.headers().get(CONTENT_SECURITY_POLICY).expect("csp").to_str().expect("ascii");
        assert_eq!(
            csp,
            "default-src 'none'; style-src 'sha256-a'; form-action 'self' https://as.example; frame-ancestors 'none'; base-uri 'none'"
        );
        assert_eq!(res.headers().get(X_FRAME_OPTIONS).expect("xfo"), "DENY");
        assert_eq!(
            redirect_label(&RedirectUri::parse("com.example.app:/cb").expect("uri")),
            "the app com.example.app on this device"
        );
    }
}
