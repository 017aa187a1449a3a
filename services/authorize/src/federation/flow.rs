//! The values that tie a provider's callback to the browser that started the sign-in. `state` is
//! random and stored only as its SHA-256; the PKCE verifier (RFC 7636) and the `nonce` (Core
//! §3.1.2.1) are derived from the browser's pre-login cookie and `state`, so they are never
//! stored, and a callback arriving in another browser (without that cookie) can neither match the
//! stored binding nor reproduce them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use protocol::secret::sha256;

fn derive(label: &[u8], cookie: &str, state: &str) -> String {
    let mut input = Vec::with_capacity(label.len() + cookie.len() + state.len() + 2);
    input.extend_from_slice(label);
    input.push(0);
    input.extend_from_slice(cookie.as_bytes());
    input.push(0);
    input.extend_from_slice(state.as_bytes());
    URL_SAFE_NO_PAD.encode(sha256(&input))
}

/// The PKCE verifier: 43 unreserved characters (RFC 7636 §4.1), 256 bits.
pub fn verifier(cookie: &str, state: &str) -> String {
    derive(b"sallyport/oidc/pkce/v1", cookie, state)
}

pub fn nonce(cookie: &str, state: &str) -> String {
    derive(b"sallyport/oidc/nonce/v1", cookie, state)
}

/// What the stored row binds the sign-in to: the pre-login cookie, hashed.
pub fn browser_hash(cookie: &str) -> [u8; 32] {
    let mut input = b"sallyport/oidc/browser/v1\0".to_vec();
    input.extend_from_slice(cookie.as_bytes());
    sha256(&input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_depend_on_cookie_state_and_purpose() {
        let v = verifier("cookie-a", "state-1");
        assert_eq!(v.len(), 43);
        assert!(protocol::pkce::CodeVerifier::parse(&v).is_ok());
        assert_ne!(v, verifier("cookie-b", "state-1"));
        assert_ne!(v, verifier("cookie-a", "state-2"));
        assert_ne!(v, nonce("cookie-a", "state-1"));
        assert_eq!(v, verifier("cookie-a", "state-1"));
        assert_ne!(browser_hash("a"), browser_hash("b"));
    }
}
