//! What a store runs: a statement in its dialect with bound values, and the one function
//! statements may call that is not SQL's own (`matches` patterns, compiled within limits).
//! The query planner makes these; the stores only run them, so `store/` needs nothing from
//! the planner.

/// Which SQL a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    DuckDb,
    ClickHouse,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// One statement and its binds, in order of the `?` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Largest compiled regular expression, in bytes (`\w{80}` over Unicode is far beyond it).
pub const MAX_PATTERN_COMPILED_BYTES: usize = 256 * 1024;

/// Compiles a `matches` pattern within [`MAX_PATTERN_COMPILED_BYTES`], so neither checking
/// nor running it can take long (the SQLite store compiles with the same limits).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_COMPILED_BYTES)
        .dfa_size_limit(MAX_PATTERN_COMPILED_BYTES)
        .build()
}
