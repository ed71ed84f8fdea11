//! `FeatureUpdaterFunction`: event-log stream records in (INSERTs only, filtered by the mapping), the
//! features of their sessions and of everything those sessions contribute to out.
//!
//! The records only say *which sessions* have new events; the updater re-reads each session from the log
//! and folds it (see `checkout_domain::features`). A batch item failure is reported at the first record
//! whose session is not fully projected, so Lambda retries from there and everything after it, which
//! the updater treats as a no-op where it is already done.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use checkout_aws::features::{DynamoFeatureStore, DynamoSessionLog};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::features::updater::{FeatureUpdater, UpdateCounts};
use checkout_domain::ports::{FeatureWriter, SessionLog};
use lambda_runtime::{Error, LambdaEvent};

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub event_log_table: String,
    pub features_table: String,
    /// Reads and commits in flight at once.
    pub concurrency: usize,
    /// Conflicting attempts per aggregate before its sessions are handed back to Lambda.
    pub max_attempts: u32,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            event_log_table: env.required("EVENT_LOG_TABLE")?.to_string(),
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            concurrency: env.parsed("UPDATE_CONCURRENCY", 16usize)?.max(1),
            max_attempts: env.parsed("MAX_CONFLICT_ATTEMPTS", 5u32)?.max(1),
        })
    }
}

/// The handler with its ports; generic so unit tests run it over in-memory stores.
pub struct Function<L = DynamoSessionLog, S = DynamoFeatureStore> {
    pub updater: FeatureUpdater<L, S>,
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
        Ok(Function { updater })
    }
}

impl<L: SessionLog, S: FeatureWriter> Function<L, S> {
    pub async fn handle(
        &self,
        event: LambdaEvent<StreamEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        Ok(self.process(event.payload).await.0)
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
        let mut response = DynamoDbEventResponse::default();
        let checkpoint = sessions
            .iter()
            .find(|(_, s)| outcome.failed.contains_key(s))
            .map(|(seq, s)| (seq.clone(), s));
        if let Some((seq, session)) = checkpoint {
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
            failure.item_identifier = seq;
            response.batch_item_failures.push(failure);
        }
        (response, outcome.counts)
    }
}
