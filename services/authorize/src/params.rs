//! The parameters of an authorization request as sent (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2),
//! from a query string or a form body, and their canonical encoding, which the login and consent
//! forms carry so that every step validates the same request again.

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
/// parameters are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzParams {
    pub client_id: Option<String>,
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
            let slot = p.slot(known);
            if slot.is_some() {
                if !p.repeated.contains(&known) {
                    p.repeated.push(known);
                }
                continue;
            }
            *p.slot(known) = Some(value.into_owned());
        }
        p
    }

    fn slot(&mut self, name: &str) -> &mut Option<String> {
        match name {
            "client_id" => &mut self.client_id,
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
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("prompt", &self.prompt),
            ("response_mode", &self.response_mode),
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
