//! Client authentication and the shape of every token-endpoint response.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use protocol::client::{AuthMethod, GrantType};
use serde_json::Value;

use crate::support::*;

fn cc(id: Option<&str>, auth: AuthMethod) -> ClientSpec<'_> {
    ClientSpec { id, auth, grants: &[GrantType::ClientCredentials], scope: "mcp", ..Default::default() }
}

async fn with_header(env: &Env, authorization: &str, form: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let res = env
        .http
        .post(env.url("/oauth2/token"))
        .header("authorization", authorization)
        .form(form)
        .send()
        .await
        .expect("post");
    let status = res.status().as_u16();
    let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_owned());
    (status, challenge, res.json().await.expect("json"))
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_credentials_are_form_urlencoded() {
    let env = Env::start().await;
    let client = env.client(cc(Some("svc:reports +1"), AuthMethod::ClientSecretBasic)).await;
    let secret = client.secret.clone().expect("secret");
    let grant = [("grant_type", "client_credentials")];
    let encoded = basic("svc%3Areports+%2B1", &secret);
    let (status, _, body) = with_header(&env, &encoded, &grant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["client_id"], "svc:reports +1");

    // a body client_id equal to the Basic one is tolerated; another is not
    let (status, _, _) = with_header(&env, &encoded, &[grant[0], ("client_id", "svc:reports +1")]).await;
    assert_eq!(status, 200);
    let (status, challenge, body) = with_header(&env, &encoded, &[grant[0], ("client_id", "someone-else")]).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"));
    assert!(challenge.expect("challenge").starts_with("Basic realm="));
    // two methods at once
    let (status, _, body) = with_header(&env, &encoded, &[grant[0], ("client_secret", &secret)]).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"));
    // a wrong secret, an unknown client, garbage
    for auth in
        [basic("svc%3Areports+%2B1", "wrong"), basic("nobody", &secret), "Basic !!!".into(), "Basic Zm9v".into()]
    {
        let (status, challenge, body) = with_header(&env, &auth, &grant).await;
        assert_eq!((status, error(&body)), (401, "invalid_client"), "{auth}");
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"sallyport\""));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn post_none_and_their_failures() {
    let env = Env::start().await;
    let grant = [("grant_type", "client_credentials")];
    let post = env.client(cc(None, AuthMethod::ClientSecretPost)).await;
    let (status, body) = env.post_form("/oauth2/token", &post.post_auth(&grant)).await;
    assert_eq!(status, 200, "{body}");
    // a confidential client may use either secret method: both carry the same secret
    let res = env.post_basic("/oauth2/token", &post.id, post.secret.as_deref().expect("secret"), &grant).await;
    assert_eq!(res.status(), 200);

    let no_secret = [grant[0], ("client_id", post.id.as_str())];
    let (status, body) = env.post_form("/oauth2/token", &no_secret).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"), "a confidential client must authenticate");
    let empty_secret = [grant[0], ("client_id", post.id.as_str()), ("client_secret", "")];
    let (status, body) = env.post_form("/oauth2/token", &empty_secret).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"));
    let (status, body) = env.post_form("/oauth2/token", &grant).await;
    assert_eq!((status, error(&body)), (401, "invalid_client"), "no client at all");

    // public clients: client_id alone, an empty secret counts as none, a real secret is refused
    let public = env.client(ClientSpec::default()).await;
    let code = env.code(&public.id, env.user().await, CodeSpec::default()).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", CALLBACK),
        ("client_id", public.id.as_str()),
        ("client_secret", ""),
    ];
    let (status, body) = env.post_form("/oauth2/token", &exchange).await;
    assert_eq!(status, 200, "{body}");
    let res = env
        .post_basic(
            "/oauth2/token",
            &public.id,
            "",
            &[("grant_type", "refresh_token"), ("refresh_token", body["refresh_token"].as_str().expect("rt"))],
        )
        .await;
    assert_eq!(res.status(), 200, "Basic with an empty password is a public client naming itself");
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", &public.id),
                ("client_secret", "guess"),
            ],
        )
        .await;
    assert_eq!((status, error(&body)), (401, "invalid_client"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_client_secret_is_refused() {
    let env = Env::start().await;
    let client = env.client(cc(None, AuthMethod::ClientSecretBasic)).await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE clients SET client_secret_expires_at = now() - interval '1 second'"),
        &mut *env.db.conn().await,
    )
    .await
    .expect("expire");
    let res = env
        .post_basic(
            "/oauth2/token",
            &client.id,
            client.secret.as_deref().expect("secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn form_encoding_only_and_the_response_shape() {
    let env = Env::start().await;
    let client = env.client(cc(None, AuthMethod::ClientSecretPost)).await;
    let url = env.url("/oauth2/token");

    let res =
        env.http.post(&url).json(&serde_json::json!({"grant_type": "client_credentials"})).send().await.expect("post");
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert_eq!(error(&res.json().await.expect("json")), "invalid_request");

    let (status, body) = env
        .post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")])
        .await;
    assert_eq!((status, error(&body)), (400, "invalid_request"), "a repeated parameter");
    let (status, body) = env.post_form("/oauth2/token", &client.post_auth(&[("grant_type", "password")])).await;
    assert_eq!((status, error(&body)), (400, "unsupported_grant_type"));
    let (status, body) = env.post_form("/oauth2/token", &client.post_auth(&[])).await;
    assert_eq!((status, error(&body)), (400, "invalid_request"));
    let res = env.http.get(&url).send().await.expect("get");
    assert_eq!(res.status(), 405);
    let res = env
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=".repeat(40_000))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 413);

    let res = env
        .http
        .post(&url)
        .form(&client.post_auth(&[("grant_type", "client_credentials")]))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert!(res.headers()["content-type"].to_str().expect("ct").starts_with("application/json"));
    let text = res.text().await.expect("text");
    assert!(!text.contains("null"), "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let mut keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_are_405_with_allow() {
    let env = Env::start().await;
    let cases: [(&str, &[reqwest::Method], &str); 4] = [
        ("/oauth2/token", &[reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE], "POST"),
        ("/oauth2/revoke", &[reqwest::Method::GET, reqwest::Method::PATCH], "POST"),
        ("/oauth2/introspect", &[reqwest::Method::GET, reqwest::Method::HEAD], "POST"),
        ("/oauth2/jwks", &[reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE], "GET, HEAD"),
    ];
    for (path, methods, allow) in cases {
        for method in methods {
            let res = env.http.request(method.clone(), env.url(path)).send().await.expect("request");
            assert_eq!(res.status(), 405, "{method} {path}");
            // RFC 9110 §15.5.6: a 405 names the methods the resource supports
            assert_eq!(res.headers()["allow"], allow, "{method} {path}");
            assert_eq!(res.headers()["content-type"], "application/json", "{method} {path}");
            if *method != reqwest::Method::HEAD {
                assert_eq!(error(&res.json().await.expect("json")), "invalid_request", "{method} {path}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metadata_document_client_authenticates_as_none() {
    let env = Env::start().await;
    // a client ID metadata document served on a local port
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let doc_url = format!("http://127.0.0.1:{}/client.json", listener.local_addr().expect("addr").port());
    let doc = serde_json::json!({
        "client_id": doc_url,
        "client_name": "Doc client",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
    .to_string();
    let _docs = testkit::spawn_on(listener, None, move |cfg| {
        let doc = doc.clone();
        cfg.route(
            "/client.json",
            actix_web::web::get().to(move || {
                let doc = doc.clone();
                async move { actix_web::HttpResponse::Ok().content_type("application/json").body(doc) }
            }),
        );
    });
    // the authorize service would have resolved (and so mirrored) the client before issuing a code
    let documents = server::cimd::MetadataDocuments::new(env.settings.metadata_documents.clone()).expect("docs");
    let policy = protocol::client::MetadataPolicy {
        max_redirect_uris: 10,
        default_scopes: protocol::scope::Scopes::parse("mcp").expect("scope"),
        allowed_scopes: protocol::scope::Scopes::parse("mcp mcp:admin").expect("scope"),
    };
    documents.resolve(&env.ctx.pool, &doc_url, &policy).await.expect("resolve");

    let code = env.code(&doc_url, env.user().await, CodeSpec::default()).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", CALLBACK),
        ("client_id", doc_url.as_str()),
    ];
    let (status, body) = env.post_form("/oauth2/token", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().expect("at"))["client_id"], doc_url.as_str());
    let (status, body) = env
        .post_form(
            "/oauth2/token",
            &[("grant_type", "client_credentials"), ("client_id", &doc_url), ("client_secret", "x")],
        )
        .await;
    assert_eq!((status, error(&body)), (401, "invalid_client"), "a document client has no secret");
}
