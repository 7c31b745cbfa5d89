//! The check metric families: the `/metrics` page assembled from each
//! check's [`SlotSeries`], and the answer of an on-demand `/probe`.

use std::io::Write;
use std::sync::Arc;

use super::series::{
    CORE, DURATION, FAILURE, Facts, SUCCESS, SlotSeries, VALUE, family_header, same_family,
};
use super::write_value;
use crate::checks::Family;
use crate::store::{RunRecord, Slot, State};

/// Writes every check family for `slots`: each family's header, then every
/// check's series of that family, copied from the check's last state. `out`
/// is made room for the check families and `more` bytes.
pub fn render(slots: &[Arc<Slot>], out: &mut Vec<u8>, more: usize) {
    let states: Vec<Arc<State>> = slots.iter().map(|s| s.state()).collect();
    // The page's size, headers aside: a buffer that doubles as it grows
    // could hold twice the page for as long as the page is being sent.
    let headers = (CORE.len() + 16) * 256;
    out.reserve(states.iter().map(|s| s.series.len()).sum::<usize>() + headers + more);
    for (i, family) in CORE.iter().enumerate() {
        family.header(out);
        for state in &states {
            out.extend_from_slice(state.series.core(i));
        }
    }
    // Kind-specific families: a handful across all checks, in name order.
    let mut families: Vec<&'static Family> = Vec::new();
    for state in &states {
        for (family, _) in state.series.extra() {
            if !families.iter().any(|f| same_family(f, family)) {
                families.push(family);
            }
        }
    }
    families.sort_by_key(|f| f.name);
    for family in families {
        family_header(out, family);
        for state in &states {
            for (f, text) in state.series.extra() {
                if same_family(f, family) {
                    out.extend_from_slice(text);
                }
            }
        }
    }
}

/// The metrics of one on-demand run (`/probe`): blackbox-style
/// `probe_success` and `probe_duration_seconds`, then the check's result
/// families (success, failure, value, duration) and its own families.
pub fn render_probe(slot: &Slot, run: &RunRecord, out: &mut Vec<u8>) {
    let ok = if run.outcome.success() { 1.0 } else { 0.0 };
    let _ = write!(
        out,
        "# HELP probe_success Whether the probe succeeded.\n# TYPE probe_success gauge\nprobe_success "
    );
    write_value(out, ok);
    let _ = write!(
        out,
        "\n# HELP probe_duration_seconds How long the probe took.\n# TYPE probe_duration_seconds gauge\nprobe_duration_seconds "
    );
    write_value(out, run.duration.as_secs_f64());
    out.push(b'\n');
    let series = SlotSeries::new(&Facts {
        labels: &slot.labels,
        info_labels: &slot.info_labels,
        interval: slot.meta.interval,
        run: Some(run),
        last_success: None,
        successes: 0,
        failures: 0,
    });
    for i in [SUCCESS, FAILURE, VALUE, DURATION] {
        let text = series.core(i);
        if !text.is_empty() {
            CORE[i].header(out);
            out.extend_from_slice(text);
        }
    }
    for (family, text) in series.extra() {
        family_header(out, family);
        out.extend_from_slice(text);
    }
}
