//! Spawning server processes that cannot outlive the test process, and
//! running short helper commands with a timeout.
//!
//! Servers are forked from one dedicated, never-ending thread with
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)` set in the child: the kernel sends the
//! signal when the *thread* that forked exits, so forking from a test thread
//! (which ends with its test) would kill shared servers early. Each server is
//! its own process group, so stopping it reaches its children too.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hp-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("cannot start the spawner thread");
        tx
    })
}

/// Spawn `cmd` from the spawner thread; the child gets SIGKILL when the test
/// process dies (panic, abort, or normal exit).
pub fn spawn_dying_with_parent(mut cmd: Command) -> io::Result<Child> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid, raise) between fork and exec. It runs after std's setuid/setgid,
    // so the death signal survives the credential change.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    spawner()
        .send(Box::new(move || {
            let _ = tx.send(cmd.spawn());
        }))
        .expect("the spawner thread is gone");
    rx.recv().expect("the spawner thread dropped a job")
}

type ExitHook = Box<dyn Fn() + Send>;

static EXIT_HOOKS: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

extern "C" fn run_exit_hooks() {
    let hooks = std::mem::take(&mut *EXIT_HOOKS.lock().unwrap_or_else(|e| e.into_inner()));
    for hook in hooks.iter().rev() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

/// Run `hook` when the test process exits normally (used to stop shared
/// servers gracefully and remove their directories; on abort PDEATHSIG still
/// kills them).
pub fn at_exit(hook: impl Fn() + Send + 'static) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(run_exit_hooks) };
    });
    EXIT_HOOKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(hook));
}

/// A running server: its own process group, output appended to a log file.
pub struct ServerProcess {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawn `cmd` (stdin null, stdout+stderr appended to `log`) in a new
    /// process group, dying with the test process. Panics if it cannot start.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> ServerProcess {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {name} log {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log file");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let program = format!("{:?}", cmd.get_program());
        let child = spawn_dying_with_parent(cmd)
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        ServerProcess {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            log: log.to_path_buf(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .ok()
            .flatten()
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Send `signal` to the main process only.
    pub fn signal(&self, signal: i32) {
        if self.is_running() {
            // SAFETY: plain kill(2) on our own child, which is not reaped yet.
            unsafe { libc::kill(self.pid as i32, signal) };
        }
    }

    /// Send `signal` to the whole process group, wait up to `grace` for the
    /// main process to exit, then SIGKILL the group. Returns the exit status.
    pub fn stop(&self, signal: i32, grace: Duration) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            self.killpg(libc::SIGKILL);
            return status;
        }
        self.killpg(signal);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.exit_status() {
                // Stragglers (e.g. PostgreSQL backends) go too.
                self.killpg(libc::SIGKILL);
                return status;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "[support] {} (pid {}) did not stop within {grace:?} after signal {signal}; \
                     killing it",
                    self.name, self.pid
                );
                return self.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the process group and reap the main process.
    pub fn kill(&self) -> ExitStatus {
        self.killpg(libc::SIGKILL);
        let status = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
        self.killpg(libc::SIGKILL);
        // The group's other members (PostgreSQL's backends, for one) die
        // asynchronously; a restart before they are gone finds their shared
        // memory still attached.
        wait_group_gone(self.pid, Duration::from_secs(10));
        status
    }

    fn killpg(&self, signal: i32) {
        // SAFETY: kill(2) on the process group we created for this child.
        unsafe { libc::kill(-(self.pid as i32), signal) };
    }

    /// Poll `probe` until it returns `Ok`, the process exits, or `timeout`
    /// passes; panics in the last two cases with the log tail. Returns the
    /// time it took and prints it (visible with `--nocapture`).
    pub fn wait_ready(
        &self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Duration {
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            let last = match probe() {
                Ok(()) => {
                    let took = started.elapsed();
                    eprintln!(
                        "[support] {} ready in {:.2}s (pid {})",
                        self.name,
                        took.as_secs_f64(),
                        self.pid
                    );
                    return took;
                }
                Err(e) => e,
            };
            if let Some(status) = self.exit_status() {
                panic!(
                    "{} exited with {status} before it was ready (last probe: {last}); log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            if started.elapsed() > timeout {
                panic!(
                    "{} was not ready within {timeout:?} (last probe: {last}); log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `pid` names a live process: not gone and not a zombie. (PID 1 on
/// this machine kind does not reap orphans, so `kill(pid, 0)` is not enough.)
pub fn pid_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Wait up to `timeout` for `pid` to be gone or a zombie; true if it is.
pub fn wait_pid_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pid_is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Remove a pid file whose process is gone (or a zombie), so a server that
/// checks it does not wait for a dead predecessor.
pub fn remove_stale_pid_file(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if pid_is_alive(pid) => {}
        _ => {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The last `lines` lines of a text file ("" if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run a short command to completion, killing it after `timeout`. Err holds a
/// description with the command, its status and its stderr.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null());
    output_keeping_stdin(cmd, timeout)
}

/// Like [`output_with_timeout`] but leaves the command's stdin as set by the
/// caller (e.g. a pipe from another process).
pub fn output_keeping_stdin(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let describe = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {describe}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{describe} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {describe}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Run a short command; Ok(stdout) on exit status 0, else Err with the
/// status and stderr.
pub fn try_run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    cmd.stdin(Stdio::null());
    try_run_keeping_stdin(cmd, timeout)
}

/// Like [`try_run`] but leaves the command's stdin as set by the caller.
pub fn try_run_keeping_stdin(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let describe = format!("{cmd:?}");
    let out = output_keeping_stdin(cmd, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{describe} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            if out.stdout.is_empty() {
                String::new()
            } else {
                format!(
                    "\nstdout: {}",
                    String::from_utf8_lossy(&out.stdout).trim_end()
                )
            }
        ))
    }
}

/// Like [`try_run`] but panics on failure.
pub fn run(cmd: &mut Command, timeout: Duration) -> String {
    try_run(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until no live (non-zombie) process is left in process group `pgid`.
pub fn wait_group_gone(pgid: u32, timeout: Duration) {
    let started = Instant::now();
    while started.elapsed() < timeout && group_has_live_member(pgid) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn group_has_live_member(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // Fields after the parenthesised command: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        pgrp == Some(pgid) && state != "Z" && state != "X"
    })
}
