//! Rendering `/metrics` with 10,000 checks in the store (goal: under 20 ms on
//! a 2-core machine). Half the checks pass, a quarter fail, a quarter carry
//! kind-specific samples (HTTP phases), like a large real deployment.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use healthprobe::checks::{Family, KindName, Outcome, Reason, Sample, Severity};
use healthprobe::config::CheckMeta;
use healthprobe::exposition::{self, SelfMetrics};
use healthprobe::store::{RunRecord, Slot, Store};

static PHASE: Family = Family::gauge(
    "healthprobe_http_phase_duration_seconds",
    "Time spent in each phase of the request.",
);

/// A store holding `n` checks, each with a result.
pub fn store(n: usize) -> Store {
    let slots = (0..n)
        .map(|i| {
            let slot = Slot::new(CheckMeta {
                pack: format!("pack{}", i % 20),
                name: format!("check_{i}"),
                kind: KindName::Http,
                severity: Severity::Warning,
                title: format!("Endpoint {i} answers"),
                doc: "https://example.org/guide#section".into(),
                remediation: String::new(),
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                source: String::new(),
            });
            let mut outcome = if i % 4 == 1 {
                Outcome::fail(Reason::Timeout, "no answer")
            } else {
                Outcome::ok("200 OK")
            };
            outcome = outcome.with_value(0.0123 + i as f64 * 1e-6);
            if i % 4 == 3 {
                let samples = ["resolve", "connect", "tls", "processing", "transfer"]
                    .iter()
                    .map(|p| Sample {
                        family: &PHASE,
                        labels: vec![("phase", p.to_string())],
                        value: 0.001,
                    })
                    .collect();
                outcome = outcome.with_samples(samples);
            }
            slot.record(RunRecord {
                outcome,
                started: SystemTime::now(),
                duration: Duration::from_millis(12),
            });
            Arc::new(slot)
        })
        .collect();
    Store::new(slots)
}

static STATUS: Family = Family::gauge(
    "healthprobe_http_status_code",
    "Status code of the last HTTP response.",
);

static REDIRECTS: Family = Family::gauge("healthprobe_http_redirects", "Redirects followed.");

/// A store of `n` passing http checks, each with the seven samples an http
/// run leaves (five phases, status code, redirects): the store of
/// `tests/bench/run`'s scheduled mode.
pub fn http_store(n: usize) -> Store {
    let slots = (0..n)
        .map(|i| {
            let slot = Slot::new(CheckMeta {
                pack: "bench".into(),
                name: format!("pdf_{i:05}"),
                kind: KindName::Http,
                severity: Severity::Warning,
                title: format!("pdf_{i:05}"),
                doc: String::new(),
                remediation: String::new(),
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                source: String::new(),
            });
            let mut samples: Vec<Sample> = ["resolve", "connect", "tls", "processing", "transfer"]
                .iter()
                .enumerate()
                .map(|(k, p)| Sample {
                    family: &PHASE,
                    labels: vec![("phase", p.to_string())],
                    value: if k == 2 {
                        0.0
                    } else {
                        0.000_137 + (i * 7 + k) as f64 * 1.3e-9
                    },
                })
                .collect();
            samples.push(Sample {
                family: &STATUS,
                labels: Vec::new(),
                value: 200.0,
            });
            samples.push(Sample {
                family: &REDIRECTS,
                labels: Vec::new(),
                value: 0.0,
            });
            let outcome = Outcome::ok("200 OK")
                .with_value(0.000_812 + i as f64 * 1.1e-9)
                .with_samples(samples);
            slot.record(RunRecord {
                outcome,
                started: SystemTime::now(),
                duration: Duration::from_nanos(912_345 + i as u64),
            });
            Arc::new(slot)
        })
        .collect();
    Store::new(slots)
}

fn bench(c: &mut Criterion) {
    let store = store(10_000);
    let metrics = SelfMetrics::new();
    let size = exposition::render(&store, &metrics).len();
    eprintln!("/metrics with 10,000 checks: {size} bytes");
    c.bench_function("render /metrics, 10k checks", |b| {
        b.iter(|| black_box(exposition::render(&store, &metrics)))
    });
    let store = http_store(10_000);
    let size = exposition::render(&store, &metrics).len();
    eprintln!("/metrics with 10,000 http checks: {size} bytes");
    c.bench_function("render /metrics, 10k http checks", |b| {
        b.iter(|| black_box(exposition::render(&store, &metrics)))
    });
    // The other half of the page's cost since checks write their own
    // series: one http run recorded (counters, series text, state swap).
    let slot = &store.slots()[7];
    let run = slot.last().expect("recorded");
    c.bench_function("record one http run", |b| {
        b.iter(|| slot.record(black_box(RunRecord::clone(&run))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
