//! REES46 replayed through Kinesis into the event log on moto, twice, with duplicates.

use checkout_ai::rees46::read_rows;
use checkout_ai_integration_tests::{fresh_stack, log_items, rees46};
use checkout_aws::Env;
use checkout_domain::ingest::LogEntry;
use checkout_domain::pseudonym::Pseudonymizer;
use std::collections::{BTreeMap, HashSet};

/// What the log must hold: the pure pipeline's entry for every distinct REES46 event.
fn expected_entries(env: &Env, file: &std::path::Path) -> BTreeMap<(String, String), LogEntry> {
    let config = ingest::Config::from_env(env).expect("config");
    let key = env.required("PSEUDONYM_KEY").expect("local key");
    let admission = config.admission(Pseudonymizer::new(key.as_bytes()).expect("key"));
    let now = chrono::Utc::now();
    read_rows(file)
        .expect("rows")
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let event = row.to_event(i as u64 + 1).expect("maps");
            let entry = admission
                .admit(&serde_json::to_vec(&event).expect("json"), now)
                .expect("admitted");
            ((entry.session_id.clone(), entry.event_id.clone()), entry)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_twice_with_in_batch_duplicates_leaves_exactly_the_unique_events() {
    let Some(file) = rees46() else { return };
    let stack = fresh_stack("replay");

    let first_replay = checkout_ai::replay(&stack, &file, Some(10), None)
        .await
        .expect("replay 1");
    assert_eq!(first_replay.rows, 17_434);
    assert_eq!(first_replay.records_put, 17_434 + 17_434 / 10);
    let run = checkout_ai::drive_ingest(&stack).await.expect("ingest 1");
    assert_eq!(run.counts.records, first_replay.records_put);
    assert_eq!(run.counts.quarantined, 0);
    assert!(
        run.counts.duplicates_in_batch >= 17_434 / 10,
        "{:?}",
        run.counts
    );
    assert_eq!(run.stream.partial_failures, 0);
    let after_first = log_items(&stack).await;

    let expected = expected_entries(&stack.env("IngestFunction").expect("env"), &file);
    assert_eq!(
        expected.len(),
        17_429,
        "17,434 rows minus the 5 identical repeats"
    );
    assert_eq!(after_first.len(), expected.len());
    for item in &after_first {
        assert_eq!(
            Some(item),
            expected.get(&(item.session_id.clone(), item.event_id.clone())),
            "item content"
        );
    }

    // The whole stream again: the mapping re-reads the first replay too, so every event arrives 3–4 times.
    checkout_ai::replay(&stack, &file, Some(10), None)
        .await
        .expect("replay 2");
    let rerun = checkout_ai::drive_ingest(&stack).await.expect("ingest 2");
    assert_eq!(rerun.counts.records, 2 * first_replay.records_put);
    let after_second = log_items(&stack).await;
    assert_eq!(after_second, after_first, "a replay changes nothing");

    // No raw user id anywhere in the log.
    let raw_ids: HashSet<String> = read_rows(&file)
        .expect("rows")
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    for item in &after_second {
        let uid = item.user_id.as_deref().expect("REES46 events carry a user");
        assert!(
            uid.starts_with("u_") && !raw_ids.contains(uid),
            "raw user id stored: {uid}"
        );
        let event = item.event().expect("body decodes");
        assert_eq!(event.user_id.as_deref(), Some(uid));
        // Every string anywhere in the stored body (no REES46 value other than user_id equals a user id).
        let body: serde_json::Value = serde_json::from_str(&item.body).expect("JSON");
        let mut pending = vec![&body];
        while let Some(v) = pending.pop() {
            match v {
                serde_json::Value::String(s) => {
                    assert!(!raw_ids.contains(s), "raw user id {s} in {}", item.body)
                }
                serde_json::Value::Array(a) => pending.extend(a),
                serde_json::Value::Object(o) => pending.extend(o.values()),
                _ => {}
            }
        }
    }
}
