//! `sallyport migrate`: apply (or list, or revert) the embedded migrations, then provision the
//! gateway's introspection client when the configuration names one (`crate::provision`).

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only list the migrations that are not applied yet.
    #[arg(long)]
    pub pending: bool,
    /// Revert every migration: drops all of Sallyport's tables and data.
    #[arg(long, conflicts_with = "pending")]
    pub revert_all: bool,
}

pub async fn run(args: Args, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let url = &settings.database.url;
    if args.pending {
        let pending = store::db::pending(url).await?;
        if pending.is_empty() {
            println!("no pending migrations");
        }
        for version in pending {
            println!("pending {version}");
        }
    } else if args.revert_all {
        let n = store::db::revert_all(url).await?;
        println!("reverted {n} migration(s)");
    } else {
        let applied = store::db::migrate(url).await?;
        if applied.is_empty() {
            println!("the database is up to date");
        }
        for version in applied {
            println!("applied {version}");
        }
        let g = &settings.gateway;
        if let (Some(id), Some(secret)) = (&g.introspection_client_id, &g.introspection_client_secret) {
            let pool = super::pool(&settings).await?;
            let mut conn = pool.get().await?;
            let done = crate::provision::introspection_client(&mut conn, id, secret, chrono::Utc::now()).await?;
            println!("gateway introspection client {id}: {}", format!("{done:?}").to_lowercase());
        }
    }
    Ok(())
}
