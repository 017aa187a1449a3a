//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::scenarios::Scenario;

/// Measures the hot paths of a Sallyport stack: requests/s and latency percentiles per scenario,
/// and the services' resident memory. See BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "sallyport-bench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub bench: BenchArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A trivial upstream answering 200 to everything (the gateway scenario's target).
    #[command(hide = true)]
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Writes tool-call audit rows as the gateway does and prints the CPU per row (BENCHMARKS.md).
    #[command(hide = true)]
    AuditWrite {
        /// A migrated database (rows are added to its `tool_calls`).
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, value_enum, default_value = "copy")]
        mode: crate::audit_write::Mode,
        #[arg(long, default_value_t = 512)]
        batch: usize,
        #[arg(long, default_value_t = 400)]
        batches: usize,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Start a stack from the binaries next to this one (build them first: `cargo build --release
    /// --bins`), on a fresh database, and tear it all down at the end.
    #[arg(long, conflicts_with = "url")]
    pub start: bool,
    /// The issuer of a running stack (its gateway), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub url: Option<Url>,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenario: Vec<Scenario>,
    /// Concurrent workers (virtual clients).
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Measured time per run (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before each run.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Runs per scenario; the report gives each figure's median (errors are summed).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Where the Markdown report goes: a file, or - for stdout.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub markdown: String,
    /// Where the JSON report goes: a file, or - for stdout.
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,

    // --- a running stack (--url) ---
    /// Send registration requests straight to this base URL instead of through the issuer.
    #[arg(long, value_name = "URL")]
    pub registration_url: Option<Url>,
    /// Send authorize, login and consent requests straight to this base URL.
    #[arg(long, value_name = "URL")]
    pub authorize_url: Option<Url>,
    /// Send token requests straight to this base URL.
    #[arg(long, value_name = "URL")]
    pub token_url: Option<Url>,
    /// Send metadata requests straight to this base URL.
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<Url>,
    /// The user the browser flows sign in as (authorize, code, refresh).
    #[arg(long)]
    pub username: Option<String>,
    /// That user's password.
    #[arg(long, env = "SALLYPORT_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The protected resource to ask tokens for (default: the issuer's origin + /mcp).
    #[arg(long)]
    pub resource: Option<String>,
    /// The scopes to ask for (default: the resource's scopes_supported from its metadata).
    #[arg(long)]
    pub scope: Option<String>,
    /// RFC 7591 initial access token, when registration requires one.
    #[arg(long, env = "SALLYPORT_BENCH_INITIAL_ACCESS_TOKEN", hide_env_values = true)]
    pub initial_access_token: Option<String>,
    /// The access token for the gateway scenario (default: one from client_credentials).
    #[arg(long, env = "SALLYPORT_BENCH_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<String>,
    /// The gateway scenario's protected route (default: the resource URL).
    #[arg(long, value_name = "URL")]
    pub protected_url: Option<Url>,
    /// The gateway scenario's route to the same upstream with auth off.
    #[arg(long, value_name = "URL")]
    pub open_url: Option<Url>,
    /// The gateway scenario's upstream, called directly.
    #[arg(long, value_name = "URL")]
    pub upstream_url: Option<Url>,
    /// A service's process id, to report its resident memory (repeatable).
    #[arg(long = "pid", value_name = "SERVICE=PID", value_parser = parse_pid)]
    pub pids: Vec<(String, u32)>,

    // --- a stack of its own (--start) ---
    /// The Postgres server to create the bench database on (any database URL on it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Send every request through the gateway (default: straight to each service).
    #[arg(long, conflicts_with = "url")]
    pub through_gateway: bool,
    /// Keep the generated config and the services' logs.
    #[arg(long, conflicts_with = "url")]
    pub keep_logs: bool,
    /// Where the service binaries are (default: the directory of this executable).
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub bin_dir: Option<PathBuf>,
    /// An nginx binary (e.g. /usr/sbin/nginx from Debian's nginx-light): the gateway scenario then
    /// also measures nginx proxying to the same upstream with keep-alive, as a reference.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub nginx: Option<PathBuf>,
    /// SQL run on the bench database after the migrations, before any service starts: compares a
    /// schema variant (e.g. an index) with the very same binaries.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    pub after_migrate: Option<PathBuf>,
}

/// "10s", "500ms", "2m", or plain seconds ("1.5").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = number.trim().parse().map_err(|_| format!("not a duration: {s} (try 10s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("unknown unit in {s} (ms, s or m)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("out of range: {s}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected SERVICE=PID, e.g. token=1234")?;
    let pid = pid.parse().map_err(|_| format!("not a process id: {pid}"))?;
    Ok((name.to_owned(), pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn command_lines() {
        let cli = Cli::try_parse_from(["sallyport-bench", "--start", "--scenario", "metadata,client-credentials"])
            .expect("parses");
        assert!(cli.bench.start);
        assert_eq!(cli.bench.scenario, vec![Scenario::Metadata, Scenario::ClientCredentials]);
        assert_eq!(cli.bench.workers, 32);
        assert!(Cli::try_parse_from(["sallyport-bench", "--start", "--url", "http://x"]).is_err());
        assert!(Cli::try_parse_from(["sallyport-bench", "--scenario", "nope"]).is_err());
        let fed = Cli::try_parse_from(["sallyport-bench", "--start", "--scenario", "federated"]).expect("parses");
        assert_eq!(fed.bench.scenario, vec![Scenario::Federated]);
        let up = Cli::try_parse_from(["sallyport-bench", "--start", "--scenario", "upstream-oauth2"]).expect("parses");
        assert_eq!(up.bench.scenario, vec![Scenario::UpstreamOauth2]);
        assert!(Cli::try_parse_from(["sallyport-bench", "--url", "http://x", "--through-gateway"]).is_err());
        let up = Cli::try_parse_from(["sallyport-bench", "upstream", "--listen", "127.0.0.1:0"]).expect("parses");
        assert!(matches!(up.command, Some(Command::Upstream { .. })));
        let pids = Cli::try_parse_from(["sallyport-bench", "--url", "http://x", "--pid", "token=12"]).expect("parses");
        assert_eq!(pids.bench.pids, vec![("token".to_owned(), 12)]);
    }
}
