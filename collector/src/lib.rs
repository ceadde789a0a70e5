//! Footfall: a privacy-first, self-hosted web analytics collector.
//!
//! The crate is organised along the flow of an event (see `ARCHITECTURE.md`):
//! [`http`] receives it, [`ingest`] turns it into a stored row through a pipeline of named
//! steps, [`writer`] batches rows into a [`store`], and [`maintenance`] keeps salts and
//! retention in order. [`cli`] holds one module per subcommand; `main.rs` only calls it.

pub mod accounts;
pub mod annotations;
pub mod apikey;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod goals;
pub mod http;
pub mod import;
pub mod ingest;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod privacy;
pub mod query;
pub mod reports;
pub mod sites;
pub mod store;
pub mod subject;
pub mod totp;
pub mod tracker;
pub mod writer;
