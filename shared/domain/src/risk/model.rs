//! The fraud-risk model: a logistic regression over [`super::inputs`], standardised, with the friction
//! bands fitted for the merchant's costs on the rows it was validated on. A versioned, checksummed
//! artifact in the model registry (`models/fraud-risk/…`, champion pointer and promotion records as for
//! the propensity model), and a compiled-in fallback for when the champion cannot be loaded.
//!
//! Scoring gives the score (the probability of fraud in percent), the reason codes (the inputs that
//! pushed the log-odds up the most against a training-average payment), the band and its friction.

use super::friction::{Bands, Friction, FrictionCosts};
use super::inputs::{NAMES, WIDTH};
use crate::model::artifact::{open, seal, ArtifactError};
use crate::model::scorer::sigmoid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const RISK_MODEL_FORMAT: &str = "checkout-ai/risk-model";
pub const RISK_MODEL_FORMAT_VERSION: u32 = 1;
/// The registry name of the risk model.
pub const RISK_MODEL_NAME: &str = "fraud-risk";

/// The risk model compiled into the scorer: served when the registry's champion cannot be loaded.
/// Regenerate it with `make fallback-risk-model`.
const FALLBACK: &[u8] = include_bytes!("../../models/fraud-risk.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModelArtifact {
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    /// Input names, in order: exactly [`NAMES`].
    pub inputs: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub intercept: f64,
    pub weights: Vec<f64>,
    /// The friction bands, fitted for `costs` on the validation rows.
    pub bands: Bands,
    pub costs: FrictionCosts,
    pub training: RiskTraining,
    pub metrics: RiskMetrics,
}

/// How the model came to be: the label delay is part of the recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskTraining {
    /// What the rows came from (a file name or `simulated:<seed>`), never a path.
    pub source: String,
    pub rows: u64,
    pub positives: u64,
    /// Only payments at least this old at training time were used: their labels had settled.
    pub label_delay_days: u32,
    /// The newest payment used.
    pub trained_through: DateTime<Utc>,
    /// e.g. `linfa-logistic 0.8`.
    pub library: String,
    pub alpha: f64,
}

/// Held-out figures (the later period, after the label delay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskMetrics {
    pub rows: u64,
    pub positives: u64,
    pub auc: f64,
    pub average_precision: f64,
    /// The fitted bands' cost on the held-out rows over no gating's, and over the best single block
    /// threshold's.
    pub cost_over_no_gating: f64,
    pub cost_over_block: f64,
}

impl RiskModelArtifact {
    pub fn encode(&self) -> Result<Vec<u8>, ArtifactError> {
        self.validate()?;
        Ok(seal(RISK_MODEL_FORMAT, RISK_MODEL_FORMAT_VERSION, self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        let a: Self = open(
            bytes,
            RISK_MODEL_FORMAT,
            RISK_MODEL_FORMAT_VERSION,
            RISK_MODEL_FORMAT_VERSION,
        )?;
        a.validate()?;
        Ok(a)
    }

    /// The inputs this build computes, in its order, with finite parameters and positive scales.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        let bad = |m: String| Err(ArtifactError::Corrupt(m));
        if self.inputs.iter().map(String::as_str).ne(NAMES) {
            return bad(format!(
                "risk model inputs {:?} are not this build's {NAMES:?}",
                self.inputs
            ));
        }
        if [self.mean.len(), self.scale.len(), self.weights.len()] != [WIDTH; 3] {
            return bad(format!("risk model parameters must have {WIDTH} entries"));
        }
        let finite = self
            .mean
            .iter()
            .chain(&self.weights)
            .chain(std::iter::once(&self.intercept))
            .all(|x| x.is_finite());
        if !finite || self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad("risk model parameters must be finite, scales positive".into());
        }
        self.costs
            .validate()
            .map_err(|e| ArtifactError::Corrupt(e.to_string()))
    }
}

impl crate::model::registry::Registered for RiskModelArtifact {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn encode(&self) -> Result<Vec<u8>, ArtifactError> {
        RiskModelArtifact::encode(self)
    }
    fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        RiskModelArtifact::decode(bytes)
    }
}

/// The compiled-in risk model.
pub fn fallback() -> Result<RiskModelArtifact, ArtifactError> {
    RiskModelArtifact::decode(FALLBACK)
}

/// One scored payment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskScore {
    /// 0–100.
    pub score: f64,
    /// Input names, strongest push towards fraud first (at most 3; only inputs that raised the
    /// log-odds).
    pub reasons: Vec<&'static str>,
    pub band: usize,
    pub band_from: f64,
    pub band_to: f64,
    pub friction: Friction,
}

impl RiskModelArtifact {
    /// Scores `x` (the inputs of [`super::inputs::compute`]).
    pub fn score(&self, x: &[f64; WIDTH]) -> RiskScore {
        let mut logit = self.intercept;
        let mut pushes: Vec<(usize, f64)> = Vec::with_capacity(WIDTH);
        for (i, x) in x.iter().enumerate() {
            let c = self.weights[i] * (x - self.mean[i]) / self.scale[i];
            logit += c;
            pushes.push((i, c));
        }
        pushes.sort_by(|a, b| b.1.total_cmp(&a.1));
        let reasons = pushes
            .iter()
            .filter(|(_, c)| *c > 0.25)
            .take(3)
            .map(|(i, _)| NAMES[*i])
            .collect();
        let score = 100.0 * sigmoid(logit);
        let (band, friction) = self.bands.classify(score);
        let (band_from, band_to) = self.bands.range(band);
        RiskScore {
            score,
            reasons,
            band,
            band_from,
            band_to,
            friction,
        }
    }
}

/// The risk model the scorer serves and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedRisk {
    pub model: RiskModelArtifact,
    pub origin: crate::model::registry::Origin,
}

/// The scorer's cold-start load: the registry's `fraud-risk` champion within `budget`, else the
/// compiled-in model (logged as an error with its reason). Only a broken fallback is an `Err`.
pub async fn load_or_fallback(
    store: &impl crate::ports::ObjectStore,
    budget: std::time::Duration,
) -> Result<LoadedRisk, ArtifactError> {
    let (model, origin) =
        crate::model::registry::champion_or(store, RISK_MODEL_NAME, budget, fallback).await?;
    Ok(LoadedRisk { model, origin })
}

/// One side of a risk-model comparison: its held-out figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskContender {
    pub version: String,
    pub average_precision: f64,
    /// The fitted bands' cost over the best single block threshold's, held out.
    pub cost_over_block: f64,
    /// What the figures were measured on: the training source and the held-out rows.
    pub basis: String,
}

impl RiskContender {
    fn of(a: &RiskModelArtifact) -> Self {
        Self {
            version: a.version.clone(),
            average_precision: a.metrics.average_precision,
            cost_over_block: a.metrics.cost_over_block,
            basis: format!("{} ({} held-out rows)", a.training.source, a.metrics.rows),
        }
    }
}

/// The risk model's promotion rule: the challenger replaces the champion only when both were measured
/// on the same held-out rows and it ranks fraud at least as well (average precision) at no more cost
/// (its bands' cost over the block threshold's). An override (with its reason) promotes anyway and says
/// so.
pub fn decide(
    challenger: &RiskContender,
    champion: Option<&RiskContender>,
    override_reason: Option<&str>,
) -> crate::model::registry::Decision {
    use crate::model::registry::Decision;
    let verdict = Decision::verdict;
    let refused = |reason| Decision::refused(reason, override_reason);
    let Some(champion) = champion else {
        return verdict(true, "there is no champion yet".into());
    };
    if champion.version == challenger.version {
        return verdict(
            false,
            format!("{} is already the champion", challenger.version),
        );
    }
    if champion.basis != challenger.basis {
        return refused(format!(
            "measured on different rows ({} vs {})",
            challenger.basis, champion.basis
        ));
    }
    let (ap, cost) = (challenger.average_precision, challenger.cost_over_block);
    if ap >= champion.average_precision && cost <= champion.cost_over_block {
        verdict(
            true,
            format!(
                "average precision {ap:.4} ≥ {:.4} and cost ratio {cost:.4} ≤ {:.4}",
                champion.average_precision, champion.cost_over_block
            ),
        )
    } else {
        refused(format!(
            "average precision {ap:.4} vs {:.4}, cost ratio {cost:.4} vs {:.4}: not better on both",
            champion.average_precision, champion.cost_over_block
        ))
    }
}

/// What a risk-model promotion decided and wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskPromotionRecord {
    pub format_version: u32,
    pub name: String,
    pub decided_at: DateTime<Utc>,
    pub challenger: RiskContender,
    pub champion: Option<RiskContender>,
    pub decision: crate::model::registry::Decision,
    pub pointer_moved: bool,
    pub record_key: String,
}

impl crate::model::registry::Promotion for RiskPromotionRecord {
    fn name(&self) -> &str {
        &self.name
    }
    fn record_key(&self) -> &str {
        &self.record_key
    }
    fn decision_mut(&mut self) -> &mut crate::model::registry::Decision {
        &mut self.decision
    }
    fn set_pointer_moved(&mut self) {
        self.pointer_moved = true;
    }
}

/// Compares a published `fraud-risk` challenger with the champion, moves the pointer when [`decide`]
/// allows, and writes the promotion record either way.
pub async fn promote(
    store: &impl crate::ports::ObjectStore,
    challenger_version: &str,
    override_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RiskPromotionRecord, crate::model::registry::RegistryError> {
    use crate::model::registry::{
        champion_pointer, conclude, fetch_version, load_version_of, promotion_key,
        REGISTRY_FORMAT_VERSION,
    };
    let (challenger, sha256) =
        fetch_version::<RiskModelArtifact>(store, RISK_MODEL_NAME, challenger_version).await?;
    let pointer = champion_pointer(store, RISK_MODEL_NAME).await?;
    let champion = match &pointer {
        Some((p, _)) => {
            Some(load_version_of::<RiskModelArtifact>(store, RISK_MODEL_NAME, &p.version).await?)
        }
        None => None,
    };
    let ours = RiskContender::of(&challenger);
    let theirs = champion.as_ref().map(RiskContender::of);
    let decision = decide(&ours, theirs.as_ref(), override_reason);
    let record_key = promotion_key(RISK_MODEL_NAME, now, challenger_version);
    let mut record = RiskPromotionRecord {
        format_version: REGISTRY_FORMAT_VERSION,
        name: RISK_MODEL_NAME.into(),
        decided_at: now,
        challenger: ours,
        champion: theirs,
        decision,
        pointer_moved: false,
        record_key,
    };
    let current = pointer.as_ref().map(|(_, etag)| etag.as_str());
    conclude(store, challenger_version, sha256, current, now, &mut record).await?;
    Ok(record)
}
