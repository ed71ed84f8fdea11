//! The offline fraud benchmark with known fraud: the handbook's simulator ([`sim`]), its baseline features
//! with the label delay explicit ([`features`]), its protocol (train one week, wait one week for the
//! labels, test one week), a linfa logistic regression, the handbook's metrics, and the expected cost of
//! friction bands fitted from the merchant's costs against a single block threshold and no gating.

pub mod features;
pub mod review_week;
pub mod serving;
pub mod sim;

use crate::{logistic, TrainConfig, TrainError};
use checkout_domain::model::metrics::{average_precision, card_precision_at_k, roc_auc, CardScore};
use checkout_domain::model::scorer::{linear_logit, sigmoid};
use checkout_domain::risk::friction::{
    best_block, block_curve, evaluate, fit_bands, Bands, Friction, FrictionCosts, Labelled, Order,
    PolicyCost,
};
use checkout_domain::risk::inputs;
use checkout_domain::risk::model::{RiskMetrics, RiskModelArtifact, RiskTraining, RISK_MODEL_NAME};
use features::Scaler;
use ndarray::Array2;
use serde::Serialize;
use sim::{Scenario, Simulation};
use std::collections::HashSet;

/// The handbook's protocol (chapter 3.4): training from 2018-07-25 (day 115) for 7 days, a 7-day delay
/// for the labels to arrive, then 7 test days. Cards known to be compromised by a test day (a fraud in
/// the training week or in the delay up to the day before the test day, minus the delay) leave the test
/// set, as in the handbook's `get_train_test_set`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol {
    pub train_start_day: u32,
    pub train_days: u32,
    pub delay_days: u32,
    pub test_days: u32,
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            train_start_day: 115,
            train_days: 7,
            delay_days: 7,
            test_days: 7,
        }
    }
}

impl Protocol {
    /// The training rows and the test rows (indices into the transactions).
    pub fn split(&self, sim: &Simulation) -> (Vec<usize>, Vec<usize>) {
        let txs = &sim.transactions;
        let start = self.train_start_day;
        let train: Vec<usize> = (0..txs.len())
            .filter(|&i| (start..start + self.train_days).contains(&txs[i].day))
            .collect();
        let mut known: HashSet<u32> = train
            .iter()
            .filter(|&&i| txs[i].fraud())
            .map(|&i| txs[i].customer)
            .collect();
        let mut test = Vec::new();
        for d in 0..self.test_days {
            let day = start + self.train_days + self.delay_days + d;
            let learnt = start + self.train_days + d - 1;
            known.extend(
                txs.iter()
                    .filter(|t| t.day == learnt && t.fraud())
                    .map(|t| t.customer),
            );
            test.extend(
                (0..txs.len()).filter(|&i| txs[i].day == day && !known.contains(&txs[i].customer)),
            );
        }
        (train, test)
    }

    /// The last day the simulation must cover.
    pub fn last_day(&self) -> u32 {
        self.train_start_day + self.train_days + self.delay_days + self.test_days - 1
    }
}

/// The model trained on the training week: scaling and a logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskModel {
    pub scaler: Scaler,
    pub intercept: f64,
    pub weights: Vec<f64>,
}

impl RiskModel {
    /// The probability of fraud of `row` (its first inputs, as many as the model was trained on).
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(linear_logit(
            self.intercept,
            &self.weights,
            &self.scaler.apply(row),
        ))
    }
}

/// A standardised logistic regression on the first `width` inputs of the rows.
pub fn train(
    rows: &[&[f64]],
    labels: &[bool],
    width: usize,
    config: &TrainConfig,
) -> Result<RiskModel, TrainError> {
    let cut: Vec<&[f64]> = rows.iter().map(|r| &r[..width]).collect();
    let scaler = Scaler::fit(&cut);
    let mut x = Array2::<f64>::zeros((rows.len(), width));
    for (mut out, row) in x.rows_mut().into_iter().zip(&cut) {
        for (o, v) in out.iter_mut().zip(scaler.apply(row)) {
            *o = v;
        }
    }
    let (intercept, weights) = logistic(x, labels, config)?;
    Ok(RiskModel {
        scaler,
        intercept,
        weights,
    })
}

/// The model checkout-ai serves: its own inputs, computed as the scorer computes them.
pub const SERVING_MODEL: &str = "checkout-ai risk model (serving inputs)";

/// The handbook's published test-set figures for its logistic regression on this protocol (chapter 3.4,
/// "Baseline fraud detection system", table "performances on test set"; scikit-learn defaults on the
/// handbook's own simulated data).
pub const HANDBOOK_LOGISTIC: Quality = Quality {
    auc: 0.871,
    average_precision: 0.606,
    card_precision_100: 0.291,
};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub auc: f64,
    pub average_precision: f64,
    pub card_precision_100: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub transactions: usize,
    pub frauds: usize,
    pub by_scenario: Vec<(Scenario, usize)>,
    pub train_rows: usize,
    pub train_frauds: usize,
    pub test_rows: usize,
    pub test_frauds: usize,
}

/// One policy's cost on the test week.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRow {
    pub policy: String,
    pub bands: Bands,
    pub test: PolicyCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub config: sim::SimConfig,
    pub protocol: Protocol,
    pub data: DataSummary,
    /// The handbook's logistic regression reproduced (its 15 inputs), then checkout-ai's risk model.
    pub models: Vec<ModelRow>,
    pub handbook_logistic: Quality,
    pub costs: FrictionCosts,
    pub margin_rate: f64,
    /// Fitted on the training week; the oracle's threshold is fitted on the test week itself.
    pub policies: Vec<PolicyRow>,
    /// The banded policy's cost over the best single block threshold's (both fitted on the training week).
    pub banded_over_block: f64,
    /// The same ratio against the block threshold that is best on the test week in hindsight.
    pub banded_over_block_oracle: f64,
    /// The single block threshold's cost curve on the test week (threshold, cost in minor units), thinned.
    pub block_curve: Vec<(f64, f64)>,
    /// The served model as the registry and the scorer read it.
    pub artifact: RiskModelArtifact,
    /// The review queue over the test week (the fitted bands' review cases, reviewers at
    /// [`REVIEW_CAPACITY_PER_DAY`], the default SLA).
    pub review_week: review_week::ReviewWeek,
    /// The same with half the team: where the SLA escalates and expires.
    pub review_week_half_staffed: review_week::ReviewWeek,
}

/// Decisions a day the simulated review team makes.
pub const REVIEW_CAPACITY_PER_DAY: u32 = 40;

#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    pub name: String,
    pub inputs: Vec<&'static str>,
    pub test: Quality,
    pub train: Quality,
    pub card_precision_per_day: Vec<(i64, f64)>,
    pub model: RiskModel,
}

fn quality(scores: &[f64], labels: &[bool], cards: &[CardScore]) -> (Quality, Vec<(i64, f64)>) {
    let (per_day, cp) = card_precision_at_k(cards, 100);
    (
        Quality {
            auc: roc_auc(scores, labels).unwrap_or(f64::NAN),
            average_precision: average_precision(scores, labels).unwrap_or(f64::NAN),
            card_precision_100: cp,
        },
        per_day,
    )
}

/// Runs the benchmark: simulate, featurize, split, train, score, fit bands on the training week and cost
/// every policy on the test week.
pub fn run(
    config: &sim::SimConfig,
    protocol: &Protocol,
    costs: &FrictionCosts,
    margin_rate: f64,
) -> Result<Bench, TrainError> {
    let mut config = config.clone();
    config.days = config.days.max(protocol.last_day() + 1);
    let sim = sim::simulate(&config);
    let txs = &sim.transactions;
    let labels: Vec<bool> = txs.iter().map(|t| t.fraud()).collect();
    let handbook_rows = features::transform(txs, &labels, i64::from(protocol.delay_days));
    let (train_idx, test_idx) = protocol.split(&sim);
    let both: Vec<usize> = train_idx.iter().chain(&test_idx).copied().collect();
    let serving_rows = serving::inputs(&sim, i64::from(protocol.delay_days), &both);
    let train_labels: Vec<bool> = train_idx.iter().map(|&i| labels[i]).collect();
    let test_labels: Vec<bool> = test_idx.iter().map(|&i| labels[i]).collect();
    let cards = |idx: &[usize], p: &[f64]| -> Vec<CardScore> {
        idx.iter()
            .zip(p)
            .map(|(&i, &score)| CardScore {
                day: i64::from(txs[i].day),
                card: u64::from(txs[i].customer),
                score,
                fraud: labels[i],
            })
            .collect()
    };
    let handbook: Vec<&[f64]> = handbook_rows.iter().map(|r| &r[..]).collect();
    let serving: Vec<&[f64]> = serving_rows.iter().map(|r| &r[..]).collect();
    let mut models = Vec::new();
    let mut scores = (Vec::new(), Vec::new());
    for (name, rows, names) in [
        (
            "handbook logistic regression (reproduced)",
            &handbook,
            &features::NAMES[..features::HANDBOOK_WIDTH],
        ),
        (
            "handbook inputs + order value against history",
            &handbook,
            &features::NAMES[..],
        ),
        (SERVING_MODEL, &serving, &inputs::NAMES[..]),
    ] {
        let pick = |idx: &[usize]| -> Vec<&[f64]> { idx.iter().map(|&i| rows[i]).collect() };
        let model = train(
            &pick(&train_idx),
            &train_labels,
            names.len(),
            &TrainConfig::default(),
        )?;
        let score = |idx: &[usize]| -> Vec<f64> {
            idx.iter().map(|&i| model.probability(rows[i])).collect()
        };
        let (train_p, test_p) = (score(&train_idx), score(&test_idx));
        let (test, per_day) = quality(&test_p, &test_labels, &cards(&test_idx, &test_p));
        let (train_q, _) = quality(&train_p, &train_labels, &cards(&train_idx, &train_p));
        models.push(ModelRow {
            name: name.into(),
            inputs: names.to_vec(),
            test,
            train: train_q,
            card_precision_per_day: per_day,
            model,
        });
        // The last is the served model: the costs are its.
        scores = (train_p, test_p);
    }
    let (train_p, test_p) = scores;
    let labelled = |idx: &[usize], p: &[f64]| -> Vec<Labelled> {
        idx.iter()
            .zip(p)
            .map(|(&i, &p)| {
                let value_minor = (txs[i].amount * 100.0).round() as i64;
                Labelled {
                    score: 100.0 * p,
                    order: Order {
                        value_minor,
                        margin_minor: (value_minor as f64 * margin_rate).round() as i64,
                    },
                    fraud: labels[i],
                }
            })
            .collect()
    };
    let (train_l, test_l) = (labelled(&train_idx, &train_p), labelled(&test_idx, &test_p));
    let banded = fit_bands(costs, &train_l, &Friction::ALL);
    let block = fit_bands(costs, &train_l, &[Friction::Decline]);
    let (oracle_at, _) = best_block(costs, &test_l);
    let oracle = Bands::block_at(oracle_at);
    let none = Bands::block_at(101.0);
    let row = |policy: &str, bands: &Bands| PolicyRow {
        policy: policy.into(),
        bands: bands.clone(),
        test: evaluate(costs, bands, &test_l),
    };
    let policies = vec![
        row("no gating", &none),
        row(
            "best single block threshold (fitted on the training week)",
            &block,
        ),
        row(
            "best single block threshold (on the test week, in hindsight)",
            &oracle,
        ),
        row("friction bands (fitted on the training week)", &banded),
    ];
    let cost = |i: usize| policies[i].test.cost_minor;
    let timed: Vec<(chrono::DateTime<chrono::Utc>, Labelled)> = test_idx
        .iter()
        .zip(&test_l)
        .map(|(&i, l)| {
            (
                serving::epoch() + chrono::Duration::seconds(txs[i].seconds),
                *l,
            )
        })
        .collect();
    let week = |capacity| {
        review_week::simulate(
            &timed,
            &banded,
            costs,
            &checkout_domain::features::review::ReviewConfig::default(),
            capacity,
            config.seed,
        )
    };
    let (review_week, review_week_half_staffed) = (
        week(REVIEW_CAPACITY_PER_DAY),
        week(REVIEW_CAPACITY_PER_DAY / 2),
    );
    let served = &models[2];
    let trained_through = serving::epoch()
        + chrono::Duration::days(i64::from(protocol.train_start_day + protocol.train_days));
    let artifact = RiskModelArtifact {
        name: RISK_MODEL_NAME.into(),
        version: format!("sim-{}-s{}", trained_through.format("%Y%m%d"), config.seed),
        created_at: trained_through + chrono::Duration::days(i64::from(protocol.delay_days)),
        inputs: inputs::NAMES.iter().map(|n| n.to_string()).collect(),
        mean: served.model.scaler.mean.clone(),
        scale: served.model.scaler.scale.clone(),
        intercept: served.model.intercept,
        weights: served.model.weights.clone(),
        bands: banded.clone(),
        costs: costs.clone(),
        training: RiskTraining {
            source: format!("simulated:handbook:seed-{}", config.seed),
            rows: train_idx.len() as u64,
            positives: train_labels.iter().filter(|&&l| l).count() as u64,
            label_delay_days: protocol.delay_days,
            trained_through,
            library: "linfa-logistic 0.8".into(),
            alpha: TrainConfig::default().alpha,
        },
        metrics: RiskMetrics {
            rows: test_idx.len() as u64,
            positives: test_labels.iter().filter(|&&l| l).count() as u64,
            auc: served.test.auc,
            average_precision: served.test.average_precision,
            cost_over_no_gating: cost(3) / cost(0),
            cost_over_block: cost(3) / cost(1),
        },
    };
    let curve = block_curve(costs, &test_l);
    let step = (curve.len() / 200).max(1);
    let block_curve = curve
        .iter()
        .enumerate()
        .filter(|(i, p)| i % step == 0 || p.0 > 100.0)
        .map(|(_, p)| *p)
        .collect();
    let mut by_scenario: Vec<(Scenario, usize)> = Vec::new();
    for s in [
        Scenario::LargeAmount,
        Scenario::CompromisedTerminal,
        Scenario::CompromisedCard,
    ] {
        by_scenario.push((s, txs.iter().filter(|t| t.scenario == s).count()));
    }
    Ok(Bench {
        config: config.clone(),
        protocol: protocol.clone(),
        data: DataSummary {
            transactions: txs.len(),
            frauds: labels.iter().filter(|&&l| l).count(),
            by_scenario,
            train_rows: train_idx.len(),
            train_frauds: train_labels.iter().filter(|&&l| l).count(),
            test_rows: test_idx.len(),
            test_frauds: test_labels.iter().filter(|&&l| l).count(),
        },
        models,
        handbook_logistic: HANDBOOK_LOGISTIC,
        costs: costs.clone(),
        margin_rate,
        banded_over_block: cost(3) / cost(1),
        banded_over_block_oracle: cost(3) / cost(2),
        policies,
        block_curve,
        artifact,
        review_week,
        review_week_half_staffed,
    })
}

/// The benchmark over several seeds: each simulated world's figures, and their mean, minimum and maximum.
#[derive(Debug, Clone, Serialize)]
pub struct Seeds {
    pub runs: Vec<Bench>,
    /// Per model (in [`Bench::models`] order): the mean, minimum and maximum of each test figure.
    pub models: Vec<Spread>,
    pub banded_over_block: [f64; 3],
    pub banded_over_block_oracle: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub name: String,
    pub mean: Quality,
    pub min: Quality,
    pub max: Quality,
}

fn mean_min_max(values: impl Iterator<Item = f64> + Clone) -> [f64; 3] {
    let n = values.clone().count().max(1) as f64;
    [
        values.clone().sum::<f64>() / n,
        values.clone().fold(f64::INFINITY, f64::min),
        values.fold(f64::NEG_INFINITY, f64::max),
    ]
}

/// [`run`] with the seeds `seeds` (e.g. `0..8`).
pub fn run_seeds(
    config: &sim::SimConfig,
    protocol: &Protocol,
    costs: &FrictionCosts,
    margin_rate: f64,
    seeds: std::ops::Range<u64>,
) -> Result<Seeds, TrainError> {
    let seeds = seeds.start..seeds.end.max(seeds.start + 1);
    let runs = seeds
        .map(|seed| {
            let config = sim::SimConfig {
                seed,
                ..config.clone()
            };
            run(&config, protocol, costs, margin_rate)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let models = (0..runs[0].models.len())
        .map(|k| {
            let figure = |f: fn(&Quality) -> f64| {
                mean_min_max(runs.iter().map(move |r| f(&r.models[k].test)))
            };
            let (auc, ap, cp) = (
                figure(|q| q.auc),
                figure(|q| q.average_precision),
                figure(|q| q.card_precision_100),
            );
            let at = |i: usize| Quality {
                auc: auc[i],
                average_precision: ap[i],
                card_precision_100: cp[i],
            };
            Spread {
                name: runs[0].models[k].name.clone(),
                mean: at(0),
                min: at(1),
                max: at(2),
            }
        })
        .collect();
    Ok(Seeds {
        models,
        banded_over_block: mean_min_max(runs.iter().map(|r| r.banded_over_block)),
        banded_over_block_oracle: mean_min_max(runs.iter().map(|r| r.banded_over_block_oracle)),
        runs,
    })
}
