//! `checkout-ai erase --user <raw id>`: erasure on request (GDPR Art. 17) of everything held about one
//! person, in this order:
//!
//! 1. the user's pseudonym (the ingest key's HMAC of the raw id) and their sessions (the log's `by-user`
//!    index and their contribution items);
//! 2. a **tombstone** for the pseudonym and those sessions, added to `erasure/tombstones.json` in the
//!    models bucket (a conditional write): from the next refresh ingest drops their events, so neither a
//!    late event nor a replay of the original stream brings them back, for the event retention;
//! 3. the **projections** and the **log** (`checkout_domain::features::erase`): aggregates recomputed
//!    without the user's contributions, so a rebuild from the log equals the live table;
//! 4. the **quarantine**: messages and claim-checked payloads that carry the raw id or the pseudonym;
//! 5. a PII-free **receipt** in the reports bucket under `audit/erasure/`: counts, times, and a digest
//!    of the pseudonym (which only the holder of the pseudonymization key can link to anyone).
//!
//! Everything is idempotent: a run that fails part-way is re-run.

use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_aws::dynamo::DynamoLogIndex;
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::quarantine::{QuarantineErasure, SqsQuarantine};
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::features::erase::{erase, sessions_of, ErasureCounts};
use checkout_domain::ingest::{Tombstones, TOMBSTONES_KEY};
use checkout_domain::ports::{Condition, ObjectStore, PutError};
use checkout_domain::pseudonym::Pseudonymizer;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Instant;

pub const RECEIPT_FORMAT: &str = "checkout-ai/erasure-receipt";

/// What an erasure did, without anything that identifies the person.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub format: &'static str,
    pub version: u32,
    pub receipt_id: String,
    pub requested_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// SHA-256 of the pseudonym: links the receipt to a person only for whoever holds the key.
    pub subject_digest: String,
    pub tombstone_expires_at: DateTime<Utc>,
    pub counts: ErasureCounts,
    pub quarantine: QuarantineErasure,
    /// Every call to a store, the tombstone's read and write included.
    pub requests: usize,
    pub receipt_key: String,
    /// What erasure cannot reach (docs/operations.md).
    pub not_reached: Vec<&'static str>,
}

/// Erases the person with raw user id `raw` from the local stack.
pub async fn run(stack: &LocalStack, raw: &str) -> Result<Receipt, BoxError> {
    let started = Instant::now();
    let requested_at = Utc::now();
    let sdk = stack.sdk_config().await;
    let ingest_env = stack.env("IngestFunction")?;
    let key = checkout_aws::config::secret(
        &ingest_env,
        &sdk,
        "PSEUDONYM_KEY_PARAMETER",
        "PSEUDONYM_KEY",
    )
    .await?;
    let pseudonym = Pseudonymizer::new(key.as_bytes())?.user_id(raw);
    let retention_days: i64 = ingest_env.parsed("EVENT_RETENTION_DAYS", 400)?;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let log = DynamoLogIndex {
        client: ddb.clone(),
        table: ingest_env.required("EVENT_LOG_TABLE")?.to_string(),
    };
    let store = DynamoFeatureStore {
        client: ddb,
        table: stack.resource("FeaturesTable")?.name.clone(),
    };
    let mut counts = ErasureCounts::default();
    let sessions = sessions_of(&log, &store, &pseudonym, &mut counts).await?;

    // The tombstone first, so that nothing arriving meanwhile lands again.
    let models = crate::model::registry_store(stack).await?;
    let expires = requested_at + chrono::Duration::days(retention_days);
    let mut requests = 0;
    loop {
        let current = models.get(TOMBSTONES_KEY).await?;
        requests += 1;
        let (mut set, condition) = match current {
            Some(o) => (
                serde_json::from_slice::<Tombstones>(&o.bytes)?,
                Condition::Matches(o.etag),
            ),
            None => (Tombstones::default(), Condition::Absent),
        };
        set.prune(requested_at);
        set.add(&pseudonym, &sessions, expires.timestamp());
        requests += 1;
        match models
            .put(TOMBSTONES_KEY, serde_json::to_vec(&set)?, condition)
            .await
        {
            Ok(()) => break,
            Err(PutError::Precondition) => continue,
            Err(PutError::Store(e)) => return Err(e.into()),
        }
    }

    // The archive's Parquet files are immutable: every query over them leaves these sessions out from now
    // on (sql/erased_sessions.sql). One object per request, named like the receipt.
    let receipt_id = hex::encode(
        &Sha256::digest(format!("{pseudonym}|{}", requested_at.to_rfc3339()).as_bytes())[..16],
    );
    let mut lines = Vec::new();
    for s in &sessions {
        serde_json::to_writer(&mut lines, &serde_json::json!({ "session_id": s }))?;
        lines.push(b'\n');
    }
    if !sessions.is_empty() {
        S3ObjectStore {
            client: s3_client(&sdk),
            bucket: stack.resource("ArchiveBucket")?.name.clone(),
        }
        .put(
            &format!("erasures/{receipt_id}.json"),
            lines,
            Condition::Always,
        )
        .await
        .map_err(|e| format!("writing the erased sessions for the archive's queries: {e:?}"))?;
        requests += 1;
    }

    erase(
        &log,
        &store,
        &pseudonym,
        &sessions,
        stack.item_page_mode()?,
        &mut counts,
    )
    .await?;

    let quarantine = SqsQuarantine {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        s3: s3_client(&sdk),
        queue_url: ingest_env.required("QUARANTINE_QUEUE_URL")?.to_string(),
        bucket: ingest_env.required("QUARANTINE_BUCKET")?.to_string(),
    }
    .erase_matching(&[raw.to_string(), pseudonym.clone()])
    .await?;

    // The receipt id (above) is unique per request, and no more identifying than the digest below.
    let receipt_key = format!(
        "audit/erasure/{}/{receipt_id}.json",
        requested_at.format("%Y/%m/%d")
    );
    let mut receipt = Receipt {
        format: RECEIPT_FORMAT,
        version: 1,
        receipt_id,
        requested_at,
        completed_at: Utc::now(),
        duration_ms: 0,
        subject_digest: hex::encode(Sha256::digest(pseudonym.as_bytes())),
        tombstone_expires_at: expires,
        requests: counts.requests + quarantine.requests + requests + 1,
        counts,
        quarantine,
        receipt_key: receipt_key.clone(),
        not_reached: vec![
            "records still in the Kinesis stream (up to its 24 h retention); ingest drops them by the tombstone",
            "CloudWatch logs: pseudonymous ids only, except a lost decision event logged whole (its raw user id), kept LogRetentionDays",
            "point-in-time-recovery backups of the tables (35 days) and earlier S3 object versions of the models and reports buckets",
            "files exported outside the stack (training CSVs, learning datasets, local out/ reports)",
            "the event archive's Parquet files in S3 (immutable): every query over them leaves the sessions out (erasures/ in the archive bucket, sql/erased_sessions.sql) until retention deletes them",
        ],
    };
    receipt.duration_ms = started.elapsed().as_millis() as u64;
    let reports = S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ReportsBucket")?.name.clone(),
    };
    reports
        .put(
            &receipt_key,
            serde_json::to_vec_pretty(&receipt)?,
            Condition::Absent,
        )
        .await
        .map_err(|e| format!("writing the receipt: {e:?}"))?;
    Ok(receipt)
}

pub fn print(r: &Receipt) {
    let c = &r.counts;
    let q = &r.quarantine;
    println!(
        "erased subject {} in {} ms, {} store requests; receipt {} ({})",
        &r.subject_digest[..16],
        r.duration_ms,
        r.requests,
        r.receipt_id,
        r.receipt_key
    );
    println!(
        "  sessions {} ({} shared with another pseudonym); log items deleted {}",
        c.sessions, c.shared_sessions, c.log_items_deleted
    );
    println!(
        "  feature items deleted {}, rewritten {}; aggregates recomputed {}; experiment units deleted {}",
        c.feature_items_deleted,
        c.feature_items_rewritten,
        c.aggregates_recomputed,
        c.experiment_units_deleted
    );
    println!(
        "  quarantine: {} of {} messages and {} of {} stored payloads carried the id, deleted",
        q.messages_deleted, q.messages_scanned, q.objects_deleted, q.objects_scanned
    );
    println!(
        "  tombstone until {}: ingest drops the user's and the sessions' events",
        r.tombstone_expires_at.to_rfc3339()
    );
    for n in &r.not_reached {
        println!("  not reached: {n}");
    }
}
