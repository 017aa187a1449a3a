//! What a replica does on its own: reload signing keys every few seconds (and create the first
//! one if the table is empty), and now and then remove revocation records, refresh tokens and used
//! assertion ids that can no longer matter. Every replica does both; the statements are idempotent.

use std::sync::{Arc, Weak};
use std::time::Duration;

use protocol::clock::Clock;
use server::metrics::KeyTimes;
use store::Pool;
use store::{codes, refresh_tokens, revocations, used_assertions};

use crate::keyring::Keyring;

/// How often signing keys are reloaded: a rotated key is seen by every replica within this.
pub const KEY_RELOAD: Duration = Duration::from_secs(3);

/// Codes are kept this long past their expiry, so that a late replay is still recognised as one
/// (RFC 6749 §4.1.2) and revokes what the code issued.
const CODE_REPLAY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// How often expired rows are pruned.
const PRUNE_EVERY: u32 = 600 / 3;

/// Runs until the keyring is dropped (the service stopped).
pub fn spawn(keys: Weak<Keyring>, pool: Pool, clock: Clock, key_times: Option<Arc<KeyTimes>>) {
    let report = move |keyring: &Keyring, clock: &Clock| {
        if let Some(times) = &key_times {
            let (since, next) = keyring.rotation_times(clock.now());
            times.set(since, next);
        }
    };
    if let Some(keyring) = keys.upgrade() {
        report(&keyring, &clock);
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut ticks: u32 = 0;
        loop {
            tick.tick().await;
            let Some(keyring) = keys.upgrade() else { break };
            if let Err(e) = keyring.sync(&pool, clock.now()).await {
                tracing::error!(error = %e, "cannot reload signing keys");
            }
            report(&keyring, &clock);
            drop(keyring);
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(PRUNE_EVERY) {
                prune(&pool, &clock).await;
            }
        }
    });
}

async fn prune(pool: &Pool, clock: &Clock) {
    let now = clock.now();
    let result = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let families = refresh_tokens::prune(&mut conn, now).await.map_err(|e| e.to_string())?;
        let records = revocations::prune(&mut conn, now).await.map_err(|e| e.to_string())?;
        let codes = codes::prune(&mut conn, now - CODE_REPLAY_WINDOW).await.map_err(|e| e.to_string())?;
        // an expired assertion is refused for its `exp`: its `jti` need not be remembered
        let assertions = used_assertions::prune(&mut conn, now).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((families, records, codes, assertions))
    }
    .await;
    match result {
        Ok((families, records, codes, assertions)) => {
            tracing::debug!(
                families,
                records,
                codes,
                assertions,
                "pruned expired grant families (their refresh tokens too), revocations, codes and used assertions"
            )
        }
        Err(e) => tracing::warn!(error = %e, "cannot prune expired rows"),
    }
}
