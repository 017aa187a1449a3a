//! `sallyport user add | list | disable | enable | passwd`: local accounts with argon2id hashes.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Subcommand;
use domain::store::users;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from stdin with --password-stdin, else generated and printed.
    Add {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Stop a user from logging in (existing sessions stop working too).
    Disable { username: String },
    /// Let a disabled user log in again.
    Enable { username: String },
    /// Set a new password (read from stdin with --password-stdin, else generated and printed).
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b))
}

/// The password from stdin (first line) or a generated one, with whether it was generated.
fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((domain::secret::random_token(15), true))
    }
}

pub async fn run(cmd: UserCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = super::settings(data_dir)?;
    let pool = super::pool(&settings).await?;
    let mut conn = pool.get().await?;
    let now = chrono::Utc::now();
    match cmd {
        UserCommand::Add { username, password_stdin } => {
            if !valid_username(&username) {
                bail!("a username is 1 to 64 characters of letters, digits and . _ @ - +");
            }
            if users::find_by_username(&mut conn, &username).await?.is_some() {
                bail!("user {username} exists already");
            }
            let (password, generated) = read_password(password_stdin)?;
            let hash = domain::password::hash(&password)?;
            users::insert(&mut conn, &users::UserRow::new(&username, hash, now)).await?;
            println!("created user {username}");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List => {
            for u in users::list(&mut conn).await? {
                let state = if u.disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{state}\tcreated {}", u.username, u.id, u.created_at.format("%Y-%m-%d"));
            }
        }
        UserCommand::Disable { username } => {
            if !users::set_disabled(&mut conn, &username, true, now).await? {
                bail!("no user {username}");
            }
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            if !users::set_disabled(&mut conn, &username, false, now).await? {
                bail!("no user {username}");
            }
            println!("enabled {username}");
        }
        UserCommand::Passwd { username, password_stdin } => {
            let (password, generated) = read_password(password_stdin)?;
            let hash = domain::password::hash(&password)?;
            if !users::set_password(&mut conn, &username, &hash, now).await? {
                bail!("no user {username}");
            }
            println!("password changed for {username}");
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}
