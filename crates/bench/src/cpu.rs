//! Where the CPU went during a measured window, from `/proc`: each process of the stack (and the
//! bench itself), every `postgres` process together, and the rest of the machine. On two shared
//! cores this is the first evidence of a bottleneck — and of a run disturbed by other work.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// Busy and total ticks of the whole machine (all cores).
    busy: u64,
    total: u64,
    /// Ticks of each tracked process (`None`: gone).
    tracked: Vec<(String, Option<u64>)>,
    /// Ticks of every process named `postgres`, by pid, and whether it serves the bench's database.
    postgres: BTreeMap<u32, (u64, bool)>,
}

/// Cores used on average over a window (1.0 = one core busy all the time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// The tracked processes (`bench`, `token`, ...).
    pub processes: BTreeMap<String, f64>,
    /// The `postgres` backends connected to the bench's database (all `postgres` processes when
    /// the database is not known).
    pub postgres: f64,
    /// Every other `postgres` process: other databases' backends, autovacuum, WAL writer, checkpointer.
    pub postgres_other: f64,
    /// Everything else that ran on the machine.
    pub other: f64,
    /// Cores left idle.
    pub idle: f64,
}

/// Reads the counters of the machine, of `tracked` (name, pid), and of every postgres process;
/// a backend serves `database` when its process title names it (`postgres: user db host ...`).
pub fn snapshot(tracked: &[(String, u32)], database: Option<&str>) -> Snapshot {
    let (busy, total) = std::fs::read_to_string("/proc/stat").ok().and_then(|s| machine_ticks(&s)).unwrap_or((0, 0));
    let tracked = tracked.iter().map(|(name, pid)| (name.clone(), process_ticks(*pid).map(|(_, t)| t))).collect();
    let mut postgres = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some((comm, ticks)) = process_ticks(pid)
                && comm == "postgres"
            {
                let ours = database.is_none_or(|db| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| serves(&String::from_utf8_lossy(&c), db))
                });
                postgres.insert(pid, (ticks, ours));
            }
        }
    }
    Snapshot { at: Instant::now(), busy, total, tracked, postgres }
}

/// The average use between two snapshots.
pub fn usage(a: &Snapshot, b: &Snapshot) -> Usage {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let cores = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs;
    let mut processes = BTreeMap::new();
    for ((name, before), (_, after)) in a.tracked.iter().zip(&b.tracked) {
        if let (Some(x), Some(y)) = (before, after) {
            processes.insert(name.clone(), cores(y.saturating_sub(*x)));
        }
    }
    // a backend that started during the window counts from zero; one that ended is lost
    let (mut postgres, mut postgres_other) = (0u64, 0u64);
    for (pid, (t, ours)) in &b.postgres {
        let used = t.saturating_sub(a.postgres.get(pid).map_or(0, |(before, _)| *before));
        if *ours {
            postgres += used;
        } else {
            postgres_other += used;
        }
    }
    let machine_total = b.total.saturating_sub(a.total);
    let machine_busy = b.busy.saturating_sub(a.busy);
    let n_cores = if machine_total > 0 { machine_total as f64 / TICKS_PER_SEC / secs } else { 0.0 };
    let busy = cores(machine_busy);
    let known: f64 = processes.values().sum::<f64>() + cores(postgres) + cores(postgres_other);
    Usage {
        processes,
        postgres: cores(postgres),
        postgres_other: cores(postgres_other),
        other: (busy - known).max(0.0),
        idle: (n_cores - busy).max(0.0),
    }
}

/// Snapshots after `warmup`, then after `duration`: the usage over a runner's measured window.
pub fn watch(
    tracked: Vec<(String, u32)>,
    database: Option<String>,
    warmup: Duration,
    duration: Duration,
) -> tokio::task::JoinHandle<Usage> {
    tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let (t, db) = (tracked.clone(), database.clone());
        let a = tokio::task::spawn_blocking(move || snapshot(&t, db.as_deref())).await;
        tokio::time::sleep(duration).await;
        let b = tokio::task::spawn_blocking(move || snapshot(&tracked, database.as_deref())).await;
        match (a, b) {
            (Ok(a), Ok(b)) => usage(&a, &b),
            _ => Usage::default(),
        }
    })
}

/// Whether a postgres process title (`postgres: user database host state`, NUL-separated or not)
/// names `database`.
fn serves(cmdline: &str, database: &str) -> bool {
    cmdline.split(|c: char| c == '\0' || c.is_whitespace()).any(|word| word == database)
}

/// Busy and total ticks from the `cpu` line of `/proc/stat` (busy = all but idle and iowait).
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// A process's command name and utime + stime ticks.
pub fn process_ticks(pid: u32) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid (comm) state ppid ... utime stime ...`: comm may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // after the comm: state(0) ppid(1) ... utime is field 14 of the line, index 11 here
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line = "1234 (sallyport-tok en)) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("sallyport-tok en)".into(), 300)));
        assert_eq!(parse_stat("garbage"), None);
        assert!(serves("postgres: postgres sallyport_bench_1_ab 127.0.0.1(5000) idle", "sallyport_bench_1_ab"));
        assert!(serves("postgres: postgres sallyport_bench_1_ab\0", "sallyport_bench_1_ab"));
        assert!(!serves("postgres: postgres sallyport_bench_1_abc 127.0.0.1(5000) idle", "sallyport_bench_1_ab"));
        assert!(!serves("postgres: autovacuum launcher", "sallyport_bench_1_ab"));
        assert_eq!(machine_ticks("cpu  100 5 50 800 10 1 2 0 0 0\ncpu0 1 2 3 4\n"), Some((158, 968)));
    }

    #[test]
    fn usage_over_a_window() {
        let at = Instant::now();
        let a = Snapshot {
            at,
            busy: 1_000,
            total: 10_000,
            tracked: vec![("token".into(), Some(100)), ("gone".into(), Some(5))],
            postgres: BTreeMap::from([(1, (50, true)), (2, (70, true)), (4, (10, false))]),
        };
        let b = Snapshot {
            at: at + Duration::from_secs(2),
            busy: 1_000 + 300,
            total: 10_000 + 400,
            tracked: vec![("token".into(), Some(200)), ("gone".into(), None)],
            // backend 2 ended, 3 started; 4 serves another database
            postgres: BTreeMap::from([(1, (110, true)), (3, (40, true)), (4, (30, false))]),
        };
        let u = usage(&a, &b);
        assert!((u.processes["token"] - 0.5).abs() < 1e-9);
        assert!(!u.processes.contains_key("gone"));
        assert!((u.postgres - 0.5).abs() < 1e-9, "(60 + 40) ticks in 2 s");
        assert!((u.postgres_other - 0.1).abs() < 1e-9, "20 ticks in 2 s");
        assert!((u.other - 0.4).abs() < 1e-9, "1.5 busy - 0.5 - 0.5 - 0.1");
        assert!((u.idle - 0.5).abs() < 1e-9, "2 cores - 1.5 busy");
    }

    #[test]
    fn snapshot_of_this_machine() {
        let me = std::process::id();
        let s = snapshot(&[("bench".into(), me)], Some("no_such_database"));
        assert!(s.total > 0 && s.busy <= s.total);
        assert!(s.tracked[0].1.is_some());
    }
}
