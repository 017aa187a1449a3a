//! RFC 8414 authorization-server and RFC 9728 protected-resource metadata.

use domain::service::{BuildError, Context, ServiceApp};

/// Builds the service from its context.
pub async fn app(_ctx: Context) -> Result<ServiceApp, BuildError> {
    Ok(ServiceApp::new("metadata", |_cfg| {}))
}
