//! A private Docker engine (`dockerd` with its own containerd) on a unix
//! socket in a temp dir: no bridge, no iptables, so containers must run with
//! `--network none` (the helpers here always pass it). There is no registry:
//! images are made with [`Dockerd::import_busybox_image`].
//!
//! Use [`Dockerd::shared`] unless the test stops the daemon; give containers
//! unique names ([`super::unique_name`]). Talk to it with the CLI helpers or
//! with bollard: `Docker::connect_with_unix(&d.host(), 30, API_DEFAULT_VERSION)`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{
    ServerProcess, at_exit, remove_stale_pid_file, try_run, try_run_keeping_stdin, wait_pid_gone,
};
use super::{READY_TIMEOUT, require_binary, shared_instance, tempdir};

/// Tag of the image made by [`Dockerd::busybox_image`].
pub const BUSYBOX_IMAGE: &str = "hp-busybox:latest";

const CLI_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Dockerd {
    proc: Option<ServerProcess>,
    busybox: OnceLock<String>,
    dir: TempDir,
}

impl Dockerd {
    /// A private daemon (it may be stopped, killed and started again).
    pub fn start() -> Dockerd {
        let dir = tempdir("dockerd");
        // Socket paths under the exec root (containerd's own sockets) must
        // stay well below the 108-byte limit.
        assert!(
            dir.path().as_os_str().len() < 40,
            "temp dir path too long for unix sockets: {}",
            dir.path().display()
        );
        std::fs::write(dir.path().join("daemon.json"), "{}\n").unwrap();
        let mut d = Dockerd {
            proc: None,
            busybox: OnceLock::new(),
            dir,
        };
        d.start_again();
        d
    }

    /// One daemon shared by the whole test binary; do not stop it.
    pub fn shared() -> &'static Dockerd {
        static SHARED: OnceLock<Result<Dockerd, String>> = OnceLock::new();
        shared_instance(&SHARED, "dockerd", || {
            at_exit(|| {
                if let Some(Ok(d)) = SHARED.get() {
                    d.teardown();
                    let _ = std::fs::remove_dir_all(d.dir.path());
                }
            });
            Dockerd::start()
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--data-root` (images, containers, volumes).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// `--exec-root` (runtime state).
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("e")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix://<dir>/docker.sock`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dockerd.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// The docker CLI with `DOCKER_HOST` set to this daemon.
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(require_binary("docker"));
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY");
        cmd
    }

    /// Run the docker CLI; returns stdout (trimmed). Panics on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        try_run(self.docker_command().args(args), CLI_TIMEOUT).map(|s| s.trim().to_string())
    }

    /// Make an image `tag` from busybox-static (`/bin/busybox` plus a
    /// symlink per applet in `/bin`, `PATH=/bin`) with `docker import`.
    pub fn import_busybox_image(&self, tag: &str) {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            super::missing("/bin/busybox (package busybox-static)");
        }
        let root = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(self.dir.path())
            .unwrap();
        let bin = root.path().join("bin");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        let applets = try_run(Command::new(busybox).arg("--list"), CLI_TIMEOUT)
            .unwrap_or_else(|e| panic!("busybox --list: {e}"));
        for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
            if applet != "busybox" {
                symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\n").unwrap();

        let mut tar = Command::new(require_binary("tar"))
            .arg("-C")
            .arg(root.path())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tar");
        let tar_out = tar.stdout.take().unwrap();
        let result = try_run_keeping_stdin(
            self.docker_command()
                .args(["import", "--change", "ENV PATH=/bin", "-", tag])
                .stdin(tar_out),
            CLI_TIMEOUT,
        );
        let tar_status = tar.wait().expect("wait for tar");
        result.unwrap_or_else(|e| panic!("docker import of {tag}: {e}"));
        assert!(
            tar_status.success(),
            "tar of the busybox rootfs failed: {tar_status}"
        );
    }

    /// [`BUSYBOX_IMAGE`], imported on first use.
    pub fn busybox_image(&self) -> &str {
        self.busybox.get_or_init(|| {
            self.import_busybox_image(BUSYBOX_IMAGE);
            BUSYBOX_IMAGE.to_string()
        })
    }

    /// `docker run -d --network none --init --name NAME [extra...] busybox
    /// CMD...`; returns the container id. `--init` (tini as PID 1) makes the
    /// container stop at once on SIGTERM instead of after the 10 s timeout
    /// (`sleep` as PID 1 ignores SIGTERM), also when a restarted daemon stops
    /// the containers a killed one left running.
    pub fn run_busybox(&self, name: &str, extra: &[&str], cmd: &[&str]) -> String {
        let image = self.busybox_image().to_string();
        let mut args = vec!["run", "-d", "--network", "none", "--init", "--name", name];
        args.extend_from_slice(extra);
        args.push(&image);
        args.extend_from_slice(cmd);
        self.docker(&args)
    }

    /// Graceful shutdown (SIGTERM; running containers are stopped).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(30));
        }
    }

    /// Crash it: SIGKILL dockerd (its containerd follows; containers and
    /// shims survive until the daemon is started again or dropped).
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start (again) on the same data root and socket; waits for
    /// `docker version`.
    pub fn start_again(&mut self) {
        self.stop();
        let d = self.dir.path();
        // After a kill, dockerd's containerd gets SIGKILL (its parent-death
        // signal) a moment later and then lingers as a zombie (nothing reaps
        // orphans here); a new dockerd would wait for it forever.
        let containerd_pid_file = self.exec_root().join("containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(&containerd_pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            && !wait_pid_gone(pid, Duration::from_secs(10))
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let needle = self.exec_root().to_string_lossy().into_owned();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                // SAFETY: kill(2) on the containerd of our own killed daemon.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                wait_pid_gone(pid, Duration::from_secs(10));
            }
        }
        remove_stale_pid_file(&containerd_pid_file);
        remove_stale_pid_file(&d.join("dockerd.pid"));
        let mut cmd = Command::new(require_binary("dockerd"));
        cmd.arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.data_dir())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--shutdown-timeout=3",
            ])
            .env_remove("DOCKER_HOST")
            .current_dir(d);
        // dockerd looks for containerd, runc and docker-init in PATH.
        let proc = ServerProcess::spawn("dockerd", cmd, &self.log_path());
        proc.wait_ready(READY_TIMEOUT, || {
            self.try_docker(&["version", "--format", "{{.Server.Version}}"])
                .map(drop)
        });
        self.proc = Some(proc);
    }

    /// Remove every container, stop the daemon, then clean up what a killed
    /// daemon leaves behind (runc containers, shims, mounts) so the directory
    /// can be removed.
    fn teardown(&self) {
        if let Some(p) = &self.proc {
            if p.is_running()
                && let Ok(ids) = self.try_docker(&["ps", "-aq"])
            {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let _ = self.try_docker(&[&["rm", "-f"][..], &ids].concat());
                }
            }
            p.stop(libc::SIGTERM, Duration::from_secs(30));
        }
        self.cleanup_leftovers();
    }

    fn cleanup_leftovers(&self) {
        let d = self.dir.path();
        // Containers whose daemon was killed.
        let runc_root = self.exec_root().join("runtime-runc/moby");
        let root = runc_root.to_string_lossy().into_owned();
        if runc_root.is_dir()
            && let Some(runc) = super::find_binary("runc")
            && let Ok(ids) = try_run(
                Command::new(&runc).args(["--root", &root, "list", "-q"]),
                Duration::from_secs(30),
            )
        {
            for id in ids.split_whitespace() {
                let _ = try_run(
                    Command::new(&runc).args(["--root", &root, "delete", "--force", id]),
                    Duration::from_secs(30),
                );
            }
        }
        // containerd shims started for this daemon (their command line names
        // our exec root), identified by PID.
        let needle = self.exec_root().to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            let is_shim =
                cmdline.starts_with("containerd-shim") || cmdline.contains("/containerd-shim");
            if is_shim && cmdline.contains(&needle) {
                // SAFETY: kill(2) on a shim of our own daemon.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Mounts left under the directory (deepest first).
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = d.to_string_lossy().into_owned();
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
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.teardown();
        self.proc = None;
    }
}
