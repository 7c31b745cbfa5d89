//! The latest result of every check. Checks write on their own schedule;
//! scrapes, the API and the status page only read, so a scrape never waits on
//! a probe. Each check has a [`Slot`]; the set of slots is swapped whole on
//! reload, and a slot kept across reloads keeps its counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::checks::Outcome;
use crate::config::CheckMeta;

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
    last: ArcSwapOption<RunRecord>,
    /// Unix seconds of the last success as f64 bits; 0 when never.
    last_success: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
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
        Slot {
            meta: Arc::new(meta),
            labels: labels.into_boxed_str(),
            info_labels: info_labels.into_boxed_str(),
            last: ArcSwapOption::empty(),
            last_success: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Stores a finished run.
    pub fn record(&self, run: RunRecord) {
        if run.outcome.success() {
            self.successes.fetch_add(1, Ordering::Relaxed);
            let end = unix_seconds(run.started + run.duration);
            self.last_success.store(end.to_bits(), Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.last.store(Some(Arc::new(run)));
    }

    /// The last run, if any.
    pub fn last(&self) -> Option<Arc<RunRecord>> {
        self.last.load_full()
    }

    /// Unix seconds of the end of the last successful run.
    pub fn last_success(&self) -> Option<f64> {
        let v = f64::from_bits(self.last_success.load(Ordering::Relaxed));
        (v > 0.0).then_some(v)
    }

    /// `(successes, failures)` since the slot was made.
    pub fn runs(&self) -> (u64, u64) {
        (
            self.successes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
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
