//! The running agent: the store, the scheduled tasks, the concurrency limit
//! and the agent's own metrics, shared by the scheduler and the HTTP server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checks::Probe;
use crate::checks::runner::execute;
use crate::config::Loaded;
use crate::exposition::SelfMetrics;
use crate::scheduler::{self, Scheduled};
use crate::store::{RunRecord, Slot, Store, unix_seconds};

/// What became of a heartbeat push.
#[derive(Debug, PartialEq, Eq)]
pub enum PushResult {
    Recorded,
    Unauthorized,
    /// The check exists but is not a heartbeat.
    NotHeartbeat,
    Unknown,
}

/// Shared state of a running agent.
pub struct Agent {
    pub store: Store,
    pub metrics: SelfMetrics,
    sem: Arc<Semaphore>,
    probes: HashMap<String, Scheduled>,
    ready: AtomicBool,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Agent {
    /// Builds the agent from a loaded config; call [`Agent::start`] to schedule.
    pub fn new(loaded: Loaded) -> Arc<Agent> {
        let metrics = SelfMetrics::new();
        let mut slots = Vec::with_capacity(loaded.checks.len());
        let mut probes = HashMap::with_capacity(loaded.checks.len());
        for c in loaded.checks {
            metrics
                .checks_configured
                .with_label_values(&[c.meta.pack.as_str()])
                .inc();
            let id = c.meta.id();
            let slot = Arc::new(Slot::new(c.meta));
            slots.push(slot.clone());
            probes.insert(
                id,
                Scheduled {
                    slot,
                    probe: Arc::new(c.probe),
                },
            );
        }
        metrics.reload_successful.set(1.0);
        metrics
            .reload_success_timestamp
            .set(unix_seconds(SystemTime::now()));
        Arc::new(Agent {
            store: Store::new(slots),
            metrics,
            sem: Arc::new(Semaphore::new(loaded.concurrency)),
            probes,
            ready: AtomicBool::new(false),
            stop: CancellationToken::new(),
            tasks: Default::default(),
        })
    }

    /// Schedules every check.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for check in self.probes.values() {
            tasks.push(scheduler::spawn(
                check.clone(),
                self.sem.clone(),
                self.metrics.scheduler_lag.clone(),
                self.stop.child_token(),
            ));
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the agent has loaded its config and scheduled its checks.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs the check `PACK/NAME` now (for `/probe`), under the same
    /// concurrency limit and timeout as scheduled runs. The result is returned,
    /// not stored: an on-demand probe must not disturb the scheduled series.
    pub async fn probe_now(&self, id: &str, debug: bool) -> Option<(Arc<Slot>, RunRecord)> {
        let check = self.probes.get(id)?;
        let _permit = self.sem.clone().acquire_owned().await.ok()?;
        let record = execute(check.probe.clone(), check.slot.meta.timeout, debug).await;
        Some((check.slot.clone(), record))
    }

    /// The prepared check `PACK/NAME`.
    pub fn probe(&self, id: &str) -> Option<&Arc<Probe>> {
        self.probes.get(id).map(|c| &c.probe)
    }

    /// Records a heartbeat for `PACK/NAME`.
    pub fn push(&self, id: &str, token: Option<&str>) -> PushResult {
        match self.probes.get(id).map(|c| &*c.probe) {
            Some(Probe::Heartbeat(h)) => match h.beat(token) {
                Ok(()) => PushResult::Recorded,
                Err(_) => PushResult::Unauthorized,
            },
            Some(_) => PushResult::NotHeartbeat,
            None => PushResult::Unknown,
        }
    }

    /// A token cancelled when the agent stops.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops every scheduled task and waits for them.
    pub async fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}
