//! Prometheus (Debian's 2.x) on 127.0.0.1, scraping given targets and
//! evaluating given rule files, queried through its HTTP API.
//!
//! Timing: Prometheus is ready in ~0.1 s, but its first scrape comes about
//! 5 s after start (service discovery hands targets over on a fixed 5 s tick
//! in 2.x; no flag changes it). Give [`Prometheus::wait_for`] 15 s or more.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::http;
use super::process::ServerProcess;
use super::{READY_TIMEOUT, free_port, require_binary, tempdir};

/// Options for [`Prometheus::start`].
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// `HOST:PORT` targets of the one scrape job.
    pub scrape_targets: Vec<String>,
    /// The job's name (label `job`). Default `healthprobe`.
    pub job_name: String,
    /// Default `/metrics`.
    pub metrics_path: String,
    /// Scrape interval, also the scrape timeout. Default 1 s.
    pub scrape_interval: Duration,
    /// Rule evaluation interval. Default 1 s.
    pub evaluation_interval: Duration,
    /// Rule files (absolute or relative to the current directory).
    pub rule_files: Vec<PathBuf>,
    /// Raw YAML list items appended under `scrape_configs:` (indent them by
    /// two spaces, starting with `  - job_name: ...`).
    pub extra_scrape_configs: String,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            scrape_targets: Vec::new(),
            job_name: "healthprobe".into(),
            metrics_path: "/metrics".into(),
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
            rule_files: Vec::new(),
            extra_scrape_configs: String::new(),
        }
    }
}

pub struct Prometheus {
    proc: Option<ServerProcess>,
    port: u16,
    dir: TempDir,
}

fn prom_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl Prometheus {
    pub fn start(options: PrometheusOptions) -> Prometheus {
        let dir = tempdir("prom");
        let mut yaml = format!(
            "global:\n  scrape_interval: {si}\n  scrape_timeout: {si}\n  evaluation_interval: {ei}\n",
            si = prom_duration(options.scrape_interval),
            ei = prom_duration(options.evaluation_interval),
        );
        if !options.rule_files.is_empty() {
            yaml.push_str("rule_files:\n");
            for f in &options.rule_files {
                let abs = std::path::absolute(f).unwrap();
                yaml.push_str(&format!("  - {}\n", yaml_str(&abs.to_string_lossy())));
            }
        }
        yaml.push_str("scrape_configs:\n");
        if !options.scrape_targets.is_empty() {
            let targets: Vec<String> = options.scrape_targets.iter().map(|t| yaml_str(t)).collect();
            yaml.push_str(&format!(
                "  - job_name: {}\n    metrics_path: {}\n    static_configs:\n      - targets: [{}]\n",
                yaml_str(&options.job_name),
                yaml_str(&options.metrics_path),
                targets.join(", ")
            ));
        }
        yaml.push_str(&options.extra_scrape_configs);
        std::fs::write(dir.path().join("prometheus.yml"), yaml).unwrap();
        if let Some(promtool) = super::find_binary("promtool") {
            let out = super::process::output_with_timeout(
                Command::new(promtool)
                    .arg("check")
                    .arg("config")
                    .arg(dir.path().join("prometheus.yml")),
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("promtool: {e}"));
            assert!(
                out.status.success(),
                "promtool check config failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut p = Prometheus {
            proc: None,
            port: free_port(),
            dir,
        };
        p.start_again();
        p
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// The TSDB directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("tsdb")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// GET `/api/v1/{path_and_query}`; returns `data` of a successful
    /// answer, Err with the body otherwise.
    pub fn try_api_get(&self, path_and_query: &str) -> Result<Value, String> {
        let url = format!("{}/api/v1/{path_and_query}", self.url());
        let resp = http::get(&url).map_err(|e| format!("GET {url}: {e}"))?;
        let body: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("GET {url}: {} not JSON ({e}): {}", resp.status, resp.text()))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("GET {url}: {} {body}", resp.status))
        }
    }

    /// Like [`Prometheus::try_api_get`], panicking on error.
    pub fn api_get(&self, path_and_query: &str) -> Value {
        self.try_api_get(path_and_query)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Instant query; returns `data.result` (for a vector: an array of
    /// `{"metric": {...}, "value": [ts, "v"]}`). Panics on an API error.
    pub fn query(&self, expr: &str) -> Value {
        self.api_get(&format!("query?query={}", http::url_encode(expr)))["result"].clone()
    }

    /// Query `expr` every 250 ms until `predicate(result)` holds; returns
    /// that result. Panics after `timeout` with the last result and log tail.
    pub fn wait_for(
        &self,
        expr: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let started = Instant::now();
        loop {
            let last = match self.try_api_get(&format!("query?query={}", http::url_encode(expr))) {
                Ok(data) => {
                    let result = data["result"].clone();
                    if predicate(&result) {
                        return result;
                    }
                    result.to_string()
                }
                Err(e) => e,
            };
            if started.elapsed() > timeout {
                panic!(
                    "Prometheus query {expr:?} did not satisfy the predicate within {timeout:?}; \
                     last result: {last}\ntargets: {}\nlog tail:\n{}",
                    self.try_api_get("targets?state=active")
                        .map(|t| t.to_string())
                        .unwrap_or_else(|e| e),
                    super::process::log_tail(&self.log_path(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `/api/v1/targets` data.
    pub fn targets(&self) -> Value {
        self.api_get("targets")
    }

    /// `/api/v1/rules` data.
    pub fn rules(&self) -> Value {
        self.api_get("rules")
    }

    /// `/api/v1/alerts` data.
    pub fn alerts(&self) -> Value {
        self.api_get("alerts")
    }

    /// Re-read configuration and rule files (`POST /-/reload`).
    pub fn reload(&self) {
        let resp = http::request("POST", &format!("{}/-/reload", self.url()), &[], &[])
            .unwrap_or_else(|e| panic!("POST /-/reload: {e}"));
        assert_eq!(resp.status, 200, "POST /-/reload: {}", resp.text());
    }

    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(30));
        }
    }

    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start (again) on the same TSDB and port; waits for `/-/ready`.
    pub fn start_again(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut cmd = Command::new(require_binary("prometheus"));
        cmd.arg(format!("--config.file={}", self.config_path().display()))
            .arg(format!("--storage.tsdb.path={}", self.data_dir().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .args(["--web.enable-lifecycle", "--log.level=info"])
            .current_dir(d);
        let proc = ServerProcess::spawn("prometheus", cmd, &self.log_path());
        let ready = format!("{}/-/ready", self.url());
        proc.wait_ready(READY_TIMEOUT, || match http::get(&ready) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("/-/ready: {} {}", r.status, r.text().trim())),
            Err(e) => Err(format!("/-/ready: {e}")),
        });
        self.proc = Some(proc);
    }
}

/// The numeric values of an instant-vector result (`[{"value":[ts,"1"]}]`).
pub fn sample_values(result: &Value) -> Vec<f64> {
    result
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["value"][1].as_str()?.parse().ok())
        .collect()
}
