//! The Prometheus exposition at `/metrics`.
//!
//! Two halves. The agent's own metrics (build info, reload status, scheduler
//! lag histogram, `process_*`) live in a `prometheus` crate registry
//! ([`SelfMetrics`]). The check families are written straight from the
//! [`Store`](crate::store::Store) at scrape time by [`checks::render`]: with
//! 10,000 checks that is ~100,000 series, and building the `prometheus`
//! crate's protobuf-shaped `MetricFamily` values for them on every scrape
//! costs far more than writing the text format once (see BENCHMARKS.md).
//! Both halves follow the same text format and `promtool check metrics` checks
//! the whole.

pub mod checks;
pub mod self_metrics;

pub use self_metrics::SelfMetrics;

use crate::store::Store;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the whole `/metrics` page.
pub fn render(store: &Store, self_metrics: &SelfMetrics) -> Vec<u8> {
    let slots = store.slots();
    let mut out = Vec::with_capacity(1024 + slots.len() * 900);
    checks::render(&slots, &mut out);
    self_metrics.render(&mut out);
    out
}

/// Escapes a label value (`\`, `"` and newlines).
pub fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

/// Appends a sample value in the text format.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}
