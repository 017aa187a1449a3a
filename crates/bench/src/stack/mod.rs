//! `--start`: a whole stack of our own. A fresh database on the local Postgres (migrated, one user
//! seeded), a generated config (a protected resource, a protected gateway route and the same route
//! with auth off to a trivial upstream, two protected MCP routes to it with and without `mcp = true`,
//! an enterprise IdP of its own it trusts for ID-JAGs, an OpenID provider of its own its sign-in page offers, rate limits raised so the load is not throttled, a
//! throwaway key-encryption key), and each service binary as its own child process — so that each
//! one's resident memory can be read from `/proc`. [`Stack::stop`] kills the children and drops the
//! database (the app calls it after errors and on Ctrl-C or SIGTERM too); children are also killed
//! when dropped. Only a SIGKILL of the bench leaves processes and the database behind.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::process::Child;
use url::Url;

use crate::endpoints::Endpoints;
use crate::memory::{self, Resident};
use crate::report::PostgresInfo;
use crate::scenarios::{Component, Credentials, GatewayTargets, McpTargets, UpstreamAuthTargets};

mod config;
mod process;

pub use config::{admin_url, postgres_info};

/// What to start, and from where.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where the service binaries are (the directory of `sallyport-bench` itself).
    pub bin_dir: PathBuf,
    /// The Postgres server (any database on it); default `postgres://postgres@127.0.0.1:5432`.
    pub database_url: Option<String>,
    pub components: BTreeSet<Component>,
    /// Keep the directory with the config and the services' logs.
    pub keep_logs: bool,
    /// SQL to run on the bench database once migrated (`--after-migrate`).
    pub after_migrate: Option<String>,
    /// The nginx binary of the reference proxy (`--nginx`).
    pub nginx: Option<PathBuf>,
}

/// The bench's resource, route prefixes and scope.
pub const RESOURCE_PATH: &str = "/bench";
pub const OPEN_PATH: &str = "/bench-open";
/// The mcp scenario's two protected routes to the upstream: `mcp = true` with a 10-rule tool
/// policy, and the same route with `mcp = false`.
pub const MCP_PATH: &str = "/bench-mcp";
pub const MCP_OFF_PATH: &str = "/bench-mcp-off";
/// The upstream-oauth2 scenario's two protected routes to the upstream (issue 20): `upstream_auth =
/// "none"`, and `upstream_auth = "oauth2"` (the user's upstream token replaces the Authorization).
pub const UP_NONE_PATH: &str = "/up-none";
pub const UP_OAUTH2_PATH: &str = "/up-oauth2";
pub const SCOPE: &str = "bench";
pub const USERNAME: &str = "bench";

/// Rate limits high enough that no load the bench makes is throttled.
const UNLIMITED_PER_MINUTE: u32 = 1_000_000_000;

impl Component {
    /// The binary (next to `sallyport-bench`), or `None` for the upstream (this binary itself).
    fn binary(self) -> Option<&'static str> {
        match self {
            Self::Metadata => Some("sallyport-metadata"),
            Self::Registration => Some("sallyport-registration"),
            Self::Authorize => Some("sallyport-authorize"),
            Self::Token => Some("sallyport-token"),
            Self::Gateway => Some("sallyport-gateway"),
            Self::Upstream | Self::Nginx => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Registration => "registration",
            Self::Authorize => "authorize",
            Self::Token => "token",
            Self::Gateway => "gateway",
            Self::Upstream => "upstream",
            Self::Nginx => "nginx",
        }
    }
}

/// Loopback ports, one per component (all allocated, whichever run).
#[derive(Debug, Clone, Copy)]
struct Ports {
    registration: u16,
    authorize: u16,
    token: u16,
    metadata: u16,
    gateway: u16,
    upstream: u16,
    nginx: u16,
}

impl Ports {
    fn allocate() -> anyhow::Result<Self> {
        // hold every listener until all are chosen, so they are distinct
        let listeners: Vec<std::net::TcpListener> =
            (0..7).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
        let p: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        Ok(Self {
            registration: p[0],
            authorize: p[1],
            token: p[2],
            metadata: p[3],
            gateway: p[4],
            upstream: p[5],
            nginx: p[6],
        })
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway)
    }

    fn resource(&self) -> String {
        format!("{}{RESOURCE_PATH}", self.issuer())
    }

    fn of(&self, c: Component) -> u16 {
        match c {
            Component::Registration => self.registration,
            Component::Authorize => self.authorize,
            Component::Token => self.token,
            Component::Metadata => self.metadata,
            Component::Gateway => self.gateway,
            Component::Upstream => self.upstream,
            Component::Nginx => self.nginx,
        }
    }
}

fn local(port: u16) -> anyhow::Result<Url> {
    Ok(Url::parse(&format!("http://127.0.0.1:{port}"))?)
}

/// One running child.
struct Process {
    component: Component,
    pid: u32,
    child: Child,
}

/// A running stack of our own.
pub struct Stack {
    dir: PathBuf,
    keep_logs: bool,
    admin_url: String,
    db_name: String,
    db_created: bool,
    ports: Ports,
    processes: Vec<Process>,
    pub user: Credentials,
    /// An operator-made client for `client_credentials` (self-registered clients may not use it).
    pub machine: crate::scenarios::oauth::Confidential,
    /// The enterprise IdP the stack's token service trusts (`[[identity.trusted_issuers]]`).
    pub idp: std::sync::Arc<testkit::idp::Idp>,
    /// The OpenID provider the stack's sign-in page offers (`[[login.providers]]`, id
    /// [`PROVIDER_ID`](crate::scenarios::federated::PROVIDER_ID)), in this process.
    pub op: std::sync::Arc<testkit::oidc::OpenIdProvider>,
    pub postgres: Option<PostgresInfo>,
    /// The throwaway key-encryption key of the generated config (`[keys] encryption_key`): the
    /// upstream-oauth2 scenario seals an upstream connection under it.
    pub kek: [u8; 32],
}

impl Stack {
    /// Starts what `opts.components` needs; on failure, whatever was started is torn down again.
    pub async fn start(opts: &StackOptions) -> anyhow::Result<Self> {
        let missing: Vec<String> = opts
            .components
            .iter()
            .filter_map(|c| c.binary())
            .filter(|b| !opts.bin_dir.join(b).is_file())
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} not found in {} (build them first: cargo build --release --bins)",
                missing.join(", "),
                opts.bin_dir.display()
            );
        }
        let admin_url = admin_url(opts.database_url.as_deref())?;
        let dir = tempfile::Builder::new().prefix("sallyport-bench-").tempdir()?.keep();
        let ports = Ports::allocate()?;
        let callback = format!("{}/oauth2/login/{}/callback", ports.issuer(), crate::scenarios::federated::PROVIDER_ID);
        let mut stack = Self {
            dir,
            keep_logs: opts.keep_logs,
            admin_url,
            db_name: format!("sallyport_bench_{}_{}", std::process::id(), hex_suffix()),
            db_created: false,
            ports,
            processes: Vec::new(),
            user: Credentials { username: USERNAME.into(), password: protocol::secret::random_token(18) },
            machine: crate::scenarios::oauth::Confidential {
                client_id: "sallyport-bench-service".into(),
                client_secret: protocol::secret::random_token(24),
            },
            idp: std::sync::Arc::new(testkit::idp::Idp::start()),
            op: std::sync::Arc::new(testkit::oidc::OpenIdProvider::start(&callback)),
            postgres: None,
            kek: {
                let mut kek = [0u8; 32];
                protocol::secret::fill_random(&mut kek);
                kek
            },
        };
        match stack.launch(opts).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop(true).await;
                Err(e)
            }
        }
    }

    async fn launch(&mut self, opts: &StackOptions) -> anyhow::Result<()> {
        eprintln!("stack: database {} on {}", self.db_name, store::db::redact_url(&self.admin_url));
        let mut admin = AsyncPgConnection::establish(&self.admin_url)
            .await
            .with_context(|| format!("cannot connect to Postgres at {}", store::db::redact_url(&self.admin_url)))?;
        self.postgres = Some(postgres_info(&mut admin).await?);
        diesel::sql_query(format!("CREATE DATABASE \"{}\"", self.db_name)).execute(&mut admin).await?;
        self.db_created = true;
        drop(admin);
        let db_url = self.db_url()?;
        store::db::migrate(&db_url).await.context("migrating the bench database")?;
        if let Some(sql) = &opts.after_migrate {
            use diesel_async::SimpleAsyncConnection;
            let mut conn = AsyncPgConnection::establish(&db_url).await?;
            conn.batch_execute(sql).await.context("running --after-migrate")?;
            eprintln!("stack: ran --after-migrate on {}", self.db_name);
        }
        self.seed_user(&db_url).await?;
        self.seed_machine_client(&db_url).await?;
        let introspection_secret = protocol::secret::random_token(32);
        seed_introspection_client(&db_url, &introspection_secret).await?;
        let config = self.dir.join("sallyport.toml");
        let op = config::OpLogin {
            issuer: &self.op.issuer,
            client_id: &self.op.client_id,
            client_secret: &self.op.client_secret,
        };
        std::fs::write(
            &config,
            config::render(&self.ports, &db_url, &introspection_secret, &self.idp.issuer, &op, &self.kek),
        )?;
        let me = std::env::current_exe()?;
        for &component in &opts.components {
            let program = match (component.binary(), &opts.nginx) {
                (Some(b), _) => opts.bin_dir.join(b),
                (None, Some(nginx)) if component == Component::Nginx => {
                    std::fs::write(
                        self.dir.join("nginx.conf"),
                        config::nginx(&self.dir, self.ports.nginx, self.ports.upstream),
                    )?;
                    nginx.clone()
                }
                (None, _) => me.clone(),
            };
            self.spawn(component, &program, &config)?;
        }
        let components: Vec<Component> = self.processes.iter().map(|p| p.component).collect();
        for component in components {
            self.wait_ready(component).await?;
        }
        eprintln!("stack: {} ready (logs in {})", self.components_label(), self.dir.display());
        Ok(())
    }

    fn db_url(&self) -> anyhow::Result<String> {
        let mut u = Url::parse(&self.admin_url)?;
        u.set_path(&format!("/{}", self.db_name));
        Ok(u.to_string())
    }

    async fn seed_user(&self, db_url: &str) -> anyhow::Result<()> {
        let password = self.user.password.clone();
        let hash = tokio::task::spawn_blocking(move || store::password::hash(&password)).await??;
        let mut conn = AsyncPgConnection::establish(db_url).await?;
        let row = store::users::UserRow::new(&self.user.username, hash, chrono::Utc::now());
        store::users::insert(&mut conn, &row).await.context("seeding the bench user")?;
        Ok(())
    }

    /// What `sallyport client add --grant-type client_credentials --scope SCOPE` would store.
    async fn seed_machine_client(&self, db_url: &str) -> anyhow::Result<()> {
        use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
        use store::clients;
        let scopes = protocol::scope::Scopes::parse(SCOPE)?;
        let policy =
            MetadataPolicy { max_redirect_uris: 1, default_scopes: scopes.clone(), allowed_scopes: scopes.clone() };
        let metadata = ClientMetadataRequest {
            grant_types: Some(vec!["client_credentials".into()]),
            client_name: Some("sallyport-bench service".into()),
            ..Default::default()
        }
        .validate(&policy)
        .map_err(|e| anyhow::anyhow!("bench client metadata: {e}"))?;
        let mut row =
            clients::ClientRow::new(self.machine.client_id.clone(), ClientSource::Admin, &metadata, chrono::Utc::now());
        row.client_secret_hash = Some(protocol::secret::SecretHash::of(&self.machine.client_secret).to_vec());
        let mut conn = AsyncPgConnection::establish(db_url).await?;
        clients::insert(&mut conn, &row).await.context("seeding the bench's service client")?;
        Ok(())
    }

    /// The issuer: the gateway's address.
    pub fn issuer(&self) -> anyhow::Result<Url> {
        Ok(Url::parse(&self.ports.issuer())?)
    }

    /// The protected resource the flows ask for.
    pub fn resource(&self) -> String {
        self.ports.resource()
    }

    /// Requests straight to each service, or all through the gateway.
    pub fn endpoints(&self, through_gateway: bool) -> anyhow::Result<Endpoints> {
        let issuer = self.issuer()?;
        if through_gateway {
            return Ok(Endpoints::through(issuer));
        }
        Ok(Endpoints {
            issuer,
            registration: Some(local(self.ports.registration)?),
            authorize: Some(local(self.ports.authorize)?),
            token: Some(local(self.ports.token)?),
            metadata: Some(local(self.ports.metadata)?),
        })
    }

    pub fn gateway_targets(&self) -> anyhow::Result<GatewayTargets> {
        Ok(GatewayTargets {
            protected: Url::parse(&self.resource())?,
            open: Url::parse(&format!("http://127.0.0.1:{}{OPEN_PATH}", self.ports.gateway))?,
            upstream: Url::parse(&format!("http://127.0.0.1:{}/", self.ports.upstream))?,
            reference: match self.processes.iter().any(|p| p.component == Component::Nginx) {
                true => Some(Url::parse(&format!("http://127.0.0.1:{}/", self.ports.nginx))?),
                false => None,
            },
        })
    }

    pub fn upstream_auth_targets(&self) -> anyhow::Result<UpstreamAuthTargets> {
        let route = |path: &str| Url::parse(&format!("http://127.0.0.1:{}{path}", self.ports.gateway));
        Ok(UpstreamAuthTargets {
            none: route(UP_NONE_PATH)?,
            oauth2: route(UP_OAUTH2_PATH)?,
            oauth2_prefix: UP_OAUTH2_PATH.into(),
        })
    }

    pub fn mcp_targets(&self) -> anyhow::Result<McpTargets> {
        let route = |path: &str| Url::parse(&format!("http://127.0.0.1:{}{path}", self.ports.gateway));
        Ok(McpTargets { policy: route(MCP_PATH)?, plain: route(MCP_OFF_PATH)? })
    }

    /// The URL of the bench database (for the ceiling scenario, which rotates in a table of its own there).
    pub fn database_url(&self) -> anyhow::Result<String> {
        self.db_url()
    }

    /// The bench database's name.
    pub fn database(&self) -> &str {
        &self.db_name
    }

    /// Each child's name and process id.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes.iter().map(|p| (p.component.label().to_owned(), p.pid)).collect()
    }

    /// Each child's resident memory now.
    pub fn memory(&self) -> Vec<(String, u32, Option<Resident>)> {
        self.processes.iter().map(|p| (p.component.label().to_owned(), p.pid, memory::read(p.pid))).collect()
    }

    fn components_label(&self) -> String {
        self.processes.iter().map(|p| p.component.label()).collect::<Vec<_>>().join(", ")
    }

    /// Kills the children and drops the database. The config and logs are removed unless
    /// `--keep-logs` or `failed` (then their directory is printed).
    pub async fn stop(mut self, failed: bool) {
        for p in &mut self.processes {
            if p.component == Component::Nginx {
                // nginx's master stops its workers on SIGTERM; a SIGKILL would leave them running
                let _ = std::process::Command::new("kill").args(["-TERM", &p.pid.to_string()]).status();
                continue;
            }
            let _ = p.child.start_kill();
        }
        for p in &mut self.processes {
            let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
        }
        if self.db_created {
            let dropped = async {
                let mut admin = AsyncPgConnection::establish(&self.admin_url).await?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name))
                    .execute(&mut admin)
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = dropped.await {
                eprintln!("stack: could not drop database {}: {e:#}", self.db_name);
            }
        }
        if self.keep_logs || failed {
            eprintln!("stack: config and service logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn hex_suffix() -> String {
    let mut b = [0u8; 4];
    protocol::secret::fill_random(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The gateway's introspection client, as `sallyport migrate` provisions it in a deployment: an
/// operator's confidential client that may introspect.
async fn seed_introspection_client(db_url: &str, secret: &str) -> anyhow::Result<()> {
    use protocol::client::{ClientMetadataRequest, ClientSource, MetadataPolicy};
    let policy =
        MetadataPolicy { max_redirect_uris: 1, default_scopes: Default::default(), allowed_scopes: Default::default() };
    let metadata = ClientMetadataRequest {
        grant_types: Some(vec!["client_credentials".into()]),
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        ..Default::default()
    }
    .validate(&policy)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut row = store::clients::ClientRow::new(
        config::INTROSPECTION_CLIENT_ID.to_owned(),
        ClientSource::Admin,
        &metadata,
        chrono::Utc::now(),
    );
    row.client_secret_hash = Some(protocol::secret::SecretHash::of(secret).as_bytes().to_vec());
    row.may_introspect = true;
    let mut conn = AsyncPgConnection::establish(db_url).await?;
    store::clients::insert(&mut conn, &row).await.context("seeding the gateway's introspection client")?;
    Ok(())
}
