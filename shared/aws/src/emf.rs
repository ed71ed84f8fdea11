//! Metrics in CloudWatch Embedded Metric Format (EMF): JSON log lines that CloudWatch turns into metrics
//! without an API call on the request path.
//!
//! The conventions are Powertools for AWS Lambda's:
//! - one namespace ([`NAMESPACE`]) and a `service` dimension on every metric (the function's short name);
//! - a `ColdStart` count, once per container, in its own document with the `function_name` dimension;
//! - metrics are collected during an invocation and flushed at its end, at most [`MAX_METRICS`] metrics
//!   per document and [`MAX_VALUES`] values per metric (the specification's limits), more documents when
//!   there are more;
//! - dimensions are low-cardinality by construction: a dimension value is one of a closed set the caller
//!   names (a placement, an action, a variant, a reason code), never a user, session or free text. Values
//!   are cut to [`MAX_DIMENSION_VALUE`] characters.
//!
//! A [`Metrics`] is one invocation's collector; [`Metrics::documents`] renders and drains it, and
//! [`Metrics::flush`] writes the documents to stdout, where the Lambda runtime hands them to CloudWatch
//! Logs. Tests validate the documents against the specification's JSON schema and limits
//! (`shared/aws/tests/emf.rs`).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The one namespace of every checkout-ai metric.
pub const NAMESPACE: &str = "checkout-ai";
/// At most this many metrics in one document (EMF specification).
pub const MAX_METRICS: usize = 100;
/// At most this many values of one metric in one document (EMF specification).
pub const MAX_VALUES: usize = 100;
/// At most this many dimensions in one dimension set (EMF specification).
pub const MAX_DIMENSIONS: usize = 30;
/// Dimension values are cut to this length (CloudWatch's limit is 1,024; ours are short names).
pub const MAX_DIMENSION_VALUE: usize = 250;
/// A collector that is never flushed (a function embedded in a local driver or a benchmark) stops
/// recording beyond this many values instead of growing without bound; Lambda flushes every invocation.
pub const MAX_BUFFERED_VALUES: usize = 65_536;

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Microseconds,
    Seconds,
    Percent,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Microseconds => "Microseconds",
            Unit::Seconds => "Seconds",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

static COLD_START: AtomicBool = AtomicBool::new(true);

type Dimensions = Vec<(&'static str, String)>;

/// One invocation's metrics, grouped by their extra dimensions.
#[derive(Debug)]
pub struct Metrics {
    service: &'static str,
    groups: BTreeMap<Dimensions, BTreeMap<&'static str, (Unit, Vec<f64>)>>,
    cold_start: bool,
    values: usize,
}

impl Metrics {
    /// A collector for `service` (the function's short name, e.g. `scorer`). The first collector of a
    /// container records the cold start.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            groups: BTreeMap::new(),
            cold_start: COLD_START.swap(false, Ordering::Relaxed),
            values: 0,
        }
    }

    /// A collector that records no cold start (tests and the local stack).
    pub fn warm(service: &'static str) -> Self {
        Self {
            service,
            groups: BTreeMap::new(),
            cold_start: false,
            values: 0,
        }
    }

    /// Adds one value of `name` with only the `service` dimension.
    pub fn add(&mut self, name: &'static str, unit: Unit, value: f64) {
        self.add_with(&[], name, unit, value);
    }

    /// Adds one value of `name` with extra dimensions (each a closed-set value, never an identifier).
    /// A non-finite value is dropped: CloudWatch rejects it.
    pub fn add_with(
        &mut self,
        dimensions: &[(&'static str, &str)],
        name: &'static str,
        unit: Unit,
        value: f64,
    ) {
        if !value.is_finite() || self.values >= MAX_BUFFERED_VALUES {
            return;
        }
        self.values += 1;
        let dims: Dimensions = dimensions
            .iter()
            .take(MAX_DIMENSIONS - 1)
            .map(|(k, v)| (*k, dimension_value(v)))
            .collect();
        self.groups
            .entry(dims)
            .or_default()
            .entry(name)
            .or_insert((unit, Vec::new()))
            .1
            .push(value);
    }

    /// Adds a count (a convenience for `add(name, Count, n)`).
    pub fn count(&mut self, name: &'static str, n: usize) {
        self.add(name, Unit::Count, n as f64);
    }

    /// The number of metric values collected so far.
    pub fn len(&self) -> usize {
        self.values
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && !self.cold_start
    }

    /// Renders the collected metrics as EMF documents at `at` and empties the collector.
    pub fn documents(&mut self, at: DateTime<Utc>) -> Vec<Value> {
        let mut docs = Vec::new();
        let timestamp = at.timestamp_millis();
        if std::mem::take(&mut self.cold_start) {
            let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|_| self.service.to_string());
            let mut doc = Map::new();
            doc.insert("service".into(), json!(self.service));
            doc.insert("function_name".into(), json!(dimension_value(&function)));
            doc.insert("ColdStart".into(), json!(1.0));
            docs.push(envelope(
                timestamp,
                vec!["service", "function_name"],
                vec![("ColdStart", Unit::Count)],
                doc,
            ));
        }
        self.values = 0;
        for (dims, metrics) in std::mem::take(&mut self.groups) {
            let names: Vec<&'static str> = std::iter::once("service")
                .chain(dims.iter().map(|(k, _)| *k))
                .collect();
            // Metrics with more values than one document takes continue in the next documents.
            let mut rest: Vec<(&'static str, Unit, &[f64])> = metrics
                .iter()
                .map(|(name, (unit, values))| (*name, *unit, values.as_slice()))
                .collect();
            while !rest.is_empty() {
                let mut doc = Map::new();
                doc.insert("service".into(), json!(self.service));
                for (k, v) in &dims {
                    doc.insert((*k).into(), json!(v));
                }
                let mut declared = Vec::new();
                let mut next = Vec::new();
                for (name, unit, values) in rest {
                    if declared.len() == MAX_METRICS {
                        next.push((name, unit, values));
                        continue;
                    }
                    let (now, later) = values.split_at(values.len().min(MAX_VALUES));
                    doc.insert(
                        name.into(),
                        if now.len() == 1 {
                            json!(now[0])
                        } else {
                            json!(now)
                        },
                    );
                    declared.push((name, unit));
                    if !later.is_empty() {
                        next.push((name, unit, later));
                    }
                }
                docs.push(envelope(timestamp, names.clone(), declared, doc));
                rest = next;
            }
        }
        docs
    }

    /// Writes the collected metrics to stdout, one document per line, and empties the collector. The
    /// Lambda runtime forwards stdout to CloudWatch Logs, which extracts the metrics.
    pub fn flush(&mut self) {
        let docs = self.documents(Utc::now());
        if docs.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        for doc in docs {
            // A failed write to stdout loses metrics, never the invocation.
            let _ = writeln!(out, "{doc}");
        }
        let _ = out.flush();
    }
}

fn dimension_value(v: &str) -> String {
    let v = if v.is_empty() { "none" } else { v };
    v.chars().take(MAX_DIMENSION_VALUE).collect()
}

fn envelope(
    timestamp: i64,
    dimensions: Vec<&'static str>,
    metrics: Vec<(&'static str, Unit)>,
    mut doc: Map<String, Value>,
) -> Value {
    let metrics: Vec<Value> = metrics
        .into_iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit.as_str()}))
        .collect();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(doc)
}

/// Checks a document against the specification's rules that a JSON schema cannot say (every dimension
/// and metric a directive names is a member of the root, values are numbers or arrays of at most
/// [`MAX_VALUES`] numbers) and its limits. Tests use it on every function's documents; the structure
/// itself is checked against the specification's schema in `shared/aws/tests/emf.rs`.
pub fn validate(doc: &Value) -> Result<(), String> {
    let aws = doc.get("_aws").ok_or("no _aws member")?;
    if !aws.get("Timestamp").is_some_and(Value::is_i64) {
        return Err("_aws.Timestamp is not an integer".into());
    }
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    for directive in directives {
        if directive["Namespace"] != NAMESPACE {
            return Err(format!("namespace {}", directive["Namespace"]));
        }
        for set in directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?
        {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > MAX_DIMENSIONS || set.first() != Some(&json!("service")) {
                return Err(format!("dimension set {set:?}"));
            }
            for name in set {
                let value = name.as_str().and_then(|n| doc.get(n));
                if !value.is_some_and(|v| {
                    v.as_str()
                        .is_some_and(|s| !s.is_empty() && s.len() <= MAX_DIMENSION_VALUE * 4)
                }) {
                    return Err(format!("dimension {name} has no string value"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or("Metrics is not an array")?;
        if metrics.len() > MAX_METRICS {
            return Err(format!("{} metrics in one directive", metrics.len()));
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no name")?;
            match doc.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if !values.is_empty()
                        && values.len() <= MAX_VALUES
                        && values.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name} has value {other:?}")),
            }
        }
    }
    Ok(())
}

/// The metric names in a set of documents, with their dimension names (tests and the dashboard check).
pub fn declared(docs: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for doc in docs {
        for directive in doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let dims: Vec<String> = directive["Dimensions"][0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            for m in directive["Metrics"].as_array().into_iter().flatten() {
                if let Some(name) = m["Name"].as_str() {
                    out.insert(name.to_string(), dims.clone());
                }
            }
        }
    }
    out
}

/// One function's documents checked whole: each [`validate`]s and names `service`, and every metric
/// they declare is one of `emitted` (the function's `METRICS`) or `ColdStart`. Returns what they
/// declare, as [`declared`] does (the functions' tests use it).
pub fn check_documents(
    docs: &[Value],
    service: &str,
    emitted: &[&str],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    for d in docs {
        validate(d)?;
        if d["service"] != service {
            return Err(format!(
                "a document of service {} in {service}'s",
                d["service"]
            ));
        }
    }
    let names = declared(docs);
    if let Some(name) = names
        .keys()
        .find(|n| !emitted.contains(&n.as_str()) && *n != "ColdStart")
    {
        return Err(format!("{name} is not listed in {service}'s METRICS"));
    }
    Ok(names)
}

/// Every value of metric `name` in the documents, in order (a single value or an array's).
pub fn values(docs: &[Value], name: &str) -> Vec<f64> {
    docs.iter()
        .flat_map(|d| match d.get(name) {
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_f64).collect(),
            Some(v) => v.as_f64().into_iter().collect(),
            None => Vec::new(),
        })
        .collect()
}
