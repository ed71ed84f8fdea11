//! The model artifact: a versioned JSON document with a checksum over its body.
//!
//! ```json
//! {
//!   "format": "checkout-ai/propensity-model",
//!   "format_version": 1,
//!   "body_sha256": "<hex SHA-256 of the exact bytes of `body`>",
//!   "body": { "name": …, "version": …, "created_at": …, "feature_schema_version": …,
//!             "vectorizer": {…}, "intercept": …, "coefficients": [{"feature": …, "weight": …}],
//!             "training": {…}, "metrics": {…} }
//! }
//! ```
//!
//! Reading checks, in order: the envelope parses, `format` and `format_version` are known, the body's
//! checksum matches, the body parses, the feature-schema and vectorizer versions are known, and the
//! coefficients name exactly the vectorizer's columns with finite weights. Numbers round-trip exactly
//! (serde_json's `float_roundtrip`), so decoding and re-encoding an artifact gives the same bytes.

use super::metrics::ReliabilityBin;
use super::vectorizer::{SpecError, VectorizerSpec};
use crate::features::FEATURE_SCHEMA_VERSION;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

pub const ARTIFACT_FORMAT: &str = "checkout-ai/propensity-model";
/// The artifact format this build writes. Version 2 adds the drift `reference`; version 1 artifacts
/// still load (without one).
pub const ARTIFACT_FORMAT_VERSION: u32 = 2;
/// The oldest artifact format this build reads.
pub const OLDEST_ARTIFACT_FORMAT_VERSION: u32 = 1;

/// Everything a model is: what it computes and how it came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The model's name (its id), e.g. `purchase-propensity`.
    pub name: String,
    /// Unique within the name; artifacts are immutable once published.
    pub version: String,
    pub created_at: DateTime<Utc>,
    /// The session-entity schema the vectorizer's inputs come from.
    pub feature_schema_version: u32,
    pub vectorizer: VectorizerSpec,
    pub intercept: f64,
    /// One weight per vectorizer output column, in order.
    pub coefficients: Vec<Coefficient>,
    pub training: TrainingInfo,
    pub metrics: Metrics,
    /// **Format 2.** The training distribution of every input and of the score, for drift monitoring
    /// (`None` in a format-1 artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<super::drift::Reference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub feature: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The training file's name (never a path).
    pub source: String,
    /// SHA-256 of the training file's bytes.
    pub data_sha256: String,
    pub rows: u64,
    pub positives: u64,
    pub bad_rows: u64,
    pub algorithm: Algorithm,
    pub holdout: Holdout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Algorithm {
    /// e.g. `linfa-logistic 0.8`.
    pub library: String,
    /// L2 penalty (`alpha = 1/C` in scikit-learn terms).
    pub alpha: f64,
    pub max_iterations: u64,
    /// L-BFGS stopping tolerance per row (the gradient-norm bound is this times the training rows).
    pub gradient_tolerance: f64,
}

/// How the holdout was cut. Two artifacts with the same `id` were evaluated on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// SHA-256 over the data hash, fraction and seed.
    pub id: String,
    pub fraction: f64,
    pub seed: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub cross_validation: CrossValidation,
    pub holdout: HoldoutMetrics,
}

/// Stratified k-fold cross-validation of the whole training recipe (vectorizer fitted per fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: usize,
    pub seed: u64,
    pub fold_auc: Vec<f64>,
    pub mean_auc: f64,
    pub std_auc: f64,
    /// Brier score of the out-of-fold predictions.
    pub brier: f64,
}

/// The shipped model (trained on the rest) scored on the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutMetrics {
    pub auc: f64,
    pub brier: f64,
    pub log_loss: f64,
    pub positive_rate: f64,
    pub reliability: Vec<ReliabilityBin>,
}

/// Why an artifact was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact is not a readable model document: {0}")]
    Corrupt(String),
    #[error("artifact format `{found}` is not {ARTIFACT_FORMAT}")]
    UnknownFormat { found: String },
    #[error("artifact format version {found} is unknown (this build reads versions {OLDEST_ARTIFACT_FORMAT_VERSION} to {ARTIFACT_FORMAT_VERSION})")]
    UnknownVersion { found: u32 },
    #[error("artifact body checksum {found} does not match the recorded {recorded}")]
    Checksum { recorded: String, found: String },
    #[error(
        "artifact feature-schema version {found} is not this build's {FEATURE_SCHEMA_VERSION}"
    )]
    FeatureSchema { found: u32 },
    #[error(transparent)]
    Vectorizer(#[from] SpecError),
    #[error("artifact coefficients do not match its vectorizer: {0}")]
    Coefficients(String),
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format: &'static str,
    format_version: u32,
    body_sha256: String,
    body: &'a RawValue,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    format: String,
    format_version: u32,
    body_sha256: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Why a checksummed envelope could not be opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a readable document: {0}")]
    Corrupt(String),
    #[error("format `{found}` is not {expected}")]
    UnknownFormat {
        expected: &'static str,
        found: String,
    },
    #[error(
        "format version {found} is unknown (this build reads versions {oldest} to {expected})"
    )]
    UnknownVersion {
        oldest: u32,
        expected: u32,
        found: u32,
    },
    #[error("body checksum {found} does not match the recorded {recorded}")]
    Checksum { recorded: String, found: String },
}

/// `body` as compact JSON in a `{format, format_version, body_sha256, body}` envelope: the layout every
/// registry artifact (models and policies) shares.
pub fn seal(
    format: &'static str,
    format_version: u32,
    body: &impl Serialize,
) -> Result<Vec<u8>, EnvelopeError> {
    let corrupt = |e: serde_json::Error| EnvelopeError::Corrupt(e.to_string());
    let body = serde_json::value::to_raw_value(body).map_err(corrupt)?;
    let envelope = EnvelopeOut {
        format,
        format_version,
        body_sha256: hex::encode(Sha256::digest(body.get().as_bytes())),
        body: &body,
    };
    serde_json::to_vec(&envelope).map_err(corrupt)
}

/// Opens an envelope written by [`seal`]: format, version (one of `oldest..=format_version`) and checksum
/// checked before the body is parsed.
pub fn open<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    format: &'static str,
    oldest: u32,
    format_version: u32,
) -> Result<T, EnvelopeError> {
    let envelope: EnvelopeIn<'_> =
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Corrupt(e.to_string()))?;
    if envelope.format != format {
        return Err(EnvelopeError::UnknownFormat {
            expected: format,
            found: envelope.format,
        });
    }
    if !(oldest..=format_version).contains(&envelope.format_version) {
        return Err(EnvelopeError::UnknownVersion {
            oldest,
            expected: format_version,
            found: envelope.format_version,
        });
    }
    let found = hex::encode(Sha256::digest(envelope.body.get().as_bytes()));
    if found != envelope.body_sha256 {
        return Err(EnvelopeError::Checksum {
            recorded: envelope.body_sha256,
            found,
        });
    }
    serde_json::from_str(envelope.body.get()).map_err(|e| EnvelopeError::Corrupt(e.to_string()))
}

impl From<EnvelopeError> for ArtifactError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Corrupt(m) => ArtifactError::Corrupt(m),
            EnvelopeError::UnknownFormat { found, .. } => ArtifactError::UnknownFormat { found },
            EnvelopeError::UnknownVersion { found, .. } => ArtifactError::UnknownVersion { found },
            EnvelopeError::Checksum { recorded, found } => {
                ArtifactError::Checksum { recorded, found }
            }
        }
    }
}

impl ModelArtifact {
    /// The artifact as stored: compact JSON in the envelope. Refuses an artifact that would not read back.
    pub fn encode(&self) -> Result<Vec<u8>, ArtifactError> {
        self.validate()?;
        Ok(seal(ARTIFACT_FORMAT, ARTIFACT_FORMAT_VERSION, self)?)
    }

    /// Reads and checks an artifact (see the module docs for the checks).
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        let artifact: Self = open(
            bytes,
            ARTIFACT_FORMAT,
            OLDEST_ARTIFACT_FORMAT_VERSION,
            ARTIFACT_FORMAT_VERSION,
        )?;
        artifact.validate()?;
        Ok(artifact)
    }

    /// The SHA-256 of the encoded artifact (what a champion pointer pins).
    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Checks that this build can serve the artifact.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        if self.feature_schema_version != FEATURE_SCHEMA_VERSION {
            return Err(ArtifactError::FeatureSchema {
                found: self.feature_schema_version,
            });
        }
        self.vectorizer.validate()?;
        let names = self.vectorizer.feature_names();
        if names.len() != self.coefficients.len() {
            return Err(ArtifactError::Coefficients(format!(
                "{} coefficients for {} columns",
                self.coefficients.len(),
                names.len()
            )));
        }
        if let Some((name, c)) = names
            .iter()
            .zip(&self.coefficients)
            .find(|(n, c)| **n != c.feature || !c.weight.is_finite())
        {
            return Err(ArtifactError::Coefficients(format!(
                "column `{name}` has coefficient `{}` = {}",
                c.feature, c.weight
            )));
        }
        if !self.intercept.is_finite() {
            return Err(ArtifactError::Coefficients(
                "intercept is not finite".into(),
            ));
        }
        Ok(())
    }
}
