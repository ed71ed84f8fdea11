//! Experiments: definitions, deterministic GrowthBook-compatible assignment, and (feature `stats`) their
//! evaluation into reports.

pub mod assign;
pub mod config;
#[cfg(feature = "stats")]
pub mod evaluation;
pub mod holdout;
#[cfg(feature = "stats")]
pub mod impact;
