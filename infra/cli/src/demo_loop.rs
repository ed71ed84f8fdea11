//! The demo's second half: a model trained and promoted from the real sessions, a simulated storefront
//! asking the scorer for decisions through the HTTP API's event shape, the decisions flowing back
//! through Kinesis into experiment units, and the evaluator's report.
//!
//! The REES46 outcomes were recorded before any decision of ours, so nothing we serve can change them:
//! the experiment is an **A/A test**. Its report must show no sample ratio mismatch (the demo fails if it
//! does), and any "significant" metric is a false positive, expected at about the alpha rate.

use crate::local::stack::LocalStack;
use crate::rees46;
use crate::BoxError;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::decision::config::{update_config, DEFAULT_CONFIG_KEY};
use checkout_domain::experiment::evaluation::report_keys;
use checkout_domain::ports::ObjectStore as _;
use checkout_domain::stats::analysis::effect_text;
use checkout_domain::stats::frequentist::Difference;
use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The demo's experiment.
pub const DEMO_EXPERIMENT: &str = "demo-cart-aa";

/// One storefront call: a session that reached the cart, at its first cart add.
#[derive(Debug, Clone)]
pub struct CartVisit {
    pub session_id: String,
    pub user_id: String,
    pub at: DateTime<Utc>,
    /// (product, unit price in cents) in the cart at that moment.
    pub items: Vec<(String, i64)>,
}

/// The sessions of the file that reach the cart, each at its first cart add, with what is in the cart
/// then (every product added up to that second).
pub fn cart_visits(file: &Path) -> Result<Vec<CartVisit>, BoxError> {
    let rows = rees46::read_rows(file)?;
    let mut first_cart: BTreeMap<&str, (DateTime<Utc>, &str)> = BTreeMap::new();
    let time = |r: &rees46::Row| {
        NaiveDateTime::parse_from_str(&r.event_time, "%Y-%m-%d %H:%M:%S UTC")
            .ok()
            .map(|t| t.and_utc())
    };
    for r in rows.iter().filter(|r| r.event_type == "cart") {
        if let Some(t) = time(r) {
            let slot = first_cart.entry(&r.user_session).or_insert((t, &r.user_id));
            if t < slot.0 {
                *slot = (t, &r.user_id);
            }
        }
    }
    let mut items: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.event_type == "cart") {
        if let (Some(t), Some((first, _))) = (time(r), first_cart.get(r.user_session.as_str())) {
            if t <= *first {
                if let Some(cents) = rees46::parse_cents(&r.price) {
                    items
                        .entry(&r.user_session)
                        .or_default()
                        .insert(r.product_id.clone(), cents);
                }
            }
        }
    }
    let mut visits: Vec<CartVisit> = first_cart
        .into_iter()
        .filter(|(session, _)| !session.is_empty())
        .map(|(session, (at, user))| CartVisit {
            session_id: session.to_string(),
            user_id: user.to_string(),
            at,
            items: items
                .get(session)
                .map(|m| m.iter().map(|(p, c)| (p.clone(), *c)).collect())
                .unwrap_or_default(),
        })
        .collect();
    visits.sort_by(|a, b| (a.at, &a.session_id).cmp(&(b.at, &b.session_id)));
    Ok(visits)
}

/// The API Gateway HTTP API (payload 2.0) event for a storefront's `POST /v1/decisions`, as API Gateway
/// would hand it to the scorer (the same shape as `events/apigw-decision.json`).
pub fn http_api_event(visit: &CartVisit, request_id: usize) -> Value {
    let body = json!({
        "session_id": visit.session_id,
        "user_id": visit.user_id,
        "placement": "cart",
        "context": {"device": "desktop", "country": "US", "cart": {"currency": "USD", "items":
            visit.items.iter().map(|(p, c)| json!({"product_id": p, "quantity": 1, "unit_price_minor": c}))
                .collect::<Vec<_>>()}},
    });
    json!({
        "version": "2.0",
        "routeKey": "POST /v1/decisions",
        "rawPath": "/v1/decisions",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost", "user-agent": "checkout-ai-demo-storefront"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "local",
            "http": {"method": "POST", "path": "/v1/decisions", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "checkout-ai-demo-storefront"},
            "requestId": format!("demo-{request_id}"), "routeKey": "POST /v1/decisions", "stage": "$default",
            "time": visit.at.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": visit.at.timestamp_millis(),
        },
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DecisionsSummary {
    pub total: usize,
    /// Distinct users asked for: the experiment's unit is the user, so this is how many units to expect.
    pub users: usize,
    pub by_action: BTreeMap<String, usize>,
    pub by_variant: BTreeMap<String, usize>,
    /// Decisions for members of the universal holdout, and how many of them offered anything but
    /// `none` (must be 0).
    pub holdout_decisions: usize,
    pub holdout_treated: usize,
    pub degraded: usize,
    /// Why, per degraded decision (the scorer's `degraded_reason`).
    pub degraded_by_reason: BTreeMap<String, usize>,
    /// Answers other than 200 (none expected).
    pub not_ok: usize,
}

/// Sends every visit through the scorer's Lambda entry point, at the visit's time.
pub async fn storefront(
    scorer: &scorer::Scorer,
    visits: &[CartVisit],
) -> Result<DecisionsSummary, BoxError> {
    let mut s = DecisionsSummary {
        users: visits
            .iter()
            .map(|v| v.user_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        ..DecisionsSummary::default()
    };
    for (i, visit) in visits.iter().enumerate() {
        let event = http_api_event(visit, i).to_string();
        let request = lambda_http::request::from_str(&event)?;
        let response = scorer
            .handle_at(request, visit.at + TimeDelta::seconds(1))
            .await
            .map_err(|e| e.to_string())?;
        s.total += 1;
        if response.status() != 200 {
            s.not_ok += 1;
            continue;
        }
        let body: Value = serde_json::from_slice(response.body().as_ref())?;
        let action = body["actions"][0]["action"]["type"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        *s.by_action.entry(action).or_default() += 1;
        let variant = body["experiment"]["variant"]
            .as_str()
            .unwrap_or("(none)")
            .to_string();
        *s.by_variant.entry(variant).or_default() += 1;
        if body["arm_reason"] == "holdout" {
            s.holdout_decisions += 1;
            if body["actions"][0]["action"]["type"] != "none"
                || body["actions"].as_array().map_or(0, Vec::len) > 1
            {
                s.holdout_treated += 1;
            }
        }
        if body["degraded"].as_bool() == Some(true) {
            s.degraded += 1;
            let reason = body["degraded_reason"].as_str().unwrap_or("?").to_string();
            *s.degraded_by_reason.entry(reason).or_default() += 1;
        }
    }
    Ok(s)
}

/// Puts the A/A experiment into the decision config (control and treatment, 50/50, on the cart).
pub async fn configure_experiment(stack: &LocalStack) -> Result<(), BoxError> {
    let store = crate::model::registry_store(stack).await?;
    let experiment = serde_json::from_value(json!({
        "id": DEMO_EXPERIMENT, "variations": ["control", "treatment"], "weights": [0.5, 0.5],
        "placement": "cart", "status": "running"
    }))?;
    update_config(&store, DEFAULT_CONFIG_KEY, |c| {
        c.experiments.retain(|e| e.id != DEMO_EXPERIMENT);
        c.experiments.push(experiment);
    })
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    pub id: String,
    pub units_per_arm: BTreeMap<String, u64>,
    pub srm_p_value: f64,
    pub srm_alarm: bool,
    /// Per metric and arm: raw and adjusted p-values, and whether significant after the correction.
    pub p_values: BTreeMap<String, Value>,
    pub significant_after_correction: Vec<String>,
    pub recommendation: String,
    /// What this run is, in words.
    pub reading: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub s3_bucket: String,
    pub s3_key: String,
    pub s3_html_key: String,
    pub json: String,
    pub html: String,
}

/// The system impact report's reading in the demo.
#[derive(Debug, Clone, Serialize)]
pub struct ImpactSummary {
    pub holdout_id: String,
    pub share: f64,
    /// Users analysed since the holdout began: held out (never treated) and served.
    pub holdout_units: u64,
    pub served_units: u64,
    pub too_early: bool,
    pub summary: String,
    pub json: String,
    pub html: String,
}

/// Runs the evaluator for one experiment (or the universal holdout's impact report) over the window
/// that ends on the hour after the last exposure; returns the window's end and the reports bucket.
async fn run_evaluator(
    stack: &LocalStack,
    last_exposure: DateTime<Utc>,
    experiment_id: &str,
) -> Result<(DateTime<Utc>, S3ObjectStore), BoxError> {
    let sdk = stack.sdk_config().await;
    let function =
        experiment_evaluator::Function::new(&stack.env("ExperimentEvaluatorFunction")?, &sdk)
            .map_err(|e| e.to_string())?;
    let window_end = (last_exposure + TimeDelta::hours(1))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or(last_exposure);
    let invocation = experiment_evaluator::Invocation {
        window_end: Some(window_end),
        experiment_id: Some(experiment_id.into()),
        drift_window_hours: None,
    };
    let run = function.run(&invocation, Utc::now()).await?;
    if let Some(f) = run.failed.iter().chain(&run.refused).next() {
        return Err(format!(
            "the evaluator did not report on {}: {} ({})",
            f.experiment_id.as_deref().unwrap_or(experiment_id),
            f.error,
            f.reason
        )
        .into());
    }
    let reports = S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ReportsBucket")?.name.clone(),
    };
    Ok((window_end, reports))
}

/// Copies one report object to `path`, returning its bytes.
async fn copy_report(reports: &S3ObjectStore, key: &str, path: &Path) -> Result<Vec<u8>, BoxError> {
    let bytes = reports
        .get(key)
        .await?
        .ok_or_else(|| format!("{key} is not in S3"))?
        .bytes;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, &bytes)?;
    Ok(bytes)
}

/// Runs the evaluator's system impact report for the same window, and copies it to `out`.
pub async fn impact(
    stack: &LocalStack,
    last_exposure: DateTime<Utc>,
    out: &Path,
) -> Result<ImpactSummary, BoxError> {
    use checkout_domain::experiment::holdout::UniversalHoldout;
    use checkout_domain::experiment::impact::impact_keys;
    let holdout = UniversalHoldout::default();
    let (window_end, reports) = run_evaluator(stack, last_exposure, &holdout.id).await?;
    let (json_key, html_key) = impact_keys(&holdout.id, window_end);
    let (json_path, html_path) = (out.join("impact.json"), out.join("impact.html"));
    let json = copy_report(&reports, &json_key, &json_path).await?;
    copy_report(&reports, &html_key, &html_path).await?;
    let report: Value = serde_json::from_slice(&json)?;
    Ok(ImpactSummary {
        holdout_id: holdout.id,
        share: report["holdout"]["share"].as_f64().unwrap_or_default(),
        holdout_units: report["holdout"]["holdout_units"]
            .as_u64()
            .unwrap_or_default(),
        served_units: report["holdout"]["served_units"]
            .as_u64()
            .unwrap_or_default(),
        too_early: report["too_early"].as_bool().unwrap_or(true),
        summary: report["summary"].as_str().unwrap_or_default().to_string(),
        json: json_path.display().to_string(),
        html: html_path.display().to_string(),
    })
}

/// Runs the evaluator over the window that ends after the last exposure, copies its report to `out`
/// and reads it.
pub async fn evaluate(
    stack: &LocalStack,
    last_exposure: DateTime<Utc>,
    out: &Path,
) -> Result<(ExperimentSummary, ReportSummary), BoxError> {
    let (window_end, reports) = run_evaluator(stack, last_exposure, DEMO_EXPERIMENT).await?;
    let bucket = reports.bucket.clone();
    let (json_key, html_key) = report_keys(DEMO_EXPERIMENT, window_end);
    let (json_path, html_path) = (out.join("report.json"), out.join("report.html"));
    let json_bytes = copy_report(&reports, &json_key, &json_path).await?;
    copy_report(&reports, &html_key, &html_path).await?;
    let report: Value = serde_json::from_slice(&json_bytes)?;
    let difference: Difference = serde_json::from_value(report["settings"]["difference"].clone())?;
    let mut p_values = BTreeMap::new();
    let mut significant = Vec::new();
    for m in report["metrics"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        let mut per_arm = serde_json::Map::new();
        for c in m["comparisons"].as_array().into_iter().flatten() {
            let variant = c["variant"].as_str().unwrap_or_default().to_string();
            if c["significant"].as_bool() == Some(true) {
                significant.push(format!("{name} / {variant}"));
            }
            per_arm.insert(
                variant,
                json!({"p_value": c["p_value"], "adjusted_p_value": c["adjusted_p_value"],
                       "significant": c["significant"], "effect": c["effect"], "error": c["error"],
                       "effect_text": c["effect"].as_f64().map(|e| effect_text(e, difference))}),
            );
        }
        p_values.insert(name, Value::Object(per_arm));
    }
    let comparisons: usize = p_values
        .values()
        .map(|v| v.as_object().map_or(0, |o| o.len()))
        .sum();
    let alpha = report["settings"]["alpha"].as_f64().unwrap_or(0.05);
    let reading = format!(
        "A/A test: the REES46 outcomes were recorded before any decision of ours, so the arms cannot differ \
         except by chance. {} of {comparisons} comparisons are significant after the {} correction at alpha {alpha}; \
         each comparison alone has a {alpha} chance of a false positive{}.",
        significant.len(),
        report["settings"]["correction"].as_str().unwrap_or("?"),
        if significant.is_empty() {
            ", and the correction keeps the chance of any across the family at about alpha"
        } else {
            ": a hit here is such a false positive, not an effect (the correction bounds, but does not remove, them)"
        }
    );
    let experiment = ExperimentSummary {
        id: DEMO_EXPERIMENT.into(),
        units_per_arm: report["arms"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["variant"].as_str().unwrap_or_default().to_string(),
                    a["units"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
        srm_p_value: report["srm"]["p_value"].as_f64().unwrap_or(f64::NAN),
        srm_alarm: report["srm"]["alarm"].as_bool().unwrap_or(true),
        p_values,
        significant_after_correction: significant,
        recommendation: report["recommendation"]["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        reading,
    };
    Ok((
        experiment,
        ReportSummary {
            s3_bucket: bucket,
            s3_key: json_key,
            s3_html_key: html_key,
            json: json_path.display().to_string(),
            html: html_path.display().to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    #[test]
    fn the_storefront_event_is_an_http_api_request_the_scorer_can_read() {
        let visit = CartVisit {
            session_id: "s-1".into(),
            user_id: "u-1".into(),
            at: DateTime::from_timestamp(1_569_888_000, 0).unwrap(),
            items: vec![("p-1".into(), 1999), ("p-2".into(), 500)],
        };
        let request = lambda_http::request::from_str(&http_api_event(&visit, 7).to_string())
            .expect("an HTTP API v2 event");
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri().path(), "/v1/decisions");
        match request.request_context() {
            lambda_http::request::RequestContext::ApiGatewayV2(c) => {
                assert_eq!(c.request_id.as_deref(), Some("demo-7"));
                assert_eq!(c.time_epoch, visit.at.timestamp_millis());
            }
            other => panic!("not an HTTP API v2 context: {other:?}"),
        }
        let body: Value = serde_json::from_slice(request.body().as_ref()).unwrap();
        assert_eq!(body["user_id"], "u-1");
        assert_eq!(body["context"]["cart"]["items"][1]["unit_price_minor"], 500);
        let parsed = checkout_domain::decision::request::parse_request(request.body().as_ref());
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn cart_visits_start_at_the_first_cart_add_with_the_cart_until_then() {
        let dir = std::env::temp_dir().join(format!("checkout-ai-visits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rees46.csv");
        std::fs::write(
            &file,
            "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
             2019-10-01 00:00:05 UTC,view,1,10,,b,5.00,7,s1\n\
             2019-10-01 00:00:09 UTC,cart,2,10,,b,12.50,7,s1\n\
             2019-10-01 00:00:07 UTC,cart,1,10,,b,5.00,7,s1\n\
             2019-10-01 00:01:00 UTC,cart,3,10,,b,1.00,7,s1\n\
             2019-10-01 00:02:00 UTC,view,4,10,,b,1.00,8,s2\n",
        )
        .unwrap();
        let visits = cart_visits(&file).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(visits.len(), 1, "s2 never reaches the cart");
        let v = &visits[0];
        assert_eq!((v.session_id.as_str(), v.user_id.as_str()), ("s1", "7"));
        assert_eq!(v.at, DateTime::from_timestamp(1_569_888_007, 0).unwrap());
        assert_eq!(v.items, vec![("1".to_string(), 500)]);
    }
}
