//! The check metric families, written from the store.

use std::io::Write;
use std::sync::Arc;

use super::{escape_label, write_value};
use crate::checks::{Family, FamilyType, Reason};
use crate::store::{RunRecord, Slot};

struct Fam {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

const SUCCESS: Fam = Fam {
    name: "healthprobe_check_success",
    help: "Whether the last run of the check passed (1) or failed (0).",
    kind: "gauge",
};
const FAILURE: Fam = Fam {
    name: "healthprobe_check_failure",
    help: "1 for the reason of the current failure; absent while the check passes.",
    kind: "gauge",
};
const VALUE: Fam = Fam {
    name: "healthprobe_check_value",
    help: "The value the check measured in its last run (rows, age in seconds, ratio...).",
    kind: "gauge",
};
const DURATION: Fam = Fam {
    name: "healthprobe_check_duration_seconds",
    help: "How long the last run took.",
    kind: "gauge",
};
const LAST_RUN: Fam = Fam {
    name: "healthprobe_check_last_run_timestamp_seconds",
    help: "When the last run started, in Unix seconds.",
    kind: "gauge",
};
const LAST_SUCCESS: Fam = Fam {
    name: "healthprobe_check_last_success_timestamp_seconds",
    help: "When the last successful run ended, in Unix seconds.",
    kind: "gauge",
};
const INTERVAL: Fam = Fam {
    name: "healthprobe_check_interval_seconds",
    help: "The configured interval between runs.",
    kind: "gauge",
};
const RUNS: Fam = Fam {
    name: "healthprobe_check_runs_total",
    help: "Runs of the check by result.",
    kind: "counter",
};
const INFO: Fam = Fam {
    name: "healthprobe_check_info",
    help: "Static facts about the check (kind, severity, title, guide link).",
    kind: "gauge",
};

fn header(out: &mut Vec<u8>, f: &Fam) {
    let _ = write!(
        out,
        "# HELP {} {}\n# TYPE {} {}\n",
        f.name, f.help, f.name, f.kind
    );
}

fn line(out: &mut Vec<u8>, name: &str, slot: &Slot, extra: &str, v: f64) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    out.extend_from_slice(slot.labels.as_bytes());
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"} ");
    write_value(out, v);
    out.push(b'\n');
}

/// Writes every check family for `slots`.
pub fn render(slots: &[Arc<Slot>], out: &mut Vec<u8>) {
    let runs: Vec<Option<Arc<RunRecord>>> = slots.iter().map(|s| s.last()).collect();
    let with_runs = || {
        slots
            .iter()
            .zip(&runs)
            .filter_map(|(s, r)| r.as_ref().map(|r| (s, r)))
    };

    header(out, &SUCCESS);
    for (s, r) in with_runs() {
        line(
            out,
            SUCCESS.name,
            s,
            "",
            if r.outcome.success() { 1.0 } else { 0.0 },
        );
    }
    header(out, &FAILURE);
    for (s, r) in with_runs() {
        if !r.outcome.success() {
            let extra = reason_label(r.outcome.reason);
            line(out, FAILURE.name, s, extra, 1.0);
        }
    }
    header(out, &VALUE);
    for (s, r) in with_runs() {
        if let Some(v) = r.outcome.value {
            line(out, VALUE.name, s, "", v);
        }
    }
    header(out, &DURATION);
    for (s, r) in with_runs() {
        line(out, DURATION.name, s, "", r.duration.as_secs_f64());
    }
    header(out, &LAST_RUN);
    for (s, r) in with_runs() {
        line(out, LAST_RUN.name, s, "", r.started_unix());
    }
    header(out, &LAST_SUCCESS);
    for s in slots {
        if let Some(t) = s.last_success() {
            line(out, LAST_SUCCESS.name, s, "", t);
        }
    }
    header(out, &INTERVAL);
    for s in slots {
        line(out, INTERVAL.name, s, "", s.meta.interval.as_secs_f64());
    }
    header(out, &RUNS);
    for s in slots {
        let (ok, failed) = s.runs();
        line(out, RUNS.name, s, ",result=\"success\"", ok as f64);
        line(out, RUNS.name, s, ",result=\"failure\"", failed as f64);
    }
    header(out, &INFO);
    for s in slots {
        line(out, INFO.name, s, &s.info_labels, 1.0);
    }
    let pairs: Vec<(&Slot, &RunRecord)> = with_runs().map(|(s, r)| (&**s, &**r)).collect();
    render_samples(&pairs, out);
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

/// Kind-specific families, grouped by family across checks (the text format
/// wants every series of a family together), in name order. One pass over
/// the samples writes each series into its family's buffer (a handful), and
/// the buffers are appended in order: grouping the series first cost an
/// allocation per sample (70,000 per scrape with 10,000 http checks), and a
/// pass per family re-read every check's samples from memory.
fn render_samples(pairs: &[(&Slot, &RunRecord)], out: &mut Vec<u8>) {
    let mut families: Vec<(&'static Family, Vec<u8>)> = Vec::new();
    let mut last = usize::MAX;
    let mut extra = String::new();
    for (slot, run) in pairs {
        for sample in &run.outcome.samples {
            let f = sample.family;
            let i = match families.get(last) {
                Some((g, _)) if std::ptr::eq(*g, f) => last,
                _ => match families
                    .iter()
                    .position(|(g, _)| std::ptr::eq(*g, f) || g.name == f.name)
                {
                    Some(i) => i,
                    None => {
                        families.push((f, Vec::with_capacity(pairs.len() * 64)));
                        families.len() - 1
                    }
                },
            };
            last = i;
            extra.clear();
            for (k, v) in &sample.labels {
                extra.push(',');
                extra.push_str(k);
                extra.push_str("=\"");
                extra.push_str(&escape_label(v));
                extra.push('"');
            }
            line(&mut families[i].1, f.name, slot, &extra, sample.value);
        }
    }
    families.sort_by_key(|(f, _)| f.name);
    for (family, series) in families {
        let name = family.name;
        let kind = match family.kind {
            FamilyType::Gauge => "gauge",
            FamilyType::Counter => "counter",
        };
        let _ = write!(out, "# HELP {name} {}\n# TYPE {name} {kind}\n", family.help);
        out.extend_from_slice(&series);
    }
}

/// The metrics of one on-demand run (`/probe`): blackbox-style
/// `probe_success` and `probe_duration_seconds`, then the check's own families.
pub fn render_probe(slot: &Slot, run: &RunRecord, out: &mut Vec<u8>) {
    let ok = if run.outcome.success() { 1.0 } else { 0.0 };
    let _ = writeln!(
        out,
        "# HELP probe_success Whether the probe succeeded.\n# TYPE probe_success gauge"
    );
    let _ = write!(out, "probe_success ");
    write_value(out, ok);
    let _ = writeln!(
        out,
        "\n# HELP probe_duration_seconds How long the probe took.\n# TYPE probe_duration_seconds gauge"
    );
    let _ = write!(out, "probe_duration_seconds ");
    write_value(out, run.duration.as_secs_f64());
    out.push(b'\n');
    header(out, &SUCCESS);
    line(out, SUCCESS.name, slot, "", ok);
    if !run.outcome.success() {
        header(out, &FAILURE);
        line(
            out,
            FAILURE.name,
            slot,
            reason_label(run.outcome.reason),
            1.0,
        );
    }
    if let Some(v) = run.outcome.value {
        header(out, &VALUE);
        line(out, VALUE.name, slot, "", v);
    }
    header(out, &DURATION);
    line(out, DURATION.name, slot, "", run.duration.as_secs_f64());
    render_samples(&[(slot, run)], out);
}
