//! `footfall goal add|list|delete`: a site's goals.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand};

use crate::config::Config;
use crate::goals::{NewGoal, Rule};

#[derive(Debug, Subcommand)]
pub enum GoalCommand {
    /// Add a goal: a pageview of a path (`*` is any run of characters), a scroll past a
    /// share of such a page, or a custom event; narrowed by property values if wanted.
    Add(AddArgs),
    /// List a site's goals (id, display name, what completes it).
    List {
        /// The site (its domain).
        #[arg(long)]
        site: String,
    },
    /// Delete a goal by its id (`footfall goal list` shows them).
    Delete {
        /// The site (its domain).
        #[arg(long)]
        site: String,
        id: u32,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("rule").required(true).args(["page", "event"])))]
pub struct AddArgs {
    /// The site (its domain).
    #[arg(long)]
    pub site: String,
    /// A pageview goal: the path, e.g. `/signup/done` or `/blog/*`.
    #[arg(long, value_name = "PATH")]
    pub page: Option<String>,
    /// With --page: a scroll-depth goal, a page scrolled past this percentage (1 to 100).
    #[arg(long, value_name = "PERCENT", requires = "page", conflicts_with_all = ["props", "currency"])]
    pub scroll: Option<u8>,
    /// A custom event goal: the event's name, e.g. `Signup` or `Outbound Link: Click`.
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// Only events with this property value (`key=value`); may be repeated (at most 3).
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    pub props: Vec<String>,
    /// How answers name the goal (default: `Visit PATH`, `Scroll N% on PATH`, or the event's
    /// name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The currency of the revenue the event carries (ISO 4217, e.g. EUR).
    #[arg(long, requires = "event")]
    pub currency: Option<String>,
}

pub async fn run(config: &Config, cmd: GoalCommand) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    match cmd {
        GoalCommand::Add(args) => {
            let site = crate::import::site_named(store.as_ref(), &args.site).await?;
            let mut props = BTreeMap::new();
            for p in &args.props {
                let Some((k, v)) = p.split_once('=') else {
                    anyhow::bail!("--prop `{p}` must be KEY=VALUE");
                };
                anyhow::ensure!(
                    props.insert(k.trim().to_string(), v.to_string()).is_none(),
                    "--prop `{}` is given twice",
                    k.trim()
                );
            }
            let rule = match (args.page, args.event) {
                (Some(path), None) => match args.scroll {
                    Some(threshold) => Rule::Scroll { path, threshold },
                    None => Rule::Pageview { path, props },
                },
                (None, Some(name)) => Rule::Event { name, props },
                _ => anyhow::bail!("give either --page or --event"),
            };
            let goal = crate::goals::add(
                store.as_ref(),
                site.id,
                NewGoal {
                    rule,
                    display_name: args.name,
                    currency: args.currency,
                },
                chrono::Utc::now().timestamp(),
            )
            .await?;
            println!("added goal {} `{}`", goal.id, goal.display_name);
        }
        GoalCommand::List { site } => {
            let site = crate::import::site_named(store.as_ref(), &site).await?;
            let goals = crate::goals::goals_of(store.as_ref(), site.id).await?;
            if goals.is_empty() {
                println!("no goals");
            }
            for g in goals {
                println!("{}", g.describe());
            }
        }
        GoalCommand::Delete { site, id } => {
            let site = crate::import::site_named(store.as_ref(), &site).await?;
            anyhow::ensure!(
                crate::goals::delete(store.as_ref(), site.id, id).await?,
                "no goal {id} on {}",
                site.domain
            );
            println!("deleted goal {id}");
        }
    }
    Ok(())
}
