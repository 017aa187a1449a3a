//! The gateway: routes the authorization server's public paths to its services and puts RFC 6750
//! bearer-token checks in front of protected upstreams, proxying their (streamed) responses.
