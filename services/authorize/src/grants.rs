//! Remembered consent: a request skips the consent page when every resource it names has a
//! remembered grant that covers every scope it asks for, and the client's identity is assured
//! enough for a past approval to stand in for the user.

use store::consents::ConsentRow;

use crate::request::Validated;

/// Whether a remembered consent may approve this request without the user. RFC 8252 §8.6: unless
/// the client's identity can be assured, a request SHOULD be handled as if nothing had been
/// approved before. The id of a public client that registered itself is no secret (a client ID
/// metadata document's URL is public by design, and a registered public client's id travels in
/// every authorization request), and a loopback or private-use-scheme redirect reaches whatever
/// program listens there, so such a request proves nothing about who asks: the user decides every
/// time. An https redirect is bound to its host, a confidential client must still prove its secret
/// to redeem the code, and an operator's client is vouched for, so those keep their remembered
/// consent.
pub fn may_remember(request: &Validated) -> bool {
    let client = &request.target.client;
    !(client.source.is_self_registered() && client.is_public())
        || request.target.redirect.as_str().starts_with("https://")
}

/// Whether the remembered grants cover the request.
pub fn covers(remembered: &[ConsentRow], request: &Validated) -> bool {
    request.resources.iter().all(|r| {
        remembered.iter().any(|c| {
            c.resource == r.id && c.client_id == request.target.client.client_id && request.scope.is_subset(&c.scopes)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use protocol::client::{Client, ClientMetadataRequest, ClientSource, MetadataPolicy};
    use protocol::scope::Scopes;
    use protocol::uri::{RedirectUri, ResourceUri};
    use server::registry::Resource;
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
                    accept_machine_tokens: false,
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
            resource: ResourceUri::parse(resource).expect("uri"),
            scopes: Scopes::from_tokens(scopes).expect("scopes"),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_self_registered_public_client_redirecting_locally_is_asked_every_time() {
        let mut r = request(&["https://r.example"], "a");
        assert!(may_remember(&r), "an operator's client");
        let doc_client = |source: ClientSource, redirect: &str, r: &mut Validated| {
            let mut client = Client::clone(&r.target.client);
            client.source = source;
            r.target.client = Arc::new(client);
            r.target.redirect = RedirectUri::parse(redirect).expect("uri");
        };
        doc_client(ClientSource::MetadataDocument, "http://127.0.0.1:4444/callback", &mut r);
        assert!(!may_remember(&r), "loopback: any local program can receive it");
        doc_client(ClientSource::MetadataDocument, "com.example.app:/cb", &mut r);
        assert!(!may_remember(&r), "private-use scheme: any app can claim it");
        doc_client(ClientSource::MetadataDocument, "https://app.example/cb", &mut r);
        assert!(may_remember(&r), "https: bound to its host");
        doc_client(ClientSource::Dynamic, "http://127.0.0.1:4444/callback", &mut r);
        assert!(!may_remember(&r), "a registered public client's id is no secret either");
        doc_client(ClientSource::Dynamic, "com.example.app:/cb", &mut r);
        assert!(!may_remember(&r), "nor with a private-use scheme");
        doc_client(ClientSource::Dynamic, "https://app.example/cb", &mut r);
        assert!(may_remember(&r), "https: bound to its host");
        doc_client(ClientSource::Admin, "http://127.0.0.1:4444/callback", &mut r);
        assert!(may_remember(&r), "an operator's client is vouched for");
        let mut confidential = Client::clone(&r.target.client);
        confidential.source = ClientSource::Dynamic;
        confidential.metadata.token_endpoint_auth_method = protocol::client::AuthMethod::ClientSecretBasic;
        r.target.client = Arc::new(confidential);
        assert!(may_remember(&r), "a confidential client still proves its secret to redeem the code");
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
