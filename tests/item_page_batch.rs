//! The item and page batch run (`ItemPageBatchFunction`) against moto, with the real SDK clients: the
//! two feature queries go to Athena (the very files DuckDB runs) in the stack's workgroup and database,
//! their results come back as text with NULLs and are folded into items and pages, and only what differs
//! from the features table is written. moto answers each query with results seeded through its API (it
//! runs no SQL: the SQL itself is held equal to the folds on DuckDB in
//! `infra/cli/tests/batch_features.rs`).

use checkout_ai_integration_tests::{athena_result, seed_athena as seed};
use checkout_aws::athena::{ITEM_FEATURES_SQL, PAGE_FEATURES_SQL};
use checkout_domain::features::batch::{self, ItemRow, PageRow};
use checkout_domain::features::{Doc, Key};
use checkout_domain::ports::{FeatureReader, FeatureWriter, Write};
use chrono::TimeZone;
use std::collections::BTreeMap;

/// Rows as Athena returns them.
fn result<T: serde::Serialize>(columns: &[&str], rows: &[T]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).expect("row"))
        .collect();
    athena_result(columns, &rows)
}

fn item(kind: &str, product: &str, other: Option<&str>, sessions: u32) -> ItemRow {
    let partner = other.is_some();
    ItemRow {
        row_kind: kind.into(),
        product_id: product.into(),
        other_id: other.map(str::to_string),
        views: 3,
        cart_adds: 1,
        purchases: 1,
        units: 2,
        sessions,
        last_event_at: (!partner).then(|| "2019-10-01 00:00:05.250".to_string()),
        expires_at: (!partner).then_some(4_000_000_000),
        place: partner.then_some(1),
    }
}

fn page(kind: &str, path: &str, value: Option<(&str, i64)>) -> PageRow {
    PageRow {
        row_kind: kind.into(),
        page_path: path.into(),
        currency: value.map(|(c, _)| c.to_string()),
        amount: value.map(|(_, a)| a),
        views: 4,
        unique_views: 2,
        entrances: 1,
        bounces: 0,
        exits: 1,
        last_event_at: Some("2019-10-01 00:00:07".into()),
        expires_at: Some(4_000_000_000),
    }
}

#[tokio::test]
async fn a_run_queries_athena_and_writes_only_the_items_and_pages_that_changed() {
    let endpoint = checkout_ai_integration_tests::moto();
    let stack = checkout_ai_integration_tests::fresh_stack("item-page-batch");
    let env = stack.env("ItemPageBatchFunction").expect("function env");
    let sdk = stack.sdk_config().await;
    let workgroup = env
        .required("ARCHIVE_WORKGROUP")
        .expect("workgroup")
        .to_string();
    let athena = aws_sdk_athena::Client::new(&sdk);
    athena
        .create_work_group()
        .name(&workgroup)
        .send()
        .await
        .expect("workgroup");
    let mut function = item_page_batch::Function::new(&env, &sdk).expect("function");
    function.athena.poll = std::time::Duration::from_millis(10);

    let items = vec![
        item("item", "p1", None, 2),
        item("co_viewed", "p1", Some("p 2|x"), 2),
        item("item", "p 2|x", None, 1),
    ];
    let pages = vec![
        page("page", "/cart", None),
        page("value", "/cart", Some(("USD", 1500))),
        page("page", "/", None),
    ];
    let expected = batch::docs(
        batch::items(&items).expect("items"),
        batch::pages(&pages).expect("pages"),
    );
    // The table already holds `/` as the run computes it, and an older p1.
    let store = &function.store;
    let put = |doc: Doc| Write::put(doc, checkout_domain::ports::Expect::Absent);
    let mut old_p1 = expected[&Key::item("p1")].clone();
    if let Doc::Item(i) = &mut old_p1 {
        i.views = 1;
    }
    store
        .commit(vec![put(expected[&Key::page("/")].clone())])
        .await
        .expect("seed /");
    store.commit(vec![put(old_p1)]).await.expect("seed p1");

    seed(
        endpoint,
        vec![
            result(&ItemRow::COLUMNS, &items),
            result(&PageRow::COLUMNS, &pages),
        ],
    );
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
        .unwrap();
    let invocation = item_page_batch::Invocation { now: Some(now) };
    let counts = function.run(&invocation, now).await.expect("run");
    assert_eq!(
        (counts.computed, counts.written, counts.unchanged),
        (4, 3, 1)
    );
    assert_eq!(counts.write_units, 3);

    let keys: Vec<Key> = expected.keys().cloned().collect();
    let live: BTreeMap<Key, Doc> = store
        .get_many(&keys)
        .await
        .expect("read back")
        .into_iter()
        .map(|(k, s)| (k, s.doc))
        .collect();
    assert_eq!(live, expected);
    match &live[&Key::item("p1")] {
        Doc::Item(i) => assert_eq!((i.views, i.co_viewed[0].product_id.as_str()), (3, "p 2|x")),
        other => panic!("{other:?}"),
    }

    // Both files went to Athena, in the stack's workgroup and database.
    let ids = athena
        .list_query_executions()
        .work_group(&workgroup)
        .send()
        .await
        .expect("list")
        .query_execution_ids()
        .to_vec();
    let mut sent = Vec::new();
    for id in ids {
        let x = athena
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .expect("execution");
        let x = x.query_execution().expect("execution").clone();
        assert_eq!(
            x.query_execution_context().and_then(|c| c.database()),
            env.optional("ARCHIVE_DATABASE")
        );
        sent.push(x.query().unwrap_or_default().to_string());
    }
    sent.sort();
    let mut files = vec![ITEM_FEATURES_SQL.to_string(), PAGE_FEATURES_SQL.to_string()];
    files.sort();
    assert_eq!(sent, files);

    // A result the fold cannot use (a partner of no item) is refused, not retried, and writes nothing.
    seed(
        endpoint,
        vec![
            result(
                &ItemRow::COLUMNS,
                &[item("co_viewed", "ghost", Some("p1"), 1)],
            ),
            result(&PageRow::COLUMNS, &pages),
        ],
    );
    let err = function.run(&invocation, now).await.unwrap_err();
    assert!(!err.retryable(), "{err}");
    assert_eq!(err.reason_code(), "bad_rows");
}
