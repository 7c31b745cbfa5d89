//! The latest result of every check. Checks write on their own schedule;
//! scrapes, the API and the status page only read, so a scrape never waits on
//! a probe. Each check has a [`Slot`]; the set of slots is swapped whole on
//! reload, and a slot kept across reloads keeps its counters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::checks::Outcome;
use crate::config::CheckMeta;
use crate::exposition::series::{Facts, SlotSeries};

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub outcome: Outcome,
    /// When the run started (wall clock).
    pub started: SystemTime,
    pub duration: Duration,
}

impl RunRecord {
    /// Start time as Unix seconds.
    pub fn started_unix(&self) -> f64 {
        unix_seconds(self.started)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A check's place in the store.
pub struct Slot {
    pub meta: Arc<CheckMeta>,
    /// `pack="...",check="..."`, escaped once for the exposition.
    pub labels: Box<str>,
    /// `,kind="...",severity="...",title="...",doc="..."` of
    /// `healthprobe_check_info`, escaped once too.
    pub info_labels: Box<str>,
    state: ArcSwap<State>,
    /// Held by [`Slot::record`], so that two runs recorded at once (the
    /// scheduler is the only writer today) cannot lose a count.
    writer: Mutex<()>,
}

/// What a check has done so far, swapped whole at each run: a reader sees
/// the counters, the last run and their series from the same moment.
pub struct State {
    pub run: Option<Arc<RunRecord>>,
    /// Unix seconds of the end of the last successful run.
    pub last_success: Option<f64>,
    pub successes: u64,
    pub failures: u64,
    /// The check's series in the exposition format, written here once per
    /// run rather than by every scrape.
    pub series: SlotSeries,
}

impl Slot {
    pub fn new(meta: CheckMeta) -> Slot {
        let labels = format!(
            "pack=\"{}\",check=\"{}\"",
            crate::exposition::escape_label(&meta.pack),
            crate::exposition::escape_label(&meta.name)
        );
        let info_labels = format!(
            ",kind=\"{}\",severity=\"{}\",title=\"{}\",doc=\"{}\"",
            meta.kind.as_str(),
            meta.severity.as_str(),
            crate::exposition::escape_label(&meta.title),
            crate::exposition::escape_label(&meta.doc)
        );
        let series = SlotSeries::new(&Facts {
            labels: &labels,
            info_labels: &info_labels,
            interval: meta.interval,
            run: None,
            last_success: None,
            successes: 0,
            failures: 0,
        });
        Slot {
            meta: Arc::new(meta),
            labels: labels.into_boxed_str(),
            info_labels: info_labels.into_boxed_str(),
            state: ArcSwap::from_pointee(State {
                run: None,
                last_success: None,
                successes: 0,
                failures: 0,
                series,
            }),
            writer: Mutex::new(()),
        }
    }

    /// Stores a finished run and writes the check's series.
    pub fn record(&self, run: RunRecord) {
        let _writing = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let prev = self.state.load();
        let (mut successes, mut failures, mut last_success) =
            (prev.successes, prev.failures, prev.last_success);
        if run.outcome.success() {
            successes += 1;
            last_success = Some(unix_seconds(run.started + run.duration));
        } else {
            failures += 1;
        }
        let series = SlotSeries::new(&Facts {
            labels: &self.labels,
            info_labels: &self.info_labels,
            interval: self.meta.interval,
            run: Some(&run),
            last_success,
            successes,
            failures,
        });
        self.state.store(Arc::new(State {
            run: Some(Arc::new(run)),
            last_success,
            successes,
            failures,
            series,
        }));
    }

    /// The check's state as of its last run.
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// The last run, if any.
    pub fn last(&self) -> Option<Arc<RunRecord>> {
        self.state.load().run.clone()
    }

    /// `(successes, failures)` since the slot was made.
    pub fn runs(&self) -> (u64, u64) {
        let state = self.state.load();
        (state.successes, state.failures)
    }
}

/// Every check's slot.
#[derive(Default)]
pub struct Store {
    slots: ArcSwap<Vec<Arc<Slot>>>,
}

impl Store {
    pub fn new(slots: Vec<Arc<Slot>>) -> Store {
        Store {
            slots: ArcSwap::from_pointee(slots),
        }
    }

    /// A snapshot of the slots.
    pub fn slots(&self) -> Arc<Vec<Arc<Slot>>> {
        self.slots.load_full()
    }

    /// Replaces the set of slots (reload).
    pub fn replace(&self, slots: Vec<Arc<Slot>>) {
        self.slots.store(Arc::new(slots));
    }

    /// The slot of `PACK/NAME`.
    pub fn find(&self, id: &str) -> Option<Arc<Slot>> {
        let (pack, name) = id.split_once('/')?;
        self.slots()
            .iter()
            .find(|s| s.meta.pack == pack && s.meta.name == name)
            .cloned()
    }
}
