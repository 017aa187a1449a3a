//! The whole system in one process: the four services, the gateway and the demo MCP server, each on
//! its own loopback listener, built by the very same app factories the service binaries use.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use protocol::Clock;
use server::Settings;
use server::config::{
    DatabaseSettings, GatewaySettings, HttpUrl, Issuer, ListenSettings, ResourceSettings, RevocationCheck,
    RouteSettings, ServiceUrls,
};
use server::http::ServeOptions;
use server::service::{Context, ServiceApp};
use store::users;
use tokio_util::sync::CancellationToken;

/// How to start the system.
pub struct Options {
    /// The gateway's listener; the issuer is `http://<its address>`.
    pub gateway: TcpListener,
    pub database_url: String,
    /// Settings to start from (file and environment); `up` overrides what it runs itself.
    pub base: Settings,
    /// The demo user's password; `None` generates one.
    pub demo_password: Option<String>,
    /// actix workers per service.
    pub workers: usize,
    /// Ask the token service, through introspection, whether each token was revoked.
    pub revocation_check: RevocationCheck,
    pub clock: Clock,
}

/// A running system.
pub struct System {
    pub issuer: String,
    pub mcp_url: String,
    pub demo_user: String,
    pub demo_password: String,
    pub settings: Arc<Settings>,
    pub pool: store::Pool,
    /// Direct URLs of the services and the demo upstream (tests and benchmarks).
    pub registration_url: String,
    pub authorize_url: String,
    pub token_url: String,
    pub metadata_url: String,
    pub upstream_url: String,
    handles: Vec<ServerHandle>,
    stop: CancellationToken,
}

fn loopback_listener() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")
}

fn url_of(l: &TcpListener) -> anyhow::Result<String> {
    Ok(format!("http://{}", l.local_addr()?))
}

fn http_url_of(l: &TcpListener) -> anyhow::Result<HttpUrl> {
    HttpUrl::parse(&url_of(l)?).map_err(anyhow::Error::msg)
}

impl System {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let gateway_addr = options.gateway.local_addr()?;
        let issuer = format!("http://{gateway_addr}");
        let mcp_url = format!("{issuer}/mcp");

        store::db::migrate(&options.database_url).await.context("cannot migrate the database")?;

        let registration = loopback_listener()?;
        let authorize = loopback_listener()?;
        let token = loopback_listener()?;
        let metadata = loopback_listener()?;
        let upstream = loopback_listener()?;

        // everything `up` runs itself is set here, as values of their types, over the settings it
        // was given (file and environment, checked when they were loaded); nothing is checked again
        let base = options.base;
        if base.keys.encryption_key.is_none() {
            anyhow::bail!("keys.encryption_key is required");
        }
        let database = DatabaseSettings { url: options.database_url.clone(), ..base.database };
        let pool = store::db::pool(&database)?;
        store::db::check(&pool, &database.url).await?;
        let mut conn = pool.get().await?;
        let now = options.clock.now();
        let introspection = if options.revocation_check != RevocationCheck::Off {
            // a fresh secret at every start: only this process knows it
            let id = "sallyport-gateway";
            let secret = protocol::secret::PlainSecret::generate(protocol::secret::SecretKind::ClientSecret);
            crate::provision::introspection_client(&mut conn, id, secret.expose(), now).await?;
            Some((id.to_owned(), secret.into_inner()))
        } else {
            None
        };

        let upstream_url = url_of(&upstream)?;
        let demo = ResourceSettings {
            resource: mcp_url.clone(),
            name: "Demo MCP server".into(),
            scopes: vec!["mcp".into()],
            documentation: None,
            accept_machine_tokens: false,
        };
        let demo_route = demo_mcp_route("/mcp", &format!("{upstream_url}/mcp"), &mcp_url)?;
        let routes: Vec<RouteSettings> =
            base.gateway.routes.into_iter().filter(|r| r.prefix != "/mcp").chain([demo_route]).collect();
        let resources = std::iter::once(demo)
            .chain(base.resources.into_iter().filter(|r| r.resource != mcp_url))
            .collect::<Vec<_>>();
        let (introspection_client_id, introspection_client_secret) = match introspection {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (base.gateway.introspection_client_id, base.gateway.introspection_client_secret),
        };
        let settings = Settings {
            issuer: Issuer::parse(&issuer)?,
            allow_http_issuer: !gateway_addr.ip().is_loopback(),
            database,
            // the services are reachable only on loopback, behind the gateway that sets X-Forwarded-For
            trust_forwarded_for: true,
            services: ServiceUrls {
                registration: http_url_of(&registration)?,
                authorize: http_url_of(&authorize)?,
                token: http_url_of(&token)?,
                metadata: http_url_of(&metadata)?,
            },
            listen: ListenSettings { gateway: gateway_addr, ..base.listen },
            resources: server::config::with_tool_scopes(resources, &routes),
            gateway: GatewaySettings {
                routes,
                revocation_check: options.revocation_check,
                introspection_client_id,
                introspection_client_secret,
                ..base.gateway
            },
            ..base
        };

        let demo_user = "demo".to_owned();
        let demo_password = options.demo_password.unwrap_or_else(|| protocol::secret::random_token(12));
        let hash = store::password::hash(&demo_password).context("SALLYPORT_DEMO_PASSWORD")?;
        if users::find_by_username(&mut conn, &demo_user).await?.is_some() {
            users::set_password(&mut conn, &demo_user, &hash, now).await?;
            users::set_disabled(&mut conn, &demo_user, false, now).await?;
        } else {
            users::insert(&mut conn, &users::UserRow::new(&demo_user, hash, now)).await?;
        }
        drop(conn);

        let settings = Arc::new(settings);
        let metrics = server::metrics::Metrics::new(&settings, Some(&pool));
        let ctx = Context { pool: pool.clone(), clock: options.clock.clone(), metrics: metrics.clone() };
        let s = settings.as_ref();
        let apps: Vec<(ServiceApp, TcpListener)> = vec![
            (registration::app(ctx.clone(), s.into()).await.map_err(anyhow_box)?, registration),
            (authorize::app(ctx.clone(), s.into()).await.map_err(anyhow_box)?, authorize),
            (token::app(ctx.clone(), s.into()).await.map_err(anyhow_box)?, token),
            (resource_metadata::app(ctx.clone(), s.into()).await.map_err(anyhow_box)?, metadata),
            (gateway::app(ctx.clone(), s.into()).await.map_err(anyhow_box)?, options.gateway),
        ];

        let mut handles = Vec::new();
        let mut urls = Vec::new();
        for (app, listener) in apps {
            urls.push(url_of(&listener)?);
            let serve = ServeOptions {
                workers: options.workers,
                shutdown_timeout_secs: settings.listen.shutdown_timeout_secs.as_secs(),
                handle_signals: false,
                pool: Some(pool.clone()),
                ready: None,
                traces: server::telemetry::propagation::TraceTrust::from_settings(&settings),
            };
            let server = app.serve(listener, serve).with_context(|| format!("cannot start {}", app.name))?;
            handles.push(server.handle());
            tokio::spawn(server);
        }

        // one registry for the whole process: on every service port, or on listen.admin when set
        if let Some(addr) = settings.listen.admin.filter(|_| metrics.enabled()) {
            let server = server::metrics::http::serve_admin(server::http::bind(addr)?, metrics)?;
            handles.push(server.handle());
            tokio::spawn(server);
        }

        let stop = CancellationToken::new();
        upstream.set_nonblocking(true)?;
        let upstream_listener = tokio::net::TcpListener::from_std(upstream)?;
        let allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), gateway_addr.ip().to_string()];
        tokio::spawn(crate::demo_mcp::serve(upstream_listener, allowed_hosts, stop.clone()));

        Ok(Self {
            issuer,
            mcp_url,
            demo_user,
            demo_password,
            settings,
            pool,
            registration_url: urls[0].clone(),
            authorize_url: urls[1].clone(),
            token_url: urls[2].clone(),
            metadata_url: urls[3].clone(),
            upstream_url,
            handles,
            stop,
        })
    }

    /// Stops every server, letting in-flight requests finish.
    pub async fn stop(self) {
        self.stop.cancel();
        for h in &self.handles {
            h.stop(true).await;
        }
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        self.settings.listen.gateway
    }
}

/// A protected MCP route of `up`'s demo (scope `mcp`, reachable from the MCP Inspector in a browser)
/// to `upstream`, for the resource `resource`; the upstream sends nothing of its own.
pub(crate) fn demo_mcp_route(prefix: &str, upstream: &str, resource: &str) -> anyhow::Result<RouteSettings> {
    Ok(RouteSettings {
        prefix: prefix.into(),
        upstream: HttpUrl::parse(upstream).map_err(anyhow::Error::msg)?,
        resource: Some(resource.to_owned()),
        scopes: vec!["mcp".into()],
        method_scopes: Default::default(),
        auth: true,
        // the MCP Inspector in a browser
        allowed_origins: vec!["http://localhost:6274".into(), "http://127.0.0.1:6274".into()],
        allow_form_token: false,
        allow_query_token: false,
        mcp: true,
        tools: Default::default(),
        tool_scopes: Default::default(),
        upstream_auth: Default::default(),
        upstream_api_key: None,
        upstream_headers: Default::default(),
        upstream_oauth: None,
    })
}

fn anyhow_box(e: server::service::BuildError) -> anyhow::Error {
    // the token service's refusal of the signing keys keeps its type: `up` explains one case of it
    match e.downcast::<token::SigningKeysError>() {
        Ok(keys) => anyhow::Error::new(*keys),
        Err(e) => anyhow::anyhow!(e),
    }
}
