//! The query side: the Stats API v2 query [`model`], date ranges and buckets in the site's
//! zone ([`time`]), SQL per store dialect ([`sql`]), and the [`run`]ner that executes a plan
//! on a store and shapes the answer.

pub mod funnel;
pub mod model;
pub mod rollup;
pub mod run;
pub mod schema;
pub mod sql;
pub mod time;
