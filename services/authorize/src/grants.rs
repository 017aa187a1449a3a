//! Remembered consent: a request skips the consent page when every resource it names has a
//! remembered grant that covers every scope it asks for.

use domain::store::consents::ConsentRow;

use crate::request::Validated;

/// Whether the remembered grants cover the request.
pub fn covers(remembered: &[ConsentRow], request: &Validated) -> bool {
    request.resources.iter().all(|r| {
        remembered.iter().any(|c| {
            c.resource == r.id.as_str()
                && c.client_id == request.target.client.client_id
                && request.scope.iter().all(|s| c.scope_tokens().any(|t| t == s))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use domain::client::{Client, ClientMetadataRequest, ClientSource, MetadataPolicy};
    use domain::registry::Resource;
    use domain::scope::Scopes;
    use domain::uri::{RedirectUri, ResourceUri};
    use uuid::Uuid;

    use crate::params::AuthzParams;
    use crate::request::{Prompt, Target};

    fn request(resources: &[&str], scope: &str) -> Validated {
        let policy = MetadataPolicy {
            max_redirect_uris: 1,
            default_scopes: Scopes::default(),
            allowed_scopes: Scopes::default(),
        };
        let metadata = ClientMetadataRequest {
            redirect_uris: Some(vec!["https://a.example/cb".into()]),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        }
        .validate(&policy)
        .expect("valid");
        let client = Client {
            client_id: "c".into(),
            source: ClientSource::Admin,
            metadata,
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: chrono::Utc::now(),
        };
        Validated {
            target: Target {
                client: Arc::new(client),
                redirect: RedirectUri::parse("https://a.example/cb").expect("uri"),
                redirect_sent: false,
                state: None,
            },
            challenge: String::new(),
            resources: resources
                .iter()
                .map(|r| Resource {
                    id: ResourceUri::parse(r).expect("uri"),
                    name: (*r).into(),
                    scopes: Scopes::default(),
                    documentation: None,
                })
                .collect(),
            scope: Scopes::parse(scope).expect("scope"),
            prompt: Prompt::default(),
            params: AuthzParams::default(),
        }
    }

    fn grant(resource: &str, scopes: &[&str]) -> ConsentRow {
        ConsentRow {
            user_id: Uuid::nil(),
            client_id: "c".into(),
            resource: resource.into(),
            scopes: scopes.iter().map(|s| Some((*s).to_owned())).collect(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn covered_until_the_scopes_grow() {
        let g = [grant("https://r.example", &["a", "b"])];
        assert!(covers(&g, &request(&["https://r.example"], "a b")));
        assert!(covers(&g, &request(&["https://r.example"], "a")));
        assert!(covers(&g, &request(&["https://r.example"], "")));
        assert!(!covers(&g, &request(&["https://r.example"], "a c")), "a new scope");
        assert!(!covers(&g, &request(&["https://r.example", "https://s.example"], "a")), "a new resource");
        assert!(!covers(&[], &request(&["https://r.example"], "")), "nothing remembered");
    }
}
