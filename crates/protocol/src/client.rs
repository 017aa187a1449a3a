//! Client metadata (RFC 7591 §2) and its validation, shared by registration, RFC 7592 updates and
//! client ID metadata documents; and the `Client` every service works with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ErrorResponse};
use crate::redact::SecretString;
use crate::scope::Scopes;
use crate::uri::{RedirectUri, validate_info_url};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

/// The grants the token endpoint supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 7523 §2.1, with an Identity Assertion JWT Authorization Grant (ID-JAG) as the assertion.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => crate::idjag::JWT_BEARER,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            crate::idjag::JWT_BEARER => Some(Self::JwtBearer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    Web,
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Native => "native",
        }
    }
}

/// Where a client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    /// Registered itself through RFC 7591.
    Dynamic,
    /// Created by an operator with the CLI.
    Admin,
    /// Described by a client ID metadata document at its `client_id` URL.
    MetadataDocument,
}

impl ClientSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dynamic => "dynamic",
            Self::Admin => "admin",
            Self::MetadataDocument => "metadata_document",
        }
    }

    /// Registered itself (RFC 7591 or a metadata document): anyone on the network may have made it.
    pub fn is_self_registered(self) -> bool {
        self != Self::Admin
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dynamic" => Some(Self::Dynamic),
            "admin" => Some(Self::Admin),
            "metadata_document" => Some(Self::MetadataDocument),
            _ => None,
        }
    }
}

/// RFC 7591 §2 metadata as sent by a client. Unknown members are ignored; `null` counts as absent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ClientMetadata, example = json!({
    "client_name": "Example MCP client",
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"]
}))]
pub struct ClientMetadataRequest {
    /// Where codes may be sent: https, loopback http, or a private-use scheme (RFC 8252).
    pub redirect_uris: Option<Vec<String>>,
    /// `none`, `client_secret_basic` (the default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// `authorization_code` (the default) and `refresh_token`; `client_credentials` is for operators' clients.
    pub grant_types: Option<Vec<String>>,
    /// `code` only.
    pub response_types: Option<Vec<String>>,
    /// `web` or `native`.
    pub application_type: Option<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub contacts: Option<Vec<String>>,
    /// Space-separated scopes; narrowed to what the deployment supports.
    pub scope: Option<String>,
    pub jwks_uri: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    /// Only meaningful in RFC 7592 updates and metadata documents, where it must equal the client's id.
    pub client_id: Option<String>,
    /// RFC 7592 §2.2: a client may send its current secret back in an update; it must match.
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
}

/// Validated metadata, as stored and echoed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<RedirectUri>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub application_type: ApplicationType,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub contacts: Vec<String>,
    pub scope: Scopes,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
}

impl ClientMetadata {
    /// What an audit event records about a client's metadata: enough to tell what changed, no secret.
    pub fn audit_detail(&self) -> serde_json::Value {
        let mut detail = serde_json::json!({
            "redirect_uris": self.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
            "token_endpoint_auth_method": self.token_endpoint_auth_method.as_str(),
            "grant_types": self.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "application_type": self.application_type.as_str(),
            "scope": self.scope.to_string(),
        });
        for (key, value) in [
            ("client_name", &self.client_name),
            ("client_uri", &self.client_uri),
            ("software_id", &self.software_id),
            ("software_version", &self.software_version),
        ] {
            if let (Some(v), Some(obj)) = (value, detail.as_object_mut()) {
                obj.insert(key.to_owned(), serde_json::Value::String(v.clone()));
            }
        }
        detail
    }
}

/// Clients that registered themselves act for a user, never as themselves: a token without a user
/// (client_credentials) is for clients an operator made (`sallyport client add`). Registration and
/// RFC 7592 updates refuse the grant with this error.
pub fn refuse_machine_grant(metadata: &ClientMetadata) -> Result<(), ErrorResponse> {
    if metadata.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(metadata_error(
            "client_credentials is not available to self-registered clients: a token without a user is only \
             for clients an operator creates (sallyport client add --grant-type client_credentials)",
        ));
    }
    Ok(())
}

/// The registration rules a deployment configures (the server's `[registration]` section converts
/// into it).
#[derive(Debug, Clone, Default)]
pub struct RegistrationPolicy {
    pub max_redirect_uris: usize,
    /// Scopes a client gets when it registers without `scope`; empty: every supported scope.
    pub default_scopes: Scopes,
}

/// What the deployment allows a client to register.
#[derive(Debug, Clone)]
pub struct MetadataPolicy {
    pub max_redirect_uris: usize,
    /// Scopes given when a client asks for none.
    pub default_scopes: Scopes,
    /// Every scope the deployment supports; a request is narrowed to these.
    pub allowed_scopes: Scopes,
}

impl MetadataPolicy {
    /// The deployment's policy (CONTRACTS.md): the defaults are `registration.default_scopes` when
    /// set, else every supported scope; a client may register supported scopes and the defaults.
    pub fn for_deployment(registration: impl Into<RegistrationPolicy>, supported: &Scopes) -> Self {
        let registration = registration.into();
        let configured = registration.default_scopes;
        let default_scopes = if configured.is_empty() { supported.clone() } else { configured.clone() };
        Self {
            max_redirect_uris: registration.max_redirect_uris,
            allowed_scopes: supported.union(&configured),
            default_scopes,
        }
    }
}

const MAX_TEXT: usize = 512;
const MAX_CONTACTS: usize = 10;

fn metadata_error(description: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorCode::InvalidClientMetadata, description.into())
}

fn text(field: &str, value: Option<String>) -> Result<Option<String>, ErrorResponse> {
    match value {
        None => Ok(None),
        // an empty member is treated as absent: echoing "" back breaks strict client parsers
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) if v.len() > MAX_TEXT || v.chars().any(char::is_control) => {
            Err(metadata_error(format!("{field} is too long or contains control characters")))
        }
        Some(v) => Ok(Some(v)),
    }
}

fn info_url(field: &str, value: Option<String>) -> Result<Option<String>, ErrorResponse> {
    match text(field, value)? {
        None => Ok(None),
        Some(v) => {
            validate_info_url(&v).map_err(|e| metadata_error(format!("{field}: {e}")))?;
            Ok(Some(v))
        }
    }
}

impl ClientMetadataRequest {
    /// Validates per RFC 7591 §2 and §2.1 and the deployment's policy. Defaults: auth method
    /// `client_secret_basic`, grant types `[authorization_code]`, response types `[code]` when the
    /// code grant is used, application type `web`.
    pub fn validate(self, policy: &MetadataPolicy) -> Result<ClientMetadata, ErrorResponse> {
        // an empty member counts as absent, like every other member (RFC 7591 §2 default applies)
        let token_endpoint_auth_method = match self.token_endpoint_auth_method.as_deref().filter(|m| !m.is_empty()) {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => AuthMethod::parse(m).ok_or_else(|| {
                metadata_error(format!(
                    "token_endpoint_auth_method '{m}' is not supported (none, client_secret_basic, client_secret_post)"
                ))
            })?,
        };

        let mut grant_types = Vec::new();
        for g in self.grant_types.unwrap_or_else(|| vec!["authorization_code".into()]) {
            let g = GrantType::parse(&g).ok_or_else(|| metadata_error(format!("grant_type '{g}' is not supported")))?;
            if !grant_types.contains(&g) {
                grant_types.push(g);
            }
        }
        if grant_types.is_empty() {
            return Err(metadata_error("grant_types must not be empty"));
        }
        let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
        if grant_types.contains(&GrantType::ClientCredentials) && !token_endpoint_auth_method.is_confidential() {
            return Err(metadata_error("client_credentials requires a confidential client (a client secret)"));
        }
        // draft-ietf-oauth-identity-assertion-authz-grant §7.1: the grant is for confidential
        // clients only; a public one gets its tokens through the authorization code grant
        if grant_types.contains(&GrantType::JwtBearer) && !token_endpoint_auth_method.is_confidential() {
            return Err(metadata_error(
                "urn:ietf:params:oauth:grant-type:jwt-bearer requires a confidential client (a client secret)",
            ));
        }

        let response_types = match self.response_types {
            None if uses_code => vec!["code".to_owned()],
            None => Vec::new(),
            Some(types) => {
                let mut out: Vec<String> = Vec::new();
                for t in types {
                    if t != "code" {
                        return Err(metadata_error(format!("response_type '{t}' is not supported (code)")));
                    }
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                out
            }
        };
        // RFC 7591 §2.1: grant_types and response_types must agree
        if uses_code != response_types.iter().any(|t| t == "code") {
            return Err(metadata_error(
                "grant_types and response_types are inconsistent: authorization_code goes with code (RFC 7591 §2.1)",
            ));
        }

        let raw_uris = self.redirect_uris.unwrap_or_default();
        if uses_code && raw_uris.is_empty() {
            return Err(ErrorResponse::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        if raw_uris.len() > policy.max_redirect_uris {
            return Err(ErrorResponse::new(
                ErrorCode::InvalidRedirectUri,
                format!("at most {} redirect_uris are allowed", policy.max_redirect_uris),
            ));
        }
        let mut redirect_uris: Vec<RedirectUri> = Vec::with_capacity(raw_uris.len());
        for raw in raw_uris {
            let uri = RedirectUri::parse(&raw)
                .map_err(|e| ErrorResponse::new(ErrorCode::InvalidRedirectUri, format!("redirect_uri '{raw}': {e}")))?;
            if !redirect_uris.contains(&uri) {
                redirect_uris.push(uri);
            }
        }

        let application_type = match self.application_type.as_deref() {
            None | Some("" | "web") => ApplicationType::Web,
            Some("native") => ApplicationType::Native,
            Some(other) => return Err(metadata_error(format!("application_type '{other}' is not web or native"))),
        };

        let requested = match self.scope.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(Scopes::parse(raw).map_err(|e| metadata_error(format!("scope: {e}")))?),
        };
        // RFC 7591 §2: the server may replace a requested scope; we narrow it to what the deployment
        // supports, and fall back to the defaults when nothing supported was asked for.
        let scope = match requested {
            Some(s) if !s.intersection(&policy.allowed_scopes).is_empty() => s.intersection(&policy.allowed_scopes),
            _ => policy.default_scopes.clone(),
        };

        let mut contacts = Vec::new();
        for c in self.contacts.unwrap_or_default() {
            if let Some(c) = text("contacts", Some(c))? {
                contacts.push(c);
            }
        }
        if contacts.len() > MAX_CONTACTS {
            return Err(metadata_error(format!("at most {MAX_CONTACTS} contacts are allowed")));
        }

        let jwks_uri = info_url("jwks_uri", self.jwks_uri)?;
        if let Some(uri) = &jwks_uri
            && !uri.starts_with("https://")
        {
            return Err(metadata_error("jwks_uri must be https"));
        }
        let jwks = match self.jwks {
            None | Some(serde_json::Value::Null) => None,
            // jsonb cannot store U+0000 anywhere in a document
            Some(v) if crate::ident::json_has_nul(&v) => {
                return Err(metadata_error("jwks contains a NUL character"));
            }
            Some(v) if v.get("keys").is_some_and(serde_json::Value::is_array) => Some(v),
            Some(_) => return Err(metadata_error("jwks must be a JWK Set: an object with a keys array")),
        };
        if jwks_uri.is_some() && jwks.is_some() {
            return Err(metadata_error("jwks_uri and jwks must not both be present (RFC 7591 §2)"));
        }

        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            response_types,
            application_type,
            client_name: text("client_name", self.client_name)?,
            client_uri: info_url("client_uri", self.client_uri)?,
            logo_uri: info_url("logo_uri", self.logo_uri)?,
            tos_uri: info_url("tos_uri", self.tos_uri)?,
            policy_uri: info_url("policy_uri", self.policy_uri)?,
            contacts,
            scope,
            jwks_uri,
            jwks,
            software_id: text("software_id", self.software_id)?,
            software_version: text("software_version", self.software_version)?,
        })
    }
}

/// Parses a JSON body into a metadata request; a malformed body is `invalid_client_metadata`.
pub fn parse_metadata_json(body: &[u8]) -> Result<ClientMetadataRequest, ErrorResponse> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| metadata_error(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(metadata_error("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| metadata_error(format!("malformed client metadata: {e}")))
}

/// A client as every service sees it.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub source: ClientSource,
    pub metadata: ClientMetadata,
    pub secret_hash: Option<Vec<u8>>,
    pub secret_expires_at: Option<DateTime<Utc>>,
    pub may_introspect: bool,
    pub created_at: DateTime<Utc>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        !self.metadata.token_endpoint_auth_method.is_confidential()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        // a self-registered client never gets a token without a user, whatever an old row says
        self.metadata.grant_types.contains(&grant)
            && !(grant == GrantType::ClientCredentials && self.source.is_self_registered())
    }

    /// The registered redirect URI that `presented` matches; when none is presented, the only one
    /// registered (RFC 6749 §3.1.2.3: required when several are registered).
    pub fn resolve_redirect(&self, presented: Option<&str>) -> Option<RedirectUri> {
        match presented {
            Some(p) => self.metadata.redirect_uris.iter().find(|r| r.matches(p)).map(|_| {
                // the presented URI (possibly with another loopback port) is where the browser goes
                RedirectUri::parse(p).ok()
            })?,
            None if self.metadata.redirect_uris.len() == 1 => self.metadata.redirect_uris.first().cloned(),
            None => None,
        }
    }

    /// The name to show a person: the registered name, else the client id.
    pub fn display_name(&self) -> &str {
        self.metadata.client_name.as_deref().unwrap_or(&self.client_id)
    }
}

/// The RFC 7591 §3.2.1 / RFC 7592 §3 response body. Absent members are omitted, never `null` or `""`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientInformation {
    pub client_id: String,
    /// Issued once, to confidential clients (and when an update makes one confidential).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub client_secret: Option<SecretString>,
    pub client_id_issued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_secret_expires_at: Option<i64>,
    /// The RFC 7592 bearer token that manages this client at `registration_client_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub registration_access_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub registration_client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: &'static str,
    pub grant_types: Vec<&'static str>,
    pub response_types: Vec<String>,
    pub application_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub contacts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    pub jwks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub software_version: Option<String>,
}

impl ClientInformation {
    /// The echo of a stored client; secrets and the registration token are added by the caller
    /// only when it has just issued them.
    pub fn of(client: &Client) -> Self {
        let m = &client.metadata;
        Self {
            client_id: client.client_id.clone(),
            client_secret: None,
            client_id_issued_at: client.created_at.timestamp(),
            client_secret_expires_at: m
                .token_endpoint_auth_method
                .is_confidential()
                .then(|| client.secret_expires_at.map_or(0, |t| t.timestamp())),
            registration_access_token: None,
            registration_client_uri: None,
            redirect_uris: m.redirect_uris.iter().map(|r| r.as_str().to_owned()).collect(),
            token_endpoint_auth_method: m.token_endpoint_auth_method.as_str(),
            grant_types: m.grant_types.iter().map(|g| g.as_str()).collect(),
            response_types: m.response_types.clone(),
            application_type: m.application_type.as_str(),
            client_name: m.client_name.clone(),
            client_uri: m.client_uri.clone(),
            logo_uri: m.logo_uri.clone(),
            tos_uri: m.tos_uri.clone(),
            policy_uri: m.policy_uri.clone(),
            contacts: m.contacts.clone(),
            scope: (!m.scope.is_empty()).then(|| m.scope.to_string()),
            jwks_uri: m.jwks_uri.clone(),
            jwks: m.jwks.clone(),
            software_id: m.software_id.clone(),
            software_version: m.software_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> MetadataPolicy {
        MetadataPolicy {
            max_redirect_uris: 3,
            default_scopes: Scopes::parse("mcp").expect("scope"),
            allowed_scopes: Scopes::parse("mcp files:read").expect("scope"),
        }
    }

    fn validate(v: serde_json::Value) -> Result<ClientMetadata, ErrorResponse> {
        parse_metadata_json(v.to_string().as_bytes())?.validate(&policy())
    }

    fn code_of(v: serde_json::Value) -> ErrorCode {
        validate(v).expect_err("should be refused").code
    }

    #[test]
    fn rust_sdk_shape() {
        let m = validate(json!({
            "client_name": "rmcp", "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
            "response_types": ["code"], "application_type": "native"
        }))
        .expect("valid");
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(m.application_type, ApplicationType::Native);
        assert_eq!(m.scope.to_string(), "mcp");
    }

    #[test]
    fn python_sdk_shape_defaults_to_basic() {
        let m = validate(json!({"redirect_uris": ["http://localhost:3030/callback"], "scope": "mcp unknown"}))
            .expect("valid");
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, vec!["code"]);
        assert_eq!(m.scope.to_string(), "mcp", "narrowed to what the deployment supports");
    }

    #[test]
    fn inspector_shape_empty_scope() {
        let m = validate(json!({
            "redirect_uris": ["http://localhost:6274/oauth/callback"], "scope": "", "client_uri": "http://localhost:6274",
            "client_name": "MCP Inspector", "logo_uri": "", "token_endpoint_auth_method": "none"
        }))
        .expect("valid");
        assert_eq!(m.scope.to_string(), "mcp");
        assert_eq!(m.logo_uri, None, "an empty member is dropped, never echoed as \"\"");
    }

    #[test]
    fn refusals() {
        assert_eq!(code_of(json!({"redirect_uris": ["javascript:alert(1)"]})), ErrorCode::InvalidRedirectUri);
        assert_eq!(code_of(json!({"redirect_uris": ["http://evil.example/cb"]})), ErrorCode::InvalidRedirectUri);
        assert_eq!(code_of(json!({"redirect_uris": []})), ErrorCode::InvalidRedirectUri);
        assert_eq!(code_of(json!({})), ErrorCode::InvalidRedirectUri);
        assert_eq!(
            code_of(
                json!({"redirect_uris": ["https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4"]})
            ),
            ErrorCode::InvalidRedirectUri
        );
        let cb = ["https://a.example/cb"];
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "grant_types": ["implicit"]})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "response_types": ["token"]})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "grant_types": ["client_credentials"], "response_types": ["code"]})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "client_uri": "http://example.com"})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(code_of(json!({"redirect_uris": cb, "logo_uri": "javascript:x"})), ErrorCode::InvalidClientMetadata);
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "application_type": "desktop"})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(code_of(json!({"redirect_uris": cb, "scope": "caf\u{e9}"})), ErrorCode::InvalidClientMetadata);
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "jwks_uri": "https://a.example/jwks", "jwks": {"keys": []}})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(code_of(json!({"redirect_uris": "https://a.example/cb"})), ErrorCode::InvalidClientMetadata);
        assert_eq!(
            code_of(json!({"redirect_uris": cb, "jwks": {"keys": [{"kty": "EC\u{0}"}]}})),
            ErrorCode::InvalidClientMetadata
        );
        let bad = parse_metadata_json(b"not json").expect_err("refused");
        assert_eq!(bad.code, ErrorCode::InvalidClientMetadata);
        let arr = parse_metadata_json(b"[]").expect_err("refused");
        assert_eq!(arr.code, ErrorCode::InvalidClientMetadata);
    }

    #[test]
    fn empty_enumerated_members_count_as_absent() {
        let m = validate(json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "",
                                "application_type": ""}))
        .expect("valid");
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.application_type, ApplicationType::Web);
    }

    #[test]
    fn deployment_policy() {
        let supported = Scopes::parse("mcp files:read").expect("scope");
        let mut registration = RegistrationPolicy { max_redirect_uris: 7, default_scopes: Scopes::default() };
        let p = MetadataPolicy::for_deployment(registration.clone(), &supported);
        assert_eq!(p.default_scopes, supported, "no configured defaults: every supported scope");
        assert_eq!(p.allowed_scopes, supported);
        assert_eq!(p.max_redirect_uris, 7);
        registration.default_scopes = Scopes::parse("mcp profile").expect("scope");
        let p = MetadataPolicy::for_deployment(registration, &supported);
        assert_eq!(p.default_scopes.to_string(), "mcp profile");
        assert_eq!(p.allowed_scopes.to_string(), "files:read mcp profile", "supported plus the defaults");
        let none = MetadataPolicy::for_deployment(RegistrationPolicy::default(), &Scopes::default());
        assert!(none.default_scopes.is_empty() && none.allowed_scopes.is_empty());
    }

    #[test]
    fn audit_detail_has_no_secret_members() {
        let m = validate(json!({"redirect_uris": ["https://a.example/cb"], "client_name": "n", "client_secret": "s"}))
            .expect("valid");
        let d = m.audit_detail();
        assert_eq!(d["client_name"], "n");
        assert_eq!(d["redirect_uris"], json!(["https://a.example/cb"]));
        assert!(d.get("client_secret").is_none() && !d.to_string().contains("\"s\""));
        assert!(d.get("client_uri").is_none(), "absent members are left out");
    }

    #[test]
    fn client_credentials_only_client() {
        let m = validate(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .expect("valid");
        assert!(m.response_types.is_empty());
        assert!(m.redirect_uris.is_empty());
    }

    #[test]
    fn nulls_count_as_absent_and_unknown_members_are_ignored() {
        let m = validate(json!({"redirect_uris": ["https://a.example/cb"], "client_name": null, "x-custom": 1}))
            .expect("valid");
        assert_eq!(m.client_name, None);
    }

    #[test]
    fn information_omits_absent_members() {
        let m = validate(json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"}))
            .expect("valid");
        let client = Client {
            client_id: "c1".into(),
            source: ClientSource::Dynamic,
            metadata: m,
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: Utc::now(),
        };
        let v = serde_json::to_value(ClientInformation::of(&client)).expect("json");
        let obj = v.as_object().expect("object");
        assert!(obj.values().all(|v| !v.is_null() && v != ""), "{v}");
        assert!(!obj.contains_key("client_secret"));
        assert!(!obj.contains_key("client_secret_expires_at"));
        assert!(!obj.contains_key("contacts"));
        assert_eq!(v["redirect_uris"], json!(["https://a.example/cb"]));
    }

    #[test]
    fn redirect_resolution() {
        let m = validate(json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
            .expect("valid");
        let mut client = Client {
            client_id: "c1".into(),
            source: ClientSource::Dynamic,
            metadata: m,
            secret_hash: None,
            secret_expires_at: None,
            may_introspect: false,
            created_at: Utc::now(),
        };
        assert_eq!(
            client.resolve_redirect(None).map(|r| r.as_str().to_owned()).as_deref(),
            Some("http://127.0.0.1/cb")
        );
        assert_eq!(
            client.resolve_redirect(Some("http://127.0.0.1:4000/cb")).map(|r| r.as_str().to_owned()).as_deref(),
            Some("http://127.0.0.1:4000/cb")
        );
        assert!(client.resolve_redirect(Some("http://127.0.0.1:4000/other")).is_none());
        client.metadata.redirect_uris.push(RedirectUri::parse("https://a.example/cb").expect("valid"));
        assert!(client.resolve_redirect(None).is_none(), "ambiguous without redirect_uri");
    }
}
