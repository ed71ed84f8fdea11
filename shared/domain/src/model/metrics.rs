//! Evaluation: ROC AUC, average precision, Brier score, log loss, a reliability table, and seeded stratified
//! splits.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// ROC AUC as the Mann–Whitney statistic, ties counted half (as scikit-learn's `roc_auc_score`).
/// `None` when one class is absent or a score is NaN.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the positives' (average, 1-based) ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&k| labels[k]).count();
        rank_sum += average_rank * tied_positives as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision as scikit-learn's `average_precision_score`: `Σₙ (Rₙ − Rₙ₋₁)·Pₙ` over the distinct
/// scores taken as thresholds, highest first (tied rows enter together, no interpolation). `None` when
/// there is no positive or a score is NaN.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut taken, mut hits, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let new_hits = order[i..=j].iter().filter(|&&k| labels[k]).count();
        taken += j - i + 1;
        hits += new_hits;
        ap += new_hits as f64 / positives as f64 * (hits as f64 / taken as f64);
        i = j + 1;
    }
    Some(ap)
}

/// One scored transaction for [`card_precision_at_k`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CardScore {
    pub day: i64,
    pub card: u64,
    pub score: f64,
    pub fraud: bool,
}

/// The fraud-detection handbook's card precision@k (Le Borgne et al., chapter 4.4): per day, each card's
/// highest score and whether any of its transactions that day was fraud; the share of compromised cards
/// among the `k` highest-scored cards (divided by `k` even on a day with fewer cards). Cards found
/// compromised on one day are left out of the later days, as the handbook does (an investigator has
/// already blocked them). Returns each day's precision, in day order, and their mean.
pub fn card_precision_at_k(rows: &[CardScore], k: usize) -> (Vec<(i64, f64)>, f64) {
    use std::collections::{BTreeMap, HashMap, HashSet};
    let mut days: BTreeMap<i64, HashMap<u64, (f64, bool)>> = BTreeMap::new();
    for r in rows {
        let card = days
            .entry(r.day)
            .or_default()
            .entry(r.card)
            .or_insert((r.score, r.fraud));
        card.0 = card.0.max(r.score);
        card.1 |= r.fraud;
    }
    let mut detected: HashSet<u64> = HashSet::new();
    let mut per_day = Vec::with_capacity(days.len());
    for (day, cards) in days {
        let mut ranked: Vec<(u64, f64, bool)> = cards
            .into_iter()
            .filter(|(card, _)| !detected.contains(card))
            .map(|(card, (score, fraud))| (card, score, fraud))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let hits: Vec<u64> = ranked.iter().take(k).filter(|c| c.2).map(|c| c.0).collect();
        per_day.push((day, hits.len() as f64 / k.max(1) as f64));
        detected.extend(hits);
    }
    let mean = per_day.iter().map(|d| d.1).sum::<f64>() / per_day.len().max(1) as f64;
    (per_day, mean)
}

/// Mean squared difference between the predicted probability and the outcome.
pub fn brier(probabilities: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum();
    sum / probabilities.len().max(1) as f64
}

/// Mean negative log-likelihood, with probabilities clipped to `[1e-15, 1 − 1e-15]`.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -if y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    sum / probabilities.len().max(1) as f64
}

/// One bin of a reliability table: predictions in `[lower, upper)` (the last bin includes 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Mean predicted probability in the bin (`None` when empty).
    pub mean_predicted: Option<f64>,
    /// Observed positive rate in the bin (`None` when empty).
    pub observed_rate: Option<f64>,
}

/// Equal-width bins over `[0, 1]`.
pub fn reliability(probabilities: &[f64], labels: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0u64, 0.0, 0u64); bins];
    for (&p, &y) in probabilities.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += p;
        acc[b].2 += u64::from(y);
    }
    acc.into_iter()
        .enumerate()
        .map(|(i, (count, sum, hits))| {
            let mean = |x: f64| (count > 0).then(|| x / count as f64);
            ReliabilityBin {
                lower: i as f64 / bins as f64,
                upper: (i + 1) as f64 / bins as f64,
                count,
                mean_predicted: mean(sum),
                observed_rate: mean(hits as f64),
            }
        })
        .collect()
}

/// Each class's row indices (negatives, then positives), shuffled with one generator seeded by `seed`.
fn shuffled_by_class(labels: &[bool], seed: u64) -> [Vec<usize>; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    [false, true].map(|class| {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        members
    })
}

/// Assigns each row to one of `k` folds, keeping the class balance: each class is shuffled with the seed
/// and dealt round-robin. The same seed and labels always give the same folds (with this build's locked
/// `rand`).
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(1);
    let mut fold = vec![0; labels.len()];
    for (dealt, i) in shuffled_by_class(labels, seed)
        .into_iter()
        .flatten()
        .enumerate()
    {
        fold[i] = dealt % k;
    }
    fold
}

/// A stratified holdout: `true` for the rows held out (about `fraction` of each class).
pub fn stratified_holdout(labels: &[bool], fraction: f64, seed: u64) -> Vec<bool> {
    let mut held = vec![false; labels.len()];
    for members in shuffled_by_class(labels, seed) {
        let take = (members.len() as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
        for &i in &members[..take] {
            held[i] = true;
        }
    }
    held
}

/// The wall time of each of `calls` calls of `f` (given the call's index), in nanoseconds, sorted: the
/// benchmarks' per-call latencies, read with [`quantile`]. One clock read on each side of each call.
pub fn per_call_ns(calls: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    let mut ns: Vec<f64> = (0..calls)
        .map(|i| {
            let t = std::time::Instant::now();
            f(i);
            t.elapsed().as_nanos() as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    ns
}

/// The `q`-quantile (0..=1) of `sorted`, by the nearest-rank method.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half_and_needs_both_classes() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, true]), None);
        assert_eq!(roc_auc(&[f64::NAN, 0.9], &[true, false]), None);
    }

    /// A second implementation of average precision, from its definition: the precision at each positive's
    /// rank, ties resolved by letting the whole tied group in at once.
    fn ap_by_definition(scores: &[f64], labels: &[bool]) -> f64 {
        let positives = labels.iter().filter(|&&l| l).count() as f64;
        let mut sum = 0.0;
        for (i, _) in labels.iter().enumerate().filter(|(_, &l)| l) {
            let at_or_above = |j: usize| scores[j] >= scores[i];
            let taken = (0..scores.len()).filter(|&j| at_or_above(j)).count() as f64;
            let hits = (0..scores.len())
                .filter(|&j| at_or_above(j) && labels[j])
                .count() as f64;
            sum += hits / taken;
        }
        sum / positives
    }

    #[test]
    fn average_precision_matches_its_definition_and_scikit_learn() {
        // scikit-learn 1.x: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 5.0 / 6.0).abs() < 1e-15);
        assert_eq!(average_precision(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(average_precision(&[0.1, 0.9], &[false, false]), None);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            use rand::RngExt;
            let n = rng.random_range(2..60);
            let scores: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0..8u8)))
                .collect();
            let labels: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
            if !labels.contains(&true) {
                continue;
            }
            let ap = average_precision(&scores, &labels).unwrap();
            assert!((ap - ap_by_definition(&scores, &labels)).abs() < 1e-12);
        }
    }

    #[test]
    fn card_precision_takes_each_cards_maximum_and_drops_detected_cards() {
        let row = |day, card, score, fraud| CardScore {
            day,
            card,
            score,
            fraud,
        };
        let rows = [
            // Day 0: card 1 (fraud) scores 0.9 on its second transaction; card 2 is genuine.
            row(0, 1, 0.2, false),
            row(0, 1, 0.9, true),
            row(0, 2, 0.8, false),
            row(0, 3, 0.1, true),
            // Day 1: card 1 again at the top, but it was caught on day 0, so card 3 (0.7) and 2 rank.
            row(1, 1, 0.99, true),
            row(1, 3, 0.7, true),
            row(1, 2, 0.6, false),
        ];
        let (days, mean) = card_precision_at_k(&rows, 2);
        assert_eq!(days, vec![(0, 0.5), (1, 0.5)]);
        assert_eq!(mean, 0.5);
        let (days, _) = card_precision_at_k(&rows, 1);
        assert_eq!(days, vec![(0, 1.0), (1, 1.0)]);
    }

    #[test]
    fn brier_log_loss_and_reliability() {
        let p = [0.0, 1.0, 0.25, 0.95];
        let y = [false, true, true, true];
        assert!((brier(&p, &y) - (0.5625 + 0.0025) / 4.0).abs() < 1e-15);
        assert!((log_loss(&[0.5, 0.5], &[true, false]) - std::f64::consts::LN_2).abs() < 1e-15);
        let table = reliability(&p, &y, 4);
        assert_eq!(
            table.iter().map(|b| b.count).collect::<Vec<_>>(),
            vec![1, 1, 0, 2]
        );
        assert_eq!(table[3].mean_predicted, Some(0.975));
        assert_eq!(table[3].observed_rate, Some(1.0));
        assert_eq!(table[2].observed_rate, None);
    }

    #[test]
    fn folds_are_stratified_and_reproducible() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 7 == 0).collect();
        let folds = stratified_folds(&labels, 5, 42);
        assert_eq!(folds, stratified_folds(&labels, 5, 42));
        assert_ne!(folds, stratified_folds(&labels, 5, 43));
        for f in 0..5 {
            let rows = folds.iter().filter(|&&x| x == f).count();
            let pos = (0..1000).filter(|&i| folds[i] == f && labels[i]).count();
            assert_eq!(rows, 200);
            assert!((28..=30).contains(&pos), "fold {f}: {pos} positives");
        }
        let held = stratified_holdout(&labels, 0.2, 7);
        assert_eq!(held.iter().filter(|&&h| h).count(), 200);
        assert_eq!((0..1000).filter(|&i| held[i] && labels[i]).count(), 29);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
