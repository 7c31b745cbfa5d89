//! Runs one check under its hard timeout. The check runs in its own task so a
//! panic becomes an `internal_error` result and the agent keeps going, and a
//! check that outlives its timeout is aborted: whatever the target does, the
//! caller has a result when the timeout expires.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Outcome, Probe, Reason, RunContext};
use crate::store::RunRecord;

/// Runs `probe` once, for at most `timeout`.
pub async fn execute(probe: Arc<Probe>, timeout: Duration, debug: bool) -> RunRecord {
    let ctx = RunContext {
        deadline: tokio::time::Instant::now() + timeout,
        debug,
    };
    guarded(async move { probe.run(&ctx).await }, timeout, debug).await
}

/// Runs any check future in its own task under `timeout`: a panic becomes an
/// `internal_error` result, a run past the timeout is aborted and becomes a
/// `timeout` result, and messages are redacted.
pub async fn guarded(
    run: impl Future<Output = Outcome> + Send + 'static,
    timeout: Duration,
    debug: bool,
) -> RunRecord {
    let started = SystemTime::now();
    let start = Instant::now();
    let mut task = tokio::spawn(run);
    let mut outcome = match tokio::time::timeout(timeout, &mut task).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error() {
        let r = guarded(async { panic!("boom") }, Duration::from_secs(1), false).await;
        assert_eq!(r.outcome.reason, Reason::InternalError);
        assert!(r.outcome.message.contains("boom"), "{}", r.outcome.message);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_stops_at_its_timeout() {
        let start = tokio::time::Instant::now();
        let r = guarded(std::future::pending(), Duration::from_secs(3), false).await;
        assert_eq!(r.outcome.reason, Reason::Timeout);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(r.outcome.message, "no result within the timeout of 3s");
    }

    #[tokio::test]
    async fn observations_are_kept_only_when_debugging() {
        let run = || async { Outcome::ok("fine").with_observations(vec!["saw it".into()]) };
        assert!(
            guarded(run(), Duration::from_secs(1), false)
                .await
                .outcome
                .observations
                .is_empty()
        );
        assert_eq!(
            guarded(run(), Duration::from_secs(1), true)
                .await
                .outcome
                .observations,
            vec!["saw it"]
        );
    }
}
