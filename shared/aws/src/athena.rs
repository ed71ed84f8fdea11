//! SQL on the event archive with Athena: the files DuckDB runs locally (`sql/`) over the archive's Glue
//! table, in the archive's workgroup, their parameters as execution parameters. The experiment readout
//! (the evaluator) and the item and page features (the batch run) use one query runner ([`Athena`]).

use crate::error::store_error;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
#[cfg(feature = "athena-readout")]
use checkout_domain::experiment::evaluation::ReadoutRow;
use checkout_domain::features::batch::{ItemRow, PageRow};
use checkout_domain::ports::StoreError;
#[cfg(feature = "athena-readout")]
use checkout_domain::ports::{ReadoutQuery, ReadoutSource};
use std::collections::HashMap;
use std::time::Duration;

#[cfg(feature = "athena-readout")]
/// The readout, compiled in: the evaluator runs exactly the file the tests and the demo run.
pub const READOUT_SQL: &str = include_str!("../../../sql/experiment_readout.sql");

/// The item and page features, compiled in, as `checkout-ai`'s batch run and its tests run them.
pub const ITEM_FEATURES_SQL: &str = include_str!("../../../sql/item_features.sql");
pub const PAGE_FEATURES_SQL: &str = include_str!("../../../sql/page_features.sql");

/// Runs a query in the archive's workgroup and database and reads its result rows back.
#[derive(Debug, Clone)]
pub struct Athena {
    pub client: aws_sdk_athena::Client,
    pub workgroup: String,
    pub database: String,
    /// How often the query's state is polled, and how long it may run before the run is retried.
    pub poll: Duration,
    pub max_wait: Duration,
}

/// One result row: column name → text, `None` for SQL NULL.
pub type Cells = HashMap<String, Option<String>>;

impl Athena {
    /// Runs `sql` with `parameters` (SQL text, in the file's order) and returns its rows.
    pub async fn query(
        &self,
        sql: &str,
        parameters: Vec<String>,
    ) -> Result<Vec<Cells>, StoreError> {
        let started = self
            .client
            .start_query_execution()
            .query_string(sql)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.database)
                    .build(),
            )
            .work_group(&self.workgroup)
            .set_execution_parameters(Some(parameters))
            .send()
            .await
            .map_err(|e| store_error("Athena StartQueryExecution", e))?;
        let id = started
            .query_execution_id()
            .ok_or_else(|| StoreError::permanent("Athena StartQueryExecution", "no query id"))?
            .to_string();
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            let state = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| store_error("Athena GetQueryExecution", e))?;
            let status = state.query_execution().and_then(|x| x.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => break,
                Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                    let reason = status
                        .and_then(|s| s.state_change_reason())
                        .unwrap_or("no reason given")
                        .to_string();
                    return Err(StoreError::permanent("Athena query", reason));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError {
                        operation: "Athena query",
                        retryable: true,
                        source: format!("query {id} still running after {:?}", self.max_wait)
                            .into(),
                    });
                }
                _ => tokio::time::sleep(self.poll).await,
            }
        }
        let mut rows = Vec::new();
        let mut header: Option<Vec<String>> = None;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_query_results()
                .query_execution_id(&id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| store_error("Athena GetQueryResults", e))?;
            for r in page.result_set().map(|s| s.rows()).unwrap_or_default() {
                let cells: Vec<Option<String>> = r
                    .data()
                    .iter()
                    .map(|d| d.var_char_value().map(str::to_string))
                    .collect();
                match &header {
                    None => {
                        header = Some(cells.into_iter().map(Option::unwrap_or_default).collect())
                    }
                    Some(names) => rows.push(names.iter().cloned().zip(cells).collect()),
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(rows)
    }
}

#[cfg(feature = "athena-readout")]
/// A string as a SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(feature = "athena-readout")]
/// The execution parameters, in the SQL's order. Athena substitutes them as SQL text.
pub fn parameters(q: &ReadoutQuery) -> Vec<String> {
    let (long_run, stop, tail_end) = q.long_run_parameters();
    vec![
        literal(&q.experiment_id),
        q.recovery.to_string(),
        literal(&ReadoutQuery::timestamp(q.window_end)),
        q.now.timestamp().to_string(),
        literal(&q.currency),
        long_run.to_string(),
        literal(&stop),
        literal(&tail_end),
    ]
}

/// One result row as `T`: the `integer` columns as numbers (decimal sums come back as text, "123" or
/// "123.0": integers by construction), NULL as JSON null, the rest as strings.
pub fn typed<T: serde::de::DeserializeOwned>(
    cells: &Cells,
    integer: impl Fn(&str) -> bool,
) -> Result<T, StoreError> {
    let mut v = serde_json::Map::new();
    for (k, text) in cells {
        let value = match text {
            None => serde_json::Value::Null,
            Some(text) if integer(k) => {
                let int = text.split('.').next().unwrap_or(text);
                serde_json::Value::Number(
                    int.parse::<i64>()
                        .map(serde_json::Number::from)
                        .map_err(|e| {
                            StoreError::permanent("Athena result", format!("{k}={text}: {e}"))
                        })?,
                )
            }
            Some(text) => serde_json::Value::String(text.clone()),
        };
        v.insert(k.clone(), value);
    }
    serde_json::from_value(serde_json::Value::Object(v))
        .map_err(|e| StoreError::permanent("Athena result", e))
}

#[cfg(feature = "athena-readout")]
/// One result row (column name → text) as a readout row.
pub fn row(cells: &Cells) -> Result<ReadoutRow, StoreError> {
    typed(cells, |k| !ReadoutRow::TEXT_COLUMNS.contains(&k))
}

/// The item and page features at `now` (epoch seconds): `sql/item_features.sql` and
/// `sql/page_features.sql` on Athena, as the rows `checkout_domain::features::batch` folds.
pub async fn feature_rows(
    athena: &Athena,
    now: i64,
) -> Result<(Vec<ItemRow>, Vec<PageRow>), StoreError> {
    let items = athena
        .query(ITEM_FEATURES_SQL, vec![now.to_string()])
        .await?
        .iter()
        .map(|c| typed(c, |k| ItemRow::INTEGER_COLUMNS.contains(&k)))
        .collect::<Result<_, _>>()?;
    let pages = athena
        .query(PAGE_FEATURES_SQL, vec![now.to_string()])
        .await?
        .iter()
        .map(|c| typed(c, |k| PageRow::INTEGER_COLUMNS.contains(&k)))
        .collect::<Result<_, _>>()?;
    Ok((items, pages))
}

#[cfg(feature = "athena-readout")]
/// The evaluator's readout on Athena.
#[derive(Debug, Clone)]
pub struct AthenaReadout(pub Athena);

#[cfg(feature = "athena-readout")]
impl ReadoutSource for AthenaReadout {
    fn name(&self) -> String {
        format!("athena:{}", self.0.workgroup)
    }

    async fn readout(&self, q: &ReadoutQuery) -> Result<Vec<ReadoutRow>, StoreError> {
        self.0
            .query(READOUT_SQL, parameters(q))
            .await?
            .iter()
            .map(row)
            .collect()
    }
}

#[cfg(feature = "athena-readout")]
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parameters_are_sql_literals_in_the_files_order() {
        let q = ReadoutQuery {
            experiment_id: "o'brien".into(),
            recovery: true,
            window_end: chrono::Utc
                .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
                .unwrap(),
            now: chrono::Utc
                .with_ymd_and_hms(2026, 11, 30, 12, 5, 0)
                .unwrap(),
            currency: "USD".into(),
            long_run: None,
        };
        assert_eq!(
            parameters(&q),
            [
                "'o''brien'",
                "true",
                "'2026-11-30 12:00:00'",
                "1796040300",
                "'USD'",
                "false",
                "'2026-11-30 12:00:00'",
                "'2026-11-30 12:00:00'"
            ]
        );
        assert_eq!(READOUT_SQL.matches("CAST(? AS").count(), 8);
        let stopped = ReadoutQuery {
            long_run: Some((
                chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
                chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            )),
            ..q
        };
        assert_eq!(
            parameters(&stopped)[5..],
            ["true", "'2026-11-01 00:00:00'", "'2026-12-01 00:00:00'"]
        );
    }

    #[test]
    fn a_result_row_reads_back_with_decimal_text() {
        let mut cells: Cells = HashMap::new();
        for k in &ReadoutRow::COLUMNS {
            cells.insert((*k).into(), Some("12".into()));
        }
        cells.insert("m1_sxx".into(), Some("250000000000.0".into()));
        cells.insert("dimension".into(), Some("device".into()));
        cells.insert("cohort".into(), Some("mobile".into()));
        cells.insert("variant".into(), Some("treatment".into()));
        cells.insert("status".into(), Some("ok".into()));
        let r = row(&cells).unwrap();
        assert_eq!(
            (
                r.dimension.as_str(),
                r.cohort.as_str(),
                r.variant.as_str(),
                r.units,
                r.m1_sxx
            ),
            ("device", "mobile", "treatment", 12, 250_000_000_000)
        );
        cells.insert("m0_sx".into(), Some("x".into()));
        assert!(!row(&cells).unwrap_err().retryable);
    }
}
