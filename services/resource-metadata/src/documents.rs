//! The metadata documents themselves, serialised once with their ETags. No member is ever `null`.

use bytes::Bytes;
use serde::Serialize;
use server::registry::Resource;
use sha2::{Digest, Sha256};

use crate::Config;

/// RFC 8414 §2 authorization-server metadata.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub scopes_supported: Vec<String>,
    pub response_types_supported: [&'static str; 1],
    pub response_modes_supported: [&'static str; 1],
    pub grant_types_supported: Vec<&'static str>,
    /// draft-ietf-oauth-identity-assertion-authz-grant §6.2: the ID-JAG profile, when an identity
    /// provider is trusted. Which ones is never disclosed (§7.4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_grant_profiles_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: [&'static str; 3],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 3],
    /// Introspection is for resource servers, which always authenticate.
    pub introspection_endpoint_auth_methods_supported: [&'static str; 2],
    pub code_challenge_methods_supported: [&'static str; 1],
    /// MCP authorization 2025-11-25: client ID metadata documents.
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub service_documentation: Option<String>,
}

impl AuthorizationServerMetadata {
    pub fn new(config: &Config, resources: &[Resource]) -> Self {
        let mut scopes: Vec<String> = resources.iter().flat_map(|r| r.scopes.iter().map(str::to_owned)).collect();
        scopes.sort();
        scopes.dedup();
        Self {
            issuer: config.issuer.to_string(),
            authorization_endpoint: config.issuer.endpoint("/oauth2/authorize"),
            token_endpoint: config.issuer.endpoint("/oauth2/token"),
            registration_endpoint: config.issuer.endpoint("/oauth2/register"),
            revocation_endpoint: config.issuer.endpoint("/oauth2/revoke"),
            introspection_endpoint: config.issuer.endpoint("/oauth2/introspect"),
            jwks_uri: config.issuer.endpoint("/oauth2/jwks"),
            scopes_supported: scopes,
            response_types_supported: ["code"],
            response_modes_supported: ["query"],
            grant_types_supported: if config.jwt_bearer {
                vec!["authorization_code", "refresh_token", "client_credentials", protocol::idjag::JWT_BEARER]
            } else {
                vec!["authorization_code", "refresh_token", "client_credentials"]
            },
            authorization_grant_profiles_supported: if config.jwt_bearer {
                vec![protocol::idjag::GRANT_PROFILE]
            } else {
                Vec::new()
            },
            token_endpoint_auth_methods_supported: ["none", "client_secret_basic", "client_secret_post"],
            revocation_endpoint_auth_methods_supported: ["none", "client_secret_basic", "client_secret_post"],
            introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
            code_challenge_methods_supported: ["S256"],
            client_id_metadata_document_supported: config.metadata_documents,
            authorization_response_iss_parameter_supported: true,
            service_documentation: config.service_documentation.clone(),
        }
    }
}

/// RFC 9728 §2 protected-resource metadata.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    /// Byte-identical to the AS metadata `issuer`: clients compare them as strings.
    pub authorization_servers: [String; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: [&'static str; 1],
    pub resource_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    pub fn new(config: &Config, resource: &Resource) -> Self {
        Self {
            resource: resource.id.as_str().to_owned(),
            authorization_servers: [config.issuer.to_string()],
            // SEP-2207: `offline_access` is the authorization server's business, never a resource's
            scopes_supported: resource.scopes.iter().filter(|s| *s != "offline_access").map(str::to_owned).collect(),
            bearer_methods_supported: ["header"],
            resource_name: resource.name.clone(),
            resource_documentation: resource.documentation.clone(),
        }
    }
}

/// A serialised document and its strong ETag.
#[derive(Debug, Clone)]
pub struct Document {
    pub body: Bytes,
    pub etag: String,
}

impl Document {
    pub fn of(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        let body = serde_json::to_vec(value)?;
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
        Ok(Self { body: Bytes::from(body), etag })
    }
}

/// Every document, serialised.
#[derive(Debug)]
pub struct Documents {
    pub authorization_server: Document,
    /// One per resource, with the resource it describes.
    pub resources: Vec<(Resource, Document)>,
}

impl Documents {
    pub fn build(config: &Config, resources: &[Resource]) -> Result<Self, serde_json::Error> {
        Ok(Self {
            authorization_server: Document::of(&AuthorizationServerMetadata::new(config, resources))?,
            resources: resources
                .iter()
                .map(|r| Ok((r.clone(), Document::of(&ProtectedResourceMetadata::new(config, r))?)))
                .collect::<Result<_, serde_json::Error>>()?,
        })
    }

    /// RFC 9728 §3.1: the resource whose path follows the well-known segment. When several
    /// resources share a path on different origins, the request's host picks one.
    pub fn resource_by_path(&self, path: &str, host: Option<&str>) -> Option<&Document> {
        let path = path.trim_end_matches('/');
        let mut candidates = self.resources.iter().filter(|(r, _)| r.id.path() == path);
        let first = candidates.next()?;
        let rest: Vec<_> = candidates.collect();
        if rest.is_empty() {
            return Some(&first.1);
        }
        let host = host?;
        std::iter::once(first).chain(rest).find(|(r, _)| authority(&r.id.origin()) == host).map(|(_, d)| d)
    }

    /// The root document: a resource at an origin root, else the only resource.
    pub fn root_resource(&self, host: Option<&str>) -> Option<&Document> {
        let only = match self.resources.as_slice() {
            [(_, only)] => Some(only),
            _ => None,
        };
        self.resource_by_path("", host).or(only)
    }
}

fn authority(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::config::ResourceSettings;

    #[test]
    fn offline_access_is_never_a_resource_scope() {
        let resource = Resource::from_settings(&ResourceSettings {
            resource: "https://a.example/mcp".into(),
            name: "MCP".into(),
            scopes: vec!["mcp".into(), "offline_access".into(), "mcp:admin".into()],
            documentation: None,
            accept_machine_tokens: false,
        })
        .expect("resource");
        let prm = ProtectedResourceMetadata::new(&Config::from(&server::Settings::default()), &resource);
        assert_eq!(prm.scopes_supported, vec!["mcp", "mcp:admin"]);
    }
}
