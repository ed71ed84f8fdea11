//! The local stack's description, as `infra/localstack.py create` writes it from template.yaml.

use checkout_aws::config::local_sdk_config;
use checkout_aws::Env;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub stream_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub batch_size: usize,
    #[serde(default)]
    pub maximum_retry_attempts: Option<u32>,
    /// `FilterCriteria` as the template declares it: `{"Filters": [{"Pattern": "<json>"}]}`.
    #[serde(default)]
    pub filter_criteria: Option<serde_json::Value>,
    /// The logical id of the on-failure destination (an SQS queue), if the mapping has one.
    #[serde(default)]
    pub on_failure: Option<String>,
}

impl EventSource {
    /// The `eventName` values the filter patterns accept (empty: no filter on `eventName`).
    pub fn event_names(&self) -> Result<Vec<String>, BoxError> {
        let mut names = Vec::new();
        let filters = self
            .filter_criteria
            .as_ref()
            .and_then(|f| f.get("Filters"))
            .and_then(|f| f.as_array());
        for f in filters.into_iter().flatten() {
            let Some(pattern) = f.get("Pattern").and_then(|p| p.as_str()) else {
                continue;
            };
            let pattern: serde_json::Value = serde_json::from_str(pattern)?;
            for n in pattern
                .get("eventName")
                .and_then(|n| n.as_array())
                .into_iter()
                .flatten()
            {
                names.extend(n.as_str().map(str::to_string));
            }
        }
        Ok(names)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LocalStack {
    pub endpoint: String,
    pub region: String,
    pub resources: BTreeMap<String, Resource>,
    /// Each function's environment variables, resolved.
    pub functions: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub event_sources: BTreeMap<String, Vec<EventSource>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl LocalStack {
    pub fn load(path: &Path) -> Result<Self, BoxError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "reading {}: {e} (is the local stack up? `make stack-up`)",
                path.display()
            )
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Resource, BoxError> {
        self.resources
            .get(logical_id)
            .ok_or_else(|| format!("the local stack has no resource {logical_id}").into())
    }

    /// A function's environment as the function would see it in Lambda.
    pub fn env(&self, function: &str) -> Result<Env, BoxError> {
        let vars = self
            .functions
            .get(function)
            .ok_or_else(|| format!("the local stack has no function {function}"))?;
        Ok(Env::from_pairs(
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }

    /// Who keeps the item and page features on this stack: the feature updater's `ITEM_PAGE_FEATURES`
    /// (the template's `ItemPageFeatures`; `make demo` creates its stack with `batch`).
    pub fn item_page_mode(&self) -> Result<checkout_domain::features::ItemPageMode, BoxError> {
        Ok(self
            .env("FeatureUpdaterFunction")?
            .parsed("ITEM_PAGE_FEATURES", Default::default())?)
    }

    /// A function's first event source of the given type.
    pub fn event_source(&self, function: &str, kind: &str) -> Result<&EventSource, BoxError> {
        self.event_sources
            .get(function)
            .and_then(|s| s.iter().find(|e| e.kind == kind))
            .ok_or_else(|| format!("{function} has no {kind} event source").into())
    }

    /// The on-failure queue of an event source, as the mapping sends to it: client and queue URL.
    pub fn on_failure_queue(
        &self,
        source: &EventSource,
        sdk: &aws_config::SdkConfig,
    ) -> Option<(aws_sdk_sqs::Client, String)> {
        let queue = self.resources.get(source.on_failure.as_deref()?)?;
        Some((aws_sdk_sqs::Client::new(sdk), queue.url.clone()?))
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        local_sdk_config(&self.endpoint, &self.region).await
    }
}
