//! One check's series, written once per run.
//!
//! A check's series change only when it runs: its result, its counters and
//! its last success are all set by [`Slot::record`](crate::store::Slot::record).
//! So the text of its series is written there, on the check's own task, and a
//! scrape only copies each check's bytes into the page, family by family. With
//! 10,000 http checks a scrape went from writing 160,000 series (formatting
//! 100,000 floats, escaping labels) to 160,000 copies of ~85 bytes; the
//! writing is spread over the runs, a few microseconds each (BENCHMARKS.md).

use std::cell::Cell;
use std::io::Write;
use std::ops::Range;
use std::time::Duration;

use super::{escape_label, write_value};
use crate::checks::{Family, Reason};
use crate::store::RunRecord;

/// The families every check has, in page order. [`SlotSeries::core`] takes an
/// index into this list.
pub const CORE: [CoreFamily; 9] = [
    CoreFamily {
        name: "healthprobe_check_success",
        help: "Whether the last run of the check passed (1) or failed (0).",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_failure",
        help: "1 for the reason of the current failure; absent while the check passes.",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_value",
        help: "The value the check measured in its last run (rows, age in seconds, ratio...).",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_duration_seconds",
        help: "How long the last run took.",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_last_run_timestamp_seconds",
        help: "When the last run started, in Unix seconds.",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_last_success_timestamp_seconds",
        help: "When the last successful run ended, in Unix seconds.",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_interval_seconds",
        help: "The configured interval between runs.",
        kind: "gauge",
    },
    CoreFamily {
        name: "healthprobe_check_runs_total",
        help: "Runs of the check by result.",
        kind: "counter",
    },
    CoreFamily {
        name: "healthprobe_check_info",
        help: "Static facts about the check (kind, severity, title, guide link).",
        kind: "gauge",
    },
];

/// Indices into [`CORE`].
pub const SUCCESS: usize = 0;
pub const FAILURE: usize = 1;
pub const VALUE: usize = 2;
pub const DURATION: usize = 3;
const LAST_RUN: usize = 4;
const LAST_SUCCESS: usize = 5;
const INTERVAL: usize = 6;
const RUNS: usize = 7;
const INFO: usize = 8;

/// A family every check has.
pub struct CoreFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
}

impl CoreFamily {
    /// The `# HELP` and `# TYPE` lines.
    pub fn header(&self, out: &mut Vec<u8>) {
        write_header(out, self.name, self.help, self.kind);
    }
}

/// The `# HELP` and `# TYPE` lines of a kind-specific family.
pub fn family_header(out: &mut Vec<u8>, family: &Family) {
    write_header(out, family.name, family.help, family.kind.as_str());
}

fn write_header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// What a check's series say, as of its last run.
pub struct Facts<'a> {
    /// `pack="...",check="..."`, escaped.
    pub labels: &'a str,
    /// The extra labels of `healthprobe_check_info`, escaped.
    pub info_labels: &'a str,
    pub interval: Duration,
    pub run: Option<&'a RunRecord>,
    pub last_success: Option<f64>,
    pub successes: u64,
    pub failures: u64,
}

/// The text of one check's series: the [`CORE`] families in order, then its
/// kind-specific families, each family's series together.
pub struct SlotSeries {
    text: Box<[u8]>,
    /// Where each core family's series end in `text` (they start where the
    /// previous one ends).
    core_ends: [u32; CORE.len()],
    /// The kind-specific families and where their series are in `text`.
    extra: Box<[(&'static Family, Range<u32>)]>,
}

impl SlotSeries {
    /// Writes the series of `facts`.
    pub fn new(facts: &Facts) -> SlotSeries {
        thread_local! {
            /// Where the text is written before it is copied into a box of
            /// its exact size: a growing `Vec` shrunk afterwards left each
            /// run two allocations, and the allocator's arenas fragmented
            /// (25 MB for 10,000 http checks' 13.5 MB of text).
            static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
        }
        let mut out = SCRATCH.take();
        out.clear();
        let mut w = Writer {
            out,
            labels: facts.labels,
        };
        let mut core_ends = [0u32; CORE.len()];
        let mut end = |w: &Writer, i: usize| core_ends[i] = w.position();
        let run = facts.run;
        if let Some(r) = run {
            let ok = if r.outcome.success() { 1.0 } else { 0.0 };
            w.line(CORE[SUCCESS].name, "", ok);
        }
        end(&w, SUCCESS);
        if let Some(r) = run.filter(|r| !r.outcome.success()) {
            w.line(CORE[FAILURE].name, reason_label(r.outcome.reason), 1.0);
        }
        end(&w, FAILURE);
        if let Some(v) = run.and_then(|r| r.outcome.value) {
            w.line(CORE[VALUE].name, "", v);
        }
        end(&w, VALUE);
        if let Some(r) = run {
            w.line(CORE[DURATION].name, "", r.duration.as_secs_f64());
        }
        end(&w, DURATION);
        if let Some(r) = run {
            w.line(CORE[LAST_RUN].name, "", r.started_unix());
        }
        end(&w, LAST_RUN);
        if let Some(t) = facts.last_success {
            w.line(CORE[LAST_SUCCESS].name, "", t);
        }
        end(&w, LAST_SUCCESS);
        w.line(CORE[INTERVAL].name, "", facts.interval.as_secs_f64());
        end(&w, INTERVAL);
        let runs = CORE[RUNS].name;
        w.line(runs, ",result=\"success\"", facts.successes as f64);
        w.line(runs, ",result=\"failure\"", facts.failures as f64);
        end(&w, RUNS);
        w.line(CORE[INFO].name, facts.info_labels, 1.0);
        end(&w, INFO);
        let extra = run.map_or_else(Vec::new, |r| w.samples(r));
        let text = Box::from(&w.out[..]);
        if w.out.capacity() <= 64 * 1024 {
            SCRATCH.set(w.out);
        }
        SlotSeries {
            text,
            core_ends,
            extra: extra.into_boxed_slice(),
        }
    }

    /// The series of `CORE[i]` (empty when the check has none).
    pub fn core(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.core_ends[i - 1] };
        &self.text[start as usize..self.core_ends[i] as usize]
    }

    /// The kind-specific families and their series, in the order the run
    /// first gave each family.
    pub fn extra(&self) -> impl Iterator<Item = (&'static Family, &[u8])> {
        self.extra
            .iter()
            .map(|(f, r)| (*f, &self.text[r.start as usize..r.end as usize]))
    }

    /// Bytes held, for the memory figures.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Whether two families are the same family of the page: kinds may declare
/// the same family each in its own file (two statics, one name).
pub fn same_family(a: &Family, b: &Family) -> bool {
    std::ptr::eq(a, b) || a.name == b.name
}

struct Writer<'a> {
    out: Vec<u8>,
    labels: &'a str,
}

impl Writer<'_> {
    fn position(&self) -> u32 {
        // A check's series are a few kilobytes at most.
        u32::try_from(self.out.len()).unwrap_or(u32::MAX)
    }

    fn line(&mut self, name: &str, extra: &str, v: f64) {
        let out = &mut self.out;
        out.extend_from_slice(name.as_bytes());
        out.push(b'{');
        out.extend_from_slice(self.labels.as_bytes());
        out.extend_from_slice(extra.as_bytes());
        out.extend_from_slice(b"} ");
        write_value(out, v);
        out.push(b'\n');
    }

    /// Writes the run's samples grouped by family (the text format wants a
    /// family's series together), each family in the order it first appears.
    fn samples(&mut self, run: &RunRecord) -> Vec<(&'static Family, Range<u32>)> {
        let samples = &run.outcome.samples;
        let mut ranges: Vec<(&'static Family, Range<u32>)> = Vec::new();
        let mut extra = String::new();
        for (i, first) in samples.iter().enumerate() {
            if samples[..i]
                .iter()
                .any(|s| same_family(s.family, first.family))
            {
                continue;
            }
            let start = self.position();
            for s in samples[i..]
                .iter()
                .filter(|s| same_family(s.family, first.family))
            {
                extra.clear();
                for (k, v) in &s.labels {
                    extra.push(',');
                    extra.push_str(k);
                    extra.push_str("=\"");
                    extra.push_str(&escape_label(v));
                    extra.push('"');
                }
                self.line(first.family.name, &extra, s.value);
            }
            ranges.push((first.family, start..self.position()));
        }
        ranges
    }
}

fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::Ok => ",reason=\"ok\"",
        Reason::AssertionFailed => ",reason=\"assertion_failed\"",
        Reason::Timeout => ",reason=\"timeout\"",
        Reason::ConnectionRefused => ",reason=\"connection_refused\"",
        Reason::DnsError => ",reason=\"dns_error\"",
        Reason::TlsError => ",reason=\"tls_error\"",
        Reason::PermissionDenied => ",reason=\"permission_denied\"",
        Reason::NotFound => ",reason=\"not_found\"",
        Reason::AuthFailed => ",reason=\"auth_failed\"",
        Reason::ProtocolError => ",reason=\"protocol_error\"",
        Reason::InternalError => ",reason=\"internal_error\"",
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::checks::{Outcome, Sample};

    static A: Family = Family::gauge("healthprobe_test_a", "A.");
    static B: Family = Family::counter("healthprobe_test_b", "B.");
    /// Another static with A's name, as two kinds declaring one family.
    static A_AGAIN: Family = Family::gauge("healthprobe_test_a", "A.");

    fn sample(family: &'static Family, label: &str, value: f64) -> Sample {
        Sample {
            family,
            labels: vec![("x", label.to_string())],
            value,
        }
    }

    fn facts(run: Option<&RunRecord>) -> Facts<'_> {
        Facts {
            labels: "pack=\"p\",check=\"c\"",
            info_labels: ",kind=\"http\"",
            interval: Duration::from_millis(1500),
            run,
            last_success: run.map(|_| 12.5),
            successes: 3,
            failures: 1,
        }
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn a_check_that_never_ran_has_only_its_interval_counters_and_info() {
        let s = SlotSeries::new(&facts(None));
        let filled: Vec<&str> = (0..CORE.len())
            .filter(|&i| !s.core(i).is_empty())
            .map(|i| CORE[i].name)
            .collect();
        assert_eq!(
            filled,
            [
                "healthprobe_check_interval_seconds",
                "healthprobe_check_runs_total",
                "healthprobe_check_info"
            ]
        );
        assert_eq!(
            text(s.core(INTERVAL)),
            "healthprobe_check_interval_seconds{pack=\"p\",check=\"c\"} 1.5\n"
        );
        assert_eq!(s.extra().count(), 0);
    }

    #[test]
    fn a_failed_run_gives_every_core_family_and_groups_samples_by_family() {
        let outcome = Outcome::fail(Reason::Timeout, "slow")
            .with_value(7.0)
            .with_samples(vec![
                sample(&A, "one", 1.0),
                sample(&B, "two", 2.0),
                sample(&A_AGAIN, "th\"ree\n", 0.25),
            ]);
        let run = RunRecord {
            outcome,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            duration: Duration::from_millis(250),
        };
        let s = SlotSeries::new(&facts(Some(&run)));
        assert!((0..CORE.len()).all(|i| !s.core(i).is_empty()));
        assert_eq!(
            text(s.core(FAILURE)),
            "healthprobe_check_failure{pack=\"p\",check=\"c\",reason=\"timeout\"} 1\n"
        );
        assert_eq!(
            text(s.core(RUNS)),
            "healthprobe_check_runs_total{pack=\"p\",check=\"c\",result=\"success\"} 3\n\
             healthprobe_check_runs_total{pack=\"p\",check=\"c\",result=\"failure\"} 1\n"
        );
        let extra: Vec<(&str, &str)> = s.extra().map(|(f, t)| (f.name, text(t))).collect();
        assert_eq!(
            extra,
            [
                (
                    "healthprobe_test_a",
                    "healthprobe_test_a{pack=\"p\",check=\"c\",x=\"one\"} 1\n\
                     healthprobe_test_a{pack=\"p\",check=\"c\",x=\"th\\\"ree\\n\"} 0.25\n"
                ),
                (
                    "healthprobe_test_b",
                    "healthprobe_test_b{pack=\"p\",check=\"c\",x=\"two\"} 2\n"
                ),
            ]
        );
    }
}
