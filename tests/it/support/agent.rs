//! The real `healthprobe` binary (built by cargo for this test run) started
//! as a server on a free loopback port, ready when `/-/ready` answers 200.

use std::path::Path;
use std::process::Command;

use super::process::ServerProcess;
use super::{READY_TIMEOUT, free_port, http, tempdir};

pub struct AgentProcess {
    proc: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The path of the binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_healthprobe"))
}

impl AgentProcess {
    /// Starts `healthprobe run --listen 127.0.0.1:PORT ARGS...`.
    pub fn start(args: &[&str]) -> AgentProcess {
        AgentProcess::start_with_env(args, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        AgentProcess::launch(tempdir("agent"), Command::new(binary()), args, env)
    }

    /// Same, as the user `uid` with the group `gid` and only the
    /// supplementary `groups` (through `setpriv`), for tests that need an
    /// agent that is not root. The binary is copied into the agent's
    /// directory (mode 0755); every path it reads must be reachable by that
    /// user.
    pub fn start_as(uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> AgentProcess {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("agent");
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), mode.clone()).unwrap();
        let bin = dir.path().join("healthprobe");
        std::fs::copy(binary(), &bin).unwrap();
        std::fs::set_permissions(&bin, mode).unwrap();
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        let mut cmd = Command::new(super::require_binary("setpriv"));
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(if groups.is_empty() {
                "--clear-groups".to_string()
            } else {
                format!("--groups={}", groups.join(","))
            })
            // Changing the uid clears the parent-death signal: set it again.
            .args(["--pdeathsig", "keep", "--"])
            .arg(&bin);
        AgentProcess::launch(dir, cmd, args, &[])
    }

    fn launch(
        dir: tempfile::TempDir,
        mut cmd: Command,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let port = free_port();
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        // NO_COLOR from the test's environment would hide whether the
        // agent itself leaves colour out of piped logs.
        cmd.env_remove("HEALTHPROBE_CONFIG").env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = ServerProcess::spawn("healthprobe", cmd, &dir.path().join("agent.log"));
        let url = format!("http://127.0.0.1:{port}/-/ready");
        proc.wait_ready(READY_TIMEOUT, || match http::get(&url) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        });
        AgentProcess {
            proc,
            port,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for scrape configs.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// GET a path of the agent.
    pub fn get(&self, path: &str) -> http::HttpResponse {
        http::get(&format!("{}{path}", self.url()))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log_tail(30)))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    pub fn process(&self) -> &ServerProcess {
        &self.proc
    }
}
