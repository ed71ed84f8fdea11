//! The archiver over the event-log fixture `sam local invoke` uses (`events/dynamodb-event-log-inserts.json`),
//! with an in-memory sink: every INSERT becomes one row, a record that is no event is skipped, and a
//! sink that stops taking rows makes the first undelivered row's record the batch item failure.

use archiver::Function;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::memory::{Faults, MemoryArchive};
use std::time::Duration;

fn fixture() -> StreamEvent {
    serde_json::from_str(include_str!(
        "../../../events/dynamodb-event-log-inserts.json"
    ))
    .expect("fixture parses")
}

fn function(faults: Faults) -> Function<MemoryArchive> {
    Function {
        sink: MemoryArchive::new(2, faults),
        retry: RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(1),
        },
    }
}

#[tokio::test]
async fn every_insert_of_the_fixture_becomes_one_row() {
    let event = fixture();
    let inserts = event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .count();
    assert!(inserts >= 2, "the fixture has {inserts} inserts");
    let f = function(Faults::default());
    let (response, counts) = f.process(event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.archived, counts.unarchivable), (inserts, 0));
    let rows = f.sink.items();
    assert_eq!(rows.len(), inserts);
    for row in rows.values() {
        assert!(
            row.user_id.as_deref().is_none_or(|u| u.starts_with("u_")),
            "pseudonymous: {row:?}"
        );
        assert_eq!(row.dt.len(), 10);
    }
}

#[tokio::test]
async fn a_row_never_taken_is_the_checkpoint_and_a_broken_item_is_skipped() {
    let mut event = fixture();
    assert!(event.records.len() >= 4);
    // The first record is not an event at all: skipped, counted.
    event.records[0].change.new_image.insert(
        "body".into(),
        serde_dynamo::AttributeValue::S("not json".into()),
    );
    // Two rows per call; the second call and every one after fail: the rows of records 1 and 2 are
    // taken, record 3's is the first that is not.
    let expected = event.records[3].change.sequence_number.clone();
    let f = function(Faults {
        down_from_call: Some(2),
        ..Faults::default()
    });
    let (response, counts) = f.process(event).await;
    assert_eq!(counts.unarchivable, 1);
    assert_eq!(counts.archived, 2);
    assert_eq!(f.sink.items().len(), 2);
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, expected);
}
