//! Secrets never leave: one canary password is put in every field a user can
//! fill with a secret (database `password`, `password_env`, `password_file`
//! and URL passwords against the real MariaDB and PostgreSQL, a heartbeat
//! token, an http `?secret=` value and `Authorization` header sent to a
//! server that echoes them back, the app's `.env` read through `env_file`, a
//! `--var` whose name says password, a command's secret environment), the
//! checks run and fail, and the canary is looked for everywhere the agent
//! speaks: `/metrics`, `/api/v1/checks`, `/`, `/probe?debug=true` for every
//! check, `healthprobe check` (text and JSON, `-v`), `validate`, `list`, the
//! agent's debug log, and the errors of configs where the canary sits in an
//! invalid field.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::agent::{AgentProcess, binary};
use crate::support::certs::Certs;
use crate::support::http;
use crate::support::mariadb::Mariadb;
use crate::support::postgres::Postgres;
use crate::support::smtp::{Smtp, SmtpOptions};
use crate::support::tempdir;

/// The canary: a unique string that must never come out. Mixed case and
/// URL-safe, long enough for a heartbeat token.
const CANARY: &str = "hpCanary7f3a9c1eZq";

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY),
        "the canary leaked in {what}:\n{}",
        text.lines()
            .filter(|l| l.contains(CANARY))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A server on 127.0.0.1 that answers every request with 500 and the
/// request head as body (and in an `X-Echo` header), or with a redirect to
/// the requested path under `/redirect`: what a misbehaving target does with
/// the secrets it is sent.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let first = head.lines().next().unwrap_or_default().to_string();
                let path = first.split(' ').nth(1).unwrap_or("/").to_string();
                let auth = head
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                    .unwrap_or_default()
                    .to_string();
                let resp = if path.starts_with("/redirect") {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/landing{path}\r\nX-Echo: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 500 Oops\r\nX-Echo: {first} {auth}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                        head.len()
                    )
                };
                let _ = s.write_all(resp.as_bytes());
            });
        }
    });
    port
}

fn pack(dir: &std::path::Path, my: u16, pg: u16, echo: u16, smtp: u16) -> String {
    let d = dir.display();
    let ca = Certs::shared().ca.cert.display();
    // The four ways to give a database password, for each engine.
    let mut databases = String::new();
    for (prefix, kind, port) in [("my", "mysql", my), ("pg", "postgres", pg)] {
        let at = format!("host: 127.0.0.1, port: {port}, user: app");
        for (name, how) in [
            (
                "password",
                format!("{at}, database: app, password: {CANARY}"),
            ),
            ("password_env", format!("{at}, password_env: HP_CANARY_PW")),
            (
                "password_file",
                format!("{at}, password_file: {d}/db-password"),
            ),
            (
                "url",
                format!("url: \"{kind}://app:{CANARY}@127.0.0.1:{port}/app\""),
            ),
        ] {
            databases.push_str(&format!(
                "  - name: {prefix}_{name}\n    kind: {kind}\n    {kind}: {{ {how}, query: \"select 1\" }}\n"
            ));
        }
    }
    format!(
        r#"pack: canary
title: Secrets that must not leave
env_file: {d}/app.env
vars:
  db_password: ""
defaults: {{ interval: 2s, timeout: 1500ms }}
checks:
{databases}  - name: my_dotenv
    kind: mysql
    mysql: {{ host: 127.0.0.1, port: {my}, user: app, password: "${{env.DB_PASSWORD}}", query: "select 1" }}
  - name: pg_var
    kind: postgres
    postgres: {{ host: 127.0.0.1, port: {pg}, user: app, password: "${{db_password}}", query: "select 1" }}
  - name: smtp_password
    kind: smtp
    smtp: {{ host: 127.0.0.1, port: {smtp}, ehlo_domain: app.example.org, tls: {{ ca_file: {ca} }}, auth: {{ username: app, password: {CANARY} }} }}
  - name: smtp_password_env
    kind: smtp
    smtp: {{ host: 127.0.0.1, port: {smtp}, ehlo_domain: app.example.org, tls: {{ ca_file: {ca} }}, auth: {{ username: app, password_env: HP_CANARY_PW }} }}
  - name: beat
    kind: heartbeat
    heartbeat: {{ period: 1m, token: {CANARY} }}
  - name: http_secret_query
    kind: http
    http:
      url: "http://127.0.0.1:{echo}/update?secret=${{env.UPDATE_SECRET}}&lang=fr"
      expect: {{ status: [200], body_matches: "^ok$", headers: [{{ name: X-Echo, matches: "^nothing$" }}] }}
  - name: http_auth_header
    kind: http
    http:
      url: "http://127.0.0.1:{echo}/api"
      headers: {{ Authorization: "Bearer {CANARY}", X-Api-Key: "${{env.API_KEY}}" }}
      expect: {{ status: [200], body_not_matches: "Bearer", headers: [{{ name: X-Echo, equals: nothing }}] }}
  - name: http_redirect
    kind: http
    http:
      url: "http://127.0.0.1:{echo}/redirect?token={CANARY}"
      expect: {{ status: [200] }}
  - name: command_env
    kind: command
    command:
      argv: [/usr/bin/env]
      clear_env: true
      env: {{ DB_PASSWORD: "${{env.DB_PASSWORD}}" }}
      expect: {{ stdout_matches: "^nothing$" }}
  - name: command_var
    kind: command
    command:
      argv: [/bin/echo, "${{db_password}}"]
      expect: {{ stdout_matches: "^nothing$" }}
  - name: switched_off
    kind: file
    enabled_if: {{ value: "${{env.DB_PASSWORD}}", equals: sqlite }}
    file: {{ path: / }}
"#
    )
}

/// The database checks: each sends its canary password to a real server.
const DATABASE_CHECKS: &[&str] = &[
    "my_password",
    "my_password_env",
    "my_password_file",
    "my_url",
    "my_dotenv",
    "pg_password",
    "pg_password_env",
    "pg_password_file",
    "pg_url",
    "pg_var",
];

const OTHER_CHECKS: &[&str] = &[
    "smtp_password",
    "smtp_password_env",
    "beat",
    "http_secret_query",
    "http_auth_header",
    "http_redirect",
    "command_env",
    "command_var",
];

struct Setup {
    _dir: tempfile::TempDir,
    _smtp: Smtp,
    checks: String,
    var: String,
}

fn setup() -> Setup {
    let my = Mariadb::shared();
    let pg = Postgres::shared();
    let echo = echo_server();
    let smtp = Smtp::start(SmtpOptions {
        tls: Some(Certs::shared().leaf.clone()),
        auth: Some(("app".into(), "the-right-one".into())),
        ..Default::default()
    });
    let dir = tempdir("secrets");
    let d = dir.path();
    std::fs::write(
        d.join("app.env"),
        format!(
            "APP_NAME=canary\nDB_PASSWORD={CANARY}\nUPDATE_SECRET={CANARY}\nAPI_KEY=\"{CANARY}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("db-password"), format!("{CANARY}\n")).unwrap();
    let checks = d.join("checks");
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(
        checks.join("canary.yaml"),
        pack(d, my.port(), pg.port(), echo, smtp.port()),
    )
    .unwrap();
    Setup {
        checks: checks.display().to_string(),
        var: format!("db_password={CANARY}"),
        _dir: dir,
        _smtp: smtp,
    }
}

fn healthprobe(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(args)
        .env_remove("HEALTHPROBE_CONFIG")
        .env("HP_CANARY_PW", CANARY)
        .env("NO_COLOR", "1")
        .output()
        .expect("run healthprobe");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn the_canary_never_leaves_the_agent() {
    let s = setup();
    let agent = AgentProcess::start_with_env(
        &[
            "--checks",
            &s.checks,
            "--var",
            &s.var,
            "--log-level",
            "debug",
        ],
        &[("HP_CANARY_PW", CANARY)],
    );
    // A heartbeat pushed with the token in the query, one with a wrong token.
    let push = format!("{}/push/canary/beat?token={CANARY}", agent.url());
    assert_eq!(http::request("POST", &push, &[], b"").unwrap().status, 202);
    let bad = format!("{}/push/canary/beat", agent.url());
    let bearer = format!("Bearer {CANARY}x");
    let r = http::request("POST", &bad, &[("Authorization", &bearer)], b"").unwrap();
    assert_eq!(r.status, 401);
    assert_clean("a refused push", &r.text());

    // Every check has run and failed (the heartbeat passes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let api = loop {
        let api = agent.get("/api/v1/checks").json();
        let checks = api["checks"].as_array().unwrap().clone();
        let total = DATABASE_CHECKS.len() + OTHER_CHECKS.len();
        let done = checks.len() == total && checks.iter().all(|c| c["state"] != "pending");
        if done || Instant::now() > deadline {
            break api;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for c in api["checks"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let want = if name == "beat" { "passing" } else { "failing" };
        assert_eq!(c["state"], want, "{c:#}");
    }
    let reason = |name: &str| {
        api["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["reason"].as_str().unwrap_or("").to_string())
            .unwrap()
    };
    // The wrong password reached the servers (it is the canary that failed).
    for &name in DATABASE_CHECKS {
        assert_eq!(reason(name), "auth_failed", "{name}: {api:#}");
    }
    assert_clean("/api/v1/checks", &api.to_string());
    assert_clean("/metrics", &agent.get("/metrics").text());
    assert_clean("/", &agent.get("/").text());
    for name in DATABASE_CHECKS.iter().chain(OTHER_CHECKS) {
        let r = agent.get(&format!("/probe?check=canary/{name}&debug=true"));
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.contains("Result:"), "{text}");
        assert_clean(&format!("/probe?check=canary/{name}&debug=true"), &text);
    }
    // The echo server did get the secrets: the masking is what hid them.
    let probe = agent
        .get("/probe?check=canary/http_auth_header&debug=true")
        .text();
    assert!(probe.contains("<redacted>"), "{probe}");
    let r = http::request("POST", &format!("{}/-/reload", agent.url()), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // The debug log, after all of that.
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read_to_string(agent.process().log_path()).unwrap();
    assert!(
        log.contains("DEBUG"),
        "the log is not at debug level:\n{log}"
    );
    assert_clean("the agent's debug log", &log);

    // The command line, as a person runs it.
    let c = s.checks.as_str();
    let v = s.var.as_str();
    for args in [
        vec!["check", "--checks", c, "--var", v, "-v"],
        vec!["check", "--checks", c, "--var", v, "-v", "--format", "json"],
        vec![
            "--log-level",
            "debug",
            "check",
            "--checks",
            c,
            "--var",
            v,
            "-v",
        ],
    ] {
        let (code, out) = healthprobe(&args);
        assert_eq!(code, Some(1), "{args:?}: {out}");
        assert!(out.contains("http_auth_header"), "{out}");
        assert_clean(&format!("healthprobe {}", args.join(" ")), &out);
    }
    for args in [
        vec!["validate", "--checks", c, "--var", v],
        vec!["list", "--checks", c, "--var", v],
        vec!["list", "--checks", c, "--var", v, "--format", "json"],
    ] {
        let (code, out) = healthprobe(&args);
        assert_eq!(code, Some(0), "{args:?}: {out}");
        assert_clean(&format!("healthprobe {}", args.join(" ")), &out);
    }
    drop(s);
}

#[test]
fn the_canary_in_invalid_fields_stays_out_of_config_errors() {
    let dir = tempdir("secrets-bad");
    let d = dir.path();
    let checks = d.join("checks");
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(
        checks.join("bad.yaml"),
        format!(
            r#"pack: bad
checks:
  - name: env_given_the_value
    kind: mysql
    mysql: {{ host: 127.0.0.1, user: app, password_env: {CANARY}, query: "select 1" }}
  - name: file_given_the_value
    kind: mysql
    mysql: {{ host: 127.0.0.1, user: app, password_file: {CANARY}, query: "select 1" }}
  - name: env_given_an_expanded_value
    kind: postgres
    postgres: {{ host: 127.0.0.1, user: app, password_env: "${{HP_CANARY_PW}}", query: "select 1" }}
  - name: broken_interpolation
    kind: postgres
    postgres: {{ host: 127.0.0.1, user: app, password: "{CANARY}${{oops", query: "select 1" }}
  - name: url_bad_port
    kind: postgres
    postgres: {{ url: "postgres://app:{CANARY}@127.0.0.1:notaport/app", query: "select 1" }}
  - name: http_bad
    kind: http
    http:
      url: "http://127.0.0.1:1/x"
      headers: {{ Authorization: "Bearer {CANARY}\u0001" }}
  - name: http_credentials_in_url
    kind: http
    http: {{ url: "http://app:{CANARY}@127.0.0.1:1/" }}
  - name: smtp_env_given_the_value
    kind: smtp
    smtp: {{ host: 127.0.0.1, auth: {{ username: app, password_env: {CANARY} }} }}
  - name: beat
    kind: heartbeat
    heartbeat: {{ period: 0s, token: {CANARY} }}
  - name: short
    kind: heartbeat
    heartbeat: {{ period: 10s, token: {short} }}
"#,
            short = &CANARY[..6]
        ),
    )
    .unwrap();
    let c = checks.display().to_string();
    // No --var here: nothing registers the canary as a secret, so what is
    // tested is that the messages do not repeat it, not the masking net.
    for args in [
        vec!["validate", "--checks", &c],
        vec!["check", "--checks", &c],
        vec!["list", "--checks", &c],
        vec!["run", "--listen", "127.0.0.1:1", "--checks", &c],
    ] {
        let (code, out) = healthprobe(&args);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        // Every check's error is there (nothing was skipped to stay quiet).
        for i in 0..10 {
            assert!(out.contains(&format!("checks[{i}].")), "checks[{i}]: {out}");
        }
        assert_clean(&format!("healthprobe {}", args.join(" ")), &out);
        assert!(!out.contains(&CANARY[..6]), "even a part of it: {out}");
    }

    // A YAML syntax error next to the canary, and a mistyped --var.
    std::fs::write(
        checks.join("bad.yaml"),
        format!("pack: bad\nchecks:\n  - name: x\n    kind: mysql\n    mysql: {{ password: \"{CANARY}, user: app }}\n"),
    )
    .unwrap();
    let (code, out) = healthprobe(&["validate", "--checks", &c]);
    assert_eq!(code, Some(2), "{out}");
    assert_clean("a YAML syntax error", &out);
    std::fs::write(
        checks.join("bad.yaml"),
        "pack: bad\nvars: { db_password: \"\" }\n",
    )
    .unwrap();
    for var in [
        format!("db_pasword={CANARY}"),
        format!("other.db_password={CANARY}"),
    ] {
        let (code, out) = healthprobe(&["validate", "--checks", &c, "--var", &var]);
        assert_eq!(code, Some(2), "{out}");
        assert_clean("a mistyped --var", &out);
    }
}
