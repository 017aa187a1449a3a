//! The `sallyport` binary as an operator runs it, against a real database.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use testkit::TestDb;

fn sallyport(db_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sallyport"))
        .args(args)
        .env("SALLYPORT__DATABASE__URL", db_url)
        .env_remove("SALLYPORT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sallyport");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_managed_with_argon2id() {
    let db = TestDb::new().await;
    let out = sallyport(&db.url, &["migrate"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("up to date"));

    let out = sallyport(&db.url, &["user", "add", "alice", "--password-stdin"], Some("correct horse battery\n"));
    assert!(out.status.success(), "{}", text(&out));
    let again = sallyport(&db.url, &["user", "add", "alice", "--password-stdin"], Some("x\n"));
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"));

    let generated = sallyport(&db.url, &["user", "add", "bob"], None);
    assert!(text(&generated).contains("password: "), "{}", text(&generated));

    let mut conn = db.conn().await;
    let alice = store::users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice");
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(store::password::verify("correct horse battery", &alice.password_hash));

    let out = sallyport(&db.url, &["user", "disable", "alice"], None);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&sallyport(&db.url, &["user", "list"], None));
    assert!(list.contains("alice") && list.contains("disabled") && list.contains("bob"), "{list}");

    let out = sallyport(&db.url, &["user", "passwd", "alice", "--password-stdin"], Some("another long password\n"));
    assert!(out.status.success(), "{}", text(&out));
    let alice = store::users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice");
    assert!(store::password::verify("another long password", &alice.password_hash));

    let short = sallyport(&db.url, &["user", "add", "carol", "--password-stdin"], Some("short\n"));
    assert!(!short.status.success());
    let missing = sallyport(&db.url, &["user", "disable", "nobody"], None);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no user nobody"));
}

/// Issue 16: `user list` says how each user signs in; `user disable` works for a user an OpenID
/// provider brought (a password user and a federated one, and one with both).
#[tokio::test(flavor = "multi_thread")]
async fn user_list_shows_how_each_user_signs_in() {
    let db = TestDb::new().await;
    let out = sallyport(&db.url, &["user", "add", "alice", "--password-stdin"], Some("correct horse battery\n"));
    assert!(out.status.success(), "{}", text(&out));
    let mut conn = db.conn().await;
    let now = chrono::Utc::now();
    let claims = |provider, username| store::federation::Claims {
        provider,
        username,
        email: None,
        email_verified: false,
        display_name: None,
    };
    let fed = store::federation::sign_in(&mut conn, "https://op.example", "s-1", &claims("corp", "frank"), now)
        .await
        .expect("federated user");
    // a provider's user who calls herself alice becomes alice-2, never the local alice
    store::federation::sign_in(&mut conn, "https://op.example", "s-2", &claims("corp", "alice"), now)
        .await
        .expect("link");
    let lines = text(&sallyport(&db.url, &["user", "list"], None));
    let line = |name: &str| lines.lines().find(|l| l.starts_with(&format!("{name}\t"))).map(str::to_owned);
    let frank = line("frank").expect("frank listed");
    assert!(frank.contains("\tactive\tprovider:corp\t"), "{frank}");
    assert!(line("alice").expect("alice").contains("\tpassword\t"), "{lines}");
    assert!(line("alice-2").expect("alice-2: never the local alice").contains("\tprovider:corp\t"), "{lines}");
    let out = sallyport(&db.url, &["user", "disable", "frank"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(store::users::find(&mut conn, fed.id).await.expect("query").expect("frank").disabled);
    let lines = text(&sallyport(&db.url, &["user", "list"], None));
    assert!(lines.contains("frank\t") && lines.lines().any(|l| l.starts_with("frank\t") && l.contains("\tdisabled\t")));
}

#[test]
fn bad_configuration_is_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_sallyport"))
        .args(["migrate"])
        .env("SALLYPORT__TOKENS__CODE_TTL_SECS", "9999")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tokens.code_ttl_secs"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A value of the wrong form stops the process at load, with the key and what was wrong, before
/// anything else happens (no database is needed to find out).
#[test]
fn a_value_of_the_wrong_form_stops_the_load_naming_its_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("sallyport.toml");
    std::fs::write(&file, "[[gateway.routes]]\nprefix = \"/a\"\nauth = false\nupstream = \"file:///etc/passwd\"\n")
        .expect("write");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("SALLYPORT__TOKENS__ACCESS_TOKEN_TTL_SECS", "abc")],
            r#"configuration key `tokens.access_token_ttl_secs`: invalid duration "abc": a whole number of seconds"#,
        ),
        (&[("SALLYPORT__TOKENS__SIGNING_ALG", "HS256")], "configuration key `tokens.signing_alg`"),
        (&[("SALLYPORT__SERVICES__TOKEN", "token:8083")], "configuration key `services.token`: not an http(s) URL"),
        (&[("SALLYPORT__ISSUER", "https://auth.example.com/")], "configuration key `issuer`: must not end with '/'"),
        (
            &[("SALLYPORT_CONFIG", file.to_str().expect("utf-8"))],
            "configuration key `gateway.routes[0].upstream`: not an http(s) URL",
        ),
    ];
    for (vars, said) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sallyport"))
            .args(["migrate"])
            .env_remove("SALLYPORT_CONFIG")
            .envs(vars.iter().copied())
            .output()
            .expect("run");
        assert!(!out.status.success(), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{vars:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("database"), "{vars:?}: {err}");
    }
}

#[test]
fn unreachable_database_is_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_sallyport"))
        .args(["user", "list"])
        .env("SALLYPORT__DATABASE__URL", "postgres://nobody:secret@127.0.0.1:1/none")
        .env("SALLYPORT__DATABASE__CONNECT_TIMEOUT_MS", "500")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(!err.contains("secret"), "the password is redacted: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn line_value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_manage_resources() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| sallyport(&db.url, args, None);
    let out = run(&["resource", "list"]);
    assert!(out.status.success() && text(&out).contains("no protected resources"), "{}", text(&out));
    let out = run(&["client", "add", "--name", "Back end", "--scope", "files"]);
    assert!(!out.status.success() && text(&out).contains("sallyport resource add"), "{}", text(&out));

    let out = run(&[
        "resource",
        "add",
        "https://Files.example/api/",
        "--name",
        "Files",
        "--scope",
        "files",
        "--scope",
        "files:write",
        "--documentation",
        "https://docs.example/files",
        "--accept-machine-tokens",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("https://files.example/api"), "normalised: {}", text(&out));
    assert!(text(&out).contains("tokens without a user: accepted"), "{}", text(&out));
    let rows = store::resources::list(&mut *db.conn().await).await.expect("rows");
    assert!(rows[0].accept_machine_tokens, "stored");
    let list = text(&run(&["resource", "list"]));
    assert!(list.contains("https://files.example/api\tdatabase\tfiles files:write\tFiles"), "{list}");
    // the scope it offers can now be given to a client
    let out = run(&["client", "add", "--name", "Back end", "--scope", "files"]);
    assert!(out.status.success(), "{}", text(&out));

    for (args, expected) in [
        (vec!["resource", "add", "https://a.example/x#f", "--name", "X"], "not a valid resource URI"),
        (
            vec!["resource", "add", "https://a.example/x", "--name", "X", "--documentation", "ftp://x"],
            "--documentation",
        ),
        (vec!["resource", "remove", "https://nowhere.example/"], "no resource"),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
    let out = run(&["resource", "remove", "https://files.example/api"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&run(&["resource", "list"])).contains("no protected resources"));
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_manage_clients() {
    use protocol::secret::SecretHash;
    use store::{audit, clients};
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sallyport"))
            .args(args)
            .env("SALLYPORT__DATABASE__URL", &db.url)
            .env("SALLYPORT__REGISTRATION__DEFAULT_SCOPES", "mcp")
            .env_remove("SALLYPORT_CONFIG")
            .output()
            .expect("run sallyport")
    };

    // a resource server: confidential, client_credentials, allowed to introspect; the secret shown once
    let out = run(&["client", "add", "--name", "Resource server", "--may-introspect"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let rs = line_value(&printed, "client_id:").expect("client id printed").to_owned();
    let secret = line_value(&printed, "client_secret:").expect("secret printed").to_owned();
    assert!(secret.starts_with("spcs_"), "{printed}");
    let mut conn = db.conn().await;
    let row = clients::find_row(&mut conn, &rs).await.expect("query").expect("stored");
    assert_eq!(row.source, "admin");
    assert!(row.may_introspect);
    assert!(SecretHash::of(&secret).matches(row.client_secret_hash.as_deref().expect("hash")), "only the hash");
    assert_eq!(row.grant_types, vec![protocol::client::GrantType::ClientCredentials]);
    assert_eq!(row.scope, "mcp");

    // a public client with a chosen id: no secret at all
    let out = run(&[
        "client",
        "add",
        "--name",
        "App",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--client-id",
        "my-app",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("client_secret"), "{}", text(&out));
    let app = clients::find(&mut conn, "my-app").await.expect("query").expect("stored");
    assert!(app.is_public() && app.secret_hash.is_none());

    for (args, expected) in [
        (
            vec![
                "client",
                "add",
                "--name",
                "Again",
                "--public",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--client-id",
                "my-app",
            ],
            "exists",
        ),
        (vec!["client", "add", "--name", "No redirect", "--public"], "redirect-uri"),
        (vec!["client", "add", "--name", "Unsafe", "--redirect-uri", "javascript:alert(1)"], "invalid_redirect_uri"),
        (vec!["client", "add", "--name", "Scope", "--scope", "admin"], "not offered"),
        (vec!["client", "add", "--name", "Url", "--client-id", "https://a.example/c"], "client id"),
        (vec!["client", "allow-introspect", "my-app"], "public"),
        (vec!["client", "show", "nobody"], "no client nobody"),
        (vec!["client", "remove", "nobody"], "no client nobody"),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }

    let list = text(&run(&["client", "list"]));
    assert!(list.contains(&rs) && list.contains("may-introspect") && list.contains("my-app"), "{list}");

    let out = run(&["client", "show", "my-app"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["client_id"], "my-app");
    assert_eq!(shown["token_endpoint_auth_method"], "none");
    assert_eq!(shown["source"], "admin");
    assert_eq!(shown["redirect_uris"], serde_json::json!(["http://127.0.0.1/cb"]));

    let out = run(&["client", "allow-introspect", &rs, "--revoke"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!clients::find_row(&mut conn, &rs).await.expect("query").expect("row").may_introspect);

    let out = run(&["client", "remove", "my-app"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(clients::find(&mut conn, "my-app").await.expect("query").is_none());

    let kinds: Vec<String> =
        audit::for_client(&mut conn, &rs).await.expect("audit").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["client.created", "client.updated"]);
    let deleted = audit::for_client(&mut conn, "my-app").await.expect("audit");
    assert_eq!(deleted.last().map(|e| e.kind.as_str()), Some("client.deleted"));
    for event in audit::recent(&mut conn, 100).await.expect("audit") {
        assert!(!event.detail.to_string().contains(&secret), "no secret in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_are_rotated_with_overlap() {
    use store::signing_keys::{self, KeyPhase};
    let db = TestDb::new().await;
    let kek = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
    let keys = |args: &[&str], key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sallyport"));
        cmd.arg("keys").args(args).env("SALLYPORT__DATABASE__URL", &db.url).env_remove("SALLYPORT_CONFIG");
        match key {
            Some(k) => cmd.env("SALLYPORT__KEYS__ENCRYPTION_KEY", k),
            None => cmd.env_remove("SALLYPORT__KEYS__ENCRYPTION_KEY"),
        };
        cmd.output().expect("run sallyport keys")
    };
    let out = keys(&["list"], Some(kek));
    assert!(out.status.success() && text(&out).contains("no signing keys"), "{}", text(&out));
    let out = keys(&["rotate"], None);
    assert!(!out.status.success() && text(&out).contains("keys.encryption_key"), "{}", text(&out));

    let out = keys(&["rotate", "--activate-in", "0"], Some(kek));
    assert!(out.status.success(), "{}", text(&out));
    let out = keys(&["rotate", "--alg", "EdDSA"], Some(kek));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("stays published until"), "{}", text(&out));

    let rows = signing_keys::list(&mut *db.conn().await).await.expect("rows");
    let now = chrono::Utc::now();
    assert_eq!(rows.len(), 2);
    let (old, new) = (&rows[0], &rows[1]);
    assert_eq!((old.phase(now), new.phase(now)), (KeyPhase::Signing, KeyPhase::Pending), "published before it signs");
    assert_eq!(new.alg, "EdDSA");
    assert_eq!(old.retires_at, Some(new.activates_at));
    let overlap = old.expires_at.expect("expires") - new.activates_at;
    assert_eq!(overlap.num_seconds(), 86_400, "keys.retired_publish_secs");
    let list = text(&keys(&["list"], Some(kek)));
    assert!(list.contains(&old.kid) && list.contains("signing") && list.contains("pending"), "{list}");

    // another key-encryption key than the one the keys are sealed under is refused
    let out = keys(&["rotate"], Some("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="));
    assert!(!out.status.success() && text(&out).contains("does not unseal"), "{}", text(&out));
    assert_eq!(signing_keys::list(&mut *db.conn().await).await.expect("rows").len(), 2);
}

/// `sallyport up` on a database whose signing keys were sealed under another key-encryption key
/// stops and says so (the token service's error is recognised by its type, not its text).
#[tokio::test(flavor = "multi_thread")]
async fn up_explains_keys_sealed_under_another_key() {
    let db = TestDb::new().await;
    let home = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], kek: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sallyport"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(home.path())
            .env("SALLYPORT__DATABASE__URL", &db.url)
            .env("SALLYPORT__KEYS__ENCRYPTION_KEY", kek)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("SALLYPORT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run sallyport");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("sallyport {args:?} did not stop");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        child.wait_with_output().expect("output")
    };
    let out = run(&["keys", "rotate", "--activate-in", "0"], "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=");
    assert!(out.status.success(), "{}", text(&out));

    let out = run(&["up", "--listen", "127.0.0.1:0"], "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("sealed with another key than keys.encryption_key (configuration)")
            && said.contains("cannot unseal"),
        "{said}"
    );
}

/// Issue 13: `user passwd` and `user disable` end the user's sessions and revoke every grant of
/// theirs, seen over HTTP at the token service (refresh refused at once, access tokens inactive at
/// introspection); `user enable` revives none of it; each is an audit event.
#[tokio::test(flavor = "multi_thread")]
async fn user_lifecycle_ends_sessions_and_grants() {
    use chrono::{TimeDelta, Utc};
    use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
    use protocol::scope::Scopes;
    use protocol::secret::{PlainSecret, SecretHash, SecretKind};
    use serde_json::Value;
    use server::config::ResourceSettings;
    use store::{audit, clients, codes, sessions, users};

    const MCP: &str = "https://mcp.example/mcp";
    const CB: &str = "http://127.0.0.1/cb";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-lifecycle";
    let db = TestDb::new().await;
    let out = sallyport(&db.url, &["user", "add", "alice", "--password-stdin"], Some("correct horse battery\n"));
    assert!(out.status.success(), "{}", text(&out));
    let alice = users::find_by_username(&mut *db.conn().await, "alice").await.expect("q").expect("alice").id;

    let mut settings = testkit::settings(&db);
    settings.resources = vec![ResourceSettings {
        resource: MCP.into(),
        name: "MCP".into(),
        scopes: vec!["mcp".into()],
        documentation: None,
        accept_machine_tokens: false,
    }];
    let app = token::app(testkit::context(&db), (&settings).into()).await.expect("token service");
    let server = testkit::spawn_app(&app, Some(db.pool()));
    let http = reqwest::Client::new();

    let policy = MetadataPolicy {
        max_redirect_uris: 1,
        default_scopes: Scopes::parse("mcp").expect("scope"),
        allowed_scopes: Scopes::parse("mcp").expect("scope"),
    };
    let public = ClientMetadataRequest {
        redirect_uris: Some(vec![CB.into()]),
        token_endpoint_auth_method: Some("none".into()),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        ..Default::default()
    }
    .validate(&policy)
    .expect("metadata");
    let mut conn = db.conn().await;
    clients::insert(&mut conn, &clients::ClientRow::new("app".into(), ClientSource::Admin, &public, Utc::now()))
        .await
        .expect("client");
    let rs_meta = ClientMetadataRequest { grant_types: Some(vec!["client_credentials".into()]), ..Default::default() }
        .validate(&policy)
        .expect("metadata");
    let mut rs = clients::ClientRow::new("rs".into(), ClientSource::Admin, &rs_meta, Utc::now());
    rs.client_secret_hash = Some(SecretHash::of("rs-secret").to_vec());
    rs.may_introspect = true;
    clients::insert(&mut conn, &rs).await.expect("rs");
    drop(conn);

    // what a sign-in leaves: a session, and tokens from a code
    let sign_in = || async {
        let now = Utc::now();
        let session = sessions::SessionRow {
            id: uuid::Uuid::now_v7(),
            session_hash: SecretHash::of(&uuid::Uuid::new_v4().to_string()).to_vec(),
            user_id: alice,
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + TimeDelta::hours(1),
        };
        sessions::insert(&mut *db.conn().await, &session).await.expect("session");
        let code = PlainSecret::generate(SecretKind::AuthorizationCode);
        let row = codes::CodeRow {
            code_hash: code.hash().to_vec(),
            grant_id: uuid::Uuid::now_v7(),
            client_id: "app".into(),
            user_id: alice,
            redirect_uri: CB.into(),
            redirect_uri_sent: true,
            code_challenge: protocol::pkce::s256(VERIFIER),
            resources: vec![protocol::uri::ResourceUri::parse(MCP).expect("uri")],
            scope: "mcp".into(),
            auth_time: now,
            created_at: now,
            expires_at: now + TimeDelta::seconds(60),
            used_at: None,
        };
        codes::insert(&mut *db.conn().await, row).await.expect("code");
        code.into_inner()
    };
    let token = |form: Vec<(&'static str, String)>| {
        let req = http.post(server.url("/oauth2/token")).form(&form);
        async move {
            let res = req.send().await.expect("token");
            (res.status().as_u16(), res.json::<Value>().await.expect("json"))
        }
    };
    let redeem = |code: String| {
        token(vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", "app".into()),
            ("code", code),
            ("code_verifier", VERIFIER.into()),
            ("redirect_uri", CB.into()),
        ])
    };
    let refresh = |rt: &str| {
        token(vec![("grant_type", "refresh_token".into()), ("client_id", "app".into()), ("refresh_token", rt.into())])
    };
    let active = |t: &str| {
        let req = http.post(server.url("/oauth2/introspect")).basic_auth("rs", Some("rs-secret")).form(&[("token", t)]);
        async move { req.send().await.expect("introspect").json::<Value>().await.expect("json")["active"] == true }
    };
    let kinds = || async {
        audit::for_user(&mut *db.conn().await, alice)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };

    for (args, stdin, kind) in [
        (vec!["user", "passwd", "alice", "--password-stdin"], Some("another long password\n"), "user.password_changed"),
        (vec!["user", "disable", "alice"], None, "user.disabled"),
    ] {
        let (status, tokens) = redeem(sign_in().await).await;
        assert_eq!(status, 200, "{tokens}");
        let at = tokens["access_token"].as_str().expect("at").to_owned();
        let rt = tokens["refresh_token"].as_str().expect("rt").to_owned();
        let pending = sign_in().await;
        assert!(active(&at).await);

        let out = sallyport(&db.url, &args, stdin);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("ended 2 session(s)"), "{}", text(&out));
        let (status, body) = refresh(&rt).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{kind}: refresh at once: {body}");
        assert!(!active(&at).await, "{kind}: the access token is inactive at introspection");
        let (status, body) = redeem(pending).await;
        assert_eq!(status, 400, "{kind}: a code issued before is gone: {body}");
        let user_sessions: i64 = {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            store::schema::sessions::table
                .filter(store::schema::sessions::user_id.eq(alice))
                .count()
                .get_result(&mut *db.conn().await)
                .await
                .expect("count")
        };
        assert_eq!(user_sessions, 0, "{kind}: sessions ended");
        assert!(kinds().await.contains(&kind.to_owned()), "{kind} audited");
    }

    // disabled: a code issued meanwhile redeems nothing; enabling revives nothing that was ended
    let (status, _) = redeem(sign_in().await).await;
    assert_eq!(status, 400, "a disabled user's code");
    let out = sallyport(&db.url, &["user", "enable", "alice"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(kinds().await.contains(&"user.enabled".to_owned()));
    let (status, tokens) = redeem(sign_in().await).await;
    assert_eq!(status, 200, "enabled: a new sign-in works: {tokens}");
    assert!(active(tokens["access_token"].as_str().expect("at")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_provisions_the_gateways_introspection_client() {
    use protocol::secret::SecretHash;
    use store::{audit, clients};
    let db = TestDb::new().await;
    let migrate = |id: &str, secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_sallyport"))
            .arg("migrate")
            .env("SALLYPORT__DATABASE__URL", &db.url)
            .env("SALLYPORT__GATEWAY__INTROSPECTION_CLIENT_ID", id)
            .env("SALLYPORT__GATEWAY__INTROSPECTION_CLIENT_SECRET", secret)
            .env_remove("SALLYPORT_CONFIG")
            .output()
            .expect("run sallyport")
    };
    let first = "a-deployment-secret-of-enough-length-0001";
    let out = migrate("sallyport-gateway", first);
    assert!(out.status.success() && text(&out).contains("sallyport-gateway: created"), "{}", text(&out));
    let out = migrate("sallyport-gateway", first);
    assert!(text(&out).contains("sallyport-gateway: unchanged"), "{}", text(&out));
    let mut conn = db.conn().await;
    let row = clients::find_row(&mut conn, "sallyport-gateway").await.expect("query").expect("stored");
    assert!(row.may_introspect && row.source == "admin");
    assert!(SecretHash::of(first).matches(row.client_secret_hash.as_deref().expect("hash")), "only the hash");

    // a new secret in the deployment rotates the stored one
    let second = "a-deployment-secret-of-enough-length-0002";
    assert!(text(&migrate("sallyport-gateway", second)).contains("sallyport-gateway: updated"));
    let row = clients::find_row(&mut conn, "sallyport-gateway").await.expect("query").expect("stored");
    assert!(SecretHash::of(second).matches(row.client_secret_hash.as_deref().expect("hash")));
    let kinds: Vec<String> =
        audit::for_client(&mut conn, "sallyport-gateway").await.expect("audit").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["client.created", "client.updated"]);

    // a weak secret, and an id a client registered for itself, are refused
    let out = migrate("sallyport-gateway", "short");
    assert!(!out.status.success() && text(&out).contains("at least 32"), "{}", text(&out));
    let mut dynamic = row.clone();
    dynamic.client_id = "self-registered".into();
    dynamic.source = "dynamic".into();
    clients::insert(&mut conn, &dynamic).await.expect("insert");
    let out = migrate("self-registered", second);
    assert!(!out.status.success() && text(&out).contains("registered itself"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_the_tool_call_audit() {
    use store::{audit, tool_calls, users};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let now = chrono::Utc::now();
    let hash = store::password::hash("a-password-for-audit").expect("hash");
    users::insert(&mut conn, &users::UserRow::new("alice", hash, now)).await.expect("user");
    let alice = users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice").id;
    let call = |tool: &'static str, client: &'static str, user: Option<uuid::Uuid>, allowed: bool, ago_secs: i64| {
        tool_calls::NewToolCall {
            occurred_at: now - chrono::Duration::seconds(ago_secs),
            subject: None,
            user_id: user,
            client_id: Some(client),
            ip: Some("127.0.0.1"),
            route: "/mcp",
            tool,
            allowed,
            reason: (!allowed).then_some("denied by tools.deny"),
            upstream_status: allowed.then_some(200),
            duration_ms: 3,
        }
    };
    tool_calls::record_many(&mut conn, &[call("search_issues", "app-1", Some(alice), true, 7200)])
        .await
        .expect("insert");
    // a client event between the calls: one log, newest first
    let event = audit::NewAuditEvent {
        occurred_at: now - chrono::Duration::seconds(120),
        kind: audit::kind::CLIENT_UPDATED,
        client_id: Some("robot"),
        user_id: None,
        ip: None,
        detail: serde_json::json!({"changed": ["scope"]}),
    };
    audit::record(&mut conn, &event).await.expect("event");
    let calls =
        [call("drop_database", "app-1", Some(alice), false, 60), call("search_issues", "robot", None, true, 30)];
    tool_calls::record_many(&mut conn, &calls).await.expect("insert");

    let out = sallyport(&db.url, &["audit", "list", "--tool", "search_issues", "--json"], None);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["client_id"], "robot", "newest first");
    assert_eq!(rows[1]["user_id"], alice.to_string());
    assert_eq!(rows[1]["detail"]["upstream_status"], 200);

    let out = sallyport(&db.url, &["audit", "list", "--user", "alice", "--since", "1h"], None);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert!(printed.contains("drop_database\tdenied (denied by tools.deny)"), "{printed}");

    let out = sallyport(&db.url, &["audit", "list", "--client", "robot"], None);
    let printed = text(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(lines[0].contains("mcp.tool_call\trobot\trobot\t/mcp\tsearch_issues\tallowed\t200\t3ms"), "{printed}");
    assert!(lines[1].contains("client.updated"), "{printed}");
    let out = sallyport(&db.url, &["audit", "list", "--json", "--limit", "3"], None);
    let ids: Vec<(i64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .map(|v| (v["id"].as_i64().expect("id"), v["kind"].as_str().expect("kind").to_owned()))
        .collect();
    let kinds: Vec<&str> = ids.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["mcp.tool_call", "mcp.tool_call", "client.updated"], "newest first across both tables");
    assert!(ids.windows(2).all(|w| w[0].0 > w[1].0), "one sequence of ids: {ids:?}");
    let out = sallyport(&db.url, &["audit", "list", "--tool", "no_such_tool"], None);
    assert_eq!(text(&out).trim(), "no audit events");
    let out = sallyport(&db.url, &["audit", "list", "--user", "nobody"], None);
    assert!(!out.status.success() && text(&out).contains("no user nobody"), "{}", text(&out));
    let out = sallyport(&db.url, &["audit", "list", "--since", "soon"], None);
    assert!(!out.status.success() && text(&out).contains("--since soon"), "{}", text(&out));
}
