//! Training the purchase-propensity model with linfa: the reference protocol's cross-validation, a stratified
//! holdout, and the artifact of the model trained on the rest.

use checkout_domain::features::{UciSession, FEATURE_SCHEMA_VERSION};
use checkout_domain::model::artifact::{
    Algorithm, Coefficient, CrossValidation, Holdout, HoldoutMetrics, Metrics, ModelArtifact,
    TrainingInfo,
};
use checkout_domain::model::columns::Dataset;
use checkout_domain::model::drift::Reference;
use checkout_domain::model::metrics::{
    brier, log_loss, reliability, roc_auc, stratified_folds, stratified_holdout,
};
use checkout_domain::model::scorer::{linear_logit, sigmoid};
use checkout_domain::model::vectorizer::{VectorizerConfig, VectorizerSpec};
use chrono::{DateTime, Utc};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use sha2::{Digest, Sha256};

pub mod fraud;
pub mod policy;

/// The training recipe. [`Default`] is the reference protocol with scikit-learn's defaults for
/// `LogisticRegression` (C = 1, L-BFGS, tolerance 1e-4) except a higher iteration cap, so that it converges.
///
/// `gradient_tolerance` is per row: linfa minimises the *sum* of the row losses (plus `alpha/2·‖w‖²`), while
/// scikit-learn's tolerance applies to their *mean*, so the L-BFGS stopping norm passed to linfa is
/// `gradient_tolerance × rows`. Without the scaling linfa would iterate to a 12,000× tighter optimum than
/// scikit-learn's for no change in AUC.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub vectorizer: VectorizerConfig,
    pub alpha: f64,
    pub max_iterations: u64,
    /// Per row (see above).
    pub gradient_tolerance: f64,
    pub folds: usize,
    pub seed: u64,
    pub holdout_fraction: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            vectorizer: VectorizerConfig::reference(),
            alpha: 1.0,
            max_iterations: 1000,
            gradient_tolerance: 1e-4,
            folds: 5,
            seed: 42,
            holdout_fraction: 0.2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training needs both classes with at least {needed} rows each; got {positives} positive and {negatives} negative")]
    TooFew {
        positives: usize,
        negatives: usize,
        needed: usize,
    },
    #[error("linfa could not fit the model: {0}")]
    Fit(String),
    #[error("fold {fold} could not be evaluated (a class is missing from it)")]
    Fold { fold: usize },
}

/// A fitted vectorizer and the logistic regression on its output.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub vectorizer: VectorizerSpec,
    pub intercept: f64,
    pub weights: Vec<f64>,
}

impl Fitted {
    pub fn probability(&self, row: &UciSession) -> f64 {
        let x = self.vectorizer.transform(row);
        sigmoid(linear_logit(self.intercept, &self.weights, &x))
    }
}

/// Fits the vectorizer on `rows`, then the logistic regression on the vectors.
pub fn fit(
    rows: &[&UciSession],
    labels: &[bool],
    config: &TrainConfig,
) -> Result<Fitted, TrainError> {
    let vectorizer = VectorizerSpec::fit(&config.vectorizer, rows.iter().copied());
    let width = vectorizer.width();
    let mut x = Array2::<f64>::zeros((rows.len(), width));
    for (mut out, row) in x.rows_mut().into_iter().zip(rows) {
        if let Some(slice) = out.as_slice_mut() {
            vectorizer.transform_into(row, slice);
        }
    }
    let (intercept, weights) = logistic(x, labels, config)?;
    Ok(Fitted {
        vectorizer,
        intercept,
        weights,
    })
}

/// An L2-penalised logistic regression of `labels` on `x`: the intercept and the weights, oriented to
/// predict `P(label = true)`.
pub fn logistic(
    x: Array2<f64>,
    labels: &[bool],
    config: &TrainConfig,
) -> Result<(f64, Vec<f64>), TrainError> {
    let rows = labels.len();
    let y = Array1::from_iter(labels.iter().copied());
    let model = LogisticRegression::default()
        .alpha(config.alpha)
        .max_iterations(config.max_iterations)
        .gradient_tolerance(config.gradient_tolerance * rows.max(1) as f64)
        .fit(&linfa::Dataset::new(x, y))
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    // linfa's "positive" class is the more frequent one (by count, not by value): orient the model so that
    // it always predicts P(label = true).
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok((
        sign * model.intercept(),
        model.params().iter().map(|w| sign * w).collect(),
    ))
}

/// Some of a dataset's rows, with their labels and positions in it.
struct Part<'a> {
    rows: Vec<&'a UciSession>,
    labels: Vec<bool>,
    index: Vec<usize>,
}

/// The rows for which `out(i)` is false, and those for which it is true.
fn split(data: &Dataset, out: impl Fn(usize) -> bool) -> (Part<'_>, Part<'_>) {
    let empty = || Part {
        rows: Vec::new(),
        labels: Vec::new(),
        index: Vec::new(),
    };
    let (mut kept, mut taken) = (empty(), empty());
    for (i, (row, &label)) in data.rows.iter().zip(&data.labels).enumerate() {
        let part = if out(i) { &mut taken } else { &mut kept };
        part.rows.push(row);
        part.labels.push(label);
        part.index.push(i);
    }
    (kept, taken)
}

fn check_classes(labels: &[bool], needed: usize) -> Result<(), TrainError> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives < needed || negatives < needed {
        return Err(TrainError::TooFew {
            positives,
            negatives,
            needed,
        });
    }
    Ok(())
}

/// Stratified k-fold cross-validation of the whole recipe (the vectorizer is fitted inside each fold).
pub fn cross_validate(data: &Dataset, config: &TrainConfig) -> Result<CrossValidation, TrainError> {
    check_classes(&data.labels, config.folds)?;
    let folds = stratified_folds(&data.labels, config.folds, config.seed);
    let mut out_of_fold = vec![0.0; data.rows.len()];
    let mut fold_auc = Vec::with_capacity(config.folds);
    for fold in 0..config.folds {
        let (train, test) = split(data, |i| folds[i] == fold);
        let fitted = fit(&train.rows, &train.labels, config)?;
        let scores: Vec<f64> = test.rows.iter().map(|r| fitted.probability(r)).collect();
        fold_auc.push(roc_auc(&scores, &test.labels).ok_or(TrainError::Fold { fold })?);
        for (&i, s) in test.index.iter().zip(scores) {
            out_of_fold[i] = s;
        }
    }
    let k = fold_auc.len() as f64;
    let mean_auc = fold_auc.iter().sum::<f64>() / k;
    let std_auc = (fold_auc.iter().map(|a| (a - mean_auc).powi(2)).sum::<f64>() / k).sqrt();
    Ok(CrossValidation {
        folds: config.folds,
        seed: config.seed,
        fold_auc,
        mean_auc,
        std_auc,
        brier: brier(&out_of_fold, &data.labels),
    })
}

/// What to call the trained model.
#[derive(Debug, Clone)]
pub struct Naming {
    pub name: String,
    /// `None`: `<created-at, compact UTC>-<first 8 hex of the training data's SHA-256>`.
    pub version: Option<String>,
    /// The training file's name, recorded in the artifact.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// Cross-validates the recipe, trains on all but a stratified holdout, evaluates on the holdout, and
/// returns the artifact of that model.
pub fn train(
    data: &Dataset,
    naming: &Naming,
    config: &TrainConfig,
) -> Result<ModelArtifact, TrainError> {
    let cross_validation = cross_validate(data, config)?;
    let held = stratified_holdout(&data.labels, config.holdout_fraction, config.seed);
    let (train, test) = split(data, |i| held[i]);
    check_classes(&test.labels, 1)?;
    let fitted = fit(&train.rows, &train.labels, config)?;
    let scores: Vec<f64> = test.rows.iter().map(|r| fitted.probability(r)).collect();
    // The drift reference: the training rows' inputs and scores.
    let train_scores: Vec<f64> = train.rows.iter().map(|r| fitted.probability(r)).collect();
    let holdout = HoldoutMetrics {
        auc: roc_auc(&scores, &test.labels).ok_or(TrainError::Fold { fold: config.folds })?,
        brier: brier(&scores, &test.labels),
        log_loss: log_loss(&scores, &test.labels),
        positive_rate: test.labels.iter().filter(|&&l| l).count() as f64 / test.labels.len() as f64,
        reliability: reliability(&scores, &test.labels, 10),
    };
    let holdout_id = hex::encode(Sha256::digest(
        format!(
            "{}|{}|{}",
            data.sha256, config.holdout_fraction, config.seed
        )
        .as_bytes(),
    ));
    let version = naming.version.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            naming.created_at.format("%Y%m%dT%H%M%SZ"),
            &data.sha256[..8.min(data.sha256.len())]
        )
    });
    let coefficients = fitted
        .vectorizer
        .feature_names()
        .into_iter()
        .zip(&fitted.weights)
        .map(|(feature, &weight)| Coefficient { feature, weight })
        .collect();
    Ok(ModelArtifact {
        name: naming.name.clone(),
        version,
        created_at: naming.created_at,
        feature_schema_version: FEATURE_SCHEMA_VERSION,
        vectorizer: fitted.vectorizer,
        intercept: fitted.intercept,
        coefficients,
        training: TrainingInfo {
            source: naming.source.clone(),
            data_sha256: data.sha256.clone(),
            rows: data.rows.len() as u64,
            positives: data.positives() as u64,
            bad_rows: data.bad_rows,
            algorithm: Algorithm {
                library: "linfa-logistic 0.8".into(),
                alpha: config.alpha,
                max_iterations: config.max_iterations,
                gradient_tolerance: config.gradient_tolerance,
            },
            holdout: Holdout {
                id: holdout_id,
                fraction: config.holdout_fraction,
                seed: config.seed,
                rows: test.rows.len() as u64,
            },
        },
        metrics: Metrics {
            cross_validation,
            holdout,
        },
        reference: Some(Reference::fit(&train.rows, &train_scores)),
    })
}
