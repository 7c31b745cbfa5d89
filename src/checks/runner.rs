//! Runs one check under its hard timeout. The check runs in its own task so a
//! panic becomes an `internal_error` result and the agent keeps going, and a
//! check that outlives its timeout is aborted: whatever the target does, the
//! caller has a result when the timeout expires.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Outcome, Probe, Reason, RunContext};
use crate::store::RunRecord;

/// Runs `probe` once, for at most `timeout`.
pub async fn execute(probe: Arc<Probe>, timeout: Duration, debug: bool) -> RunRecord {
    let started = SystemTime::now();
    let start = Instant::now();
    let ctx = RunContext {
        deadline: tokio::time::Instant::now() + timeout,
        debug,
    };
    let mut task = tokio::spawn(async move { probe.run(&ctx).await });
    let outcome = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::fail(
                Reason::InternalError,
                format!("the check crashed ({what}); this is a healthprobe bug, please report it"),
            )
        }
        Ok(Err(_)) => Outcome::fail(Reason::InternalError, "the check was cancelled"),
        Err(_) => {
            task.abort();
            Outcome::fail(
                Reason::Timeout,
                format!(
                    "no result within the timeout of {}",
                    humantime::format_duration(timeout)
                ),
            )
        }
    };
    let mut outcome = outcome;
    outcome.message = crate::redact::redact(&outcome.message).into_owned();
    if !debug {
        outcome.observations.clear();
    }
    RunRecord {
        outcome,
        started,
        duration: start.elapsed(),
    }
}
