//! Login, consent and authorization codes (RFC 6749 §4.1, RFC 7636, RFC 8707, RFC 9207).

use domain::service::{BuildError, Context, ServiceApp};

/// Builds the service from its context.
pub async fn app(_ctx: Context) -> Result<ServiceApp, BuildError> {
    Ok(ServiceApp::new("authorize", |_cfg| {}))
}
