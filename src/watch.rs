//! Reload triggers: SIGHUP, and changes to the config file or the checks
//! directories. Events are debounced (editors write a file in several
//! steps), and the parent directory of the config file is watched rather
//! than the file, since editors and `kubectl` ConfigMap updates replace the
//! file instead of writing into it.

use std::path::PathBuf;
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
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Starts watching `paths` and listening for SIGHUP.
    pub fn new(paths: &[PathBuf]) -> Triggers {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        Triggers {
            rx,
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
            _watcher: watch(paths, tx),
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
            let _ = agent.reload().await;
        }
    }
}

fn watch(paths: &[PathBuf], tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    if paths.is_empty() {
        return None;
    }
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event
                && !matches!(e.kind, notify::EventKind::Access(_))
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
    for p in paths {
        let dir = if p.is_dir() {
            p.clone()
        } else {
            p.parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot watch for changes");
        }
    }
    Some(watcher)
}
