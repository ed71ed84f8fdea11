//! `checkout-ai explain --decision <id>`: one decision traced end to end from the event log and the
//! registry alone (see `checkout_domain::learning::explain`). Cost: one `Query` of the `decisions-by-id`
//! index (skipped with `--session`), one `Query` of the session, and three registry reads.

use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_aws::dynamo::DynamoLogIndex;
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::decision::engine::CONTROL_POLICY_ID;
use checkout_domain::decision::learned::PolicyArtifact;
use checkout_domain::event::{EventBody, CONFIGURED_POLICY_ID};
use checkout_domain::learning::explain::{explain, Explanation, Sources};
use checkout_domain::model::registry::{load_served_version, load_version_of};
use checkout_domain::ports::{LogIndex, ObjectStore, SessionLog};
use chrono::Duration;

/// Finds the decision, reads what explaining it needs, and explains it.
pub async fn run(
    stack: &LocalStack,
    decision_id: &str,
    session: Option<&str>,
    horizon_hours: i64,
) -> Result<Explanation, BoxError> {
    let (ddb, env) = crate::rebuild::feature_tables(stack).await?;
    let log = DynamoLogIndex {
        client: ddb,
        table: env.required("EVENT_LOG_TABLE")?.to_string(),
    };
    let session = match session {
        Some(s) => s.to_string(),
        None => log
            .decision_session(decision_id)
            .await?
            .ok_or_else(|| format!("no decision {decision_id} in the event log"))?,
    };
    let entries = log.session_events(&session).await?;
    let decision = entries
        .iter()
        .find(|e| e.event_id == decision_id)
        .ok_or_else(|| format!("no decision {decision_id} in session {session}"))?
        .event()?;
    let EventBody::DecisionServed(d) = &decision.body else {
        return Err(format!(
            "{decision_id} is a {}, not a decision",
            decision.body.event_type()
        )
        .into());
    };
    let store = crate::model::registry_store(stack).await?;
    let model = load_served_version(&store, &d.model_id, &d.model_version).await?;
    let policy_ref = d.upcast().policy.unwrap_or_default();
    let policy = if policy_ref.id == CONTROL_POLICY_ID || policy_ref.id == CONFIGURED_POLICY_ID {
        None
    } else {
        load_version_of::<PolicyArtifact>(&store, &policy_ref.id, &policy_ref.version)
            .await
            .ok()
    };
    let config = match store.get(DEFAULT_CONFIG_KEY).await? {
        Some(object) => Some(DecisionConfig::decode(&object.bytes)?),
        None => None,
    };
    Ok(explain(
        decision_id,
        &entries,
        &Sources {
            model: model.as_ref(),
            policy: policy.as_ref(),
            config: config.as_ref(),
            horizon: Duration::hours(horizon_hours),
        },
    )?)
}

/// The explanation as text, for an operator.
pub fn print(x: &Explanation) {
    let yes = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    };
    println!(
        "decision {} at {} ({}; session {}, user {}; schema v{})",
        x.decision_id,
        x.decided_at.to_rfc3339(),
        x.placement,
        x.session_id,
        x.user_id.as_deref().unwrap_or("-"),
        x.schema_version
    );
    let s = &x.served;
    println!(
        "  served    {} (key {}) with probability {:.4}, by {} {}{}",
        s.action,
        s.action_key,
        s.propensity,
        s.policy.id,
        s.policy.version,
        if x.degraded { "; DEGRADED" } else { "" }
    );
    for a in &s.eligible {
        println!(
            "              {:<24} p = {:.4}  cost {}",
            a.action, a.probability, a.cost_minor
        );
    }
    println!(
        "  replay    the decision's draw picks the served action: {}",
        yes(s.draw_reproduces_choice)
    );
    if let Some(e) = &x.experiment {
        print!("  experiment {} → {}", e.id, e.variant);
        match &e.bucketing {
            Some(b) => println!(
                " (unit {}, seed {}, hash v{}, coverage {}, bucket {}; recomputed: {})",
                b.unit,
                b.seed,
                b.hash_version,
                b.coverage,
                b.bucket.map_or("-".into(), |v| format!("{v:.4}")),
                b.recomputed_variant.as_deref().unwrap_or("not assigned")
            ),
            None => println!(" (no longer configured; bucketing not recomputed)"),
        }
    }
    println!(
        "  rules     {} (current {})",
        x.rules.logged_version,
        x.rules.current_version.as_deref().unwrap_or("none")
    );
    let m = &x.model;
    println!(
        "  model     {} {} (feature schema v{}){}",
        m.id,
        m.version,
        m.feature_schema_version,
        if m.found {
            format!(
                ": trained on {} rows, data sha256 {}, CV AUC {:.4}",
                m.training_rows.unwrap_or(0),
                short(m.training_data_sha256.as_deref()),
                m.cv_mean_auc.unwrap_or(f64::NAN)
            )
        } else {
            ": NOT in the registry".into()
        }
    );
    let p = &x.policy;
    if let Some(found) = p.learned_found {
        println!(
            "  policy    {} {}: {}",
            p.id,
            p.version,
            if found {
                format!(
                    "trained on {} rows, data sha256 {}; distribution recomputed from the logged context",
                    p.training_rows.unwrap_or(0),
                    short(p.training_data_sha256.as_deref())
                )
            } else {
                "NOT in the registry".into()
            }
        );
    }
    println!(
        "  inputs    logged: {}; feature hash {} (recomputed from the logged inputs matches: {})",
        x.inputs.logged,
        x.inputs.feature_hash,
        yes(x.inputs.hash_matches)
    );
    for c in &x.inputs.columns {
        let pit = match &c.point_in_time {
            None => "(site-wide)".to_string(),
            Some(v) if Some(v) == c.served.as_ref() => "same from the log".into(),
            Some(v) => format!("log says {v}"),
        };
        println!(
            "              {:<26} {:<12} {pit}",
            c.name,
            c.served.as_ref().map_or("-".into(), |v| v.to_string())
        );
    }
    println!(
        "  score     {} (recomputed {})",
        x.score.logged.map_or("-".into(), |v| format!("{v:.6}")),
        x.score.recomputed.map_or("-".into(), |v| format!("{v:.6}"))
    );
    for r in &x.score.reasons {
        println!(
            "              reason {:<20} = {:<10} log-odds {:+.3}",
            r.feature, r.value, r.contribution
        );
    }
    let g = &x.guardrails;
    if g.replayed {
        println!(
            "  guardrails replayed: eligible {:?} (agrees with the log: {})",
            g.eligible,
            yes(g.agrees_with_log)
        );
        for b in &g.blocked {
            println!("              blocked {} by {}", b.action, b.guardrail);
        }
    } else {
        println!(
            "  guardrails not replayed (the rules changed since, or the decision was degraded)"
        );
    }
    let o = &x.outcome;
    match o.order_at {
        Some(at) => println!(
            "  outcome   ordered at {} for {} {}",
            at.to_rfc3339(),
            o.revenue_minor.unwrap_or(0),
            o.currency.as_deref().unwrap_or("")
        ),
        None => println!("  outcome   no order within the horizon"),
    }
    if x.discrepancies.is_empty() {
        println!("  every recomputed part agrees with the log");
    } else {
        for d in &x.discrepancies {
            println!("  DISCREPANCY {d}");
        }
    }
}

fn short(sha: Option<&str>) -> String {
    sha.map_or("-".into(), |s| s.chars().take(12).collect())
}
