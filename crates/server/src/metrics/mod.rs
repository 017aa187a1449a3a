//! Prometheus metrics of one process: one registry per [`Metrics`] value, handed to the services in
//! their `Context` (no global recorder, so one test process runs several stacks that count apart),
//! served as OpenMetrics text at `/metrics` ([`http`]).
//!
//! Every label takes a bounded set of values: service names, route templates (actix's match
//! pattern, or a gateway route's configured prefix), status classes, grant types, RFC 6749 error
//! codes and fixed outcome words. User ids, client ids, token ids and raw paths never are labels.
//!
//! With `metrics.enabled = false` a `Metrics` is empty: every method is a no-op, no middleware is
//! installed and `/metrics` answers 404 (the benchmarks compare both).

mod collectors;
pub mod http;

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use collectors::KeyTimes;

pub use crate::config::MetricsSettings;

/// The version this binary was built from, and the commit when the build was told it
/// (`SALLYPORT_COMMIT` at compile time: the Dockerfile's build argument, CI's checkout). Not read
/// from `.git` by a build script: that would rebuild the workspace at every commit.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = match option_env!("SALLYPORT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Latency buckets, in seconds: from a cached JWKS answer (sub-millisecond) to a slow upstream.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// One HTTP request as counted: which service, which route template, which method, which class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub service: &'static str,
    pub route: Cow<'static, str>,
    pub method: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// How a user signed in (`password` or `openid`) and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    method: &'static str,
    outcome: &'static str,
}

/// A gateway route (its configured prefix, or an authorization-server mount) and what became of
/// one request on it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub route: Arc<str>,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Arc<str>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    /// `/metrics` on each service's own port (no `listen.admin`).
    on_service_port: bool,
    http: HistogramFamily<HttpLabels>,
    grants: Family<GrantLabels, Counter>,
    family_revocations: Family<ReasonLabels, Counter>,
    registrations: Family<OutcomeLabels, Counter>,
    sign_ins: Family<SignInLabels, Counter>,
    consents: Family<OutcomeLabels, Counter>,
    gateway_requests: Family<GatewayLabels, Counter>,
    gateway_upstream: HistogramFamily<RouteLabels>,
    token_cache: Family<OutcomeLabels, Counter>,
    jwks_refreshes: Family<OutcomeLabels, Counter>,
    introspections: Family<OutcomeLabels, Counter>,
    upstream_refreshes: Family<OutcomeLabels, Counter>,
    key_times: Arc<KeyTimes>,
}

/// The metrics of one process; cheap to clone. `Default` is the disabled (empty) value.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.0.is_some()).finish()
    }
}

impl Metrics {
    /// The metrics of a process with these settings and (to report its occupancy) this pool.
    pub fn new(settings: &crate::Settings, pool: Option<&store::Pool>) -> Self {
        if !settings.metrics.enabled {
            return Self(None);
        }
        let mut registry = Registry::with_prefix("sallyport");
        registry.register(
            "build",
            "The version and commit of this binary",
            Info::new([("version", VERSION), ("commit", COMMIT)]),
        );
        let http: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP requests by service, route template, method and status class, and their latency",
            Unit::Seconds,
            http.clone(),
        );
        let grants = Family::default();
        registry.register(
            "token_grants",
            "Token requests by grant type and outcome (issued, or the RFC 6749 error code)",
            grants.clone(),
        );
        let family_revocations = Family::default();
        registry.register(
            "grant_family_revocations",
            "Grant families revoked, by reason: refresh_reuse (a rotated refresh token used again), \
             code_replay, revoked (RFC 7009)",
            family_revocations.clone(),
        );
        let registrations = Family::default();
        registry.register(
            "client_registrations",
            "RFC 7591 registrations by outcome (registered, or the error code)",
            registrations.clone(),
        );
        let sign_ins = Family::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts by method (password, openid) and outcome: success, failure, lockout",
            sign_ins.clone(),
        );
        let consents = Family::default();
        registry.register("consent_decisions", "Consent decisions: approved, denied", consents.clone());
        let gateway_requests = Family::default();
        registry.register(
            "gateway_requests",
            "Gateway requests by route and outcome: forwarded, unauthorized (401), forbidden (403), \
             rate_limited (429), upstream_error (502/504), rejected (another 4xx of the gateway's own), error",
            gateway_requests.clone(),
        );
        let gateway_upstream: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "gateway_upstream_duration",
            "From forwarding a request to the upstream's response headers, by gateway route",
            Unit::Seconds,
            gateway_upstream.clone(),
        );
        let token_cache = Family::default();
        registry.register(
            "gateway_verified_token_cache",
            "Bearer tokens looked up in the gateway's cache of verified tokens: hit, miss",
            token_cache.clone(),
        );
        let jwks_refreshes = Family::default();
        registry.register(
            "gateway_jwks_refreshes",
            "JWKS fetches of the gateway by outcome: ok, error",
            jwks_refreshes.clone(),
        );
        let introspections = Family::default();
        registry.register(
            "gateway_introspection_calls",
            "RFC 7662 introspection calls of the gateway by outcome: active, inactive, error",
            introspections.clone(),
        );
        let upstream_refreshes = Family::default();
        registry.register(
            "gateway_upstream_token_refreshes",
            "Refreshes of users' upstream tokens (upstream_auth = oauth2) by outcome: refreshed, reused, revoked, no_refresh_token, refused, error",
            upstream_refreshes.clone(),
        );
        if let Some(pool) = pool {
            registry.register_collector(Box::new(collectors::PoolCollector::new(pool.clone())));
            let waits = collectors::PoolWaits::default();
            registry.register_with_unit(
                "db_pool_acquire_duration",
                "How long requests waited for a database connection (those that got one)",
                Unit::Seconds,
                waits.waited.clone(),
            );
            registry.register(
                "db_pool_acquire_timeouts",
                "Requests that got no database connection within database.acquire_timeout_ms",
                waits.timeouts.clone(),
            );
            // the first registry of a pool observes it (a process has one of each)
            pool.observe(waits);
        }
        let key_times = Arc::new(KeyTimes::default());
        registry.register_collector(Box::new(collectors::KeyCollector(Arc::clone(&key_times))));
        Self(Some(Arc::new(Inner {
            registry,
            on_service_port: settings.listen.admin.is_none(),
            http,
            grants,
            family_revocations,
            registrations,
            sign_ins,
            consents,
            gateway_requests,
            gateway_upstream,
            token_cache,
            jwks_refreshes,
            introspections,
            upstream_refreshes,
            key_times,
        })))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Whether each service serves `/metrics` on its own port (enabled, and no `listen.admin`).
    pub fn on_service_port(&self) -> bool {
        self.0.as_ref().is_some_and(|m| m.on_service_port)
    }

    /// The OpenMetrics text of every metric, as a scrape gets it.
    pub fn encode(&self) -> Option<String> {
        let inner = self.0.as_ref()?;
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &inner.registry).ok()?;
        Some(out)
    }

    pub(crate) fn observe_http(&self, labels: &HttpLabels, seconds: f64) {
        if let Some(m) = &self.0 {
            m.http.get_or_create(labels).observe(seconds);
        }
    }

    /// A token request's grant type (`unsupported` when the parameter named none we know) and
    /// outcome (`issued`, or the RFC 6749 §5.2 error code).
    pub fn token_grant(&self, grant_type: &'static str, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.grants.get_or_create(&GrantLabels { grant_type, outcome }).inc();
        }
    }

    /// A grant family was revoked (`refresh_reuse`, `code_replay`, `revoked`).
    pub fn family_revoked(&self, reason: &'static str) {
        if let Some(m) = &self.0 {
            m.family_revocations.get_or_create(&ReasonLabels { reason }).inc();
        }
    }

    /// A registration request's outcome (`registered`, or the error code).
    pub fn registration(&self, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.registrations.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// A password sign-in attempt: `success`, `failure` or `lockout`.
    pub fn sign_in(&self, outcome: &'static str) {
        self.sign_in_with("password", outcome);
    }

    /// A sign-in attempt by `method` (`password`, `openid`): `success` or `failure`.
    pub fn sign_in_with(&self, method: &'static str, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.sign_ins.get_or_create(&SignInLabels { method, outcome }).inc();
        }
    }

    /// A consent decision: `approved` or `denied`.
    pub fn consent(&self, decision: &'static str) {
        if let Some(m) = &self.0 {
            m.consents.get_or_create(&OutcomeLabels { outcome: decision }).inc();
        }
    }

    /// The counters and histogram of one gateway route, created once when the routes are built so
    /// the request path only bumps atomics.
    pub fn gateway_route(&self, route: &str) -> GatewayRouteMetrics {
        let Some(m) = &self.0 else { return GatewayRouteMetrics(None) };
        let route: Arc<str> = Arc::from(route);
        let counter =
            |outcome| m.gateway_requests.get_or_create_owned(&GatewayLabels { route: route.clone(), outcome });
        GatewayRouteMetrics(Some(Arc::new(RouteHandles {
            forwarded: counter("forwarded"),
            unauthorized: counter("unauthorized"),
            forbidden: counter("forbidden"),
            rate_limited: counter("rate_limited"),
            upstream_error: counter("upstream_error"),
            rejected: counter("rejected"),
            error: counter("error"),
            upstream: m.gateway_upstream.get_or_create_owned(&RouteLabels { route: route.clone() }),
            route,
        })))
    }

    /// A bearer token looked up in the gateway's verified-token cache.
    pub fn token_cache(&self, hit: bool) {
        if let Some(m) = &self.0 {
            m.token_cache.get_or_create(&OutcomeLabels { outcome: if hit { "hit" } else { "miss" } }).inc();
        }
    }

    /// A JWKS fetch of the gateway: `ok` or `error`.
    pub fn jwks_refresh(&self, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.jwks_refreshes.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// An introspection call of the gateway: `active`, `inactive` or `error`.
    pub fn introspection(&self, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.introspections.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// A user's upstream token needed renewal (`upstream_auth = "oauth2"`): `refreshed` at the
    /// upstream, `reused` (another request or gateway had refreshed), `revoked` (`invalid_grant`:
    /// the connection is gone), `no_refresh_token`, `refused` (another RFC 6749 error) or `error`.
    pub fn upstream_token_refresh(&self, outcome: &'static str) {
        if let Some(m) = &self.0 {
            m.upstream_refreshes.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// Where the token service reports its signing keys' times (read at each scrape).
    pub fn key_times(&self) -> Option<Arc<KeyTimes>> {
        self.0.as_ref().map(|m| Arc::clone(&m.key_times))
    }
}

struct RouteHandles {
    route: Arc<str>,
    forwarded: Counter,
    unauthorized: Counter,
    forbidden: Counter,
    rate_limited: Counter,
    upstream_error: Counter,
    rejected: Counter,
    error: Counter,
    upstream: Histogram,
}

/// One gateway route's metrics (empty when metrics are off).
#[derive(Clone, Default)]
pub struct GatewayRouteMetrics(Option<Arc<RouteHandles>>);

impl GatewayRouteMetrics {
    /// The route label, for the request-latency histogram.
    pub fn route(&self) -> Option<&Arc<str>> {
        self.0.as_ref().map(|h| &h.route)
    }

    /// Counts one answered request: `from_gateway` when the gateway answered itself (an error of
    /// its own), else the upstream's answer was forwarded, whatever its status.
    pub fn answered(&self, status: u16, from_gateway: bool) {
        let Some(h) = &self.0 else { return };
        let counter = match (from_gateway, status) {
            (false, _) => &h.forwarded,
            (true, 401) => &h.unauthorized,
            (true, 403) => &h.forbidden,
            (true, 429) => &h.rate_limited,
            (true, 502 | 504) => &h.upstream_error,
            (true, 400..=499) => &h.rejected,
            (true, _) => &h.error,
        };
        counter.inc();
    }

    /// Time from forwarding to the upstream's response headers.
    pub fn upstream_seconds(&self, seconds: f64) {
        if let Some(h) = &self.0 {
            h.upstream.observe(seconds);
        }
    }
}
