//! Issue 18: odd values in every parameter of every endpoint of the token service — NUL, other
//! control characters, CR LF, invalid UTF-8, emoji, 9,000 bytes — and in both forms of HTTP Basic
//! credentials. Each is refused with the RFC's error for that parameter, as JSON; none is a 5xx
//! (so the access log records none, and nothing logs at error level).

use base64::Engine;
use protocol::client::{AuthMethod, GrantType};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;

use crate::support::{CALLBACK, ClientSpec, Env, MCP, TestClient, VERIFIER};

/// Percent-encoded odd values, as a fuzzer would send them.
fn odd_values() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "%00".into()),
        ("NUL inside", "abc%00def".into()),
        ("control character", "a%01b".into()),
        ("tab", "a%09b".into()),
        ("CR LF", "a%0D%0Ab".into()),
        ("DEL", "a%7Fb".into()),
        ("invalid UTF-8", "%FF".into()),
        ("invalid UTF-8 sequence", "%C3%28".into()),
        ("emoji", "%F0%9F%98%80".into()),
        ("9,000 bytes", "a".repeat(9000)),
    ]
}

/// Form-encodes pairs whose values are already percent-encoded (so that raw bytes can be sent).
fn encode(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Percent-encodes a well-formed value (ours are all unreserved, `:` and `/`).
fn pct(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// POSTs a raw form body, optionally with an `Authorization` value; returns status, challenge, body.
async fn post(env: &Env, path: &str, body: String, auth: Option<&[u8]>) -> (u16, Option<String>, Value) {
    let mut req =
        env.http.post(env.url(path)).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body.clone());
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, reqwest::header::HeaderValue::from_bytes(a).expect("header bytes"));
    }
    let res = req.send().await.expect("post");
    let status = res.status().as_u16();
    let challenge = res.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = res.text().await.expect("body");
    assert!(is_json, "{path} {}: not JSON: {status} {text}", &body[..body.len().min(120)]);
    let json: Value = serde_json::from_str(&text).expect("json body");
    (status, challenge, json)
}

/// Asserts an RFC 6749 §5.2 refusal with `code` and the status it goes with, never a 5xx.
fn assert_refused(what: &str, (status, challenge, body): &(u16, Option<String>, Value), code: &str) {
    assert!(*status < 500, "{what}: a 5xx for a malformed request: {status} {body}");
    assert_eq!(body["error"], code, "{what}: {status} {body}");
    let want = if code == "invalid_client" { 401 } else { 400 };
    assert_eq!(*status, want, "{what}: {body}");
    if code == "invalid_client" {
        assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Basic ")), "{what}: no Basic challenge");
    }
}

struct Case {
    path: &'static str,
    base: Vec<(&'static str, String)>,
    /// The parameter replaced and the error its odd values must get.
    params: Vec<(&'static str, &'static str)>,
}

async fn clients(env: &Env) -> (TestClient, TestClient, TestClient) {
    let public = env.client(ClientSpec::default()).await;
    let machine = env
        .client(ClientSpec {
            auth: AuthMethod::ClientSecretPost,
            grants: &[GrantType::ClientCredentials],
            scope: "mcp",
            ..Default::default()
        })
        .await;
    let rs = env.resource_server().await;
    (public, machine, rs)
}

fn with_auth(client: &TestClient, params: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = params.to_vec();
    v.push(("client_id", pct(&client.id)));
    if let Some(s) = &client.secret {
        v.push(("client_secret", pct(s)));
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn every_parameter_of_every_endpoint_refuses_odd_values_with_its_rfc_error() {
    let env = Env::start().await;
    let (public, machine, rs) = clients(&env).await;
    let user = env.user().await;
    let tokens = env.tokens_for(&public).await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh token").to_owned();
    let access = tokens["access_token"].as_str().expect("access token").to_owned();
    // a fresh, valid code for the code grant's cases (every case is refused before it is spent)
    let code = env.code(&public.id, user, Default::default()).await;

    let cases = [
        Case {
            path: "/oauth2/token",
            base: with_auth(
                &public,
                &[
                    ("grant_type", "authorization_code".into()),
                    ("code", pct(&code)),
                    ("code_verifier", pct(VERIFIER)),
                    ("redirect_uri", pct(CALLBACK)),
                    ("resource", pct(MCP)),
                ],
            ),
            params: vec![
                ("client_id", "invalid_client"),
                ("code", "invalid_request"),
                ("code_verifier", "invalid_request"),
                ("redirect_uri", "invalid_request"),
                ("resource", "invalid_target"),
                ("grant_type", "unsupported_grant_type"),
            ],
        },
        Case {
            path: "/oauth2/token",
            base: with_auth(
                &public,
                &[("grant_type", "refresh_token".into()), ("refresh_token", pct(&refresh)), ("scope", "mcp".into())],
            ),
            params: vec![
                ("client_id", "invalid_client"),
                ("refresh_token", "invalid_request"),
                ("scope", "invalid_scope"),
                ("resource", "invalid_target"),
            ],
        },
        Case {
            path: "/oauth2/token",
            base: with_auth(&machine, &[("grant_type", "client_credentials".into()), ("scope", "mcp".into())]),
            params: vec![
                ("client_id", "invalid_client"),
                ("client_secret", "invalid_client"),
                ("scope", "invalid_scope"),
                ("resource", "invalid_target"),
            ],
        },
        Case {
            path: "/oauth2/revoke",
            base: with_auth(&public, &[("token", pct(&access)), ("token_type_hint", "access_token".into())]),
            params: vec![
                ("client_id", "invalid_client"),
                ("token", "invalid_request"),
                ("token_type_hint", "invalid_request"),
            ],
        },
        Case {
            path: "/oauth2/introspect",
            base: with_auth(&rs, &[("token", pct(&access)), ("token_type_hint", "refresh_token".into())]),
            params: vec![
                ("client_id", "invalid_client"),
                ("client_secret", "invalid_client"),
                ("token", "invalid_request"),
                ("token_type_hint", "invalid_request"),
            ],
        },
    ];

    let mut sent = 0;
    for case in &cases {
        for (param, code) in &case.params {
            for (label, value) in odd_values() {
                let mut pairs: Vec<(&str, String)> = case.base.iter().filter(|(k, _)| k != param).cloned().collect();
                pairs.push((param, value));
                let what = format!("{} {param}={label}", case.path);
                let got = post(&env, case.path, encode(&pairs), None).await;
                assert_refused(&what, &got, code);
                sent += 1;
            }
        }
    }
    assert_eq!(sent, cases.iter().map(|c| c.params.len()).sum::<usize>() * odd_values().len());

    // nothing was spent or revoked by the refusals: the code and the refresh token still work
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &public.post_auth(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", CALLBACK),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.refresh(&public, &refresh).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_forms_of_basic_credentials_refuse_odd_values_as_invalid_client() {
    let env = Env::start().await;
    let (_, machine, rs) = clients(&env).await;
    let secret = machine.secret.clone().expect("secret");
    let b64 = |raw: &[u8]| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)).into_bytes();
    let headers: Vec<(String, Vec<u8>)> = vec![
        ("NUL in the decoded id".into(), b64(format!("a\0b:{secret}").as_bytes())),
        ("NUL alone as the id".into(), b64(format!("\0:{secret}").as_bytes())),
        ("percent-encoded NUL in the id".into(), b64(format!("{}%00:{secret}", machine.id).as_bytes())),
        ("CR LF in the decoded id".into(), b64(format!("a\r\nb:{secret}").as_bytes())),
        ("invalid UTF-8 in the decoded id".into(), b64(b"\xff\xfe:secret")),
        ("percent-encoded invalid UTF-8 in the id".into(), b64(b"%C3%28:secret")),
        ("invalid UTF-8 in the decoded secret".into(), b64(&[machine.id.as_bytes(), &b":\xff\xfe"[..]].concat())),
        ("NUL in the decoded secret".into(), b64(format!("{}:s\0", machine.id).as_bytes())),
        ("emoji id".into(), b64("\u{1f600}:s".as_bytes())),
        ("9,000-byte id".into(), b64(format!("{}:s", "a".repeat(9000)).as_bytes())),
        ("invalid base64".into(), b"Basic !!!not base64!!!".to_vec()),
        ("base64 without a colon".into(), b64(b"just-an-id")),
        ("raw non-ASCII bytes in the header".into(), b"Basic \xff\xfe\xfd".to_vec()),
    ];
    for path in ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"] {
        for (label, value) in &headers {
            let body = match path {
                "/oauth2/token" => "grant_type=client_credentials".to_owned(),
                _ => "token=abc".to_owned(),
            };
            let got = post(&env, path, body, Some(value)).await;
            assert_refused(&format!("{path} Basic {label}"), &got, "invalid_client");
        }
    }
    // the same forms are fine when well-formed: the refusals above are about syntax
    let ok = b64(format!("{}:{}", rs.id, rs.secret.as_deref().expect("secret")).as_bytes());
    let (status, _, body) = post(&env, "/oauth2/introspect", "token=abc".into(), Some(&ok)).await;
    assert_eq!((status, &body["active"]), (200, &Value::Bool(false)), "{body}");
}
