//! Secrets out of `Debug`: a value printed with `{:?}` (a log line, a panic, an error report)
//! shows that a secret is there, never what it is.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// What `Debug` prints instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret string a client or operator sent or is sent: serialised and compared as the string,
/// debug-printed as [`REDACTED`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Deref for SecretString {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `Debug` for a serialisable settings struct: its fields as JSON, with the members named in
/// `secrets` replaced by [`REDACTED`] (when set) and database URLs without their password. Going
/// through serde keeps every field in the output, including ones added later, without a
/// hand-kept list that could miss one.
pub fn debug_settings<T: Serialize>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    value: &T,
    secrets: &[&str],
) -> fmt::Result {
    let mut json = serde_json::to_value(value).map_err(|_| fmt::Error)?;
    if let Some(obj) = json.as_object_mut() {
        for key in secrets {
            if let Some(v) = obj.get_mut(*key)
                && !v.is_null()
            {
                *v = serde_json::Value::String(REDACTED.to_owned());
            }
        }
        if let Some(serde_json::Value::String(url)) = obj.get_mut("url") {
            *url = redact_url(url);
        }
    }
    write!(f, "{name} {json}")
}

/// The URL with any password replaced, for messages: the userinfo one and the `password` (or
/// `sslpassword`) query parameter libpq-style URLs may carry.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let secret = |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) { "***".to_owned() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "<unparseable database url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_string_never_debug_prints_its_value() {
        let s = SecretString::from("hunter2-secret");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(&*s, "hunter2-secret");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"hunter2-secret\"");
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        let r = redact_url("postgres://u@h/db?sslmode=require&password=secret&sslpassword=other");
        assert!(!r.contains("secret") && !r.contains("other"), "{r}");
        assert!(r.contains("sslmode=require"), "{r}");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "<unparseable database url>");
    }

    #[test]
    fn registration_bodies_debug_print_no_secret() {
        let body = br#"{"client_id":"c","client_secret":"client-secret-5","redirect_uris":["https://a.example/cb"]}"#;
        let request = crate::client::parse_metadata_json(body).expect("parse");
        assert_eq!(request.client_secret.as_deref(), Some("client-secret-5"));
        let shown = format!("{request:?}");
        assert!(!shown.contains("client-secret-5") && shown.contains("https://a.example/cb"), "{shown}");

        let policy = crate::client::MetadataPolicy {
            max_redirect_uris: 1,
            default_scopes: crate::scope::Scopes::default(),
            allowed_scopes: crate::scope::Scopes::default(),
        };
        let metadata = crate::client::ClientMetadataRequest { client_secret: None, ..request }.validate(&policy);
        let client = crate::client::Client {
            client_id: "c".into(),
            source: crate::client::ClientSource::Dynamic,
            metadata: metadata.expect("valid"),
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: chrono::Utc::now(),
        };
        let mut info = crate::client::ClientInformation::of(&client);
        info.client_secret = Some("issued-secret-6".into());
        info.registration_access_token = Some("registration-token-7".into());
        let shown = format!("{info:?}");
        assert!(!shown.contains("issued-secret-6") && !shown.contains("registration-token-7"), "{shown}");
        let json = serde_json::to_string(&info).expect("json");
        assert!(json.contains("issued-secret-6") && json.contains("registration-token-7"), "sent as is: {json}");
    }
}
