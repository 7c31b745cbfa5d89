//! Running one check from its YAML the way the agent does (deserialized with
//! positions, built, run by the runner under its hard timeout, debug on), and
//! the test users the file and command tests need.

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use healthprobe::checks::{BuildContext, CheckSpec, FieldError, Outcome, Probe, Reason, runner};
use healthprobe::config::yaml;

/// The check spec of `check_yaml` and its timeout (default 10 s).
pub fn spec(check_yaml: &str) -> (CheckSpec, Duration) {
    let node = yaml::parse(check_yaml)
        .expect("valid YAML")
        .expect("not empty");
    let spec: CheckSpec = yaml::from_node(&node, "", &|s| Ok(s.to_string())).expect("a check spec");
    let timeout = spec
        .timeout
        .map(|t| t.get())
        .unwrap_or(Duration::from_secs(10));
    (spec, timeout)
}

/// A prepared check and its timeout, kept across runs for kinds with state
/// (`log` follows its file from one run to the next).
pub struct Prepared {
    probe: Arc<Probe>,
    timeout: Duration,
}

/// Builds one check (a whole check: `name`, `kind`, the block).
pub fn probe(check_yaml: &str) -> Prepared {
    let (spec, timeout) = spec(check_yaml);
    let ctx = BuildContext {
        timeout,
        pack_dir: None,
    };
    match Probe::build(&spec, &ctx) {
        Ok(p) => Prepared {
            probe: Arc::new(p),
            timeout,
        },
        Err(e) => panic!("the check does not build: {e:?}"),
    }
}

/// Runs a prepared check once, as the agent does.
pub async fn run_probe(p: &Prepared) -> Outcome {
    runner::execute(p.probe.clone(), p.timeout, true)
        .await
        .outcome
}

/// Builds and runs one check (a whole check: `name`, `kind`, the block).
pub async fn run(check_yaml: &str) -> Outcome {
    run_probe(&probe(check_yaml)).await
}

/// The build errors of a check that must not build.
pub fn build_errors(check_yaml: &str) -> Vec<FieldError> {
    let (spec, timeout) = spec(check_yaml);
    let ctx = BuildContext {
        timeout,
        pack_dir: None,
    };
    match Probe::build(&spec, &ctx) {
        Ok(_) => panic!("the check built"),
        Err(e) => e,
    }
}

/// Runs a shell command; whether it succeeded.
pub fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success())
}

/// The unprivileged test user `hp-other` (created if missing), member of the
/// supplementary group `hp-extra`. The tests run as root.
pub fn hp_other() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if !sh("getent group hp-extra >/dev/null") {
            assert!(sh("groupadd --system hp-extra"), "groupadd hp-extra");
        }
        if !sh("id hp-other >/dev/null 2>&1") {
            assert!(
                sh("useradd --system --no-create-home --shell /usr/sbin/nologin hp-other"),
                "useradd hp-other"
            );
        }
        assert!(sh("usermod -aG hp-extra hp-other"), "usermod hp-other");
    });
    "hp-other"
}

/// Whether a process is gone (or a zombie nobody has reaped yet).
pub fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits up to `limit` for `cond`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Asserts the reason of an outcome and that its message holds every part.
#[track_caller]
pub fn assert_outcome(o: &Outcome, reason: Reason, parts: &[&str]) {
    assert_eq!(o.reason, reason, "{}", o.message);
    for part in parts {
        assert!(
            o.message.contains(part),
            "{part:?} is not in: {}",
            o.message
        );
    }
}

/// A `/proc/meminfo` field, in bytes.
pub fn meminfo_bytes(field: &str) -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/meminfo"))
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib * 1024
}

/// The value of the kind-specific sample `family{label=value}` (the first
/// of the family when `label` is `None`).
pub fn sample(o: &Outcome, family: &str, label: Option<(&str, &str)>) -> Option<f64> {
    o.samples
        .iter()
        .find(|s| {
            s.family.name == family
                && label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v))
        })
        .map(|s| s.value)
}
