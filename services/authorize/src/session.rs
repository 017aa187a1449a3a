//! Browser sessions: a `spss_` secret in a cookie (`HttpOnly`, `SameSite=Lax`, scoped to the issuer's
//! `/oauth2` path, `Secure` and `__Secure-` when the issuer is https: `server::cookies`), its SHA-256 in `sessions`, an idle and an absolute expiry judged
//! against the service's clock. `last_seen_at` is written at most once a minute, so the hot path
//! reads the session and writes nothing.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use protocol::clock::after;
use protocol::secret::{PlainSecret, SecretHash, SecretKind};
use server::error::OAuthError;
use store::sessions::{self, SessionRow};
use uuid::Uuid;

use crate::Config;
use crate::login::AuthenticatedUser;

/// How stale `last_seen_at` may get before a request refreshes it.
pub const TOUCH_INTERVAL_SECS: i64 = 60;

/// A live session of this browser.
#[derive(Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub auth_time: DateTime<Utc>,
    /// The cookie's secret: CSRF tokens are derived from it.
    pub secret: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// What the clock says about a stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Live; `touch` when `last_seen_at` should be refreshed.
    Live {
        touch: bool,
    },
    Expired,
}

/// Idle expiry counts from `last_seen_at`, absolute expiry is `expires_at`.
pub fn liveness(row: &SessionRow, now: DateTime<Utc>, idle_ttl_secs: u64) -> Liveness {
    if now >= row.expires_at || now >= after(row.last_seen_at, idle_ttl_secs) {
        return Liveness::Expired;
    }
    Liveness::Live { touch: now - row.last_seen_at >= TimeDelta::seconds(TOUCH_INTERVAL_SECS) }
}

/// The cookie's secret, if it has the shape of one (anything else is not worth a query).
pub fn cookie_secret(req: &HttpRequest, config: &Config) -> Option<String> {
    let value = req.cookie(config.cookies().session())?.value().to_owned();
    let prefix = SecretKind::Session.prefix();
    (value.len() == prefix.len() + 43 && value.starts_with(prefix)).then_some(value)
}

/// The live session of this request, if any. An expired one is deleted.
pub async fn current(
    conn: &mut AsyncPgConnection,
    req: &HttpRequest,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Option<Session>, OAuthError> {
    let Some(secret) = cookie_secret(req, config) else { return Ok(None) };
    let hash = SecretHash::of(&secret);
    let Some(found) = sessions::find_active(conn, hash.as_bytes()).await? else { return Ok(None) };
    match liveness(&found.session, now, config.sessions.idle_ttl_secs.as_secs()) {
        Liveness::Expired => {
            sessions::delete_by_hash(conn, hash.as_bytes()).await?;
            Ok(None)
        }
        Liveness::Live { touch } => {
            if touch {
                sessions::touch(conn, found.session.id, now).await?;
            }
            let s = found.session;
            Ok(Some(Session { id: s.id, user_id: s.user_id, username: found.username, auth_time: s.auth_time, secret }))
        }
    }
}

/// Starts a session for a user who just signed in; ends the browser's previous session, if any,
/// so a session id never survives a login (no fixation).
pub async fn start(
    conn: &mut AsyncPgConnection,
    req: &HttpRequest,
    config: &Config,
    user: &AuthenticatedUser,
    now: DateTime<Utc>,
) -> Result<(Session, Cookie<'static>), OAuthError> {
    if let Some(old) = cookie_secret(req, config) {
        sessions::delete_by_hash(conn, SecretHash::of(&old).as_bytes()).await?;
    }
    let secret = PlainSecret::generate(SecretKind::Session);
    let row = SessionRow {
        id: Uuid::now_v7(),
        session_hash: secret.hash().to_vec(),
        user_id: user.id,
        auth_time: now,
        created_at: now,
        last_seen_at: now,
        expires_at: after(now, config.sessions.absolute_ttl_secs.as_secs()),
    };
    sessions::insert(conn, &row).await?;
    let cookie = cookie(config, config.cookies().session(), secret.expose().to_owned(), None);
    let session = Session {
        id: row.id,
        user_id: user.id,
        username: user.username.clone(),
        auth_time: now,
        secret: secret.into_inner(),
    };
    Ok((session, cookie))
}

/// Ends the browser's session (logout).
pub async fn end(conn: &mut AsyncPgConnection, req: &HttpRequest, config: &Config) -> Result<(), OAuthError> {
    if let Some(secret) = cookie_secret(req, config) {
        sessions::delete_by_hash(conn, SecretHash::of(&secret).as_bytes()).await?;
    }
    Ok(())
}

/// A cookie of ours: `HttpOnly`, `SameSite=Lax`, `Path={issuer path}/oauth2` (only our endpoints
/// read it), `Secure` when the issuer is https. Without `max_age` it lives as long as the browser
/// session; the server decides expiry anyway.
pub fn cookie(config: &Config, name: &str, value: String, max_age_secs: Option<i64>) -> Cookie<'static> {
    let own = config.cookies();
    let mut c = Cookie::build(name.to_owned(), value)
        .path(own.path().to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(own.secure())
        .finish();
    if let Some(secs) = max_age_secs {
        c.set_max_age(time::Duration::seconds(secs));
    }
    c
}

/// A cookie that tells the browser to forget `name`.
pub fn removal(config: &Config, name: &str) -> Cookie<'static> {
    cookie(config, name, String::new(), Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(now: DateTime<Utc>) -> SessionRow {
        SessionRow {
            id: Uuid::now_v7(),
            session_hash: vec![0; 32],
            user_id: Uuid::now_v7(),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + TimeDelta::hours(24),
        }
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let now = Utc::now();
        let r = row(now);
        assert_eq!(liveness(&r, now, 3600), Liveness::Live { touch: false });
        assert_eq!(liveness(&r, now + TimeDelta::seconds(59), 3600), Liveness::Live { touch: false });
        assert_eq!(liveness(&r, now + TimeDelta::seconds(60), 3600), Liveness::Live { touch: true });
        assert_eq!(liveness(&r, now + TimeDelta::seconds(3600), 3600), Liveness::Expired, "idle");
        let seen = SessionRow { last_seen_at: now + TimeDelta::hours(23) + TimeDelta::minutes(30), ..r.clone() };
        assert_eq!(liveness(&seen, now + TimeDelta::hours(24), 3600), Liveness::Expired, "absolute");
    }

    #[test]
    fn cookie_attributes() {
        let config = |issuer: &str| {
            let issuer = protocol::issuer::Issuer::parse(issuer).expect("issuer");
            Config::from(&server::Settings { issuer, ..server::Settings::default() })
        };
        let c = cookie(&config("http://127.0.0.1:8080"), "sp", "v".into(), None).to_string();
        assert_eq!(c, "sp=v; HttpOnly; SameSite=Lax; Path=/oauth2");
        let c = cookie(&config("https://as.example/t"), "__Secure-sp", "v".into(), Some(60)).to_string();
        assert!(c.contains("; Secure") && c.contains("Max-Age=60") && c.contains("HttpOnly"), "{c}");
        assert!(c.contains("Path=/t/oauth2"), "{c}");
    }
}
