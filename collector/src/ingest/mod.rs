//! Ingest: from a request's parts to stored rows.
//!
//! [`body`] parses the wire formats; [`pipeline`] runs the named steps in order, cheapest
//! first, each of which may drop the event with a [`pipeline::DropReason`]. The steps'
//! knowledge lives in one module each: [`bots`], [`page`], [`referrer`], [`useragent`],
//! [`geoip`], [`ip`], [`visitor`] and [`session`]. Nothing in here does I/O.

pub mod body;
pub mod bots;
pub mod geoip;
pub mod ip;
pub mod page;
pub mod pipeline;
pub mod referrer;
pub mod session;
pub mod useragent;
pub mod visitor;
