//! The one feature vectorizer, shared by training and serving and serialized inside every model artifact.
//!
//! A vector is built in two steps:
//! 1. **Encode.** Each numeric column is transformed (`log1p` or identity); a missing or non-finite result is
//!    imputed with the training mean of the transformed column. Each categorical column becomes one-hot
//!    columns over its training vocabulary (sorted); an absent or unseen category sets none of them.
//! 2. **Scale.** Every encoded column is standardized with the training mean and population standard
//!    deviation; a column that was constant in training is only centred (scale 1), as scikit-learn does.
//!
//! The reference protocol ([`VectorizerConfig::reference`]) is the one the data README measured
//! scikit-learn with: `log1p` of every numeric column (including `Weekend` and `SpecialDay`), one-hot of
//! `Month`, `VisitorType`, `OperatingSystems`, `Browser`, `Region` and `TrafficType`, all columns scaled.

use super::columns::{Column, Kind};
use crate::features::UciSession;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Range;

/// The vectorizer format this build reads and writes. A spec with another version is refused.
pub const VECTORIZER_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Identity,
    Log1p,
}

impl Transform {
    fn apply(self, x: f64) -> f64 {
        match self {
            Transform::Identity => x,
            Transform::Log1p => x.ln_1p(),
        }
    }
}

/// Which columns to use and how, before fitting.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorizerConfig {
    pub numeric: Vec<(Column, Transform)>,
    pub categorical: Vec<Column>,
}

impl VectorizerConfig {
    /// The reference protocol (see the module docs).
    pub fn reference() -> Self {
        let (numeric, categorical): (Vec<Column>, Vec<Column>) = Column::ALL
            .into_iter()
            .partition(|c| c.kind() == Kind::Numeric);
        Self {
            numeric: numeric.into_iter().map(|c| (c, Transform::Log1p)).collect(),
            categorical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSpec {
    pub column: Column,
    pub transform: Transform,
    /// Replaces a missing or non-finite transformed value: the training mean of the transformed column.
    pub impute: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSpec {
    pub column: Column,
    /// One one-hot column per entry, in this order.
    pub vocabulary: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub mean: f64,
    pub scale: f64,
}

/// A fitted vectorizer. Numeric columns come first, then each categorical column's one-hot block; `scaling`
/// has one entry per output column, in that order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorizerSpec {
    pub version: u32,
    pub numeric: Vec<NumericSpec>,
    pub categorical: Vec<CategoricalSpec>,
    pub scaling: Vec<Scale>,
}

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "vectorizer version {found} is unknown (this build reads version {VECTORIZER_VERSION})"
    )]
    UnknownVersion { found: u32 },
    #[error("vectorizer has {scaling} scaling entries for {width} columns")]
    Width { scaling: usize, width: usize },
    #[error("vectorizer column {0} is not finite or has a non-positive scale")]
    NotFinite(usize),
    #[error("vectorizer uses column {0} twice, as the wrong kind, or with an unsorted vocabulary")]
    Column(&'static str),
}

impl VectorizerSpec {
    /// Fits the encoder and the scaler on `rows`.
    pub fn fit<'a>(
        config: &VectorizerConfig,
        rows: impl Iterator<Item = &'a UciSession> + Clone,
    ) -> Self {
        let numeric = config
            .numeric
            .iter()
            .map(|&(column, transform)| {
                let (sum, n) = rows
                    .clone()
                    .filter_map(|r| column.numeric(r).map(|x| transform.apply(x)))
                    .filter(|v| v.is_finite())
                    .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                let impute = if n == 0 { 0.0 } else { sum / n as f64 };
                NumericSpec {
                    column,
                    transform,
                    impute,
                }
            })
            .collect();
        let categorical = config
            .categorical
            .iter()
            .map(|&column| {
                let vocabulary: BTreeSet<String> = rows
                    .clone()
                    .filter_map(|r| column.category(r).map(|c| c.into_owned()))
                    .collect();
                CategoricalSpec {
                    column,
                    vocabulary: vocabulary.into_iter().collect(),
                }
            })
            .collect();
        let mut spec = Self {
            version: VECTORIZER_VERSION,
            numeric,
            categorical,
            scaling: Vec::new(),
        };
        // Two passes (mean, then centred squares) for an accurate variance.
        let width = spec.width();
        let mut encoded = vec![0.0; width];
        let (mut sum, mut n) = (vec![0.0; width], 0usize);
        for row in rows.clone() {
            spec.encode(row, &mut encoded);
            sum.iter_mut().zip(&encoded).for_each(|(s, x)| *s += x);
            n += 1;
        }
        let n = n.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut squares = vec![0.0; width];
        for row in rows {
            spec.encode(row, &mut encoded);
            for ((q, x), m) in squares.iter_mut().zip(&encoded).zip(&mean) {
                *q += (x - m) * (x - m);
            }
        }
        spec.scaling = mean
            .iter()
            .zip(&squares)
            .map(|(&mean, q)| {
                let std = (q / n).sqrt();
                let scale = if std > f64::EPSILON * mean.abs().max(1.0) {
                    std
                } else {
                    1.0
                };
                Scale { mean, scale }
            })
            .collect();
        spec
    }

    /// Checks a spec read from an artifact before it is trusted.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.version != VECTORIZER_VERSION {
            return Err(SpecError::UnknownVersion {
                found: self.version,
            });
        }
        let width = self.width();
        if self.scaling.len() != width {
            return Err(SpecError::Width {
                scaling: self.scaling.len(),
                width,
            });
        }
        if let Some(i) = self
            .scaling
            .iter()
            .position(|s| !(s.mean.is_finite() && s.scale.is_finite() && s.scale > 0.0))
        {
            return Err(SpecError::NotFinite(i));
        }
        if let Some(i) = self.numeric.iter().position(|n| !n.impute.is_finite()) {
            return Err(SpecError::NotFinite(i));
        }
        let mut seen = BTreeSet::new();
        for n in &self.numeric {
            if n.column.kind() != Kind::Numeric || !seen.insert(n.column) {
                return Err(SpecError::Column(n.column.name()));
            }
        }
        for c in &self.categorical {
            let sorted = c.vocabulary.windows(2).all(|w| w[0] < w[1]);
            if c.column.kind() != Kind::Categorical || !seen.insert(c.column) || !sorted {
                return Err(SpecError::Column(c.column.name()));
            }
        }
        Ok(())
    }

    /// How many columns a vector has.
    pub fn width(&self) -> usize {
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| c.vocabulary.len())
                .sum::<usize>()
    }

    /// The output columns' names: the input column, then `=category` for one-hot columns.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .numeric
            .iter()
            .map(|n| n.column.name().to_owned())
            .collect();
        for c in &self.categorical {
            names.extend(
                c.vocabulary
                    .iter()
                    .map(|v| format!("{}={v}", c.column.name())),
            );
        }
        names
    }

    /// Each input column with the range of output columns it owns.
    pub fn blocks(&self) -> impl Iterator<Item = (Column, Range<usize>)> + '_ {
        let numeric = self
            .numeric
            .iter()
            .enumerate()
            .map(|(i, n)| (n.column, i..i + 1));
        let mut start = self.numeric.len();
        let categorical = self.categorical.iter().map(move |c| {
            let range = start..start + c.vocabulary.len();
            start = range.end;
            (c.column, range)
        });
        numeric.chain(categorical)
    }

    /// Step 1 only (no scaling), into `out` (of length [`Self::width`]).
    fn encode(&self, row: &UciSession, out: &mut [f64]) {
        for (slot, n) in out.iter_mut().zip(&self.numeric) {
            let v = n
                .column
                .numeric(row)
                .map(|x| n.transform.apply(x))
                .filter(|v| v.is_finite());
            *slot = v.unwrap_or(n.impute);
        }
        let mut start = self.numeric.len();
        for c in &self.categorical {
            let block = &mut out[start..start + c.vocabulary.len()];
            block.fill(0.0);
            if let Some(value) = c.column.category(row) {
                if let Ok(i) = c.vocabulary.binary_search_by(|v| v.as_str().cmp(&value)) {
                    block[i] = 1.0;
                }
            }
            start += c.vocabulary.len();
        }
    }

    /// The model input for `row`, into `out` (of length [`Self::width`]).
    pub fn transform_into(&self, row: &UciSession, out: &mut [f64]) {
        self.encode(row, out);
        for (x, s) in out.iter_mut().zip(&self.scaling) {
            *x = (*x - s.mean) / s.scale;
        }
    }

    /// The model input for `row`.
    pub fn transform(&self, row: &UciSession) -> Vec<f64> {
        let mut out = vec![0.0; self.width()];
        self.transform_into(row, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VisitorType;

    fn row(product_related: f64, month: u32, browser: Option<&str>) -> UciSession {
        UciSession {
            administrative: 0.0,
            administrative_duration: 0.0,
            informational: 0.0,
            informational_duration: 0.0,
            product_related,
            product_related_duration: 0.0,
            bounce_rates: 0.0,
            exit_rates: 0.0,
            page_values: 0.0,
            special_day: 0.0,
            month,
            operating_systems: None,
            browser: browser.map(str::to_owned),
            region: None,
            traffic_type: None,
            visitor_type: VisitorType::Returning,
            weekend: false,
        }
    }

    #[test]
    fn standardizes_log1p_columns_with_population_std() {
        let rows = [row(0.0, 2, Some("1")), row((1f64).exp_m1(), 2, Some("2"))];
        let spec = VectorizerSpec::fit(&VectorizerConfig::reference(), rows.iter());
        spec.validate().unwrap();
        let names = spec.feature_names();
        let pr = names.iter().position(|n| n == "ProductRelated").unwrap();
        // log1p values 0 and 1: mean 0.5, population std 0.5.
        assert_eq!(
            spec.scaling[pr],
            Scale {
                mean: 0.5,
                scale: 0.5
            }
        );
        assert_eq!(spec.transform(&rows[0])[pr], -1.0);
        assert!((spec.transform(&rows[1])[pr] - 1.0).abs() < 1e-15);
        // A constant column is centred, not divided by zero.
        let admin = names.iter().position(|n| n == "Administrative").unwrap();
        assert_eq!(spec.scaling[admin].scale, 1.0);
        assert_eq!(spec.transform(&rows[0])[admin], 0.0);
    }

    #[test]
    fn unseen_or_absent_categories_set_no_one_hot_column_and_bad_numbers_are_imputed() {
        let rows = [row(1.0, 2, Some("1")), row(3.0, 3, Some("2"))];
        let spec = VectorizerSpec::fit(&VectorizerConfig::reference(), rows.iter());
        let names = spec.feature_names();
        let b1 = names.iter().position(|n| n == "Browser=1").unwrap();
        let b2 = names.iter().position(|n| n == "Browser=2").unwrap();
        let unseen = spec.transform(&row(1.0, 2, Some("99")));
        let absent = spec.transform(&row(1.0, 2, None));
        for v in [&unseen, &absent] {
            // Both one-hot columns sit at their training "0" (mean 0.5, scale 0.5 → −1).
            assert_eq!((v[b1], v[b2]), (-1.0, -1.0));
        }
        let pr = names.iter().position(|n| n == "ProductRelated").unwrap();
        // log1p(−2) is NaN: imputed with the training mean, which scales to exactly 0.
        assert_eq!(spec.transform(&row(-2.0, 2, None))[pr], 0.0);
        assert_eq!(spec.transform(&row(f64::INFINITY, 2, None))[pr], 0.0);
    }

    #[test]
    fn validation_refuses_unknown_versions_and_bad_shapes() {
        let rows = [row(1.0, 2, Some("1")), row(3.0, 3, Some("2"))];
        let spec = VectorizerSpec::fit(&VectorizerConfig::reference(), rows.iter());
        let mut future = spec.clone();
        future.version = 2;
        assert_eq!(
            future.validate(),
            Err(SpecError::UnknownVersion { found: 2 })
        );
        let mut short = spec.clone();
        short.scaling.pop();
        assert!(matches!(short.validate(), Err(SpecError::Width { .. })));
        let mut zero = spec;
        zero.scaling[0].scale = 0.0;
        assert_eq!(zero.validate(), Err(SpecError::NotFinite(0)));
    }
}
