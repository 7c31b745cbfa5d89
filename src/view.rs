//! One check as people and programs see it: the shape shared by
//! `/api/v1/checks`, `healthprobe check --format json` and the status page, so
//! that the three never disagree. Every text field is redacted. [`PackView`]
//! is the same for a pack: its title, its guide and its checks switched off.

use serde::Serialize;

use crate::config::{CheckMeta, Loaded};
use crate::redact::redact;
use crate::store::{RunRecord, Slot};

/// The state of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Passing,
    Failing,
    /// Not run yet.
    Pending,
}

/// A check and its last result.
#[derive(Clone, Debug, Serialize)]
pub struct CheckView {
    pub id: String,
    pub pack: String,
    pub name: String,
    pub kind: &'static str,
    pub severity: &'static str,
    pub title: String,
    pub state: State,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    pub value: Option<f64>,
    pub remediation: String,
    pub doc: String,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    pub duration_seconds: Option<f64>,
    pub last_run_timestamp: Option<f64>,
    pub last_success_timestamp: Option<f64>,
    pub runs_success: u64,
    pub runs_failure: u64,
    /// What the probe saw (only for debug runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<String>,
}

impl CheckView {
    /// The view of a stored check.
    pub fn of_slot(slot: &Slot) -> CheckView {
        let state = slot.state();
        let mut v = CheckView::of(&slot.meta, state.run.as_deref());
        v.last_success_timestamp = state.last_success;
        v.runs_success = state.successes;
        v.runs_failure = state.failures;
        v
    }

    /// The view of a check and a run (or none yet).
    pub fn of(meta: &CheckMeta, run: Option<&RunRecord>) -> CheckView {
        let state = match run {
            None => State::Pending,
            Some(r) if r.outcome.success() => State::Passing,
            Some(_) => State::Failing,
        };
        CheckView {
            id: meta.id(),
            pack: meta.pack.clone(),
            name: meta.name.clone(),
            kind: meta.kind.as_str(),
            severity: meta.severity.as_str(),
            title: redact(&meta.title).into_owned(),
            state,
            reason: run.map(|r| r.outcome.reason.as_str()),
            message: run.map(|r| redact(&r.outcome.message).into_owned()),
            value: run.and_then(|r| r.outcome.value),
            remediation: redact(&meta.remediation).into_owned(),
            doc: redact(&meta.doc).into_owned(),
            interval_seconds: meta.interval.as_secs_f64(),
            timeout_seconds: meta.timeout.as_secs_f64(),
            duration_seconds: run.map(|r| r.duration.as_secs_f64()),
            last_run_timestamp: run.map(|r| r.started_unix()),
            last_success_timestamp: run
                .filter(|r| r.outcome.success())
                .map(|r| r.started_unix() + r.duration.as_secs_f64()),
            runs_success: 0,
            runs_failure: 0,
            observations: run
                .map(|r| {
                    r.outcome
                        .observations
                        .iter()
                        .map(|o| redact(o).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// A check's view with plausible fields, for the views' unit tests.
    #[cfg(test)]
    pub(crate) fn sample(
        pack: &str,
        name: &str,
        severity: &'static str,
        state: State,
    ) -> CheckView {
        CheckView {
            id: format!("{pack}/{name}"),
            pack: pack.into(),
            name: name.into(),
            kind: "file",
            severity,
            title: format!("{name} title"),
            state,
            reason: (state == State::Failing).then_some("not_found"),
            message: Some(format!("{name} message")),
            value: None,
            remediation: format!("fix {name}"),
            doc: format!("https://guide.example/#{name}"),
            interval_seconds: 30.0,
            timeout_seconds: 10.0,
            duration_seconds: Some(0.1),
            last_run_timestamp: Some(1_700_000_000.0),
            last_success_timestamp: None,
            runs_success: 0,
            runs_failure: 0,
            observations: Vec::new(),
        }
    }

    /// Order for people: failing first, then by severity, pack and name.
    pub fn sort_key(&self) -> (u8, u8, String, String) {
        let state = match self.state {
            State::Failing => 0,
            State::Pending => 1,
            State::Passing => 2,
        };
        (
            state,
            severity_rank(self.severity),
            self.pack.clone(),
            self.name.clone(),
        )
    }
}

/// An enabled pack as people see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PackView {
    pub name: String,
    pub title: String,
    /// The troubleshooting guide the pack's checks come from (may be empty).
    pub guide: String,
    /// Checks of the pack that do not run here, with why (`enabled_if: ...`).
    pub off: Vec<(String, String)>,
}

impl PackView {
    /// The enabled packs of a loaded config, in name order.
    pub fn of_loaded(loaded: &Loaded) -> Vec<PackView> {
        loaded
            .packs
            .iter()
            .filter(|p| p.enabled)
            .map(|p| PackView {
                name: p.name.clone(),
                title: redact(&p.title).into_owned(),
                guide: redact(&p.guide).into_owned(),
                off: loaded
                    .skipped
                    .iter()
                    .filter(|s| s.pack == p.name)
                    .map(|s| (s.name.clone(), redact(&s.why).into_owned()))
                    .collect(),
            })
            .collect()
    }

    /// `Title` or the name when the pack has no title.
    pub fn display_title(&self) -> &str {
        if self.title.is_empty() {
            &self.name
        } else {
            &self.title
        }
    }
}

/// Views grouped by pack, in display order: the pack with the worst failure
/// first (critical before warning, then the most failures, then by name),
/// each pack's checks failing first (by [`CheckView::sort_key`]). Packs without a view but with checks switched
/// off are kept (with no checks), so every enabled pack shows.
pub fn by_pack<'a>(
    packs: &'a [PackView],
    views: &'a [CheckView],
) -> Vec<(PackView, Vec<&'a CheckView>)> {
    let mut groups: Vec<(PackView, Vec<&CheckView>)> = packs
        .iter()
        .map(|p| {
            let mut checks: Vec<&CheckView> = views.iter().filter(|v| v.pack == p.name).collect();
            checks.sort_by_key(|c| c.sort_key());
            (p.clone(), checks)
        })
        .collect();
    // Checks of a pack the list does not know (not expected): their own group.
    for v in views {
        if !groups.iter().any(|(p, _)| p.name == v.pack) {
            groups.push((
                PackView {
                    name: v.pack.clone(),
                    ..Default::default()
                },
                views.iter().filter(|x| x.pack == v.pack).collect(),
            ));
        }
    }
    // The pack with the worst failure first: a critical failure outranks
    // any number of warnings; then more failures first; then by name.
    groups.sort_by_key(|(p, checks)| {
        let failing: Vec<&&CheckView> = checks
            .iter()
            .filter(|c| c.state == State::Failing)
            .collect();
        let worst = failing
            .iter()
            .map(|c| severity_rank(c.severity))
            .min()
            .unwrap_or(u8::MAX);
        (worst, std::cmp::Reverse(failing.len()), p.name.clone())
    });
    groups
}

/// 0 for critical, 1 for warning, 2 for the rest.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pack: &str, name: &str, severity: &'static str, state: State) -> CheckView {
        CheckView::sample(pack, name, severity, state)
    }

    #[test]
    fn the_pack_with_the_worst_failure_comes_first() {
        let pack = |n: &str| PackView {
            name: n.into(),
            ..Default::default()
        };
        let packs = vec![
            pack("a_info"),
            pack("b_fine"),
            pack("c_warn"),
            pack("d_crit"),
            pack("e_off"),
        ];
        let views = vec![
            v("a_info", "x", "info", State::Failing),
            v("b_fine", "x", "critical", State::Passing),
            v("c_warn", "x", "warning", State::Failing),
            v("c_warn", "y", "warning", State::Failing),
            v("d_crit", "ok", "critical", State::Passing),
            v("d_crit", "bad", "critical", State::Failing),
        ];
        let order: Vec<String> = by_pack(&packs, &views)
            .into_iter()
            .map(|(p, checks)| {
                let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
                format!("{}:{}", p.name, names.join(","))
            })
            .collect();
        assert_eq!(
            order,
            [
                "d_crit:bad,ok",
                "c_warn:x,y",
                "a_info:x",
                "b_fine:x",
                "e_off:"
            ]
        );
    }
}
