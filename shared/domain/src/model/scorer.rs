//! Serving: a checked artifact that scores sessions, with per-column contributions as reason codes.

use super::artifact::{ArtifactError, ModelArtifact};
use super::columns::Column;
use crate::features::UciSession;
use serde::Serialize;
use std::borrow::Cow;
use std::ops::Range;

/// A model ready to score: an artifact that passed [`ModelArtifact::validate`].
#[derive(Debug, Clone)]
pub struct Model {
    artifact: ModelArtifact,
    weights: Vec<f64>,
    blocks: Vec<(Column, Range<usize>)>,
}

/// One reason code: how much an input column moved the log-odds away from a training-average session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: Column,
    /// The session's value of the column, as the model read it (a number, a category, or empty if absent).
    pub value: String,
    /// Log-odds contribution: the weights times the scaled inputs of the column's output columns.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub probability: f64,
    pub logit: f64,
    /// The `top_k` largest contributions by magnitude, largest first.
    pub reasons: Vec<Reason>,
}

impl TryFrom<ModelArtifact> for Model {
    type Error = ArtifactError;

    fn try_from(artifact: ModelArtifact) -> Result<Self, ArtifactError> {
        artifact.validate()?;
        let weights = artifact.coefficients.iter().map(|c| c.weight).collect();
        let blocks = artifact.vectorizer.blocks().collect();
        Ok(Self {
            artifact,
            weights,
            blocks,
        })
    }
}

impl Model {
    /// Decodes and checks an encoded artifact.
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        ModelArtifact::decode(bytes)?.try_into()
    }

    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    pub fn name(&self) -> &str {
        &self.artifact.name
    }

    pub fn version(&self) -> &str {
        &self.artifact.version
    }

    /// The model input for `row` (the vectorizer of the artifact).
    pub fn vectorize(&self, row: &UciSession) -> Vec<f64> {
        self.artifact.vectorizer.transform(row)
    }

    /// The purchase probability of a vectorized session.
    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.logit(x))
    }

    fn logit(&self, x: &[f64]) -> f64 {
        linear_logit(self.artifact.intercept, &self.weights, x)
    }

    /// Scores `row`, with the `top_k` strongest reasons.
    pub fn score(&self, row: &UciSession, top_k: usize) -> Score {
        self.score_vectorized(row, &self.vectorize(row), top_k)
    }

    /// [`Self::score`] for a row already vectorized as `x` (`self.vectorize(row)`), for a caller that
    /// needs the vector too.
    pub fn score_vectorized(&self, row: &UciSession, x: &[f64], top_k: usize) -> Score {
        let logit = self.logit(x);
        let mut contributions: Vec<(Column, f64)> = self
            .blocks
            .iter()
            .map(|(column, range)| {
                let c = self.weights[range.clone()]
                    .iter()
                    .zip(&x[range.clone()])
                    .map(|(w, x)| w * x)
                    .sum::<f64>();
                (*column, c)
            })
            .collect();
        contributions.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let reasons = contributions
            .into_iter()
            .take(top_k)
            .map(|(feature, contribution)| Reason {
                feature,
                value: display_value(feature, row),
                contribution,
            })
            .collect();
        Score {
            probability: sigmoid(logit),
            logit,
            reasons,
        }
    }
}

fn display_value(column: Column, row: &UciSession) -> String {
    match column.numeric(row) {
        Some(v) => v.to_string(),
        None => column
            .category(row)
            .map(Cow::into_owned)
            .unwrap_or_default(),
    }
}

/// `intercept + weights · x`: the log-odds of a logistic regression.
pub fn linear_logit(intercept: f64, weights: &[f64], x: &[f64]) -> f64 {
    intercept + weights.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
}

/// The logistic function, stable for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
