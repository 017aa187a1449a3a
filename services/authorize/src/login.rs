//! Who the user is. The login step sits behind [`Authenticator`], so an upstream identity provider
//! can be added beside local passwords: whatever proves the user ends in the same
//! `session::start`. Local users: argon2id, an unknown user costs as much as a wrong password, and
//! a user is locked for `login.lockout_secs` after `login.max_failures` failures in a row (the
//! per-IP limit is the caller's, before it gets here). Each attempt is counted as a failure before
//! its password is checked, so concurrent guesses get no more than `max_failures` checks; the one
//! that locks the user also ends their sessions and grants.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use protocol::clock::{Clock, after};
use protocol::ident::{Password, Username};
use server::config::LoginSettings;
use server::error::OAuthError;
use server::metrics::Metrics;
use store::audit::kind;
use store::db::Pool;
use store::users;
use uuid::Uuid;

/// What the login form sent.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// Where the attempt came from, for the audit trail.
    pub ip: Option<std::net::IpAddr>,
}

/// A user whose identity was proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub id: Uuid,
    pub username: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password, an unknown, disabled or locked user: deliberately one case.
    #[error("the credentials were not accepted")]
    Rejected,
    #[error(transparent)]
    Internal(#[from] OAuthError),
}

/// A way to prove who the user is.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, credentials: Credentials<'a>)
    -> BoxFuture<'a, Result<AuthenticatedUser, LoginError>>;
}

/// Local users in the `users` table (managed with `sallyport user`).
pub struct LocalPasswords {
    pool: Pool,
    clock: Clock,
    settings: LoginSettings,
    /// How long a lockout's revocations are kept: past the life of every access token.
    revoke_for_secs: u64,
    metrics: Metrics,
}

/// Verifiers may accept a token this long past `exp`; a revocation must outlive that too.
const VERIFIER_LEEWAY_SECS: u64 = 300;

impl LocalPasswords {
    pub fn new(pool: Pool, clock: Clock, settings: LoginSettings, access_token_ttl: Duration) -> Arc<Self> {
        Self::counted(pool, clock, settings, access_token_ttl, Metrics::default())
    }

    /// Like [`LocalPasswords::new`], counting lockouts in `metrics`.
    pub fn counted(
        pool: Pool,
        clock: Clock,
        settings: LoginSettings,
        access_token_ttl: Duration,
        metrics: Metrics,
    ) -> Arc<Self> {
        let revoke_for_secs = access_token_ttl.as_secs().saturating_add(VERIFIER_LEEWAY_SECS);
        Arc::new(Self { pool, clock, settings, revoke_for_secs, metrics })
    }

    async fn check(&self, credentials: &Credentials<'_>) -> Result<AuthenticatedUser, LoginError> {
        let now = self.clock.now();
        let max = i32::try_from(self.settings.max_failures).unwrap_or(i32::MAX);
        let lock_until = after(now, self.settings.lockout_secs.as_secs());
        let attempt = {
            let mut conn = self.pool.get().await.map_err(OAuthError::from)?;
            users::claim_attempt(&mut conn, credentials.username, max, now, lock_until)
                .await
                .map_err(OAuthError::from)?
        };
        let password = credentials.password.to_owned();
        let Some(attempt) = attempt else {
            // unknown, disabled or locked: the same argon2 work as a real verification, so neither
            // timing nor answer tells them apart
            spawn_hash(move || store::password::verify_dummy(&password)).await?;
            return Err(LoginError::Rejected);
        };
        let stored = attempt.password_hash.clone();
        let matches = spawn_hash(move || store::password::verify(&password, &stored)).await?;
        let mut conn = self.pool.get().await.map_err(OAuthError::from)?;
        if matches {
            users::reset_failures(&mut conn, attempt.id).await.map_err(OAuthError::from)?;
            return Ok(AuthenticatedUser { id: attempt.id, username: attempt.username });
        }
        tracing::info!(user_id = %attempt.id, failures = attempt.failed_logins, "login failed");
        if attempt.failed_logins >= max {
            // this attempt locked the user: whatever a guessed password may have won ends with it
            let ip = credentials.ip.map(|ip| ip.to_string());
            let until = after(now, self.revoke_for_secs);
            let ended =
                users::end_access_audited(&mut conn, attempt.id, kind::USER_LOCKED_OUT, ip.as_deref(), now, until)
                    .await
                    .map_err(OAuthError::from)?;
            tracing::warn!(user_id = %attempt.id, sessions = ended.sessions, grants = ended.grants, "user locked out");
            self.metrics.sign_in("lockout");
        }
        Err(LoginError::Rejected)
    }
}

/// At most this many argon2 computations at once: one per core. More would not finish sooner, and
/// each one in flight holds 19 MiB of working memory, which `store::password` keeps for reuse: the
/// bound is also the most memory sign-ins can ever hold.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

/// Argon2 takes tens of milliseconds of CPU: off the async reactor, and bounded (see [`HASHING`]).
async fn spawn_hash<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, OAuthError> {
    let _permit = HASHING.acquire().await.map_err(OAuthError::internal)?;
    tokio::task::spawn_blocking(f).await.map_err(OAuthError::internal)
}

impl Authenticator for LocalPasswords {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> BoxFuture<'a, Result<AuthenticatedUser, LoginError>> {
        Box::pin(async move {
            // parsed before anything else: a name Postgres cannot hold (NUL) or no page can show
            // is an ordinary failed sign-in, never a query
            let (Ok(username), Ok(password)) =
                (Username::parse(credentials.username), Password::parse(credentials.password))
            else {
                return Err(LoginError::Rejected);
            };
            // the parsed values are the very strings sent: check them, never the raw ones
            let parsed = Credentials { username: username.as_str(), password: password.expose(), ip: credentials.ip };
            self.check(&parsed).await
        })
    }
}
