//! The OpenAPI 3.1 document of the authorization server's HTTP interface, assembled from every
//! service's part (each generated from its handlers' request and response types and path
//! annotations). Only this crate sees every service, so it writes the document the metadata
//! service embeds and serves (`services/resource-metadata/openapi.json`); a test fails when that
//! file differs from what the code generates (`SALLYPORT_UPDATE_OPENAPI=1` rewrites it).
//!
//! The interactive pages of the authorize service (sign-in, consent) are HTML for browsers and are
//! not part of it.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;

/// Where the metadata service finds the generated document, from the workspace's root.
pub const EMBEDDED_PATH: &str = "services/resource-metadata/openapi.json";

#[derive(OpenApi)]
#[openapi(info(
    title = "Sallyport authorization server",
    description = "OAuth 2.1 authorization server for MCP servers: authorization-server and protected-resource \
        metadata (RFC 8414, RFC 9728), dynamic client registration and management (RFC 7591, RFC 7592), the token \
        endpoint (authorization_code with PKCE, refresh_token, client_credentials; RFC 8707 resources), revocation \
        (RFC 7009), introspection (RFC 7662), the JWKS, and the health endpoints. Every refusal is an RFC 6749 §5.2 \
        JSON error. Clients authenticate at the token, revocation and introspection endpoints with \
        `client_secret_basic` (the `client_secret_basic` scheme) or `client_secret_post` (`client_id` and \
        `client_secret` in the form body), or as public clients with `client_id` alone.",
    license(name = "Apache-2.0", identifier = "Apache-2.0"),
))]
struct Info;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Info::openapi();
    doc.merge(resource_metadata::MetadataApi::openapi());
    doc.merge(registration::RegistrationApi::openapi());
    doc.merge(token::TokenApi::openapi());
    doc.merge(server::http::HealthApi::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "client_secret_basic",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "RFC 6749 §2.3.1: the client id and secret, each form-urlencoded, as HTTP Basic credentials.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "registration_access_token",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("RFC 7592 §1.2: the registration access token the registration response issued."))
                .build(),
        ),
    );
    components.add_security_scheme(
        "initial_access_token",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "RFC 7591 §3: the operator's initial access token, required only when \
                     `registration.initial_access_token` is configured.",
                ))
                .build(),
        ),
    );
    doc.tags = Some(vec![
        TagBuilder::new().name("metadata").description(Some("Discovery documents (RFC 8414, RFC 9728)")).build(),
        TagBuilder::new()
            .name("registration")
            .description(Some("Dynamic client registration and management (RFC 7591, RFC 7592)"))
            .build(),
        TagBuilder::new()
            .name("token")
            .description(Some("Tokens, revocation (RFC 7009), introspection (RFC 7662) and the JWKS"))
            .build(),
        TagBuilder::new().name("health").description(Some("Liveness and readiness of every process")).build(),
    ]);
    doc
}

/// The document as the metadata service embeds it.
pub fn json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_else(|e| panic!("the OpenAPI document serialises: {e}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn embedded() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(EMBEDDED_PATH)
    }

    /// The document the metadata service serves is the one the code generates.
    #[test]
    fn the_served_document_is_generated_from_the_handlers() {
        let generated = json();
        if std::env::var_os("SALLYPORT_UPDATE_OPENAPI").is_some() {
            std::fs::write(embedded(), &generated).expect("write the document");
        }
        let served = std::fs::read_to_string(embedded()).expect("the embedded document");
        assert!(
            served == generated,
            "{EMBEDDED_PATH} differs from the handlers' OpenAPI document: rerun this test with \
             SALLYPORT_UPDATE_OPENAPI=1 and commit the file"
        );
    }

    #[test]
    fn it_is_openapi_3_1_with_every_security_scheme() {
        let doc: serde_json::Value = serde_json::from_str(&json()).expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = doc["components"]["securitySchemes"].as_object().expect("schemes");
        for name in ["client_secret_basic", "registration_access_token", "initial_access_token"] {
            assert!(schemes.contains_key(name), "{name}");
        }
    }
}
