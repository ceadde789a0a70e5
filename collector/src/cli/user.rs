//! `footfall user add EMAIL [--admin] [--site DOMAIN]… | list | grant | passwd | delete`:
//! dashboard accounts. A password is prompted for on a terminal (twice, not echoed) and read
//! from the first line of stdin otherwise, so scripts can pipe it in.

use std::io::{BufRead, IsTerminal, Read};

use anyhow::Context;
use clap::Subcommand;

use crate::accounts::{self, Role, User};
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; viewers read only the sites given with --site.
    Add {
        email: String,
        /// Admin: every site, users, keys and shared links.
        #[arg(long)]
        admin: bool,
        /// A site the user may read (repeat for more).
        #[arg(long = "site", value_name = "DOMAIN")]
        sites: Vec<String>,
    },
    /// List users, their roles and sites.
    List,
    /// Let a user read more sites.
    Grant {
        email: String,
        #[arg(long = "site", value_name = "DOMAIN", required = true)]
        sites: Vec<String>,
    },
    /// Set a user's password (and log them out everywhere).
    Passwd { email: String },
    /// Delete a user (and log them out everywhere).
    Delete { email: String },
}

/// Reads a new password: prompted twice on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    } else {
        let mut line = String::new();
        // One line of at most 4 KiB, so a wrong pipe cannot fill memory.
        std::io::stdin()
            .lock()
            .take(4096)
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    accounts::validate_password(&password)?;
    Ok(password)
}

async fn site_ids(store: &dyn Store, domains: &[String]) -> anyhow::Result<Vec<u32>> {
    let sites = store.meta().sites().await?;
    domains
        .iter()
        .map(|d| {
            let d = super::site::validate_domain(d)?;
            sites
                .iter()
                .find(|s| s.domain == d)
                .map(|s| s.id)
                .ok_or_else(|| anyhow::anyhow!("no site {d}; add it with `footfall site add {d}`"))
        })
        .collect()
}

async fn existing(store: &dyn Store, email: &str) -> anyhow::Result<User> {
    let email = accounts::validate_email(email)?;
    accounts::user(store, &email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {email}"))
}

pub async fn run(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    let store = store.as_ref();
    let now = chrono::Utc::now().timestamp();
    match cmd {
        UserCommand::Add {
            email,
            admin,
            sites,
        } => {
            let email = accounts::validate_email(&email)?;
            anyhow::ensure!(
                accounts::user(store, &email).await?.is_none(),
                "user {email} already exists"
            );
            let sites = site_ids(store, &sites).await?;
            let password = read_password()?;
            let password_hash =
                tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await??;
            let role = if admin { Role::Admin } else { Role::Viewer };
            accounts::put_user(
                store,
                &User {
                    email: email.clone(),
                    password_hash,
                    role,
                    sites,
                    created_at: now,
                },
            )
            .await?;
            println!("added {email} ({})", if admin { "admin" } else { "viewer" });
        }
        UserCommand::List => {
            let sites = store.meta().sites().await?;
            for u in accounts::users(store).await? {
                let domains: Vec<&str> = sites
                    .iter()
                    .filter(|s| u.sites.contains(&s.id))
                    .map(|s| s.domain.as_str())
                    .collect();
                let role = if u.is_admin() { "admin" } else { "viewer" };
                println!("{}\t{role}\t{}", u.email, domains.join(","));
            }
        }
        UserCommand::Grant { email, sites } => {
            let mut user = existing(store, &email).await?;
            for id in site_ids(store, &sites).await? {
                if !user.sites.contains(&id) {
                    user.sites.push(id);
                }
            }
            accounts::put_user(store, &user).await?;
            println!("{} may read {}", user.email, sites.join(", "));
        }
        UserCommand::Passwd { email } => {
            let user = existing(store, &email).await?;
            let password = read_password()?;
            let password_hash =
                tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await??;
            let email = user.email.clone();
            accounts::put_user(
                store,
                &User {
                    password_hash,
                    ..user
                },
            )
            .await?;
            accounts::end_sessions(store, |s| s.user.as_deref() == Some(&email), None).await?;
            println!("password changed for {email}; their sessions are ended");
        }
        UserCommand::Delete { email } => {
            let user = existing(store, &email).await?;
            accounts::delete_user(store, &user.email).await?;
            println!("deleted {}", user.email);
        }
    }
    Ok(())
}
