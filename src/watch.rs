//! Reload triggers: SIGHUP, and changes to the config file or the checks
//! directories. Events are debounced (editors write a file in several
//! steps), and the parent directory of the config file is watched rather
//! than the file, since editors and `kubectl` ConfigMap updates replace the
//! file instead of writing into it.
//!
//! A checks directory that is removed takes its watch with it, and the one
//! put back in its place is a new directory: so the parent of each checks
//! directory is watched too (only events about the directory's own name
//! count), and every watch is set again before each reload.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::agent::Agent;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The reload triggers, set up before the agent reports ready so that no
/// change made after readiness is missed.
pub struct Triggers {
    rx: mpsc::UnboundedReceiver<()>,
    hup: Option<tokio::signal::unix::Signal>,
    targets: Arc<Targets>,
    watcher: Option<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Starts watching `paths` and listening for SIGHUP.
    pub fn new(paths: &[PathBuf]) -> Triggers {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        let targets = Arc::new(Targets::of(paths));
        let watcher = watch(&targets, tx);
        Triggers {
            rx,
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
            targets,
            watcher,
        }
    }

    /// Reloads the agent on each trigger until it stops.
    pub async fn run(mut self, agent: Arc<Agent>) {
        let stop = agent.stop_token();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(()) = async { match self.hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading the configuration");
                }
                Some(()) = self.rx.recv() => {
                    // Let the burst of events settle.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, self.rx.recv()).await {}
                    tracing::info!("configuration files changed: reloading");
                }
            }
            // Before loading, so that a change made while loading is not missed.
            if let Some(w) = self.watcher.as_mut() {
                self.targets.add_watches(w, false);
            }
            let _ = agent.reload().await;
        }
    }
}

/// What is watched.
struct Targets {
    /// Directories where every change counts: the checks directories and
    /// the config file's directory.
    dirs: Vec<PathBuf>,
    /// Each checks directory as (its parent, its name): the parent is
    /// watched for that name only, to see the directory come back.
    anchors: Vec<(PathBuf, OsString)>,
}

impl Targets {
    fn of(paths: &[PathBuf]) -> Targets {
        let parent = |p: &Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut t = Targets {
            dirs: Vec::new(),
            anchors: Vec::new(),
        };
        for p in paths {
            if p.is_dir() {
                t.dirs.push(p.clone());
                if let Some(name) = p.file_name() {
                    t.anchors.push((parent(p), name.to_os_string()));
                }
            } else {
                t.dirs.push(parent(p));
            }
        }
        t
    }

    /// Whether an event is about a watched path.
    fn concerns(&self, event: &notify::Event) -> bool {
        // Events were lost (the kernel queue overflowed): anything may have changed.
        if event.need_rescan() {
            return true;
        }
        event.paths.iter().any(|p| {
            self.dirs
                .iter()
                .any(|d| p == d || p.parent() == Some(d.as_path()))
                || self.anchors.iter().any(|(parent, name)| {
                    p.parent() == Some(parent.as_path()) && p.file_name() == Some(name)
                })
        })
    }

    /// (Re)sets every watch; a directory that is missing now is no error
    /// (the reload reports it), except at start when `warn` is set.
    fn add_watches(&self, watcher: &mut notify::RecommendedWatcher, warn: bool) {
        let parents = self.anchors.iter().map(|(parent, _)| parent);
        for dir in self.dirs.iter().chain(parents) {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
                && warn
            {
                tracing::warn!(path = %dir.display(), error = %e, "cannot watch for changes");
            }
        }
    }
}

fn watch(
    targets: &Arc<Targets>,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    if targets.dirs.is_empty() {
        return None;
    }
    let wanted = targets.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event
                && !matches!(e.kind, notify::EventKind::Access(_))
                && wanted.concerns(&e)
            {
                let _ = tx.send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration for changes; reload with SIGHUP or POST /-/reload");
            return None;
        }
    };
    targets.add_watches(&mut watcher, true);
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str) -> notify::Event {
        notify::Event::new(notify::EventKind::Any).add_path(PathBuf::from(path))
    }

    #[test]
    fn a_checks_directory_put_back_is_an_event_but_its_siblings_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let checks = dir.path().join("checks");
        std::fs::create_dir(&checks).unwrap();
        let t = Targets::of(std::slice::from_ref(&checks));
        let at = |rel: &str| event(&dir.path().join(rel).to_string_lossy());
        assert!(t.concerns(&at("checks/app.yaml")), "a pack file");
        assert!(
            t.concerns(&at("checks")),
            "the directory itself, removed or put back"
        );
        assert!(!t.concerns(&at("other.log")), "a sibling of the directory");
        assert!(!t.concerns(&at("checks.new/app.yaml")), "inside a sibling");
        assert!(t.concerns(
            &notify::Event::new(notify::EventKind::Other).set_flag(notify::event::Flag::Rescan)
        ));
    }

    #[test]
    fn the_config_files_directory_counts_whole() {
        let t = Targets::of(&[PathBuf::from("/etc/healthprobe/healthprobe.yaml")]);
        assert!(
            t.concerns(&event("/etc/healthprobe/..data")),
            "a ConfigMap swap"
        );
        assert!(!t.concerns(&event("/etc/other/healthprobe.yaml")));
        let relative = Targets::of(&[PathBuf::from("healthprobe.yaml")]);
        assert!(relative.concerns(&event("./healthprobe.yaml")));
    }
}
