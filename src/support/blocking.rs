//! Blocking work (file systems, `/proc`, user databases) off the async
//! runtime, with a crash turned into a result like any other failure.

use crate::checks::{Outcome, Reason};

/// Runs `work` on tokio's blocking pool. `what` names it if it crashes
/// ("the file check"). Not for work that switches credentials: see
/// [`super::runas`].
pub async fn outcome<F>(what: &str, work: F) -> Outcome
where
    F: FnOnce() -> Outcome + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::fail(
            Reason::InternalError,
            format!("{what} crashed ({e}); this is a healthprobe bug, please report it"),
        ),
    }
}
