//! The `docker` kind against a real `dockerd` (from `support::dockerd`, on
//! its own socket, no bridge, containers on `--network none`, a busybox
//! image imported from busybox-static): the engine's version, containers
//! running, exited, unhealthy and restarting, mounts and extra hosts, and the
//! reasons that tell a missing socket from a forbidden one, a refused one
//! and a hung daemon.

use std::process::Command;
use std::time::{Duration, Instant};

use healthprobe::checks::Reason;

use crate::probe_util::{assert_outcome, build_errors, sample, sh};
use crate::probes::{BinaryRun, blocking, build, run_binary, run_once, wait_state};
use crate::support::agent::AgentProcess;
use crate::support::dockerd::Dockerd;
use crate::support::unique_name;

/// A `docker` check of the daemon at `host`; `containers` is the YAML of a
/// `containers:` block (indented under `docker:`), or empty.
fn check(host: &str, containers: &str) -> String {
    format!("name: engine\nkind: docker\ntimeout: 5s\ndocker:\n  host: {host}\n{containers}")
}

/// Runs a check of `d` with the `containers:` block `block` (its lines,
/// indented by four spaces).
async fn in_containers(d: &Dockerd, block: &str) -> healthprobe::checks::Outcome {
    run_once(&check(&d.host(), &format!("  containers:\n{block}"))).await
}

/// The shared daemon, started off the async runtime (the support API blocks).
async fn shared() -> &'static Dockerd {
    tokio::task::spawn_blocking(|| {
        let d = Dockerd::shared();
        d.busybox_image();
        d
    })
    .await
    .unwrap()
}

/// Runs a busybox container off the async runtime.
async fn container(d: &'static Dockerd, name: &str, extra: &[&str], cmd: &[&str]) {
    let name = name.to_string();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        d.run_busybox(&name, &extra, &cmd);
    })
    .await
    .unwrap();
}

/// Polls `docker inspect -f FORMAT name` until `want` holds (panics after 60s).
async fn wait_inspect(d: &'static Dockerd, name: &str, format: &str, want: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let got = d
            .try_docker(&["inspect", "-f", format, name])
            .unwrap_or_default();
        if want(&got) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: {format} is still {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_engine_answers_with_its_version() {
    let d = shared().await;
    let o = run_once(&check(&d.host(), "")).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
    let version = d.docker(&["version", "--format", "{{.Server.Version}}"]);
    let api = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(
        sample(&o, "healthprobe_docker_info", Some(("version", &version))),
        Some(1.0),
        "{:?}",
        o.samples
    );
    assert_eq!(
        sample(&o, "healthprobe_docker_info", Some(("api_version", &api))),
        Some(1.0)
    );
    assert!(
        o.message.contains(&format!("Docker {version}")),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_running_and_exited_containers_by_prefix_and_label() {
    let d = shared().await;
    let prefix = format!("{}-", unique_name("hp-rt"));
    let label = format!("hp.test={prefix}");
    let up = format!("{prefix}up");
    let down = format!("{prefix}down");
    container(d, &up, &["--label", &label], &["sleep", "600"]).await;
    container(d, &down, &["--label", &label], &["sh", "-c", "exit 3"]).await;
    wait_inspect(d, &down, "{{.State.Status}}", |s| s == "exited").await;

    // Both exist; one is not running.
    let o = in_containers(
        d,
        &format!("    name_prefix: {prefix}\n    expect: {{ min_count: 2, running: true }}\n"),
    )
    .await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert_eq!(o.value, Some(2.0));
    assert_eq!(
        o.message,
        format!(
            "1 of 2 containers named `{prefix}*` failing: {down}: not running: exited (exit code 3)"
        )
    );

    // Counting the running ones: one, as required.
    let o = in_containers(d, &format!("    label: {label}\n    count: running\n")).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
    assert_eq!(o.value, Some(1.0));

    // By exact name.
    let o = in_containers(
        d,
        &format!("    name: {up}\n    expect: {{ running: true }}\n"),
    )
    .await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
    assert_eq!(o.value, Some(1.0));

    // Nothing matches.
    let o = in_containers(d, &format!("    name: {prefix}nope\n")).await;
    assert_eq!(o.reason, Reason::NotFound, "{}", o.message);
    assert_eq!(
        o.message,
        format!("no containers named `{prefix}nope` (expected at least 1)")
    );
    assert_eq!(o.value, Some(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_unhealthy_container_fails_healthy_one_passes() {
    let d = shared().await;
    let sick = unique_name("hp-sick");
    let fine = unique_name("hp-fine");
    let health = |cmd: &'static str| -> Vec<&'static str> {
        vec![
            "--health-cmd",
            cmd,
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ]
    };
    container(d, &sick, &health("false"), &["sleep", "600"]).await;
    container(d, &fine, &health("true"), &["sleep", "600"]).await;
    wait_inspect(d, &sick, "{{.State.Health.Status}}", |s| s == "unhealthy").await;
    wait_inspect(d, &fine, "{{.State.Health.Status}}", |s| s == "healthy").await;

    let o = in_containers(
        d,
        &format!("    name: {sick}\n    expect: {{ running: true, healthy: true }}\n"),
    )
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[&format!("{sick}: health is unhealthy (")],
    );
    assert!(
        o.message.contains("in a row; last: exit code 1)"),
        "{}",
        o.message
    );

    let o = in_containers(
        d,
        &format!("    name: {fine}\n    expect: {{ running: true, healthy: true }}\n"),
    )
    .await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_restarting_container_and_restart_growth() {
    let d = shared().await;
    let name = unique_name("hp-loop");
    container(
        d,
        &name,
        &["--restart", "always"],
        &["sh", "-c", "sleep 0.3; exit 1"],
    )
    .await;
    wait_inspect(d, &name, "{{.RestartCount}}", |s| {
        s.parse::<u64>().is_ok_and(|n| n >= 1)
    })
    .await;

    // Restarts since the previous run: the first run only records them.
    let c = build(&check(
        &d.host(),
        &format!("  containers:\n    name: {name}\n    expect: {{ max_restart_growth: 0 }}\n"),
    ));
    let first = c.run().await;
    assert_eq!(first.reason, Reason::Ok, "{}", first.message);
    let before: u64 = d
        .docker(&["inspect", "-f", "{{.RestartCount}}", &name])
        .parse()
        .unwrap();
    wait_inspect(d, &name, "{{.RestartCount}}", |s| {
        s.parse::<u64>().is_ok_and(|n| n > before)
    })
    .await;
    let second = c.run().await;
    assert_outcome(
        &second,
        Reason::AssertionFailed,
        &[" since the last run (max 0;"],
    );

    // A restart loop is not "running", and its restarts are counted.
    let o = in_containers(
        d,
        &format!("    name: {name}\n    expect: {{ running: true, max_restart_count: 0 }}\n"),
    )
    .await;
    assert_outcome(&o, Reason::AssertionFailed, &[&format!("{name}: ")]);
    assert!(o.message.contains("(max 0)"), "{}", o.message);
    let _ = d.try_docker(&["rm", "-f", &name]);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_mounts_and_extra_hosts() {
    let d = shared().await;
    let with = unique_name("hp-with");
    let without = unique_name("hp-without");
    let bind = format!("{}:/var/run/docker.sock", d.socket_path().display());
    container(
        d,
        &with,
        &[
            "-v",
            &bind,
            "--add-host",
            "host.docker.internal:host-gateway",
        ],
        &["sleep", "600"],
    )
    .await;
    container(d, &without, &[], &["sleep", "600"]).await;
    let expect = "    expect:\n      mounts: [/var/run/docker.sock]\n      \
                  extra_hosts: [host.docker.internal:host-gateway]\n";
    let o = in_containers(d, &format!("    name: {with}\n{expect}")).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);

    let o = in_containers(d, &format!("    name: {without}\n{expect}")).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert_eq!(
        o.message,
        format!(
            "1 of 1 container named `{without}` failing: {without}: /var/run/docker.sock is not \
             mounted (mounts: none), no extra host host.docker.internal:host-gateway \
             (--add-host; has: none)"
        )
    );
}

#[tokio::test]
async fn docker_socket_missing_is_not_found() {
    let dir = crate::support::tempdir("nosock");
    let path = dir.path().join("docker.sock");
    let o = run_once(&check(&format!("unix://{}", path.display()), "")).await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &[&format!(
            "the Docker socket {} does not exist",
            path.display()
        )],
    );
    // A regular file where the socket should be.
    std::fs::write(&path, "").unwrap();
    let o = run_once(&check(&format!("unix://{}", path.display()), "")).await;
    assert_outcome(&o, Reason::NotFound, &["is not a socket"]);
}

#[tokio::test]
async fn docker_tcp_endpoint_with_nothing_listening_is_refused() {
    let port = crate::support::free_port();
    let o = run_once(&check(&format!("tcp://127.0.0.1:{port}"), "")).await;
    assert_outcome(
        &o,
        Reason::ConnectionRefused,
        &[&format!("127.0.0.1:{port}")],
    );
}

#[test]
fn docker_bad_blocks_are_refused_with_their_paths() {
    let errs = build_errors(
        "name: e\nkind: docker\ndocker:\n  host: ssh://me@box\n  containers:\n    \
         expect: { mounts: [relative] }\n",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "docker.host",
            "docker.containers",
            "docker.containers.expect.mounts[0]"
        ]
    );
}

fn id(args: &str) -> u32 {
    let out = Command::new("sh")
        .args(["-c", &format!("id {args}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The test user `hp-dock` (created if missing, not in `hp-docksock`) and
/// the group `hp-docksock`: (uid, primary gid, socket group gid).
fn docker_test_user() -> (u32, u32, u32) {
    if !sh("getent group hp-docksock >/dev/null") {
        assert!(sh("groupadd --system hp-docksock"), "groupadd");
    }
    if !sh("id hp-dock >/dev/null 2>&1") {
        assert!(
            sh("useradd --system --no-create-home --shell /usr/sbin/nologin hp-dock"),
            "useradd"
        );
    }
    let _ = sh("gpasswd -d hp-dock hp-docksock >/dev/null 2>&1");
    let gid = String::from_utf8_lossy(
        &Command::new("getent")
            .args(["group", "hp-docksock"])
            .output()
            .unwrap()
            .stdout,
    )
    .split(':')
    .nth(2)
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    (id("-u hp-dock"), id("-g hp-dock"), gid)
}

/// One pack item for the binary: the engine check with a short timeout.
fn pack_item(host: &str) -> String {
    format!(
        "  - name: engine\n    kind: docker\n    timeout: 3s\n    docker:\n      host: {host}\n"
    )
}

/// The daemon's lifecycle seen by one check: the socket's permissions for a
/// user who is not root, a hung daemon, a killed one (stale socket), a
/// stopped one (socket gone), and recovery after each.
#[tokio::test(flavor = "multi_thread")]
async fn docker_daemon_permissions_hang_kill_stop_and_recovery() {
    use std::os::unix::fs::PermissionsExt;
    let d = tokio::task::spawn_blocking(Dockerd::start).await.unwrap();
    let host = d.host();
    let sock = d.socket_path();
    let c = build(&check(&host, "").replace("timeout: 5s", "timeout: 2s"));
    assert_eq!(c.run().await.reason, Reason::Ok);

    // --- Permissions, with the binary run as an unprivileged user. ---
    let (uid, gid, sock_gid) = docker_test_user();
    let item = pack_item(&host);
    let as_user = |groups: &'static [u32]| {
        let item = item.clone();
        move || {
            let (code, report) = run_binary(
                &item,
                &BinaryRun {
                    user: Some((uid, gid, groups)),
                    ..Default::default()
                },
            );
            let c = report["checks"][0].clone();
            (
                code,
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let run_as = |groups: &'static [u32]| tokio::task::spawn_blocking(as_user(groups));
    // A refused run: exit 1, permission_denied; returns the message.
    let denied = || async {
        let (code, reason, message) = run_as(&[]).await.unwrap();
        assert_eq!(
            (code, reason.as_str()),
            (1, "permission_denied"),
            "{message}"
        );
        message
    };

    // A directory on the way (0700) keeps the user out before the socket does.
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let message = denied().await;
    assert!(
        message.contains("a directory on its path is not searchable"),
        "{message}"
    );

    // Socket root:hp-docksock 0660, user not in the group.
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(sh(&format!(
        "chown root:hp-docksock {0} && chmod 0660 {0}",
        sock.display()
    )));
    let message = denied().await;
    assert_eq!(
        message,
        format!(
            "permission denied on the Docker socket {} (owner root, group hp-docksock, mode \
             0660): the agent runs as `hp-dock`, who is not in the socket's group \
             `hp-docksock`: `sudo usermod -aG hp-docksock hp-dock`, then restart the agent",
            sock.display()
        )
    );

    // Added to the group, but the agent was started before that.
    assert!(sh("usermod -aG hp-docksock hp-dock"));
    let message = denied().await;
    assert!(
        message.contains(
            "who was added to group `hp-docksock` after the agent started: restart the agent"
        ),
        "{message}"
    );

    // With the group, as after the fix and a restart: it passes.
    let groups: &'static [u32] = Box::leak(Box::new([sock_gid]));
    let (code, reason, message) = run_as(groups).await.unwrap();
    assert_eq!((code, reason.as_str()), (0, "ok"), "{message}");
    let _ = sh("gpasswd -d hp-dock hp-docksock >/dev/null 2>&1");

    // --- A hung daemon (SIGSTOP): it accepts connections, never answers. ---
    let pid = d.pid().unwrap() as i32;
    // SAFETY: signals to the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // The signal is delivered asynchronously: wait until it has stopped.
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('T')))
    };
    let t = Instant::now();
    while !stopped() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let o = c.run().await;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_outcome(&o, Reason::Timeout, &["did not answer (ping)"]);
    let o = c.run().await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);

    // --- Killed: the socket file stays, nobody listens. ---
    let d = blocking(d, Dockerd::kill).await;
    assert!(
        sock.exists(),
        "a killed dockerd should leave its socket behind"
    );
    let o = c.run().await;
    assert_outcome(
        &o,
        Reason::ConnectionRefused,
        &[&format!(
            "nothing listens on the Docker socket {}",
            sock.display()
        )],
    );
    let d = blocking(d, Dockerd::start_again).await;
    let o = c.run().await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);

    // --- Stopped: dockerd removes its socket. ---
    let d = blocking(d, Dockerd::stop).await;
    let o = c.run().await;
    assert_eq!(o.reason, Reason::NotFound, "{}", o.message);
    let _d = blocking(d, Dockerd::start_again).await;
    let o = c.run().await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
}

/// Through the real agent: the engine's version as `healthprobe_docker_info`
/// and the container count as the check's value; the check turns failing
/// within one interval plus its timeout once its container stops.
#[test]
fn docker_through_the_agent_exports_info_and_follows_a_container() {
    let d = Dockerd::shared();
    d.busybox_image();
    let name = unique_name("hp-agent");
    d.run_busybox(&name, &[], &["sleep", "600"]);
    let dir = crate::support::tempdir("docker-pack");
    std::fs::write(
        dir.path().join("ops.yaml"),
        format!(
            "pack: ops\nchecks:\n  - name: app\n    kind: docker\n    interval: 2s\n    \
             timeout: 2s\n    docker:\n      host: {}\n      containers: {{ name: {name}, \
             expect: {{ running: true }} }}\n",
            d.host()
        ),
    )
    .unwrap();
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let passing = wait_state(&agent, "app", "passing", Duration::from_secs(10));
    assert_eq!(passing["value"], 1.0, "{passing}");
    let version = d.docker(&["version", "--format", "{{.Server.Version}}"]);
    let metrics = agent.get("/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("healthprobe_docker_info{")
                && l.contains(&format!("version=\"{version}\""))
                && l.ends_with(" 1")),
        "no docker_info in /metrics:\n{metrics}"
    );

    d.docker(&["stop", "-t", "0", &name]);
    let failing = wait_state(&agent, "app", "failing", Duration::from_secs(2 + 2 + 1));
    assert_eq!(failing["reason"], "assertion_failed", "{failing}");
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("not running: exited"),
        "{failing}"
    );
    d.docker(&["start", &name]);
    wait_state(&agent, "app", "passing", Duration::from_secs(2 + 2 + 1));
}
