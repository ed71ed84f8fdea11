//! The evaluator's Athena adapter against moto's Athena, with the real SDK client: the readout SQL goes
//! out as the query (the very file DuckDB runs), in the workgroup and database configured; the query is
//! polled to completion and its result pages come back as readout rows. moto answers a query with the
//! results seeded through its API (it runs no SQL, and does not return the execution parameters: those
//! are checked by `checkout_aws::athena`'s unit test; the SQL itself against DuckDB in
//! `infra/cli/tests/archive_readout.rs`).

use checkout_aws::athena::{Athena, AthenaReadout, READOUT_SQL};
use checkout_aws::config::local_sdk_config;
use checkout_domain::ports::{ReadoutQuery, ReadoutSource};
use chrono::TimeZone;
use serde_json::json;
use std::time::Duration;

const COLUMNS: [&str; 31] = checkout_domain::experiment::evaluation::ReadoutRow::COLUMNS;

/// Seeds moto's next Athena result (the header row, then the data rows).
fn seed(endpoint: &str, rows: &[Vec<String>]) {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!(COLUMNS
                .iter()
                .zip(r)
                .map(|(c, v)| (c.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>())
        })
        .collect();
    checkout_ai_integration_tests::seed_athena(
        endpoint,
        vec![checkout_ai_integration_tests::athena_result(
            &COLUMNS, &rows,
        )],
    );
}

#[tokio::test]
async fn the_readout_runs_the_sql_file_and_reads_every_result_row_back() {
    let endpoint = checkout_ai_integration_tests::moto();
    let sdk = local_sdk_config(endpoint, "us-east-1").await;
    let client = aws_sdk_athena::Client::new(&sdk);
    client
        .create_work_group()
        .name("archive-wg")
        .send()
        .await
        .expect("workgroup");
    // Columns: dimension, cohort, variant, status, first_at_ms, units, then the moments.
    let row = |dimension: &str, cohort: &str, variant: &str, units: u64| -> Vec<String> {
        let mut r = vec![
            dimension.to_string(),
            cohort.to_string(),
            variant.to_string(),
            "ok".to_string(),
            "1764000000000".to_string(),
            units.to_string(),
        ];
        r.extend((6..COLUMNS.len()).map(|i| format!("{}", i as u64 * units)));
        r
    };
    seed(
        endpoint,
        &[
            row("", "", "control", 1_200_000),
            row("", "", "treatment", 1_199_000),
            row("device", "mobile", "treatment", 400_000),
        ],
    );
    let readout = AthenaReadout(Athena {
        client: client.clone(),
        workgroup: "archive-wg".into(),
        database: "checkout_archive".into(),
        poll: Duration::from_millis(10),
        max_wait: Duration::from_secs(10),
    });
    let query = ReadoutQuery {
        experiment_id: "checkout-offer".into(),
        recovery: false,
        window_end: chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
            .unwrap(),
        now: chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 12, 5, 0)
            .unwrap(),
        currency: "USD".into(),
        long_run: None,
    };
    let rows = readout.readout(&query).await.expect("readout");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].variant.as_str(), rows[0].units),
        ("control", 1_200_000)
    );
    // Each moment is its column index times the units: m2_sxy is column 24, m3_sxy column 30.
    assert_eq!(rows[1].m2_sxy, 24 * 1_199_000);
    assert_eq!(
        (
            rows[2].dimension.as_str(),
            rows[2].cohort.as_str(),
            rows[2].first_at_ms,
            rows[2].m3_sxy
        ),
        ("device", "mobile", 1_764_000_000_000, 30 * 400_000)
    );
    assert_eq!(readout.name(), "athena:archive-wg");

    // What went out: the file, in the workgroup and database, with the parameters in order.
    let listed = client
        .list_query_executions()
        .work_group("archive-wg")
        .send()
        .await
        .expect("list");
    let id = listed
        .query_execution_ids()
        .first()
        .expect("a query")
        .clone();
    let sent = client
        .get_query_execution()
        .query_execution_id(id)
        .send()
        .await
        .expect("execution");
    let x = sent.query_execution().expect("execution");
    assert_eq!(x.query(), Some(READOUT_SQL));
    assert_eq!(
        x.query_execution_context().and_then(|c| c.database()),
        Some("checkout_archive")
    );
    assert_eq!(x.work_group(), Some("archive-wg"));
    // And a workgroup that does not exist is a store error, not a panic.
    let missing = AthenaReadout(Athena {
        workgroup: "no-such-wg".into(),
        ..readout.0
    });
    assert!(missing.readout(&query).await.is_err());
}
