//! Revocation checks through the token service's RFC 7662 introspection, authenticated as the
//! gateway's own client. `cached` remembers each answer for a while; `strict` asks every time.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::worker_client::WorkerClient;

/// Where and as whom to introspect.
#[derive(Clone)]
pub struct IntrospectionConfig {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig").field("url", &self.url).field("client_id", &self.client_id).finish()
    }
}

/// The introspection client.
#[derive(Debug, Clone)]
pub struct Introspector {
    config: IntrospectionConfig,
    /// `Basic` credentials, form-urlencoded inside as RFC 6749 §2.3.1 requires.
    authorization: String,
    client: WorkerClient,
}

impl Introspector {
    pub fn new(config: IntrospectionConfig, client: WorkerClient) -> Self {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(&config.client_id), encode(&config.client_secret));
        let authorization = format!("Basic {}", STANDARD.encode(pair));
        Self { config, authorization, client }
    }

    /// Whether the token service still considers the token active. `Err` when it cannot say
    /// (unreachable, refusing the gateway's credentials, answering garbage): the caller fails closed.
    pub async fn is_active(&self, token: &str) -> Result<bool, String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            active: bool,
        }
        let client = self.client.get().map_err(|e| e.without_url().to_string())?;
        // the check is part of the request's trace (nothing is written with traces off)
        let mut trace = reqwest::header::HeaderMap::new();
        server::telemetry::propagation::inject(&tracing::Span::current(), &mut trace);
        let response = client
            .post(&self.config.url)
            .headers(trace)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("introspection answered {}", response.status()));
        }
        let answer: Answer = response.json().await.map_err(|e| format!("introspection answer: {}", e.without_url()))?;
        Ok(answer.active)
    }
}

#[cfg(test)]
mod tests {
    use super::IntrospectionConfig;

    #[test]
    fn debug_prints_no_secret() {
        let config = IntrospectionConfig {
            url: "http://token/oauth2/introspect".into(),
            client_id: "gateway".into(),
            client_secret: "gateway-secret-1".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("gateway-secret-1") && shown.contains("gateway"), "{shown}");
    }
}
