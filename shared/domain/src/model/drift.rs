//! Input drift: the live distribution of the model's inputs and score against the reference frozen in
//! the model artifact at training time.
//!
//! **Reference.** For each input column, from the training rows: a numeric column's decile edges (the
//! nearest-rank 10th … 90th percentiles of its non-missing values, ties merged, so a column with few
//! distinct values has fewer bins) and the share of training rows in each bin; a categorical column's
//! categories and their shares; both with the share of missing values. The score (the model's
//! probability on the training rows) gets decile bins too.
//!
//! **Population stability index.** Over the bins of a column, plus one bin for missing values and, for
//! a categorical column, one for categories the reference never saw (out of vocabulary):
//! `PSI = Σ (a − e) · ln(a / e)`, with the live shares `a` and the reference shares `e` each smoothed as
//! `(p + ε) / (1 + K·ε)` (ε = [`EPSILON`], K bins), so an empty bin counts as a small share instead of
//! making the index infinite. Under the customary reading, below [`WARN`] is stable, [`WARN`] to [`ALARM`]
//! a moderate shift, from [`ALARM`] a major one.
//!
//! **Small windows.** A sample of `n` drawn from the reference itself has an expected PSI of about
//! `(K − 1) / n` (the noise floor, reported per column): at n = 50 and ten bins that is 0.18, a false
//! warning. Below [`MIN_WINDOW`] decisions a window is reported as `insufficient` and never alarms (the
//! value is measured in docs/operations.md).

use crate::features::session::model_input;
use crate::features::UciSession;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Additive smoothing of every bin's share.
pub const EPSILON: f64 = 1e-4;
/// PSI from which a column is reported as shifted.
pub const WARN: f64 = 0.1;
/// PSI from which a column alarms.
pub const ALARM: f64 = 0.25;
/// Fewer decisions than this in a window: reported, never alarmed.
pub const MIN_WINDOW: usize = 500;
/// The name of the score's row in a report.
pub const SCORE: &str = "score";
/// Decile bins.
const QUANTILES: usize = 10;
/// At most this many categories are kept per column; rarer ones count as out of vocabulary.
const MAX_CATEGORIES: usize = 64;

/// The reference distribution of every model input and of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Training rows the reference was computed from.
    pub rows: u64,
    pub inputs: Vec<ColumnReference>,
    pub score: ColumnReference,
}

/// One column's reference bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReference {
    pub name: String,
    pub bins: Bins,
    /// Share of training rows where the column was missing.
    pub missing_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bins {
    /// `edges` are ascending upper bounds: a value `v` falls in bin `#{e in edges : v > e}`, so there
    /// are `edges.len() + 1` bins; `shares` are the non-missing training rows' shares per bin.
    Numeric { edges: Vec<f64>, shares: Vec<f64> },
    /// Categories and their shares among non-missing training rows.
    Categorical {
        categories: Vec<String>,
        shares: Vec<f64>,
    },
}

/// A column value as the decision event logs it (see `model_input`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Category(String),
    Missing,
}

impl Cell {
    pub fn of(v: Option<&Value>) -> Cell {
        match v {
            Some(Value::Number(n)) => n.as_f64().map_or(Cell::Missing, Cell::Number),
            Some(Value::String(s)) => Cell::Category(s.clone()),
            Some(Value::Bool(b)) => Cell::Category(b.to_string()),
            _ => Cell::Missing,
        }
    }
}

impl Reference {
    /// The reference of training `rows` and the model's `scores` on them.
    pub fn fit(rows: &[&UciSession], scores: &[f64]) -> Reference {
        let maps: Vec<BTreeMap<String, Value>> = rows.iter().map(|r| model_input(r)).collect();
        let names: Vec<String> = maps
            .first()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let inputs = names
            .iter()
            .map(|name| {
                let cells: Vec<Cell> = maps.iter().map(|m| Cell::of(m.get(name))).collect();
                ColumnReference::fit(name, &cells)
            })
            .collect();
        let score_cells: Vec<Cell> = scores.iter().map(|s| Cell::Number(*s)).collect();
        Reference {
            rows: rows.len() as u64,
            inputs,
            score: ColumnReference::fit(SCORE, &score_cells),
        }
    }
}

impl ColumnReference {
    /// Bins fitted to `cells`: categorical when any value is a category, else numeric.
    pub fn fit(name: &str, cells: &[Cell]) -> ColumnReference {
        let missing = cells.iter().filter(|c| **c == Cell::Missing).count();
        let present = (cells.len() - missing).max(1) as f64;
        let categorical = cells.iter().any(|c| matches!(c, Cell::Category(_)));
        let bins = if categorical {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for c in cells {
                let key = match c {
                    Cell::Category(s) => s.clone(),
                    Cell::Number(x) => x.to_string(),
                    Cell::Missing => continue,
                };
                *counts.entry(key).or_default() += 1;
            }
            let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(MAX_CATEGORIES);
            ranked.sort();
            Bins::Categorical {
                shares: ranked.iter().map(|(_, n)| *n as f64 / present).collect(),
                categories: ranked.into_iter().map(|(c, _)| c).collect(),
            }
        } else {
            let mut values: Vec<f64> = cells
                .iter()
                .filter_map(|c| match c {
                    Cell::Number(x) => Some(*x),
                    _ => None,
                })
                .collect();
            values.sort_by(f64::total_cmp);
            let mut edges: Vec<f64> = Vec::new();
            if !values.is_empty() {
                for j in 1..QUANTILES {
                    let rank = (j * values.len()).div_ceil(QUANTILES).max(1);
                    let q = values[rank - 1];
                    if edges.last() != Some(&q) && Some(&q) != values.last() {
                        edges.push(q);
                    }
                }
            }
            let mut counts = vec![0usize; edges.len() + 1];
            for v in &values {
                counts[numeric_bin(&edges, *v)] += 1;
            }
            Bins::Numeric {
                shares: counts.iter().map(|n| *n as f64 / present).collect(),
                edges,
            }
        };
        ColumnReference {
            name: name.to_string(),
            bins,
            missing_share: missing as f64 / cells.len().max(1) as f64,
        }
    }

    /// The reference shares over the PSI bins: the value bins, then missing, then (categorical) out of
    /// vocabulary, each share of all rows.
    pub fn expected(&self) -> Vec<f64> {
        let present = 1.0 - self.missing_share;
        let mut e: Vec<f64> = match &self.bins {
            Bins::Numeric { shares, .. } | Bins::Categorical { shares, .. } => {
                shares.iter().map(|s| s * present).collect()
            }
        };
        e.push(self.missing_share);
        if let Bins::Categorical { shares, .. } = &self.bins {
            // The training rows of categories beyond the kept vocabulary.
            let kept: f64 = shares.iter().sum();
            e.push((present * (1.0 - kept)).max(0.0));
        }
        e
    }

    /// The PSI bin of one cell (see [`Self::expected`]).
    pub fn bin(&self, cell: &Cell) -> usize {
        let values = match &self.bins {
            Bins::Numeric { edges, .. } => edges.len() + 1,
            Bins::Categorical { categories, .. } => categories.len(),
        };
        match (cell, &self.bins) {
            (Cell::Missing, _) => values,
            (Cell::Number(x), Bins::Numeric { edges, .. }) => numeric_bin(edges, *x),
            (Cell::Category(s), Bins::Categorical { categories, .. }) => {
                categories.binary_search(s).unwrap_or(values + 1)
            }
            (Cell::Number(x), Bins::Categorical { categories, .. }) => categories
                .binary_search(&x.to_string())
                .unwrap_or(values + 1),
            // A category where the reference had numbers: a numeric column has no out-of-vocabulary
            // bin, so it counts as missing.
            (Cell::Category(_), Bins::Numeric { .. }) => values,
        }
    }

    /// Human-readable bin labels, aligned with [`Self::expected`].
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = match &self.bins {
            Bins::Numeric { edges, .. } => (0..=edges.len())
                .map(
                    |i| match (i.checked_sub(1).map(|j| edges[j]), edges.get(i)) {
                        (None, Some(hi)) => format!("≤ {}", short(*hi)),
                        (Some(lo), Some(hi)) => format!("({}, {}]", short(lo), short(*hi)),
                        (Some(lo), None) => format!("> {}", short(lo)),
                        (None, None) => "all".into(),
                    },
                )
                .collect(),
            Bins::Categorical { categories, .. } => categories.clone(),
        };
        labels.push("missing".into());
        if matches!(self.bins, Bins::Categorical { .. }) {
            labels.push("out of vocabulary".into());
        }
        labels
    }
}

fn short(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn numeric_bin(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|e| v > *e)
}

/// The population stability index of live `counts` against reference shares `expected` (aligned),
/// smoothed with [`EPSILON`].
pub fn psi(expected: &[f64], counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    let k = expected.len() as f64;
    let smooth = |p: f64| (p + EPSILON) / (1.0 + k * EPSILON);
    expected
        .iter()
        .zip(counts)
        .map(|(e, c)| {
            let a = smooth(if n == 0 { 0.0 } else { *c as f64 / n as f64 });
            let e = smooth(*e);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// A column's or a window's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Too few decisions to judge: reported, never alarmed.
    Insufficient,
    Warn,
    Alarm,
}

impl Status {
    fn of(psi: f64, n: usize) -> Status {
        if n < MIN_WINDOW {
            Status::Insufficient
        } else if psi >= ALARM {
            Status::Alarm
        } else if psi >= WARN {
            Status::Warn
        } else {
            Status::Ok
        }
    }
}

/// One column's drift in a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    pub name: String,
    pub kind: &'static str,
    pub psi: f64,
    pub status: Status,
    /// Expected PSI of a same-sized sample from the reference itself, `(K − 1) / n` with `K` the bins
    /// the reference populates.
    pub noise_floor: f64,
    pub missing_share_reference: f64,
    pub missing_share_live: f64,
    /// Categorical columns: the live share of categories the reference never saw.
    pub out_of_vocabulary_share: Option<f64>,
    pub bins: Vec<BinShare>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinShare {
    pub label: String,
    pub reference: f64,
    pub live: f64,
}

/// Compares `n` live cells of one column with its reference.
pub fn column_drift(reference: &ColumnReference, cells: &[Cell]) -> ColumnDrift {
    let expected = reference.expected();
    let mut counts = vec![0usize; expected.len()];
    for c in cells {
        let b = reference.bin(c).min(expected.len() - 1);
        counts[b] += 1;
    }
    let n = cells.len();
    let share = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    let categorical = matches!(reference.bins, Bins::Categorical { .. });
    let missing_at = if categorical {
        expected.len() - 2
    } else {
        expected.len() - 1
    };
    let value = psi(&expected, &counts);
    ColumnDrift {
        name: reference.name.clone(),
        kind: if categorical {
            "categorical"
        } else {
            "numeric"
        },
        psi: value,
        status: Status::of(value, n),
        noise_floor: (expected.iter().filter(|e| **e > 1e-12).count().max(1) as f64 - 1.0)
            / n.max(1) as f64,
        missing_share_reference: reference.missing_share,
        missing_share_live: share(counts[missing_at]),
        out_of_vocabulary_share: categorical.then(|| share(counts[expected.len() - 1])),
        bins: reference
            .labels()
            .into_iter()
            .zip(&expected)
            .zip(&counts)
            .map(|((label, e), c)| BinShare {
                label,
                reference: *e,
                live: share(*c),
            })
            .collect(),
    }
}

/// The live window: each decision's logged inputs and score.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub inputs: Vec<BTreeMap<String, Value>>,
    pub scores: Vec<f64>,
}

/// Every column's drift over a window, inputs first, then the score.
pub fn drift(reference: &Reference, window: &Window) -> Vec<ColumnDrift> {
    let mut out: Vec<ColumnDrift> = reference
        .inputs
        .iter()
        .map(|r| {
            let cells: Vec<Cell> = window
                .inputs
                .iter()
                .map(|m| Cell::of(m.get(&r.name)))
                .collect();
            column_drift(r, &cells)
        })
        .collect();
    let scores: Vec<Cell> = window.scores.iter().map(|s| Cell::Number(*s)).collect();
    out.push(column_drift(&reference.score, &scores));
    out
}

/// The worst status of the columns (`Insufficient` when the window is too small to judge).
pub fn overall(columns: &[ColumnDrift]) -> Status {
    columns
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Insufficient)
}
