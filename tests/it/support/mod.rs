//! Real servers for integration tests, started on 127.0.0.1 in temporary
//! directories.
//!
//! One module per server ([`mariadb`], [`postgres`], [`dockerd`], [`nginx`],
//! [`smtp`], [`prometheus`]), plus [`certs`] (TLS material made with the
//! `openssl` CLI), [`process`] (spawning that never leaks a server) and
//! [`http`] (a tiny blocking HTTP/1.0 client).
//!
//! Conventions shared by every server type:
//! - `start()` / `start_with(options)` start a private instance in its own
//!   `tempfile::TempDir` on a free port of 127.0.0.1 and return once the real
//!   thing answers (a connect, `select 1`, `pg_isready`, `docker version`, an
//!   HTTP GET); after [`READY_TIMEOUT`] they panic with the server's log tail.
//! - `stop(&mut self)` shuts the server down (gracefully), `kill(&mut self)`
//!   SIGKILLs it (a crash), `start_again(&mut self)` starts it on the same data
//!   directory and the same port. `Drop` kills it and removes the directory.
//! - `shared()` (MariaDB, PostgreSQL, dockerd, certificates) returns a
//!   `&'static` instance started once per test binary; use it when the test
//!   does not stop the server and does not depend on global state (use unique
//!   names: [`unique_name`]). Shared instances are stopped at process exit.
//! - Every server is spawned with `PR_SET_PDEATHSIG=SIGKILL` from one
//!   long-lived thread, so it dies with the test process even on abort.
//! - The API is blocking. From `#[tokio::test]` code call it before creating
//!   work that must keep running, use `flavor = "multi_thread"`, or wrap it in
//!   `tokio::task::spawn_blocking`.
//! - A missing binary panics with a message that says to run
//!   `tests/install-deps.sh`.
#![allow(dead_code)]

pub mod agent;
pub mod certs;
pub mod dockerd;
pub mod http;
pub mod mariadb;
pub mod nginx;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod smtp;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a server may take to become ready before `start()` panics.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A TCP port on 127.0.0.1 that was free a moment ago and that this test
/// process has never handed out before (so a stopped server's port is not
/// given to another server before `start_again`).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

/// A name unique within this test process and across runs, e.g. for
/// containers on the shared dockerd or databases on the shared servers.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where server directories go: `$HP_TMPDIR` if set, else `/dev/shm` when it
/// is a tmpfs with at least 4 GiB free (disk I/O is slow on this machine
/// kind: copying a database template is ~10x faster there), else `/tmp`.
/// Keep it short: unix socket paths are limited to 108 bytes.
pub fn temp_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HP_TMPDIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if is_roomy_tmpfs(shm) {
            shm.to_path_buf()
        } else {
            PathBuf::from("/tmp")
        }
    })
}

fn is_roomy_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct; c is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    let free = st.f_bavail as u64 * st.f_bsize as u64;
    st.f_type as i64 == TMPFS_MAGIC && free >= 4 << 30
}

/// A new temporary directory `<temp_base>/hpit-<what>-<pid>-XXXXXX`. The first
/// call also removes directories left by test processes that no longer
/// exist (an aborted run cannot clean up after itself).
pub fn tempdir(what: &str) -> tempfile::TempDir {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_stale_tempdirs);
    tempfile::Builder::new()
        .prefix(&format!("hpit-{what}-{}-", std::process::id()))
        .tempdir_in(temp_base())
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for {what}: {e}"))
}

fn sweep_stale_tempdirs() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let bases = [temp_base(), Path::new("/tmp"), Path::new("/dev/shm")];
    let entries = bases
        .iter()
        .enumerate()
        .filter(|(i, base)| !bases[..*i].contains(base))
        .flat_map(|(_, base)| std::fs::read_dir(base).into_iter().flatten().flatten());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("hpit-") else {
            continue;
        };
        // hpit-<what>-<pid>-<random>: the pid is the second field from the end.
        let mut fields = rest.rsplit('-');
        let (Some(_random), Some(pid)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let prefix = path.to_string_lossy().into_owned();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 with a valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} is missing on this machine: run `tests/install-deps.sh` (as root) to install \
         everything the integration tests need"
    )
}

/// Absolute path of an executable, searched in `$PATH` and the sbin
/// directories; panics with a pointer to `tests/install-deps.sh` if absent.
pub fn require_binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| missing(&format!("the `{name}` binary")))
}

/// Like [`require_binary`] but returns `None` when absent.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python venv made by `tests/install-deps.sh`: `$HP_VENV`, else
/// `$HOME/.cache/healthprobe/venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("HP_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/healthprobe/venv")
        }
    }
}

/// The venv's python; panics if the venv is missing.
pub fn venv_python() -> PathBuf {
    let python = venv_dir().join("bin/python");
    if !is_executable(&python) {
        missing(&format!("the Python venv ({})", python.display()));
    }
    python
}

/// The venv's python after checking (once per module) that `module` imports;
/// panics with a pointer to `tests/install-deps.sh` otherwise.
pub fn venv_python_with(module: &str) -> PathBuf {
    static CHECKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let python = venv_python();
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if !checked.contains(module) {
        let ok = process::output_with_timeout(
            std::process::Command::new(&python).args(["-c", &format!("import {module}")]),
            Duration::from_secs(60),
        )
        .is_ok_and(|o| o.status.success());
        if !ok {
            missing(&format!(
                "the Python module `{module}` in the venv {}",
                venv_dir().display()
            ));
        }
        checked.insert(module.to_string());
    }
    python
}

/// Directory of this file's siblings (e.g. `smtp_server.py`).
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support")
}

/// Initialise a `&'static` shared instance once. If `init` panics, every
/// later call panics at once with the same message instead of retrying.
pub(crate) fn shared_instance<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    init: impl FnOnce() -> T,
) -> &'static T {
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(init)).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into())
        })
    });
    match result {
        Ok(instance) => instance,
        Err(message) => panic!("the shared {what} failed to start earlier: {message}"),
    }
}
