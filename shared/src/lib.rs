//! checkout-ai's shared library: the domain (event schema, pseudonymization, ingest rules, delivery with
//! retries) and the AWS adapters that implement its ports.
//!
//! The domain modules (`event`, `pseudonym`, `delivery`, `ingest`, `rees46`) import no AWS type; only
//! `aws` does.

pub mod aws;
pub mod decision;
pub mod delivery;
pub mod event;
pub mod experiment;
pub mod features;
pub mod ingest;
pub mod memory;
pub mod model;
pub mod pseudonym;
pub mod rees46;
pub mod stats;
pub mod telemetry;
