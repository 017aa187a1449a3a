//! The answers when the user must act (connect the account, or connect it again): for an MCP
//! request the JSON-RPC error `-32042` of URL-mode elicitation (MCP 2025-11-25, "Elicitation",
//! URL Elicitation Required Error; SEP-1036), else a 403 JSON body naming the connect page. The
//! caller's Sallyport token is fine: no 401 and no `WWW-Authenticate`, so the client does not
//! sign in again; its retry after the user connected succeeds.

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use serde_json::{Value, json};

use super::OAuthRoute;
use super::tokens::Why;
use crate::mcp::message::Request;

/// MCP's error code for "URL elicitation required" (the TypeScript SDK's `UrlElicitationRequiredError`).
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

fn message(oauth: &OAuthRoute, why: Why) -> String {
    let what = match why {
        Why::NotConnected => "Connect your account",
        Why::Revoked | Why::NoRefreshToken => "Your connection has ended: connect your account again",
    };
    format!("{what} for {} to continue, then retry.", oauth.route)
}

/// The answer for a request of `oauth`'s route whose user must connect the upstream account.
pub fn connect(oauth: &OAuthRoute, rpc: Option<&Request>, why: Why) -> HttpResponse {
    let mut res = match rpc {
        Some(request) => elicitation(oauth, request, why),
        None => HttpResponse::Forbidden().content_type("application/json").body(
            json!({
                "error": "upstream_authorization_required",
                "error_description": message(oauth, why),
                "connect_uri": oauth.connect_uri,
            })
            .to_string(),
        ),
    };
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// HTTP 200 with the JSON-RPC error for every request of the body (one per id in a batch): a
/// JSON-RPC error of a processed request, which the MCP SDKs hand to the application.
fn elicitation(oauth: &OAuthRoute, request: &Request, why: Why) -> HttpResponse {
    let error = |id: Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": URL_ELICITATION_REQUIRED,
                "message": "URL elicitation required",
                "data": {"elicitations": [{
                    "mode": "url",
                    "elicitationId": uuid::Uuid::new_v4().to_string(),
                    "url": oauth.connect_uri,
                    "message": message(oauth, why),
                }]},
            },
        })
    };
    let ids: Vec<Value> = request.calls.iter().filter_map(|c| c.id.clone()).collect();
    let body = match (request.batch, ids.as_slice()) {
        // notifications only: nothing to match an answer to; the error says so without an id
        (_, []) => error(Value::Null),
        (false, [id]) => error(id.clone()),
        _ => Value::Array(ids.into_iter().map(error).collect()),
    };
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::message;

    fn route() -> OAuthRoute {
        OAuthRoute::new("/linear", Default::default(), None, "https://auth.example/", true)
    }

    #[test]
    fn the_connect_uri_names_the_route() {
        assert_eq!(route().connect_uri, "https://auth.example/oauth2/connections/connect?route=%2Flinear");
        let root = OAuthRoute::new("", Default::default(), None, "https://auth.example/t", false);
        assert_eq!(root.connect_uri, "https://auth.example/t/oauth2/connections/connect?route=%2F");
    }

    #[test]
    fn one_elicitation_per_request_of_a_batch() {
        let request = message::parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#,
        )
        .expect("batch");
        let res = connect(&route(), Some(&request), Why::NotConnected);
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(CACHE_CONTROL).map(HeaderValue::as_bytes), Some(&b"no-store"[..]));
        let res = connect(&route(), None, Why::Revoked);
        assert_eq!(res.status(), 403);
    }
}
