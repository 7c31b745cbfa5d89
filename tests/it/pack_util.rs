//! What the three pack tests share: running the real `healthprobe check`
//! binary on a fixture install and reading its report, processes started
//! under another name (Puma, the OpenHands server, a queue worker) with a
//! chosen environment and user, and small file helpers.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::cli::healthprobe;
use crate::support::process::ServerProcess;

/// One `healthprobe check --format json` run.
pub struct Report {
    pub code: Option<i32>,
    /// Each check's JSON view, by name.
    pub checks: BTreeMap<String, Value>,
    pub stderr: String,
}

impl Report {
    /// The view of a check (panics with the whole report if it did not run).
    #[track_caller]
    pub fn get(&self, name: &str) -> &Value {
        self.checks.get(name).unwrap_or_else(|| {
            panic!(
                "check {name} did not run; ran: {:?}\nstderr: {}",
                self.checks.keys().collect::<Vec<_>>(),
                self.stderr
            )
        })
    }

    /// Asserts that every listed check passed, and that nothing else ran.
    #[track_caller]
    pub fn assert_all_pass(&self, names: &[&str]) {
        let mut problems = Vec::new();
        for (name, v) in &self.checks {
            if !names.contains(&name.as_str()) {
                problems.push(format!("{name} ran but is not expected"));
            } else if v["state"] != "passing" {
                problems.push(format!(
                    "{name}: {} {}: {}",
                    v["state"], v["reason"], v["message"]
                ));
            }
        }
        for n in names {
            if !self.checks.contains_key(*n) {
                problems.push(format!("{n} did not run"));
            }
        }
        assert!(
            problems.is_empty(),
            "on the healthy install:\n  {}\nstderr: {}",
            problems.join("\n  "),
            self.stderr
        );
        assert_eq!(self.code, Some(0), "exit code with every check passing");
    }

    /// Asserts that each listed check failed with its reason and that its
    /// message holds every part; reports every mismatch at once.
    #[track_caller]
    pub fn assert_failures(&self, expected: &[(&str, &str, &[&str])]) {
        let mut problems = Vec::new();
        for (name, reason, parts) in expected {
            let Some(v) = self.checks.get(*name) else {
                problems.push(format!("{name} did not run"));
                continue;
            };
            let message = v["message"].as_str().unwrap_or_default();
            if v["state"] != "failing" || v["reason"] != *reason {
                problems.push(format!(
                    "{name}: expected failing with {reason}, got {} {}: {message}",
                    v["state"], v["reason"]
                ));
                continue;
            }
            for p in *parts {
                if !message.contains(p) {
                    problems.push(format!("{name}: {p:?} is not in: {message}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "on the broken install:\n  {}",
            problems.join("\n  ")
        );
        assert_eq!(self.code, Some(1), "exit code with failing checks");
    }
}

/// `healthprobe check --format json ARGS`.
pub fn check_json(args: &[&str]) -> Report {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let out = healthprobe(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "healthprobe check {args:?} printed no JSON ({e}), exit {:?}:\n{}\n{stderr}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let checks = doc["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c.clone(),
            )
        })
        .collect();
    Report {
        code: out.status.code(),
        checks,
        stderr,
    }
}

/// `healthprobe check ARGS` with the text report (NO_COLOR); exit code and stdout.
pub fn check_text(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = healthprobe(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `healthprobe list --format json ARGS`: the checks switched off, by name,
/// with why.
pub fn switched_off(args: &[&str]) -> BTreeMap<String, String> {
    let mut all = vec!["list", "--format", "json"];
    all.extend_from_slice(args);
    let out = healthprobe(&all);
    assert!(
        out.status.success(),
        "healthprobe list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    doc.as_array()
        .expect("packs")
        .iter()
        .flat_map(|p| p["skipped"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["why"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Runs `healthprobe check ARGS` on a broken install: it must exit 1 and its
/// text report must name each fault and its fix (see [`assert_text_report`]).
/// Returns the report (printed when `HP_SHOW_REPORT` is set).
#[track_caller]
pub fn assert_broken_report(args: &[&str], expected: &[(&str, &[&str])]) -> String {
    let (code, text) = check_text(args);
    if std::env::var_os("HP_SHOW_REPORT").is_some() {
        eprintln!("{text}");
    }
    assert_eq!(code, Some(1), "{text}");
    assert_text_report(&text, expected);
    text
}

/// Asserts that the text report names each check, the part of its failure
/// and the part of its fix (`(name, [parts...])`), failures before passes.
#[track_caller]
pub fn assert_text_report(text: &str, expected: &[(&str, &[&str])]) {
    let mut problems = Vec::new();
    for (name, parts) in expected {
        let Some(at) = text.find(&format!("FAIL  {name} ")) else {
            problems.push(format!("no `FAIL  {name}` line"));
            continue;
        };
        // The check's block: its line and the indented lines after it.
        let block: String = text[at..]
            .lines()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with("        "))
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        for p in *parts {
            if !block.contains(p) {
                problems.push(format!("{name}: {p:?} is not in:\n{block}"));
            }
        }
        if !block.contains("fix: ") || !block.contains("guide: http") {
            problems.push(format!("{name}: no fix or guide line in:\n{block}"));
        }
    }
    assert!(
        problems.is_empty(),
        "in the text report:\n{}\n--- report:\n{text}",
        problems.join("\n")
    );
}

/// A process whose command line reads `title` (bash's `exec -a`, as Puma and
/// other servers rename themselves): `sleep` under another name, with exactly
/// the environment `env` (plus PATH), as `user` when given. Killed on drop.
pub fn titled_process(
    title: &str,
    user: Option<&str>,
    env: &[(&str, &str)],
    log_dir: &Path,
) -> ServerProcess {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--init-groups",
                "--",
            ]);
            c.arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    cmd.args(["-c", "exec -a \"$0\" sleep 600", title]);
    cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let p = ServerProcess::spawn(title, cmd, &log_dir.join("titled.log"));
    // Wait until exec has renamed it.
    let pid = p.pid();
    let want = title.split(' ').next().unwrap_or(title).to_string();
    p.wait_ready(std::time::Duration::from_secs(10), || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).starts_with(&want) {
            Ok(())
        } else {
            Err("not renamed yet".into())
        }
    });
    p
}

/// Writes `text` to `path`, creating the parent directories.
pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `chmod MODE path`.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `chown -R user:user path` (symlinks themselves, not their targets).
pub fn chown_r(path: &Path, user: &str) {
    let status = Command::new("chown")
        .args(["-R", "-h", &format!("{user}:{user}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown -R {user} {}", path.display());
}

/// A fixture file under `tests/fixtures/packs/`.
pub fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/packs")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
