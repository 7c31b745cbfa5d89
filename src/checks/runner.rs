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
///
/// The run starts (its task is spawned) when this is called, and the future
/// returned only waits for it. That keeps the caller's future small: a
/// scheduled check's task lives for the whole life of the agent, mostly
/// asleep, and used to carry the state of the largest kind's run inline
/// (about 12 KB per check, 120 MB for 10,000 checks; see BENCHMARKS.md).
pub fn execute(
    probe: Arc<Probe>,
    timeout: Duration,
    debug: bool,
) -> impl Future<Output = RunRecord> + Send + 'static {
    let ctx = RunContext {
        deadline: tokio::time::Instant::now() + timeout,
        debug,
    };
    guarded(async move { probe.run(&ctx).await }, timeout, debug)
}

/// Runs any check future in its own task under `timeout`: a panic becomes an
/// `internal_error` result, a run past the timeout is aborted and becomes a
/// `timeout` result, and messages are redacted. Like [`execute`], the task is
/// spawned at once (call it inside the runtime).
pub fn guarded(
    run: impl Future<Output = Outcome> + Send + 'static,
    timeout: Duration,
    debug: bool,
) -> impl Future<Output = RunRecord> + Send + 'static {
    let started = SystemTime::now();
    let start = Instant::now();
    let task = tokio::spawn(run);
    finish(task, timeout, debug, started, start)
}

/// Waits for a spawned run and turns what became of it into a record.
async fn finish(
    mut task: tokio::task::JoinHandle<Outcome>,
    timeout: Duration,
    debug: bool,
    started: SystemTime,
    start: Instant,
) -> RunRecord {
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

    /// The runner's task moves the run future several times (spawn, poll,
    /// completion): it must stay small whatever the largest kind's run
    /// future is (each kind's is boxed by `Probe::run`).
    #[tokio::test]
    async fn run_futures_stay_small() {
        let node = crate::config::yaml::parse(
            "name: c\nkind: http\nhttp: { url: 'http://127.0.0.1:1/' }\n",
        )
        .unwrap()
        .unwrap();
        let spec: crate::checks::CheckSpec =
            crate::config::yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
        let ctx = crate::checks::BuildContext {
            timeout: Duration::from_secs(1),
            pack_dir: None,
        };
        let probe = Arc::new(Probe::build(&spec, &ctx).unwrap_or_else(|_| panic!("build")));
        let run = RunContext {
            deadline: tokio::time::Instant::now(),
            debug: false,
        };
        assert!(std::mem::size_of_val(&probe.run(&run)) <= 64);
        assert!(std::mem::size_of_val(&execute(probe, Duration::from_secs(1), false)) <= 512);
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
