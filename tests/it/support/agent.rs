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
        let dir = tempdir("agent");
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        cmd.env_remove("HEALTHPROBE_CONFIG");
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
