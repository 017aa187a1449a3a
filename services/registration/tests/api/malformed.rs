//! Issue 18: odd values in every string member of the RFC 7591 registration body (NUL and other
//! control characters, CR LF, 9,000 bytes, emoji), invalid UTF-8 and wrong JSON types, and odd
//! client ids in the RFC 7592 path. Each is its RFC error; none is a 5xx. A person's text (a client
//! name) that Postgres can hold is stored as given.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::common::{App, assert_error, assert_invalid_token_challenge, start_with, token_of};

const CB: &str = "http://127.0.0.1:4000/cb";

async fn app() -> App {
    start_with(|s| s.registration.per_ip_per_minute = 100_000).await
}

/// A valid registration with `member` set to `value`.
fn with(member: &str, value: Value) -> Value {
    let mut body = json!({"redirect_uris": [CB], "token_endpoint_auth_method": "none", "client_name": "ok"});
    body[member] = value;
    body
}

/// Odd strings as JSON would carry them.
fn odd_strings() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "\0".into()),
        ("NUL inside", "https://a.example/\0x".into()),
        ("control character", "a\u{1}b".into()),
        ("CR LF", "a\r\nb".into()),
        ("DEL and C1", "a\u{7f}\u{85}b".into()),
        ("9,000 bytes", "a".repeat(9000)),
    ]
}

async fn refused(app: &App, what: &str, body: &[u8], code: &str) {
    let res = app
        .http
        .post(app.register_url())
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("post");
    assert!(res.status().as_u16() < 500, "{what}: a 5xx for a malformed request: {}", res.status());
    let text_status = res.status();
    assert_eq!(text_status, StatusCode::BAD_REQUEST, "{what}");
    assert_error(res, StatusCode::BAD_REQUEST, code).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_string_member_refuses_odd_values() {
    let app = app().await;
    let members = [
        ("redirect_uris", true, "invalid_redirect_uri"),
        ("token_endpoint_auth_method", false, "invalid_client_metadata"),
        ("grant_types", true, "invalid_client_metadata"),
        ("response_types", true, "invalid_client_metadata"),
        ("application_type", false, "invalid_client_metadata"),
        ("client_name", false, "invalid_client_metadata"),
        ("client_uri", false, "invalid_client_metadata"),
        ("logo_uri", false, "invalid_client_metadata"),
        ("tos_uri", false, "invalid_client_metadata"),
        ("policy_uri", false, "invalid_client_metadata"),
        ("contacts", true, "invalid_client_metadata"),
        ("scope", false, "invalid_client_metadata"),
        ("jwks_uri", false, "invalid_client_metadata"),
        ("software_id", false, "invalid_client_metadata"),
        ("software_version", false, "invalid_client_metadata"),
    ];
    for (member, is_array, code) in members {
        for (label, value) in odd_strings() {
            let value = if is_array { json!([value]) } else { json!(value) };
            let body = with(member, value).to_string();
            refused(&app, &format!("{member}: {label}"), body.as_bytes(), code).await;
        }
    }
    // jwks is stored as jsonb, which cannot hold U+0000 in any string, member name or value
    for jwks in [json!({"keys": [{"kty": "EC", "crv": "P-256\u{0}"}]}), json!({"keys": [], "x\u{0}": 1})] {
        refused(&app, "jwks with NUL", with("jwks", jwks).to_string().as_bytes(), "invalid_client_metadata").await;
    }
    assert_eq!(crate::common::client_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_and_wrong_json_types_are_invalid_client_metadata() {
    let app = app().await;
    let raw: [(&str, &[u8]); 4] = [
        ("invalid UTF-8 in a string", b"{\"redirect_uris\":[\"http://127.0.0.1/\xff\"],\"client_name\":\"x\"}"),
        ("invalid UTF-8 sequence", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_name\":\"\xc3\x28\"}"),
        ("a lone surrogate escape", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_name\":\"\\ud800\"}"),
        ("a raw NUL byte in the body", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_name\":\"a\x00b\"}"),
    ];
    for (what, body) in raw {
        refused(&app, what, body, "invalid_client_metadata").await;
    }
    let wrong_types = [
        ("redirect_uris", json!(CB)),
        ("redirect_uris", json!([1])),
        ("redirect_uris", json!({"a": CB})),
        ("grant_types", json!("authorization_code")),
        ("response_types", json!([null, 3])),
        ("token_endpoint_auth_method", json!(true)),
        ("client_name", json!(5)),
        ("client_name", json!(["a"])),
        ("contacts", json!("a@example.com")),
        ("scope", json!(["mcp"])),
        ("jwks", json!("keys")),
        ("jwks", json!({"keys": "none"})),
        ("software_id", json!({"id": 1})),
    ];
    for (member, value) in wrong_types {
        let what = format!("{member} = {value}");
        refused(&app, &what, with(member, value).to_string().as_bytes(), "invalid_client_metadata").await;
    }
    for body in [json!([]), json!("x"), json!(null), json!(1)] {
        refused(&app, &body.to_string(), body.to_string().as_bytes(), "invalid_client_metadata").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_text_is_stored_as_given() {
    let app = app().await;
    let name = "Zo\u{eb}'s \u{1f600} \u{65e5}\u{672c}\u{8a9e} client";
    let info = app.register_ok(&with("client_name", json!(name))).await;
    assert_eq!(info["client_name"], name);
    let read: Value = app.read(&info, Some(token_of(&info))).await.json().await.expect("json");
    assert_eq!(read["client_name"], name, "as stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_client_ids_in_the_rfc_7592_path_are_invalid_token() {
    let app = app().await;
    let info = app.register_ok(&with("client_name", json!("managed"))).await;
    let token = token_of(&info).to_owned();
    let long = "a".repeat(9000);
    let segments =
        ["%00", "abc%00def", "%01", "a%0D%0Ab", "%7F", "%FF", "%C3%28", "%F0%9F%98%80", "%20", long.as_str()];
    for segment in segments {
        let url = app.server.url(&format!("/oauth2/register/{segment}"));
        for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
            let mut req = app.http.request(method.clone(), &url).bearer_auth(&token);
            if method == reqwest::Method::PUT {
                req = req.json(&with("client_id", json!(info["client_id"])));
            }
            let res = req.send().await.expect("request");
            let what = format!("{method} {}", &segment[..segment.len().min(20)]);
            assert!(res.status().as_u16() < 500, "{what}: a 5xx for a malformed request: {}", res.status());
            let headers = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
            assert_invalid_token_challenge(&headers);
        }
    }
    // an update whose body names the client with odd strings is refused before anything is compared
    let uri = info["registration_client_uri"].as_str().expect("uri");
    for (member, value) in [("client_id", json!("a\0b")), ("client_secret", json!("s\0"))] {
        let mut body = with("client_name", json!("managed"));
        body["client_id"] = info["client_id"].clone();
        body[member] = value;
        let res = app.http.put(uri).bearer_auth(&token).json(&body).send().await.expect("put");
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    }
    // the client is untouched by all of it
    assert_eq!(app.read(&info, Some(&token)).await.status(), StatusCode::OK);
}
