//! `sallyport up` with a cluster of its own, as a newcomer runs it: a relative data directory, a
//! second start, an `up` killed with its watchdog, and the admin verbs beside it. These run initdb
//! and postgres (slow), so they are few and long.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sallyport");

/// `sallyport` run in `cwd` with nothing configured: it must find everything itself.
fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env("RUST_LOG", "warn");
    for var in ["DATABASE_URL", "SALLYPORT__DATABASE__URL", "SALLYPORT_CONFIG", "SALLYPORT__KEYS__ENCRYPTION_KEY"] {
        cmd.env_remove(var);
    }
    cmd
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

struct Up {
    child: Child,
    banner: String,
}

/// Starts `up` (its own cluster) in `cwd` and waits for its banner.
fn start_up(cwd: &Path, password: &str, extra: &[&str]) -> Up {
    let mut child = command(cwd, &["up", "--own-cluster", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("SALLYPORT_DEMO_PASSWORD", password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sallyport up");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut banner = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C") {
            return Up { child, banner };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sallyport up did not come up:\n{banner}");
}

fn banner_value<'a>(banner: &'a str, key: &str) -> &'a str {
    banner.lines().find_map(|l| l.trim().strip_prefix(key)).map(str::trim).unwrap_or_else(|| panic!("{key}: {banner}"))
}

/// The processes whose parent is `pid` (the cluster's watchdog shell is one of `up`'s).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …; comm may hold spaces, so parse after the last ')'
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.extend(entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
        }
    }
    found
}

fn signal(sig: &str, pids: &[u32]) {
    let status = Command::new("kill").arg(sig).args(pids.iter().map(u32::to_string)).status().expect("kill");
    assert!(status.success(), "kill {sig} {pids:?}");
}

/// Where the cluster lives: `.sallyport/postgres`, or where that links to when run as root.
fn cluster_dir(cwd: &Path) -> PathBuf {
    std::fs::canonicalize(cwd.join(".sallyport/postgres")).expect("the cluster directory")
}

/// SIGTERM stops `up`, and its cluster after it.
fn stop(mut up: Up, cluster: &Path) {
    signal("-TERM", &[up.child.id()]);
    assert!(up.child.wait().expect("wait").success());
    for _ in 0..150 {
        if store::local_pg::running(cluster).is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the cluster in {} outlives up", cluster.display());
}

async fn demo_password_is(database: &str, password: &str) -> bool {
    let settings = server::config::DatabaseSettings { url: database.to_owned(), pool_size: 1, ..Default::default() };
    let pool = store::db::pool(&settings).expect("pool");
    let mut conn = pool.get().await.expect("connect to up's cluster");
    let demo = store::users::find_by_username(&mut conn, "demo").await.expect("query").expect("demo");
    store::password::verify(password, &demo.password_hash)
}

#[tokio::test(flavor = "multi_thread")]
async fn up_keeps_its_cluster_across_starts_and_the_admin_verbs_find_it() {
    // a 0700 directory, as `mktemp -d` makes, and the default (relative) --data-dir in it
    let home = tempfile::tempdir().expect("tempdir");
    let cwd = home.path();

    let first = start_up(cwd, "first demo password", &[]);
    let database = banner_value(&first.banner, "database:").to_owned();
    assert!(database.contains("its own cluster in /"), "an absolute path: {database}");
    let cluster = cluster_dir(cwd);
    let url = database.split_whitespace().next().expect("url").to_owned();
    assert!(demo_password_is(&url, "first demo password").await);

    // a second `up` with the same data directory is refused while the first runs
    let out = command(cwd, &["up", "--own-cluster", "--listen", "127.0.0.1:0"]).output().expect("run");
    assert!(!out.status.success() && text(&out).contains("another `sallyport up` runs"), "{}", text(&out));

    // the admin verbs beside it find its database and its key without DATABASE_URL or a key
    let out = command(cwd, &["user", "add", "alice"]).output().expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let out = command(cwd, &["keys", "rotate", "--activate-in", "0"]).output().expect("run");
    assert!(out.status.success(), "{}", text(&out));
    // and from elsewhere with --data-dir
    let data_dir = cwd.join(".sallyport");
    let out = command(Path::new("/"), &["--data-dir", data_dir.to_str().expect("utf-8"), "user", "list"])
        .output()
        .expect("run");
    assert!(out.status.success() && text(&out).contains("alice"), "{}", text(&out));

    // killed together with its watchdog, `up` leaves its postmaster running
    let pid = first.child.id();
    let mut doomed = children(pid);
    doomed.push(pid);
    signal("-KILL", &doomed);
    let mut first = first;
    let _ = first.child.wait();
    let stale = store::local_pg::running(&cluster).expect("the postmaster outlives a killed up");

    // the next `up` stops it, reuses the cluster (alice is still there) and resets the demo password
    let second = start_up(cwd, "second demo password", &[]);
    assert!(second.banner.contains(&format!("stopping the cluster (pid {})", stale.pid)), "{}", second.banner);
    let url = banner_value(&second.banner, "database:").split_whitespace().next().expect("url").to_owned();
    assert!(demo_password_is(&url, "second demo password").await);
    let out = command(cwd, &["user", "list"]).output().expect("run");
    assert!(text(&out).contains("alice"), "the data survived: {}", text(&out));
    let out = command(cwd, &["keys", "list"]).output().expect("run");
    assert_eq!(text(&out).lines().filter(|l| l.contains("ES256")).count(), 2, "{}", text(&out));

    // SIGTERM stops `up` and then its cluster
    stop(second, &cluster);
    let out = command(cwd, &["user", "list"]).output().expect("run");
    assert!(!out.status.success(), "no database without up: {}", text(&out));

    if cluster != cwd.join(".sallyport/postgres") {
        // as root the cluster lives in the postgres user's directory: remove it with the test
        let _ = std::fs::remove_dir_all(&cluster);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relative_data_dir_reaches_postgres_as_an_absolute_path() {
    // a directory the cluster's user can enter even as root, so the cluster stays in the data directory
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let up = start_up(home.path(), "a demo password", &["--data-dir", "state/sallyport"]);
    let database = banner_value(&up.banner, "database:").to_owned();
    let expected = std::fs::canonicalize(home.path()).expect("canonical").join("state/sallyport/postgres");
    assert!(database.ends_with(&format!("(its own cluster in {})", expected.display())), "{database}");
    let url = database.split_whitespace().next().expect("url").to_owned();
    assert!(demo_password_is(&url, "a demo password").await);
    stop(up, &home.path().join("state/sallyport/postgres"));
}

#[test]
fn without_postgres_up_names_both_ways_out() {
    let home = tempfile::tempdir().expect("tempdir");
    let no_binaries = tempfile::tempdir().expect("tempdir");
    let out = command(home.path(), &["up", "--own-cluster", "--listen", "127.0.0.1:0"])
        .env(store::local_pg::BINDIR_VAR, no_binaries.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("set DATABASE_URL=postgres://"), "{err}");
    assert!(err.contains("apt-get install postgresql"), "{err}");
    assert!(err.contains(&home.path().join(".sallyport/postgres").display().to_string()), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
