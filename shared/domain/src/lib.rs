//! checkout-ai's domain: everything the system decides, with no AWS type in it.
//!
//! This crate has no AWS dependency at all (a `make test` gate, `infra/check_boundaries.py`, fails if it
//! gains one). The functions reach the outside world through the traits in [`ports`]; the AWS adapters
//! live in `checkout-aws`, and the in-memory ones in [`memory`] (feature `test-util`, for tests only).
//!
//! Layers, lowest first (a module only imports from its own layer or below):
//! - [`event`], [`pseudonym`], [`placement`]: the event schema and its decoder, identity, placements;
//! - [`ports`], [`delivery`], [`ingest`]: the ports, batch delivery with retries, ingest planning;
//! - [`features`]: the projections of the event log;
//! - [`model`], [`experiment`], [`ope`]: scoring, assignment, experiment evaluation, off-policy evaluation;
//! - [`risk`]: fraud risk: friction chosen by expected cost;
//! - [`decision`]: the decision engine that uses all of the above, and the learned policy it serves;
//! - [`learning`]: point-in-time training data and off-policy evaluation of candidate policies;
//! - [`stats`] (feature `stats`): gbstats-exact statistics, used by experiment evaluation.

pub mod archive;
pub mod decision;
pub mod delivery;
pub mod event;
pub mod experiment;
pub mod features;
pub mod ingest;
pub mod learning;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod model;
pub mod ope;
pub mod placement;
pub mod ports;
pub mod pseudonym;
pub mod recovery;
pub mod risk;
#[cfg(feature = "stats")]
pub mod stats;
