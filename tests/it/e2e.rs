//! End to end: the built binary runs a test pack with passing and failing
//! http, file and command checks; Prometheus (Debian's) scrapes it; the test
//! reads the results back through Prometheus' HTTP API. Also: the exposition
//! passes `promtool check metrics`, and the JSON API and `/probe` agree.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::agent::AgentProcess;
use crate::support::nginx::Nginx;
use crate::support::prometheus::{Prometheus, PrometheusOptions, sample_values};
use crate::support::{require_binary, tempdir};

fn write_pack(dir: &std::path::Path, nginx: &Nginx) {
    let existing = dir.join("present.txt");
    std::fs::write(&existing, "x").unwrap();
    let pack = format!(
        r##"pack: e2e
title: End-to-end test pack
guide: https://example.org/guide
defaults: {{ interval: 1s, timeout: 900ms }}
checks:
  - name: page_ok
    kind: http
    title: The page answers 200
    http:
      url: {page}
      expect: {{ status: [200] }}
  - name: page_missing
    kind: http
    severity: critical
    title: A missing page answers 200
    remediation: Put the page back.
    doc: "#missing"
    http:
      url: {missing}
      expect: {{ status: [200] }}
  - name: file_present
    kind: file
    file: {{ path: {existing} }}
  - name: file_absent
    kind: file
    file: {{ path: {absent} }}
  - name: command_ok
    kind: command
    command: {{ argv: ["true"] }}
  - name: command_fails
    kind: command
    command: {{ argv: ["false"] }}
"##,
        page = nginx.url("/ok"),
        missing = nginx.url("/missing"),
        existing = existing.display(),
        absent = dir.join("absent.txt").display(),
    );
    std::fs::write(dir.join("e2e.yaml"), pack).unwrap();
}

fn nginx() -> Nginx {
    Nginx::start(r#"location = /ok { return 200 "ok\n"; } location / { return 404; }"#)
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_each_result() {
    let nginx = nginx();
    let dir = tempdir("e2e-pack");
    write_pack(dir.path(), &nginx);
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    let prom = Prometheus::start(PrometheusOptions {
        scrape_targets: vec![agent.address()],
        ..Default::default()
    });

    let timeout = Duration::from_secs(30);
    let expect = [
        ("page_ok", 1.0),
        ("page_missing", 0.0),
        ("file_present", 1.0),
        ("file_absent", 0.0),
        ("command_ok", 1.0),
        ("command_fails", 0.0),
    ];
    for (check, want) in expect {
        let q = format!("healthprobe_check_success{{pack=\"e2e\",check=\"{check}\"}}");
        prom.wait_for(&q, |r| sample_values(r) == vec![want], timeout);
    }
    let reasons = prom.wait_for(
        "healthprobe_check_failure{pack=\"e2e\"} == 1",
        |r| r.as_array().is_some_and(|a| a.len() == 3),
        timeout,
    );
    let mut by_check: Vec<(String, String)> = reasons
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["check"].as_str().unwrap().to_string(),
                s["metric"]["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_check.sort();
    assert_eq!(
        by_check,
        vec![
            ("command_fails".to_string(), "assertion_failed".to_string()),
            ("file_absent".to_string(), "not_found".to_string()),
            ("page_missing".to_string(), "assertion_failed".to_string()),
        ]
    );
    let info = prom.query("healthprobe_check_info{check=\"page_missing\"}");
    assert_eq!(info[0]["metric"]["severity"], "critical");
    assert_eq!(
        info[0]["metric"]["doc"],
        "https://example.org/guide#missing"
    );
    assert_eq!(
        sample_values(&prom.query("healthprobe_checks_configured{pack=\"e2e\"}")),
        vec![6.0]
    );
    assert_eq!(
        sample_values(&prom.query("up{job=\"healthprobe\"}")),
        vec![1.0]
    );
    // Runs keep happening: the counter grows between two scrapes.
    let runs = |p: &Prometheus| {
        sample_values(&p.query("sum(healthprobe_check_runs_total{pack=\"e2e\"})"))[0]
    };
    let before = runs(&prom);
    prom.wait_for(
        "sum(healthprobe_check_runs_total{pack=\"e2e\"})",
        |r| sample_values(r).first().is_some_and(|v| *v > before),
        timeout,
    );
    assert!(
        sample_values(&prom.query("healthprobe_scheduler_lag_seconds_count"))
            .first()
            .is_some_and(|v| *v > 0.0)
    );
}

#[test]
fn the_exposition_passes_promtool_and_the_api_agrees() {
    let nginx = nginx();
    let dir = tempdir("e2e-pack");
    write_pack(dir.path(), &nginx);
    let agent = AgentProcess::start(&["--checks", dir.path().to_str().unwrap()]);
    // Wait until every check has run once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let api = loop {
        let api = agent.get("/api/v1/checks").json();
        if api["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] != "pending")
        {
            break api;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "checks still pending: {api}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let checks = api["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 6);
    assert_eq!(checks[0]["state"], "failing", "failing checks come first");
    let missing = checks.iter().find(|c| c["name"] == "page_missing").unwrap();
    assert_eq!(missing["remediation"], "Put the page back.");
    assert_eq!(missing["reason"], "assertion_failed");

    let metrics = agent.get("/metrics");
    assert_eq!(
        metrics.header("content-type"),
        Some(healthprobe::exposition::CONTENT_TYPE)
    );
    let promtool = require_binary("promtool");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&metrics.body)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}"
    );

    let probe = agent.get("/probe?check=e2e/page_missing");
    assert_eq!(probe.status, 200);
    let text = probe.text();
    assert!(text.contains("probe_success 0"), "{text}");
    assert!(text.contains("healthprobe_check_failure{pack=\"e2e\",check=\"page_missing\",reason=\"assertion_failed\"} 1"), "{text}");
    assert_eq!(agent.get("/probe?check=e2e/nope").status, 404);
    assert_eq!(agent.get("/probe").status, 400);
    assert_eq!(agent.get("/-/healthy").status, 200);
    assert_eq!(agent.get("/nowhere").status, 404);
}
