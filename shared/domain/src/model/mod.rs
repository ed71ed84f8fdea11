//! The purchase-propensity model: one vectorizer for training and serving, a versioned artifact, a registry
//! with a champion pointer, and the scorer's loader with a compiled-in fallback.
//!
//! - [`columns`]: the input columns, read from a [`crate::features::UciSession`] (the serving path, from the
//!   session entity) or from a CSV in the UCI layout (the training path, from the UCI file or from
//!   sessions exported from the event log).
//! - [`vectorizer`]: transforms, imputation, the category vocabulary and scaling, fitted on training data
//!   and serialized in the artifact.
//! - [`artifact`]: the documented, checksummed artifact format.
//! - [`scorer`]: probability and per-column reason codes.
//! - [`registry`]: S3 layout, publication, the champion pointer, the promotion rule and the loader.
//! - [`metrics`]: AUC, Brier, reliability, stratified splits.
//!
//! Training (linfa) lives in its own crate, `checkout-train`, so that the Lambda binaries, which only
//! score, do not link it.
//!
//! Nothing here imports an AWS type; the S3 adapter is `checkout_aws::s3`.

pub mod artifact;
pub mod columns;
pub mod drift;
#[cfg(feature = "stats")]
pub mod drift_monitor;
pub mod metrics;
pub mod registry;
pub mod scorer;
pub mod vectorizer;

pub use artifact::{ArtifactError, ModelArtifact};
pub use columns::{Column, Dataset};
pub use registry::{Loaded, Origin};
pub use scorer::{Model, Reason, Score};
pub use vectorizer::VectorizerSpec;

/// The model the scorer serves unless told otherwise.
pub const DEFAULT_MODEL_NAME: &str = "purchase-propensity";
