//! Reload without loss: `POST /-/reload`, a change to a watched pack file and
//! SIGHUP reload the config; a bad config is rejected and the last good one
//! keeps running; unchanged checks keep their counters and state.

use std::time::{Duration, Instant};

use crate::support::agent::AgentProcess;
use crate::support::http::request;
use crate::support::tempdir;

const TOKEN: &str = "reload-token-0123";

fn pack(checks: &[(&str, &str)]) -> String {
    let mut s = String::from("pack: r\ndefaults: { interval: 200ms, timeout: 100ms }\nchecks:\n");
    for (name, period) in checks {
        s.push_str(&format!("  - name: {name}\n    kind: heartbeat\n    heartbeat: {{ period: {period}, token: {TOKEN} }}\n"));
    }
    s
}

fn metric(agent: &AgentProcess, name: &str) -> Option<f64> {
    agent
        .get("/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn names(agent: &AgentProcess) -> Vec<String> {
    let mut v: Vec<String> = agent.get("/api/v1/checks").json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_keeps_unchanged_checks_and_rejects_bad_configs() {
    let dir = tempdir("reload");
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, pack(&[("keep", "1h"), ("change", "1h")])).unwrap();
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let post = |path: &str| request("POST", &format!("{}{path}", agent.url()), &[], b"").unwrap();
    assert_eq!(post(&format!("/push/r/keep?token={TOKEN}")).status, 202);
    let runs_keep = |a: &AgentProcess| {
        metric(
            a,
            "healthprobe_check_runs_total{pack=\"r\",check=\"keep\",result=\"success\"}",
        )
        .unwrap_or(0.0)
    };
    wait("a few runs of `keep`", || runs_keep(&agent) >= 3.0);
    let before = runs_keep(&agent);

    std::fs::write(
        &file,
        pack(&[("keep", "1h"), ("change", "2h"), ("added", "1h")]),
    )
    .unwrap();
    let r = post("/-/reload");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("1 kept, 1 restarted, 1 added, 0 removed"),
        "{}",
        r.text()
    );
    assert_eq!(names(&agent), vec!["added", "change", "keep"]);
    assert!(
        runs_keep(&agent) >= before,
        "the kept check kept its counters"
    );
    assert_eq!(
        metric(&agent, "healthprobe_config_last_reload_successful"),
        Some(1.0)
    );

    // A bad config is rejected; the running one stays.
    std::fs::write(
        &file,
        "pack: r\nchecks:\n  - name: broken\n    kind: nope\n",
    )
    .unwrap();
    let r = post("/-/reload");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("unknown variant `nope`"), "{}", r.text());
    assert_eq!(
        metric(&agent, "healthprobe_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(names(&agent), vec!["added", "change", "keep"]);
    // The heartbeat pushed before both reloads still counts: state survived.
    let keep = agent.get("/probe?check=r/keep").text();
    assert!(keep.contains("probe_success 1"), "{keep}");
    assert!(
        agent.log_tail(50).contains("configuration rejected"),
        "the errors are logged"
    );
}

#[test]
fn a_changed_pack_file_is_picked_up_without_asking() {
    let dir = tempdir("reload-watch");
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, pack(&[("one", "1h")])).unwrap();
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    assert_eq!(names(&agent), vec!["one"]);
    std::fs::write(&file, pack(&[("one", "1h"), ("two", "1h")])).unwrap();
    wait("the watcher to reload", || {
        names(&agent) == vec!["one", "two"]
    });
}

#[test]
fn sighup_reloads() {
    let dir = tempdir("reload-hup");
    std::fs::write(dir.path().join("r.yaml"), pack(&[("one", "1h")])).unwrap();
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let stamp = |a: &AgentProcess| {
        metric(
            a,
            "healthprobe_config_last_reload_success_timestamp_seconds",
        )
        .unwrap()
    };
    let first = stamp(&agent);
    std::thread::sleep(Duration::from_millis(20));
    agent.process().signal(libc::SIGHUP);
    wait("SIGHUP reload", || stamp(&agent) > first);
    assert!(
        agent.log_tail(50).contains("SIGHUP"),
        "{}",
        agent.log_tail(50)
    );
    assert!(agent.process().is_running());
}
