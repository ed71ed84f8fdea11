//! The decision configuration (policy, experiments, kill switch): one JSON document in the object store,
//! read through a per-container cache with a TTL.
//!
//! ```json
//! {"format": "checkout-ai.decision-config", "format_version": 1,
//!  "kill_switch": false, "default_arm": "control", "response_ttl_seconds": 300,
//!  "policy": {...PolicyConfig...}, "experiments": [{...Experiment...}]}
//! ```
//!
//! **Cache.** The document is re-read at most once per TTL, on the first request after it lapses, within a
//! fetch budget. An unchanged ETag keeps the parsed config. A failed or timed-out read, or a document that
//! does not validate, keeps the last good config (logged; retried after the next TTL). A missing document
//! means the defaults: no experiments, kill switch off, every unit on `default_arm` (control). So flipping
//! `kill_switch` takes effect in every container within one TTL plus one fetch.

use super::policy::{Arm, PolicyConfig};
use crate::experiment::config::Experiment;
use crate::experiment::holdout::UniversalHoldout;
use crate::ports::ObjectStore;
use crate::ports::StoreError;
use crate::recovery::RecoveryConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub const CONFIG_FORMAT: &str = "checkout-ai.decision-config";
pub const CONFIG_FORMAT_VERSION: u32 = 1;
/// Where the document lives in the models bucket unless configured otherwise.
pub const DEFAULT_CONFIG_KEY: &str = "config/decisions.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    pub format: String,
    pub format_version: u32,
    /// Forces every decision to control (no intervention), outside any experiment.
    #[serde(default)]
    pub kill_switch: bool,
    /// The arm of a unit that no live experiment takes (and of requests without a user id).
    #[serde(default = "control")]
    pub default_arm: Arm,
    /// How long the storefront may reuse a decision.
    #[serde(default = "five_minutes")]
    pub response_ttl_seconds: u32,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub experiments: Vec<Experiment>,
    /// Abandoned-cart recovery: the holdout, channels, caps, quiet hours and consent.
    #[serde(default)]
    pub recovery: RecoveryConfig,
    /// Fraud-resilient gating at `checkout`.
    #[serde(default)]
    pub risk: super::gate::RiskConfig,
    /// The manual-review queue: deadline, escalation, default decision.
    #[serde(default)]
    pub review: crate::features::review::ReviewConfig,
    /// The universal holdout: a share of users that never receives any treatment (5% by default).
    #[serde(default)]
    pub holdout: UniversalHoldout,
}

fn control() -> Arm {
    Arm::Control
}

fn five_minutes() -> u32 {
    300
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            format: CONFIG_FORMAT.into(),
            format_version: CONFIG_FORMAT_VERSION,
            kill_switch: false,
            default_arm: Arm::Control,
            response_ttl_seconds: five_minutes(),
            policy: PolicyConfig::default(),
            experiments: Vec::new(),
            recovery: RecoveryConfig::default(),
            risk: super::gate::RiskConfig::default(),
            review: crate::features::review::ReviewConfig::default(),
            holdout: UniversalHoldout::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid decision config: {0}")]
pub struct InvalidConfig(pub String);

impl DecisionConfig {
    /// Every experiment the config defines: its `experiments` and the recovery holdout's.
    pub fn all_experiments(&self) -> Vec<Experiment> {
        let mut all = self.experiments.clone();
        all.push(self.recovery.experiment());
        all
    }

    /// Parses and validates a document.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidConfig> {
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| InvalidConfig(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let fail = |m: String| Err(InvalidConfig(m));
        if self.format != CONFIG_FORMAT || self.format_version != CONFIG_FORMAT_VERSION {
            return fail(format!(
                "format {} v{} (this build reads {CONFIG_FORMAT} v{CONFIG_FORMAT_VERSION})",
                self.format, self.format_version
            ));
        }
        self.review.validate().map_err(InvalidConfig)?;
        let p = &self.policy;
        let share = |x: f64| (0.0..=1.0).contains(&x);
        let u = &p.uplift;
        if !share(p.epsilon) || !share(p.margin_floor) || !share(p.assumed_margin_ratio) {
            return fail(
                "policy.epsilon, margin_floor and assumed_margin_ratio must be in [0, 1]".into(),
            );
        }
        if ![
            u.free_shipping,
            u.express_checkout,
            u.reminder,
            u.cross_sell,
            u.simplified_form,
            u.guest_checkout_first,
            u.wallet_first,
            u.recovery_reminder,
        ]
        .into_iter()
        .all(share)
            || !share(u.per_discount_percent * 100.0)
        {
            return fail("policy.uplift values must be shares in [0, 1]".into());
        }
        if p.max_discount_percent > 100 || p.discount_steps.iter().any(|&s| s == 0 || s > 100) {
            return fail("discount percentages must be in 1..=100".into());
        }
        if p.shipping_cost_minor < 0 || p.message_cost_minor < 0 || p.rules_version.is_empty() {
            return fail(
                "policy.shipping_cost_minor and message_cost_minor must be ≥ 0 and rules_version set"
                    .into(),
            );
        }
        if let Some(problem) = self.recovery.problem() {
            return fail(problem);
        }
        let mut ids = BTreeSet::from([&self.recovery.experiment_id, &self.holdout.id]);
        if !valid_id(&self.recovery.experiment_id) {
            return fail("recovery.experiment_id is not a valid experiment id".into());
        }
        if let Some(problem) = self.holdout.problem() {
            return fail(problem);
        }
        if !valid_id(&self.holdout.id) || ids.len() < 2 {
            return fail(
                "holdout.id must be a valid experiment id, different from recovery.experiment_id"
                    .into(),
            );
        }
        for e in &self.experiments {
            if e.placement == crate::placement::Placement::Recovery {
                return fail(format!(
                    "experiment `{}`: the recovery placement's experiment is the `recovery` section's holdout",
                    e.id
                ));
            }
            let at = |m: &str| fail(format!("experiment `{}`: {m}", e.id));
            if !valid_id(&e.id) || !ids.insert(&e.id) {
                return at(
                    "ids must be unique (also against recovery.experiment_id and holdout.id), 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-' \
                     (they name report keys and feature partitions)",
                );
            }
            let distinct: BTreeSet<_> = e.variations.iter().collect();
            if e.variations.len() < 2 || distinct.len() != e.variations.len() {
                return at("needs at least two distinct variations (the first is control)");
            }
            if let Some(w) = &e.weights {
                let sum: f64 = w.iter().sum();
                if w.len() != e.variations.len()
                    || w.iter().any(|x| !share(*x))
                    || (sum - 1.0).abs() > 1e-6
                {
                    return at("weights must be one share per variation, summing to 1");
                }
            }
            if !share(e.coverage) || !matches!(e.hash_version, 1 | 2) {
                return at("coverage must be in [0, 1] and hash_version 1 or 2");
            }
            if let (Some(s), Some(end)) = (e.start, e.end) {
                if end <= s {
                    return at("end must be after start");
                }
            }
        }
        Ok(())
    }

    /// Whether `self` may replace `previous`: each is valid, and the universal holdout is not reshuffled
    /// ([`UniversalHoldout::change_problem`]).
    pub fn check_change(&self, previous: &DecisionConfig) -> Result<(), InvalidConfig> {
        self.validate()?;
        match self.holdout.change_problem(&previous.holdout) {
            Some(problem) => Err(InvalidConfig(problem)),
            None => Ok(()),
        }
    }
}

/// An experiment id: safe in an S3 key and a DynamoDB partition key.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && id != "."
        && id != ".."
}

/// Why the stored config could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    #[error("the decision config changed while it was being edited; run the command again")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the stored config (the defaults when there is none), applies `edit`, validates and writes it back
/// only if nobody changed it meanwhile (`If-Match` on the ETag read, `If-None-Match` when absent).
pub async fn update_config(
    store: &impl ObjectStore,
    key: &str,
    edit: impl FnOnce(&mut DecisionConfig),
) -> Result<DecisionConfig, UpdateError> {
    use crate::ports::{Condition, PutError};
    let current = store.get(key).await?;
    let (mut config, condition) = match current {
        Some(o) => (
            DecisionConfig::decode(&o.bytes)?,
            Condition::Matches(o.etag),
        ),
        None => (DecisionConfig::default(), Condition::Absent),
    };
    let previous = config.clone();
    edit(&mut config);
    config.check_change(&previous)?;
    match store.put(key, config.encode(), condition).await {
        Ok(()) => Ok(config),
        Err(PutError::Precondition) => Err(UpdateError::Raced),
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// Where the config in use came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ConfigOrigin {
    /// No document was ever read (none exists yet, or the store has not answered since cold start).
    Defaults,
    Store {
        etag: String,
    },
}

/// The config a request uses, and where it came from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: Arc<DecisionConfig>,
    pub origin: ConfigOrigin,
    /// The last refresh error, if the last refresh failed (the config is then the last good one).
    pub stale_because: Option<String>,
}

struct State {
    snapshot: Snapshot,
    checked_at: Option<Instant>,
}

/// The per-container cache of the decision config.
pub struct ConfigCache<S> {
    store: S,
    key: String,
    ttl: Duration,
    fetch_budget: Duration,
    state: Mutex<State>,
}

impl<S: ObjectStore> ConfigCache<S> {
    pub fn new(store: S, key: impl Into<String>, ttl: Duration, fetch_budget: Duration) -> Self {
        Self {
            store,
            key: key.into(),
            ttl,
            fetch_budget,
            state: Mutex::new(State {
                snapshot: Snapshot {
                    config: Arc::new(DecisionConfig::default()),
                    origin: ConfigOrigin::Defaults,
                    stale_because: None,
                },
                checked_at: None,
            }),
        }
    }

    /// The store the config is read from.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The config to use now, refreshed first if the TTL has lapsed.
    pub async fn current(&self) -> Snapshot {
        let (due, etag) = {
            let st = self.lock();
            let due = st.checked_at.is_none_or(|t| t.elapsed() >= self.ttl);
            let etag = match &st.snapshot.origin {
                ConfigOrigin::Store { etag } => Some(etag.clone()),
                ConfigOrigin::Defaults => None,
            };
            (due, etag)
        };
        if due {
            self.refresh(etag).await;
        }
        self.lock().snapshot.clone()
    }

    async fn refresh(&self, etag: Option<String>) {
        let fetched = match tokio::time::timeout(self.fetch_budget, self.store.get(&self.key)).await
        {
            Ok(result) => result,
            Err(_) => Err(StoreError {
                operation: "GetObject",
                retryable: true,
                source: format!("no answer within {:?}", self.fetch_budget).into(),
            }),
        };
        let mut st = self.lock();
        st.checked_at = Some(Instant::now());
        match fetched {
            Ok(Some(object)) if Some(&object.etag) == etag.as_ref() => {
                st.snapshot.stale_because = None;
            }
            Ok(Some(object)) => match DecisionConfig::decode(&object.bytes) {
                Ok(config) => {
                    tracing::info!(key = %self.key, etag = %object.etag, kill_switch = config.kill_switch,
                        experiments = config.experiments.len(), "decision config loaded");
                    st.snapshot = Snapshot {
                        config: Arc::new(config),
                        origin: ConfigOrigin::Store { etag: object.etag },
                        stale_because: None,
                    };
                }
                Err(e) => {
                    tracing::error!(key = %self.key, error = %e, "decision config refused; keeping the last good one");
                    st.snapshot.stale_because = Some(e.to_string());
                }
            },
            Ok(None) => {
                if st.snapshot.origin != ConfigOrigin::Defaults {
                    tracing::warn!(key = %self.key, "decision config deleted; using the defaults");
                }
                st.snapshot = Snapshot {
                    config: Arc::new(DecisionConfig::default()),
                    origin: ConfigOrigin::Defaults,
                    stale_because: None,
                };
            }
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "decision config unreadable; keeping the last good one");
                st.snapshot.stale_because = Some(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryObjectStore;
    use std::sync::atomic::Ordering;

    fn doc(kill: bool) -> Vec<u8> {
        DecisionConfig {
            kill_switch: kill,
            ..DecisionConfig::default()
        }
        .encode()
    }

    #[test]
    fn invalid_documents_are_refused_with_the_reason() {
        let base = serde_json::json!({"format": CONFIG_FORMAT, "format_version": 1});
        assert!(DecisionConfig::decode(base.to_string().as_bytes()).is_ok());
        let cases = [
            (serde_json::json!({"format_version": 2}), "format"),
            (serde_json::json!({"kill_switsh": true}), "unknown field"),
            (
                serde_json::json!({"experiments": [{"id": "e", "variations": ["a"], "placement": "cart", "status": "running"}]}),
                "two distinct variations",
            ),
            (
                serde_json::json!({"experiments": [{"id": "e", "variations": ["a", "b"], "weights": [0.7, 0.7], "placement": "cart", "status": "running"}]}),
                "weights",
            ),
            (
                serde_json::json!({"experiments": [{"id": "a/../b", "variations": ["a", "b"], "placement": "cart", "status": "running"}]}),
                "ids must be unique",
            ),
            (
                serde_json::json!({"experiments": [{"id": "cart-recovery", "variations": ["a", "b"], "placement": "cart", "status": "running"}]}),
                "also against recovery.experiment_id",
            ),
            (
                serde_json::json!({"experiments": [{"id": "r", "variations": ["a", "b"], "placement": "recovery", "status": "running"}]}),
                "the recovery placement's experiment is the `recovery` section's holdout",
            ),
            (
                serde_json::json!({"recovery": {"holdout": 0.0}}),
                "without a holdout",
            ),
            (
                serde_json::json!({"recovery": {"holdout": 0.6}}),
                "[0.01, 0.5]",
            ),
            (
                serde_json::json!({"recovery": {"default_time_zone": "Mars/Olympus_Mons"}}),
                "not an IANA time zone",
            ),
            (
                serde_json::json!({"recovery": {"quiet_start": "9pm"}}),
                "HH:MM",
            ),
            (
                serde_json::json!({"recovery": {"channels": []}}),
                "at least one channel",
            ),
            (
                serde_json::json!({"recovery": {"holdot": 0.1}}),
                "unknown field",
            ),
            (
                serde_json::json!({"policy": {"message_cost_minor": -1}}),
                "message_cost_minor",
            ),
        ];
        for (patch, expected) in cases {
            let mut v = base.clone();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            let err = DecisionConfig::decode(v.to_string().as_bytes()).unwrap_err();
            assert!(err.0.contains(expected), "{patch}: {err}");
        }
    }

    #[tokio::test]
    async fn updates_validate_and_detect_a_concurrent_edit() {
        let store = MemoryObjectStore::default();
        let on = update_config(&store, DEFAULT_CONFIG_KEY, |c| c.kill_switch = true)
            .await
            .unwrap();
        assert!(on.kill_switch);
        let stored = DecisionConfig::decode(&store.object(DEFAULT_CONFIG_KEY).unwrap()).unwrap();
        assert_eq!(stored, on);
        let bad = update_config(&store, DEFAULT_CONFIG_KEY, |c| c.policy.epsilon = 2.0).await;
        assert!(matches!(bad, Err(UpdateError::Invalid(_))));
        // Another writer lands between the read and the write.
        let raced = update_config(&store, DEFAULT_CONFIG_KEY, |c| {
            c.kill_switch = false;
            let other = DecisionConfig {
                response_ttl_seconds: 60,
                ..DecisionConfig::default()
            };
            store.insert(DEFAULT_CONFIG_KEY, other.encode());
        })
        .await;
        assert!(matches!(raced, Err(UpdateError::Raced)), "{raced:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_refreshes_once_per_ttl_and_keeps_the_last_good_config() {
        let store = MemoryObjectStore::default();
        store.insert(DEFAULT_CONFIG_KEY, doc(false));
        let ttl = Duration::from_secs(30);
        let cache = ConfigCache::new(&store, DEFAULT_CONFIG_KEY, ttl, Duration::from_millis(100));
        assert!(!cache.current().await.config.kill_switch);

        store.insert(DEFAULT_CONFIG_KEY, doc(true));
        tokio::time::advance(ttl / 2).await;
        assert!(!cache.current().await.config.kill_switch, "within the TTL");
        tokio::time::advance(ttl / 2).await;
        assert!(cache.current().await.config.kill_switch, "after one TTL");

        store.insert(DEFAULT_CONFIG_KEY, b"{not json".to_vec());
        tokio::time::advance(ttl).await;
        let s = cache.current().await;
        assert!(s.config.kill_switch, "the last good config is kept");
        assert!(s.stale_because.is_some());

        store.unreachable.store(true, Ordering::Relaxed);
        tokio::time::advance(ttl).await;
        let s = cache.current().await;
        assert!(s.config.kill_switch && s.stale_because.is_some());
    }
}
