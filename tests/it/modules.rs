//! Blackbox-style `/probe?module=M&target=T`: off unless configured, only
//! for allow-listed targets (no server-side request forgery through the
//! agent), and a real probe of an allowed target.

use crate::support::agent::AgentProcess;
use crate::support::nginx::Nginx;
use crate::support::tempdir;

fn nginx() -> Nginx {
    Nginx::start(
        r#"location = /invoice.pdf { add_header Cache-Control no-store always; default_type application/pdf; return 200 "%PDF-1.4 test"; } location = /cached.pdf { default_type application/pdf; return 200 "%PDF-1.4 cached"; }"#,
    )
}

fn config(port: u16) -> String {
    format!(
        r#"packs: {{}}
probe:
  allow_targets: ['http://127\.0\.0\.1:{port}/[a-z]+\.pdf']
  modules:
    - name: pdf
      kind: http
      timeout: 5s
      http:
        url: ${{target}}
        expect:
          headers: [ {{ name: Cache-Control, matches: no-store }} ]
          body_starts_with: "%PDF-"
"#
    )
}

#[test]
fn modules_probe_allowed_targets_only() {
    let nginx = nginx();
    let dir = tempdir("modules");
    let cfg = dir.path().join("healthprobe.yaml");
    std::fs::write(&cfg, config(nginx.port())).unwrap();
    let agent = AgentProcess::start(&["--config", cfg.to_str().unwrap()]);
    let probe = |module: &str, target: &str| {
        agent.get(&format!(
            "/probe?module={module}&target={}",
            crate::support::http::url_encode(target)
        ))
    };
    let ok = probe("pdf", &nginx.url("/invoice.pdf"));
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("probe_success 1"), "{}", ok.text());
    assert!(
        ok.text()
            .contains("healthprobe_http_phase_duration_seconds"),
        "{}",
        ok.text()
    );
    let cached = probe("pdf", &nginx.url("/cached.pdf"));
    assert!(
        cached.text().contains("probe_success 0"),
        "{}",
        cached.text()
    );
    assert!(
        cached.text().contains("reason=\"assertion_failed\""),
        "{}",
        cached.text()
    );

    for target in [
        "http://127.0.0.2:80/invoice.pdf",
        "http://169.254.169.254/latest/meta-data",
        &nginx.url("/../etc/passwd"),
        &format!("{}@evil.example/", nginx.url("")),
    ] {
        let r = probe("pdf", target);
        assert_eq!(r.status, 403, "{target} must be refused: {}", r.text());
    }
    let access = std::fs::read_to_string(nginx.access_log()).unwrap_or_default();
    assert!(
        !access.contains("/etc/passwd"),
        "a refused target was never requested"
    );
    assert_eq!(probe("nope", &nginx.url("/invoice.pdf")).status, 400);
    assert_eq!(
        agent.get("/probe?module=pdf").status,
        400,
        "a module needs a target"
    );
}

#[test]
fn modules_are_off_unless_configured() {
    let agent = AgentProcess::start(&[]);
    let r = agent.get("/probe?module=pdf&target=http://127.0.0.1/");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not enabled"), "{}", r.text());
}

#[test]
fn module_config_errors_are_located() {
    let dir = tempdir("modules-bad");
    let cfg = dir.path().join("healthprobe.yaml");
    std::fs::write(&cfg, "probe:\n  allow_targets: ['(']\n  modules:\n    - name: m\n      kind: http\n      http: { url: '${target}', expect: { status: [999] } }\n").unwrap();
    let out = std::process::Command::new(crate::support::agent::binary())
        .args(["validate", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("healthprobe.yaml:2:19: probe.allow_targets[0]: invalid regular expression"),
        "{err}"
    );
    assert!(
        err.contains("probe.modules[0].http.expect.status[0]"),
        "{err}"
    );
}
