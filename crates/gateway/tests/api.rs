//! The gateway over real HTTP: stub services and upstreams on free ports, tokens signed with a
//! fresh key, and every routing, proxy, bearer, CORS and rate-limit rule checked from outside.

mod api {
    pub mod support;

    mod bearer;
    mod cookies;
    mod cors;
    mod limits;
    mod malformed;
    mod paths;
    mod proxy;
    mod revocation;
    mod routing;
    mod upstream_auth;
    mod upstream_oauth;
}
