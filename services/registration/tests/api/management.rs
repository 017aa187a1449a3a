//! RFC 7592: read, update and delete with the registration access token, and every way to fail.

use chrono::{TimeDelta, Utc};
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::scope::Scopes;
use protocol::secret::SecretHash;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::{audit, clients, codes, users};
use uuid::Uuid;

use crate::common::{App, assert_error, assert_invalid_token_challenge, start, start_with, token_of};

fn rust_client() -> Value {
    json!({
        "client_name": "rmcp",
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "response_types": ["code"],
        "application_type": "native"
    })
}

async fn put(app: &App, info: &Value, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .put(info["registration_client_uri"].as_str().expect("uri"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn send(app: &App, method: Method, url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = app.http.request(method.clone(), url);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if method == Method::PUT {
        req = req.json(&json!({"client_id": "x", "redirect_uris": ["http://127.0.0.1/cb"]}));
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread")]
async fn read_returns_the_registered_metadata() {
    let app = start().await;
    let info = app.register_ok(&rust_client()).await;
    let res = app.read(&info, Some(token_of(&info))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let read: Value = res.json().await.expect("json");
    // RFC 7592 §3: the token is part of the response; it does not rotate by default, so it is the same
    assert_eq!(read, info, "the same members, the registration access token included");
    // the token keeps working
    assert_eq!(app.read(&info, Some(token_of(&info))).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_missing_or_foreign_tokens_are_401_invalid_token() {
    let app = start().await;
    let a = app.register_ok(&rust_client()).await;
    let b = app.register_ok(&rust_client()).await;
    let a_uri = a["registration_client_uri"].as_str().expect("uri");
    let unknown_uri = app.server.url(&format!("/oauth2/register/{}", Uuid::new_v4()));

    // an operator-made client has no registration token: it cannot be managed over HTTP
    let admin_id = Uuid::new_v4().to_string();
    let m = ClientMetadataRequest { grant_types: Some(vec!["client_credentials".into()]), ..Default::default() }
        .validate(&MetadataPolicy {
            max_redirect_uris: 1,
            default_scopes: Scopes::default(),
            allowed_scopes: Scopes::default(),
        })
        .expect("valid");
    let mut row = clients::ClientRow::new(admin_id.clone(), ClientSource::Admin, &m, Utc::now());
    row.client_secret_hash = Some(SecretHash::of("spcs_x").to_vec());
    clients::insert(&mut *app.conn().await, &row).await.expect("insert");
    let admin_uri = app.server.url(&format!("/oauth2/register/{admin_id}"));

    let bearer_b = format!("Bearer {}", token_of(&b));
    let bearer_a = format!("Bearer {}", token_of(&a));
    let cases: Vec<(&str, Option<&str>)> = vec![
        (a_uri, None),
        (a_uri, Some("Bearer sprat_wrong")),
        (a_uri, Some(bearer_b.as_str())),
        (a_uri, Some("Basic c3ByYXQ6eA==")),
        (a_uri, Some("Bearer")),
        (unknown_uri.as_str(), Some(bearer_a.as_str())),
        (admin_uri.as_str(), Some(bearer_a.as_str())),
        (admin_uri.as_str(), Some("Bearer ")),
    ];
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for (url, auth) in &cases {
            let res = send(&app, method.clone(), url, *auth).await;
            let headers = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
            assert_invalid_token_challenge(&headers);
        }
    }
    // nothing was changed or deleted by any of that
    assert_eq!(app.read(&a, Some(token_of(&a))).await.status(), StatusCode::OK);
    assert!(clients::find(&mut *app.conn().await, &admin_id).await.expect("query").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn update_replaces_the_metadata() {
    let app = start().await;
    let mut body = rust_client();
    body["logo_uri"] = json!("https://app.example.com/logo.png");
    body["scope"] = json!("mcp");
    let info = app.register_ok(&body).await;
    let id = info["client_id"].as_str().expect("id");

    let update = json!({
        "client_id": id,
        "client_name": "rmcp renamed",
        "redirect_uris": ["http://127.0.0.1:9999/new-callback", "https://app.example.com/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        // server-assigned members a client echoes back are ignored
        "client_id_issued_at": 1,
        "registration_client_uri": "https://evil.example/x",
        "registration_access_token": "sprat_nope"
    });
    let res = put(&app, &info, token_of(&info), &update).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let updated: Value = res.json().await.expect("json");
    crate::common::assert_client_information(&updated);
    assert_eq!(updated["client_name"], "rmcp renamed");
    assert_eq!(updated["redirect_uris"], update["redirect_uris"]);
    assert!(updated.get("logo_uri").is_none(), "omitted members are removed (RFC 7592 §2.2)");
    assert_eq!(updated["scope"], "files:read mcp", "an omitted scope is the defaults again");
    assert_eq!(updated["client_id_issued_at"], info["client_id_issued_at"]);
    assert_eq!(updated["registration_client_uri"], info["registration_client_uri"]);
    assert_eq!(
        updated["registration_access_token"], info["registration_access_token"],
        "RFC 7592 §3: the response carries the token, unchanged as it does not rotate by default"
    );

    let read: Value = app.read(&info, Some(token_of(&info))).await.json().await.expect("json");
    assert_eq!(read["client_name"], "rmcp renamed");
    let client = clients::find(&mut *app.conn().await, id).await.expect("query").expect("client");
    assert!(client.resolve_redirect(Some("https://app.example.com/cb")).is_some());
    assert!(client.resolve_redirect(Some("http://127.0.0.1:8765/callback")).is_none(), "the old one is gone");

    let events = audit::for_client(&mut *app.conn().await, id).await.expect("audit");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["client.registered", "client.updated"]);
    assert_eq!(events[1].detail["client_name"], "rmcp renamed");
    assert_eq!(events[1].detail["secret_issued"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_is_validated_like_registration() {
    let app = start().await;
    let info = app.register_ok(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "conf"})).await;
    let id = info["client_id"].as_str().expect("id");
    let token = token_of(&info);
    let base = json!({"client_id": id, "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "changed"});

    let with = |member: &str, value: Value| {
        let mut b = base.clone();
        b[member] = value;
        b
    };
    let mut without_id = base.clone();
    without_id.as_object_mut().expect("object").remove("client_id");
    for (body, status, code) in [
        (without_id, StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        (with("client_id", json!("another-client")), StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        (with("client_secret", json!("spcs_chosen_by_the_client")), StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        (with("redirect_uris", json!(["javascript:alert(1)"])), StatusCode::BAD_REQUEST, "invalid_redirect_uri"),
        (with("redirect_uris", json!(["http://evil.example/cb"])), StatusCode::BAD_REQUEST, "invalid_redirect_uri"),
        (with("grant_types", json!(["implicit"])), StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        (with("client_uri", json!("http://example.com")), StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        (with("client_x", json!("a".repeat(70 * 1024))), StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
    ] {
        assert_error(put(&app, &info, token, &body).await, status, code).await;
    }
    let res = app
        .http
        .put(info["registration_client_uri"].as_str().expect("uri"))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(base.to_string())
        .send()
        .await
        .expect("request");
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // nothing changed, and only the registration was audited
    let read: Value = app.read(&info, Some(token)).await.json().await.expect("json");
    assert_eq!(read["client_name"], "conf");
    assert_eq!(audit::for_client(&mut *app.conn().await, id).await.expect("audit").len(), 1);

    // the current secret may be repeated
    let ok = put(&app, &info, token, &with("client_secret", info["client_secret"].clone())).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let updated: Value = ok.json().await.expect("json");
    assert_eq!(updated["client_name"], "changed");
    assert!(updated.get("client_secret").is_none(), "the secret is unchanged and not shown again");
    let row = clients::find_row(&mut *app.conn().await, id).await.expect("query").expect("row");
    let secret = info["client_secret"].as_str().expect("secret");
    assert!(SecretHash::of(secret).matches(row.client_secret_hash.as_deref().expect("hash")));
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_auth_method_issues_or_drops_the_secret() {
    let app = start().await;
    let info = app.register_ok(&rust_client()).await;
    let id = info["client_id"].as_str().expect("id");
    let token = token_of(&info);
    let mut body = rust_client();
    body["client_id"] = json!(id);

    body["token_endpoint_auth_method"] = json!("client_secret_post");
    let res = put(&app, &info, token, &body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let confidential: Value = res.json().await.expect("json");
    let secret = confidential["client_secret"].as_str().expect("a secret for the now confidential client");
    assert_eq!(confidential["client_secret_expires_at"], 0);
    let row = clients::find_row(&mut *app.conn().await, id).await.expect("query").expect("row");
    assert!(SecretHash::of(secret).matches(row.client_secret_hash.as_deref().expect("hash")));

    body["token_endpoint_auth_method"] = json!("none");
    let res = put(&app, &info, token, &body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let public: Value = res.json().await.expect("json");
    crate::common::assert_client_information(&public);
    let row = clients::find_row(&mut *app.conn().await, id).await.expect("query").expect("row");
    assert!(row.client_secret_hash.is_none(), "a public client keeps no secret");
    let events = audit::for_client(&mut *app.conn().await, id).await.expect("audit");
    assert_eq!(events[1].detail["secret_issued"], true);
    assert!(!events[1].detail.to_string().contains(secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_when_configured() {
    let app = start_with(|s| s.registration.rotate_registration_token = true).await;
    let info = app.register_ok(&rust_client()).await;
    let first = token_of(&info).to_owned();

    let res = app.read(&info, Some(&first)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let read: Value = res.json().await.expect("json");
    let second = read["registration_access_token"].as_str().expect("a new token").to_owned();
    assert_ne!(second, first);
    let res = app.read(&info, Some(&first)).await;
    assert_invalid_token_challenge(&assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await);

    let mut body = rust_client();
    body["client_id"] = info["client_id"].clone();
    let res = put(&app, &info, &second, &body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.expect("json");
    let third = updated["registration_access_token"].as_str().expect("rotated on update too");
    assert_eq!(app.read(&info, Some(&second)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.read(&info, Some(third)).await.status(), StatusCode::OK);

    let events = audit::for_client(&mut *app.conn().await, info["client_id"].as_str().expect("id")).await.expect("a");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "client.registered",
            "client.registration_token_rotated",
            "client.updated",
            "client.registration_token_rotated"
        ]
    );
}

/// Arranges a user with an authorization code and a refresh token for `client_id`; returns the
/// two grant ids.
async fn grants_for(app: &App, client_id: &str) -> (Uuid, Uuid) {
    let mut conn = app.conn().await;
    let user = users::UserRow::new(&format!("u{}", Uuid::new_v4().simple()), "$argon2id$x".into(), Utc::now());
    users::insert(&mut conn, &user).await.expect("user");
    let now = Utc::now();
    let code_grant = Uuid::now_v7();
    codes::insert(
        &mut conn,
        &codes::CodeRow {
            code_hash: SecretHash::of(&format!("spac_{code_grant}")).to_vec(),
            grant_id: code_grant,
            client_id: client_id.into(),
            user_id: user.id,
            redirect_uri: "http://127.0.0.1:8765/callback".into(),
            redirect_uri_sent: true,
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            resources: vec![Some(crate::common::RESOURCE.into())],
            scope: "mcp".into(),
            auth_time: now,
            created_at: now,
            expires_at: now + TimeDelta::seconds(60),
            used_at: None,
        },
    )
    .await
    .expect("code");
    let refresh_grant = Uuid::now_v7();
    for _ in 0..2 {
        // two rotations of one family: one grant id
        diesel::sql_query(
            "WITH family AS (INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, \
             family_expires_at) VALUES ($3, $4, $5, ARRAY[$6], $7, $7 + interval '30 days') \
             ON CONFLICT (grant_id) DO NOTHING) \
             INSERT INTO refresh_tokens (id, token_hash, grant_id, client_id, user_id, scope, resources, auth_time, \
             created_at, expires_at, family_expires_at) \
             VALUES ($1, $2, $3, $4, $5, 'mcp', ARRAY[$6], $7, $7, $7 + interval '1 day', $7 + interval '30 days')",
        )
        .bind::<SqlUuid, _>(Uuid::now_v7())
        .bind::<diesel::sql_types::Bytea, _>(SecretHash::of(&Uuid::new_v4().to_string()).to_vec())
        .bind::<SqlUuid, _>(refresh_grant)
        .bind::<Text, _>(client_id)
        .bind::<SqlUuid, _>(user.id)
        .bind::<Text, _>(crate::common::RESOURCE)
        .bind::<Timestamptz, _>(now)
        .execute(&mut conn)
        .await
        .expect("refresh token");
    }
    (code_grant, refresh_grant)
}

#[derive(diesel::QueryableByName)]
struct Revoked {
    #[diesel(sql_type = SqlUuid)]
    grant_id: Uuid,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: chrono::DateTime<Utc>,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(app: &App, sql: &str, client_id: &str) -> i64 {
    let c: Count =
        diesel::sql_query(sql).bind::<Text, _>(client_id).get_result(&mut *app.conn().await).await.expect("q");
    c.n
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_revokes_everything_the_client_holds() {
    let app = start().await;
    let info = app.register_ok(&rust_client()).await;
    let other = app.register_ok(&rust_client()).await;
    let id = info["client_id"].as_str().expect("id");
    let (code_grant, refresh_grant) = grants_for(&app, id).await;
    let (other_code, other_refresh) = grants_for(&app, other["client_id"].as_str().expect("id")).await;

    let before = Utc::now();
    let res = app
        .http
        .delete(info["registration_client_uri"].as_str().expect("uri"))
        .bearer_auth(token_of(&info))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.bytes().await.expect("body").is_empty());

    // gone: the token no longer works, and the id answers like any unknown one
    let res = app.read(&info, Some(token_of(&info))).await;
    assert_invalid_token_challenge(&assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await);
    assert!(clients::find(&mut *app.conn().await, id).await.expect("query").is_none());
    for sql in [
        "SELECT count(*) AS n FROM authorization_codes WHERE client_id = $1",
        "SELECT count(*) AS n FROM refresh_tokens WHERE client_id = $1",
    ] {
        assert_eq!(count(&app, sql, id).await, 0, "{sql}");
    }

    // every grant family of the client is revoked for one access-token lifetime
    let revoked: Vec<Revoked> = diesel::sql_query("SELECT grant_id, reason, expires_at FROM revoked_grants")
        .load(&mut *app.conn().await)
        .await
        .expect("revoked");
    let mut ids: Vec<Uuid> = revoked.iter().map(|r| r.grant_id).collect();
    ids.sort();
    let mut expected = vec![code_grant, refresh_grant];
    expected.sort();
    assert_eq!(ids, expected, "exactly the deleted client's families");
    assert!(!ids.contains(&other_code) && !ids.contains(&other_refresh));
    let ttl = TimeDelta::seconds(app.settings.tokens.access_token_ttl_secs.as_secs() as i64);
    for r in &revoked {
        assert_eq!(r.reason, "client_deleted");
        assert!(r.expires_at >= before + ttl - TimeDelta::seconds(1) && r.expires_at <= Utc::now() + ttl);
    }
    let other_id = other["client_id"].as_str().expect("id");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens WHERE client_id = $1", other_id).await, 2);

    let events = audit::for_client(&mut *app.conn().await, id).await.expect("audit");
    let last = events.last().expect("events");
    assert_eq!(last.kind, "client.deleted");
    assert_eq!(last.detail["revoked_grants"], 2);
    assert_eq!(last.ip.as_deref(), Some("127.0.0.1"));

    // a second delete with the same token: 401, as for any unknown client
    let res = app
        .http
        .delete(info["registration_client_uri"].as_str().expect("uri"))
        .bearer_auth(token_of(&info))
        .send()
        .await
        .expect("request");
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// Issue 13: an RFC 7592 update cannot add client_credentials to a self-registered client.
#[tokio::test(flavor = "multi_thread")]
async fn update_refuses_client_credentials() {
    let app = start().await;
    let mut body = rust_client();
    body["token_endpoint_auth_method"] = json!("client_secret_basic");
    let info = app.register_ok(&body).await;
    let id = info["client_id"].as_str().expect("id");
    let mut update = body.clone();
    update["client_id"] = json!(id);
    update["grant_types"] = json!(["authorization_code", "refresh_token", "client_credentials"]);
    let res = put(&app, &info, token_of(&info), &update).await;
    let status = res.status();
    let err: Value = res.json().await.expect("json");
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")), "{err}");
    assert!(err["error_description"].as_str().expect("why").contains("sallyport client add"), "{err}");
    let client = clients::find(&mut *app.conn().await, id).await.expect("query").expect("client");
    assert!(!client.metadata.grant_types.contains(&protocol::client::GrantType::ClientCredentials), "unchanged");
}

/// Issue 13: codes now going somewhere else is not what the users approved: a change of
/// `redirect_uris` forgets the client's remembered consents; an update that keeps them does not.
#[tokio::test(flavor = "multi_thread")]
async fn changed_redirect_uris_forget_remembered_consents() {
    use store::consents;
    let app = start().await;
    let info = app.register_ok(&rust_client()).await;
    let id = info["client_id"].as_str().expect("id");
    let user = users::UserRow::new("alice", "$argon2id$x".into(), Utc::now());
    users::insert(&mut *app.conn().await, &user).await.expect("user");
    let remembered = || async {
        consents::find(&mut *app.conn().await, user.id, id, &[crate::common::RESOURCE.to_owned()]).await.expect("q")
    };
    let resource = vec![crate::common::RESOURCE.to_owned()];
    consents::grant(&mut *app.conn().await, user.id, id, &resource, &["mcp".into()], Utc::now()).await.expect("g");
    assert_eq!(remembered().await.len(), 1);

    // same redirect URIs (in another order is the same set), a new name: the consent stays
    let mut same = rust_client();
    same["client_id"] = json!(id);
    same["client_name"] = json!("renamed");
    assert_eq!(put(&app, &info, token_of(&info), &same).await.status(), StatusCode::OK);
    assert_eq!(remembered().await.len(), 1, "nothing about where codes go changed");

    let mut moved = same.clone();
    moved["redirect_uris"] = json!(["http://127.0.0.1:8765/callback", "http://127.0.0.1:9999/other"]);
    assert_eq!(put(&app, &info, token_of(&info), &moved).await.status(), StatusCode::OK);
    assert!(remembered().await.is_empty(), "a new redirect URI: the users are asked again");
    let events = audit::for_client(&mut *app.conn().await, id).await.expect("audit");
    assert_eq!(events.last().expect("event").detail["consents_forgotten"], 1, "{events:?}");
}
