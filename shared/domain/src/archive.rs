//! The event archive: one row per admitted event, in the columns the archive's Parquet files and Glue
//! table have (`sql/archive_events.sql` is the column list; `template.yaml`'s `ArchiveEventsTable` and
//! the local archiver use the same).
//!
//! The archive is fed from the event log, so it holds what ingest admitted: validated, pseudonymized,
//! without card numbers. One row shape serves every event schema version: the identifying columns, the
//! columns the SQL readouts need (typed, so that one SQL file runs on DuckDB and Athena alike, without
//! either engine's JSON functions), and the event's `context` and `data` as JSON text, with its
//! `schema_version`, for everything else.
//!
//! Rows are partitioned by event time, `dt=YYYY-MM-DD/hour=HH` (UTC): a late event lands in the hour it
//! happened, so a query over an hour's partition sees that hour's events whatever their arrival.

use crate::event::{EventBody, MessageOutcome};
use crate::ingest::LogEntry;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One archived event. Field order is column order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRow {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    /// RFC 3339, milliseconds, UTC (`2019-10-01T00:00:00.000Z`); a timestamp column.
    pub occurred_at: String,
    pub session_id: String,
    /// Pseudonymous.
    pub user_id: Option<String>,
    /// Epoch seconds after which the event is past retention (the log's TTL).
    pub expires_at: i64,
    /// `decision_served`: the decision, and its experiment and variant when it was an exposure.
    pub decision_id: Option<String>,
    pub experiment_id: Option<String>,
    pub variant: Option<String>,
    /// `order_placed`: the order and its total.
    pub order_id: Option<String>,
    pub order_total_minor: Option<i64>,
    pub order_currency: Option<String>,
    /// An opt-out: an `unsubscribed` recovery-message outcome or a withdrawn consent.
    pub opted_out: bool,
    /// The event's `context` and `data` objects as JSON text.
    pub context: String,
    pub data: String,
    /// The partition: event date and hour (UTC). Not columns of the Parquet files (Hive layout keeps
    /// them in the path), but carried in the JSON record for Firehose's dynamic partitioning.
    pub dt: String,
    pub hour: String,
}

/// Why a log entry has no archive row (it was validated at ingest, so this means a bug or a tampered
/// item; the archiver reports it and goes on).
#[derive(Debug, thiserror::Error)]
#[error("event {event_id} cannot be archived: {detail}")]
pub struct ArchiveError {
    pub event_id: String,
    pub detail: String,
}

/// The partition of an event time: `("YYYY-MM-DD", "HH")`.
pub fn partition(at: DateTime<Utc>) -> (String, String) {
    (
        at.format("%Y-%m-%d").to_string(),
        format!("{:02}", at.hour()),
    )
}

/// The object key prefix of a partition under the archive's `events/` prefix.
pub fn partition_prefix(dt: &str, hour: &str) -> String {
    format!("events/dt={dt}/hour={hour}/")
}

impl ArchiveRow {
    /// The row for one log entry.
    pub fn of(entry: &LogEntry) -> Result<Self, ArchiveError> {
        let err = |detail: String| ArchiveError {
            event_id: entry.event_id.clone(),
            detail,
        };
        let event = entry.event().map_err(|e| err(e.to_string()))?;
        let json = serde_json::to_value(&event).map_err(|e| err(e.to_string()))?;
        let text = |field: &str| {
            json.get(field)
                .map_or_else(|| "{}".to_string(), |v| v.to_string())
        };
        let mut row = ArchiveRow {
            event_id: event.event_id.clone(),
            event_type: entry.event_type.clone(),
            schema_version: event.schema_version,
            occurred_at: event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            session_id: event.session_id.clone(),
            user_id: event.user_id.clone(),
            expires_at: entry.expires_at,
            decision_id: None,
            experiment_id: None,
            variant: None,
            order_id: None,
            order_total_minor: None,
            order_currency: None,
            opted_out: false,
            context: text("context"),
            data: text("data"),
            dt: String::new(),
            hour: String::new(),
        };
        (row.dt, row.hour) = partition(event.occurred_at);
        match &event.body {
            EventBody::DecisionServed(d) => {
                row.decision_id = Some(d.decision_id.clone());
                if let (Some(e), Some(v)) = (&d.experiment_id, &d.variant) {
                    row.experiment_id = Some(e.clone());
                    row.variant = Some(v.clone());
                }
            }
            EventBody::OrderPlaced(o) => {
                row.order_id = Some(o.order_id.clone());
                row.order_total_minor = Some(o.total.amount_minor);
                row.order_currency = Some(o.total.currency.clone());
            }
            EventBody::RecoveryMessageOutcome(o) => {
                row.opted_out = o.outcome == MessageOutcome::Unsubscribed;
            }
            EventBody::ConsentChanged(c) => row.opted_out = !c.granted,
            _ => {}
        }
        Ok(row)
    }
}
