//! The universal holdout: a persistent share of users that never receives any treatment from
//! checkout-ai (no incentive, no layout action, no recovery message), so that what the whole system adds
//! can be measured against them (the evaluator's impact report).
//!
//! **Assignment.** GrowthBook's hash (version 2) of the pseudonymous user id with the holdout's own seed:
//! a namespace of its own, independent of every experiment's, stable across sessions and devices for the
//! same user. A user is a member when the hash is below `share`.
//!
//! **Changing it.** Raising the share from zero starts the holdout. Any other change of the share moves
//! users who were treated into the holdout (or members out of it) and breaks the comparison, so it is
//! refused unless it comes with a re-randomisation: a new `seed` and a new `since`, after which the report
//! reads only units first seen since then ([`UniversalHoldout::change_problem`]).

use super::assign::hash;
use crate::event::{HOLDOUT_VARIANT, SERVED_VARIANT};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The default share held out.
pub const DEFAULT_SHARE: f64 = 0.05;
/// The largest share that may be held out: beyond it the system mostly measures instead of serving.
pub const MAX_SHARE: f64 = 0.5;
pub const DEFAULT_ID: &str = "universal-holdout";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniversalHoldout {
    /// The holdout's id: its experiment id in the units and the impact report's key.
    #[serde(default = "default_id")]
    pub id: String,
    /// The share of users held out, in `[0, 0.5]`; 0 turns the holdout off.
    #[serde(default = "default_share")]
    pub share: f64,
    /// The hash seed; the id unless set. A new seed re-randomises who is held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// When this randomisation began: decisions before it are not tagged, and the impact report reads
    /// units first seen since then. Unset: since the first tagged decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

fn default_id() -> String {
    DEFAULT_ID.into()
}

fn default_share() -> f64 {
    DEFAULT_SHARE
}

impl Default for UniversalHoldout {
    fn default() -> Self {
        Self {
            id: default_id(),
            share: DEFAULT_SHARE,
            seed: None,
            since: None,
        }
    }
}

impl UniversalHoldout {
    fn seed(&self) -> &str {
        self.seed.as_deref().unwrap_or(&self.id)
    }

    /// Whether decisions at `now` are split by the holdout.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.share > 0.0 && self.since.is_none_or(|s| now >= s)
    }

    /// Whether the unit is held out (whatever the time).
    pub fn is_member(&self, unit: &str) -> bool {
        hash(self.seed(), unit, 2).is_some_and(|n| n < self.share)
    }

    /// The unit's arm at `now` (`holdout` or `served`), or `None` while the holdout is not active.
    pub fn arm(&self, unit: &str, now: DateTime<Utc>) -> Option<&'static str> {
        self.active(now).then(|| {
            if self.is_member(unit) {
                HOLDOUT_VARIANT
            } else {
                SERVED_VARIANT
            }
        })
    }

    /// Whether the unit gets no treatment at `now`.
    pub fn holds_out(&self, unit: &str, now: DateTime<Utc>) -> bool {
        self.arm(unit, now) == Some(HOLDOUT_VARIANT)
    }

    /// What is wrong with the settings on their own, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(0.0..=MAX_SHARE).contains(&self.share) {
            return Some(format!(
                "holdout.share {} must be in [0, {MAX_SHARE}] (0 turns the universal holdout off)",
                self.share
            ));
        }
        if self.seed.as_deref() == Some("") {
            return Some("holdout.seed must not be empty".into());
        }
        None
    }

    /// What is wrong with changing `previous` into `self`, if anything. While the holdout runs, a new
    /// share moves users between the holdout and the served, and a new seed reshuffles them: either
    /// needs a re-randomisation, a new seed and a new `since` together (the report then reads only
    /// units first seen since then). Starting from zero, turning it off, and a new id (a new holdout,
    /// with units and reports of its own) are allowed.
    pub fn change_problem(&self, previous: &UniversalHoldout) -> Option<String> {
        if previous.share == 0.0 || self.share == 0.0 || self.id != previous.id {
            return None;
        }
        let reseeded = self.seed() != previous.seed();
        let restarted = self.since.is_some() && self.since != previous.since;
        if reseeded && restarted {
            return None;
        }
        let fix = "Either keep the share and seed, turn it off (0), or re-randomise: set a new holdout.seed \
                   and a new holdout.since together (docs/experiments.md, \"The universal holdout\")";
        if self.share != previous.share {
            Some(format!(
                "holdout.share {} → {}: changing the share of a running universal holdout moves users \
                 between the holdout and the served, which breaks the comparison. {fix}",
                previous.share, self.share
            ))
        } else if reseeded {
            Some(format!(
                "holdout.seed {} → {}: a new seed reshuffles who is held out, so units first seen before \
                 it would be read with those after it. {fix}",
                previous.seed(),
                self.seed()
            ))
        } else {
            None
        }
    }

    /// The settings with the seed written out (the id when unset): what a report records of the
    /// randomisation it read.
    pub fn randomisation(&self) -> UniversalHoldout {
        UniversalHoldout {
            seed: Some(self.seed().to_string()),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_stable_and_near_the_share() {
        let h = UniversalHoldout::default();
        let now = Utc::now();
        let members = (0..40_000)
            .filter(|i| {
                let unit = format!("user-{i}");
                assert_eq!(h.is_member(&unit), h.is_member(&unit));
                h.holds_out(&unit, now)
            })
            .count();
        // 5% of 40,000 is 2,000, with a standard deviation of about 44.
        assert!((1_850..=2_150).contains(&members), "{members} held out");
    }

    #[test]
    fn the_holdout_is_independent_of_an_experiment_with_the_same_units() {
        use crate::experiment::assign::{bucket_ranges, choose_variation};
        let h = UniversalHoldout::default();
        let ranges = bucket_ranges(2, 1.0, None);
        let mut counts = [[0u32; 2]; 2];
        for i in 0..40_000 {
            let unit = format!("user-{i}");
            let v = choose_variation(hash("checkout-offers", &unit, 2).unwrap(), &ranges).unwrap();
            counts[usize::from(h.is_member(&unit))][v] += 1;
        }
        // Held-out users split between the experiment's arms as everyone does.
        let share = f64::from(counts[1][1]) / f64::from(counts[1][0] + counts[1][1]);
        assert!((0.46..=0.54).contains(&share), "{counts:?}");
    }

    #[test]
    fn inactive_before_since_and_at_share_zero() {
        let now = Utc::now();
        let later = UniversalHoldout {
            since: Some(now + chrono::Duration::days(1)),
            ..UniversalHoldout::default()
        };
        assert_eq!(later.arm("u", now), None);
        let off = UniversalHoldout {
            share: 0.0,
            ..UniversalHoldout::default()
        };
        assert_eq!(off.arm("u", now), None);
        assert!(!off.holds_out("u", now));
    }

    #[test]
    fn only_a_start_from_zero_or_a_rerandomisation_may_change_the_share() {
        let now = Utc::now();
        let running = UniversalHoldout::default();
        let off = UniversalHoldout {
            share: 0.0,
            ..running.clone()
        };
        let wider = UniversalHoldout {
            share: 0.10,
            ..running.clone()
        };
        assert_eq!(wider.change_problem(&off), None, "starting from zero");
        assert_eq!(off.change_problem(&running), None, "turning it off");
        assert!(wider.change_problem(&running).is_some(), "a reshuffle");
        let new_seed = UniversalHoldout {
            seed: Some("holdout-2027".into()),
            ..wider.clone()
        };
        assert!(
            new_seed.change_problem(&running).is_some(),
            "a new seed needs a new since"
        );
        let rerandomised = UniversalHoldout {
            since: Some(now),
            ..new_seed
        };
        assert_eq!(rerandomised.change_problem(&running), None);
        let reseeded_only = UniversalHoldout {
            seed: Some("holdout-2027".into()),
            ..running.clone()
        };
        assert!(
            reseeded_only.change_problem(&running).is_some(),
            "the same share under a new seed reshuffles too"
        );
        assert_eq!(
            running.randomisation().change_problem(&running),
            None,
            "the seed written out is the same seed"
        );
        let renamed = UniversalHoldout {
            id: "holdout-2027".into(),
            share: 0.10,
            ..running.clone()
        };
        assert_eq!(renamed.change_problem(&running), None, "a new holdout");
        assert!(UniversalHoldout {
            share: 0.6,
            ..running.clone()
        }
        .problem()
        .is_some());
    }
}
