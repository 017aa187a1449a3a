//! CSRF tokens for the login, consent and logout forms. A token is derived, not stored: SHA-256 of a
//! purpose label, a browser-bound secret (the session secret, or the pre-login cookie) and what the
//! form is about (the authorization request), so a token works only for its purpose, in its own
//! session, for its own request. Checked in constant time; no decision depends on `Referer`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::secret::{constant_time_eq, sha256};

/// What a token authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Login,
    Consent,
    Logout,
    /// The forms of `/oauth2/connections` (Disconnect, Revoke, its sign-in).
    Connections,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Login => b"sallyport/csrf/login/v1",
            Self::Consent => b"sallyport/csrf/consent/v1",
            Self::Logout => b"sallyport/csrf/logout/v1",
            Self::Connections => b"sallyport/csrf/connections/v1",
        }
    }
}

/// The token for `purpose`, bound to the browser's `secret` and to `bound` (the request).
pub fn token(purpose: Purpose, secret: &str, bound: &str) -> String {
    let mut input = Vec::with_capacity(64 + secret.len() + bound.len());
    input.extend_from_slice(purpose.label());
    input.push(0);
    input.extend_from_slice(secret.as_bytes());
    input.push(0);
    input.extend_from_slice(&sha256(bound.as_bytes()));
    URL_SAFE_NO_PAD.encode(sha256(&input))
}

/// Whether `presented` is the token for `purpose`, `secret` and `bound`.
pub fn verify(purpose: Purpose, secret: &str, bound: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| constant_time_eq(token(purpose, secret, bound).as_bytes(), p.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_purpose_secret_and_request() {
        let t = token(Purpose::Consent, "spss_a", "client_id=x");
        assert_eq!(t.len(), 43);
        assert!(verify(Purpose::Consent, "spss_a", "client_id=x", Some(&t)));
        assert!(!verify(Purpose::Consent, "spss_b", "client_id=x", Some(&t)), "another session");
        assert!(!verify(Purpose::Consent, "spss_a", "client_id=y", Some(&t)), "another request");
        assert!(!verify(Purpose::Logout, "spss_a", "client_id=x", Some(&t)), "another purpose");
        assert!(!verify(Purpose::Consent, "spss_a", "client_id=x", None), "missing");
        assert!(!verify(Purpose::Consent, "spss_a", "client_id=x", Some("")), "empty");
        assert!(!verify(Purpose::Consent, "spss_a", "client_id=x", Some(&t[..42])), "truncated");
    }
}
