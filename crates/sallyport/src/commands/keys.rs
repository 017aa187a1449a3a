//! `sallyport keys rotate | list`: the JWT signing keys in `signing_keys`.
//!
//! A rotation publishes the next key at once and lets it sign only after `--activate-in`, so that
//! every token-service replica (reloading every few seconds) and every verifier holding a cached
//! JWKS (`max-age` 300 s) knows it before the first token signed with it arrives. The current key
//! stops signing at that instant and stays published `keys.retired_publish_secs` longer, which is
//! at least the access-token lifetime: tokens it signed stay verifiable until they expire.

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Subcommand;
use protocol::keys::SigningAlg;
use store::signing_keys::{self, KeyPhase, SigningKeyRow};

/// Default delay before a rotated-in key signs: twice the JWKS `max-age` of the token service.
pub const DEFAULT_ACTIVATE_IN_SECS: u64 = 600;

/// Below this a verifier's cached JWKS may not hold the new key yet when it starts signing.
const SAFE_ACTIVATE_IN_SECS: u64 = 305;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add the next signing key: published now, signing after --activate-in seconds, when the
    /// current key retires (it stays published for keys.retired_publish_secs more).
    Rotate {
        /// Seconds until the new key signs (0 for an emergency rotation).
        #[arg(long, default_value_t = DEFAULT_ACTIVATE_IN_SECS)]
        activate_in: u64,
        /// ES256, EdDSA or RS256; default tokens.signing_alg.
        #[arg(long)]
        alg: Option<String>,
    },
    /// List the keys and where each is in its life.
    List,
}

fn at(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

pub async fn run(cmd: KeysCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    let now = Utc::now();
    match cmd {
        KeysCommand::List => {
            let rows = signing_keys::list(&mut conn).await?;
            if rows.is_empty() {
                println!("no signing keys (the token service creates one when it starts)");
            }
            let signer = signing_keys::current_signer(&rows, now).map(|r| r.kid.clone());
            println!("kid\talg\tphase\tcreated\tactivates\tretires\tunpublished");
            for r in &rows {
                let phase = match r.phase(now) {
                    KeyPhase::Signing if signer.as_deref() != Some(r.kid.as_str()) => "superseded",
                    p => p.as_str(),
                };
                println!(
                    "{}\t{}\t{phase}\t{}\t{}\t{}\t{}",
                    r.kid,
                    r.alg,
                    at(Some(r.created_at)),
                    at(Some(r.activates_at)),
                    at(r.retires_at),
                    at(r.expires_at)
                );
            }
        }
        KeysCommand::Rotate { activate_in, alg } => {
            let kek = settings.keys.encryption_key.as_ref().map(|k| *k.bytes()).with_context(|| {
                format!(
                    "keys.encryption_key is required: it seals the new key (SALLYPORT__KEYS__ENCRYPTION_KEY); \
                     beside `sallyport up` it is read from {}",
                    crate::data_dir::key_path(data_dir).display()
                )
            })?;
            let alg = match alg.as_deref() {
                Some(named) => SigningAlg::parse(named)?,
                None => settings.tokens.signing_alg,
            };
            if activate_in > 30 * 86_400 {
                bail!("--activate-in is at most 30 days");
            }
            // a key sealed under another key-encryption key than the services use would stop
            // every token from being issued the moment it activates: refuse that here
            let rows = signing_keys::list(&mut conn).await?;
            for current in rows.iter().filter(|r| r.retires_at.is_none()) {
                current.unseal(&kek).with_context(|| {
                    format!(
                        "keys.encryption_key does not unseal the current key {}: is it the services' key?",
                        current.kid
                    )
                })?;
            }
            if activate_in < SAFE_ACTIVATE_IN_SECS && !rows.is_empty() {
                eprintln!(
                    "warning: verifiers may cache the JWKS for 300 s; tokens signed by the new key in the next \
                     {SAFE_ACTIVATE_IN_SECS} s can be refused by a verifier until it refetches the JWKS"
                );
            }
            let activates_at = now + TimeDelta::seconds(i64::try_from(activate_in)?);
            let next = SigningKeyRow::generate(alg, &kek, now, activates_at)?;
            let retired = signing_keys::rotate(&mut conn, &next, settings.keys.retired_publish_secs.as_secs()).await?;
            println!("added key {} ({}), published now, signing from {}", next.kid, next.alg, at(Some(activates_at)));
            let until = activates_at + TimeDelta::seconds(i64::try_from(settings.keys.retired_publish_secs.as_secs())?);
            for kid in retired {
                println!(
                    "key {kid} signs until {} and stays published until {}",
                    at(Some(activates_at)),
                    at(Some(until))
                );
            }
        }
    }
    Ok(())
}
