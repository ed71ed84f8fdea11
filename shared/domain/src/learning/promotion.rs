//! Promoting a learned policy: only on an offline win, or by a recorded override.
//!
//! The rule: the challenger's doubly robust **lower** 95% bound must beat the champion's doubly robust
//! **estimate**, both on the same held-out decisions with the same reward model (the challenger's outcome
//! models) and the same bootstrap seed. With no learned champion yet, the champion is the configured-uplift
//! policy (the cold-start policy). The pointer and the record follow the model registry's rules:
//! immutable versions, `If-Match` on the pointer, and a record for every attempt, promoted or not.

use super::dataset::TrainingRow;
use super::targets::{ope_rows, Target};
use crate::decision::learned::PolicyArtifact;
use crate::decision::policy::PolicyConfig;
use crate::model::registry::{
    champion_pointer, conclude, fetch_version, load_version_of, promotion_key, Decision, Promotion,
    RegistryError, REGISTRY_FORMAT_VERSION,
};
use crate::ope::{evaluate, Settings};
use crate::ports::ObjectStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyContender {
    /// `name@version`, or `configured-uplift@<rules>`.
    pub policy: String,
    pub dr: f64,
    pub dr_lower: f64,
    pub dr_upper: f64,
    pub effective_sample_size: f64,
    pub unsupported_share: f64,
}

/// What the comparison was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub rows: usize,
    pub data_sha256: String,
    pub reward_model: String,
    pub resamples: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyPromotionRecord {
    pub format_version: u32,
    pub name: String,
    pub decided_at: DateTime<Utc>,
    pub challenger: PolicyContender,
    pub champion: PolicyContender,
    pub held_out: HeldOut,
    pub decision: Decision,
    pub pointer_moved: bool,
    pub record_key: String,
}

/// The rule (see the module docs); an override promotes anyway and says why.
pub fn decide(
    challenger: &PolicyContender,
    champion: &PolicyContender,
    override_reason: Option<&str>,
) -> Decision {
    if challenger.policy == champion.policy {
        return Decision::verdict(
            false,
            format!("{} is already the champion", challenger.policy),
        );
    }
    let (lower, estimate) = (challenger.dr_lower, champion.dr);
    if lower.is_finite() && estimate.is_finite() && lower > estimate {
        return Decision::verdict(
            true,
            format!("challenger DR lower bound {lower:.2} > champion DR estimate {estimate:.2}"),
        );
    }
    Decision::refused(
        format!(
            "challenger DR lower bound {lower:.2} does not beat champion DR estimate {estimate:.2}"
        ),
        override_reason,
    )
}

/// Evaluates one target on the held-out rows.
pub fn contender(
    rows: &[TrainingRow],
    target: &Target<'_>,
    reward_model: &PolicyArtifact,
    settings: Settings,
) -> PolicyContender {
    let (ope, _) = ope_rows(rows, target, Some(reward_model));
    let e = evaluate(&ope, settings);
    let dr = e.get("dr").cloned();
    PolicyContender {
        policy: target.name(),
        dr: dr.as_ref().map_or(f64::NAN, |d| d.value),
        dr_lower: dr.as_ref().map_or(f64::NAN, |d| d.lower),
        dr_upper: dr.as_ref().map_or(f64::NAN, |d| d.upper),
        effective_sample_size: e.diagnostics.effective_sample_size,
        unsupported_share: e.diagnostics.unsupported_share,
    }
}

/// Compares a published challenger with the champion (or the configured policy) on `held_out`, moves the
/// pointer when the rule allows, and writes the record either way.
#[allow(clippy::too_many_arguments)]
pub async fn promote(
    store: &impl ObjectStore,
    name: &str,
    challenger_version: &str,
    held_out: &[TrainingRow],
    configured: &PolicyConfig,
    override_reason: Option<&str>,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<PolicyPromotionRecord, RegistryError> {
    let (challenger, sha256) =
        fetch_version::<PolicyArtifact>(store, name, challenger_version).await?;
    let pointer = champion_pointer(store, name).await?;
    let champion = match &pointer {
        Some((p, _)) => Some(load_version_of::<PolicyArtifact>(store, name, &p.version).await?),
        None => None,
    };
    let champion_target = match &champion {
        Some(c) => Target::Learned(c),
        None => Target::Configured(configured),
    };
    let theirs = contender(held_out, &champion_target, &challenger, settings);
    let ours = contender(
        held_out,
        &Target::Learned(&challenger),
        &challenger,
        settings,
    );
    let decision = decide(&ours, &theirs, override_reason);
    if decision.overridden {
        tracing::warn!(policy = name, challenger = challenger_version, reason = %decision.reason, "policy promotion by override");
    }
    let record_key = promotion_key(name, now, challenger_version);
    let mut record = PolicyPromotionRecord {
        format_version: REGISTRY_FORMAT_VERSION,
        name: name.to_owned(),
        decided_at: now,
        challenger: ours,
        champion: theirs,
        held_out: HeldOut {
            rows: held_out.len(),
            data_sha256: crate::learning::dataset::rows_sha256(held_out),
            reward_model: format!("{name}@{challenger_version}"),
            resamples: settings.resamples,
            seed: settings.seed,
        },
        decision,
        pointer_moved: false,
        record_key: record_key.clone(),
    };
    let current = pointer.as_ref().map(|(_, etag)| etag.as_str());
    conclude(store, challenger_version, sha256, current, now, &mut record).await?;
    Ok(record)
}

impl Promotion for PolicyPromotionRecord {
    fn name(&self) -> &str {
        &self.name
    }
    fn record_key(&self) -> &str {
        &self.record_key
    }
    fn decision_mut(&mut self) -> &mut Decision {
        &mut self.decision
    }
    fn set_pointer_moved(&mut self) {
        self.pointer_moved = true;
    }
}
