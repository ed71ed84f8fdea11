//! Off-policy evaluation of candidate policies on point-in-time rows: each target policy's distribution
//! over every row's logged eligible set, a reward model for the direct method and doubly robust, and the
//! estimators of [`crate::ope`].
//!
//! **Targets.** `logged` (the serving policies themselves: the on-policy check), `nothing` (always `none`),
//! `configured` (the configured-uplift policy, recomputed from the row's context and a [`PolicyConfig`]),
//! a learned [`PolicyArtifact`], and `shadow` (the challenger's distribution the scorer logged beside
//! each decision).
//!
//! **Reward model.** `r̂(x, a) = P̂(order | x, a) · (margin − cost_a)` from a learned artifact's outcome
//! models; an action without a model uses `none`'s. Without a reward model every prediction is 0: the
//! direct method then says 0 and doubly robust equals IPS.
//!
//! A row whose logged distribution is unknown (a v1 decision served with probability below 1) cannot be
//! evaluated for any target but `logged`; such rows are counted as skipped.

use super::dataset::TrainingRow;
use crate::decision::learned::{one_hot, PolicyArtifact};
use crate::decision::policy::{choose, configured_value, Action, Arm, Candidate, PolicyConfig};
use crate::ope::{evaluate, Evaluation, Row, Settings};
use serde::{Deserialize, Serialize};

pub enum Target<'a> {
    Logged,
    Nothing,
    Configured(&'a PolicyConfig),
    Learned(&'a PolicyArtifact),
    Shadow,
}

impl Target<'_> {
    pub fn name(&self) -> String {
        match self {
            Target::Logged => "logged".into(),
            Target::Nothing => "nothing".into(),
            Target::Configured(c) => format!("configured-uplift@{}", c.rules_version),
            Target::Learned(p) => format!("{}@{}", p.name, p.version),
            Target::Shadow => "shadow".into(),
        }
    }

    /// The target's distribution over the row's eligible actions, aligned with them (`None` when the row
    /// cannot be evaluated for this target).
    pub fn distribution(&self, row: &TrainingRow) -> Option<Vec<f64>> {
        let n = row.eligible.len();
        let logged: Vec<f64> = row.eligible.iter().map(|a| a.probability).collect();
        match self {
            Target::Logged => Some(logged),
            Target::Nothing => {
                let i = row.eligible.iter().position(|a| a.action == "none")?;
                Some(one_hot(n, i))
            }
            Target::Configured(cfg) => {
                let candidates = candidates(row, |action, cost| {
                    configured_value(
                        &cfg.uplift,
                        action,
                        row.context.propensity,
                        row.context.margin_minor,
                        cost,
                    )
                })?;
                Some(choose(Arm::Treatment, &candidates, cfg.epsilon, 1.0, 0.0).distribution)
            }
            Target::Learned(p) => {
                let candidates = candidates(row, |action, _| {
                    if *action == Action::StepUpVerification {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })?;
                Some(p.distribution(&row.context, &candidates).probabilities)
            }
            Target::Shadow => {
                let s = row.shadow.as_ref()?;
                row.eligible
                    .iter()
                    .map(|a| {
                        s.eligible
                            .iter()
                            .find(|x| x.action == a.action)
                            .map(|x| x.probability)
                    })
                    .collect()
            }
        }
    }
}

/// The row's eligible actions as candidates, valued by `value(action, cost)`.
fn candidates(row: &TrainingRow, value: impl Fn(&Action, f64) -> f64) -> Option<Vec<Candidate>> {
    row.eligible
        .iter()
        .map(|a| {
            let action = Action::from_key(&a.action)?;
            Some(Candidate {
                expected_value_minor: value(&action, a.cost_minor as f64),
                action,
                cost_minor: a.cost_minor,
            })
        })
        .collect()
}

/// `r̂(x, a)` for each of the row's eligible actions (see the module docs).
pub fn predictions(row: &TrainingRow, model: Option<&PolicyArtifact>) -> Vec<f64> {
    let Some(model) = model else {
        return vec![0.0; row.eligible.len()];
    };
    let x = row.context.features();
    let none = model.outcome_models.get("none");
    row.eligible
        .iter()
        .map(|a| {
            let conversion = model
                .outcome_models
                .get(&a.action)
                .or(none)
                .map_or(0.0, |m| m.conversion(&x));
            conversion * (row.context.margin_minor - a.cost_minor as f64)
        })
        .collect()
}

/// The estimator rows of `target` over `rows`, and how many rows could not be evaluated.
pub fn ope_rows(
    rows: &[TrainingRow],
    target: &Target<'_>,
    reward_model: Option<&PolicyArtifact>,
) -> (Vec<Row>, usize) {
    let mut out = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for r in rows {
        let logged: Vec<f64> = r.eligible.iter().map(|a| a.probability).collect();
        let chosen = r.eligible.iter().position(|a| a.action == r.action);
        let row = match (chosen, target.distribution(r)) {
            (Some(chosen), Some(target)) => Row::from_distributions(
                &logged,
                &target,
                &predictions(r, reward_model),
                chosen,
                r.outcome.margin_minor,
            ),
            _ => None,
        };
        match row {
            Some(row) => out.push(row),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

/// One target's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetEvaluation {
    pub target: String,
    pub evaluation: Evaluation,
    /// Rows that could not be evaluated for this target.
    pub skipped: usize,
}

/// Several targets on the same rows, with the same reward model and bootstrap seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: usize,
    pub reward_model: Option<String>,
    /// Mean margin per decision actually earned by the logging policies.
    pub logged_mean_margin: f64,
    pub targets: Vec<TargetEvaluation>,
}

pub fn report(
    rows: &[TrainingRow],
    targets: &[Target<'_>],
    reward_model: Option<&PolicyArtifact>,
    settings: Settings,
) -> Report {
    let logged_mean_margin = if rows.is_empty() {
        0.0
    } else {
        rows.iter().map(|r| r.outcome.margin_minor).sum::<f64>() / rows.len() as f64
    };
    Report {
        rows: rows.len(),
        reward_model: reward_model.map(|m| format!("{}@{}", m.name, m.version)),
        logged_mean_margin,
        targets: targets
            .iter()
            .map(|t| {
                let (ope, skipped) = ope_rows(rows, t, reward_model);
                TargetEvaluation {
                    target: t.name(),
                    evaluation: evaluate(&ope, settings),
                    skipped,
                }
            })
            .collect(),
    }
}
