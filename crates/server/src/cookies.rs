//! Sallyport's own browser cookies (the session and the pre-login CSRF cookie): their names, the path
//! they are scoped to, and how to recognise them. The authorize service sets them; the gateway keeps
//! them away from upstreams, in both directions.
//!
//! Prefix and path, RFC 6265bis §4.1.3: `__Host-` would bind a cookie to the host (no `Domain`), but
//! demands `Path=/`, which sends the session with every request to the origin, upstream routes
//! included. Sallyport's cookies are only ever read under `{issuer path}/oauth2`, so they are scoped
//! there and, when the issuer is https, take `__Secure-` (§4.1.3.1): a browser then accepts them
//! only with `Secure` from a secure origin, so a plain-http page or network attacker cannot plant or
//! overwrite them. (`__Secure-` does not stop a sibling https host that shares the registrable
//! domain from setting a `Domain` cookie: give the issuer a host of its own.)

use protocol::issuer::Issuer;

/// The prefix a secure issuer's cookies carry.
pub const SECURE_PREFIX: &str = "__Secure-";

/// The names and scope of Sallyport's cookies under one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCookies {
    session: String,
    login: String,
    path: String,
    secure: bool,
    /// The names without any prefix, for [`OwnCookies::is_ours`].
    bare: [String; 2],
}

impl OwnCookies {
    /// The cookies of this issuer, named after `sessions.cookie_name`.
    pub fn new(issuer: &Issuer, cookie_name: &str) -> Self {
        let secure = issuer.is_https();
        let prefix = if secure { SECURE_PREFIX } else { "" };
        let base = cookie_name;
        let login = format!("{base}_login");
        Self {
            session: format!("{prefix}{base}"),
            login: format!("{prefix}{login}"),
            path: format!("{}/oauth2", issuer.path()),
            secure,
            bare: [base.to_owned(), login],
        }
    }

    /// The session cookie's name.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The pre-login cookie's name (binds the sign-in form's CSRF token before there is a session).
    pub fn login(&self) -> &str {
        &self.login
    }

    /// The `Path` attribute: the authorization server's endpoints as the browser sees them.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the cookies carry `Secure` (and the `__Secure-` prefix).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Whether a cookie of this name is (or poses as) one of ours: with or without a `__Secure-`
    /// or `__Host-` prefix, in any letter case, so that no spelling reaches or comes from an upstream.
    pub fn is_ours(&self, name: &str) -> bool {
        let name = name.trim();
        let bare = strip_prefix_ignore_case(name, SECURE_PREFIX)
            .or_else(|| strip_prefix_ignore_case(name, "__Host-"))
            .unwrap_or(name);
        self.bare.iter().any(|b| b.eq_ignore_ascii_case(bare))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_path_follow_the_issuer() {
        let issuer = |i: &str| Issuer::parse(i).expect("issuer");
        let plain = OwnCookies::new(&issuer("http://127.0.0.1:8080"), "sallyport_session");
        assert_eq!(
            (plain.session(), plain.login(), plain.path()),
            ("sallyport_session", "sallyport_session_login", "/oauth2")
        );
        assert!(!plain.secure());
        let secure = OwnCookies::new(&issuer("https://as.example/tenant"), "sallyport_session");
        assert_eq!(secure.session(), "__Secure-sallyport_session");
        assert_eq!(secure.login(), "__Secure-sallyport_session_login");
        assert_eq!(secure.path(), "/tenant/oauth2");
        assert!(secure.secure());
    }

    #[test]
    fn every_spelling_of_ours_is_recognised() {
        let c = OwnCookies::new(&Issuer::parse("https://as.example").expect("issuer"), "sallyport_session");
        for ours in [
            "sallyport_session",
            "sallyport_session_login",
            "__Secure-sallyport_session",
            "__secure-sallyport_session",
            "__Host-sallyport_session",
            "__HOST-SALLYPORT_SESSION_LOGIN",
            " sallyport_session",
        ] {
            assert!(c.is_ours(ours), "{ours}");
        }
        for theirs in ["session", "sallyport_session2", "__Secure-other", "x_sallyport_session", "", "__Secure-"] {
            assert!(!c.is_ours(theirs), "{theirs}");
        }
    }
}
