//! `FeatureUpdaterFunction`: event-log stream records in (INSERTs only, filtered by the mapping), the
//! features of their sessions and of everything those sessions contribute to out.
//!
//! The records only say *which sessions* have new events; the updater re-reads each session from the log
//! and folds it (see `checkout_domain::features`).
//!
//! Errors decide retries:
//! - a **retryable** failure (a transient store fault, contention) is a batch item failure at the first
//!   record whose session it stopped, so Lambda retries from there and everything after it, which the
//!   updater treats as a no-op where it is already done;
//! - a **permanent** one (a permanent store error, an item of the wrong entity under a key) cannot be
//!   fixed by a retry: its session goes to the on-failure destination (`FAILURE_QUEUE_URL`) as an
//!   `UpdateFailure` with the reason, and the rest of the batch proceeds. Only if that send itself fails
//!   does the record become a batch item failure, so nothing is lost.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::features::{DynamoFeatureStore, DynamoSessionLog};
use checkout_aws::sqs::SqsFailureQueue;
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::delivery::{deliver, RetryPolicy};
use checkout_domain::features::updater::{
    FeatureUpdater, UpdateCounts, UpdateFailure, UpdateOutcome,
};
use checkout_domain::features::ItemPageMode;
use checkout_domain::ports::{BatchSink, FeatureWriter, SessionLog};
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub event_log_table: String,
    pub features_table: String,
    /// Where sessions that failed for a permanent reason go (the mapping's on-failure queue).
    pub failure_queue_url: String,
    /// Reads and commits in flight at once.
    pub concurrency: usize,
    /// Conflicting attempts per aggregate before its sessions are handed back to Lambda.
    pub max_attempts: u32,
    /// When abandoned carts are checked: the schedule the updater keeps for the recovery sweep.
    pub recovery: checkout_domain::recovery::RecoverySettings,
    /// `ITEM_PAGE_FEATURES`: whether the updater keeps the item and page features (`stream`, the default)
    /// or leaves them to the scheduled batch run (`batch`).
    pub item_pages: ItemPageMode,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            event_log_table: env.required("EVENT_LOG_TABLE")?.to_string(),
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            failure_queue_url: env.required("FAILURE_QUEUE_URL")?.to_string(),
            concurrency: env.parsed("UPDATE_CONCURRENCY", 16usize)?.max(1),
            max_attempts: env.parsed("MAX_CONFLICT_ATTEMPTS", 5u32)?.max(1),
            recovery: env.recovery_settings()?,
            item_pages: env.parsed("ITEM_PAGE_FEATURES", ItemPageMode::Stream)?,
        })
    }
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "feature-updater";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "Events",
    "Sessions",
    "ItemsWritten",
    "TransactionalItemsWritten",
    "WriteUnits",
    "Conflicts",
    "UnreadableEvents",
    "RetriedRecords",
    "ProjectionLag",
];

/// Each INSERT record's sequence number and event time (`occurred_at` in the new image), in batch order.
pub fn occurred_at(event: &StreamEvent) -> Vec<(Option<String>, Option<DateTime<Utc>>)> {
    event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .map(|r| {
            let at = match r.change.new_image.get("occurred_at") {
                Some(serde_dynamo::AttributeValue::S(s)) => DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
                _ => None,
            };
            (r.change.sequence_number.clone(), at)
        })
        .collect()
}

/// The batch's metrics (EMF, service `feature-updater`): `Events` (log records in the batch),
/// `Sessions`, `ItemsWritten`, `TransactionalItemsWritten`, `Conflicts`, `UnreadableEvents`,
/// `RetriedRecords`, and `ProjectionLag`: for every record projected (those before a batch item
/// failure), milliseconds from its event time to the end of the projection.
pub fn metrics(
    c: &UpdateCounts,
    occurred: &[(Option<String>, Option<DateTime<Utc>>)],
    response: &DynamoDbEventResponse,
    now: DateTime<Utc>,
) -> Metrics {
    let mut m = Metrics::new(SERVICE);
    m.count("Events", occurred.len());
    m.count("Sessions", c.sessions);
    m.count("ItemsWritten", c.feature_items_written);
    m.count("TransactionalItemsWritten", c.transactional_items_written);
    m.count(
        "WriteUnits",
        usize::try_from(c.write_units).unwrap_or(usize::MAX),
    );
    m.count("Conflicts", c.conflicts);
    m.count("UnreadableEvents", c.unreadable_events);
    let checkpoint = response
        .batch_item_failures
        .first()
        .and_then(|f| f.item_identifier.clone());
    let projected = occurred
        .iter()
        .position(|(seq, _)| checkpoint.is_some() && *seq == checkpoint)
        .unwrap_or(occurred.len());
    m.count("RetriedRecords", occurred.len() - projected);
    for (_, at) in &occurred[..projected] {
        if let Some(at) = at {
            let lag = (now - *at).num_milliseconds().max(0);
            m.add("ProjectionLag", Unit::Milliseconds, lag as f64);
        }
    }
    m
}

/// The handler with its ports; generic so unit tests run it over in-memory stores.
pub struct Function<L = DynamoSessionLog, S = DynamoFeatureStore, F = SqsFailureQueue> {
    pub updater: FeatureUpdater<L, S>,
    /// The on-failure destination for permanent failures.
    pub failures: F,
    pub retry: RetryPolicy,
}

impl Function {
    /// Cold start: config and clients. A missing setting fails here, not on the first batch.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await)
    }

    /// Builds the function from an explicit environment and SDK config (the local stream driver and tests).
    pub fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let client = aws_sdk_dynamodb::Client::new(sdk);
        let mut updater = FeatureUpdater::new(
            DynamoSessionLog {
                client: client.clone(),
                table: config.event_log_table,
            },
            DynamoFeatureStore {
                client,
                table: config.features_table,
            },
        );
        updater.concurrency = config.concurrency;
        updater.max_attempts = config.max_attempts;
        updater.recovery = Some(config.recovery);
        updater.item_pages = config.item_pages;
        Ok(Function {
            updater,
            failures: SqsFailureQueue {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: config.failure_queue_url,
            },
            retry: RetryPolicy::default(),
        })
    }
}

impl<L: SessionLog, S: FeatureWriter, F: BatchSink<UpdateFailure>> Function<L, S, F> {
    pub async fn handle(
        &self,
        event: LambdaEvent<StreamEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        let occurred = occurred_at(&event.payload);
        let (response, counts) = self.process(event.payload).await;
        metrics(&counts, &occurred, &response, chrono::Utc::now()).flush();
        Ok(response)
    }

    /// One batch: the Lambda response plus the batch's counters (the local stream driver sums them).
    pub async fn process(&self, event: StreamEvent) -> (DynamoDbEventResponse, UpdateCounts) {
        // The session of each record, in batch order. Records that are not INSERTs of a log entry are
        // skipped (the mapping's filter already drops them in AWS).
        let mut sessions: Vec<(Option<String>, String)> = Vec::with_capacity(event.records.len());
        let mut skipped = 0usize;
        for r in &event.records {
            let session = (r.event_name == "INSERT")
                .then(|| r.change.keys.get("session_id"))
                .flatten()
                .and_then(|v| match v {
                    serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                });
            match session {
                Some(s) => sessions.push((r.change.sequence_number.clone(), s)),
                None => skipped += 1,
            }
        }
        let ids: Vec<String> = sessions.iter().map(|(_, s)| s.clone()).collect();
        let outcome = self.updater.update(&ids).await;
        let c = &outcome.counts;
        tracing::info!(
            records = event.records.len(),
            skipped_records = skipped,
            sessions = c.sessions,
            sessions_current = c.sessions_current,
            log_entries_read = c.log_entries_read,
            feature_items_read = c.feature_items_read,
            feature_items_written = c.feature_items_written,
            commits = c.commits,
            conflicts = c.conflicts,
            failed_sessions = outcome.failed.len(),
            "batch projected"
        );
        for (event_id, detail) in &outcome.unreadable {
            tracing::error!(event_id = %event_id, detail = %detail, "event-log entry cannot be decoded; left out of its session's features");
        }
        let checkpoint = self.checkpoint(&sessions, &outcome).await;
        let mut response = DynamoDbEventResponse::default();
        if let Some(at) = checkpoint {
            let (seq, session) = &sessions[at];
            let errors: Vec<String> = outcome
                .failed
                .iter()
                .map(|(s, e)| format!("{s}: {e}"))
                .collect();
            tracing::warn!(
                checkpoint = ?seq,
                session = %session,
                errors = ?errors,
                "batch partially projected; reporting a batch item failure at the first unfinished session"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = seq.clone();
            response.batch_item_failures.push(failure);
        }
        (response, outcome.counts)
    }

    /// Where Lambda must retry from, if anywhere: the first record whose session hit a retryable
    /// failure. Permanent failures before that point go to the on-failure destination (those after it
    /// are retried with it anyway), once per session, at the session's first record; one the
    /// destination does not take moves the checkpoint back to it, so that nothing is lost.
    async fn checkpoint(
        &self,
        sessions: &[(Option<String>, String)],
        outcome: &UpdateOutcome,
    ) -> Option<usize> {
        let retry_from = sessions
            .iter()
            .position(|(_, s)| outcome.failed.get(s).is_some_and(|e| e.retryable()));
        let now = chrono::Utc::now();
        let mut seen = std::collections::HashSet::new();
        let mut permanent: Vec<(usize, UpdateFailure)> = Vec::new();
        for (i, (seq, s)) in sessions[..retry_from.unwrap_or(sessions.len())]
            .iter()
            .enumerate()
        {
            if let Some(e) = outcome.failed.get(s).filter(|e| !e.retryable()) {
                if seen.insert(s) {
                    tracing::error!(session = %s, reason = e.reason_code(), error = %e,
                        "session cannot be projected; sent to the on-failure destination");
                    permanent.push((i, UpdateFailure::new(s, seq.clone(), e, now)));
                }
            }
        }
        if permanent.is_empty() {
            return retry_from;
        }
        let records: Vec<UpdateFailure> = permanent.iter().map(|(_, f)| f.clone()).collect();
        let delivery = deliver(&self.failures, &records, &self.retry).await;
        match delivery.accepted.iter().position(|ok| !ok) {
            Some(undelivered) => {
                tracing::warn!(error = ?delivery.error,
                    "the on-failure destination did not take every failure; handing the record back");
                let at = permanent[undelivered].0;
                Some(retry_from.map_or(at, |r| r.min(at)))
            }
            None => retry_from,
        }
    }
}
