//! Resident memory of the services, from `/proc/<pid>/status`: `VmRSS` now and `VmHWM`, the
//! high-water mark since the process started.

use serde::Serialize;

/// Resident memory of one process, in KiB (the unit `/proc` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resident {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

/// Reads `/proc/<pid>/status`; `None` when the process is gone or `/proc` is not Linux's.
pub fn read(pid: u32) -> Option<Resident> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| parse_status(&s))
}

/// The `VmRSS` and `VmHWM` lines of a status file ("VmRSS:\t   12345 kB").
pub fn parse_status(status: &str) -> Option<Resident> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let rss_kib = field("VmRSS")?;
    Some(Resident { rss_kib, peak_kib: field("VmHWM").unwrap_or(rss_kib) })
}

/// The memory of one service at idle (after start, before any load) and at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceMemory {
    pub service: String,
    pub pid: u32,
    pub idle: Option<Resident>,
    pub end: Option<Resident>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_status_file() {
        let status =
            "Name:\tsallyport-token\nVmPeak:\t  300000 kB\nVmHWM:\t   21000 kB\nVmRSS:\t   18432 kB\nThreads:\t4\n";
        assert_eq!(parse_status(status), Some(Resident { rss_kib: 18_432, peak_kib: 21_000 }));
        assert_eq!(parse_status("Name:\tx\nVmRSS:\t 5 kB\n"), Some(Resident { rss_kib: 5, peak_kib: 5 }));
        // a kernel thread has no VmRSS line
        assert_eq!(parse_status("Name:\tkthreadd\nThreads:\t1\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = read(std::process::id()).expect("this process has a status file");
        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib);
        assert_eq!(read(u32::MAX), None);
    }
}
