//! The scenarios, each selectable by name. A scenario sets itself up through the public endpoints
//! (untimed), then hands one worker per virtual client to the runner, once per run.

mod authorize;
mod browser;
mod ceiling;
mod client_credentials;
mod code;
pub mod federated;
mod gateway;
mod idjag;
mod mcp;
mod metadata;
pub mod oauth;
mod refresh;
mod register;
mod upstream_oauth2;

use std::collections::BTreeSet;

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::OnceCell;
use url::Url;

use crate::client::{CookieJar, is_success, transport, unexpected};
use crate::conn::{self, Conn};
use crate::endpoints::Endpoints;
use crate::report::{Row, RunStats, latency, thousands};
use crate::runner::{self, Timing, Worker};
pub use ceiling::STATEMENT as CEILING_STATEMENT;
use oauth::PublicClient;

/// A scenario's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// GET the AS metadata and a protected resource's metadata.
    Metadata,
    /// The machine's ceiling for a durable rotation (a minimal one, in the bench database, through
    /// the services' pool size): the writing grants are reported as a share of it.
    Ceiling,
    /// RFC 7591 registration of public clients.
    Register,
    /// A signed-in session with remembered consent: GET authorize -> 302 with a code.
    Authorize,
    /// The full code flow per iteration: authorize (session, remembered consent) then the token exchange.
    Code,
    /// Each worker rotates its own refresh-token chain.
    Refresh,
    /// A confidential client, Basic auth.
    ClientCredentials,
    /// A confidential client exchanges a fresh ID-JAG of the stack's IdP (RFC 7523 JWT bearer grant).
    Idjag,
    /// The full code flow with a sign-in at the stack's OpenID provider per iteration (a new
    /// browser, signed in at the provider), the provider's share reported beside it.
    Federated,
    /// A protected route with a valid (cached) token vs the same route with auth off vs the upstream.
    Gateway,
    /// An MCP tools/call through an `mcp = true` route with a tool policy vs the same route with `mcp = false`.
    Mcp,
    /// A protected route with `upstream_auth = "oauth2"` and the user's upstream token cached vs
    /// the same route with `upstream_auth = "none"`, both with a user token (`--start` only).
    #[value(name = "upstream-oauth2")]
    UpstreamOauth2,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Self::Metadata,
        Self::Ceiling,
        Self::Register,
        Self::Authorize,
        Self::Code,
        Self::Refresh,
        Self::ClientCredentials,
        Self::Idjag,
        Self::Federated,
        Self::Gateway,
        Self::Mcp,
        Self::UpstreamOauth2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Ceiling => "ceiling",
            Self::Register => "register",
            Self::Authorize => "authorize",
            Self::Code => "code",
            Self::Refresh => "refresh",
            Self::ClientCredentials => "client-credentials",
            Self::Idjag => "idjag",
            Self::Federated => "federated",
            Self::Gateway => "gateway",
            Self::Mcp => "mcp",
            Self::UpstreamOauth2 => "upstream-oauth2",
        }
    }

    /// Whether it writes to Postgres on every request (its figures then read as shares of the ceiling).
    pub fn writes(self) -> bool {
        crate::report::WRITING.contains(&self.name())
    }

    /// The services a scenario needs running (its setup included).
    pub fn needs(self) -> BTreeSet<Component> {
        use Component::*;
        BTreeSet::from_iter(match self {
            Self::Metadata => vec![Metadata],
            Self::Ceiling => vec![],
            Self::Register => vec![Registration],
            Self::Authorize => vec![Registration, Authorize],
            Self::Code | Self::Refresh | Self::Federated => vec![Registration, Authorize, Token],
            Self::ClientCredentials | Self::Idjag => vec![Registration, Token],
            Self::Gateway | Self::Mcp => vec![Registration, Token, Gateway, Upstream],
            Self::UpstreamOauth2 => vec![Registration, Authorize, Token, Gateway, Upstream],
        })
    }

    /// Measures the scenario; one row per variant it measures.
    pub async fn run(self, b: &Bench) -> anyhow::Result<Vec<Row>> {
        match self {
            Self::Metadata => metadata::run(b).await,
            Self::Ceiling => ceiling::run(b).await,
            Self::Register => register::run(b).await,
            Self::Authorize => authorize::run(b).await,
            Self::Code => code::run(b).await,
            Self::Refresh => refresh::run(b).await,
            Self::ClientCredentials => client_credentials::run(b).await,
            Self::Idjag => idjag::run(b).await,
            Self::Federated => federated::run(b).await,
            Self::Gateway => gateway::run(b).await,
            Self::Mcp => mcp::run(b).await,
            Self::UpstreamOauth2 => upstream_oauth2::run(b).await,
        }
    }
}

/// A process of the stack, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Metadata,
    Registration,
    Authorize,
    Token,
    Upstream,
    Gateway,
    /// A mature reverse proxy (nginx, `--nginx`) to the same upstream: the gateway scenario's reference.
    Nginx,
}

/// The resource owner the browser flows sign in as.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The gateway scenario's three URLs.
#[derive(Debug, Clone)]
pub struct GatewayTargets {
    /// A protected route (bearer check on) to the upstream.
    pub protected: Url,
    /// The same upstream through a route with auth off.
    pub open: Url,
    /// The upstream itself.
    pub upstream: Url,
    /// The same upstream through nginx with keep-alive to it (`--nginx`), for reference.
    pub reference: Option<Url>,
}

/// The mcp scenario's two protected routes to the same upstream.
#[derive(Debug, Clone)]
pub struct McpTargets {
    /// `mcp = true` with a 10-rule tool policy that allows the call.
    pub policy: Url,
    /// The same route with `mcp = false`.
    pub plain: Url,
}

/// The upstream-oauth2 scenario's two protected routes to the same upstream.
#[derive(Debug, Clone)]
pub struct UpstreamAuthTargets {
    /// `upstream_auth = "none"`.
    pub none: Url,
    /// `upstream_auth = "oauth2"`.
    pub oauth2: Url,
    /// The oauth2 route's prefix (the connection row's `route`).
    pub oauth2_prefix: String,
}

/// How hard and how long to load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent workers (virtual clients).
    pub workers: usize,
    pub timing: Timing,
    /// Runs per scenario; the report shows each figure's median.
    pub runs: usize,
}

/// Everything the scenarios share.
pub struct Bench {
    pub ep: Endpoints,
    /// The client setup uses (timed workers get their own, per scenario).
    pub http: reqwest::Client,
    pub workers: usize,
    pub timing: Timing,
    pub runs: usize,
    pub user: Option<Credentials>,
    /// The protected resource the flows ask for (RFC 8707).
    pub resource: String,
    /// The scopes the flows ask for ("" for the defaults).
    pub scope: String,
    pub gateway: Option<GatewayTargets>,
    /// The mcp scenario's routes (only in a stack the bench started: they need its configuration).
    pub mcp: Option<McpTargets>,
    /// The upstream-oauth2 scenario's routes (only in a stack the bench started).
    pub upstream_auth: Option<UpstreamAuthTargets>,
    /// The stack's key-encryption key (only in a stack the bench started).
    pub kek: Option<[u8; 32]>,
    pub initial_access_token: Option<String>,
    /// A token for the gateway scenario; by default one is obtained with client_credentials.
    pub access_token: Option<String>,
    /// The operator-made client for client_credentials (the stack seeds one); without it the
    /// bench tries to register one, which a Sallyport server refuses.
    pub machine_client: Option<oauth::Confidential>,
    /// The enterprise IdP the stack trusts (the idjag scenario signs its ID-JAGs with its key).
    pub idp: Option<std::sync::Arc<testkit::idp::Idp>>,
    /// The OpenID provider the stack's sign-in page offers (the federated scenario signs in there).
    pub op: Option<std::sync::Arc<testkit::oidc::OpenIdProvider>>,
    /// Processes whose CPU use is reported (name, pid): the bench itself and the services.
    pub tracked: Vec<(String, u32)>,
    /// The stack's database, when known: its Postgres backends are told apart from the rest.
    pub database: Option<String>,
    /// The stack's database URL, when the bench made the database (the ceiling runs in it).
    pub database_url: Option<String>,
    sessions: OnceCell<Sessions>,
}

/// A public client and one signed-in browser session per worker, consent given once.
pub struct Sessions {
    pub client: PublicClient,
    pub jars: Vec<CookieJar>,
}

impl Bench {
    pub fn new(
        ep: Endpoints,
        load: Load,
        user: Option<Credentials>,
        resource: String,
        scope: String,
        gateway: Option<GatewayTargets>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            ep,
            http: crate::client::build(4)?,
            workers: load.workers,
            timing: load.timing,
            runs: load.runs,
            user,
            resource,
            scope,
            gateway,
            mcp: None,
            upstream_auth: None,
            kek: None,
            initial_access_token: None,
            access_token: None,
            machine_client: None,
            idp: None,
            op: None,
            tracked: vec![("bench".into(), std::process::id())],
            database: None,
            database_url: None,
            sessions: OnceCell::new(),
        })
    }

    /// The shared sessions, signed in on first use (one login per worker; consent on the first).
    pub async fn sessions(&self) -> anyhow::Result<&Sessions> {
        self.sessions
            .get_or_try_init(|| async {
                let client = oauth::register_public(self, "sallyport-bench browser").await?;
                let mut jars = Vec::with_capacity(self.workers);
                for i in 0..self.workers {
                    let jar = browser::sign_in(self, &client).await.with_context(|| format!("sign-in {}", i + 1))?;
                    jars.push(jar);
                }
                Ok(Sessions { client, jars })
            })
            .await
    }
}

/// Runs `workers` `b.runs` times and makes the row, printing progress to stderr.
pub async fn measure<W: Worker>(b: &Bench, name: &str, request: &str, target: &Url, mut workers: Vec<W>) -> Row {
    let mut runs = Vec::with_capacity(b.runs);
    for i in 0..b.runs {
        let (s, back) = run_once(b, &format!("{name} run {}/{}", i + 1, b.runs), workers).await;
        workers = back;
        runs.push(s);
    }
    Row::new(name, request, &target.origin().ascii_serialization(), runs)
}

/// One run (warm-up and measured window) with the CPU watched; prints `label` and the figures.
pub async fn run_once<W: Worker>(b: &Bench, label: &str, workers: Vec<W>) -> (RunStats, Vec<W>) {
    let cpu = crate::cpu::watch(b.tracked.clone(), b.database.clone(), b.timing.warmup, b.timing.duration);
    let (m, back) = runner::run(workers, b.timing).await;
    let mut s = RunStats::from(&m);
    s.cpu = cpu.await.ok();
    eprintln!(
        "  {label}: {}/s, p50 {}, p99 {}, {} errors",
        thousands(s.requests_per_sec.round() as u64),
        latency(s.p50_us),
        latency(s.p99_us),
        s.errors + s.warmup_errors
    );
    (s, back)
}

/// A GET that must answer 2xx (or 302): metadata documents, the gateway's routes, the upstream.
pub struct GetWorker {
    pub conn: Conn,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl GetWorker {
    /// One per worker, each with its own connection.
    pub fn per_worker(b: &Bench, url: &Url, headers: &[(HeaderName, HeaderValue)]) -> anyhow::Result<Vec<Self>> {
        (0..b.workers)
            .map(|_| Ok(Self { conn: Conn::to(url)?, target: conn::target(url), headers: headers.to_vec() }))
            .collect()
    }
}

impl Worker for GetWorker {
    async fn call(&mut self) -> Result<(), String> {
        let reply = self.conn.get(&self.target, &self.headers).await?;
        if is_success(reply.status) {
            Ok(())
        } else {
            Err(conn::refused(&format!("GET {}", self.target.split('?').next().unwrap_or_default()), &reply))
        }
    }
}

/// One untimed GET that must answer `expect`: proves a URL works before it is loaded.
pub async fn probe(
    http: &reqwest::Client,
    url: &Url,
    authorization: Option<&HeaderValue>,
    expect: StatusCode,
) -> anyhow::Result<()> {
    let mut req = http.get(url.clone());
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a.clone());
    }
    let res = req.send().await.map_err(|e| anyhow::anyhow!(transport("GET", url, &e)))?;
    if res.status() != expect {
        let challenge = res
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        anyhow::bail!("{}{challenge}; expected {}", unexpected("GET", url, res).await, expect.as_u16());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread")]
    async fn get_workers_against_a_stub_count_every_error() {
        // every fourth request fails
        let (addr, server) =
            crate::upstream::spawn(Arc::new(|n| if n % 4 == 0 { 500 } else { 200 })).await.expect("stub");
        let url = Url::parse(&format!("http://{addr}/x?secret=1")).expect("url");
        let http = crate::client::build(4).expect("client");
        probe(&http, &url, None, StatusCode::OK).await.expect("first request is a 200");
        let workers: Vec<_> = (0..4)
            .map(|_| GetWorker { conn: Conn::to(&url).expect("conn"), target: conn::target(&url), headers: vec![] })
            .collect();
        let timing = Timing { warmup: Duration::from_millis(50), duration: Duration::from_millis(250) };
        let (m, _) = runner::run(workers, timing).await;
        server.abort();
        let total = m.ok + m.errors;
        assert!(total > 20, "the stub answered {total} requests");
        assert!(m.errors * 4 >= total.saturating_sub(8) && m.errors * 4 <= total + 8, "{} of {total}", m.errors);
        let kinds: Vec<_> = m.error_kinds.keys().cloned().collect();
        assert_eq!(kinds, vec!["GET /x: 500".to_owned()], "the query never shows up in messages");
        assert_eq!(m.error_kinds["GET /x: 500"], m.errors + m.warmup_errors);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn probe_and_transport_errors() {
        let (addr, server) = crate::upstream::spawn(Arc::new(|_| 401)).await.expect("stub");
        let url = Url::parse(&format!("http://{addr}/p")).expect("url");
        let http = crate::client::build(1).expect("client");
        let err = probe(&http, &url, None, StatusCode::OK).await.expect_err("401 is not 200");
        assert!(err.to_string().contains("GET /p: 401"), "{err}");
        probe(&http, &url, None, StatusCode::UNAUTHORIZED).await.expect("401 expected");
        server.abort();
        let _ = server.await;
        // nothing listens any more (a new client: the old one may hold a live keep-alive connection)
        drop(http);
        let mut w = GetWorker { conn: Conn::to(&url).expect("conn"), target: conn::target(&url), headers: vec![] };
        let e = w.call().await.expect_err("refused");
        assert!(e.starts_with("GET /p: cannot connect"), "{e}");
    }
}
