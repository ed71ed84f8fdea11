//! Item and page features from the archive's SQL (`sql/item_features.sql`, `sql/page_features.sql`, on
//! DuckDB from the dev virtualenv) against the rebuild's folds (`features::rebuild`, the projection the
//! live table is checked against) on the same events: equal, field for field.
//!
//! The events: the REES46 day (real product views, cart adds and purchases) and synthetic sessions made
//! to hit every rule: page views with and without a path, product ids with `|` and spaces, orders of
//! several lines (one product twice) in two currencies and of zero value, events at the same instant
//! (ordered by event id), a session past the co-occurrence cap, events past retention at the read; and
//! every archived row twice (Firehose delivers at least once); and every 25th session erased, its events
//! still in the archive and listed under erasures/ (sql/erased_sessions.sql), which the SQL leaves out.

use checkout_ai::archive::{batch_features, write_archive};
use checkout_ai::replay::rees46_records;
use checkout_domain::archive::ArchiveRow;
use checkout_domain::event::Event;
use checkout_domain::features::rebuild::{diff, rebuild};
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

const T0: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

fn event(id: &str, session: &str, secs: i64, kind: &str, data: Value) -> Value {
    json!({
        "event_id": id, "event_type": kind, "schema_version": 1,
        "occurred_at": Utc.timestamp_opt(T0 + secs, 0).single().expect("valid")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "session_id": session, "user_id": format!("u-{session}"), "data": data
    })
}

/// Synthetic sessions, each event with its retention (epoch seconds).
fn synthetic(seed: u64) -> Vec<(Value, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let products: Vec<String> = (0..30)
        .map(|i| match i {
            0 => "p|pipe".to_string(),
            1 => "p space".to_string(),
            _ => format!("p{i:02}"),
        })
        .collect();
    let paths = [
        Some("/"),
        Some("/help"),
        Some("/account"),
        Some("/cart"),
        None,
    ];
    let mut out = Vec::new();
    for s in 0..300 {
        let session = format!("s{s:03}");
        // One session in 25 is past retention at the read.
        let expires = if s % 25 == 0 { T0 } else { T0 + 400 * DAY };
        let mut t = rng.random_range(0..10 * DAY);
        let n = if s == 7 { 60 } else { rng.random_range(1..14) };
        for i in 0..n {
            let id = format!("{session}-e{i:02}");
            // Some events share the previous one's instant.
            if !rng.random_bool(0.2) {
                t += rng.random_range(1..300);
            }
            let (kind, data) = if s == 7 {
                // Past the co-view cap: 60 views of distinct products and 60 more.
                (
                    "product_viewed",
                    json!({"product_id": format!("cap{i:02}")}),
                )
            } else {
                match rng.random_range(0..10) {
                    0..=2 => {
                        let path = paths[rng.random_range(0..paths.len())];
                        let mut d = json!({"page_type": if path.is_none() { "informational" } else { "administrative" }});
                        if let Some(p) = path {
                            d["path"] = json!(p);
                        }
                        ("page_viewed", d)
                    }
                    3..=6 => (
                        "product_viewed",
                        json!({"product_id": products[rng.random_range(0..products.len())]}),
                    ),
                    7 | 8 => (
                        "cart_item_added",
                        json!({"product_id": products[rng.random_range(0..products.len())],
                               "quantity": rng.random_range(1..3),
                               "unit_price": {"amount_minor": 1000, "currency": "USD"}}),
                    ),
                    _ => {
                        let twice = products[rng.random_range(0..products.len())].clone();
                        let lines: Vec<Value> = [
                            twice.clone(),
                            products[rng.random_range(0..products.len())].clone(),
                            twice,
                        ]
                        .into_iter()
                        .take(rng.random_range(1..4))
                        .map(|p| json!({"product_id": p, "quantity": rng.random_range(1..4), "unit_price_minor": 500}))
                        .collect();
                        let amount = if rng.random_bool(0.1) {
                            0
                        } else {
                            rng.random_range(100..9000)
                        };
                        let currency = if rng.random_bool(0.3) { "EUR" } else { "USD" };
                        (
                            "order_placed",
                            json!({"order_id": format!("o-{id}"),
                                   "total": {"amount_minor": amount, "currency": currency},
                                   "lines": lines}),
                        )
                    }
                }
            };
            out.push((event(&id, &session, t, kind, data), expires));
        }
    }
    out
}

fn entries() -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for (v, expires) in synthetic(46) {
        let event = Event::decode(v.to_string().as_bytes(), usize::MAX).expect("valid event");
        entries.push(LogEntry::of(&event, expires).expect("encodes"));
    }
    let rees46 = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/rees46-2019-10-01-head.csv");
    let (records, _) = rees46_records(&rees46, None, None).expect("the REES46 file");
    for r in records {
        let event = Event::decode(&r.data, usize::MAX).expect("valid event");
        let expires = event.occurred_at.timestamp() + 400 * DAY;
        entries.push(LogEntry::of(&event, expires).expect("encodes"));
    }
    entries
}

#[test]
fn the_archive_sql_item_and_page_features_equal_the_rebuilds_and_leave_erased_sessions_out() {
    let entries = entries();
    let now = T0 + DAY;
    // Every 25th session was erased: its events stay in the (immutable) archive, listed in erasures/.
    let sessions: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.session_id.as_str()).collect();
    let erased: Vec<&str> = sessions.into_iter().step_by(25).collect();
    // The rebuild's way, over the events still within retention at the read and not erased.
    let rebuilt = |leave_out: &[&str]| -> BTreeMap<Key, Doc> {
        let kept: Vec<LogEntry> = entries
            .iter()
            .filter(|e| e.expires_at > now && !leave_out.contains(&e.session_id.as_str()))
            .cloned()
            .collect();
        let (docs, unreadable) = rebuild(kept);
        assert!(unreadable.is_empty());
        docs.into_iter()
            .filter(|(_, d)| matches!(d, Doc::Item(_) | Doc::Page(_)))
            .collect()
    };
    assert!(
        entries.iter().any(|e| e.expires_at <= now),
        "some events are past retention"
    );
    let expected = rebuilt(&erased);
    assert!(
        diff(&rebuilt(&[]), &expected).len() > 10,
        "the erased sessions move many items and pages"
    );
    let mut items = BTreeMap::new();
    let mut pages = BTreeMap::new();
    for doc in expected.values() {
        match doc {
            Doc::Item(i) => {
                items.insert(i.product_id.as_str(), i);
            }
            Doc::Page(p) => {
                pages.insert(p.path.as_str(), p);
            }
            _ => {}
        }
    }
    // The data reaches every rule.
    assert!(items.contains_key("p|pipe") && items.contains_key("p space"));
    assert!(items["cap00"].co_viewed.is_empty(), "past the co-view cap");
    assert!(items.values().any(|i| i.co_viewed.len() == 10));
    assert!(items.values().any(|i| !i.co_purchased.is_empty()));
    assert!(pages.values().any(|p| p.value.len() == 2), "two currencies");
    assert!(pages.values().any(|p| p.bounces > 0));
    assert!(pages.contains_key("(informational)"));

    // The archive's way: every row twice.
    let rows: Vec<ArchiveRow> = entries
        .iter()
        .map(|e| ArchiveRow::of(e).expect("row"))
        .collect();
    let twice: Vec<&ArchiveRow> = rows.iter().chain(rows.iter()).collect();
    let dir =
        std::env::temp_dir().join(format!("checkout-ai-batch-features-{}", std::process::id()));
    let written = write_archive(&dir, twice).expect("archive");
    assert_eq!(written.parquet_rows, 2 * entries.len());
    std::fs::create_dir_all(dir.join("erasures")).expect("erasures");
    let lines: String = erased
        .iter()
        .map(|s| format!("{}\n", serde_json::json!({ "session_id": s })))
        .collect();
    std::fs::write(dir.join("erasures/one-request.json"), lines).expect("erasures");
    let sql = batch_features(&dir, now).expect("batch features");
    let _ = std::fs::remove_dir_all(&dir);

    // Every item and page equal, and none on one side only.
    let differences = diff(&expected, &sql);
    assert!(
        differences.is_empty(),
        "{} differences, the first: {:#?}",
        differences.len(),
        &differences[..differences.len().min(3)]
    );
}
