//! Decisions: the request contract, the config (policy, experiments, kill switch), the feature read, the
//! policy and the pure decision engine the scorer runs.

pub mod config;
pub mod engine;
pub mod policy;
pub mod read;
pub mod request;
