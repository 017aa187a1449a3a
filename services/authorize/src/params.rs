//! The parameters of an authorization request as sent (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2),
//! from a query string or a form body, and their canonical encoding, which the login and consent
//! forms carry so that every step validates the same request again.

use protocol::ident::{self, ClientId, MAX_NAME_LEN, MAX_STATE_LEN};
use protocol::uri::MAX_URI_LEN;
use url::form_urlencoded;

/// Single-valued parameters; RFC 6749 §3.1: they must not be sent more than once.
const SINGLE: [&str; 9] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "response_mode",
];

/// An authorization request's parameters. Empty values count as absent (RFC 6749 §3.1); unknown
/// parameters are ignored. A value that breaks its parameter's syntax is not kept (so it reaches
/// no query, page or redirect) but named in `malformed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzParams {
    pub client_id: Option<ClientId>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub response_mode: Option<String>,
    /// RFC 8707 §2: `resource` may be repeated.
    pub resources: Vec<String>,
    /// A request object (`request` or `request_uri`, RFC 9101) was sent; we support none.
    pub request_object: bool,
    /// Single-valued parameters that were sent more than once.
    pub repeated: Vec<&'static str>,
    /// Single-valued parameters whose value breaks their syntax (see [`syntax_ok`]).
    pub malformed: Vec<&'static str>,
}

/// The syntax a parameter's value must have before anything looks at it: `client_id` and `state`
/// are `1*VSCHAR` (RFC 6749 Appendix A.1, A.5), `redirect_uri` a URI (no control characters or
/// spaces, RFC 3986), and the enumerated ones short `VSCHAR` strings. `scope` is left to its own
/// parser, whose refusal is `invalid_scope` (RFC 6749 §4.1.2.1); `resource` likewise (RFC 8707 §2).
fn syntax_ok(name: &str, value: &str) -> bool {
    match name {
        "scope" => true,
        "client_id" => ClientId::parse(value).is_ok(),
        "redirect_uri" => ident::vschar(value, MAX_URI_LEN).is_ok_and(|v| !v.contains(' ')),
        "state" => ident::vschar(value, MAX_STATE_LEN).is_ok(),
        _ => ident::vschar(value, MAX_NAME_LEN).is_ok(),
    }
}

impl AuthzParams {
    /// Parses `application/x-www-form-urlencoded` bytes (a query string or a form body).
    pub fn parse(encoded: &[u8]) -> Self {
        let mut p = Self::default();
        for (name, value) in form_urlencoded::parse(encoded) {
            if value.is_empty() {
                continue;
            }
            if name == "resource" {
                p.resources.push(value.into_owned());
                continue;
            }
            if name == "request" || name == "request_uri" {
                p.request_object = true;
                continue;
            }
            let Some(&known) = SINGLE.iter().find(|k| **k == name) else { continue };
            let seen = if known == "client_id" { p.client_id.is_some() } else { p.slot(known).is_some() };
            if seen || p.malformed.contains(&known) {
                if !p.repeated.contains(&known) {
                    p.repeated.push(known);
                }
                continue;
            }
            if !syntax_ok(known, &value) {
                p.malformed.push(known);
                continue;
            }
            match known {
                "client_id" => p.client_id = ClientId::parse(&value).ok(),
                _ => *p.slot(known) = Some(value.into_owned()),
            }
        }
        p
    }

    fn slot(&mut self, name: &str) -> &mut Option<String> {
        match name {
            "redirect_uri" => &mut self.redirect_uri,
            "response_type" => &mut self.response_type,
            "scope" => &mut self.scope,
            "state" => &mut self.state,
            "code_challenge" => &mut self.code_challenge,
            "code_challenge_method" => &mut self.code_challenge_method,
            "prompt" => &mut self.prompt,
            _ => &mut self.response_mode,
        }
    }

    /// The canonical form encoding: known parameters in a fixed order, `resource` repeated.
    pub fn encode(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        let singles = [
            ("response_type", self.response_type.as_deref()),
            ("client_id", self.client_id.as_deref()),
            ("redirect_uri", self.redirect_uri.as_deref()),
            ("scope", self.scope.as_deref()),
            ("state", self.state.as_deref()),
            ("code_challenge", self.code_challenge.as_deref()),
            ("code_challenge_method", self.code_challenge_method.as_deref()),
            ("prompt", self.prompt.as_deref()),
            ("response_mode", self.response_mode.as_deref()),
        ];
        for (name, value) in singles {
            if let Some(v) = value {
                out.append_pair(name, v);
            }
        }
        for r in &self.resources {
            out.append_pair("resource", r);
        }
        out.finish()
    }

    /// The same request without `login` in `prompt`: after the user has just signed in, asking
    /// again would loop.
    pub fn after_login(&self) -> Self {
        let prompt =
            self.prompt.as_deref().map(|p| p.split(' ').filter(|v| *v != "login").collect::<Vec<_>>().join(" "));
        Self { prompt: prompt.filter(|p| !p.trim().is_empty()), ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_repeats() {
        let p = AuthzParams::parse(
            b"response_type=code&client_id=abc&resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&state=s%20t&x=1&scope=",
        );
        assert_eq!(p.client_id.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("s t"));
        assert_eq!(p.resources, vec!["https://a", "https://b"]);
        assert_eq!(p.scope, None, "an empty value is absent (RFC 6749 §3.1)");
        assert!(p.repeated.is_empty());
        let r = AuthzParams::parse(b"client_id=a&client_id=b&state=1&state=2&state=3");
        assert_eq!(r.client_id.as_deref(), Some("a"));
        assert_eq!(r.repeated, vec!["client_id", "state"]);
        assert!(AuthzParams::parse(b"request_uri=urn:x").request_object);
    }

    #[test]
    fn malformed_values_are_named_not_kept() {
        let p = AuthzParams::parse(b"client_id=%00&state=a%0Ab&redirect_uri=https%3A%2F%2Fa%20b&prompt=%FF&scope=%00");
        assert_eq!(p.client_id, None);
        assert_eq!((p.state.as_deref(), p.redirect_uri.as_deref(), p.prompt.as_deref()), (None, None, None));
        assert_eq!(p.malformed, vec!["client_id", "state", "redirect_uri", "prompt"]);
        assert_eq!(p.scope.as_deref(), Some("\0"), "scope is refused by its own parser, as invalid_scope");
        let long = format!("client_id={}", "a".repeat(9000));
        assert_eq!(AuthzParams::parse(long.as_bytes()).malformed, vec!["client_id"]);
        assert_eq!(AuthzParams::parse("client_id=%C3%28".as_bytes()).malformed, vec!["client_id"]);
        assert_eq!(AuthzParams::parse("state=%F0%9F%98%80".as_bytes()).malformed, vec!["state"], "emoji is no VSCHAR");
        let twice = AuthzParams::parse(b"client_id=%00&client_id=ok");
        assert_eq!(
            (twice.client_id, twice.repeated),
            (None, vec!["client_id"]),
            "a second value never replaces a bad one"
        );
    }

    #[test]
    fn encoding_round_trips() {
        let p = AuthzParams::parse(
            b"client_id=https%3A%2F%2Fapp.example%2Fc.json&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcb&state=%26%3D%2B&resource=r1&resource=r2&prompt=login+consent",
        );
        assert_eq!(AuthzParams::parse(p.encode().as_bytes()), p);
        let after = p.after_login();
        assert_eq!(after.prompt.as_deref(), Some("consent"));
        assert_eq!(AuthzParams::parse(b"prompt=login").after_login().prompt, None);
    }
}
