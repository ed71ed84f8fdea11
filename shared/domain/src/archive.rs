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
    /// The product of a product view, a cart add or a cart removal.
    pub product_id: Option<String>,
    /// The page a page view or a product view views, named as the page features name it
    /// ([`crate::features::session::page_path`]).
    pub page_path: Option<String>,
    /// An order's lines as `<quantity>|<product id>` (the quantity first, so the first `|` splits
    /// them); empty for other events.
    pub order_lines: Vec<String>,
    /// `decision_served`: the decision's cohort (the request's device type and country, the visitor
    /// type it saw, its placement), as an experiment unit records it at first exposure
    /// ([`crate::features::aggregate::Cohort`]); the readout's lift by cohort slices by them.
    pub device: Option<String>,
    pub country: Option<String>,
    pub visitor_type: Option<String>,
    pub placement: Option<String>,
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
            product_id: None,
            page_path: crate::features::session::page_path(&event.body),
            order_lines: Vec::new(),
            device: None,
            country: None,
            visitor_type: None,
            placement: None,
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
                let cohort = crate::features::aggregate::Cohort::of(&event, d);
                let recorded = |s: String| (!s.is_empty()).then_some(s);
                row.device = recorded(cohort.device);
                row.country = recorded(cohort.country);
                row.visitor_type = recorded(cohort.visitor);
                row.placement = recorded(cohort.placement);
            }
            EventBody::OrderPlaced(o) => {
                row.order_id = Some(o.order_id.clone());
                row.order_total_minor = Some(o.total.amount_minor);
                row.order_currency = Some(o.total.currency.clone());
                row.order_lines = o
                    .lines
                    .iter()
                    .map(|l| format!("{}|{}", l.quantity, l.product_id))
                    .collect();
            }
            EventBody::ProductViewed(p) => row.product_id = Some(p.product_id.clone()),
            EventBody::CartItemAdded(a) => row.product_id = Some(a.product_id.clone()),
            EventBody::CartItemRemoved(r) => row.product_id = Some(r.product_id.clone()),
            EventBody::RecoveryMessageOutcome(o) => {
                row.opted_out = o.outcome == MessageOutcome::Unsubscribed;
            }
            EventBody::ConsentChanged(c) => row.opted_out = !c.granted,
            _ => {}
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    const COLUMNS_SQL: &str = include_str!("../../../sql/archive_events.sql");

    /// The column names of `sql/archive_events.sql`, in order.
    fn sql_columns() -> Vec<String> {
        let text: String = COLUMNS_SQL
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let body = &text[text.find('(').expect("(") + 1..text.rfind(')').expect(")")];
        body.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| n.trim_end_matches(',').to_string())
            .collect()
    }

    fn entry(json: serde_json::Value) -> LogEntry {
        let e = Event::decode(json.to_string().as_bytes(), usize::MAX).expect("valid");
        LogEntry::of(&e, 4_000_000_000).expect("encodes")
    }

    #[test]
    fn the_row_has_the_archive_columns_in_order_and_the_partition_besides() {
        let row = ArchiveRow::of(&entry(serde_json::json!({
            "event_id": "e-1", "event_type": "order_placed", "schema_version": 1,
            "occurred_at": "2019-10-01T23:59:59.999Z", "session_id": "s-1", "user_id": "u_1",
            "data": {"order_id": "o-1", "total": {"amount_minor": 1299, "currency": "EUR"},
                     "lines": [{"product_id": "p", "quantity": 1, "unit_price_minor": 1299}]}
        })))
        .expect("row");
        let json = serde_json::to_value(&row).expect("json");
        let keys: Vec<String> = json.as_object().expect("object").keys().cloned().collect();
        let mut columns = sql_columns();
        columns.extend(["dt".to_string(), "hour".to_string()]);
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        let mut sorted_columns = columns.clone();
        sorted_columns.sort();
        assert_eq!(
            sorted_keys, sorted_columns,
            "ArchiveRow vs sql/archive_events.sql"
        );
        assert_eq!((row.dt.as_str(), row.hour.as_str()), ("2019-10-01", "23"));
        assert_eq!(row.order_total_minor, Some(1299));
        assert_eq!(row.order_currency.as_deref(), Some("EUR"));
        assert!(row.data.contains("\"order_id\":\"o-1\""), "{}", row.data);
        assert_eq!(row.context, "{}");
        assert!(!row.opted_out);
    }

    #[test]
    fn an_exposure_and_an_opt_out_fill_their_columns() {
        let d = ArchiveRow::of(&entry(serde_json::json!({
            "event_id": "d-1", "event_type": "decision_served", "schema_version": 6,
            "occurred_at": "2026-11-20T10:15:00Z", "session_id": "s-1", "user_id": "u_1",
            "context": {"device": {"type": "mobile"}, "country": "DE"},
            "data": {"decision_id": "d-1", "placement": "cart", "action": "free_shipping",
                     "experiment_id": "e", "variant": "treatment", "propensity": 1.0,
                     "model_id": "m", "model_version": "v1", "feature_schema_version": 1,
                     "rules_version": "r", "feature_hash": "ab", "degraded": true,
                     "action_key": "free_shipping", "policy": {"id": "control", "version": "r"},
                     "eligible": [{"action": "free_shipping", "probability": 1.0, "cost_minor": 0}],
                     "visitor_type": "returning"}
        })))
        .expect("row");
        assert_eq!(
            [&d.device, &d.country, &d.visitor_type, &d.placement].map(|c| c.as_deref()),
            [Some("mobile"), Some("DE"), Some("returning"), Some("cart")],
            "the decision's cohort"
        );
        assert_eq!(
            (
                d.decision_id.as_deref(),
                d.experiment_id.as_deref(),
                d.variant.as_deref()
            ),
            (Some("d-1"), Some("e"), Some("treatment"))
        );
        let c = ArchiveRow::of(&entry(serde_json::json!({
            "event_id": "c-1", "event_type": "consent_changed", "schema_version": 4,
            "occurred_at": "2026-11-20T10:15:00Z", "session_id": "s-1", "user_id": "u_1",
            "data": {"granted": false, "channel": "email"}
        })))
        .expect("row");
        assert!(c.opted_out);
    }
}
