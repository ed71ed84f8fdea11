//! What a write to the features table costs in DynamoDB write units, from the item's size.
//!
//! DynamoDB bills a write by the size of the item: one write unit per started KB (1,024 bytes), twice
//! that inside a transaction. An item's size is the sum of its attribute names and values
//! ([the documented rules](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)):
//! a string is its UTF-8 length, a number about one byte per two significant digits plus one, a boolean
//! or null one byte, and a list or map three bytes plus one per element plus its elements. This module
//! applies those rules to the item as the adapter stores it (the document's fields, `pk`, `sk`,
//! `version` and `feature_schema_version`), so a cost measured in memory is the cost DynamoDB would
//! bill, to within a few bytes of number encoding.

use super::Doc;
use crate::ports::Write;
use serde_json::Value;

/// Bytes in one write unit.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// The stored size of a document, in bytes.
pub fn item_size(doc: &Doc) -> usize {
    let key = doc.key();
    // The attributes the adapter adds: the key, the version and the schema version.
    let fixed = "pk".len()
        + key.pk.len()
        + "sk".len()
        + key.sk.len()
        + "version".len()
        + 4
        + "feature_schema_version".len()
        + 2;
    let body = match serde_json::to_value(doc) {
        Ok(Value::Object(m)) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| k.len() + value_size(v))
            .sum(),
        _ => 0,
    };
    fixed + body
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::String(s) => s.len(),
        Value::Number(n) => {
            let digits = n
                .to_string()
                .chars()
                .filter(char::is_ascii_digit)
                .count()
                .max(1);
            digits.div_ceil(2) + 1
        }
        Value::Array(a) => 3 + a.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        Value::Object(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
    }
}

/// Write units for an item of `size` bytes: one per started KB, at least one.
pub fn units_for(size: usize) -> u64 {
    size.div_ceil(WRITE_UNIT_BYTES).max(1) as u64
}

/// Write units one write costs: a put by its item's size, a delete one unit; doubled in a transaction
/// (a commit of more than one write).
pub fn write_units(w: &Write, transactional: bool) -> u64 {
    let units = w.doc.as_ref().map_or(1, |d| units_for(item_size(d)));
    if transactional {
        2 * units
    } else {
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{PageFeatures, FEATURES_SK};
    use crate::ports::Expect;
    use chrono::{TimeZone, Utc};

    fn page(path: &str) -> Doc {
        Doc::Page(PageFeatures {
            path: path.into(),
            views: 12,
            unique_views: 3,
            entrances: 1,
            bounces: 0,
            exits: 1,
            value: Default::default(),
            last_event_at: Utc.with_ymd_and_hms(2019, 10, 1, 0, 0, 0).unwrap(),
            expires_at: 1_900_000_000,
        })
    }

    #[test]
    fn a_small_item_costs_one_unit_and_twice_that_in_a_transaction() {
        let w = Write::put(page("/p/1"), Expect::Any);
        assert!(item_size(w.doc.as_ref().unwrap()) < WRITE_UNIT_BYTES);
        assert_eq!(write_units(&w, false), 1);
        assert_eq!(write_units(&w, true), 2);
    }

    #[test]
    fn the_size_counts_names_and_values_by_the_documented_rules() {
        let d = page("/p/1");
        // pk "page#/p/1" (9), sk "features" (8), the fixed names and numbers, the entity tag.
        let fixed = 2 + 9 + 2 + FEATURES_SK.len() + 7 + 4 + 22 + 2;
        let body = "entity".len()
            + "page".len()
            + "path".len()
            + 4
            + "views".len()
            + 2
            + "unique_views".len()
            + 2
            + "entrances".len()
            + 2
            + "bounces".len()
            + 2
            + "exits".len()
            + 2
            + "value".len()
            + 3
            + "last_event_at".len()
            + "2019-10-01T00:00:00Z".len()
            + "expires_at".len()
            + 6;
        assert_eq!(item_size(&d), fixed + body);
    }

    #[test]
    fn a_long_item_costs_one_unit_per_started_kilobyte() {
        assert_eq!(units_for(0), 1);
        assert_eq!(units_for(1024), 1);
        assert_eq!(units_for(1025), 2);
        // The path is stored twice: in the key and as an attribute.
        let long = page(&"x".repeat(3000));
        let size = item_size(&long);
        assert!((6000..6300).contains(&size), "{size}");
        assert_eq!(write_units(&Write::put(long, Expect::Any), false), 6 + 1);
    }
}
