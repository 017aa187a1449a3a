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
    let alice = domain::store::users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice");
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(domain::password::verify("correct horse battery", &alice.password_hash));

    let out = sallyport(&db.url, &["user", "disable", "alice"], None);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&sallyport(&db.url, &["user", "list"], None));
    assert!(list.contains("alice") && list.contains("disabled") && list.contains("bob"), "{list}");

    let out = sallyport(&db.url, &["user", "passwd", "alice", "--password-stdin"], Some("another long password\n"));
    assert!(out.status.success(), "{}", text(&out));
    let alice = domain::store::users::find_by_username(&mut conn, "alice").await.expect("query").expect("alice");
    assert!(domain::password::verify("another long password", &alice.password_hash));

    let short = sallyport(&db.url, &["user", "add", "carol", "--password-stdin"], Some("short\n"));
    assert!(!short.status.success());
    let missing = sallyport(&db.url, &["user", "disable", "nobody"], None);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no user nobody"));
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
