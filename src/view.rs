//! One check as people and programs see it: the shape shared by
//! `/api/v1/checks`, `healthprobe check --format json` and the status page, so
//! that the three never disagree. Every text field is redacted.

use serde::Serialize;

use crate::config::CheckMeta;
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
        let (ok, failed) = slot.runs();
        let mut v = CheckView::of(&slot.meta, slot.last().as_deref());
        v.last_success_timestamp = slot.last_success();
        v.runs_success = ok;
        v.runs_failure = failed;
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

    /// Order for people: failing first, then by severity, pack and name.
    pub fn sort_key(&self) -> (u8, u8, String, String) {
        let state = match self.state {
            State::Failing => 0,
            State::Pending => 1,
            State::Passing => 2,
        };
        let sev = match self.severity {
            "critical" => 0,
            "warning" => 1,
            _ => 2,
        };
        (state, sev, self.pack.clone(), self.name.clone())
    }
}
