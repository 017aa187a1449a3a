//! A PostgreSQL cluster of our own on this machine, for tests and `sallyport up` when no server runs:
//! `initdb` into a directory, then `postgres` on a loopback port, watched so that it stops (and
//! optionally its directory goes) when the process that started it exits — even on `kill -9`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL program: on PATH, else the newest under `/usr/lib/postgresql/*/bin`.
pub fn find_bin(name: &str) -> Option<PathBuf> {
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

/// Runs `initdb` (trust auth, superuser `postgres`) into `dir/data` unless it exists.
pub fn init_cluster(dir: &Path) -> Result<PathBuf, String> {
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
    let data = dir.join("data");
    let mut run_pg = format!(
        "exec {pg} -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=300",
        pg = shell_quote(&postgres),
        data = shell_quote(&data),
        sock = shell_quote(dir),
    );
    if !durable {
        run_pg.push_str(" -c fsync=off -c synchronous_commit=off");
    }
    if is_root() {
        run_pg = format!("runuser -u postgres -- sh -c \"{run_pg}\"");
    }
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
