//! Issue 18: odd bearer tokens — NUL, control characters, CR LF, invalid UTF-8, emoji, 9,000 and
//! 20,000 bytes — in the `Authorization` header, the query and a form body. A token that breaks
//! RFC 6750 §2.1 `b64token` is 400 `invalid_request`; one of the right syntax that is no token of
//! ours is 401 `invalid_token`. Both carry the Bearer challenge; none is a 5xx.

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use serde_json::Value;

use super::support::Stack;

async fn assert_refused(what: &str, res: reqwest::Response, code: &str) {
    let status = res.status();
    assert!(!status.is_server_error(), "{what}: a 5xx for a malformed request: {status}");
    let want = if code == "invalid_request" { StatusCode::BAD_REQUEST } else { StatusCode::UNAUTHORIZED };
    assert_eq!(status, want, "{what}");
    let challenge = res.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(challenge.starts_with(&format!("Bearer error=\"{code}\"")), "{what}: {challenge}");
    let body: Value = res.json().await.expect("a JSON body");
    assert_eq!(body["error"], code, "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_bearer_tokens_are_refused_with_the_rfc_6750_error() {
    let s = Stack::start().await;
    let long = "a".repeat(9000);
    let huge = "a".repeat(20_000);

    // the header: HTTP itself forbids NUL, CR and LF there; obs-text bytes and tabs get through
    let headers: [(&str, Vec<u8>, &str); 7] = [
        ("invalid UTF-8", b"Bearer \xff\xfe".to_vec(), "invalid_request"),
        ("UTF-8 emoji", "Bearer \u{1f600}".as_bytes().to_vec(), "invalid_request"),
        ("Latin-1 byte inside", b"Bearer ab\xe9cd".to_vec(), "invalid_request"),
        ("tab inside", b"Bearer a\tb".to_vec(), "invalid_request"),
        ("padding inside", b"Bearer a=b".to_vec(), "invalid_request"),
        ("20,000 bytes", format!("Bearer {huge}").into_bytes(), "invalid_request"),
        ("9,000 bytes of the right syntax", format!("Bearer {long}").into_bytes(), "invalid_token"),
    ];
    for (what, value, code) in headers {
        let value = HeaderValue::from_bytes(&value).expect("a header value");
        let res = s.http.get(s.url("/mcp")).header(AUTHORIZATION, value).send().await.expect("get");
        assert_refused(&format!("header {what}"), res, code).await;
    }

    // the query and the form body, where the routes enable them (RFC 6750 §2.2, §2.3)
    let odd = [
        ("NUL", "%00", "invalid_request"),
        ("NUL inside", "abc%00def", "invalid_request"),
        ("control character", "a%01b", "invalid_request"),
        ("CR LF", "a%0D%0Ab", "invalid_request"),
        ("invalid UTF-8", "%FF", "invalid_request"),
        ("invalid UTF-8 sequence", "%C3%28", "invalid_request"),
        ("emoji", "%F0%9F%98%80", "invalid_request"),
        ("space", "a+b", "invalid_request"),
        ("20,000 bytes", huge.as_str(), "invalid_request"),
        ("9,000 bytes of the right syntax", long.as_str(), "invalid_token"),
    ];
    for (what, value, code) in odd {
        let res = s.http.get(s.url(&format!("/query?access_token={value}"))).send().await.expect("get");
        assert_refused(&format!("query {what}"), res, code).await;
        let res = s
            .http
            .post(s.url("/form"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("a=1&access_token={value}"))
            .send()
            .await
            .expect("post");
        assert_refused(&format!("form {what}"), res, code).await;
    }
}
