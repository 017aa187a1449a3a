//! One invocation: set the stack up (or find it), run the chosen scenarios, read the memory of the
//! services, tear down, report. Exit status: 0 when every request succeeded, 1 when any request
//! failed or a scenario could not run (after the report is written), 2 for a usage error, 130 on
//! Ctrl-C or SIGTERM (after tearing down).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use url::Url;

use crate::cli::{BenchArgs, Cli, Command};
use crate::endpoints::Endpoints;
use crate::memory::{self, Resident, ServiceMemory};
use crate::report::{
    CeilingShares, Failure, GatewayOverhead, Machine, McpOverhead, Report, Row, UpstreamAuthOverhead, load_average,
};
use crate::runner::Timing;
use crate::scenarios::{Bench, Component, Credentials, GatewayTargets, Load, Scenario};
use crate::stack::{SCOPE, Stack, StackOptions};

pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Upstream { listen }) => match crate::upstream::run(listen).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sallyport-bench upstream: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::AuditWrite { database_url, mode, batch, batches }) => {
            match crate::audit_write::run(&database_url, mode, batch, batches).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sallyport-bench audit-write: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => match run(cli.bench).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("sallyport-bench: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn usage(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("sallyport-bench: {message} (see --help)");
    Ok(ExitCode::from(2))
}

async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if !args.start && args.url.is_none() {
        return usage("say which stack: --start, or --url URL of a running one");
    }
    if args.workers == 0 || args.runs == 0 || args.duration.is_zero() {
        return usage("--workers, --runs and --duration must be positive");
    }
    let scenarios = selected(&args.scenario);
    let load = Load {
        workers: args.workers,
        timing: Timing { warmup: args.warmup, duration: args.duration },
        runs: args.runs,
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let machine = Machine::read();
    let outcome = if args.start {
        with_own_stack(&args, &scenarios, load).await?
    } else {
        with_running_stack(&args, &scenarios, load).await?
    };
    let Some(outcome) = outcome else {
        eprintln!("sallyport-bench: interrupted");
        return Ok(ExitCode::from(130));
    };
    let report = Report {
        started_at,
        mode: if args.start { "start" } else { "url" }.into(),
        issuer: outcome.issuer,
        routing: outcome.routing,
        workers: load.workers,
        warmup_secs: load.timing.warmup.as_secs_f64(),
        duration_secs: load.timing.duration.as_secs_f64(),
        runs: load.runs,
        machine: Machine { load_after: load_average(), ..machine },
        postgres: outcome.postgres,
        ceiling: CeilingShares::from_rows(&outcome.rows),
        gateway: GatewayOverhead::from_rows(&outcome.rows),
        mcp: McpOverhead::from_rows(&outcome.rows),
        upstream_auth: UpstreamAuthOverhead::from_rows(&outcome.rows),
        rows: outcome.rows,
        memory: outcome.memory,
        failures: outcome.failures,
    };
    write(&args.markdown, &report.markdown())?;
    if let Some(path) = &args.json {
        write(path, &report.json())?;
    }
    Ok(if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The scenarios in their canonical order, each once; none named means all. A writing scenario
/// brings the ceiling along: its share of the ceiling is measured in the same invocation.
fn selected(named: &[Scenario]) -> Vec<Scenario> {
    if named.is_empty() {
        return Scenario::ALL.to_vec();
    }
    let writes = named.iter().any(|s| s.writes());
    Scenario::ALL.into_iter().filter(|s| named.contains(s) || (writes && *s == Scenario::Ceiling)).collect()
}

fn write(path: &str, text: &str) -> anyhow::Result<()> {
    if path == "-" {
        println!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).with_context(|| format!("cannot write {path}"))
    }
}

/// What the scenarios measured, and about what.
struct Outcome {
    issuer: String,
    routing: String,
    postgres: Option<crate::report::PostgresInfo>,
    rows: Vec<Row>,
    failures: Vec<Failure>,
    memory: Vec<ServiceMemory>,
}

async fn measure_all(b: &Bench, scenarios: &[Scenario]) -> (Vec<Row>, Vec<Failure>) {
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for s in scenarios {
        eprintln!("{}: setting up", s.name());
        match s.run(b).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("{}: not measured: {e:#}", s.name());
                failures.push(Failure { scenario: s.name().into(), message: format!("{e:#}") });
            }
        }
    }
    (rows, failures)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn with_own_stack(args: &BenchArgs, scenarios: &[Scenario], load: Load) -> anyhow::Result<Option<Outcome>> {
    let mut components: BTreeSet<Component> = scenarios.iter().flat_map(|s| s.needs()).collect();
    if args.through_gateway {
        components.insert(Component::Gateway);
    }
    if args.nginx.is_some() && components.contains(&Component::Upstream) {
        components.insert(Component::Nginx);
    }
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("the executable has no directory")?.to_path_buf(),
    };
    let after_migrate = match &args.after_migrate {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?),
        None => None,
    };
    let opts = StackOptions {
        bin_dir,
        database_url: args.database_url.clone(),
        components,
        keep_logs: args.keep_logs,
        after_migrate,
        nginx: args.nginx.clone(),
    };
    let stack = tokio::select! {
        s = Stack::start(&opts) => s.context("cannot start the stack")?,
        () = interrupted() => return Ok(None),
    };
    // let start-up allocations settle before reading the idle figure
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = stack.memory();
    let prepared = (|| {
        let mut b = Bench::new(
            stack.endpoints(args.through_gateway)?,
            load,
            Some(stack.user.clone()),
            stack.resource(),
            SCOPE.into(),
            Some(stack.gateway_targets()?),
        )?;
        b.access_token = args.access_token.clone();
        b.mcp = Some(stack.mcp_targets()?);
        b.upstream_auth = Some(stack.upstream_auth_targets()?);
        b.kek = Some(stack.kek);
        b.machine_client = Some(stack.machine.clone());
        b.idp = Some(stack.idp.clone());
        b.op = Some(stack.op.clone());
        b.tracked.extend(stack.pids());
        b.database = Some(stack.database().to_owned());
        b.database_url = Some(stack.database_url()?);
        anyhow::Ok(b)
    })();
    let bench = match prepared {
        Ok(p) => p,
        Err(e) => {
            stack.stop(true).await;
            return Err(e);
        }
    };
    let measured = tokio::select! {
        m = measure_all(&bench, scenarios) => Some(m),
        () = interrupted() => None,
    };
    let end = stack.memory();
    let failed =
        measured.as_ref().is_none_or(|(rows, failures)| !failures.is_empty() || rows.iter().any(|r| r.failures() > 0));
    let postgres = stack.postgres.clone();
    stack.stop(failed).await;
    let Some((mut rows, failures)) = measured else { return Ok(None) };
    if args.through_gateway {
        for row in rows.iter_mut().filter(|r| r.name == "refresh") {
            row.retarget(crate::report::REFRESH_THROUGH_GATEWAY);
        }
    }
    let routing = if args.through_gateway {
        "services started by the bench; every request through the gateway"
    } else {
        "services started by the bench; requests straight to each service (the gateway and mcp scenarios through the gateway)"
    };
    let routing = match &args.after_migrate {
        Some(path) => format!("{routing}; schema changed after migrating by `{}`", path.display()),
        None => routing.to_owned(),
    };
    Ok(Some(Outcome {
        issuer: bench.ep.issuer_str().to_owned(),
        routing,
        postgres,
        rows,
        failures,
        memory: memory_between(idle, end),
    }))
}

async fn with_running_stack(args: &BenchArgs, scenarios: &[Scenario], load: Load) -> anyhow::Result<Option<Outcome>> {
    let issuer = args.url.clone().context("--url is required without --start")?;
    let ep = Endpoints {
        issuer: issuer.clone(),
        registration: args.registration_url.clone(),
        authorize: args.authorize_url.clone(),
        token: args.token_url.clone(),
        metadata: args.metadata_url.clone(),
    };
    let resource = match &args.resource {
        Some(r) => r.clone(),
        None => format!("{}/mcp", issuer.origin().ascii_serialization()),
    };
    let user = match (&args.username, &args.password) {
        (Some(username), Some(password)) => {
            Some(Credentials { username: username.clone(), password: password.clone() })
        }
        _ => None,
    };
    let gateway = match (&args.open_url, &args.upstream_url) {
        (Some(open), Some(upstream)) => Some(GatewayTargets {
            protected: match &args.protected_url {
                Some(p) => p.clone(),
                None => Url::parse(&resource).context("--resource is not a URL")?,
            },
            open: open.clone(),
            upstream: upstream.clone(),
            reference: None,
        }),
        _ => None,
    };
    let mut bench = Bench::new(ep, load, user, resource.clone(), String::new(), gateway)?;
    bench.scope = match &args.scope {
        Some(s) => s.clone(),
        None => discover_scope(&bench, &resource).await,
    };
    bench.initial_access_token = args.initial_access_token.clone();
    bench.access_token = args.access_token.clone();
    bench.tracked.extend(args.pids.iter().cloned());
    let read = || args.pids.iter().map(|(name, pid)| (name.clone(), *pid, memory::read(*pid))).collect::<Vec<_>>();
    let idle = read();
    let measured = tokio::select! {
        m = measure_all(&bench, scenarios) => m,
        () = interrupted() => return Ok(None),
    };
    let memory = memory_between(idle, read());
    let direct = [&args.registration_url, &args.authorize_url, &args.token_url, &args.metadata_url];
    let routing = if direct.iter().any(|u| u.is_some()) {
        "a running stack; some services addressed directly"
    } else {
        "a running stack; every request through the issuer URL"
    };
    Ok(Some(Outcome {
        issuer: bench.ep.issuer_str().to_owned(),
        routing: routing.into(),
        postgres: None,
        rows: measured.0,
        failures: measured.1,
        memory,
    }))
}

/// Each service's memory at idle and at the end, from two readings of the same processes.
fn memory_between(
    idle: Vec<(String, u32, Option<Resident>)>,
    end: Vec<(String, u32, Option<Resident>)>,
) -> Vec<ServiceMemory> {
    idle.into_iter()
        .zip(end)
        .map(|((service, pid, idle), (_, _, end))| ServiceMemory { service, pid, idle, end })
        .collect()
}

/// The resource's `scopes_supported` (RFC 9728), or "" (the defaults) when it cannot be read.
async fn discover_scope(b: &Bench, resource: &str) -> String {
    let Ok(url) = b.ep.prm_url(resource) else { return String::new() };
    let doc = match b.http.get(url).send().await {
        Ok(res) if res.status().is_success() => res.json::<serde_json::Value>().await.ok(),
        _ => None,
    };
    doc.and_then(|d| {
        d["scopes_supported"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_selection() {
        assert_eq!(selected(&[]), Scenario::ALL.to_vec());
        assert_eq!(
            selected(&[Scenario::Gateway, Scenario::Metadata, Scenario::Gateway]),
            vec![Scenario::Metadata, Scenario::Gateway]
        );
        assert_eq!(selected(&[Scenario::Refresh]), vec![Scenario::Ceiling, Scenario::Refresh], "with its ceiling");
        assert_eq!(selected(&[Scenario::Ceiling]), vec![Scenario::Ceiling]);
        assert_eq!(
            selected(&[Scenario::Federated, Scenario::Idjag]),
            vec![Scenario::Ceiling, Scenario::Idjag, Scenario::Federated],
            "a federated sign-in writes (the login, the session, the code)"
        );
        assert!(Scenario::Federated.needs().contains(&Component::Authorize));
        assert_eq!(selected(&[Scenario::UpstreamOauth2]), vec![Scenario::UpstreamOauth2], "reads only: no ceiling");
    }
}
