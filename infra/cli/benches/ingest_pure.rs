//! Throughput of ingest's pure part over the real REES46 events: decode + validate + pseudonymize +
//! canonical body + DynamoDB item build, one core. Baseline in the same run: parsing the same bytes into
//! an untyped `serde_json::Value` (the least any JSON ingest must do), so the ratio survives a noisy host.
//!
//! `make bench`; criterion prints the median time per batch and elements/s.

use checkout_ai::rees46::read_rows;
use checkout_aws::dynamo::to_item;
use checkout_domain::ingest::Admission;
use checkout_domain::pseudonym::Pseudonymizer;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;

fn payloads() -> Option<Vec<Vec<u8>>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/rees46-2019-10-01-head.csv");
    let rows = match read_rows(&path) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return None;
        }
    };
    Some(
        rows.iter()
            .enumerate()
            .filter_map(|(i, r)| r.to_event(i as u64 + 1).ok())
            .map(|e| serde_json::to_vec(&e).unwrap_or_default())
            .collect(),
    )
}

fn bench(c: &mut Criterion) {
    let Some(payloads) = payloads() else { return };
    let admission = Admission {
        max_record_bytes: 32 * 1024,
        retention: chrono::Duration::days(36_500),
        max_future_skew: chrono::Duration::minutes(15),
        pseudonymizer: Pseudonymizer::new(b"benchmark-pseudonymization-key-0123456789")
            .unwrap_or_else(|e| panic!("{e}")),
    };
    let now = chrono::Utc::now();
    let mut group = c.benchmark_group("ingest_pure");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.sample_size(20);
    group.bench_function("baseline: serde_json::Value parse", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(p)).ok());
            }
        })
    });
    group.bench_function("admit + item build", |b| {
        b.iter_batched(
            || (),
            |()| {
                for p in &payloads {
                    if let Ok(entry) = admission.admit(black_box(p), now) {
                        black_box(to_item(&entry));
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
