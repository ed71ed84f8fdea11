//! The cross-sell trade-off of bounding co-occurrence: the engine's cross-sell suggestions from item
//! features built on the REES46 file's first sessions, scored on the later ones.
//!
//! Sessions are split by their first event: the first two thirds build the item features, the last
//! third is held out. For every held-out session, at each product it views (but the last), the suggestions are what the
//! engine would offer for that product alone ([`cross_sell_for`], at most three); a hit is a suggestion
//! the shopper views later in the same session. Each co-view window is compared on the same split, with
//! the number of pair counts it keeps (what the feature updater writes).

use crate::{replay::rees46_records, BoxError};
use checkout_domain::decision::engine::cross_sell_for;
use checkout_domain::event::EventBody;
use checkout_domain::features::rebuild::{aggregate, Contributions};
use checkout_domain::features::session::fold_with;
use checkout_domain::features::{Doc, ItemFeatures};
use checkout_domain::ingest::LogEntry;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One window's reading.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReading {
    /// `None`: every pair of a session (unbounded).
    pub window: Option<usize>,
    /// Pair counts (co-viewed and co-purchased) in the training part: items the updater keeps.
    pub pair_counts: usize,
    /// Pair memberships summed over the training sessions: pair-count changes the updater writes.
    pub pair_memberships: usize,
    /// Held-out views (not a session's last) at which a suggestion could be made.
    pub trials: usize,
    /// Of those, with at least one suggestion.
    pub with_suggestions: usize,
    pub hits: usize,
    /// Hits over trials.
    pub hit_rate: f64,
    /// A 95% Wilson interval of the hit rate.
    pub hit_rate_interval: (f64, f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct CrossSellBench {
    pub train_sessions: usize,
    pub test_sessions: usize,
    pub windows: Vec<WindowReading>,
}

fn wilson(hits: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (hits as f64, n as f64, 1.96f64);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / d;
    (c - h, c + h)
}

/// Runs the benchmark for each window.
pub fn run(file: &Path, windows: &[Option<usize>]) -> Result<CrossSellBench, BoxError> {
    let (records, _) = rees46_records(file, None, None)?;
    let mut by_session: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
    for r in &records {
        let event = checkout_domain::event::Event::decode(&r.data, usize::MAX)
            .map_err(|e| e.to_string())?;
        let entry = LogEntry::of(&event, 4_000_000_000)?;
        by_session
            .entry(entry.session_id.clone())
            .or_default()
            .push(entry);
    }
    // Sessions in order of their first event; the first two thirds train, the last third is held out.
    let mut sessions: Vec<(String, &Vec<LogEntry>)> = by_session
        .values()
        .filter_map(|es| {
            es.iter()
                .map(|e| e.occurred_at.clone())
                .min()
                .map(|t| (t, es))
        })
        .collect();
    sessions.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1[0].session_id.cmp(&b.1[0].session_id))
    });
    let cut = sessions.len() * 2 / 3;
    let train: Vec<&Vec<LogEntry>> = sessions[..cut].iter().map(|(_, es)| *es).collect();
    let test: Vec<&Vec<LogEntry>> = sessions[cut..].iter().map(|(_, es)| *es).collect();
    // The held-out sessions' products in order of first view.
    let sequences: Vec<Vec<String>> = test
        .iter()
        .map(|es| {
            let mut events: Vec<_> = es.iter().filter_map(|e| e.event().ok()).collect();
            events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
            let mut seen = Vec::new();
            for e in events {
                if let EventBody::ProductViewed(p) = e.body {
                    if !seen.contains(&p.product_id) {
                        seen.push(p.product_id);
                    }
                }
            }
            seen
        })
        .filter(|s| s.len() >= 2)
        .collect();
    let mut readings = Vec::new();
    for window in windows {
        let mut items = Vec::new();
        for es in &train {
            if let (Some(p), _) = fold_with(es, *window) {
                items.extend(p.items);
            }
        }
        let pair_memberships = items
            .iter()
            .map(|c| c.co_viewed.len() + c.co_purchased.len())
            .sum();
        let docs = aggregate(Contributions {
            items,
            ..Contributions::default()
        });
        let mut features: HashMap<String, ItemFeatures> = HashMap::new();
        let mut pair_counts = 0;
        for doc in docs.into_values() {
            match doc {
                Doc::Item(i) => {
                    features.insert(i.product_id.clone(), i);
                }
                Doc::ItemPair(_) => pair_counts += 1,
                _ => {}
            }
        }
        let (mut trials, mut with_suggestions, mut hits) = (0, 0, 0);
        for seq in &sequences {
            for (i, p) in seq.iter().enumerate().take(seq.len() - 1) {
                trials += 1;
                let Some(f) = features.get(p) else { continue };
                let suggestions = cross_sell_for(&[p.as_str()], std::slice::from_ref(f));
                if suggestions.is_empty() {
                    continue;
                }
                with_suggestions += 1;
                if suggestions.iter().any(|s| seq[i + 1..].contains(s)) {
                    hits += 1;
                }
            }
        }
        readings.push(WindowReading {
            window: *window,
            pair_counts,
            pair_memberships,
            trials,
            with_suggestions,
            hits,
            hit_rate: hits as f64 / trials.max(1) as f64,
            hit_rate_interval: wilson(hits, trials),
        });
    }
    Ok(CrossSellBench {
        train_sessions: train.len(),
        test_sessions: test.len(),
        windows: readings,
    })
}

#[cfg(test)]
mod tests {
    use super::wilson;

    /// Against the published 95% Wilson score intervals of Newcombe (1998), "Two-sided confidence
    /// intervals for the single proportion", table I (81/263, 15/148, 0/20, 1/29), to four decimals.
    #[test]
    fn the_wilson_interval_matches_published_values() {
        let round = |(a, b): (f64, f64)| ((a * 1e4).round() / 1e4, (b * 1e4).round() / 1e4);
        assert_eq!(round(wilson(81, 263)), (0.2553, 0.3662));
        assert_eq!(round(wilson(15, 148)), (0.0624, 0.1605));
        assert_eq!(round(wilson(0, 20)), (0.0, 0.1611));
        assert_eq!(round(wilson(1, 29)), (0.0061, 0.1718));
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
