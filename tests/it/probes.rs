//! Building a check from its YAML the way the loader does and running the
//! same prepared check several times (kinds that keep state between runs,
//! such as `docker`'s restart growth, need the same instance).
//!
//! Runs call the kind directly, without the runner, so that what a kind puts
//! in its outcome is seen before the runner's redaction net.

use std::time::Duration;

use healthprobe::checks::{BuildContext, Outcome, Probe, RunContext};

use crate::probe_util::spec;

/// A prepared check and its timeout.
pub struct Built {
    pub probe: Probe,
    pub timeout: Duration,
}

/// Builds one whole check (`name`, `kind`, `timeout`, the block).
pub fn build(check_yaml: &str) -> Built {
    let (spec, timeout) = spec(check_yaml);
    let ctx = BuildContext {
        timeout,
        pack_dir: None,
    };
    match Probe::build(&spec, &ctx) {
        Ok(probe) => Built { probe, timeout },
        Err(e) => panic!("the check does not build: {e:?}"),
    }
}

impl Built {
    /// One run with observations kept; panics if the kind overruns its own
    /// deadline by more than a little (the runner would have cut it off).
    pub async fn run(&self) -> Outcome {
        let started = tokio::time::Instant::now();
        let ctx = RunContext {
            deadline: started + self.timeout,
            debug: true,
        };
        let outcome = self.probe.run(&ctx).await;
        let took = started.elapsed();
        // Visible with --nocapture: what a person would read.
        eprintln!("[{}] {}", outcome.reason, outcome.message);
        assert!(
            took <= self.timeout + Duration::from_millis(100),
            "the check ran {took:?}, past its timeout of {:?}",
            self.timeout
        );
        outcome
    }
}

/// Builds and runs a check once.
pub async fn run_once(check_yaml: &str) -> Outcome {
    build(check_yaml).run().await
}

/// Everything an outcome says, for "the secret is nowhere" assertions.
pub fn all_text(o: &Outcome) -> String {
    let mut t = o.message.clone();
    for line in &o.observations {
        t.push('\n');
        t.push_str(line);
    }
    for s in &o.samples {
        for (_, v) in &s.labels {
            t.push('\n');
            t.push_str(v);
        }
    }
    t
}

/// How to run the `healthprobe` binary.
#[derive(Default)]
pub struct BinaryRun<'a> {
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// Run as this uid (and its primary gid), with these supplementary
    /// groups only (`setpriv`), instead of as root.
    pub user: Option<(u32, u32, &'a [u32])>,
}

/// Runs `healthprobe check --checks DIR --format json --verbose` on a pack
/// made of `checks_yaml` (the YAML list under `checks:`) and returns the
/// exit code and the JSON report. The pack directory and a copy of the
/// binary are world-readable so that another user can run them.
pub fn run_binary(checks_yaml: &str, how: &BinaryRun<'_>) -> (i32, serde_json::Value) {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::support::tempdir("pack");
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(dir.path(), 0o755);
    let pack = dir.path().join("checks");
    std::fs::create_dir(&pack).unwrap();
    mode(&pack, 0o755);
    std::fs::write(
        pack.join("t.yaml"),
        format!("pack: t\ntitle: test\nchecks:\n{checks_yaml}"),
    )
    .unwrap();
    mode(&pack.join("t.yaml"), 0o644);
    let bin = dir.path().join("healthprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_healthprobe"), &bin).unwrap();
    mode(&bin, 0o755);
    let args = [
        "check",
        "--checks",
        pack.to_str().unwrap(),
        "--format",
        "json",
        "--verbose",
    ];
    let mut cmd = match how.user {
        None => {
            let mut c = std::process::Command::new(&bin);
            c.args(args);
            c
        }
        Some((uid, gid, groups)) => {
            let mut c = std::process::Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"));
            if groups.is_empty() {
                c.arg("--clear-groups");
            } else {
                let list: Vec<String> = groups.iter().map(u32::to_string).collect();
                c.arg(format!("--groups={}", list.join(",")));
            }
            c.arg("--").arg(&bin).args(args);
            c
        }
    };
    cmd.env_remove("DOCKER_HOST").current_dir(dir.path());
    for (k, v) in how.env {
        cmd.env(k, v);
    }
    let out = crate::support::process::output_with_timeout(&mut cmd, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let code = out.status.code().unwrap_or(-1);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); exit {code}; stdout {}; stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// Applies `f` (a blocking support call such as `Dockerd::kill` or
/// `Smtp::start_again`) to `server` off the async runtime.
pub async fn blocking<T: Send + 'static>(mut server: T, f: fn(&mut T)) -> T {
    tokio::task::spawn_blocking(move || {
        f(&mut server);
        server
    })
    .await
    .unwrap()
}

/// Polls the agent's `/api/v1/checks` until the check `name` is in `state`
/// (`passing`, `failing`) and returns its JSON; panics after `within`.
pub fn wait_state(
    agent: &crate::support::agent::AgentProcess,
    name: &str,
    state: &str,
    within: Duration,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let api = agent.get("/api/v1/checks").json();
        let check = api["checks"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_default();
        if check["state"] == state {
            return check;
        }
        assert!(
            started.elapsed() < within,
            "{name} not {state} within {within:?}: {check}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
