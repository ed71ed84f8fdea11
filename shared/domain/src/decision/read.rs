//! Reading a decision's features: one batch read for the session, the user and the cart's products, then
//! the session's page rates from a per-container cache.
//!
//! Page rates (bounce, exit, page value) are site-wide aggregates over many sessions that move slowly,
//! and they cannot be keyed before the session is read (its pages are in it). They are cached per
//! container for [`PageCache`]'s TTL; only pages missing from the cache cost a second batch read, in the
//! same time budget. A warm container with a steady set of pages therefore reads once per decision.
//! A page the table does not have is cached as absent (it counts zero, as in training).

use super::engine::Features;
use super::request::{DecisionRequest, Placement};
use crate::features::risk::signals::RiskKey;
use crate::features::{Doc, Key, PageFeatures};
use crate::ports::StoreError;
use crate::ports::{FeatureReader, Stored};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Cart products whose co-occurrences are read (the rest of a large cart is ignored for cross-sell).
pub const CROSS_SELL_SOURCES: usize = 20;

/// The keys of the first read: session, user (when known), at `checkout` the risk profiles of the user,
/// card, IP and device (pseudonymized by then), and the cart's first products.
pub fn first_keys(request: &DecisionRequest, unit: Option<&str>) -> Vec<Key> {
    let mut keys = vec![Key::session(&request.session_id)];
    keys.extend(unit.map(Key::user));
    if request.placement == Placement::Checkout {
        keys.extend(unit.map(|u| Key::risk(RiskKey::User, u)));
        if let Some(p) = &request.payment {
            for (key, id) in [
                (RiskKey::Card, &p.card_fingerprint),
                (RiskKey::Ip, &p.ip),
                (RiskKey::Device, &p.device_id),
            ] {
                keys.extend(id.as_deref().map(|id| Key::risk(key, id)));
            }
        }
    }
    if let Some(cart) = &request.cart {
        for line in &cart.items {
            let k = Key::item(&line.product_id);
            if !keys.contains(&k) && keys.len() < CROSS_SELL_SOURCES + 2 {
                keys.push(k);
            }
        }
    }
    keys
}

/// Page features by path, cached with a TTL and a bound on entries.
pub struct PageCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, (Option<PageFeatures>, Instant)>>,
}

impl PageCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<PageFeatures>, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached pages among `paths` (present or known absent), and the paths to read.
    fn split(&self, paths: &[&str]) -> (HashMap<String, PageFeatures>, Vec<String>) {
        let entries = self.lock();
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for &p in paths {
            match entries.get(p) {
                Some((page, at)) if at.elapsed() < self.ttl => {
                    if let Some(page) = page {
                        found.insert(p.to_string(), page.clone());
                    }
                }
                _ => missing.push(p.to_string()),
            }
        }
        (found, missing)
    }

    fn store(&self, paths: &[String], read: &HashMap<String, PageFeatures>) {
        let mut entries = self.lock();
        if entries.len() + paths.len() > self.max_entries {
            entries.clear();
        }
        let now = Instant::now();
        for p in paths {
            entries.insert(p.clone(), (read.get(p).cloned(), now));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many batch reads a decision's features took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCost {
    pub batch_reads: u32,
}

/// Why a decision's features are unavailable: a closed reason code (a metric dimension) and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// `feature_read_failed` or `feature_read_timeout`.
    pub code: &'static str,
    pub message: String,
}

/// Reads the features for `request` within `budget`; `Err` says why they are unavailable.
pub async fn read_features<F: FeatureReader>(
    store: &F,
    pages: &PageCache,
    request: &DecisionRequest,
    unit: Option<&str>,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<(Features, ReadCost), Unavailable> {
    match tokio::time::timeout(budget, read(store, pages, request, unit, now)).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(e)) => Err(Unavailable {
            code: "feature_read_failed",
            message: format!("feature read failed: {e}: {}", e.source),
        }),
        Err(_) => Err(Unavailable {
            code: "feature_read_timeout",
            message: format!("feature read exceeded its {} ms budget", budget.as_millis()),
        }),
    }
}

fn live(found: HashMap<Key, Stored>, now: DateTime<Utc>) -> impl Iterator<Item = Doc> {
    found
        .into_values()
        .map(|s| s.doc)
        .filter(move |d| !d.expired(now))
}

async fn read<F: FeatureReader>(
    store: &F,
    cache: &PageCache,
    request: &DecisionRequest,
    unit: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Features, ReadCost), StoreError> {
    let mut cost = ReadCost { batch_reads: 1 };
    let mut f = Features::default();
    for doc in live(store.get_many(&first_keys(request, unit)).await?, now) {
        match doc {
            Doc::Session(s) if s.session_id == request.session_id => f.session = Some(s),
            Doc::User(u) if Some(u.user_id.as_str()) == unit => f.user = Some(u),
            Doc::Item(i) => f.items.push(i),
            Doc::Risk(r) => {
                f.risk.insert(r.key, r.profile);
            }
            _ => {}
        }
    }
    f.items.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let paths: Vec<&str> = f
        .session
        .iter()
        .flat_map(|s| s.pages.iter().map(|p| p.path.as_str()))
        .collect();
    let (mut pages, missing) = cache.split(&paths);
    if !missing.is_empty() {
        let keys: Vec<Key> = missing.iter().map(|p| Key::page(p)).collect();
        cost.batch_reads += 1;
        let mut read = HashMap::new();
        for doc in live(store.get_many(&keys).await?, now) {
            if let Doc::Page(p) = doc {
                read.insert(p.path.clone(), p);
            }
        }
        cache.store(&missing, &read);
        pages.extend(read);
    }
    f.pages = pages;
    Ok((f, cost))
}
