//! Decisions: the request contract, the config (policy, experiments, kill switch), the feature read, the
//! configured policy, the learned policy ([`learned`]), fraud-resilient gating ([`gate`]) and the pure
//! decision engine the scorer runs.

pub mod config;
pub mod engine;
pub mod gate;
pub mod learned;
pub mod policy;
pub mod read;
pub mod request;
