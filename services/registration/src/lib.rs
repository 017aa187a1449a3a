//! RFC 7591 dynamic client registration, RFC 7592 client management.

use domain::service::{BuildError, Context, ServiceApp};

/// Builds the service from its context.
pub async fn app(_ctx: Context) -> Result<ServiceApp, BuildError> {
    Ok(ServiceApp::new("registration", |_cfg| {}))
}
