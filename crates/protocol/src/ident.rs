//! The identifiers and strings a request carries, parsed at the edge of a service into types that
//! can only hold what the RFCs' syntax allows (RFC 6749 Appendix A, RFC 6750 §2.1), so that no
//! value from a request reaches SQL, a log line or a redirect unchecked. Pure: no actix, no diesel.
//!
//! A Rust `String` is always UTF-8; what Postgres cannot hold beyond that is NUL, which every type
//! here refuses (it is a control character). Decoders that replace invalid UTF-8 with U+FFFD hand
//! the ASCII-only types a character they refuse, so invalid UTF-8 is refused there too.

use std::fmt;
use std::ops::Deref;

use crate::secret::SecretHash;
use crate::uri::MAX_URI_LEN;

/// Why a value is not the protocol value it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("is empty")]
    Empty,
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    #[error("contains a character its syntax does not allow")]
    Character,
}

/// Longest `client_id`: a client ID metadata document's URL is one, so a URI's bound.
pub const MAX_CLIENT_ID_LEN: usize = MAX_URI_LEN;
/// Longest code, refresh token, client secret or token presented for revocation or introspection:
/// ours are under 1 KiB (a JWT with a few audiences), and nothing longer is worth hashing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `state`: clients carry their own data in it, but not kilobytes of it.
pub const MAX_STATE_LEN: usize = 2048;
/// Longest username and short enumerated value (`token_type_hint`, `prompt`, …).
pub const MAX_NAME_LEN: usize = 256;
/// Longest password we spend argon2 on.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The bytes of `b64token` (RFC 6750 §2.1) before the padding: `ALPHA / DIGIT / "-" / "." / "_" /
/// "~" / "+" / "/"`. A table: the gateway checks every request's token, every byte of a ~600-byte JWT.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    table
};

/// `b64token` of RFC 6750 §2.1, the syntax of a bearer token in `Authorization`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. Length is the caller's bound.
pub fn is_b64token(token: &[u8]) -> bool {
    let body = token.iter().rposition(|b| *b != b'=').map_or(0, |last| last + 1);
    body > 0 && token[..body].iter().all(|b| B64TOKEN[usize::from(*b)])
}

/// RFC 6749 Appendix A: `VSCHAR = %x20-7E`.
pub fn is_vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// `1*VSCHAR` of at most `max` bytes: the syntax of `client_id`, `state`, `code`,
/// `refresh_token`, `client_secret` and `access_token` (RFC 6749 Appendix A.1, A.5, A.11–A.13, A.17).
pub fn vschar(raw: &str, max: usize) -> Result<&str, Malformed> {
    if raw.is_empty() {
        return Err(Malformed::Empty);
    }
    if raw.len() > max {
        return Err(Malformed::TooLong(max));
    }
    if raw.bytes().all(is_vschar) { Ok(raw) } else { Err(Malformed::Character) }
}

/// Text a person chose (a username, a client name): any Unicode Postgres can hold and a page can
/// show, i.e. no control character (which includes NUL) and no U+FFFD, the mark of a decoder that
/// met invalid UTF-8; at most `max` bytes.
pub fn text(raw: &str, max: usize) -> Result<&str, Malformed> {
    if raw.is_empty() {
        return Err(Malformed::Empty);
    }
    if raw.len() > max {
        return Err(Malformed::TooLong(max));
    }
    if raw.chars().any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER) {
        return Err(Malformed::Character);
    }
    Ok(raw)
}

/// A client identifier (RFC 6749 §2.2, Appendix A.1: `client-id = *VSCHAR`, here non-empty).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, Malformed> {
        vschar(raw, MAX_CLIENT_ID_LEN).map(|s| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ClientId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret the client presents (a code, a refresh token, a client secret, a token to revoke or
/// introspect): `1*VSCHAR` within [`MAX_TOKEN_LEN`]. Only ever hashed or verified, never stored
/// as given; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedSecret(String);

impl PresentedSecret {
    pub fn parse(raw: &str) -> Result<Self, Malformed> {
        vschar(raw, MAX_TOKEN_LEN).map(|s| Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for PresentedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedSecret(<redacted>)")
    }
}

/// A username as typed into the sign-in form: see [`text`], within [`MAX_NAME_LEN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Malformed> {
        text(raw, MAX_NAME_LEN).map(|s| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: any characters (NIST SP 800-63B §5.1.1.2), within [`MAX_PASSWORD_LEN`].
/// It is only ever given to argon2, never to SQL; `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Malformed> {
        match raw.len() {
            0 => Err(Malformed::Empty),
            n if n > MAX_PASSWORD_LEN => Err(Malformed::TooLong(MAX_PASSWORD_LEN)),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Whether a JSON value holds a string (a member name or a value, at any depth) Postgres `jsonb`
/// cannot store: one with U+0000 in it.
pub fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(members) => members.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vschar_bounds_and_characters() {
        assert_eq!(vschar("a b~", 10), Ok("a b~"));
        assert_eq!(vschar("", 10), Err(Malformed::Empty));
        assert_eq!(vschar("abc", 2), Err(Malformed::TooLong(2)));
        for bad in ["a\0b", "a\tb", "a\r\nb", "caf\u{e9}", "\u{1f600}", "\u{fffd}", "a\u{7f}"] {
            assert_eq!(vschar(bad, 100), Err(Malformed::Character), "{bad:?}");
        }
    }

    #[test]
    fn client_ids() {
        assert_eq!(ClientId::parse("0193a2b4-5c6d").map(|c| c.to_string()).as_deref(), Ok("0193a2b4-5c6d"));
        assert!(ClientId::parse("https://app.example/client.json").is_ok());
        assert_eq!(ClientId::parse("\0"), Err(Malformed::Character));
        assert_eq!(ClientId::parse(&"a".repeat(MAX_CLIENT_ID_LEN + 1)), Err(Malformed::TooLong(MAX_CLIENT_ID_LEN)));
    }

    #[test]
    fn text_keeps_unicode_refuses_controls() {
        assert_eq!(text("Zo\u{eb} \u{1f600} \u{65e5}\u{672c}", 100), Ok("Zo\u{eb} \u{1f600} \u{65e5}\u{672c}"));
        for bad in ["a\0", "a\nb", "\u{85}", "\u{fffd}"] {
            assert_eq!(text(bad, 100), Err(Malformed::Character), "{bad:?}");
        }
        assert_eq!(Username::parse(&"\u{e9}".repeat(129)), Err(Malformed::TooLong(MAX_NAME_LEN)));
    }

    #[test]
    fn secrets_never_debug() {
        let s = PresentedSecret::parse("sprt_abc").expect("valid");
        assert!(!format!("{s:?}").contains("abc"));
        assert_eq!(s.hash(), SecretHash::of("sprt_abc"));
        let p = Password::parse("hunter2\0").expect("any characters");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(Password::parse("").map(|_| ()), Err(Malformed::Empty));
    }

    #[test]
    fn json_nul_anywhere() {
        assert!(!json_has_nul(&serde_json::json!({"keys": [{"kty": "EC", "n": 1}]})));
        assert!(json_has_nul(&serde_json::json!({"keys": [{"kty": "E\u{0}C"}]})));
        assert!(json_has_nul(&serde_json::json!({"keys": [], "a\u{0}": true})));
        assert!(json_has_nul(&serde_json::json!(["\u{0}"])));
    }
}
