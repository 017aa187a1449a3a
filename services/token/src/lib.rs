//! Token endpoint, revocation, introspection and JWKS.

use domain::service::{BuildError, Context, ServiceApp};

/// Builds the service from its context.
pub async fn app(_ctx: Context) -> Result<ServiceApp, BuildError> {
    Ok(ServiceApp::new("token", |_cfg| {}))
}
