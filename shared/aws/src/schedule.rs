//! The input EventBridge Scheduler sends the scheduled functions (the recovery sweep, the item and page
//! batch run): `{"now": "<aws.scheduler.scheduled-time>"}`. Without `now` a run is as of the clock; a
//! `now` in the past runs as of then (a replay); one further ahead than the clock skew is refused.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

/// A run may be at most this far in the future (clock skew).
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The schedule's input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invocation {
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

/// A `now` further ahead of the clock than [`MAX_CLOCK_SKEW`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("now {now} is in the future (clock {clock})")]
pub struct FutureNow {
    pub now: DateTime<Utc>,
    pub clock: DateTime<Utc>,
}

impl Invocation {
    /// The time the run is as of, given the function's `clock`.
    pub fn at(&self, clock: DateTime<Utc>) -> Result<DateTime<Utc>, FutureNow> {
        let now = self.now.unwrap_or(clock);
        if now > clock + MAX_CLOCK_SKEW {
            return Err(FutureNow { now, clock });
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_as_of_now_or_the_clock_and_not_beyond_the_skew() {
        let clock = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(Invocation::default().at(clock), Ok(clock));
        let past = clock - TimeDelta::days(3);
        assert_eq!(Invocation { now: Some(past) }.at(clock), Ok(past));
        let near = clock + MAX_CLOCK_SKEW;
        assert_eq!(Invocation { now: Some(near) }.at(clock), Ok(near));
        let far = near + TimeDelta::seconds(1);
        assert_eq!(
            Invocation { now: Some(far) }.at(clock),
            Err(FutureNow { now: far, clock })
        );
        assert!(serde_json::from_str::<Invocation>(r#"{"when": 1}"#).is_err());
    }
}
