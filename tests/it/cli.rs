//! The command line as a user meets it: exit codes, reports, validation
//! output, listing, and a clean shutdown on SIGTERM.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::agent::{AgentProcess, binary};
use crate::support::tempdir;

/// Runs the binary with ARGS, without colour or an agent config from the
/// environment.
pub(crate) fn healthprobe(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("HEALTHPROBE_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run healthprobe")
}

fn pack_dir(checks: &str) -> tempfile::TempDir {
    let dir = tempdir("cli-pack");
    std::fs::write(dir.path().join("t.yaml"), format!("pack: t\ntitle: Test pack\ndefaults: {{ interval: 5s, timeout: 2s }}\nchecks:\n{checks}")).unwrap();
    dir
}

const PASSING: &str = "  - name: root_exists\n    kind: file\n    title: The root directory exists\n    file: { path: / }\n";
const FAILING: &str = "  - name: gone\n    kind: file\n    severity: critical\n    title: A file that is not there\n    remediation: Create the file.\n    file: { path: /nonexistent/healthprobe-test }\n";

#[test]
fn check_exits_0_when_all_pass_and_1_when_one_fails() {
    let ok = pack_dir(PASSING);
    let out = healthprobe(&["check", "--checks", ok.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("All 1 checks passed."));

    let bad = pack_dir(&format!("{PASSING}{FAILING}"));
    let out = healthprobe(&["check", "--checks", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let fail = text.find("FAIL  gone").expect("the failure is listed");
    let ok = text.find("ok    root_exists").expect("the pass is listed");
    assert!(fail < ok, "failures come first:\n{text}");
    assert!(text.contains("not_found:"), "{text}");
    assert!(text.contains("fix: Create the file."), "{text}");
    assert!(
        text.contains("1 of 2 checks failed (1 critical)."),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "NO_COLOR means no escape codes");
}

#[test]
fn check_json_is_machine_readable() {
    let bad = pack_dir(&format!("{PASSING}{FAILING}"));
    let out = healthprobe(&[
        "check",
        "--format",
        "json",
        "--checks",
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(doc["passed"], 1);
    assert_eq!(doc["failed"], 1);
    assert_eq!(doc["checks"][0]["id"], "t/gone");
    assert_eq!(doc["checks"][0]["reason"], "not_found");
    assert_eq!(doc["checks"][0]["remediation"], "Create the file.");
}

#[test]
fn validate_reports_errors_with_positions_and_exits_2() {
    let dir = pack_dir(
        "  - name: x\n    kind: file\n    file: { path: / }\n    severty: critical\n  - name: y\n    kind: nope\n",
    );
    let out = healthprobe(&["validate", "--checks", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.yaml:8:5: checks[0].severty: unknown field `severty`"),
        "{err}"
    );
    assert!(
        err.contains("t.yaml:10:11: checks[1].kind: unknown variant `nope`"),
        "{err}"
    );
    assert!(err.contains("2 configuration errors found"), "{err}");

    let ok = pack_dir(PASSING);
    let out = healthprobe(&["validate", "--checks", ok.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 check scheduled"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(healthprobe(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        healthprobe(&["check", "--pack", "nosuchpack"])
            .status
            .code(),
        Some(2)
    );
    let out = healthprobe(&["run", "--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`not-an-address` is not an address"));
    for (level, says) in [
        ("verbose", "`verbose` is not a level"),
        ("healthprobe=loud", "not a log filter"),
    ] {
        let out = healthprobe(&["validate", "--log-level", level]);
        assert_eq!(out.status.code(), Some(2), "--log-level {level}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "--log-level {level}: {stderr}");
    }
}

/// Logs written to a pipe or a file (journald, `docker logs`) carry no
/// terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = pack_dir(PASSING);
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let logs = agent.log_tail(50);
    assert!(logs.contains("healthprobe is listening"), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "colour codes in piped logs: {logs:?}"
    );
}

#[test]
fn list_shows_packs_checks_and_switched_off_ones() {
    let dir = pack_dir(&format!(
        "{PASSING}  - name: off\n    kind: file\n    enabled_if: {{ value: sync, equals: database }}\n    file: {{ path: / }}\n"
    ));
    let out = healthprobe(&["list", "--checks", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("t - Test pack [enabled]"), "{text}");
    assert!(text.contains("root_exists"), "{text}");
    assert!(
        text.contains("off: enabled_if: `sync` is not `database`"),
        "{text}"
    );
    assert!(
        text.contains("host - "),
        "built-in packs are listed: {text}"
    );
}

#[test]
fn help_describes_every_verb() {
    let out = healthprobe(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["run", "check", "validate", "list", "schema"] {
        assert!(text.contains(verb), "--help mentions {verb}: {text}");
    }
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let dir = pack_dir(PASSING);
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let started = Instant::now();
    agent.process().signal(libc::SIGTERM);
    while agent.process().is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the agent did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        agent.process().exit_status().and_then(|s| s.code()),
        Some(0)
    );
}

/// `healthprobe check` run on a terminal (util-linux `script` gives it one):
/// progress on stderr while checks run, then the report in colour; with
/// NO_COLOR the same report without colour. Piped, neither (see above).
#[test]
fn check_on_a_terminal_shows_progress_and_colour_unless_no_color() {
    let dir = pack_dir(&format!("{PASSING}{FAILING}"));
    let run = |no_color: bool| {
        let cmd = format!(
            "{} check --checks {}",
            binary().display(),
            dir.path().display()
        );
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env_remove("HEALTHPROBE_CONFIG")
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().expect("script (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = run(false);
    assert!(tty.contains("checking 0/2..."), "{tty:?}");
    assert!(tty.contains("checking 2/2, 1 failed..."), "{tty:?}");
    assert!(tty.contains("\x1b[1;31mFAIL\x1b[0m  gone"), "{tty:?}");
    let plain = run(true);
    assert!(plain.contains("checking 2/2, 1 failed..."), "{plain:?}");
    assert!(plain.contains("FAIL  gone"), "{plain:?}");
    assert!(!plain.contains("\x1b[1;31m"), "NO_COLOR: {plain:?}");

    let piped = healthprobe(&["check", "--checks", dir.path().to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("checking"));
}
