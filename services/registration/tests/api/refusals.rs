//! Every refusal of RFC 7591 registration: status, error code, JSON body, and nothing stored.

use futures_util::stream;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{App, assert_error, client_count, start};

async fn refused(app: &App, body: Value, code: &str) {
    let res = app.register(&body).await;
    let headers = assert_error(res, StatusCode::BAD_REQUEST, code).await;
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_redirect_uris_are_invalid_redirect_uri() {
    let app = start().await;
    for uri in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "http://evil.example.com/callback",
        "http://192.168.1.10/callback",
        "https://app.example.com/cb#fragment",
        "/relative/callback",
        "callback",
        "https://user:pass@app.example.com/cb",
        "myapp:/callback",
        "vbscript:msgbox",
        "",
    ] {
        refused(&app, json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"}), "invalid_redirect_uri")
            .await;
    }
    // a valid one does not excuse an invalid one beside it
    refused(&app, json!({"redirect_uris": ["https://ok.example/cb", "javascript:x"]}), "invalid_redirect_uri").await;
    // the code grant needs somewhere to send the code
    refused(&app, json!({"token_endpoint_auth_method": "none"}), "invalid_redirect_uri").await;
    refused(&app, json!({"redirect_uris": []}), "invalid_redirect_uri").await;
    refused(&app, json!({"redirect_uris": null}), "invalid_redirect_uri").await;
    assert_eq!(client_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_redirect_uris() {
    let app = start().await;
    let max = app.settings.registration.max_redirect_uris;
    let uris: Vec<String> = (0..=max).map(|i| format!("http://127.0.0.1/cb{i}")).collect();
    refused(&app, json!({"redirect_uris": uris}), "invalid_redirect_uri").await;
    app.register_ok(&json!({"redirect_uris": uris[..max]})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_metadata_is_invalid_client_metadata() {
    let app = start().await;
    let cb = json!(["http://127.0.0.1/cb"]);
    for (member, value) in [
        ("client_uri", json!("http://app.example.com")),
        ("logo_uri", json!("javascript:alert(1)")),
        ("tos_uri", json!("ftp://app.example.com/tos")),
        ("policy_uri", json!("/privacy")),
        ("jwks_uri", json!("http://app.example.com/jwks")),
        ("jwks", json!({"not": "a key set"})),
        ("token_endpoint_auth_method", json!("private_key_jwt")),
        ("token_endpoint_auth_method", json!("client_secret_jwt")),
        ("grant_types", json!(["implicit"])),
        ("grant_types", json!(["password"])),
        ("grant_types", json!([])),
        ("response_types", json!(["token"])),
        ("response_types", json!(["code", "id_token"])),
        ("response_types", json!([])),
        ("application_type", json!("desktop")),
        ("scope", json!("caf\u{e9}")),
        ("scope", json!(42)),
        ("client_name", json!("a".repeat(600))),
        ("client_name", json!("line\nbreak")),
        ("contacts", json!("ops@example.com")),
        ("redirect_uris", json!("http://127.0.0.1/cb")),
    ] {
        let mut body = json!({"redirect_uris": cb});
        body[member] = value;
        refused(&app, body, "invalid_client_metadata").await;
    }
    // RFC 7591 §2.1: grant types and response types must agree
    refused(
        &app,
        json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
        "invalid_client_metadata",
    )
    .await;
    // client_credentials needs a secret to authenticate with
    refused(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
        "invalid_client_metadata",
    )
    .await;
    // RFC 7591 §2: jwks_uri and jwks are mutually exclusive
    refused(
        &app,
        json!({"redirect_uris": cb, "jwks_uri": "https://a.example/jwks", "jwks": {"keys": []}}),
        "invalid_client_metadata",
    )
    .await;
    assert_eq!(client_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_json_objects_are_accepted() {
    let app = start().await;
    let valid = json!({"redirect_uris": ["http://127.0.0.1/cb"]}).to_string();
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx")]
    {
        let mut req = app.http.post(app.register_url()).body(valid.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        assert_error(req.send().await.expect("request"), StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    }
    for body in ["", "not json", "[]", "\"a string\"", "null", "{\"redirect_uris\": [", "{}{}"] {
        let res = app
            .http
            .post(app.register_url())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    }
    // a charset parameter is fine
    let res = app
        .http
        .post(app.register_url())
        .header("content-type", "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_64_kib_are_413_with_an_oauth_body() {
    let app = start().await;
    let pad = "x".repeat(64 * 1024);
    let declared = json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": pad}).to_string();
    let res = app
        .http
        .post(app.register_url())
        .header("content-type", "application/json")
        .body(declared.clone())
        .send()
        .await
        .expect("request");
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;

    // chunked, without Content-Length: the limit holds while streaming
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        declared.into_bytes().chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .http
        .post(app.register_url())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .expect("request");
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;

    // just under the limit is read (and then judged on its content)
    let under = json!({"redirect_uris": ["http://127.0.0.1/cb"], "x-padding": "y".repeat(60 * 1024)});
    app.register_ok(&under).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_are_405() {
    let app = start().await;
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let res = app.http.request(method.clone(), app.register_url()).send().await.expect("request");
        let headers = assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
        assert_eq!(headers["allow"], "POST", "{method}");
    }
    let res = app.http.post(app.server.url("/oauth2/register/some-id")).send().await.expect("request");
    let headers = assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
    assert_eq!(headers["allow"], "GET, PUT, DELETE");
    let res = app.http.get(app.server.url("/oauth2/registerx")).send().await.expect("request");
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
}
