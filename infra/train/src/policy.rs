//! Training the learned policy: one conversion model per action key, fitted with linfa on the
//! point-in-time rows.
//!
//! The models are fitted jointly, as one L2-penalised logistic regression of "ordered within the horizon"
//! on the context features ([`CONTEXT_FEATURES`]) shared by every action, plus per action an intercept and
//! its own copy of the context features (the interactions, scaled by `interaction_scale`: 1 by default;
//! below 1 the penalty holds them closer to zero). Every action's model is then the shared part plus its own:
//! `w_a = shared + [offset_a, scale · interaction_a]`, the per-action form the artifact stores and the
//! scorer evaluates. Pooling lets a rarely served action borrow the baseline from all the others (a
//! separate regression on its few rows would be mostly noise) while keeping its own effect, and how that
//! effect varies with the context.
//!
//! An action with fewer than `min_rows` served rows gets no model: the policy explores it at the floor
//! until it has them.

use crate::{logistic, TrainConfig, TrainError};
use checkout_domain::decision::learned::{
    Exploration, OutcomeModel, PolicyArtifact, PolicyTraining, CONTEXT_FEATURES,
};
use checkout_domain::learning::dataset::{rows_sha256, TrainingRow};
use chrono::{DateTime, Utc};
use ndarray::Array2;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTrainConfig {
    pub alpha: f64,
    pub min_rows: usize,
    /// How much the per-action interactions are scaled before fitting (smaller: held closer to zero).
    pub interaction_scale: f64,
    pub exploration: Exploration,
    pub horizon_hours: u32,
}

impl Default for PolicyTrainConfig {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            min_rows: 30,
            interaction_scale: 1.0,
            exploration: Exploration::default(),
            horizon_hours: 24,
        }
    }
}

/// Fits the outcome models and wraps them in an artifact (its `evaluation` is left empty for the caller).
pub fn train_policy(
    rows: &[TrainingRow],
    name: &str,
    version: &str,
    created_at: DateTime<Utc>,
    config: &PolicyTrainConfig,
) -> Result<PolicyArtifact, TrainError> {
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let c = counts.entry(r.action.as_str()).or_default();
        c.0 += 1;
        c.1 += u64::from(r.outcome.ordered);
    }
    let actions: Vec<&str> = counts.keys().copied().collect();
    let k = actions.len();
    let d = CONTEXT_FEATURES.len() - 1;
    let scale = config.interaction_scale;
    // Columns: shared context (d), action offsets (k), action × context interactions (k·d).
    let mut x = Array2::<f64>::zeros((rows.len(), d + k + k * d));
    for (mut out, r) in x.rows_mut().into_iter().zip(rows) {
        let f = r.context.features();
        let a = actions.binary_search(&r.action.as_str()).unwrap_or(0);
        for j in 0..d {
            out[j] = f[j + 1];
            out[d + k + a * d + j] = scale * f[j + 1];
        }
        out[d + a] = 1.0;
    }
    let labels: Vec<bool> = rows.iter().map(|r| r.outcome.ordered).collect();
    let fit = TrainConfig {
        alpha: config.alpha,
        ..TrainConfig::default()
    };
    let (intercept, w) = logistic(x, &labels, &fit)?;
    let mut outcome_models = BTreeMap::new();
    for (a, action) in actions.iter().enumerate() {
        let (served, orders) = counts[action];
        if (served as usize) < config.min_rows {
            continue;
        }
        let weights = std::iter::once(intercept + w[d + a])
            .chain((0..d).map(|j| w[j] + scale * w[d + k + a * d + j]))
            .collect();
        outcome_models.insert(
            action.to_string(),
            OutcomeModel {
                weights,
                rows: served,
                orders,
            },
        );
    }
    Ok(PolicyArtifact {
        name: name.to_string(),
        version: version.to_string(),
        created_at,
        features: CONTEXT_FEATURES.iter().map(|f| f.to_string()).collect(),
        outcome_models,
        exploration: config.exploration,
        training: PolicyTraining {
            data_sha256: rows_sha256(rows),
            rows: rows.len() as u64,
            horizon_hours: config.horizon_hours,
            library: "linfa-logistic 0.8".into(),
            alpha: config.alpha,
        },
        evaluation: serde_json::Value::Null,
    })
}
