//! A PostgreSQL cluster of our own on this machine, for tests and `sallyport up` when no server runs:
//! `initdb` into a directory, then `postgres` on a loopback port, watched so that it stops (and
//! optionally its directory goes) when the process that started it exits — even on `kill -9`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names the directory of PostgreSQL's server programs when they are neither on PATH nor under
/// `/usr/lib/postgresql/*/bin` (or to pick one version of several).
pub const BINDIR_VAR: &str = "SALLYPORT_PG_BINDIR";

/// A PostgreSQL program: in `$SALLYPORT_PG_BINDIR` when set, else on PATH, else the newest under
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BINDIR_VAR).filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join(name)).filter(|p| p.is_file());
    }
    if let Ok(out) = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output()
        && out.status.success()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    candidates.sort();
    candidates.pop()
}

/// initdb and postgres refuse to run as root; we then run them as the `postgres` user.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (free now; taken by whoever binds it first).
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `dir` made absolute: `postgres` resolves relative paths against its own working directory.
fn absolute(dir: &Path) -> Result<PathBuf, String> {
    std::path::absolute(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}

/// Runs `initdb` (trust auth, superuser `postgres`) into `dir/data` unless it exists.
pub fn init_cluster(dir: &Path) -> Result<PathBuf, String> {
    let dir = &absolute(dir)?;
    let data = dir.join("data");
    if data.join("PG_VERSION").exists() {
        return Ok(data);
    }
    let initdb = find_bin("initdb").ok_or("initdb not found (install Debian's postgresql package)")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = if is_root() {
        Command::new("chown").args(["-R", "postgres"]).arg(dir).status().map_err(|e| e.to_string())?;
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&initdb);
        c
    } else {
        Command::new(&initdb)
    };
    let out = cmd
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(data)
}

/// What to do with the cluster's directory when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    Keep,
    Remove,
}

/// Starts `postgres` on `port` for the cluster in `dir` (see [`init_cluster`]), durable or not,
/// watched by a shell that stops it when process `watch_pid` is gone. Waits until it accepts
/// connections; returns its URL without a database name.
pub fn start_cluster(dir: &Path, port: u16, durable: bool, watch_pid: u32, on_exit: OnExit) -> Result<String, String> {
    let postgres = find_bin("postgres").ok_or("postgres not found")?;
    let dir = &absolute(dir)?;
    let data = dir.join("data");
    // a Unix socket path holds at most 107 bytes (sun_path); beyond that, TCP only
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    let sock = if socket.as_os_str().len() <= 100 { shell_quote(dir) } else { "''".to_owned() };
    let mut run_pg = format!(
        "{pg} -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=300",
        pg = shell_quote(&postgres),
        data = shell_quote(&data),
    );
    if !durable {
        run_pg.push_str(" -c fsync=off -c synchronous_commit=off");
    }
    run_pg = if is_root() {
        // the arguments travel as "$@", so no path is quoted twice
        format!("exec runuser -u postgres -- sh -c 'exec \"$0\" \"$@\"' {run_pg}")
    } else {
        format!("exec {run_pg}")
    };
    let cleanup = match on_exit {
        OnExit::Keep => String::new(),
        OnExit::Remove => format!("rm -rf {}", shell_quote(dir)),
    };
    // `exec` keeps postgres's own signal handling (a background job of a non-interactive shell
    // would ignore SIGINT); TERM first, KILL if it is still there after ten seconds.
    let script = format!(
        "{run_pg} >{log} 2>&1 & pg=$!; \
         while kill -0 {watch_pid} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
         kill -TERM $pg 2>/dev/null; i=0; while kill -0 $pg 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done; \
         kill -KILL $pg 2>/dev/null; {cleanup}",
        log = shell_quote(&dir.join("postgres.log")),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            return Err(format!("postgres did not start: {}", log.trim()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}

/// A postmaster that runs the cluster in `dir`, from its `postmaster.pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub port: u16,
}

/// The postmaster of the cluster in `dir` if one runs: `data/postmaster.pid` names a live process
/// (line 1: its pid, line 4: its port).
pub fn running(dir: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(dir.join("data").join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let port: u16 = lines.nth(2)?.trim().parse().ok()?;
    serves(pid, dir).then_some(Running { pid, port })
}

/// Whether `pid` is a live postmaster of the cluster in `dir`: the postmaster works in its data
/// directory, so a stale pid now used by another process (even another cluster's) does not count.
fn serves(pid: u32, dir: &Path) -> bool {
    if Path::new("/proc/self/cwd").exists() {
        let cwd = std::fs::canonicalize(format!("/proc/{pid}/cwd"));
        return cwd.is_ok() && cwd.ok() == std::fs::canonicalize(dir.join("data")).ok();
    }
    // no /proc (not Linux): whether the pid exists at all, as pg_ctl judges it
    Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Stops the postmaster of the cluster in `dir` (fast shutdown: sessions are ended, data stays)
/// and waits until it is gone; `false` if it still runs after 30 seconds.
pub fn stop(dir: &Path, pg: Running) -> bool {
    let signal = |sig: &str| {
        let _ = Command::new("kill").args([sig, &pg.pid.to_string()]).stderr(Stdio::null()).status();
    };
    signal("-INT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(dir).is_some_and(|r| r.pid == pg.pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}
