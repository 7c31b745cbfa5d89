//! Doing something as another user (`www-data`) without changing who the agent is.
//!
//! On Linux the kernel keeps credentials per thread. glibc's `setuid()` (and
//! nix's, which calls it) broadcasts the change to every thread of the process,
//! which would turn the whole agent into `www-data`. rustix's `set_thread_*` are
//! the raw system calls: they change only the calling thread. So work that must
//! run as another user gets a fresh `std::thread` ([`run_as`]) that drops its own
//! credentials, does the work and ends. It is never a tokio blocking-pool thread:
//! a pool thread is reused, and the next task on it would run as `www-data` (or
//! fail to switch back, since an unprivileged thread cannot regain root).
//!
//! A child process is switched between fork and exec instead ([`command_as`]).
//!
//! Both need root, or `CAP_SETUID` and `CAP_SETGID`, unless the user is the
//! agent's own; [`check_privilege`] says so in words a person can act on.

use std::io;

use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::users::{Account, user_name};

/// What a check says when the agent may not switch users.
pub const NEEDS_CAPS: &str =
    "healthprobe needs CAP_SETUID and CAP_SETGID to test access as another user";

/// Why the work could not run as the user.
#[derive(Debug)]
pub enum RunAsError {
    /// The agent may not switch to that user (the message says what to do).
    NoPrivilege(String),
    /// A credential system call failed.
    Switch(io::Error),
    /// The thread panicked (a healthprobe bug).
    Panicked,
}

impl std::fmt::Display for RunAsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunAsError::NoPrivilege(m) => f.write_str(m),
            RunAsError::Switch(e) => write!(f, "switching user failed: {e}"),
            RunAsError::Panicked => f.write_str("the run-as thread crashed"),
        }
    }
}

/// Whether `account` is the agent's own identity (no switch needed).
pub fn is_self(account: &Account) -> bool {
    account.uid == rustix::process::geteuid().as_raw()
        && account.gid == rustix::process::getegid().as_raw()
}

/// Checks that the agent may act as `account`: it is the agent's own user, or
/// the agent holds `CAP_SETUID` and `CAP_SETGID` (root does).
pub fn check_privilege(account: &Account) -> Result<(), RunAsError> {
    if is_self(account) {
        return Ok(());
    }
    let needed = CapabilitySet::SETUID | CapabilitySet::SETGID;
    let held = rustix::thread::capabilities(None)
        .map(|c| c.effective.contains(needed))
        .unwrap_or(false);
    if held {
        return Ok(());
    }
    let me = rustix::process::geteuid().as_raw();
    Err(RunAsError::NoPrivilege(format!(
        "{NEEDS_CAPS} (`{}`); it runs as {} (uid {me}) without them: run it as root, \
         or grant them (systemd: `AmbientCapabilities=CAP_SETUID CAP_SETGID`)",
        account.name,
        user_name(me),
    )))
}

/// Runs `work` as `account` on a fresh thread and waits for it. Blocking: call
/// it from `spawn_blocking` (the pool thread only waits; it never switches).
///
/// The thread takes the user's supplementary groups, primary group and uid
/// (real, effective and saved), then drops every capability it still has, so
/// a non-root agent holding `CAP_DAC_OVERRIDE` cannot make a test pass that
/// the user would fail.
pub fn run_as<T, F>(account: &Account, work: F) -> Result<T, RunAsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    check_privilege(account)?;
    let switch = !is_self(account);
    let uid = Uid::from_raw(account.uid);
    let gid = Gid::from_raw(account.gid);
    let groups: Vec<Gid> = account.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let thread = std::thread::Builder::new()
        .name("healthprobe-run-as".into())
        .spawn(move || -> Result<T, RunAsError> {
            if switch {
                switch_thread(&groups, gid, uid).map_err(RunAsError::Switch)?;
                let none = CapabilitySet::empty();
                rustix::thread::set_capabilities(
                    None,
                    CapabilitySets {
                        effective: none,
                        permitted: none,
                        inheritable: none,
                    },
                )
                .map_err(|e| RunAsError::Switch(e.into()))?;
            }
            Ok(work())
        })
        .map_err(RunAsError::Switch)?;
    thread.join().map_err(|_| RunAsError::Panicked)?
}

/// Switches the calling thread (or a freshly forked child, which has one
/// thread) to the given groups, gid and uid, in the only order that works:
/// groups and gid while still privileged, uid last.
fn switch_thread(groups: &[Gid], gid: Gid, uid: Uid) -> io::Result<()> {
    rustix::thread::set_thread_groups(groups)?;
    rustix::thread::set_thread_res_gid(gid, gid, gid)?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)?;
    Ok(())
}

/// Makes `cmd` run as `account`: groups, gid and uid are set in the child
/// between fork and exec. The caller checks [`check_privilege`] first.
///
/// Why not `Command::uid` and `Command::gid` plus `setgroups` in `pre_exec`: the
/// standard library runs `pre_exec` closures after its own `setuid`, when
/// `setgroups` is no longer allowed (and with `uid` set it clears the
/// supplementary groups, which are what often grants access, e.g. a user in
/// group `www-data`). So all three happen in one `pre_exec`, in order. The
/// working directory is entered before the switch, as the agent.
pub fn command_as(cmd: &mut tokio::process::Command, account: &Account) {
    if is_self(account) {
        return;
    }
    let uid = Uid::from_raw(account.uid);
    let gid = Gid::from_raw(account.gid);
    let groups: Vec<Gid> = account.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // SAFETY: the closure runs in the forked child before exec; it only makes
    // raw system calls on memory allocated before the fork (no allocation, no
    // locks), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || switch_thread(&groups, gid, uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::users::lookup_user;

    #[test]
    fn own_user_needs_no_privilege_and_keeps_identity() {
        let me = lookup_user(&rustix::process::geteuid().as_raw().to_string()).unwrap();
        assert!(is_self(&me));
        let uid = run_as(&me, || rustix::process::geteuid().as_raw()).unwrap();
        assert_eq!(uid, me.uid);
    }

    #[test]
    fn switching_changes_only_the_worker_thread() {
        if !rustix::process::geteuid().is_root() {
            return; // needs root; the integration tests run as root
        }
        let nobody = lookup_user("nobody").unwrap();
        let (uid, euid) = run_as(&nobody, || {
            (
                rustix::process::getuid().as_raw(),
                rustix::process::geteuid().as_raw(),
            )
        })
        .unwrap();
        assert_eq!((uid, euid), (nobody.uid, nobody.uid));
        // This thread, and the process, are still root.
        assert!(rustix::process::geteuid().is_root());
    }
}
