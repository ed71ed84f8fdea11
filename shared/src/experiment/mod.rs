//! Experiments: definitions and deterministic, GrowthBook-compatible assignment.

pub mod assign;
pub mod config;
pub mod evaluation;
