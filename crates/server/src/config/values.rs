//! The value types of settings that are more than a string or a number: each is parsed when the
//! settings are deserialised, so a wrong value stops the process at load with the key's name and
//! nothing downstream checks it again.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// An absolute `http` or `https` URL with a host: where a service or an upstream is reached.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl(Url);

impl HttpUrl {
    /// The error does not repeat the value: a URL may carry credentials.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("not an http(s) URL".to_owned());
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL without its trailing slash, to append a path to.
    pub fn base(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<HttpUrl> for String {
    fn from(u: HttpUrl) -> String {
        u.0.into()
    }
}

/// An address or a CIDR network (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`): a caller trusted
/// for something it sends. A bare address is that address alone (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedNet(ipnet::IpNet);

impl TrustedNet {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(net) = raw.parse::<ipnet::IpNet>() {
            // the network's own address: `10.1.2.3/8` means 10.0.0.0/8
            return Ok(Self(net.trunc()));
        }
        raw.parse::<std::net::IpAddr>()
            .map(|ip| Self(ip.into()))
            .map_err(|_| format!("invalid network {raw:?}: an IP address or a CIDR network such as 10.0.0.0/8"))
    }

    /// Whether `ip` lies in it; an IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, what a
    /// dual-stack socket reports) counts as the IPv4 address.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl TryFrom<String> for TrustedNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TrustedNet> for String {
    fn from(n: TrustedNet) -> String {
        n.0.to_string()
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `keys.encryption_key`: the AES-256-GCM key that seals signing keys at rest, written as base64
/// of its 32 bytes. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn parse(base64: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(base64.trim()).map_err(|_| "not base64".to_owned())?;
        let key = <[u8; 32]>::try_from(bytes).map_err(|_| "must decode to exactly 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64 form it is written in (to keep it in a file).
    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl TryFrom<String> for EncryptionKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EncryptionKey> for String {
    fn from(k: EncryptionKey) -> String {
        k.encode()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(protocol::redact::REDACTED)
    }
}

/// A secret in the configuration (an upstream API key, a header value): the value itself, or
/// `{ env = "NAME" }` to read it from the environment when the settings load, so that the file
/// holds no secret. `Debug` and `Serialize` never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretSource")]
pub struct ConfigSecret(protocol::redact::SecretString);

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Value(String),
    Env { env: String },
}

impl TryFrom<SecretSource> for ConfigSecret {
    type Error = String;
    fn try_from(source: SecretSource) -> Result<Self, Self::Error> {
        match source {
            SecretSource::Value(v) => Ok(Self(v.into())),
            SecretSource::Env { env } => match std::env::var(&env) {
                Ok(v) => Ok(Self(v.into())),
                Err(_) => Err(format!("the environment variable {env} is not set (or not UTF-8)")),
            },
        }
    }
}

impl ConfigSecret {
    pub fn new(value: impl Into<protocol::redact::SecretString>) -> Self {
        Self(value.into())
    }

    pub fn secret(&self) -> &protocol::redact::SecretString {
        &self.0
    }
}

impl Serialize for ConfigSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(protocol::redact::REDACTED)
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(protocol::redact::REDACTED)
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A duration written as a whole number of one unit: the form every `*_secs` and `*_ms` key has
/// always had, as a TOML integer or an environment variable's digits.
struct Whole {
    unit: &'static str,
    of: fn(u64) -> Duration,
}

impl Visitor<'_> for Whole {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number of {}", self.unit)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Ok((self.of)(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        u64::try_from(n).map(self.of).map_err(|_| {
            E::custom(format_args!("invalid duration {n}: a whole number of {} (not negative)", self.unit))
        })
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
        Err(E::custom(format_args!("invalid duration {n}: a whole number of {}", self.unit)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        match s.trim().parse::<u64>() {
            Ok(n) => Ok((self.of)(n)),
            Err(_) => Err(E::custom(format_args!("invalid duration {s:?}: a whole number of {}", self.unit))),
        }
    }
}

/// `#[serde(with = "secs")]`: a `Duration` written in whole seconds.
pub mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Whole { unit: "seconds", of: Duration::from_secs })
    }
}

/// `#[serde(with = "millis")]`: a `Duration` written in whole milliseconds.
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Whole { unit: "milliseconds", of: Duration::from_millis })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct T {
        #[serde(with = "secs")]
        s: Duration,
        #[serde(with = "millis")]
        ms: Duration,
    }

    #[test]
    fn durations_round_trip_in_their_unit() {
        let t: T = serde_json::from_str(r#"{"s": 900, "ms": "250"}"#).expect("parses");
        assert_eq!(t, T { s: Duration::from_secs(900), ms: Duration::from_millis(250) });
        assert_eq!(serde_json::to_string(&t).expect("json"), r#"{"s":900,"ms":250}"#);
        for bad in [r#"{"s": -1, "ms": 1}"#, r#"{"s": 1.5, "ms": 1}"#, r#"{"s": "15 minutes", "ms": 1}"#] {
            let e = serde_json::from_str::<T>(bad).expect_err(bad).to_string();
            assert!(e.starts_with("invalid duration") && e.contains("whole number of seconds"), "{e}");
        }
    }

    #[test]
    fn encryption_keys_are_32_bytes_of_base64_and_never_shown() {
        let key = EncryptionKey::parse(&STANDARD.encode([7u8; 32])).expect("key");
        assert_eq!(key.bytes(), &[7u8; 32]);
        assert_eq!(EncryptionKey::parse(&key.encode()).expect("again"), key);
        assert_eq!(format!("{key:?}"), protocol::redact::REDACTED);
        assert_eq!(EncryptionKey::parse("c2hvcnQ=").err().as_deref(), Some("must decode to exactly 32 bytes"));
        assert_eq!(EncryptionKey::parse("not base64!").err().as_deref(), Some("not base64"));
    }

    #[test]
    fn config_secrets_from_the_value_or_the_environment_never_shown() {
        #[derive(Debug, Deserialize, Serialize)]
        struct T {
            a: ConfigSecret,
        }
        let t: T = serde_json::from_str(r#"{"a": "s3cret"}"#).expect("value");
        assert_eq!(t.a.secret().expose(), "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&t).expect("json").contains("s3cret"));
        // PATH is set wherever tests run
        let t: T = serde_json::from_str(r#"{"a": {"env": "PATH"}}"#).expect("env");
        assert_eq!(t.a.secret().expose(), std::env::var("PATH").expect("PATH"));
        let e = serde_json::from_str::<T>(r#"{"a": {"env": "SALLYPORT_TEST_UNSET_VARIABLE"}}"#).expect_err("unset");
        assert!(e.to_string().contains("SALLYPORT_TEST_UNSET_VARIABLE is not set"), "{e}");
    }

    #[test]
    fn http_urls_only() {
        assert_eq!(HttpUrl::parse("http://127.0.0.1:8081").expect("url").base(), "http://127.0.0.1:8081");
        assert_eq!(HttpUrl::parse("https://up.example/mcp/").expect("url").base(), "https://up.example/mcp");
        for bad in ["127.0.0.1:8081", "ftp://up.example", "file:///etc/passwd", "not a url", "unix:/run/x"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
