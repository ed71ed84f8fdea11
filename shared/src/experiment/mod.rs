//! Experiments: deterministic assignment (GrowthBook-compatible).

pub mod assign;
