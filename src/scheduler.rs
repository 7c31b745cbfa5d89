//! The scheduler: one task per check, each on its own interval.
//!
//! A check's first run is delayed by a random offset (under its interval and
//! at most 5 s) so that checks loaded together do not all fire at once; later
//! runs keep that phase. A global semaphore bounds how many run at once; the
//! time spent waiting for it counts as lag, since it is time the check should
//! have been running. Runs missed while the agent was busy are skipped, not
//! queued: a health check result is only worth its freshness.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Histogram;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::Probe;
use crate::checks::runner::execute;
use crate::store::Slot;

/// Largest first-run offset.
const MAX_JITTER: Duration = Duration::from_secs(5);

/// A check to schedule.
#[derive(Clone)]
pub struct Scheduled {
    pub slot: Arc<Slot>,
    pub probe: Arc<Probe>,
}

/// Starts the task of one check; it stops when `stop` is cancelled.
pub fn spawn(
    check: Scheduled,
    sem: Arc<Semaphore>,
    lag: Histogram,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run_loop(check, sem, lag, stop))
}

async fn run_loop(check: Scheduled, sem: Arc<Semaphore>, lag: Histogram, stop: CancellationToken) {
    let interval = check.slot.meta.interval;
    let timeout = check.slot.meta.timeout;
    let jitter_cap = interval.min(MAX_JITTER);
    let offset = Duration::from_secs_f64(rand::rng().random::<f64>() * jitter_cap.as_secs_f64());
    let mut due = Instant::now() + offset;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.cancelled() => return,
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.cancelled() => return,
        };
        let now = Instant::now();
        lag.observe(now.saturating_duration_since(due).as_secs_f64());
        let record = tokio::select! {
            r = execute(check.probe.clone(), timeout, false) => r,
            _ = stop.cancelled() => return,
        };
        drop(permit);
        tracing::debug!(
            check = %check.slot.meta.id(),
            success = record.outcome.success(),
            reason = %record.outcome.reason,
            "{}",
            crate::redact::redact(&record.outcome.message)
        );
        check.slot.record(record);
        due += interval;
        let now = Instant::now();
        if due <= now {
            let behind = now.duration_since(due);
            let skipped = behind.as_nanos() / interval.as_nanos().max(1) + 1;
            due += interval * skipped as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{BuildContext, CheckSpec, KindName};
    use crate::config::CheckMeta;

    fn meta(interval: Duration) -> CheckMeta {
        CheckMeta {
            pack: "t".into(),
            name: "c".into(),
            kind: KindName::File,
            severity: Default::default(),
            title: "c".into(),
            doc: String::new(),
            remediation: String::new(),
            interval,
            timeout: Duration::from_secs(1),
            source: String::new(),
        }
    }

    fn probe() -> Arc<Probe> {
        let node = crate::config::yaml::parse("name: c\nkind: file\nfile: { path: / }\n")
            .unwrap()
            .unwrap();
        let spec: CheckSpec =
            crate::config::yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
        let ctx = BuildContext {
            timeout: Duration::from_secs(1),
            pack_dir: None,
        };
        Arc::new(Probe::build(&spec, &ctx).unwrap_or_else(|_| panic!("build")))
    }

    /// A scheduled check's task lives as long as the agent: with 10,000
    /// checks, each byte of it is 10 KB of memory (it was 12 KB before
    /// `execute` stopped carrying the run inline; see BENCHMARKS.md).
    #[tokio::test]
    async fn a_scheduled_task_is_small() {
        let slot = Arc::new(Slot::new(meta(Duration::from_secs(10))));
        let lag = Histogram::with_opts(prometheus::HistogramOpts::new("lag", "lag")).unwrap();
        let task = run_loop(
            Scheduled {
                slot,
                probe: probe(),
            },
            Arc::new(Semaphore::new(4)),
            lag,
            CancellationToken::new(),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "{size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_once_per_interval() {
        let slot = Arc::new(Slot::new(meta(Duration::from_secs(10))));
        let stop = CancellationToken::new();
        let lag = Histogram::with_opts(prometheus::HistogramOpts::new("lag", "lag")).unwrap();
        let task = spawn(
            Scheduled {
                slot: slot.clone(),
                probe: probe(),
            },
            Arc::new(Semaphore::new(4)),
            lag.clone(),
            stop.clone(),
        );
        // The first run happens within the jitter (<= 5 s); then one every 10 s.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        let first = slot.runs().0 + slot.runs().1;
        assert_eq!(first, 1);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(slot.runs().0 + slot.runs().1, 4);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(lag.get_sample_count(), 4);
    }
}
