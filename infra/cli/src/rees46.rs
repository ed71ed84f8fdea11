//! The REES46 clickstream (`event_time,event_type,product_id,category_id,category_code,brand,price,user_id,
//! user_session`) mapped onto schema v1.
//!
//! | REES46 `event_type` | v1 event |
//! |---|---|
//! | `view` | `product_viewed` |
//! | `cart` | `cart_item_added`, quantity 1 |
//! | `purchase` | `order_placed`, one line, quantity 1; the order id is derived from the event id |
//!
//! - `user_session` is the session id and the Kinesis partition key; `user_id` is the (raw) user id.
//! - Prices are decimal strings in US dollars and become integer cents exactly (no float on the way).
//! - Empty `brand` / `category_code` become absent fields.
//!
//! **Identity.** The source has no event id, so an event's identity is its content: the event id is a
//! SHA-256 digest of the whole row. A replay therefore produces the same ids every time and is idempotent.
//! **Identical rows** (the first three hours of 2019-10-01 hold 5 rows that repeat another row exactly: one
//! view logged 4 times and two events logged twice) are read as what they are in at-least-once tracking:
//! the same event delivered more than once, within the same second, by the same session. They get the same
//! id, so the event log stores each once and no projection counts a double click or a tracker retry twice.

use checkout_domain::event::{
    CartItemAdded, Event, EventBody, Money, OrderLine, OrderPlaced, ProductViewed, SCHEMA_VERSION,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// One CSV row, as in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Row {
    pub event_time: String,
    pub event_type: String,
    pub product_id: String,
    pub category_id: String,
    pub category_code: String,
    pub brand: String,
    pub price: String,
    pub user_id: String,
    pub user_session: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("row {line}: bad event_time `{value}`")]
    Time { line: u64, value: String },
    #[error("row {line}: bad price `{value}`")]
    Price { line: u64, value: String },
    #[error("row {line}: unknown event_type `{value}`")]
    EventType { line: u64, value: String },
    #[error("row {line}: empty `{field}`")]
    Empty { line: u64, field: &'static str },
    #[error("reading {path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
}

/// Reads the whole file into rows (the head file is a few MB).
pub fn read_rows(path: &Path) -> Result<Vec<Row>, RowError> {
    let csv_err = |source| RowError::Csv {
        path: path.display().to_string(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_err)?;
    reader
        .deserialize()
        .map(|r| r.map_err(csv_err))
        .collect::<Result<Vec<Row>, _>>()
}

/// Integer cents from a decimal dollar string such as `35.79`, `5` or `0.5`.
pub fn parse_cents(price: &str) -> Option<i64> {
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Row {
    /// The deterministic event id: a digest of every column.
    pub fn event_id(&self) -> String {
        let mut h = Sha256::new();
        for col in [
            &self.event_time,
            &self.event_type,
            &self.product_id,
            &self.category_id,
            &self.category_code,
            &self.brand,
            &self.price,
            &self.user_id,
            &self.user_session,
        ] {
            h.update(col.as_bytes());
            h.update([0x1f]);
        }
        format!("rees46-{}", hex::encode(&h.finalize()[..16]))
    }

    /// Maps the row to a v1 event. `line` is the 1-based data row number, for error messages.
    pub fn to_event(&self, line: u64) -> Result<Event, RowError> {
        let occurred_at: DateTime<Utc> =
            NaiveDateTime::parse_from_str(&self.event_time, "%Y-%m-%d %H:%M:%S UTC")
                .map_err(|_| RowError::Time {
                    line,
                    value: self.event_time.clone(),
                })?
                .and_utc();
        let cents = parse_cents(&self.price).ok_or_else(|| RowError::Price {
            line,
            value: self.price.clone(),
        })?;
        for (field, value) in [
            ("product_id", &self.product_id),
            ("user_session", &self.user_session),
        ] {
            if value.is_empty() {
                return Err(RowError::Empty { line, field });
            }
        }
        let usd = |amount_minor| Money {
            amount_minor,
            currency: "USD".to_string(),
        };
        let event_id = self.event_id();
        let body = match self.event_type.as_str() {
            "view" => EventBody::ProductViewed(ProductViewed {
                product_id: self.product_id.clone(),
                category_id: non_empty(&self.category_id),
                category_code: non_empty(&self.category_code),
                brand: non_empty(&self.brand),
                price: Some(usd(cents)),
            }),
            "cart" => EventBody::CartItemAdded(CartItemAdded {
                unit_cost_minor: None,
                product_id: self.product_id.clone(),
                quantity: 1,
                unit_price: usd(cents),
                category_id: non_empty(&self.category_id),
                category_code: non_empty(&self.category_code),
                brand: non_empty(&self.brand),
            }),
            "purchase" => EventBody::OrderPlaced(OrderPlaced {
                order_id: event_id.replacen("rees46-", "rees46-order-", 1),
                total: usd(cents),
                lines: vec![OrderLine {
                    product_id: self.product_id.clone(),
                    quantity: 1,
                    unit_price_minor: cents,
                }],
                email: None,
            }),
            other => {
                return Err(RowError::EventType {
                    line,
                    value: other.to_string(),
                })
            }
        };
        Ok(Event {
            event_id,
            schema_version: SCHEMA_VERSION,
            occurred_at,
            session_id: self.user_session.clone(),
            user_id: non_empty(&self.user_id),
            context: Default::default(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_type: &str, price: &str) -> Row {
        Row {
            event_time: "2019-10-01 02:25:40 UTC".into(),
            event_type: event_type.into(),
            product_id: "1307116".into(),
            category_id: "2053013558920217191".into(),
            category_code: "computers.notebook".into(),
            brand: "".into(),
            price: price.into(),
            user_id: "548049635".into(),
            user_session: "83085f41-22c3-4f27-bc29-bfaaf460d902".into(),
        }
    }

    #[test]
    fn cents_are_exact() {
        assert_eq!(parse_cents("463.07"), Some(46307));
        assert_eq!(parse_cents("0.5"), Some(50));
        assert_eq!(parse_cents("12"), Some(1200));
        assert_eq!(parse_cents("0.00"), Some(0));
        for bad in ["", "-1.00", "1.234", "1e3", "abc", ".5", "1.x"] {
            assert_eq!(parse_cents(bad), None, "{bad}");
        }
    }

    #[test]
    fn given_a_view_row_then_a_product_viewed_event_with_a_stable_id() {
        let e = row("view", "463.07").to_event(1).expect("maps");
        assert_eq!(e.event_id, row("view", "463.07").event_id());
        assert_ne!(e.event_id, row("cart", "463.07").event_id());
        assert_eq!(e.occurred_at.to_rfc3339(), "2019-10-01T02:25:40+00:00");
        e.validate().expect("valid v1 event");
        match e.body {
            EventBody::ProductViewed(p) => {
                assert_eq!(p.price.map(|m| m.amount_minor), Some(46307));
                assert_eq!(p.brand, None);
                assert_eq!(p.category_code.as_deref(), Some("computers.notebook"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn given_a_purchase_row_then_an_order_in_minor_units() {
        let e = row("purchase", "174.76").to_event(1).expect("maps");
        match &e.body {
            EventBody::OrderPlaced(o) => {
                assert_eq!(o.total.amount_minor, 17476);
                assert_eq!(o.lines.len(), 1);
                assert!(o.order_id.starts_with("rees46-order-"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        assert!(matches!(
            row("refund", "1").to_event(3),
            Err(RowError::EventType { line: 3, .. })
        ));
        assert!(matches!(
            row("view", "x").to_event(3),
            Err(RowError::Price { .. })
        ));
        let mut r = row("view", "1");
        r.event_time = "yesterday".into();
        assert!(matches!(r.to_event(3), Err(RowError::Time { .. })));
    }
}
