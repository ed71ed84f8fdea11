//! The review queue's operations over the ports: list the open cases, show one, act on one (claim,
//! release, approve, reject), and the SLA sweep. The queue items are the feature updater's projection
//! (`review#queue`); a case itself is always folded from its events in the event log, read strongly
//! consistent, so every command is checked against the case as it is.
//!
//! A command appends its event `<case_id>#<n>` only if that key is free (a conditional put): when two
//! reviewers act at the same moment, one event lands and the other command is refused as a conflict,
//! and the log keeps exactly what happened.

use crate::event::{Event, EventBody, ReviewUpdated, SCHEMA_VERSION};
use crate::features::review::{
    command, event_id, fold, sweep as sla, Case, CaseEvent, Command, QueueItem, ReviewConfig,
    ReviewError,
};
use crate::features::{Doc, Key, REVIEW_QUEUE_PK};
use crate::ingest::LogEntry;
use crate::ports::{AppendOnce, FeatureWriter, SessionLog, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The queue over its stores.
pub struct Queue<'a, S, L, W> {
    pub store: &'a S,
    pub log: &'a L,
    pub sink: &'a W,
    pub config: &'a ReviewConfig,
    /// How long events are kept (their TTL), from their time.
    pub retention: Duration,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event could not be written: {0}")]
    Write(String),
}

/// A case as a reviewer sees it: the case, and what the queue knows of it. No raw personal data: the
/// user is pseudonymous, and the assessment is scores, bands and input names.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub case: Case,
    pub session_id: String,
    pub user_id: Option<String>,
}

/// What one SLA run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlaReport {
    pub open: u64,
    pub escalated: u64,
    pub expired: u64,
    pub released: u64,
    /// Of the open cases, those past their escalation point (after this run).
    pub overdue_for_escalation: u64,
}

impl<S: FeatureWriter, L: SessionLog, W: AppendOnce> Queue<'_, S, L, W> {
    /// Every case the queue holds that is not closed, soonest deadline first.
    pub async fn list(&self) -> Result<Vec<QueueItem>, StoreError> {
        let mut items: Vec<QueueItem> = self
            .store
            .query(REVIEW_QUEUE_PK, "case#")
            .await?
            .into_iter()
            .filter_map(|s| match s.doc {
                Doc::ReviewCase(c) if !c.status.closed() => Some(c),
                _ => None,
            })
            .collect();
        items.sort_by(|a, b| {
            a.deadline_at
                .cmp(&b.deadline_at)
                .then(a.case_id.cmp(&b.case_id))
        });
        Ok(items)
    }

    async fn item(&self, case_id: &str) -> Result<Option<QueueItem>, StoreError> {
        let key = Key::review_case(case_id);
        Ok(self
            .store
            .get_many(std::slice::from_ref(&key))
            .await?
            .remove(&key)
            .and_then(|s| match s.doc {
                Doc::ReviewCase(c) => Some(c),
                _ => None,
            }))
    }

    /// The case's events, read from its session (strongly consistent).
    async fn events(&self, session_id: &str, case_id: &str) -> Result<Vec<CaseEvent>, StoreError> {
        Ok(self
            .log
            .session_events(session_id)
            .await?
            .iter()
            .filter_map(|e| e.event().ok())
            .filter_map(|e| match e.body {
                EventBody::ReviewUpdated(r) if r.case_id == case_id => {
                    Some((e.event_id, e.occurred_at, *r))
                }
                _ => None,
            })
            .collect())
    }

    /// One case, folded from its events. `None` when the queue does not know it.
    pub async fn show(&self, case_id: &str) -> Result<Option<CaseView>, QueueError> {
        match self.item(case_id).await? {
            Some(item) => self.view(item).await.map(Some),
            None => Ok(None),
        }
    }

    /// The case a queue item names, folded from its events in its session.
    async fn view(&self, item: QueueItem) -> Result<CaseView, QueueError> {
        let case = fold(&self.events(&item.session_id, &item.case_id).await?)?
            .ok_or_else(|| ReviewError::NotFound(item.case_id.clone()))?;
        Ok(CaseView {
            case,
            session_id: item.session_id,
            user_id: item.user_id,
        })
    }

    /// A reviewer's command: the case after it.
    pub async fn act(
        &self,
        case_id: &str,
        reviewer: &str,
        cmd: Command,
        now: DateTime<Utc>,
    ) -> Result<Case, QueueError> {
        let view = self
            .show(case_id)
            .await?
            .ok_or_else(|| ReviewError::NotFound(case_id.to_string()))?;
        match command(&view.case, reviewer, cmd, self.config, now)? {
            None => Ok(view.case),
            Some(next) => self.append(&view, next, now).await,
        }
    }

    /// Appends `next` as the case's next event, only if no other event took that number first, and
    /// reads the case back.
    async fn append(
        &self,
        view: &CaseView,
        next: ReviewUpdated,
        now: DateTime<Utc>,
    ) -> Result<Case, QueueError> {
        let n = view.case.events;
        let id = event_id(&view.case.case_id, n);
        let event = Event {
            event_id: id.clone(),
            schema_version: SCHEMA_VERSION,
            occurred_at: now,
            session_id: view.session_id.clone(),
            user_id: view.user_id.clone(),
            context: Default::default(),
            body: EventBody::ReviewUpdated(Box::new(next.clone())),
        };
        event
            .validate()
            .map_err(|e| QueueError::Write(e.to_string()))?;
        let entry = LogEntry::of(&event, (now + self.retention).timestamp())
            .map_err(|e| QueueError::Write(e.to_string()))?;
        let written = self.sink.append_once(&entry).await?;
        let events = self.events(&view.session_id, &view.case.case_id).await?;
        let case =
            fold(&events)?.ok_or_else(|| ReviewError::NotFound(view.case.case_id.clone()))?;
        if !written {
            return Err(ReviewError::Conflict {
                case_id: case.case_id.clone(),
                status: case.status,
                message: "another action on the case landed first".into(),
            }
            .into());
        }
        Ok(case)
    }

    /// The SLA sweep: expire, escalate or release what is due in every open case.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SlaReport, QueueError> {
        let mut report = SlaReport::default();
        for item in self.list().await? {
            let view = self.view(item).await?;
            let mut case = view.case.clone();
            // At most one transition per case per run, so each is decided on the case as it is.
            if let Some(next) = sla(&case, self.config, now) {
                let t = next.transition;
                match self.append(&view, next, now).await {
                    Ok(after) => {
                        case = after;
                        match t {
                            crate::event::ReviewTransition::Expired => report.expired += 1,
                            crate::event::ReviewTransition::Escalated => report.escalated += 1,
                            _ => report.released += 1,
                        }
                    }
                    // A reviewer acted meanwhile: the next run looks again.
                    Err(QueueError::Review(ReviewError::Conflict { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
            if !case.status.closed() {
                report.open += 1;
                let escalate_at =
                    case.deadline_at - Duration::hours(self.config.escalate_before_hours);
                report.overdue_for_escalation += u64::from(now >= escalate_at);
            }
        }
        Ok(report)
    }
}
