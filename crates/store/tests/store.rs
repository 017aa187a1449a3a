//! The schema and queries against a real Postgres: migrations revert and reapply, rows round-trip,
//! a code is redeemed exactly once under concurrency, and deletes cascade as designed.

use chrono::{TimeDelta, Utc};
use diesel_async::RunQueryDsl;
use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
use protocol::scope::Scopes;
use protocol::secret::{PlainSecret, SecretHash, SecretKind};
use protocol::uri::ResourceUri;
use store::refresh_tokens::{self, RefreshTokenRow, Rotation};
use store::{clients, codes, users};
use testkit::TestDb;
use uuid::Uuid;

fn policy() -> MetadataPolicy {
    MetadataPolicy {
        max_redirect_uris: 5,
        default_scopes: Scopes::parse("mcp").expect("scope"),
        allowed_scopes: Scopes::parse("mcp").expect("scope"),
    }
}

async fn a_client(db: &TestDb) -> String {
    let m = ClientMetadataRequest {
        redirect_uris: Some(vec!["http://127.0.0.1/cb".into()]),
        token_endpoint_auth_method: Some("none".into()),
        ..Default::default()
    }
    .validate(&policy())
    .expect("valid");
    let id = Uuid::new_v4().to_string();
    let row = clients::ClientRow::new(id.clone(), ClientSource::Dynamic, &m, Utc::now());
    clients::insert(&mut *db.conn().await, &row).await.expect("insert client");
    id
}

async fn a_user(db: &TestDb) -> Uuid {
    let row = users::UserRow::new(&format!("u{}", Uuid::new_v4().simple()), "$argon2id$x".into(), Utc::now());
    users::insert(&mut *db.conn().await, &row).await.expect("insert user");
    row.id
}

fn code_row(client_id: &str, user_id: Uuid, hash: Vec<u8>) -> codes::CodeRow {
    let now = Utc::now();
    codes::CodeRow {
        code_hash: hash,
        grant_id: Uuid::now_v7(),
        client_id: client_id.into(),
        user_id,
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_sent: true,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resources: vec![protocol::uri::ResourceUri::parse("https://mcp.example/mcp").expect("uri")],
        scope: "mcp".into(),
        auth_time: now,
        created_at: now,
        expires_at: now + TimeDelta::seconds(60),
        used_at: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_revert_completely_and_reapply() {
    let db = TestDb::new().await;
    assert!(store::db::pending(&db.url).await.expect("pending").is_empty());
    let reverted = store::db::revert_all(&db.url).await.expect("revert");
    assert!(reverted >= 1);
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let left: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .get_result(&mut *db.conn().await)
    .await
    .expect("count");
    assert_eq!(left.n, 0, "down.sql leaves nothing behind");
    let applied = store::db::migrate(&db.url).await.expect("reapply");
    assert_eq!(applied.len(), reverted);
    assert!(store::db::migrate(&db.url).await.expect("idempotent").is_empty());
}

/// `/readyz` says not ready while the schema lacks this binary's migrations: every request would fail.
#[tokio::test(flavor = "multi_thread")]
async fn not_ready_on_an_unmigrated_database() {
    let db = TestDb::new().await;
    store::db::revert_all(&db.url).await.expect("revert");
    let server = testkit::spawn(Some(db.pool()), |_| {});
    let res = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(res.status(), 503);
    let body = res.text().await.expect("body");
    assert!(body.contains("\"database\":true") && body.contains("\"schema\":false"), "{body}");
    store::db::migrate(&db.url).await.expect("migrate");
    let res = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_take_turns() {
    let db = TestDb::new().await;
    store::db::revert_all(&db.url).await.expect("revert");
    let (a, b, c) = tokio::join!(store::db::migrate(&db.url), store::db::migrate(&db.url), store::db::migrate(&db.url));
    let total = a.expect("a").len() + b.expect("b").len() + c.expect("c").len();
    assert_eq!(total, store::db::MIGRATIONS_COUNT, "each migration applied exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_rows_round_trip() {
    let db = TestDb::new().await;
    let m = ClientMetadataRequest {
        redirect_uris: Some(vec!["https://app.example/cb".into(), "http://localhost/cb".into()]),
        client_name: Some("App".into()),
        contacts: Some(vec!["ops@example.com".into()]),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        ..Default::default()
    }
    .validate(&policy())
    .expect("valid");
    let mut row = clients::ClientRow::new("c-1".into(), ClientSource::Dynamic, &m, Utc::now());
    row.client_secret_hash = Some(PlainSecret::generate(SecretKind::ClientSecret).hash().to_vec());
    clients::insert(&mut *db.conn().await, &row).await.expect("insert");
    let got = clients::find(&mut *db.conn().await, "c-1").await.expect("find").expect("exists");
    assert_eq!(got.metadata, m);
    assert!(!got.is_public());
    assert!(clients::find(&mut *db.conn().await, "nope").await.expect("find").is_none());

    // a confidential method without a secret hash is refused by the schema itself
    let mut bad = clients::ClientRow::new("c-2".into(), ClientSource::Dynamic, &m, Utc::now());
    bad.client_secret_hash = None;
    assert!(clients::insert(&mut *db.conn().await, &bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_is_redeemed_exactly_once() {
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let code = PlainSecret::generate(SecretKind::AuthorizationCode);
    codes::insert(&mut *db.conn().await, code_row(&client, user, code.hash().to_vec())).await.expect("insert");

    let pool = db.pool();
    let hash = code.hash().to_vec();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            let hash = hash.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.expect("conn");
                codes::redeem(&mut conn, &hash, Utc::now()).await.expect("redeem")
            })
        })
        .collect();
    let mut fresh = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.expect("task") {
            codes::Redemption::Fresh(_) => fresh += 1,
            codes::Redemption::Replayed(_) => replayed += 1,
            codes::Redemption::Unknown => panic!("the code exists"),
        }
    }
    assert_eq!((fresh, replayed), (1, 49));
    let unknown = codes::redeem(&mut *db.conn().await, &[0u8; 32], Utc::now()).await.expect("redeem");
    assert!(matches!(unknown, codes::Redemption::Unknown));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_client_removes_its_codes() {
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let code = PlainSecret::generate(SecretKind::AuthorizationCode);
    codes::insert(&mut *db.conn().await, code_row(&client, user, code.hash().to_vec())).await.expect("insert");
    assert!(clients::delete(&mut *db.conn().await, &client).await.expect("delete"));
    let after = codes::redeem(&mut *db.conn().await, code.hash().as_bytes(), Utc::now()).await.expect("redeem");
    assert!(matches!(after, codes::Redemption::Unknown));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_lockout_counts_attempts_before_the_check() {
    let db = TestDb::new().await;
    let id = a_user(&db).await;
    let name = users::find(&mut *db.conn().await, id).await.expect("find").expect("exists").username;
    let now = Utc::now();
    let until = now + TimeDelta::seconds(300);
    let claim = |at| {
        let db = &db;
        let name = name.clone();
        async move { users::claim_attempt(&mut *db.conn().await, &name, 3, at, at + TimeDelta::seconds(300)).await }
    };
    for n in 1..=2 {
        let a = claim(now).await.expect("claim").expect("let through");
        assert_eq!(a.failed_logins, n);
    }
    let u = users::find(&mut *db.conn().await, id).await.expect("find").expect("exists");
    assert_eq!((u.failed_logins, u.locked_until), (2, None));
    let third = claim(now).await.expect("claim").expect("the last one let through");
    assert_eq!(third.failed_logins, 3, "it locks the user itself");
    let u = users::find(&mut *db.conn().await, id).await.expect("find").expect("exists");
    assert!(u.locked_until.is_some_and(|t| (t - until).num_milliseconds().abs() < 1), "{u:?}");
    assert!(claim(now).await.expect("claim").is_none(), "locked: not even counted");
    assert_eq!(users::find(&mut *db.conn().await, id).await.expect("f").expect("e").failed_logins, 3);

    // the lockout expires: the count starts again from zero
    let later = now + TimeDelta::seconds(301);
    let a = claim(later).await.expect("claim").expect("unlocked");
    assert_eq!(a.failed_logins, 1, "a new run");
    let u = users::find(&mut *db.conn().await, id).await.expect("find").expect("exists");
    assert_eq!((u.failed_logins, u.locked_until), (1, None));
    users::reset_failures(&mut *db.conn().await, id).await.expect("reset");
    let u = users::find(&mut *db.conn().await, id).await.expect("find").expect("exists");
    assert_eq!((u.failed_logins, u.locked_until), (0, None));

    // a disabled or unknown user is never let through
    users::set_disabled(&mut *db.conn().await, &name, true, now).await.expect("disable");
    assert!(claim(now).await.expect("claim").is_none());
    let unknown = users::claim_attempt(&mut *db.conn().await, "nobody", 3, now, until).await.expect("claim");
    assert!(unknown.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn databases_are_isolated() {
    let (a, b) = tokio::join!(TestDb::new(), TestDb::new());
    a_client(&a).await;
    assert_eq!(clients::list(&mut *a.conn().await).await.expect("list").len(), 1);
    assert!(clients::list(&mut *b.conn().await).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_codes_are_pruned_and_live_ones_kept() {
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let old = PlainSecret::generate(SecretKind::AuthorizationCode);
    let mut row = code_row(&client, user, old.hash().to_vec());
    row.expires_at = Utc::now() - TimeDelta::hours(2);
    codes::insert(&mut *db.conn().await, row).await.expect("insert");
    let live = PlainSecret::generate(SecretKind::AuthorizationCode);
    codes::insert(&mut *db.conn().await, code_row(&client, user, live.hash().to_vec())).await.expect("insert");
    let pruned = codes::prune(&mut *db.conn().await, Utc::now() - TimeDelta::hours(1)).await.expect("prune");
    assert_eq!(pruned, 1);
    let kept = codes::redeem(&mut *db.conn().await, live.hash().as_bytes(), Utc::now()).await.expect("redeem");
    assert!(matches!(kept, codes::Redemption::Fresh(_)));
}

/// At SIGTERM an idle actix worker stops (its runtime with it) while others still serve requests:
/// a pooled connection that worker opened, now in another worker's hands, must keep working.
#[test]
fn pooled_connections_outlive_the_runtime_that_opened_them() {
    let main = tokio::runtime::Runtime::new().expect("runtime");
    let db = main.block_on(TestDb::new());
    let pool = db.pool();
    let worker = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime");
    let mut conn = worker.block_on(async {
        let mut conn = pool.get().await.expect("a pooled connection");
        diesel::sql_query("SELECT 1").execute(&mut conn).await.expect("used on the worker");
        conn
    });
    drop(worker);
    main.block_on(async {
        diesel::sql_query("SELECT 1").execute(&mut conn).await.expect("still usable after its opener stopped");
    });
    drop(conn);
    drop(db);
}

fn token_row(
    client_id: &str,
    user_id: Uuid,
    grant_id: Uuid,
    family_expires_at: chrono::DateTime<Utc>,
) -> RefreshTokenRow {
    let now = Utc::now();
    RefreshTokenRow {
        id: Uuid::now_v7(),
        token_hash: PlainSecret::generate(SecretKind::RefreshToken).hash().to_vec(),
        grant_id,
        parent_id: None,
        client_id: client_id.into(),
        user_id: Some(user_id),
        scope: "mcp".into(),
        resources: vec![ResourceUri::parse("https://mcp.example/mcp").expect("uri")],
        auth_time: now,
        created_at: now,
        expires_at: family_expires_at.min(now + TimeDelta::days(1)),
        family_expires_at,
        used_at: None,
        revoked_at: None,
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(&mut *db.conn().await).await.expect("count").n
}

/// issue 19: a family's tokens live and die with its `grant_families` row, which pruning and
/// deletes of the user or the client go through.
#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_live_and_die_with_their_grant_family() {
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let now = Utc::now();
    let expired = Uuid::now_v7();
    let live = Uuid::now_v7();
    for t in [
        token_row(&client, user, expired, now - TimeDelta::hours(2)),
        token_row(&client, user, expired, now - TimeDelta::hours(2)),
        token_row(&client, user, live, now + TimeDelta::days(30)),
    ] {
        refresh_tokens::insert(&mut *db.conn().await, &t).await.expect("insert");
    }
    assert_eq!(count(&db, "SELECT count(*) AS n FROM grant_families").await, 2, "one row per family");

    // a token hash is a SHA-256: the store refuses any other length (the column has no CHECK)
    let mut short = token_row(&client, user, live, now + TimeDelta::days(30));
    short.token_hash.pop();
    let err = refresh_tokens::insert(&mut *db.conn().await, &short).await.expect_err("31 bytes");
    assert!(err.to_string().contains("must be 32 bytes"), "{err}");

    // the live family still rotates, and its successor belongs to it
    let first = refresh_tokens::family(&mut *db.conn().await, live).await.expect("family").remove(0);
    let rotation = Rotation {
        presented_hash: SecretHash(first.token_hash.clone().try_into().expect("32 bytes")),
        client_id: client.clone(),
        scopes: Scopes::default(),
        resources: vec![],
        now,
        new_id: Uuid::now_v7(),
        new_hash: PlainSecret::generate(SecretKind::RefreshToken).hash(),
        idle_expires_at: now + TimeDelta::days(1),
    };
    let rotated = refresh_tokens::rotate(&mut *db.conn().await, &rotation).await.expect("rotate").expect("rotated");
    assert_eq!(rotated.grant_id, live);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &rotation).await.expect("rotate").is_none(), "used once");

    let pruned = refresh_tokens::prune(&mut *db.conn().await, now).await.expect("prune");
    assert_eq!(pruned, 1, "the expired family");
    assert_eq!(count(&db, "SELECT count(*) AS n FROM refresh_tokens").await, 2, "the live family's two tokens");

    // deleting the user ends its families and their tokens
    diesel::sql_query("DELETE FROM users WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(user)
        .execute(&mut *db.conn().await)
        .await
        .expect("delete user");
    assert_eq!(count(&db, "SELECT count(*) AS n FROM grant_families").await, 0);
    assert_eq!(count(&db, "SELECT count(*) AS n FROM refresh_tokens").await, 0);

    // and so does deleting the client
    let user = a_user(&db).await;
    refresh_tokens::insert(&mut *db.conn().await, &token_row(&client, user, Uuid::now_v7(), now + TimeDelta::days(1)))
        .await
        .expect("insert");
    assert!(clients::delete(&mut *db.conn().await, &client).await.expect("delete"));
    assert_eq!(count(&db, "SELECT count(*) AS n FROM refresh_tokens").await, 0);
}

/// issue 19: without a foreign key, a family's deletion must still take the successor of a rotation
/// that was in flight. The rotation holds the presented token's row lock, so the deleting trigger's
/// first DELETE waits for it and deletes that token; the successor is not in that statement's
/// snapshot, and only the trigger's next DELETE (it repeats until one finds nothing) takes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_family_deleted_during_a_rotation_leaves_no_token_behind() {
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let now = Utc::now();
    let grant = Uuid::now_v7();
    let first = token_row(&client, user, grant, now + TimeDelta::days(30));
    refresh_tokens::insert(&mut *db.conn().await, &first).await.expect("insert");

    let mut rotating = db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut *rotating).await.expect("begin");
    let rotation = Rotation {
        presented_hash: SecretHash(first.token_hash.clone().try_into().expect("32 bytes")),
        client_id: client.clone(),
        scopes: Scopes::default(),
        resources: vec![],
        now,
        new_id: Uuid::now_v7(),
        new_hash: PlainSecret::generate(SecretKind::RefreshToken).hash(),
        idle_expires_at: now + TimeDelta::days(1),
    };
    refresh_tokens::rotate(&mut rotating, &rotation).await.expect("rotate").expect("rotated");

    let pool = db.pool();
    let deleting = tokio::spawn(async move {
        let mut conn = pool.get().await.expect("conn");
        diesel::sql_query("DELETE FROM grant_families WHERE grant_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(grant)
            .execute(&mut *conn)
            .await
            .expect("delete family")
    });
    // the delete is under way once it waits for the rotation's row lock
    let mut waited = 0;
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM grant_families%'";
    while count(&db, waiting).await == 0 {
        waited += 1;
        assert!(waited < 500, "the family's delete never waited for the rotation");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    diesel::sql_query("COMMIT").execute(&mut *rotating).await.expect("commit");
    assert_eq!(deleting.await.expect("join"), 1, "one family");
    assert_eq!(count(&db, "SELECT count(*) AS n FROM refresh_tokens").await, 0, "the successor went too");
}

/// What goes in as protocol types comes out as them, and a hand-edited row its type refuses fails
/// the query (an internal error for the caller), never a panic or a silently dropped element.
#[tokio::test(flavor = "multi_thread")]
async fn rows_speak_protocol_types_and_a_bad_stored_value_is_a_query_error() {
    use protocol::uri::ResourceUri;
    use store::{consents, refresh_tokens, resources};

    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let mut conn = db.conn().await;
    let uri = |s: &str| ResourceUri::parse(s).expect("uri");
    let (a, b) = (uri("https://a.example/mcp"), uri("https://b.example"));

    consents::grant(
        &mut conn,
        user,
        &client,
        &[a.clone(), b.clone()],
        &Scopes::parse("mcp read").expect("s"),
        Utc::now(),
    )
    .await
    .expect("grant");
    let found = consents::find(&mut conn, user, &client, std::slice::from_ref(&a)).await.expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].resource, found[0].scopes.to_string().as_str()), (&a, "mcp read"));

    let row = resources::ResourceRow {
        resource: uri("HTTPS://Files.example/api/"),
        name: "Files".into(),
        scopes: Scopes::parse("files files:write").expect("s"),
        documentation_url: None,
        created_at: Utc::now(),
        accept_machine_tokens: false,
    };
    resources::upsert(&mut conn, &row).await.expect("upsert");
    let listed = resources::list(&mut conn).await.expect("list");
    assert_eq!((listed[0].resource.as_str(), &listed[0].scopes), ("https://files.example/api", &row.scopes));

    let code = PlainSecret::generate(SecretKind::AuthorizationCode);
    let mut with_two = code_row(&client, user, code.hash().to_vec());
    with_two.resources = vec![a.clone(), b.clone()];
    codes::insert(&mut conn, with_two).await.expect("insert");
    let codes::Redemption::Fresh(redeemed) =
        codes::redeem(&mut conn, code.hash().as_bytes(), Utc::now()).await.expect("q")
    else {
        panic!("fresh")
    };
    assert_eq!(redeemed.resources, vec![a.clone(), b.clone()]);

    // the same rows edited by hand into what their types refuse
    for sql in [
        "UPDATE authorization_codes SET resources = ARRAY['https://a.example/mcp', 'not a uri']",
        "UPDATE consents SET scopes = ARRAY['mcp', 'bad\"scope']",
        "UPDATE resources SET resource = 'ftp://files.example'",
        "UPDATE clients SET redirect_uris = ARRAY[NULL]::text[]",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.expect(sql);
    }
    let is_invalid = |e: &diesel::result::Error| matches!(e, diesel::result::Error::DeserializationError(inner) if inner.is::<store::InvalidColumn>());
    let err = codes::redeem(&mut conn, code.hash().as_bytes(), Utc::now()).await.expect_err("a bad resource");
    assert!(is_invalid(&err), "codes");
    let err = consents::find(&mut conn, user, &client, std::slice::from_ref(&a)).await.expect_err("a bad scope");
    assert!(is_invalid(&err), "consents");
    let err = resources::list(&mut conn).await.expect_err("a bad resource");
    assert!(is_invalid(&err), "resources");
    let err = clients::find(&mut conn, &client).await.expect_err("a NULL redirect URI");
    assert!(matches!(&err, store::Error::Query(e) if is_invalid(e)), "clients");
    // a rotation reads the presented token's resources back: a bad one refuses it the same way
    let now = Utc::now();
    let token = refresh_tokens::RefreshTokenRow {
        id: Uuid::now_v7(),
        token_hash: vec![7; 32],
        grant_id: Uuid::now_v7(),
        parent_id: None,
        client_id: client.clone(),
        user_id: Some(user),
        scope: "mcp".into(),
        resources: vec![b.clone()],
        auth_time: now,
        created_at: now,
        expires_at: now + TimeDelta::hours(1),
        family_expires_at: now + TimeDelta::hours(1),
        used_at: None,
        revoked_at: None,
    };
    refresh_tokens::insert(&mut conn, &token).await.expect("insert");
    diesel::sql_query("UPDATE refresh_tokens SET resources = ARRAY['https://b.example', 'https://b.example/#x']")
        .execute(&mut conn)
        .await
        .expect("edit");
    let rotation = refresh_tokens::Rotation {
        presented_hash: SecretHash([7; 32]),
        client_id: client.clone(),
        scopes: Scopes::default(),
        resources: Vec::new(),
        now,
        new_id: Uuid::now_v7(),
        new_hash: SecretHash([8; 32]),
        idle_expires_at: now + TimeDelta::hours(1),
    };
    let err = refresh_tokens::rotate(&mut conn, &rotation).await.expect_err("a bad resource");
    assert!(is_invalid(&err), "refresh tokens");
}

/// Issue 15's migration moves the gateway's tool-call events out of `audit_events` into
/// `tool_calls`, and its down.sql moves them back: ids, times and details as they were.
#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_move_to_their_table_and_back() {
    use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
    use diesel_migrations::MigrationHarness;
    use store::{audit, tool_calls};
    let db = TestDb::new().await;
    let revert_last = |url: String| async move {
        let conn = AsyncPgConnection::establish(&url).await.expect("connect");
        tokio::task::spawn_blocking(move || {
            AsyncMigrationHarness::new(conn).revert_last_migration(store::db::MIGRATIONS).map(|v| v.to_string())
        })
        .await
        .expect("task")
        .expect("revert")
    };
    let as_seen = |rows: Vec<audit::AuditEventRow>| {
        let mut rows: Vec<_> =
            rows.into_iter().map(|r| (r.id, r.occurred_at, r.kind, r.client_id, r.user_id, r.ip, r.detail)).collect();
        rows.sort_by_key(|r| r.0);
        rows
    };
    let all = audit::Filter { limit: 100, ..Default::default() };

    // back to just before the tool_calls migration, whatever came after it
    let revert_tool_calls = |url: String| async move {
        for _ in 0..store::db::MIGRATIONS_COUNT {
            let reverted = revert_last(url.clone()).await;
            if reverted.contains("000300") {
                return;
            }
        }
        panic!("the tool_calls migration was never reverted");
    };
    revert_tool_calls(db.url.clone()).await;
    // as the gateway wrote them before: a user's call, a client's own, another issuer's subject
    diesel::sql_query(
        r#"INSERT INTO audit_events (kind, client_id, user_id, ip, detail) VALUES
        ('mcp.tool_call', 'app', '0190b2c4-0000-7000-8000-000000000001', '192.0.2.7',
         '{"route": "/mcp", "tool": "search_issues", "subject": "0190b2c4-0000-7000-8000-000000000001",
           "decision": "allowed", "reason": null, "upstream_status": 200, "duration_ms": 4}'),
        ('client.created', 'app', NULL, NULL, '{"source": "admin"}'),
        ('mcp.tool_call', 'robot', NULL, '2001:db8::1',
         '{"route": "/tracker", "tool": "drop_database", "subject": "robot", "decision": "denied",
           "reason": "denied by tools.deny", "upstream_status": null, "duration_ms": 0}'),
        ('mcp.tool_call', 'app', NULL, NULL,
         '{"route": "/mcp", "tool": "echo", "subject": "ext|42", "decision": "allowed",
           "reason": "upstream unavailable", "upstream_status": null, "duration_ms": 30001}')"#,
    )
    .execute(&mut *db.conn().await)
    .await
    .expect("old rows");
    let before = as_seen(audit::recent(&mut *db.conn().await, 100).await.expect("events"));
    assert_eq!(before.len(), 4);

    store::db::migrate(&db.url).await.expect("up");
    let mut conn = db.conn().await;
    let left = audit::recent(&mut conn, 100).await.expect("events");
    assert_eq!(left.len(), 1, "only the client event stays in audit_events");
    assert_eq!(as_seen(audit::list(&mut conn, &all).await.expect("list")), before, "listed as before");
    let dropped = audit::Filter { tool: Some("drop_database".into()), ..all.clone() };
    let rows = tool_calls::list(&mut conn, &dropped).await.expect("calls");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].allowed, rows[0].reason.as_deref(), rows[0].subject.as_deref()),
        (false, Some("denied by tools.deny"), None)
    );
    let other =
        tool_calls::list(&mut conn, &audit::Filter { tool: Some("echo".into()), ..all.clone() }).await.expect("calls");
    assert_eq!(other[0].subject.as_deref(), Some("ext|42"), "a subject no column holds is kept");
    // written after the migration, from the same sequence of ids
    let call = tool_calls::NewToolCall {
        occurred_at: Utc::now(),
        subject: None,
        user_id: None,
        client_id: Some("robot"),
        ip: None,
        route: "/mcp",
        tool: "search_issues",
        allowed: true,
        reason: None,
        upstream_status: Some(200),
        duration_ms: 2,
    };
    assert_eq!(tool_calls::record_many(&mut conn, &[call]).await.expect("insert"), 1);
    let now = as_seen(audit::list(&mut conn, &all).await.expect("list"));
    assert!(now.last().expect("row").0 > before.last().expect("row").0, "ids continue: {now:?}");
    drop(conn);

    revert_tool_calls(db.url.clone()).await;
    let back = as_seen(audit::recent(&mut *db.conn().await, 100).await.expect("events"));
    assert_eq!(back, now, "down.sql restores every call as an audit event");
    store::db::migrate(&db.url).await.expect("up again");
}

/// The gateway's binary `COPY` writes every column as a diesel read gives it back: NULLs, a user,
/// an IPv6 address, a refusal without status; and a tool name with a NUL, which Postgres refuses
/// in text, costs neither its own row nor the batch's.
#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_copied_in_binary_read_back_as_written() {
    use store::{audit, tool_calls};
    let db = TestDb::new().await;
    let copier = tool_calls::Copier::connect(&db.url, std::time::Duration::from_secs(5)).await.expect("connect");
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T17:04:03.123456Z").expect("time").with_timezone(&Utc);
    let alice = uuid::Uuid::parse_str("0190b2c4-0000-7000-8000-000000000001").expect("uuid");
    let full = tool_calls::NewToolCall {
        occurred_at: at,
        subject: Some("ext|42"),
        user_id: Some(alice),
        client_id: Some("app"),
        ip: Some("2001:db8::1"),
        route: "/mcp",
        tool: "search_issues",
        allowed: true,
        reason: Some("upstream unavailable"),
        upstream_status: Some(502),
        duration_ms: 30_001,
    };
    let bare = tool_calls::NewToolCall {
        occurred_at: at - chrono::Duration::days(40_000),
        subject: None,
        user_id: None,
        client_id: None,
        ip: None,
        route: "/",
        tool: "a\0b",
        allowed: false,
        reason: None,
        upstream_status: None,
        duration_ms: 0,
    };
    assert_eq!(copier.write(&[full.clone(), bare.clone()]).await.expect("copy"), 2);
    assert_eq!(copier.write(&[]).await.expect("an empty batch"), 0);
    let mut rows = tool_calls::list(&mut *db.conn().await, &audit::Filter { limit: 10, ..Default::default() })
        .await
        .expect("rows");
    rows.sort_by_key(|r| r.id);
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.occurred_at,
                r.subject.as_deref(),
                r.user_id,
                r.client_id.as_deref(),
                r.ip.as_deref(),
                r.route.as_str(),
                r.tool.as_str(),
                r.allowed,
                r.reason.as_deref(),
                r.upstream_status,
                r.duration_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                at,
                Some("ext|42"),
                Some(alice),
                Some("app"),
                Some("2001:db8::1"),
                "/mcp",
                "search_issues",
                true,
                Some("upstream unavailable"),
                Some(502),
                30_001
            ),
            (bare.occurred_at, None, None, None, None, "/", "a\u{FFFD}b", false, None, None, 0),
        ]
    );
    assert!(rows[0].id < rows[1].id, "ids in the order written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_federated_subject_is_one_user_whatever_its_email_and_never_a_local_namesake() {
    use store::federation::{self, Claims};
    let db = TestDb::new().await;
    let local = format!("alice{}", Uuid::new_v4().simple());
    let row = users::UserRow::new(&local, "$argon2id$x".into(), Utc::now());
    users::insert(&mut *db.conn().await, &row).await.expect("insert local user");

    // the first sign-ins of one subject race: exactly one user comes of them
    let pool = db.pool();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, name) = (pool.clone(), local.clone());
            tokio::spawn(async move {
                let c = Claims { provider: "corp", username: &name, ..Default::default() };
                let mut conn = pool.get().await.expect("conn");
                federation::sign_in(&mut conn, "https://idp.example", "sub-1", &c, Utc::now())
                    .await
                    .expect("sign in")
                    .id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.expect("task"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one user for one (issuer, subject)");
    let user = users::find(&mut *db.conn().await, ids[0]).await.expect("find").expect("exists");
    assert_ne!(user.id, row.id, "never linked to the local user of the same name");
    assert_eq!(user.username, format!("{local}-2"));
    assert!(!store::password::verify("anything at all", &user.password_hash), "no password signs a federated user in");

    // a later sign-in refreshes the display claims and keeps the user, whatever the email now is
    let claims = Claims {
        provider: "corp",
        username: &local,
        email: Some("a@corp.example"),
        email_verified: true,
        display_name: Some("Alice"),
    };
    let again = federation::sign_in(&mut *db.conn().await, "https://idp.example", "sub-1", &claims, Utc::now())
        .await
        .expect("again");
    assert_eq!(again.id, user.id);
    let links = federation::for_user(&mut *db.conn().await, user.id).await.expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].email.as_deref(), Some("a@corp.example"));
    assert!(links[0].email_verified);
    // unchanged claims within a minute write nothing; a minute later the last sign-in moves on
    let seen = links[0].last_login_at;
    let soon = seen + chrono::TimeDelta::seconds(30);
    federation::sign_in(&mut *db.conn().await, "https://idp.example", "sub-1", &claims, soon).await.expect("soon");
    let links = federation::for_user(&mut *db.conn().await, user.id).await.expect("links");
    assert_eq!(links[0].last_login_at, seen, "no write for a sign-in within the minute");
    let later = seen + chrono::TimeDelta::seconds(61);
    federation::sign_in(&mut *db.conn().await, "https://idp.example", "sub-1", &claims, later).await.expect("later");
    let links = federation::for_user(&mut *db.conn().await, user.id).await.expect("links");
    assert_eq!(links[0].last_login_at.timestamp_micros(), later.timestamp_micros());

    // the same subject at another issuer is somebody else
    let other = federation::sign_in(&mut *db.conn().await, "https://other.example", "sub-1", &claims, Utc::now())
        .await
        .expect("other");
    assert_ne!(other.id, user.id);
    assert_eq!(other.username, format!("{local}-3"));
}

/// The statements a connection sends, and the ones it prepared to keep, as diesel reports them.
#[derive(Default)]
struct Statements {
    sent: Vec<String>,
    prepared: usize,
}

async fn counted_connection(
    db: &TestDb,
) -> (diesel_async::AsyncPgConnection, std::sync::Arc<std::sync::Mutex<Statements>>) {
    use diesel::connection::InstrumentationEvent;
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(&db.url).await.expect("connect");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Statements::default()));
    let log = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut log = log.lock().expect("log");
        match event {
            InstrumentationEvent::StartQuery { query, .. } => log.sent.push(query.to_string()),
            InstrumentationEvent::CacheQuery { .. } => log.prepared += 1,
            _ => {}
        }
    });
    (conn, seen)
}

fn taken(seen: &std::sync::Mutex<Statements>) -> Statements {
    std::mem::take(&mut *seen.lock().expect("log"))
}

fn assertion(jti: &str) -> store::used_assertions::UsedAssertionRow {
    let now = Utc::now();
    store::used_assertions::UsedAssertionRow {
        issuer: "https://idp.example".into(),
        jti: jti.into(),
        client_id: "agent".into(),
        used_at: now,
        expires_at: now + TimeDelta::seconds(300),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_subjects_assertion_is_one_statement_and_each_jti_is_exchanged_once() {
    use diesel_async::AsyncConnection;
    use store::federation::{self, Claims};
    use store::used_assertions::{self, Exchange};
    let db = TestDb::new().await;
    let (mut conn, seen) = counted_connection(&db).await;
    let claims = Claims { provider: "corp", username: "ann", email: Some("ann@corp.example"), ..Default::default() };
    let signed_in = |e: Exchange| match e {
        Exchange::SignedIn(user) => user,
        Exchange::Replayed => panic!("refused as replayed"),
    };

    // the first sign-in of a subject: the one statement finds no link and writes nothing, then the
    // transaction with the advisory lock creates the user
    let first = assertion("jti-1");
    let ann = signed_in(
        used_assertions::exchange(&mut conn, &first, "sub-ann", &claims, first.used_at).await.expect("first"),
    );
    let s = taken(&seen);
    assert!(s.sent.len() > 8 && s.sent.iter().any(|q| q.starts_with("BEGIN")), "{:?}", s.sent);
    assert_eq!(count(&db, "SELECT count(*) AS n FROM users").await, 1);

    // every later one: one statement, prepared once and kept by the connection
    let second = assertion("jti-2");
    let again = signed_in(
        used_assertions::exchange(&mut conn, &second, "sub-ann", &claims, second.used_at).await.expect("second"),
    );
    assert_eq!(again.id, ann.id);
    assert_eq!(taken(&seen).sent.len(), 1);
    let third = assertion("jti-3");
    used_assertions::exchange(&mut conn, &third, "sub-ann", &claims, third.used_at).await.expect("third");
    let s = taken(&seen);
    assert_eq!((s.sent.len(), s.prepared), (1, 0), "one round trip, no prepare: {:?}", s.sent);
    assert!(s.sent[0].starts_with("WITH used AS"), "{:?}", s.sent);

    // replays, of a jti spent on the fast path or in the first sign-in's transaction, are refused
    // and write nothing, not even the claims they carry
    let changed = Claims { email: Some("ann@elsewhere.example"), ..claims.clone() };
    for replay in [&second, &first] {
        let e = used_assertions::exchange(&mut conn, replay, "sub-ann", &changed, Utc::now()).await.expect("replay");
        assert!(matches!(e, Exchange::Replayed), "{e:?}");
        assert_eq!(taken(&seen).sent.len(), 1);
    }
    let link = &federation::for_user(&mut conn, ann.id).await.expect("links")[0];
    assert_eq!(link.email.as_deref(), Some("ann@corp.example"));
    assert_eq!(count(&db, "SELECT count(*) AS n FROM used_assertions").await, 3);

    // the link is rewritten when the claims changed, or a minute after the last sign-in, not otherwise
    let seen_at = link.last_login_at;
    let soon = assertion("jti-4");
    used_assertions::exchange(&mut conn, &soon, "sub-ann", &claims, seen_at + TimeDelta::seconds(30))
        .await
        .expect("soon");
    let link = &federation::for_user(&mut conn, ann.id).await.expect("links")[0];
    assert_eq!(link.last_login_at, seen_at, "no write within the minute");
    let moved = assertion("jti-5");
    used_assertions::exchange(&mut conn, &moved, "sub-ann", &changed, moved.used_at).await.expect("new email");
    let link = &federation::for_user(&mut conn, ann.id).await.expect("links")[0];
    assert_eq!(link.email.as_deref(), Some("ann@elsewhere.example"));
    assert_eq!(link.last_login_at.timestamp_micros(), moved.used_at.timestamp_micros());
    let later = assertion("jti-6");
    let at = moved.used_at + TimeDelta::seconds(61);
    used_assertions::exchange(&mut conn, &later, "sub-ann", &changed, at).await.expect("a minute later");
    let link = &federation::for_user(&mut conn, ann.id).await.expect("links")[0];
    assert_eq!(link.last_login_at.timestamp_micros(), at.timestamp_micros());

    // a disabled user comes back as such (the caller refuses it); the jti is spent all the same
    assert!(users::set_disabled(&mut conn, "ann", true, Utc::now()).await.expect("disable"));
    let off = assertion("jti-7");
    let user = signed_in(
        used_assertions::exchange(&mut conn, &off, "sub-ann", &changed, off.used_at).await.expect("disabled"),
    );
    assert!(user.disabled);
    let e = used_assertions::exchange(&mut conn, &off, "sub-ann", &changed, Utc::now()).await.expect("replay");
    assert!(matches!(e, Exchange::Replayed));
    assert!(users::set_disabled(&mut conn, "ann", false, Utc::now()).await.expect("enable"));

    // one assertion presented on many connections at once (replicas): exactly one exchange
    let pool = db.pool();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let race = assertion("jti-race");
                let c = Claims { provider: "corp", username: "ann", ..Default::default() };
                let mut conn = pool.get().await.expect("conn");
                used_assertions::exchange(&mut conn, &race, "sub-ann", &c, race.used_at).await.expect("race")
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if let Exchange::SignedIn(user) = t.await.expect("task") {
            assert_eq!(user.id, ann.id);
            won += 1;
        }
    }
    assert_eq!(won, 1, "one of the concurrent presentations exchanges the jti");

    // what it replaces: the transaction around `consume` and `sign_in` took eight statements
    taken(&seen);
    let old = assertion("jti-old");
    conn.transaction(async |conn| {
        assert!(used_assertions::consume(conn, &old).await?);
        federation::sign_in(conn, &old.issuer, "sub-ann", &claims, old.used_at).await
    })
    .await
    .expect("the transaction");
    let s = taken(&seen);
    assert_eq!(s.sent.len(), 8, "{:?}", s.sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_reports_each_wait_and_each_timeout_to_its_observer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    struct Seen {
        acquired: AtomicU64,
        waited_ms: AtomicU64,
        timed_out: AtomicU64,
    }
    struct Observer(Arc<Seen>);
    impl store::db::AcquireObserver for Observer {
        fn acquired(&self, waited: Duration) {
            self.0.acquired.fetch_add(1, Ordering::Relaxed);
            self.0.waited_ms.fetch_max(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        fn timed_out(&self) {
            self.0.timed_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    let db = TestDb::new().await;
    let pool = store::db::pool(store::db::PoolOptions {
        url: db.url.clone(),
        pool_size: 1,
        connect_timeout_ms: 5_000,
        acquire_timeout_ms: 200,
    })
    .expect("pool");
    let seen = Arc::new(Seen::default());
    assert!(pool.observe(Observer(Arc::clone(&seen))));
    assert!(!pool.clone().observe(Observer(Arc::default())), "clones share the one observer");

    let held = pool.get().await.expect("the only connection");
    assert!(pool.get().await.is_err(), "none left within the acquire timeout");
    assert_eq!(AtomicU64::load(&seen.timed_out, Ordering::Relaxed), 1);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held);
    waiter.await.expect("task").expect("handed over when released");
    assert_eq!(AtomicU64::load(&seen.acquired, Ordering::Relaxed), 2);
    assert!(AtomicU64::load(&seen.waited_ms, Ordering::Relaxed) >= 40, "the second checkout waited for the first");
    assert_eq!(AtomicU64::load(&seen.timed_out, Ordering::Relaxed), 1);
}

/// Waits until a statement of this database starting with `prefix` waits for a lock.
async fn wait_for_lock(db: &TestDb, prefix: &str) {
    let waiting = format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE '{prefix}%'"
    );
    let mut waited = 0;
    while count(db, &waiting).await == 0 {
        waited += 1;
        assert!(waited < 500, "no statement `{prefix}…` ever waited for a lock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn rotation_of(client: &str, token_hash: &[u8]) -> Rotation {
    let now = Utc::now();
    Rotation {
        presented_hash: SecretHash(token_hash.to_vec().try_into().expect("32 bytes")),
        client_id: client.into(),
        scopes: Scopes::default(),
        resources: vec![],
        now,
        new_id: Uuid::now_v7(),
        new_hash: PlainSecret::generate(SecretKind::RefreshToken).hash(),
        idle_expires_at: now + TimeDelta::days(1),
    }
}

/// The family's `(revoked_at IS NOT NULL, user_disabled)`.
async fn family_state(db: &TestDb, grant_id: Uuid) -> (bool, bool) {
    #[derive(diesel::QueryableByName)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        revoked: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        user_disabled: bool,
    }
    let s: State = diesel::sql_query(
        "SELECT revoked_at IS NOT NULL AS revoked, user_disabled FROM grant_families WHERE grant_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(grant_id)
    .get_result(&mut *db.conn().await)
    .await
    .expect("family row");
    (s.revoked, s.user_disabled)
}

/// issue 19: a rotation reads whether its family is revoked and its user disabled from the family's
/// row alone, so every write that changes either keeps that row in step: a disable (and an enable),
/// a revocation, a family inserted for a disabled user or an already revoked grant. The successor
/// that a rotation in flight inserts while its family is revoked is not marked itself (it is not in
/// the revocation's snapshot) and is stopped by the family's row.
#[tokio::test(flavor = "multi_thread")]
async fn a_family_row_carries_its_revocation_and_its_users_disable() {
    use store::revocations::{self, GrantRevocation};
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let name = users::find(&mut *db.conn().await, user).await.expect("find").expect("user").username;
    let now = Utc::now();
    let grant = Uuid::now_v7();
    let first = token_row(&client, user, grant, now + TimeDelta::days(30));
    refresh_tokens::insert(&mut *db.conn().await, &first).await.expect("insert");
    assert_eq!(family_state(&db, grant).await, (false, false));

    // a disable stops the family; an enable lets it rotate again
    assert!(users::set_disabled(&mut *db.conn().await, &name, true, now).await.expect("disable"));
    assert_eq!(family_state(&db, grant).await, (false, true));
    let rotation = rotation_of(&client, &first.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &rotation).await.expect("rotate").is_none());
    // a family inserted for a disabled user is born disabled
    let other = token_row(&client, user, Uuid::now_v7(), now + TimeDelta::days(30));
    refresh_tokens::insert(&mut *db.conn().await, &other).await.expect("insert");
    assert_eq!(family_state(&db, other.grant_id).await, (false, true));
    assert!(users::set_disabled(&mut *db.conn().await, &name, false, now).await.expect("enable"));
    assert_eq!(family_state(&db, grant).await, (false, false));
    assert_eq!(family_state(&db, other.grant_id).await, (false, false));
    let second = refresh_tokens::rotate(&mut *db.conn().await, &rotation).await.expect("rotate").expect("rotated");
    assert_eq!(second.grant_id, grant);

    // the family is revoked while the successor's rotation is in flight
    let mut rotating = db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut *rotating).await.expect("begin");
    let next = rotation_of(&client, rotation.new_hash.as_bytes());
    refresh_tokens::rotate(&mut rotating, &next).await.expect("rotate").expect("rotated");
    let pool = db.pool();
    let revoking = tokio::spawn(async move {
        let mut conn = pool.get().await.expect("conn");
        revocations::revoke_grant(&mut conn, grant, GrantRevocation::Revoked, now, now + TimeDelta::days(31))
            .await
            .expect("revoke")
    });
    wait_for_lock(&db, "WITH r AS (UPDATE refresh_tokens").await;
    diesel::sql_query("COMMIT").execute(&mut *rotating).await.expect("commit");
    assert_eq!(revoking.await.expect("join"), 2, "the first token and the one whose rotation it waited for");
    assert_eq!(family_state(&db, grant).await, (true, false));
    let third = refresh_tokens::find_by_hash(&mut *db.conn().await, next.new_hash.as_bytes())
        .await
        .expect("find")
        .expect("the successor");
    assert!(third.revoked_at.is_none(), "the successor was not in the revocation's snapshot");
    let after = rotation_of(&client, next.new_hash.as_bytes());
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &after).await.expect("rotate").is_none(), "the family row");

    // a family whose grant is recorded as revoked (a code replayed before) is born revoked
    let replayed = token_row(&client, user, Uuid::now_v7(), now + TimeDelta::days(30));
    revocations::revoke_grant(
        &mut *db.conn().await,
        replayed.grant_id,
        GrantRevocation::CodeReplay,
        now,
        now + TimeDelta::days(31),
    )
    .await
    .expect("revoke");
    refresh_tokens::insert(&mut *db.conn().await, &replayed).await.expect("insert");
    assert_eq!(family_state(&db, replayed.grant_id).await, (true, false));
    let r = rotation_of(&client, &replayed.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &r).await.expect("rotate").is_none());
}

/// issue 19: a disable reaches a family inserted while it runs, in either order. The insert reads
/// the user's row under a share lock: a disable that comes second waits for the insert and then
/// marks the family (a second statement, a new snapshot); an insert that comes second waits for
/// the disable and reads `disabled`.
#[tokio::test(flavor = "multi_thread")]
async fn a_disable_reaches_a_family_inserted_while_it_runs() {
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let name = users::find(&mut *db.conn().await, user).await.expect("find").expect("user").username;
    let now = Utc::now();

    // the insert first, the disable waits for it
    let first = token_row(&client, user, Uuid::now_v7(), now + TimeDelta::days(30));
    let mut inserting = db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut *inserting).await.expect("begin");
    refresh_tokens::insert(&mut inserting, &first).await.expect("insert");
    let pool = db.pool();
    let n = name.clone();
    let disabling = tokio::spawn(async move {
        let mut conn = pool.get().await.expect("conn");
        users::set_disabled(&mut conn, &n, true, now).await.expect("disable")
    });
    wait_for_lock(&db, "UPDATE \"users\"").await;
    diesel::sql_query("COMMIT").execute(&mut *inserting).await.expect("commit");
    assert!(disabling.await.expect("join"));
    assert_eq!(family_state(&db, first.grant_id).await, (false, true));
    let r = rotation_of(&client, &first.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &r).await.expect("rotate").is_none());
    assert!(users::set_disabled(&mut *db.conn().await, &name, false, now).await.expect("enable"));

    // the disable first, the insert waits for it
    let second = token_row(&client, user, Uuid::now_v7(), now + TimeDelta::days(30));
    let mut disabling = db.conn().await;
    AnsiTransactionManager::begin_transaction(&mut *disabling).await.expect("begin");
    assert!(users::set_disabled(&mut disabling, &name, true, now).await.expect("disable"));
    let pool = db.pool();
    let row = second.clone();
    let inserting = tokio::spawn(async move {
        let mut conn = pool.get().await.expect("conn");
        refresh_tokens::insert(&mut conn, &row).await.expect("insert")
    });
    wait_for_lock(&db, "WITH family AS").await;
    AnsiTransactionManager::commit_transaction(&mut *disabling).await.expect("commit");
    inserting.await.expect("join");
    assert_eq!(family_state(&db, second.grant_id).await, (false, true));
    let r = rotation_of(&client, &second.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &r).await.expect("rotate").is_none());
}

/// issue 19: a user's grants ended (a password change, a disable, a lockout) while one of the user's
/// codes is being exchanged: the family the exchange inserts is revoked whichever commits first,
/// and ending the grants does not wait for the code the exchange holds (which, with the user's row
/// changed first, would deadlock: the exchange reads the user under a share lock).
#[tokio::test(flavor = "multi_thread")]
async fn ending_a_users_grants_revokes_a_family_its_code_is_exchanged_into_meanwhile() {
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    let db = TestDb::new().await;
    let client = a_client(&db).await;
    let user = a_user(&db).await;
    let name = users::find(&mut *db.conn().await, user).await.expect("find").expect("user").username;
    let now = Utc::now();
    let until = now + TimeDelta::days(31);

    // the exchange first (code redeemed, family inserted, not committed): ending the grants waits
    // for the family's row, then marks it
    let code = code_row(&client, user, PlainSecret::generate(SecretKind::AuthorizationCode).hash().to_vec());
    codes::insert(&mut *db.conn().await, code.clone()).await.expect("code");
    let mut exchanging = db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut *exchanging).await.expect("begin");
    assert!(matches!(
        codes::redeem(&mut exchanging, &code.code_hash, now).await.expect("redeem"),
        codes::Redemption::Fresh(_)
    ));
    let token = token_row(&client, user, code.grant_id, now + TimeDelta::days(30));
    refresh_tokens::insert(&mut exchanging, &token).await.expect("insert");
    let pool = db.pool();
    let ending = tokio::spawn(async move {
        let mut conn = pool.get().await.expect("conn");
        users::end_sessions_and_grants(&mut conn, user, "password_changed", now, until).await.expect("end")
    });
    wait_for_lock(&db, "WITH fam AS").await;
    diesel::sql_query("COMMIT").execute(&mut *exchanging).await.expect("commit");
    ending.await.expect("join");
    assert!(family_state(&db, code.grant_id).await.0, "revoked");
    let r = rotation_of(&client, &token.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &r).await.expect("rotate").is_none());

    // a disable first (the user's row changed, the code's family inserted revoked), the exchange
    // meanwhile: its redemption goes through (its code is skipped, not waited for), its family
    // insert waits for the disable, and its token joins the revoked family
    let code = code_row(&client, user, PlainSecret::generate(SecretKind::AuthorizationCode).hash().to_vec());
    codes::insert(&mut *db.conn().await, code.clone()).await.expect("code");
    let mut exchanging = db.conn().await;
    diesel::sql_query("BEGIN").execute(&mut *exchanging).await.expect("begin");
    assert!(matches!(
        codes::redeem(&mut exchanging, &code.code_hash, now).await.expect("redeem"),
        codes::Redemption::Fresh(_)
    ));
    let mut disabling = db.conn().await;
    AnsiTransactionManager::begin_transaction(&mut *disabling).await.expect("begin");
    assert!(users::set_disabled(&mut disabling, &name, true, now).await.expect("disable"));
    let ending = users::end_sessions_and_grants(&mut disabling, user, "user_disabled", now, until);
    tokio::time::timeout(std::time::Duration::from_secs(10), ending)
        .await
        .expect("ending the grants waited for the code the exchange holds")
        .expect("end");
    let token = token_row(&client, user, code.grant_id, now + TimeDelta::days(30));
    let inserting = tokio::spawn(async move {
        refresh_tokens::insert(&mut exchanging, &token).await.expect("insert");
        diesel::sql_query("COMMIT").execute(&mut *exchanging).await.expect("commit");
        token
    });
    wait_for_lock(&db, "WITH family AS").await;
    AnsiTransactionManager::commit_transaction(&mut *disabling).await.expect("commit");
    let token = inserting.await.expect("join");
    assert!(family_state(&db, code.grant_id).await.0, "revoked");
    let r = rotation_of(&client, &token.token_hash);
    assert!(refresh_tokens::rotate(&mut *db.conn().await, &r).await.expect("rotate").is_none());
    assert_eq!(count(&db, "SELECT count(*) AS n FROM grant_families").await, 2, "one row per grant");
}
