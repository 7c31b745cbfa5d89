//! The running agent: the store, the scheduled tasks, the concurrency limit
//! and the agent's own metrics, shared by the scheduler and the HTTP server.
//!
//! Reload (SIGHUP, `POST /-/reload`, a change to a watched file) loads the
//! config anew. A bad config is rejected with its errors logged and
//! `healthprobe_config_last_reload_successful 0`, and the last good one keeps
//! running. Otherwise only checks whose definition changed are restarted;
//! the others keep their task (so their schedule), their slot (so their
//! counters and last result) and their state (heartbeats, log offsets).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checks::runner::execute;
use crate::checks::{CheckSpec, Probe};
use crate::config::{CheckMeta, ConfigErrors, Loaded, Options};
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

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub kept: usize,
    pub restarted: usize,
    pub added: usize,
    pub removed: usize,
}

/// A scheduled check and what identifies its definition.
struct Running {
    check: Scheduled,
    spec: CheckSpec,
    /// The meta without its source position: moving a check in its file is
    /// not a change.
    meta: CheckMeta,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Shared state of a running agent.
pub struct Agent {
    pub store: Store,
    pub metrics: SelfMetrics,
    /// Shares `/metrics` renders between concurrent scrapes.
    pub page: crate::exposition::SharedRender,
    /// The same, gzip-compressed: compressing takes longer than rendering,
    /// so the compressed page is shared the way the page is (a scrape that
    /// rendered its own page and waited for a turn to compress it made
    /// ten gzip scrapers cost ten renders and ten compressions).
    pub gzipped_page: crate::exposition::SharedRender,
    sem: Arc<Semaphore>,
    /// Lookups by `PACK/NAME` for `/probe` and `/push`.
    probes: ArcSwap<HashMap<String, Scheduled>>,
    running: Mutex<HashMap<String, Running>>,
    /// `/probe?module=M&target=T` templates, when configured.
    modules: arc_swap::ArcSwapOption<crate::modules::Modules>,
    /// The enabled packs (titles, guides, checks switched off), for the status page.
    packs: ArcSwap<Vec<crate::view::PackView>>,
    /// The options the config was loaded with, for reloads.
    options: Options,
    ready: AtomicBool,
    started: AtomicBool,
    stop: CancellationToken,
    reloading: tokio::sync::Mutex<()>,
}

fn comparable(meta: &CheckMeta) -> CheckMeta {
    CheckMeta {
        source: String::new(),
        ..meta.clone()
    }
}

impl Agent {
    /// Builds the agent from a loaded config; call [`Agent::start`] to schedule.
    pub fn new(loaded: Loaded) -> Arc<Agent> {
        Agent::with_options(loaded, Options::default())
    }

    /// Same, remembering the options to reload with.
    pub fn with_options(loaded: Loaded, options: Options) -> Arc<Agent> {
        let agent = Arc::new(Agent {
            store: Store::default(),
            metrics: SelfMetrics::new(),
            page: Default::default(),
            gzipped_page: Default::default(),
            sem: Arc::new(Semaphore::new(loaded.concurrency)),
            probes: ArcSwap::from_pointee(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            modules: arc_swap::ArcSwapOption::empty(),
            packs: ArcSwap::from_pointee(Vec::new()),
            options,
            ready: AtomicBool::new(false),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            reloading: tokio::sync::Mutex::new(()),
        });
        agent.apply(loaded);
        agent.metrics.reload_successful.set(1.0);
        agent
            .metrics
            .reload_success_timestamp
            .set(unix_seconds(SystemTime::now()));
        agent
    }

    /// Installs a loaded config: keeps unchanged checks, restarts changed
    /// ones, starts new ones and stops removed ones.
    fn apply(&self, loaded: Loaded) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        self.modules.store(loaded.modules.clone());
        self.packs
            .store(Arc::new(crate::view::PackView::of_loaded(&loaded)));
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut old = std::mem::take(&mut *running);
        let mut slots = Vec::with_capacity(loaded.checks.len());
        self.metrics.checks_configured.reset();
        let started = self.started.load(Ordering::Acquire);
        for c in loaded.checks {
            self.metrics
                .checks_configured
                .with_label_values(&[c.meta.pack.as_str()])
                .inc();
            let id = c.meta.id();
            let meta = comparable(&c.meta);
            if let Some(prev) = old.remove(&id) {
                if prev.spec == c.spec && prev.meta == meta {
                    summary.kept += 1;
                    slots.push(prev.check.slot.clone());
                    running.insert(id, prev);
                    continue;
                }
                prev.stop.cancel();
                summary.restarted += 1;
            } else {
                summary.added += 1;
            }
            let slot = Arc::new(Slot::new(c.meta));
            slots.push(slot.clone());
            let check = Scheduled {
                slot,
                probe: Arc::new(c.probe),
            };
            let stop = self.stop.child_token();
            let task = started.then(|| {
                scheduler::spawn(
                    check.clone(),
                    self.sem.clone(),
                    self.metrics.scheduler_lag.clone(),
                    stop.clone(),
                )
            });
            running.insert(
                id,
                Running {
                    check,
                    spec: c.spec,
                    meta,
                    stop,
                    task,
                },
            );
        }
        for (_, gone) in old {
            gone.stop.cancel();
            summary.removed += 1;
        }
        self.probes.store(Arc::new(
            running
                .iter()
                .map(|(id, r)| (id.clone(), r.check.clone()))
                .collect(),
        ));
        self.store.replace(slots);
        summary
    }

    /// Schedules every check.
    pub fn start(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.started.store(true, Ordering::Release);
        for r in running.values_mut() {
            if r.task.is_none() {
                r.task = Some(scheduler::spawn(
                    r.check.clone(),
                    self.sem.clone(),
                    self.metrics.scheduler_lag.clone(),
                    r.stop.clone(),
                ));
            }
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Loads the config again with the options the agent started with. On
    /// error the running config is kept and the errors are returned.
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let options = self.options.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(&options))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigErrors(vec![crate::config::ConfigError::file(
                    "<reload>",
                    format!("the loader crashed: {e}"),
                )]))
            });
        match loaded {
            Ok(loaded) => {
                let summary = self.apply(loaded);
                self.metrics.reload_successful.set(1.0);
                self.metrics
                    .reload_success_timestamp
                    .set(unix_seconds(SystemTime::now()));
                tracing::info!(
                    kept = summary.kept,
                    restarted = summary.restarted,
                    added = summary.added,
                    removed = summary.removed,
                    "configuration reloaded"
                );
                Ok(summary)
            }
            Err(errors) => {
                self.metrics.reload_successful.set(0.0);
                for e in &errors.0 {
                    tracing::error!(error = %crate::redact::redact(&e.to_string()), "configuration rejected; keeping the running one");
                }
                Err(errors)
            }
        }
    }

    /// The enabled packs of the running config.
    pub fn packs(&self) -> Arc<Vec<crate::view::PackView>> {
        self.packs.load_full()
    }

    /// Whether the agent has loaded its config and scheduled its checks.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs the check `PACK/NAME` now (for `/probe`), under the same
    /// concurrency limit and timeout as scheduled runs. The result is returned,
    /// not stored: an on-demand probe must not disturb the scheduled series.
    pub async fn probe_now(&self, id: &str, debug: bool) -> Option<(Arc<Slot>, RunRecord)> {
        let check = self.probes.load().get(id).cloned()?;
        let _permit = self.sem.clone().acquire_owned().await.ok()?;
        let record = execute(check.probe.clone(), check.slot.meta.timeout, debug).await;
        Some((check.slot, record))
    }

    /// Runs module `module` against `target` now (`/probe?module=&target=`).
    pub async fn probe_module(
        &self,
        module: &str,
        target: &str,
        debug: bool,
    ) -> Result<(Arc<Slot>, RunRecord), crate::modules::ModuleError> {
        let modules = self.modules.load_full().ok_or_else(|| crate::modules::ModuleError::Invalid("probing targets is not enabled: add a `probe:` block with `allow_targets` and `modules` to the agent config".into()))?;
        let prepared = modules.resolve(module, target)?;
        let _permit =
            self.sem.clone().acquire_owned().await.map_err(|_| {
                crate::modules::ModuleError::Invalid("the agent is stopping".into())
            })?;
        let record = execute(prepared.probe.clone(), prepared.slot.meta.timeout, debug).await;
        Ok((prepared.slot.clone(), record))
    }

    /// Records a heartbeat for `PACK/NAME`.
    pub fn push(&self, id: &str, token: Option<&str>) -> PushResult {
        let probes = self.probes.load();
        match probes.get(id).map(|c| &*c.probe) {
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
        let tasks: Vec<JoinHandle<()>> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.values_mut().filter_map(|r| r.task.take()).collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}
