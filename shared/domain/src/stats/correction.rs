//! Multiple-comparison corrections of a family of p-values (every arm against control, for every
//! metric): Holm-Bonferroni (family-wise error rate) and Benjamini-Hochberg (false discovery rate).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// No correction: each comparison at level alpha.
    None,
    /// Holm's step-down procedure: controls the family-wise error rate, uniformly more powerful than
    /// Bonferroni.
    Holm,
    /// Benjamini-Hochberg step-up procedure: controls the false discovery rate.
    BenjaminiHochberg,
}

impl std::str::FromStr for Correction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "holm" => Ok(Self::Holm),
            "bh" | "benjamini-hochberg" | "benjamini_hochberg" => Ok(Self::BenjaminiHochberg),
            other => Err(format!("unknown correction {other:?} (none, holm or bh)")),
        }
    }
}

/// The adjusted p-values, in the input's order. A comparison is significant at level alpha after the
/// correction exactly when its adjusted p-value is below alpha. NaN p-values are treated as 1.
pub fn adjust(p_values: &[f64], correction: Correction) -> Vec<f64> {
    let m = p_values.len();
    let p: Vec<f64> = p_values
        .iter()
        .map(|&p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]).then(i.cmp(&j)));
    let mut adjusted = vec![0.0; m];
    match correction {
        Correction::None => return p,
        Correction::Holm => {
            // p_(k) × (m − k + 1), made monotone from the smallest up.
            let mut running = 0.0_f64;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            // p_(k) × m / k, made monotone from the largest down.
            let mut running = 1.0_f64;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} != {b:?}");
        }
    }

    // Worked by hand from the definitions (these are also what R's p.adjust gives).
    const P: [f64; 6] = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04];

    #[test]
    fn holm_steps_down_and_stays_monotone() {
        // sorted: 0.005×6=0.03, 0.01×5=0.05, 0.03×4=0.12, 0.04×3=0.12, 0.04×2=0.08→0.12, 0.2×1=0.2
        close(
            &adjust(&P, Correction::Holm),
            &[0.05, 0.12, 0.12, 0.03, 0.2, 0.12],
        );
    }

    #[test]
    fn benjamini_hochberg_steps_up_and_stays_monotone() {
        // sorted: 0.005×6/1=0.03, 0.01×6/2=0.03, 0.03×6/3=0.06, 0.04×6/4=0.06, 0.04×6/5=0.048, 0.2×6/6=0.2
        // then the running minimum from the top: 0.2, 0.048, 0.048, 0.048, 0.03, 0.03
        close(
            &adjust(&P, Correction::BenjaminiHochberg),
            &[0.03, 0.048, 0.048, 0.03, 0.2, 0.048],
        );
    }

    #[test]
    fn none_keeps_the_p_values_and_nan_counts_as_one() {
        close(&adjust(&[0.2, f64::NAN], Correction::None), &[0.2, 1.0]);
        close(&adjust(&[f64::NAN, 0.01], Correction::Holm), &[1.0, 0.02]);
        assert!(adjust(&[], Correction::BenjaminiHochberg).is_empty());
    }

    #[test]
    fn a_single_comparison_is_unchanged_and_results_never_exceed_one() {
        close(&adjust(&[0.03], Correction::Holm), &[0.03]);
        close(&adjust(&[0.03], Correction::BenjaminiHochberg), &[0.03]);
        for c in [Correction::Holm, Correction::BenjaminiHochberg] {
            assert!(adjust(&[0.9, 0.8, 0.7], c).iter().all(|&p| p <= 1.0));
        }
    }

    proptest::proptest! {
        #[test]
        fn adjusted_values_are_at_least_the_raw_ones_and_holm_dominates_bh(
            p in proptest::collection::vec(0.0f64..=1.0, 1..40)
        ) {
            let holm = adjust(&p, Correction::Holm);
            let bh = adjust(&p, Correction::BenjaminiHochberg);
            for i in 0..p.len() {
                proptest::prop_assert!(holm[i] >= p[i] - 1e-15 && holm[i] <= 1.0);
                proptest::prop_assert!(bh[i] >= p[i] - 1e-15 && bh[i] <= 1.0);
                proptest::prop_assert!(holm[i] >= bh[i] - 1e-15);
            }
        }
    }
}
