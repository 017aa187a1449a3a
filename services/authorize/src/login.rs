//! Who the user is. The login step sits behind [`Authenticator`], so an upstream identity provider
//! can be added beside local passwords: whatever proves the user ends in the same
//! `session::start`. Local users: argon2id, an unknown user costs as much as a wrong password, and
//! a user is locked for `login.lockout_secs` after `login.max_failures` failures in a row (the
//! per-IP limit is the caller's, before it gets here).

use std::sync::Arc;

use domain::clock::{Clock, after};
use domain::config::LoginSettings;
use domain::db::Pool;
use domain::error::OAuthError;
use domain::ident::{Password, Username};
use domain::store::users;
use futures_util::future::BoxFuture;
use uuid::Uuid;

/// What the login form sent.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
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
}

impl LocalPasswords {
    pub fn new(pool: Pool, clock: Clock, settings: LoginSettings) -> Arc<Self> {
        Arc::new(Self { pool, clock, settings })
    }

    async fn check(&self, username: &str, password: &str) -> Result<AuthenticatedUser, LoginError> {
        let user = {
            let mut conn = self.pool.get().await.map_err(OAuthError::from)?;
            users::find_by_username(&mut conn, username).await.map_err(OAuthError::from)?
        };
        let password = password.to_owned();
        let Some(user) = user else {
            // the same argon2 work as a real verification: no user enumeration by timing
            spawn_hash(move || domain::password::verify_dummy(&password)).await?;
            return Err(LoginError::Rejected);
        };
        let stored = user.password_hash.clone();
        let matches = spawn_hash(move || domain::password::verify(&password, &stored)).await?;
        let now = self.clock.now();
        let locked = user.locked_until.is_some_and(|t| t > now);
        if locked || user.disabled {
            return Err(LoginError::Rejected);
        }
        let mut conn = self.pool.get().await.map_err(OAuthError::from)?;
        if !matches {
            let max = i32::try_from(self.settings.max_failures).unwrap_or(i32::MAX);
            users::record_failure(&mut conn, user.id, max, after(now, self.settings.lockout_secs))
                .await
                .map_err(OAuthError::from)?;
            tracing::info!(user_id = %user.id, "login failed");
            return Err(LoginError::Rejected);
        }
        users::reset_failures(&mut conn, user.id).await.map_err(OAuthError::from)?;
        Ok(AuthenticatedUser { id: user.id, username: user.username })
    }
}

/// At most this many argon2 computations at once: one per core. More would not finish sooner, and
/// each one in flight holds 19 MiB of working memory, which `domain::password` keeps for reuse: the
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
            self.check(username.as_str(), password.expose()).await
        })
    }
}
