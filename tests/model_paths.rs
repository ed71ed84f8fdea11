//! The propensity model end to end: the training path and the serving path build identical vectors for the
//! same session, a model trains on sessions exported from the event log, and the registry works on S3
//! (moto on 127.0.0.1) with the loader falling back when the champion is unusable or S3 is unreachable.

use checkout_ai::rees46;
use checkout_ai_integration_tests::{fresh_stack, rees46};
use checkout_aws::features::{from_feature_item, to_item};
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::features::rebuild::rebuild;
use checkout_domain::features::UciSession;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use checkout_domain::model::columns::{labelled_sessions, read_csv, write_csv, Dataset};
use checkout_domain::model::registry::{
    self, artifact_key, fallback_model, load_or_fallback, publish, Origin,
};
use checkout_domain::model::vectorizer::{VectorizerConfig, VectorizerSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Every REES46 row as a log entry, folded into feature docs as the updater would.
fn rees46_docs() -> Option<BTreeMap<Key, Doc>> {
    let rows = rees46::read_rows(&rees46()?).expect("REES46 rows");
    let entries: Vec<LogEntry> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.to_event(i as u64 + 1).ok())
        .map(|e| LogEntry::of(&e, i64::MAX / 2).expect("encodes"))
        .collect();
    let (docs, unreadable) = rebuild(entries);
    assert!(unreadable.is_empty());
    Some(docs)
}

/// A doc as the scorer would read it: written to a DynamoDB item and read back.
fn through_dynamodb(doc: &Doc) -> Doc {
    let (_, stored) = from_feature_item(to_item(doc, 1).expect("item")).expect("readable item");
    stored.doc
}

/// The sessions as `export-sessions` labels them, and the dataset the training reader makes of its CSV.
fn export(docs: &BTreeMap<Key, Doc>) -> (Vec<(String, UciSession, bool)>, Dataset) {
    let exported = labelled_sessions(docs);
    let mut csv = Vec::new();
    write_csv(
        &mut csv,
        exported.iter().map(|(_, row, label)| (row, *label)),
    )
    .unwrap();
    let data = read_csv(csv.as_slice()).unwrap();
    (exported, data)
}

#[test]
fn training_and_serving_build_identical_vectors_for_every_session() {
    let Some(docs) = rees46_docs() else { return };

    // Training path: the event-log export, written as CSV and read by the training reader.
    let (exported, training) = export(&docs);
    assert_eq!(training.bad_rows, 0);
    assert_eq!(training.rows.len(), exported.len());

    // Serving path: the session and page items as stored, joined on read.
    let stored: BTreeMap<Key, Doc> = docs
        .iter()
        .filter(|(_, d)| matches!(d, Doc::Session(_) | Doc::Page(_)))
        .map(|(k, d)| (k.clone(), through_dynamodb(d)))
        .collect();
    let page = |path: &str| match stored.get(&Key::page(path)) {
        Some(Doc::Page(p)) => Some(p),
        _ => None,
    };

    // Two vectorizers: the compiled-in UCI model's, and one fitted on this very export.
    let uci = fallback_model().unwrap().artifact().vectorizer.clone();
    let local = VectorizerSpec::fit(&VectorizerConfig::reference(), training.rows.iter());
    let mut distinct = BTreeSet::new();
    for ((session_id, _, _), train_row) in exported.iter().zip(&training.rows) {
        let Some(Doc::Session(s)) = stored.get(&Key::session(session_id)) else {
            panic!("session {session_id} is not stored");
        };
        let serve_row = s.uci(page);
        for spec in [&uci, &local] {
            let a: Vec<u64> = spec
                .transform(train_row)
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let b: Vec<u64> = spec
                .transform(&serve_row)
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(
                a, b,
                "session {session_id}: training and serving vectors differ"
            );
            distinct.insert(a);
        }
    }
    // The comparison is not vacuous: sessions differ from each other.
    assert!(
        distinct.len() > 1000,
        "only {} distinct vectors",
        distinct.len()
    );
}

#[test]
fn a_model_trains_on_sessions_exported_from_the_event_log() {
    let Some(docs) = rees46_docs() else { return };
    let (exported, data) = export(&docs);
    let naming = checkout_train::Naming {
        name: "purchase-propensity".into(),
        version: Some("rees46-test".into()),
        source: "sessions.csv".into(),
        created_at: chrono::Utc::now(),
    };
    let artifact =
        checkout_train::train(&data, &naming, &checkout_train::TrainConfig::default()).unwrap();
    assert_eq!(artifact.training.rows as usize, exported.len());
    assert_eq!(
        artifact.training.positives as usize,
        exported.iter().filter(|r| r.2).count()
    );
    // Better than chance out of sample (the export's label is "ordered in the session").
    let cv = &artifact.metrics.cross_validation;
    assert!(cv.mean_auc > 0.6, "mean CV AUC {}", cv.mean_auc);
    let model = checkout_domain::model::Model::decode(&artifact.encode().unwrap()).unwrap();
    assert_eq!(model.artifact(), &artifact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_on_s3_promotes_loads_and_falls_back() {
    let stack = fresh_stack("model");
    let sdk = stack.sdk_config().await;
    let store = S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ModelsBucket").unwrap().name.clone(),
    };
    let name = "purchase-propensity";
    let mut v1 = fallback_model().unwrap().artifact().clone();
    v1.version = "v1".into();
    let mut v2 = v1.clone();
    v2.version = "v2".into();
    v2.metrics.holdout.auc -= 0.001;
    publish(&store, &v1).await.unwrap();
    publish(&store, &v2).await.unwrap();
    // Versions are immutable on S3 too (If-None-Match).
    let mut changed = v1.clone();
    changed.intercept += 1.0;
    assert!(publish(&store, &changed).await.is_err());

    let first = registry::promote(&store, name, "v1", None, None, chrono::Utc::now())
        .await
        .unwrap();
    assert!(first.pointer_moved);
    let worse = registry::promote(&store, name, "v2", None, None, chrono::Utc::now())
        .await
        .unwrap();
    assert!(!worse.pointer_moved);
    // A bound, not a wait: generous, so that a loaded machine cannot turn a champion into the fallback.
    let budget = Duration::from_secs(60);
    let loaded = load_or_fallback(&store, name, budget).await.unwrap();
    assert_eq!(
        (loaded.origin, loaded.model.version()),
        (Origin::Champion, "v1")
    );

    // Corrupt the champion's artifact in place: the loader refuses it and serves the compiled-in model.
    store
        .client
        .put_object()
        .bucket(&store.bucket)
        .key(artifact_key(name, "v1"))
        .body(
            b"{\"format\":\"checkout-ai/propensity-model\",\"format_version\":1,\"body"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let loaded = load_or_fallback(&store, name, budget).await.unwrap();
    let Origin::Fallback { reason } = &loaded.origin else {
        panic!("expected the fallback, got {:?}", loaded.origin)
    };
    assert!(reason.contains("pins"), "{reason}");
    assert_eq!(loaded.model.version(), fallback_model().unwrap().version());

    // S3 unreachable: a closed port on 127.0.0.1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let offline =
        checkout_aws::config::local_sdk_config(&format!("http://{closed}"), "us-east-1").await;
    let unreachable = S3ObjectStore {
        client: s3_client(&offline),
        bucket: store.bucket.clone(),
    };
    let loaded = load_or_fallback(&unreachable, name, budget).await.unwrap();
    assert!(
        matches!(&loaded.origin, Origin::Fallback { reason } if reason.contains("S3 GetObject")),
        "{:?}",
        loaded.origin
    );
}
