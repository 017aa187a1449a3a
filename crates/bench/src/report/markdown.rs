//! The Markdown rendering of a [`Report`]: one table of the scenarios next to their targets, the
//! gateway's overhead, one table of the services' memory, then what failed.

use std::fmt::Write as _;

use super::{
    GATEWAY_MAX_ADDED_P50_US, GATEWAY_MIN_RATIO, IDLE_RSS_TARGET_KIB, MCP_MIN_RATIO, PROXY_MIN_SHARE, Report, Target,
    UPSTREAM_OAUTH2_MIN_RATIO,
};

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## sallyport-bench, {}\n", self.started_at);
        let runs = if self.runs > 1 { format!(", median of {} runs", self.runs) } else { String::new() };
        let _ = writeln!(
            md,
            "{} workers, {} warm-up, {} measured{runs}; {}; issuer `{}`.\n",
            self.workers,
            secs(self.warmup_secs),
            secs(self.duration_secs),
            self.routing,
            self.issuer
        );
        let _ = writeln!(md, "{}\n", self.machine_line());
        let _ = writeln!(
            md,
            "| scenario | request | requests/s | of ceiling | p50 | p90 | p99 | max | errors | target | met |"
        );
        let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|");
        for r in &self.rows {
            let m = &r.median;
            let target = r.target.map(|t| target_text(&t)).unwrap_or_else(|| "—".into());
            let met = match r.target_met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let share = match self.ceiling.as_ref().and_then(|c| c.of(&r.name)) {
                Some(s) => format!("{:.1} %", s * 100.0),
                None => "—".into(),
            };
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {share} | {} | {} | {} | {} | {} | {target} | {met} |",
                r.name,
                r.request,
                thousands(m.requests_per_sec.round() as u64),
                latency(m.p50_us),
                latency(m.p90_us),
                latency(m.p99_us),
                latency(m.max_us),
                thousands(m.errors + m.warmup_errors),
            );
        }
        if let Some(c) = &self.ceiling {
            let _ = writeln!(
                md,
                "\nCeiling: {}/s of a minimal durable rotation (`{}`) in the bench database, through the \
                 services' pool size with the same workers; \"of ceiling\" is each writing scenario's share of it.",
                thousands(c.ceiling_rps.round() as u64),
                crate::scenarios::CEILING_STATEMENT,
            );
        }
        if let Some(g) = &self.gateway {
            let _ = writeln!(
                md,
                "\nGateway auth overhead: the protected route does {:.1} % of the auth-off throughput \
                 (target >= {:.0} %) and adds {} µs to the median (target <= {} µs): {}.",
                g.throughput_ratio * 100.0,
                GATEWAY_MIN_RATIO * 100.0,
                g.added_p50_us,
                GATEWAY_MAX_ADDED_P50_US,
                if g.target_met { "met" } else { "**not met**" }
            );
            if let Some(direct) = g.direct_rps.filter(|d| *d > 0.0) {
                let share = g.open_rps / direct;
                let _ = writeln!(
                    md,
                    "Proxying itself (auth off) does {:.1} % of the upstream's direct throughput (target >= {:.0} %): {}.",
                    share * 100.0,
                    PROXY_MIN_SHARE * 100.0,
                    if share >= PROXY_MIN_SHARE { "met" } else { "**not met**" }
                );
                if let Some(nginx) = g.nginx_rps {
                    let _ = writeln!(
                        md,
                        "nginx to the same upstream (keep-alive, one worker per core) does {:.1} %.",
                        nginx / direct * 100.0
                    );
                }
            }
        }
        if let Some(m) = &self.mcp {
            let _ = writeln!(
                md,
                "\nMCP route cost: the `mcp = true` route with its 10-rule tool policy does {:.1} % of the \
                 throughput of the same route with `mcp = false` (target >= {:.0} %) and adds {} µs to the \
                 median: {}.",
                m.throughput_ratio * 100.0,
                MCP_MIN_RATIO * 100.0,
                m.added_p50_us,
                if m.target_met { "met" } else { "**not met**" }
            );
        }
        for r in &self.rows {
            if let Some(s) = &r.split {
                let share = if s.flow_mean_us > 0.0 { s.party_mean_us / s.flow_mean_us * 100.0 } else { 0.0 };
                let _ = writeln!(
                    md,
                    "\n{}: a flow takes {} on average; the {} {} of it ({share:.1} %: the browser's waits on it \
                     and Sallyport's on its token endpoint; {} of its own serving), Sallyport and the browser \
                     the other {}.",
                    r.name,
                    latency(s.flow_mean_us.round() as u64),
                    s.party,
                    latency(s.party_mean_us.round() as u64),
                    latency(s.party_serving_mean_us.round() as u64),
                    latency(s.rest_us().round() as u64),
                );
            }
        }
        if let Some(u) = &self.upstream_auth {
            let _ = writeln!(
                md,
                "\nUpstream OAuth cost: the `upstream_auth = \"oauth2\"` route with the user's upstream token \
                 cached does {:.1} % of the throughput of the same route with `upstream_auth = none` (target >= \
                 {:.0} %) and adds {} µs to the median: {}.",
                u.throughput_ratio * 100.0,
                UPSTREAM_OAUTH2_MIN_RATIO * 100.0,
                u.added_p50_us,
                if u.target_met { "met" } else { "**not met**" }
            );
        }
        self.cpu_table(&mut md);
        if !self.memory.is_empty() {
            let _ = writeln!(md, "\n| service | pid | resident at idle | at the end | peak | idle target <= 30 MiB |");
            let _ = writeln!(md, "|---|--:|--:|--:|--:|---|");
            for s in &self.memory {
                let met = match s.idle {
                    // the bench's own stand-in upstream and the reference proxy are not Sallyport services
                    _ if s.service == "upstream" || s.service == "nginx" => "",
                    Some(r) if r.rss_kib <= IDLE_RSS_TARGET_KIB => "yes",
                    Some(_) => "**no**",
                    None => "",
                };
                let peak = s.end.or(s.idle).map(|r| mib(r.peak_kib)).unwrap_or_else(|| "—".into());
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {peak} | {met} |",
                    s.service,
                    s.pid,
                    s.idle.map(|r| mib(r.rss_kib)).unwrap_or_else(|| "—".into()),
                    s.end.map(|r| mib(r.rss_kib)).unwrap_or_else(|| "—".into()),
                );
            }
        }
        let errors: Vec<_> = self.rows.iter().filter(|r| r.failures() > 0).collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nErrors (every non-2xx/302 response and every transport failure):\n");
            for r in errors {
                for (kind, n) in &r.median.error_kinds {
                    let _ = writeln!(md, "- {}: {} x {kind}", r.name, thousands(*n));
                }
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(md, "\nNot measured:\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {}: {}", f.scenario, f.message);
            }
        }
        md
    }

    /// Cores each process used during the measured window (the median run's figures).
    fn cpu_table(&self, md: &mut String) {
        let rows: Vec<_> = self.rows.iter().filter_map(|r| r.median.cpu.as_ref().map(|c| (&r.name, c))).collect();
        if rows.is_empty() {
            return;
        }
        let mut names: Vec<&String> = Vec::new();
        for (_, c) in &rows {
            for n in c.processes.keys() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names.sort_by_key(|n| (n.as_str() != "bench", n.as_str()));
        let header: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let _ = writeln!(
            md,
            "\nCPU during the measured window, in cores ({} in all): `postgres` is the backends of the bench's \
             database (every postgres process when the bench did not create the database), `pg rest` every other \
             postgres process (autovacuum, WAL writer, other databases), `other` everything else on the machine:\n",
            self.machine.cores
        );
        let _ = writeln!(md, "| scenario | {} | postgres | pg rest | other | idle |", header.join(" | "));
        let _ = writeln!(md, "|---|{}--:|--:|--:|--:|", "--:|".repeat(names.len()));
        for (name, c) in rows {
            let cells: Vec<String> = names
                .iter()
                .map(|n| c.processes.get(*n).map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into()))
                .collect();
            let _ = writeln!(
                md,
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                cells.join(" | "),
                c.postgres,
                c.postgres_other,
                c.other,
                c.idle
            );
        }
    }

    fn machine_line(&self) -> String {
        let m = &self.machine;
        let mut line = format!("Machine: {} cores", m.cores);
        if let Some(cpu) = &m.cpu_model {
            let _ = write!(line, " ({cpu})");
        }
        if let Some(k) = &m.kernel {
            let _ = write!(line, ", Linux {k}");
        }
        let load = |l: &Option<[f64; 3]>| l.map(|l| format!("{:.2}", l[0])).unwrap_or_else(|| "?".into());
        let _ = write!(line, "; load average {} before, {} after.", load(&m.load_before), load(&m.load_after));
        if let Some(pg) = &self.postgres {
            let _ = write!(line, " PostgreSQL {}", pg.version);
            let settings: Vec<String> = pg.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !settings.is_empty() {
                let _ = write!(line, " ({})", settings.join(", "));
            }
            line.push('.');
        }
        line
    }
}

fn target_text(t: &Target) -> String {
    let mut s = format!(">= {}/s", thousands(t.min_requests_per_sec as u64));
    if let Some(p99) = t.max_p99_ms {
        let _ = write!(s, ", p99 <= {p99} ms");
    }
    s
}

fn secs(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s} s") }
}

/// 12345 -> "12,345".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency for people: µs below a millisecond, ms with two decimals below a second.
pub fn latency(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1_000.0),
        _ => format!("{:.2} s", us as f64 / 1_000_000.0),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{report, stats};
    use crate::report::{Failure, Row};

    #[test]
    fn markdown_and_json() {
        let rows = vec![
            Row::new(
                "refresh",
                "POST /oauth2/token (refresh_token)",
                "http://127.0.0.1:8083",
                vec![stats(2_612.4, 9_800, 0)],
            ),
            Row::new(
                "code",
                "authorize -> 302, POST /oauth2/token",
                "http://127.0.0.1:8082",
                vec![stats(800.0, 30_000, 2)],
            ),
        ];
        let r = report(rows);
        assert!(r.failed(), "an error response fails the run");
        let md = r.markdown();
        assert!(md.contains("| refresh | `POST /oauth2/token (refresh_token)` | 2,612 | — | 9.80 ms | 19.60 ms | 39.20 ms | 98.00 ms | 0 | >= 6,000/s, p99 <= 25 ms | **no** |"), "{md}");
        assert!(md.contains("| code |") && md.contains("| 2 | >= 1,000/s | **no** |"), "{md}");
        assert!(md.contains("- code: 2 x POST /oauth2/token: 400 invalid_grant"), "{md}");
        assert!(md.contains("| token | 42 | 20.0 MiB | 40.0 MiB | 50.0 MiB | yes |"), "{md}");
        assert!(md.contains("median of 3 runs") && md.contains("fsync=on, synchronous_commit=on"), "{md}");

        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("valid JSON");
        assert_eq!(json["rows"][0]["name"], "refresh");
        assert_eq!(json["rows"][0]["median"]["p99_us"], 39_200);
        assert_eq!(json["rows"][0]["target"]["min_requests_per_sec"], 6_000.0);
        assert_eq!(json["rows"][1]["median"]["error_kinds"]["POST /oauth2/token: 400 invalid_grant"], 2);
        assert_eq!(json["memory"][0]["idle"]["rss_kib"], 20_480);
        assert!(json.get("gateway").is_none(), "no gateway rows, no overhead member");
        assert!(json.get("ceiling").is_none(), "no ceiling row, no shares");

        let mut with_ceiling = r.rows.clone();
        with_ceiling.push(Row::new(
            "ceiling",
            "WITH old AS",
            "postgres://127.0.0.1/db",
            vec![stats(5_224.8, 5_000, 0)],
        ));
        let r = report(with_ceiling);
        let md = r.markdown();
        assert!(md.contains("| refresh | `POST /oauth2/token (refresh_token)` | 2,612 | 50.0 % | 9.80 ms |"), "{md}");
        assert!(md.contains("| code | `authorize -> 302, POST /oauth2/token` | 800 | 15.3 % |"), "{md}");
        assert!(md.contains("| ceiling | `WITH old AS` | 5,225 | 100.0 % |"), "{md}");
        assert!(md.contains("Ceiling: 5,225/s of a minimal durable rotation"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("valid JSON");
        assert_eq!(json["ceiling"]["shares"]["refresh"], 0.5);

        let ok = report(vec![Row::new("register", "POST /oauth2/register", "x", vec![stats(1_200.0, 20_000, 0)])]);
        assert!(!ok.failed());
        let mut not_run = ok.clone();
        not_run.failures.push(Failure { scenario: "gateway".into(), message: "gateway did not start".into() });
        assert!(not_run.failed(), "a scenario that could not run fails the run");
        assert!(not_run.markdown().contains("Not measured:\n\n- gateway: gateway did not start"));
    }

    #[test]
    fn proxy_share_and_reference() {
        let r = report(vec![
            Row::new("gateway/protected", "GET /bench", "x", vec![stats(19_000.0, 1_000, 0)]),
            Row::new("gateway/open", "GET /bench-open", "x", vec![stats(20_000.0, 1_000, 0)]),
            Row::new("gateway/direct", "GET /", "x", vec![stats(50_000.0, 300, 0)]),
            Row::new("gateway/nginx", "GET /", "x", vec![stats(30_000.0, 500, 0)]),
        ]);
        let md = r.markdown();
        assert!(
            md.contains("Proxying itself (auth off) does 40.0 % of the upstream's direct throughput (target >= 50 %): **not met**."),
            "{md}"
        );
        assert!(md.contains("nginx to the same upstream (keep-alive, one worker per core) does 60.0 %."), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(json["gateway"]["nginx_rps"], 30_000.0);
    }

    #[test]
    fn mcp_route_cost() {
        let r = report(vec![
            Row::new("mcp/policy", "POST /bench-mcp tools/call", "x", vec![stats(9_120.0, 1_030, 0)]),
            Row::new("mcp/off", "POST /bench-mcp-off tools/call", "x", vec![stats(10_000.0, 1_000, 0)]),
        ]);
        let md = r.markdown();
        assert!(
            md.contains("does 91.2 % of the throughput of the same route with `mcp = false` (target >= 90 %) and adds 30 µs to the median: met."),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(json["mcp"]["target_met"], true);
        assert!(json.get("gateway").is_none());
    }

    #[test]
    fn the_providers_share_of_the_federated_flow() {
        let mut row = Row::new("federated", "authorize ... token", "x", vec![stats(300.0, 6_000, 0)]);
        row.split = Some(crate::report::FlowSplit {
            party: "OpenID provider".into(),
            flow_mean_us: 6_400.0,
            party_mean_us: 1_600.0,
            party_serving_mean_us: 900.0,
        });
        let r = report(vec![row]);
        let md = r.markdown();
        assert!(
            md.contains("federated: a flow takes 6.40 ms on average; the OpenID provider 1.60 ms of it (25.0 %: the browser's waits on it and Sallyport's on its token endpoint; 900 µs of its own serving), Sallyport and the browser the other 4.80 ms."),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(json["rows"][0]["split"]["party_mean_us"], 1_600.0);
        assert!(json["rows"][0]["median"].get("split").is_none());
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(latency(850), "850 µs");
        assert_eq!(latency(1_250), "1.25 ms");
        assert_eq!(latency(2_500_000), "2.50 s");
    }

    #[test]
    fn cpu_table() {
        let mut s = stats(2_000.0, 3_000, 0);
        s.cpu = Some(crate::cpu::Usage {
            processes: std::collections::BTreeMap::from([("token".into(), 0.61), ("bench".into(), 0.2)]),
            postgres: 0.9,
            postgres_other: 0.01,
            other: 0.05,
            idle: 0.24,
        });
        let r = report(vec![Row::new("refresh", "POST /oauth2/token", "x", vec![s])]);
        let md = r.markdown();
        assert!(
            md.contains(
                "| scenario | bench | token | postgres | pg rest | other | idle |\n|---|--:|--:|--:|--:|--:|--:|\n"
            ),
            "{md}"
        );
        assert!(md.contains("| refresh | 0.20 | 0.61 | 0.90 | 0.01 | 0.05 | 0.24 |"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(json["rows"][0]["median"]["cpu"]["processes"]["token"], 0.61);
    }
}
