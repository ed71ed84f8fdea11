//! The model registry in an object store (S3): immutable versions, a champion pointer, promotion records,
//! and the scorer's loader with its compiled-in fallback. Learned policies live in the same registry with
//! the same rules (see [`Registered`]; their promotion rule is in `crate::learning::promotion`).
//!
//! | key | what |
//! |---|---|
//! | `models/<name>/<version>/model.json` | an encoded [`ModelArtifact`], written once (`If-None-Match: *`) |
//! | `models/<name>/champion.json` | a [`ChampionPointer`]: the live version and its artifact's SHA-256 |
//! | `models/<name>/promotions/<decided-at>-<version>.json` | a [`PromotionRecord`] for every promotion attempt |
//!
//! The pointer is replaced only with `If-Match` on the ETag it was read with (or `If-None-Match: *` when
//! there was none), so two concurrent promotions cannot both win silently.

use super::artifact::{ArtifactError, ModelArtifact};
use super::columns::Dataset;
use super::metrics::roc_auc;
use super::scorer::Model;
use crate::ports::{Condition, ObjectStore, PutError, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The format of the registry's own documents (champion pointer, promotion record) this build reads and
/// writes.
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// The model compiled into every binary that scores: served when the champion cannot be loaded.
/// Regenerate it with `make fallback-model`.
const FALLBACK_ARTIFACT: &[u8] = include_bytes!("../../models/purchase-propensity.json");

pub fn artifact_key(name: &str, version: &str) -> String {
    format!("models/{name}/{version}/model.json")
}

pub fn champion_key(name: &str) -> String {
    format!("models/{name}/champion.json")
}

pub fn promotion_key(name: &str, decided_at: DateTime<Utc>, version: &str) -> String {
    format!(
        "models/{name}/promotions/{}-{version}.json",
        decided_at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// Names and versions become S3 key segments: keep them to a safe alphabet.
pub fn check_segment(what: &str, value: &str) -> Result<(), RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} `{value}` must be 1–128 characters of [A-Za-z0-9._-]"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChampionPointer {
    pub format_version: u32,
    pub name: String,
    pub version: String,
    pub artifact_key: String,
    pub artifact_sha256: String,
    pub promoted_at: DateTime<Utc>,
    pub promotion_record: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("model {name} has no champion")]
    NoChampion { name: String },
    #[error("no object at {key}")]
    Missing { key: String },
    #[error("champion pointer {key} is unreadable: {reason}")]
    Pointer { key: String, reason: String },
    #[error("artifact {key}: {source}")]
    Artifact {
        key: String,
        #[source]
        source: ArtifactError,
    },
    #[error("artifact {key} has SHA-256 {found}, but the champion pointer pins {pinned}")]
    Pinned {
        key: String,
        pinned: String,
        found: String,
    },
    #[error("version {key} already exists with different content; versions are immutable")]
    VersionExists { key: String },
    #[error("the champion pointer changed while promoting; nothing was moved, try again")]
    Raced,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the registry stores: an artifact with a name and a version, checked on the way in and out.
pub trait Registered: Sized {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    fn encode(&self) -> Result<Vec<u8>, ArtifactError>;
    fn decode(bytes: &[u8]) -> Result<Self, ArtifactError>;
}

impl Registered for ModelArtifact {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn encode(&self) -> Result<Vec<u8>, ArtifactError> {
        ModelArtifact::encode(self)
    }
    fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        ModelArtifact::decode(bytes)
    }
}

impl Registered for Model {
    fn name(&self) -> &str {
        Model::name(self)
    }
    fn version(&self) -> &str {
        Model::version(self)
    }
    fn encode(&self) -> Result<Vec<u8>, ArtifactError> {
        self.artifact().encode()
    }
    fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        Model::decode(bytes)
    }
}

/// Publishes an artifact under its name and version. Idempotent for identical bytes.
pub async fn publish<A: Registered>(
    store: &impl ObjectStore,
    artifact: &A,
) -> Result<String, RegistryError> {
    check_segment("name", artifact.name())?;
    check_segment("version", artifact.version())?;
    let key = artifact_key(artifact.name(), artifact.version());
    let bytes = artifact
        .encode()
        .map_err(|source| RegistryError::Artifact {
            key: key.clone(),
            source,
        })?;
    match store.put(&key, bytes.clone(), Condition::Absent).await {
        Ok(()) => Ok(key),
        Err(PutError::Precondition) => match store.get(&key).await? {
            Some(existing) if existing.bytes == bytes => Ok(key),
            _ => Err(RegistryError::VersionExists { key }),
        },
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// Reads and checks one version.
pub async fn load_version(
    store: &impl ObjectStore,
    name: &str,
    version: &str,
) -> Result<Model, RegistryError> {
    load_version_of(store, name, version).await
}

/// The model that served as `name` `version`: the registry's, or the compiled-in one when that is the
/// version (it is never published). `None` when neither is; only a store fault is an error.
pub async fn load_served_version(
    store: &impl ObjectStore,
    name: &str,
    version: &str,
) -> Result<Option<Model>, StoreError> {
    match load_version(store, name, version).await {
        Ok(m) => Ok(Some(m)),
        Err(RegistryError::Store(e)) => Err(e),
        Err(_) => Ok(fallback_model()
            .ok()
            .filter(|m| m.name() == name && m.version() == version)),
    }
}

/// Reads and checks one version of any registered artifact.
pub async fn load_version_of<A: Registered>(
    store: &impl ObjectStore,
    name: &str,
    version: &str,
) -> Result<A, RegistryError> {
    Ok(fetch_version::<A>(store, name, version).await?.0)
}

/// One version, checked, with the SHA-256 of its bytes (what a champion pointer pins).
pub async fn fetch_version<A: Registered>(
    store: &impl ObjectStore,
    name: &str,
    version: &str,
) -> Result<(A, String), RegistryError> {
    check_segment("name", name)?;
    check_segment("version", version)?;
    let key = artifact_key(name, version);
    let object = store
        .get(&key)
        .await?
        .ok_or_else(|| RegistryError::Missing { key: key.clone() })?;
    let artifact = decode_at(&key, &object.bytes, name, version)?;
    Ok((artifact, ModelArtifact::digest(&object.bytes)))
}

fn decode_at<A: Registered>(
    key: &str,
    bytes: &[u8],
    name: &str,
    version: &str,
) -> Result<A, RegistryError> {
    let artifact = A::decode(bytes).map_err(|source| RegistryError::Artifact {
        key: key.to_owned(),
        source,
    })?;
    if artifact.name() != name || artifact.version() != version {
        return Err(RegistryError::Artifact {
            key: key.to_owned(),
            source: ArtifactError::Corrupt(format!(
                "it holds {}@{}, not {name}@{version}",
                artifact.name(),
                artifact.version()
            )),
        });
    }
    Ok(artifact)
}

/// The champion pointer and its ETag, if there is one.
pub async fn champion_pointer(
    store: &impl ObjectStore,
    name: &str,
) -> Result<Option<(ChampionPointer, String)>, RegistryError> {
    check_segment("model name", name)?;
    let key = champion_key(name);
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let pointer: ChampionPointer =
        serde_json::from_slice(&object.bytes).map_err(|e| RegistryError::Pointer {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    if pointer.format_version != REGISTRY_FORMAT_VERSION || pointer.name != name {
        return Err(RegistryError::Pointer {
            key,
            reason: format!(
                "format version {} for model {} (expected {REGISTRY_FORMAT_VERSION} for {name})",
                pointer.format_version, pointer.name
            ),
        });
    }
    Ok(Some((pointer, object.etag)))
}

/// Reads the champion: the pointer, then the artifact it pins (checked against the pinned SHA-256).
pub async fn load_champion<A: Registered>(
    store: &impl ObjectStore,
    name: &str,
) -> Result<A, RegistryError> {
    let (pointer, _) = champion_pointer(store, name)
        .await?
        .ok_or_else(|| RegistryError::NoChampion { name: name.into() })?;
    let key = artifact_key(name, &pointer.version);
    let object = store
        .get(&key)
        .await?
        .ok_or_else(|| RegistryError::Missing { key: key.clone() })?;
    let found = ModelArtifact::digest(&object.bytes);
    if found != pointer.artifact_sha256 {
        return Err(RegistryError::Pinned {
            key,
            pinned: pointer.artifact_sha256,
            found,
        });
    }
    decode_at(&key, &object.bytes, name, &pointer.version)
}

/// Moves the champion pointer to `version` (pinning `sha256`) if it still has the ETag it was read with
/// (`current`; `None`: there was no pointer). `Ok(false)`: someone else moved it first.
pub async fn move_champion(
    store: &impl ObjectStore,
    name: &str,
    version: &str,
    sha256: String,
    current: Option<&str>,
    record_key: &str,
    now: DateTime<Utc>,
) -> Result<bool, RegistryError> {
    let pointer = ChampionPointer {
        format_version: REGISTRY_FORMAT_VERSION,
        name: name.to_owned(),
        version: version.to_owned(),
        artifact_sha256: sha256,
        artifact_key: artifact_key(name, version),
        promoted_at: now,
        promotion_record: record_key.to_owned(),
    };
    let condition = match current {
        Some(etag) => Condition::Matches(etag.to_owned()),
        None => Condition::Absent,
    };
    let body = serde_json::to_vec_pretty(&pointer).map_err(|e| RegistryError::Pointer {
        key: champion_key(name),
        reason: e.to_string(),
    })?;
    match store.put(&champion_key(name), body, condition).await {
        Ok(()) => Ok(true),
        Err(PutError::Precondition) => Ok(false),
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// Writes a promotion record once (a retry of the same record is a no-op).
pub async fn write_record(
    store: &impl ObjectStore,
    key: &str,
    record: &impl Serialize,
) -> Result<(), RegistryError> {
    let body =
        serde_json::to_vec_pretty(record).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    match store.put(key, body, Condition::Absent).await {
        Ok(()) | Err(PutError::Precondition) => Ok(()),
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// A promotion record: its decision, and whether the pointer moved.
pub trait Promotion: Serialize {
    fn name(&self) -> &str;
    fn record_key(&self) -> &str;
    fn decision_mut(&mut self) -> &mut Decision;
    fn set_pointer_moved(&mut self);
}

/// The end of every promotion: moves the pointer to `version` when the record's decision promotes (with
/// `If-Match` on `current`), notes a lost race in the reason, writes the record either way, and reports a
/// lost race as [`RegistryError::Raced`].
pub async fn conclude(
    store: &impl ObjectStore,
    version: &str,
    sha256: String,
    current: Option<&str>,
    now: DateTime<Utc>,
    record: &mut impl Promotion,
) -> Result<(), RegistryError> {
    let (name, key) = (record.name().to_owned(), record.record_key().to_owned());
    let mut raced = false;
    if record.decision_mut().promote {
        if move_champion(store, &name, version, sha256, current, &key, now).await? {
            record.set_pointer_moved();
        } else {
            raced = true;
            record
                .decision_mut()
                .reason
                .push_str("; but the pointer changed meanwhile, so it was not moved");
        }
    }
    write_record(store, &key, record).await?;
    if raced {
        return Err(RegistryError::Raced);
    }
    Ok(())
}

impl Promotion for PromotionRecord {
    fn name(&self) -> &str {
        &self.name
    }
    fn record_key(&self) -> &str {
        &self.record_key
    }
    fn decision_mut(&mut self) -> &mut Decision {
        &mut self.decision
    }
    fn set_pointer_moved(&mut self) {
        self.pointer_moved = true;
    }
}

/// The model compiled into the binary.
pub fn fallback_model() -> Result<Model, ArtifactError> {
    Model::decode(FALLBACK_ARTIFACT)
}

/// Where the served model came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum Origin {
    Champion,
    /// The compiled-in model, and why the champion was not used.
    Fallback {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub model: Model,
    pub origin: Origin,
}

/// The scorer's cold-start load: the champion within `budget`, else the compiled-in model. The failure is
/// logged as an error with its reason; only a broken fallback (a build defect) is an `Err`.
pub async fn load_or_fallback(
    store: &impl ObjectStore,
    name: &str,
    budget: Duration,
) -> Result<Loaded, ArtifactError> {
    let (model, origin) = champion_or(store, name, budget, fallback_model).await?;
    Ok(Loaded { model, origin })
}

/// Any registered artifact's cold-start load: the champion of `name` within `budget`, else `fallback()`
/// (logged as an error with the reason, which the origin carries). Only a broken fallback is an `Err`.
pub async fn champion_or<A: Registered>(
    store: &impl ObjectStore,
    name: &str,
    budget: Duration,
    fallback: impl FnOnce() -> Result<A, ArtifactError>,
) -> Result<(A, Origin), ArtifactError> {
    let outcome = match tokio::time::timeout(budget, load_champion::<A>(store, name)).await {
        Ok(result) => result,
        Err(_) => Err(RegistryError::Timeout(budget)),
    };
    match outcome {
        Ok(model) => {
            tracing::info!(
                model = name,
                version = model.version(),
                "loaded the champion model"
            );
            Ok((model, Origin::Champion))
        }
        Err(error) => {
            let model = fallback()?;
            let reason = chain(&error);
            tracing::error!(
                model = name,
                error = %reason,
                fallback = %format!("{}@{}", model.name(), model.version()),
                "champion model unavailable; serving the compiled-in fallback"
            );
            Ok((model, Origin::Fallback { reason }))
        }
    }
}

/// An error with its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contender {
    pub version: String,
    /// AUC on the comparison basis; `None` when it could not be computed (e.g. an unreadable champion).
    pub auc: Option<f64>,
}

/// What the AUCs were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// The holdout AUCs recorded in the artifacts; `comparable` when both used the same holdout.
    RecordedHoldout {
        challenger_holdout: String,
        champion_holdout: Option<String>,
        comparable: bool,
    },
    /// Both models scored now on the same labelled file.
    EvaluationData { sha256: String, rows: u64 },
}

impl Basis {
    /// Whether both AUCs were measured on the same rows.
    pub fn comparable(&self) -> bool {
        match self {
            Basis::EvaluationData { .. } => true,
            Basis::RecordedHoldout { comparable, .. } => *comparable,
        }
    }
}

/// The outcome of the promotion rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub promote: bool,
    /// The pointer moves only because an operator overrode the rule.
    pub overridden: bool,
    pub reason: String,
}

impl Decision {
    /// What the rule decided, with no override.
    pub fn verdict(promote: bool, reason: String) -> Self {
        Self {
            promote,
            overridden: false,
            reason,
        }
    }

    /// The rule refused for `reason`; an override (with its reason) promotes anyway and says so.
    pub fn refused(reason: String, override_reason: Option<&str>) -> Self {
        match override_reason {
            Some(why) => Self {
                promote: true,
                overridden: true,
                reason: format!("{reason}; promoted by override: {why}"),
            },
            None => Self::verdict(false, reason),
        }
    }
}

/// The promotion rule: the challenger replaces the champion only when its AUC on a common basis is at
/// least the champion's. An explicit override (with its reason) promotes anyway and says so.
pub fn decide(
    challenger: &Contender,
    champion: Option<&Contender>,
    comparable: bool,
    override_reason: Option<&str>,
) -> Decision {
    let verdict = Decision::verdict;
    let refused = |reason| Decision::refused(reason, override_reason);
    let Some(champion) = champion else {
        return verdict(true, "there is no champion yet".into());
    };
    if champion.version == challenger.version {
        return verdict(
            false,
            format!("{} is already the champion", challenger.version),
        );
    }
    match (challenger.auc, champion.auc) {
        (_, None) => verdict(true, "the champion cannot be evaluated".into()),
        (None, Some(_)) => refused("the challenger cannot be evaluated".into()),
        (Some(_), Some(_)) if !comparable => refused(
            "the holdout AUCs were measured on different data; pass evaluation data to compare"
                .into(),
        ),
        (Some(new), Some(old)) if new >= old => verdict(
            true,
            format!("challenger AUC {new:.4} ≥ champion AUC {old:.4}"),
        ),
        (Some(new), Some(old)) => {
            refused(format!("challenger AUC {new:.4} < champion AUC {old:.4}"))
        }
    }
}

/// What `promote` wrote (or would have).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub format_version: u32,
    pub name: String,
    pub decided_at: DateTime<Utc>,
    pub challenger: Contender,
    pub champion: Option<Contender>,
    pub basis: Basis,
    pub decision: Decision,
    /// Whether the pointer now names the challenger.
    pub pointer_moved: bool,
    pub record_key: String,
}

/// Compares a published challenger with the champion, moves the pointer when the rule allows (see
/// [`decide`]), and writes a promotion record either way. `evaluation` scores both models on the same rows.
pub async fn promote(
    store: &impl ObjectStore,
    name: &str,
    challenger_version: &str,
    evaluation: Option<&Dataset>,
    override_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<PromotionRecord, RegistryError> {
    let (challenger_model, challenger_sha256) =
        fetch_version::<Model>(store, name, challenger_version).await?;
    let pointer = champion_pointer(store, name).await?;
    // An unreadable champion is reported and compared as "cannot be evaluated".
    let champion_model = match &pointer {
        Some((p, _)) => match load_version(store, name, &p.version).await {
            Ok(model) => Some(model),
            Err(e) => {
                tracing::warn!(model = name, error = %e, "the current champion cannot be loaded");
                None
            }
        },
        None => None,
    };
    let auc_of = |model: &Model| match evaluation {
        Some(data) => {
            let scores: Vec<f64> = data
                .rows
                .iter()
                .map(|r| model.probability(&model.vectorize(r)))
                .collect();
            roc_auc(&scores, &data.labels)
        }
        None => Some(model.artifact().metrics.holdout.auc),
    };
    let challenger = Contender {
        version: challenger_version.to_owned(),
        auc: auc_of(&challenger_model),
    };
    let champion = pointer.as_ref().map(|(p, _)| Contender {
        version: p.version.clone(),
        auc: champion_model.as_ref().and_then(auc_of),
    });
    let holdout_of = |m: &Model| m.artifact().training.holdout.id.clone();
    let basis = match evaluation {
        Some(data) => Basis::EvaluationData {
            sha256: data.sha256.clone(),
            rows: data.rows.len() as u64,
        },
        None => {
            let champion_holdout = champion_model.as_ref().map(holdout_of);
            let challenger_holdout = holdout_of(&challenger_model);
            Basis::RecordedHoldout {
                comparable: champion_holdout.as_ref() == Some(&challenger_holdout),
                challenger_holdout,
                champion_holdout,
            }
        }
    };
    let decision = decide(
        &challenger,
        champion.as_ref(),
        basis.comparable(),
        override_reason,
    );
    if decision.overridden {
        tracing::warn!(model = name, challenger = challenger_version, reason = %decision.reason, "promotion by override");
    }
    let record_key = promotion_key(name, now, challenger_version);
    let mut record = PromotionRecord {
        format_version: REGISTRY_FORMAT_VERSION,
        name: name.to_owned(),
        decided_at: now,
        challenger,
        champion,
        basis,
        decision,
        pointer_moved: false,
        record_key: record_key.clone(),
    };
    let current = pointer.as_ref().map(|(_, etag)| etag.as_str());
    conclude(
        store,
        challenger_version,
        challenger_sha256,
        current,
        now,
        &mut record,
    )
    .await?;
    Ok(record)
}
