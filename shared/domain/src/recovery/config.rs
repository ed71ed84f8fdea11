//! Recovery's part of the decision config (`"recovery": {...}` in `config/decisions.json`): the
//! holdout, the channels, the caps, quiet hours and consent. When to check carts (the idle time and the
//! steps) is a template parameter instead ([`super::RecoverySettings`]), because the feature updater,
//! which never reads this document, schedules by it.

use super::{Caps, QuietHours, RecoverySettings, HOLDOUT, TREATMENT};
use crate::event::Channel;
use crate::experiment::config::{Experiment, Status};
use crate::placement::Placement;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Missing fields take their defaults; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Off: the sweep sends nothing and logs nothing (carts stay scheduled).
    pub enabled: bool,
    /// The recovery experiment: its units are users, its arms `holdout` and `treatment`.
    pub experiment_id: String,
    /// The share of users (by the GrowthBook-compatible hash of the pseudonymous user id under the
    /// experiment id) who never receive a recovery message. Changing it moves users between arms: start
    /// a new `experiment_id` when you do.
    pub holdout: f64,
    /// The channel of each step; the last one repeats for further steps.
    pub channels: Vec<Channel>,
    pub email_every_hours: u32,
    pub sms_every_hours: u32,
    /// Local quiet hours, `HH:MM`; a message falling inside waits for their end.
    pub quiet_start: String,
    pub quiet_end: String,
    /// The zone for shoppers who never sent `context.time_zone` (or sent one this build does not know).
    pub default_time_zone: String,
    /// Message only shoppers with a `consent_changed` granting the channel (else: everyone who has not
    /// opted out).
    pub require_consent: bool,
    /// When the experiment began (reports start here).
    pub started_at: Option<DateTime<Utc>>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            experiment_id: "cart-recovery".into(),
            holdout: 0.10,
            channels: vec![Channel::Email],
            email_every_hours: 16,
            sms_every_hours: 24,
            quiet_start: "21:00".into(),
            quiet_end: "08:00".into(),
            default_time_zone: "UTC".into(),
            require_consent: false,
            started_at: None,
        }
    }
}

fn time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

impl RecoveryConfig {
    /// Why the section is invalid, if it is.
    pub fn problem(&self) -> Option<String> {
        if !(0.01..=0.5).contains(&self.holdout) {
            return Some(format!(
                "recovery.holdout {} must be in [0.01, 0.5]: without a holdout recovery cannot be measured",
                self.holdout
            ));
        }
        if self.channels.is_empty() {
            return Some("recovery.channels must name at least one channel".into());
        }
        if self.email_every_hours > 24 * 30 || self.sms_every_hours > 24 * 30 {
            return Some("recovery.*_every_hours must be at most 720".into());
        }
        if time(&self.quiet_start).is_none() || time(&self.quiet_end).is_none() {
            return Some("recovery.quiet_start and quiet_end must be HH:MM".into());
        }
        if self.default_time_zone.parse::<Tz>().is_err() {
            return Some(format!(
                "recovery.default_time_zone {:?} is not an IANA time zone",
                self.default_time_zone
            ));
        }
        None
    }

    /// The recovery experiment, as the decision engine and the evaluator see it.
    pub fn experiment(&self) -> Experiment {
        Experiment {
            id: self.experiment_id.clone(),
            hash_seed: None,
            hash_version: 2,
            variations: vec![HOLDOUT.into(), TREATMENT.into()],
            weights: Some(vec![self.holdout, 1.0 - self.holdout]),
            coverage: 1.0,
            namespace: None,
            placement: Placement::Recovery,
            status: if self.enabled {
                Status::Running
            } else {
                Status::Stopped
            },
            start: self.started_at,
            end: None,
            tail_days: crate::experiment::config::DEFAULT_TAIL_DAYS,
        }
    }

    /// The channel of step `step`.
    pub fn channel(&self, step: u32) -> Channel {
        self.channels
            .get(step as usize)
            .or(self.channels.last())
            .copied()
            .unwrap_or(Channel::Email)
    }

    pub fn caps(&self, settings: &RecoverySettings) -> Caps {
        Caps {
            email_every: Duration::hours(i64::from(self.email_every_hours)),
            sms_every: Duration::hours(i64::from(self.sms_every_hours)),
            per_cart: settings.max_messages_per_cart,
        }
    }

    pub fn quiet_hours(&self) -> QuietHours {
        QuietHours {
            start: time(&self.quiet_start).unwrap_or(NaiveTime::MIN),
            end: time(&self.quiet_end).unwrap_or(NaiveTime::MIN),
        }
    }

    /// The shopper's zone: the one they sent if this build knows it, else the configured default.
    pub fn zone(&self, sent: Option<&str>) -> (Tz, bool) {
        match sent.and_then(|z| z.parse::<Tz>().ok()) {
            Some(tz) => (tz, true),
            None => (self.default_time_zone.parse().unwrap_or(Tz::UTC), false),
        }
    }
}
