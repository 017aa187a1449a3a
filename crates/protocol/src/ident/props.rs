//! Property tests of the parsers of the protocol types: every parser accepts exactly its RFC
//! syntax, never panics on any input, and what it accepts survives a round trip.

use proptest::prelude::*;

use super::*;
use crate::pkce::{self, CodeVerifier, PkceError};
use crate::scope::{MAX_SCOPE_LEN, Scopes};
use crate::uri::{RedirectUri, ResourceUri};

/// Strings of anything: ASCII, controls, NUL, DEL, Latin-1, emoji, U+FFFD.
fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range(' ', '~'),
            1 => prop::char::range('\0', '\x1f'),
            1 => Just('\x7f'),
            1 => prop::char::range('\u{80}', '\u{10ffff}'),
            1 => Just(char::REPLACEMENT_CHARACTER),
        ],
        0..64,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A character no ASCII protocol value may hold.
fn forbidden_char() -> impl Strategy<Value = char> {
    prop_oneof![prop::char::range('\0', '\x1f'), Just('\x7f'), prop::char::range('\u{80}', '\u{10ffff}'),]
}

/// A control character (which includes NUL): no person-chosen text may hold one.
fn control_char() -> impl Strategy<Value = char> {
    prop_oneof![prop::char::range('\0', '\x1f'), prop::char::range('\x7f', '\u{9f}')]
}

fn vschar_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range(' ', '~'), 1..=max).prop_map(|cs| cs.into_iter().collect())
}

/// RFC 6749 §3.3: `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
fn scope_token() -> impl Strategy<Value = String> {
    "[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,20}"
}

proptest! {
    #[test]
    fn client_id_accepts_exactly_vschar(raw in any_text()) {
        let expected = !raw.is_empty() && raw.len() <= MAX_CLIENT_ID_LEN && raw.bytes().all(is_vschar);
        let parsed = ClientId::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), expected);
        if let Ok(id) = parsed {
            prop_assert_eq!(id.as_str(), raw.as_str());
        }
    }

    #[test]
    fn one_forbidden_character_anywhere_refuses(prefix in vschar_string(30), bad in forbidden_char(), suffix in vschar_string(30)) {
        let raw = format!("{prefix}{bad}{suffix}");
        prop_assert_eq!(ClientId::parse(&raw), Err(Malformed::Character));
        prop_assert_eq!(PresentedSecret::parse(&raw).map(|_| ()), Err(Malformed::Character));
        prop_assert_eq!(vschar(&raw, MAX_STATE_LEN), Err(Malformed::Character));
    }

    #[test]
    fn presented_secrets_keep_what_was_sent(raw in vschar_string(200)) {
        let s = PresentedSecret::parse(&raw).expect("VSCHAR");
        prop_assert_eq!(s.expose(), raw.as_str());
        prop_assert_eq!(s.hash(), SecretHash::of(&raw));
        prop_assert_eq!(format!("{:?}", s), "PresentedSecret(<redacted>)");
    }

    #[test]
    fn length_bounds_hold(extra in 1usize..64) {
        let too_long = "a".repeat(MAX_TOKEN_LEN + extra);
        prop_assert_eq!(PresentedSecret::parse(&too_long).map(|_| ()), Err(Malformed::TooLong(MAX_TOKEN_LEN)));
        prop_assert!(PresentedSecret::parse(&too_long[..MAX_TOKEN_LEN]).is_ok());
    }

    #[test]
    fn usernames_keep_unicode_refuse_controls(name in "\\PC{1,40}", at in 0usize..40, bad in control_char()) {
        prop_assume!(!name.contains(char::REPLACEMENT_CHARACTER));
        let parsed = Username::parse(&name).expect("printable Unicode");
        prop_assert_eq!(parsed.as_str(), name.as_str());
        let mut broken: Vec<char> = name.chars().collect();
        broken.insert(at.min(broken.len()), bad);
        let broken: String = broken.into_iter().collect();
        prop_assert_eq!(Username::parse(&broken), Err(Malformed::Character));
    }

    #[test]
    fn text_never_holds_what_postgres_cannot(raw in any_text()) {
        if let Ok(t) = text(&raw, MAX_NAME_LEN) {
            prop_assert!(!t.contains('\0') && !t.contains(char::REPLACEMENT_CHARACTER));
        }
    }

    #[test]
    fn scopes_round_trip(tokens in prop::collection::vec(scope_token(), 0..8)) {
        let joined = tokens.join(" ");
        let parsed = Scopes::parse(&joined).expect("NQCHAR tokens");
        prop_assert_eq!(Scopes::parse(&parsed.to_string()).expect("its own form"), parsed.clone());
        for t in &tokens {
            prop_assert!(parsed.contains(t));
        }
    }

    #[test]
    fn scopes_refuse_what_nqchar_forbids(raw in any_text()) {
        let allowed = |b: u8| b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        let expected = raw.len() <= MAX_SCOPE_LEN && raw.bytes().all(allowed);
        prop_assert_eq!(Scopes::parse(&raw).is_ok(), expected);
    }

    #[test]
    fn code_verifiers_are_43_to_128_unreserved(raw in "[A-Za-z0-9._~-]{0,140}") {
        let expected = (43..=128).contains(&raw.len());
        let parsed = CodeVerifier::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), expected);
        if let Ok(v) = parsed {
            prop_assert_eq!(pkce::verify(Some(v.as_str()), &pkce::s256(&raw)), Ok(()));
        }
    }

    #[test]
    fn code_verifiers_refuse_other_bytes(raw in any_text()) {
        prop_assume!(!raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        prop_assert!(matches!(
            CodeVerifier::parse(&raw),
            Err(PkceError::MalformedVerifier | PkceError::MissingVerifier)
        ));
    }

    #[test]
    fn uris_never_panic_and_refuse_controls(raw in any_text(), bad in control_char()) {
        let _ = RedirectUri::parse(&raw);
        let _ = ResourceUri::parse(&raw);
        let with_control = format!("https://a.example/{bad}{raw}");
        prop_assert!(RedirectUri::parse(&with_control).is_err());
        prop_assert!(ResourceUri::parse(&with_control).is_err());
    }

    #[test]
    fn resource_normalisation_is_idempotent(host in "[a-z]{1,10}(\\.[a-z]{1,5}){0,2}", path in "(/[A-Za-z0-9._~-]{0,8}){0,3}") {
        let first = ResourceUri::parse(&format!("https://{host}{path}")).expect("valid");
        prop_assert_eq!(ResourceUri::parse(first.as_str()).expect("still valid"), first);
    }

    #[test]
    fn json_nul_found_at_any_depth(key in "[a-z]{1,5}", depth in 0usize..5, in_key in any::<bool>()) {
        let leaf = if in_key { serde_json::json!({ format!("{key}\u{0}"): 1 }) } else { serde_json::json!(format!("{key}\u{0}")) };
        let mut v = leaf;
        for _ in 0..depth {
            v = serde_json::json!({ "k": [v] });
        }
        prop_assert!(json_has_nul(&v));
    }
}
