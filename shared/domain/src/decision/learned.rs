//! The learned policy: per-action outcome models trained offline on the decision log, shipped as a
//! checksummed artifact in the registry, and evaluated here (no training code, no linfa).
//!
//! **What it predicts.** For each action key `a` (see [`crate::decision::policy::Action::key`]) a logistic
//! regression gives `P(order within the horizon | context x, action a)`. The economics are known at decision
//! time, so the expected margin of serving `a` is `r̂(x, a) = P̂(order | x, a) · (margin − cost_a)`: the model
//! learns only the behavioural part, which is what differs between shoppers.
//!
//! **Context** ([`PolicyContext`], the same at serving time and in the point-in-time training data):
//! the propensity model's score (as a logit), the cart value, the device, new or returning, whether the
//! session has had a form error, and the placement. See [`CONTEXT_FEATURES`].
//!
//! **Exploration: SquareCB's inverse gap weighting with a floor.** With `K` eligible actions, `b` the best
//! by `r̂`, and gaps measured relative to the best prediction (so `gamma` is unit-free):
//! `p(a) = 1 / (K + γ · (r̂(b) − r̂(a)) / r̂(b))` for `a ≠ b`, `p(b) = 1 − Σ p(a)`, then mixed with a uniform
//! floor: `p ← (1 − K·floor) · p + floor`. An action close to the best is explored often and a clearly worse
//! one rarely, but never less than `floor`. This beats ε-greedy (which spends its exploration equally on
//! hopeless actions) and suits off-policy evaluation better than Thompson sampling: the probabilities are
//! exact and cheap to log, where Thompson sampling's need Monte Carlo, and every importance weight is at
//! most `1 / floor`. An eligible action without an outcome model (never logged enough to learn) gets only
//! the floor; if no eligible action has one, the distribution is uniform.
//!
//! **Guardrails stay outside.** The policy only ranks the candidates [`super::policy::candidates`] left
//! after the margin floor, the discount cap, the risk rule and the one-offer rule; a forced action (step-up
//! at high risk) is served with probability 1 whatever the policy says.

use super::policy::{Candidate, Economics};
use crate::event::DeviceType;
use crate::model::artifact::{open, seal, EnvelopeError};
use crate::model::scorer::sigmoid;
use crate::placement::Placement;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const POLICY_FORMAT: &str = "checkout-ai/policy";
pub const POLICY_FORMAT_VERSION: u32 = 1;
/// The learned policy's registry name unless configured otherwise.
pub const DEFAULT_POLICY_NAME: &str = "next-best-action";

/// The context features, in the order the outcome models' weights use them.
pub const CONTEXT_FEATURES: [&str; 8] = [
    "bias",
    "propensity_logit",
    "log_cart_value",
    "mobile",
    "tablet",
    "returning",
    "form_error",
    "checkout",
];

/// What the policy knows about a decision's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyContext {
    pub placement: Placement,
    /// The propensity model's purchase probability.
    pub propensity: f64,
    pub cart_value_minor: f64,
    /// The margin the policy works with ([`Economics::margin_minor`]).
    pub margin_minor: f64,
    pub device: Option<DeviceType>,
    pub returning: bool,
    pub form_errors: u32,
}

impl PolicyContext {
    pub fn new(
        placement: Placement,
        propensity: f64,
        economics: &Economics,
        device: Option<DeviceType>,
        returning: bool,
        form_errors: u32,
    ) -> Self {
        Self {
            placement,
            propensity,
            cart_value_minor: economics.value_minor,
            margin_minor: economics.margin_minor,
            device,
            returning,
            form_errors,
        }
    }

    /// The feature vector ([`CONTEXT_FEATURES`]).
    pub fn features(&self) -> [f64; 8] {
        let p = self.propensity.clamp(1e-4, 1.0 - 1e-4);
        let flag = |b: bool| f64::from(u8::from(b));
        [
            1.0,
            (p / (1.0 - p)).ln(),
            (1.0 + self.cart_value_minor.max(0.0) / 100.0).ln(),
            flag(self.device == Some(DeviceType::Mobile)),
            flag(self.device == Some(DeviceType::Tablet)),
            flag(self.returning),
            flag(self.form_errors > 0),
            flag(self.placement == Placement::Checkout),
        ]
    }
}

/// One action's conversion model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeModel {
    /// One weight per [`CONTEXT_FEATURES`] entry (the first is the intercept).
    pub weights: Vec<f64>,
    /// Logged decisions of this action it was trained on, and how many of them ordered.
    pub rows: u64,
    pub orders: u64,
}

impl OutcomeModel {
    pub fn conversion(&self, x: &[f64; 8]) -> f64 {
        sigmoid(self.weights.iter().zip(x).map(|(w, v)| w * v).sum())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    /// Inverse-gap-weighting strength (unit-free: gaps are shares of the cart margin).
    pub gamma: f64,
    /// Least probability of every eligible action.
    pub floor: f64,
}

impl Default for Exploration {
    fn default() -> Self {
        Self {
            gamma: 2000.0,
            floor: 0.003,
        }
    }
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyTraining {
    /// SHA-256 of the training rows as written by the point-in-time export.
    pub data_sha256: String,
    pub rows: u64,
    /// Hours after a decision within which an order counts as its outcome.
    pub horizon_hours: u32,
    /// e.g. `linfa-logistic 0.8`, and its L2 penalty.
    pub library: String,
    pub alpha: f64,
}

/// The learned policy as published in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyArtifact {
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub features: Vec<String>,
    /// By action key.
    pub outcome_models: BTreeMap<String, OutcomeModel>,
    pub exploration: Exploration,
    pub training: PolicyTraining,
    /// The offline evaluation at training time (the off-policy evaluation report, as JSON).
    #[serde(default)]
    pub evaluation: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy artifact: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("policy artifact is not servable: {0}")]
    Invalid(String),
}

impl PolicyArtifact {
    pub fn encode(&self) -> Result<Vec<u8>, PolicyError> {
        self.validate()?;
        Ok(seal(POLICY_FORMAT, POLICY_FORMAT_VERSION, self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyError> {
        let artifact: Self = open(
            bytes,
            POLICY_FORMAT,
            POLICY_FORMAT_VERSION,
            POLICY_FORMAT_VERSION,
        )?;
        artifact.validate()?;
        Ok(artifact)
    }

    /// Features in the order this build computes them, finite weights, a usable exploration.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let fail = |m: String| Err(PolicyError::Invalid(m));
        if self.features != CONTEXT_FEATURES {
            return fail(format!(
                "features {:?} are not this build's {CONTEXT_FEATURES:?}",
                self.features
            ));
        }
        for (action, m) in &self.outcome_models {
            if m.weights.len() != CONTEXT_FEATURES.len() || !m.weights.iter().all(|w| w.is_finite())
            {
                return fail(format!("outcome model `{action}` needs 8 finite weights"));
            }
        }
        let e = self.exploration;
        if !(e.gamma.is_finite() && e.gamma >= 0.0 && e.floor > 0.0 && e.floor <= 0.1) {
            return fail("exploration needs gamma ≥ 0 and a floor in (0, 0.1]".into());
        }
        Ok(())
    }

    pub fn policy_ref(&self) -> crate::event::PolicyRef {
        crate::event::PolicyRef {
            id: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// Scores the candidates and gives the policy's distribution over them.
    pub fn distribution(&self, ctx: &PolicyContext, candidates: &[Candidate]) -> Scored {
        self.distribution_over(&ctx.features(), ctx.margin_minor, candidates)
    }

    /// [`Self::distribution`] from the context's feature vector and margin (what a decision event logs).
    pub fn distribution_over(
        &self,
        x: &[f64; 8],
        margin_minor: f64,
        candidates: &[Candidate],
    ) -> Scored {
        let keys: Vec<String> = candidates.iter().map(|c| c.action.key()).collect();
        let margin = |c: &Candidate| margin_minor - c.cost_minor as f64;
        let reward: Vec<Option<f64>> = candidates
            .iter()
            .zip(&keys)
            .map(|(c, k)| {
                self.outcome_models
                    .get(k)
                    .map(|m| m.conversion(x) * margin(c))
            })
            .collect();
        let probabilities = match candidates
            .iter()
            .position(|c| c.expected_value_minor == f64::INFINITY)
        {
            Some(forced) => one_hot(candidates.len(), forced),
            None => inverse_gap(&reward, self.exploration),
        };
        Scored {
            keys,
            reward,
            probabilities,
        }
    }
}

/// A policy's view of the candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub keys: Vec<String>,
    /// Expected margin of each candidate (`None` without an outcome model).
    pub reward: Vec<Option<f64>>,
    /// Sums to 1, aligned with the candidates.
    pub probabilities: Vec<f64>,
}

pub fn one_hot(n: usize, i: usize) -> Vec<f64> {
    (0..n).map(|j| f64::from(u8::from(i == j))).collect()
}

/// SquareCB's inverse gap weighting over the actions with a prediction, mixed with a uniform floor (see
/// the module docs).
pub fn inverse_gap(reward: &[Option<f64>], e: Exploration) -> Vec<f64> {
    let k = reward.len();
    if k == 0 {
        return Vec::new();
    }
    let best = reward
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((b, top)) = best else {
        return vec![1.0 / k as f64; k];
    };
    // Gaps relative to the best prediction: unit-free, and a 10% worse action is 10% worse whatever
    // the cart. (The margin would be a poor scale: conversion rates are small, so every gap would look
    // tiny and the policy would explore far too much.)
    let scale = top.abs().max(1.0);
    let kf = k as f64;
    let mut p: Vec<f64> = reward
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(r) if i != b => 1.0 / (kf + e.gamma * (top - r).max(0.0) / scale),
            _ => 0.0,
        })
        .collect();
    p[b] = (1.0 - p.iter().sum::<f64>()).max(0.0);
    let floor = e.floor.min(0.5 / kf);
    let mass = 1.0 - kf * floor;
    for x in &mut p {
        *x = mass * *x + floor;
    }
    p
}

/// Inverse-CDF sampling: the index `draw ∈ [0, 1)` falls in.
pub fn sample(probabilities: &[f64], draw: f64) -> usize {
    let mut acc = 0.0;
    for (i, p) in probabilities.iter().enumerate() {
        acc += p;
        if draw < acc {
            return i;
        }
    }
    // Rounding: the last action with any probability.
    probabilities.iter().rposition(|p| *p > 0.0).unwrap_or(0)
}

impl crate::model::registry::Registered for PolicyArtifact {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn encode(&self) -> Result<Vec<u8>, crate::model::ArtifactError> {
        PolicyArtifact::encode(self)
            .map_err(|e| crate::model::ArtifactError::Corrupt(e.to_string()))
    }
    fn decode(bytes: &[u8]) -> Result<Self, crate::model::ArtifactError> {
        PolicyArtifact::decode(bytes)
            .map_err(|e| crate::model::ArtifactError::Corrupt(e.to_string()))
    }
}

/// Where the serving policies came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum PolicyOrigin {
    /// The registry's champion serves the treatment arm.
    Champion { version: String },
    /// The configured-uplift policy serves: no learned policy is promoted yet, or it could not be loaded
    /// (the reason says which).
    Configured { reason: String },
}

/// The policies a scorer container serves with.
#[derive(Debug, Clone)]
pub struct LoadedPolicies {
    pub champion: Option<PolicyArtifact>,
    pub shadow: Option<PolicyArtifact>,
    pub origin: PolicyOrigin,
    /// Why the shadow policy asked for is not running, if it is not.
    pub shadow_problem: Option<String>,
}

/// The cold-start load: the champion policy `name` and, when asked for, the shadow `shadow_version`, within
/// `budget`. Nothing here fails the cold start: without a learned champion the configured policy serves
/// (logged with the reason), and a shadow that does not load is simply not run (logged).
pub async fn load_policies(
    store: &impl crate::ports::ObjectStore,
    name: &str,
    shadow_version: Option<&str>,
    budget: std::time::Duration,
) -> LoadedPolicies {
    use crate::model::registry::{load_champion, load_version_of, RegistryError};
    let timed = |r: Result<Result<PolicyArtifact, RegistryError>, _>| match r {
        Ok(r) => r,
        Err(_) => Err(RegistryError::Timeout(budget)),
    };
    let champion =
        timed(tokio::time::timeout(budget, load_champion::<PolicyArtifact>(store, name)).await);
    let (champion, origin) = match champion {
        Ok(p) => {
            tracing::info!(
                policy = name,
                version = p.version,
                "loaded the champion policy"
            );
            let origin = PolicyOrigin::Champion {
                version: p.version.clone(),
            };
            (Some(p), origin)
        }
        Err(e) => {
            let reason = e.to_string();
            if matches!(e, RegistryError::NoChampion { .. }) {
                tracing::info!(
                    policy = name,
                    "no learned policy promoted yet; the configured policy serves"
                );
            } else {
                tracing::error!(policy = name, error = %reason, "champion policy unavailable; the configured policy serves");
            }
            (None, PolicyOrigin::Configured { reason })
        }
    };
    let (shadow, shadow_problem) = match shadow_version {
        None => (None, None),
        Some(v) => match timed(
            tokio::time::timeout(budget, load_version_of::<PolicyArtifact>(store, name, v)).await,
        ) {
            Ok(p) => (Some(p), None),
            Err(e) => {
                tracing::error!(policy = name, version = v, error = %e, "shadow policy unavailable; not running it");
                (None, Some(e.to_string()))
            }
        },
    };
    LoadedPolicies {
        champion,
        shadow,
        origin,
        shadow_problem,
    }
}
