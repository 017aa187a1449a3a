//! Users' upstream tokens: read from `upstream_connections` (sealed per user and route), cached in
//! memory, refreshed exactly once when they expire or the upstream refuses them.
//!
//! Once across concurrent requests of one gateway: a single flight per (user, route) (a waiter
//! finds the cache filled by the one that went first). Once across gateways: the refresh runs in a
//! transaction holding the row (`SELECT … FOR UPDATE`); a gateway that waited for the lock and
//! finds `generation` moved uses the tokens the other stored. A rotated refresh token is stored in
//! that same transaction before the new access token is used (RFC 9700 §4.14.2: the old one is gone).
//!
//! The cache hears of every change to a row at once: the database notifies each update and delete
//! (`LISTEN upstream_connections`, [`Connections::follow_changes`]), so a Disconnect, an operator's
//! revocation or another gateway's refresh takes effect on the next request. While the listening
//! connection is down, an entry is still read again after [`REVALIDATE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncConnection;
use uuid::Uuid;

use protocol::Clock;
use protocol::error::ErrorCode;
use server::error::OAuthError;
use server::metrics::Metrics;
use server::token_client::{self, TokenError};
use store::upstream_connections::{self as connections, UpstreamConnectionRow, UpstreamTokens};

use super::OAuthRoute;
use crate::proxy::UpstreamCredential;

/// A token this close to its expiry is refreshed before it is sent.
const EXPIRY_MARGIN: TimeDelta = TimeDelta::seconds(30);
/// A cached token is read again from the database after this long: the bound on staleness while
/// no notification can arrive (the listening connection down).
const REVALIDATE: TimeDelta = TimeDelta::seconds(30);
/// Timeout of a refresh at the upstream's token endpoint.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the user must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    NotConnected,
    /// The upstream refused the refresh token (`invalid_grant`): revoked, or expired.
    Revoked,
    /// The access token expired (or was refused) and there is no refresh token.
    NoRefreshToken,
}

/// A user's upstream access token, ready to send.
pub struct Cached {
    pub credential: UpstreamCredential,
    /// The row's generation it came from.
    pub generation: i64,
    /// Used from the cache until then.
    good_until: DateTime<Utc>,
}

pub enum Obtained {
    Token(Arc<Cached>),
    Act(Why),
}

type Key = (Uuid, Arc<str>);

pub struct Connections {
    pool: store::db::Pool,
    kek: Option<[u8; 32]>,
    /// Under the SSRF policy (`server::outbound`): global addresses only.
    http: reqwest::Client,
    /// For routes with `upstream_oauth.allow_private_hosts` (an upstream on the operator's network).
    http_private: reqwest::Client,
    cache: quick_cache::sync::Cache<Key, Arc<Cached>>,
    flights: Mutex<HashMap<Key, Weak<tokio::sync::Mutex<()>>>>,
    clock: Clock,
    metrics: Metrics,
    /// Moves on with every change the database tells of: a token read before a change it has not
    /// seen is used for its request but not cached.
    epoch: AtomicU64,
    /// Something was cached: [`Connections::follow_changes`] opens its connection (a gateway
    /// without `oauth2` routes never does). `wake` tells it the first time.
    wanted: AtomicBool,
    wake: tokio::sync::Notify,
}

/// What the locked transaction decided.
enum Locked {
    Token(UpstreamConnectionRow, UpstreamTokens),
    Act(Why),
    /// Refresh failed in a way the user cannot fix (the upstream unreachable, our client refused).
    Failed(OAuthError),
}

impl Connections {
    pub fn new(
        pool: store::db::Pool,
        kek: Option<[u8; 32]>,
        capacity: usize,
        clock: Clock,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        // the same policy the connect flow discovered the token endpoint under: private addresses
        // only for a route that allows them
        let http = server::outbound::guarded_client(false, REFRESH_TIMEOUT)?;
        let http_private = server::outbound::guarded_client(true, REFRESH_TIMEOUT)?;
        Ok(Self {
            pool,
            kek,
            http,
            http_private,
            cache: quick_cache::sync::Cache::new(capacity.max(16)),
            flights: Mutex::new(HashMap::new()),
            clock,
            metrics,
            epoch: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Follows the database's notifications of changed connections for as long as `this` lives
    /// (the task checks every [`FOLLOW_TICK`]), from the first cached token on. Whatever was cached
    /// before the channel was heard (first, or again after the connection broke) is dropped.
    pub fn follow_changes(this: &Arc<Self>, database: &server::config::DatabaseSettings) {
        let weak = Arc::downgrade(this);
        let (url, connect_timeout) = (database.url.clone(), database.connect_timeout_ms);
        tokio::spawn(async move {
            let mut backoff = FOLLOW_TICK;
            loop {
                let Some(this) = weak.upgrade() else { return };
                if !this.wanted.load(Ordering::Acquire) {
                    // the gateway may go meanwhile: wake up now and then to see
                    let _ = tokio::time::timeout(FOLLOW_TICK, this.wake.notified()).await;
                    continue;
                }
                drop(this);
                match store::db::listen(&url, connect_timeout, connections::CHANGES).await {
                    Ok(mut conn) => {
                        backoff = FOLLOW_TICK;
                        if !follow(&weak, &mut conn).await {
                            return;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot listen for changed upstream connections"),
                }
                let Some(this) = weak.upgrade() else { return };
                this.forget_all();
                drop(this);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REVALIDATE.to_std().unwrap_or(Duration::from_secs(30)));
            }
        });
    }

    /// A row changed: its entry goes unless it already holds that generation.
    fn changed(&self, change: &connections::Change) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let key = (change.user_id, Arc::from(change.route.as_str()));
        let stale = match (self.cache.get(&key), change.generation) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(cached), Some(generation)) => cached.generation < generation,
        };
        if stale {
            self.cache.remove(&key);
        }
    }

    fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    fn client_for(&self, oauth: &OAuthRoute) -> &reqwest::Client {
        if oauth.explicit.allow_private_hosts { &self.http_private } else { &self.http }
    }

    /// The caller's token for the route: from the cache, else the database, refreshed first when
    /// it expires soon.
    pub async fn credential(&self, oauth: &OAuthRoute, user: Uuid) -> Result<Obtained, OAuthError> {
        let key = (user, Arc::clone(&oauth.route));
        if let Some(hit) = self.fresh(&key) {
            return Ok(Obtained::Token(hit));
        }
        let flight = self.flight(&key);
        let _turn = flight.lock().await;
        if let Some(hit) = self.fresh(&key) {
            return Ok(Obtained::Token(hit));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut conn = self.pool.get().await.map_err(OAuthError::unavailable)?;
        let Some(row) = connections::find(&mut conn, user, &oauth.route).await.map_err(OAuthError::unavailable)? else {
            self.cache.remove(&key);
            return Ok(Obtained::Act(Why::NotConnected));
        };
        if !self.expiring(row.expires_at) {
            let tokens = self.unseal(&row)?;
            return self.remember(key, &row, &tokens, epoch);
        }
        let seen = row.generation;
        drop(conn);
        self.refresh(oauth, key, seen).await
    }

    /// The upstream answered 401 to `used`: a token of a newer generation (another request or
    /// gateway refreshed meanwhile), else a refresh.
    pub async fn after_rejection(&self, oauth: &OAuthRoute, user: Uuid, used: &Cached) -> Result<Obtained, OAuthError> {
        let key = (user, Arc::clone(&oauth.route));
        let flight = self.flight(&key);
        let _turn = flight.lock().await;
        if let Some(hit) = self.fresh(&key).filter(|c| c.generation != used.generation) {
            return Ok(Obtained::Token(hit));
        }
        self.cache.remove(&key);
        self.refresh(oauth, key, used.generation).await
    }

    fn fresh(&self, key: &Key) -> Option<Arc<Cached>> {
        self.cache.get(key).filter(|c| c.good_until > self.clock.now())
    }

    /// The single flight of (user, route): one task at a time reads or refreshes.
    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(flight) = flights.get(key).and_then(Weak::upgrade) {
            return flight;
        }
        if flights.len() >= 1024 {
            flights.retain(|_, f| f.strong_count() > 0);
        }
        let flight = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(key.clone(), Arc::downgrade(&flight));
        flight
    }

    fn expiring(&self, expires_at: Option<DateTime<Utc>>) -> bool {
        expires_at.is_some_and(|at| at - EXPIRY_MARGIN <= self.clock.now())
    }

    fn unseal(&self, row: &UpstreamConnectionRow) -> Result<UpstreamTokens, OAuthError> {
        let kek = self.kek.as_ref().ok_or_else(|| OAuthError::internal("keys.encryption_key is not set"))?;
        connections::unseal_tokens(kek, row.user_id, &row.route, &row.tokens_enc)
            .map_err(|_| OAuthError::internal("an upstream connection does not open under keys.encryption_key"))
    }

    /// The token of `row` for its request; cached unless the database told of a change since
    /// `epoch` (when the row was about to be read), which this row may predate.
    fn remember(
        &self,
        key: Key,
        row: &UpstreamConnectionRow,
        tokens: &UpstreamTokens,
        epoch: u64,
    ) -> Result<Obtained, OAuthError> {
        let credential = UpstreamCredential::bearer(&tokens.access_token)
            .ok_or_else(|| OAuthError::internal("the upstream's access token is not a valid header value"))?;
        let now = self.clock.now();
        let good_until = row.expires_at.map_or(now + REVALIDATE, |at| (at - EXPIRY_MARGIN).min(now + REVALIDATE));
        let cached = Arc::new(Cached { credential, generation: row.generation, good_until });
        if !self.wanted.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.cache.insert(key, Arc::clone(&cached));
        }
        Ok(Obtained::Token(cached))
    }

    /// Refreshes in a transaction holding the row, unless its generation moved from `seen`.
    async fn refresh(&self, oauth: &OAuthRoute, key: Key, seen: i64) -> Result<Obtained, OAuthError> {
        let (user, route) = (key.0, Arc::clone(&key.1));
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut conn = self.pool.get().await.map_err(OAuthError::unavailable)?;
        let locked = conn
            .transaction(async |conn| -> Result<Locked, diesel::result::Error> {
                let Some(row) = connections::lock(conn, user, &route).await? else {
                    return Ok(Locked::Act(Why::NotConnected));
                };
                let tokens = match self.unseal(&row) {
                    Ok(tokens) => tokens,
                    Err(e) => return Ok(Locked::Failed(e)),
                };
                if row.generation != seen && !self.expiring(row.expires_at) {
                    // another request or gateway refreshed while this one waited for the row
                    self.metrics.upstream_token_refresh("reused");
                    return Ok(Locked::Token(row, tokens));
                }
                let Some(refresh_token) = tokens.refresh_token.clone() else {
                    self.metrics.upstream_token_refresh("no_refresh_token");
                    connections::delete(conn, user, &route).await?;
                    self.audit(conn, "upstream.revoked", user, &row, "no_refresh_token").await?;
                    return Ok(Locked::Act(Why::NoRefreshToken));
                };
                let registered = store::upstream_clients::find(conn, &row.issuer).await?;
                let client = match token_client::for_route(
                    &oauth.explicit,
                    oauth.client_secret.as_ref(),
                    registered.as_ref(),
                    self.kek.as_ref(),
                ) {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::warn!(route = %route, error = %e, "no client at the upstream to refresh with");
                        self.metrics.upstream_token_refresh("error");
                        self.audit(conn, "upstream.refresh_failed", user, &row, "no_client").await?;
                        return Ok(Locked::Failed(unavailable()));
                    }
                };
                // the SSRF policy of the connect flow, for an endpoint given by hand as well
                let private = oauth.explicit.allow_private_hosts;
                if let Err(why) = server::outbound::check_url(&client.token_endpoint, private, private) {
                    tracing::warn!(route = %route, why, "the upstream's token endpoint is not allowed");
                    self.metrics.upstream_token_refresh("error");
                    self.audit(conn, "upstream.refresh_failed", user, &row, "endpoint_not_allowed").await?;
                    return Ok(Locked::Failed(unavailable()));
                }
                match client.refresh(self.client_for(oauth), &refresh_token, oauth.explicit.resource.as_deref()).await {
                    Ok(fresh) => {
                        self.metrics.upstream_token_refresh("refreshed");
                        let now = self.clock.now();
                        // RFC 6749 §6: without a new refresh token the old one stays valid
                        let tokens = UpstreamTokens {
                            access_token: fresh.access_token.clone(),
                            refresh_token: fresh.refresh_token.clone().or(Some(refresh_token)),
                        };
                        let kek = self.kek.as_ref().ok_or(diesel::result::Error::RollbackTransaction)?;
                        let sealed = connections::seal_tokens(kek, user, &route, &tokens)
                            .map_err(|_| diesel::result::Error::RollbackTransaction)?;
                        let expires_at = fresh
                            .expires_in()
                            .and_then(|d| TimeDelta::from_std(d).ok())
                            .and_then(|d| now.checked_add_signed(d));
                        let scope = fresh.scope.clone().or_else(|| row.scope.clone());
                        let generation = connections::replace_tokens(
                            conn,
                            user,
                            &route,
                            &sealed,
                            true,
                            scope.as_deref(),
                            expires_at,
                            now,
                        )
                        .await?;
                        let row = UpstreamConnectionRow { generation, expires_at, scope, tokens_enc: sealed, ..row };
                        Ok(Locked::Token(row, tokens))
                    }
                    Err(TokenError::Refused { error, .. }) if error == "invalid_grant" => {
                        // RFC 6749 §5.2: revoked, expired or rotated away: only the user can reconnect
                        self.metrics.upstream_token_refresh("revoked");
                        connections::delete(conn, user, &route).await?;
                        self.audit(conn, "upstream.revoked", user, &row, "invalid_grant").await?;
                        Ok(Locked::Act(Why::Revoked))
                    }
                    Err(e) => {
                        let (outcome, reason) = match &e {
                            TokenError::Refused { .. } => ("refused", "refused"),
                            TokenError::Unreachable(_) => ("error", "unreachable"),
                            TokenError::Invalid(_) => ("error", "invalid_response"),
                        };
                        tracing::warn!(route = %route, error = %e, "refreshing an upstream token failed");
                        self.metrics.upstream_token_refresh(outcome);
                        self.audit(conn, "upstream.refresh_failed", user, &row, reason).await?;
                        Ok(Locked::Failed(unavailable()))
                    }
                }
            })
            .await
            .map_err(OAuthError::unavailable)?;
        match locked {
            Locked::Token(row, tokens) => self.remember(key, &row, &tokens, epoch),
            Locked::Act(why) => {
                self.cache.remove(&key);
                Ok(Obtained::Act(why))
            }
            Locked::Failed(e) => Err(e),
        }
    }

    async fn audit(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        kind: &str,
        user: Uuid,
        row: &UpstreamConnectionRow,
        reason: &str,
    ) -> diesel::QueryResult<()> {
        let event = store::audit::NewAuditEvent {
            occurred_at: self.clock.now(),
            kind,
            client_id: None,
            user_id: Some(user),
            ip: None,
            detail: serde_json::json!({ "route": row.route, "issuer": row.issuer, "reason": reason }),
        };
        store::audit::record(conn, &event).await
    }
}

/// How often the following task looks whether its gateway is still there; the first wait after a
/// broken connection (doubling up to [`REVALIDATE`]).
const FOLLOW_TICK: Duration = Duration::from_secs(1);

/// Reads notifications until the connection breaks (`true`) or the gateway is gone (`false`).
async fn follow(weak: &Weak<Connections>, conn: &mut diesel_async::AsyncPgConnection) -> bool {
    use futures_util::StreamExt;
    // changes before the channel was heard are unknown: start afresh
    match weak.upgrade() {
        Some(this) => this.forget_all(),
        None => return false,
    }
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    loop {
        let next = tokio::time::timeout(FOLLOW_TICK, notifications.next()).await;
        let Some(this) = weak.upgrade() else { return false };
        match next {
            Err(_elapsed) => {}
            Ok(Some(Ok(notification))) => match connections::Change::parse(&notification.payload) {
                Some(change) => this.changed(&change),
                // not ours to read: everything may have changed
                None => this.forget_all(),
            },
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "the connection listening for changed upstream connections broke");
                return true;
            }
            Ok(None) => return true,
        }
    }
}

/// The upstream's authorization server could not renew the token: 502, nothing the user can do.
fn unavailable() -> OAuthError {
    OAuthError::new(ErrorCode::TemporarilyUnavailable, "the upstream's authorization server cannot renew the token")
        .with_status(actix_web::http::StatusCode::BAD_GATEWAY)
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("cached", &self.cache.len()).finish_non_exhaustive()
    }
}

/// Never the token.
impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("generation", &self.generation).finish_non_exhaustive()
    }
}
