//! The `config` kind on real files: an Invoice Ninja `.env`, an OpenHands
//! `config.toml` (settings at the top level or under `[core]`) and a JSON
//! file, each in a healthy and a broken state; secrets are never printed.

use std::path::Path;
use std::process::Command;

use healthprobe::checks::Reason;

use crate::probe_util::{build_errors, run};
use crate::support::agent::binary;

const ENV_HEALTHY: &str = r#"APP_NAME="Invoice Ninja"
APP_ENV=production
APP_KEY=base64:RR++yx2rJ9kdxbdh3+AmbHLDQu+Q76i++co9Y8ybbno=
APP_URL=https://invoices.example.com
DB_PASSWORD='hunter2-canary-db'
QUEUE_CONNECTION=database
MAIL_FROM_ADDRESS="billing@acme.test"
UPDATE_SECRET=swordfish-canary-update
PDF_GENERATOR=snappdf
PHANTOMJS_KEY=ak-own-canary-key
"#;

const ENV_BROKEN: &str = r#"APP_NAME="Invoice Ninja"
APP_ENV=local
APP_KEY=base64:RR++yx2rJ9kdxbdh3+AmbHLDQu+Q76i++co9Y8ybbno=
APP_URL=https://invoices.example.com
DB_PASSWORD='hunter2-canary-db'
QUEUE_CONNECTION=sync
MAIL_FROM_ADDRESS="hello@example.com"
UPDATE_SECRET=
PHANTOMJS_KEY='a-demo-key-with-low-quota-per-ip-address'
this line is not KEY=value
"#;

fn env_check(path: &Path) -> String {
    format!(
        r#"
name: env_sanity
kind: config
config:
  path: {}
  assertions:
    - {{ key: APP_ENV, equals: production }}
    - {{ key: APP_KEY, matches: '^base64:' }}
    - {{ key: UPDATE_SECRET, not_empty: true }}
    - {{ key: MAIL_FROM_ADDRESS, not_default: hello@example.com }}
    - {{ key: QUEUE_CONNECTION, one_of: [database, redis] }}
    - {{ key: PHANTOMJS_KEY, not_default: a-demo-key-with-low-quota-per-ip-address }}
    - {{ key: DB_PASSWORD, not_equals: hunter2-canary-db }}
"#,
        path.display()
    )
}

#[tokio::test]
async fn env_file_healthy_and_broken() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, ENV_HEALTHY).unwrap();
    let check = env_check(&env);

    // Healthy, except the one assertion that refuses this DB_PASSWORD: it is
    // a secret, so the message must not quote it.
    let o = run(&check).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert_eq!(o.value, Some(1.0));
    assert!(
        o.message
            .ends_with(".env: `DB_PASSWORD` has a value it must not have"),
        "{}",
        o.message
    );

    std::fs::write(&env, ENV_BROKEN).unwrap();
    let o = run(&check).await;
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(o.value, Some(6.0), "{}", o.message);
    for expected in [
        "`APP_ENV` is `local`, expected `production`",
        "`UPDATE_SECRET` is empty",
        "`MAIL_FROM_ADDRESS` is still the shipped default `hello@example.com`",
        "`QUEUE_CONNECTION` is `sync`, expected one of `database`, `redis`",
        "`PHANTOMJS_KEY` is still the value the application ships with",
        "`DB_PASSWORD` has a value it must not have",
    ] {
        assert!(
            o.message.contains(expected),
            "{expected}\nin: {}",
            o.message
        );
    }
    let everything = format!("{} {:?}", o.message, o.observations);
    for secret in [
        "hunter2-canary-db",
        "a-demo-key-with-low-quota",
        "RR++yx2rJ9kdxbdh3",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(
        o.observations
            .iter()
            .any(|s| s == "line 10 skipped: `this line is not KEY` is not a valid key"),
        "{:?}",
        o.observations
    );
    assert!(
        o.observations
            .iter()
            .any(|s| s == "`APP_KEY` is set (a secret, not shown)"),
        "{:?}",
        o.observations
    );
    assert!(
        o.observations
            .iter()
            .any(|s| s == "`UPDATE_SECRET` is set but empty"),
        "{:?}",
        o.observations
    );

    // A secret that is set is never quoted, even where the key is absent.
    std::fs::write(&env, "APP_ENV=production\n").unwrap();
    let o = run(&check).await;
    assert!(
        o.message
            .contains("`UPDATE_SECRET` is not set; `MAIL_FROM_ADDRESS` is not set"),
        "{}",
        o.message
    );
}

fn openhands_check(path: &Path) -> String {
    format!(
        r#"
name: sessions_persist
kind: config
config:
  path: {}
  assertions:
    - {{ key: core.file_store, or_keys: [file_store], equals: local }}
    - {{ key: core.file_store_path, or_keys: [file_store_path], absolute_path: true }}
    - {{ key: core.jwt_secret, or_keys: [jwt_secret], not_empty: true }}
"#,
        path.display()
    )
}

#[tokio::test]
async fn openhands_toml_at_top_level_or_under_core() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("config.toml");
    let check = openhands_check(&toml);

    // The guide's snippet: top-level keys.
    std::fs::write(
        &toml,
        "file_store=\"local\"\nfile_store_path=\"/var/lib/openhands/cache\"\njwt_secret=\"fixed-canary-jwt\"\n\n[llm]\nmodel=\"ollama/llama3\"\n",
    )
    .unwrap();
    let o = run(&check).await;
    assert!(o.success(), "{}", o.message);
    assert_eq!(o.message, format!("{}: 3 assertions hold", toml.display()));

    // The same under [core].
    std::fs::write(
        &toml,
        "[core]\nfile_store = \"local\"\nfile_store_path = \"/var/lib/openhands/cache\"\njwt_secret = \"fixed-canary-jwt\"\n",
    )
    .unwrap();
    assert!(run(&check).await.success());

    // Broken: memory store, a relative path, no secret.
    std::fs::write(
        &toml,
        "[core]\nfile_store = \"memory\"\nfile_store_path = \"cache\"\n",
    )
    .unwrap();
    let o = run(&check).await;
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(
        o.message,
        format!(
            "{}: `core.file_store` is `memory`, expected `local`; `core.file_store_path` is `cache`, which is not an absolute path; `core.jwt_secret` (nor `jwt_secret`) is not set",
            toml.display()
        )
    );

    // Not TOML at all: protocol_error with a position, no quote of the file.
    std::fs::write(&toml, "[core]\njwt_secret = \"fixed-canary-jwt\nx = 1\n").unwrap();
    let o = run(&check).await;
    assert_eq!(o.reason, Reason::ProtocolError, "{}", o.message);
    assert!(o.message.contains("is not valid toml"), "{}", o.message);
    assert!(o.message.contains("line 2"), "{}", o.message);
    assert!(!o.message.contains("canary"), "{}", o.message);
}

#[tokio::test]
async fn json_file_with_pointers_and_dotted_paths() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("settings.json");
    let check = format!(
        r#"
name: json_settings
kind: config
config:
  path: {}
  assertions:
    - {{ key: /mail/from, not_default: hello@example.com }}
    - {{ key: db.port, equals: "3306" }}
    - {{ key: debug, equals: "false" }}
    - {{ key: api_token, not_empty: true }}
    - {{ key: storage.paths.0, absolute_path: true }}
    - {{ key: legacy, present: false }}
"#,
        json.display()
    );
    std::fs::write(
        &json,
        r#"{"mail": {"from": "billing@acme.test"}, "db": {"port": 3306}, "debug": false,
            "api_token": "tok-canary-123", "storage": {"paths": ["/srv/files"]}}"#,
    )
    .unwrap();
    let o = run(&check).await;
    assert!(o.success(), "{}", o.message);

    std::fs::write(
        &json,
        r#"{"mail": {"from": "hello@example.com"}, "db": {"port": 3307}, "debug": true,
            "api_token": null, "storage": {"paths": ["files"]}, "legacy": 1}"#,
    )
    .unwrap();
    let o = run(&check).await;
    assert_eq!(o.value, Some(6.0), "{}", o.message);
    for expected in [
        "`/mail/from` is still the shipped default `hello@example.com`",
        "`db.port` is `3307`, expected `3306`",
        "`debug` is `true`, expected `false`",
        "`api_token` is empty",
        "`storage.paths.0` is `files`, which is not an absolute path",
        "`legacy` is set (to `1`), but must not be",
    ] {
        assert!(
            o.message.contains(expected),
            "{expected}\nin: {}",
            o.message
        );
    }

    std::fs::write(&json, "{\"api_token\": \"tok-canary-123\",").unwrap();
    let o = run(&check).await;
    assert_eq!(o.reason, Reason::ProtocolError);
    assert!(!o.message.contains("canary"), "{}", o.message);
}

#[tokio::test]
async fn unreadable_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(".env");
    let o = run(&env_check(&missing)).await;
    assert_eq!(o.reason, Reason::NotFound);
    assert!(o.message.contains("cannot read"), "{}", o.message);

    let o =
        run(&env_check(dir.path()).replace("  assertions:", "  format: env\n  assertions:")).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert!(o.message.contains("not a regular file"), "{}", o.message);

    let bin = dir.path().join("app.json");
    std::fs::write(&bin, b"{\"a\": \"\xff\xfe\"}").unwrap();
    let o = run(&format!(
        "name: x\nkind: config\nconfig:\n  path: {}\n  assertions: [{{ key: a }}]\n",
        bin.display()
    ))
    .await;
    assert_eq!(o.reason, Reason::ProtocolError);
    assert!(o.message.contains("not UTF-8"), "{}", o.message);
}

#[test]
fn build_errors_point_at_fields() {
    let errs = build_errors(
        "name: x\nkind: config\nconfig:\n  path: /srv/app/settings.yaml\n  assertions:\n    - { key: a, matches: '[' }\n",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["config.path", "config.assertions[0].matches"]);
    assert!(errs[0].message.contains("set `format`"), "{errs:?}");
}

/// End to end: a pack that reads the app's `.env` through `env_file` and
/// asserts on it with a path relative to the pack file.
#[test]
fn healthprobe_check_reports_the_broken_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/.env"), ENV_BROKEN).unwrap();
    std::fs::write(
        dir.path().join("in.yaml"),
        format!(
            r#"pack: in
title: Invoice Ninja
vars: {{ root: {} }}
env_file: ${{root}}/app/.env
checks:
  - name: update_secret
    kind: config
    title: UPDATE_SECRET is set
    remediation: Add UPDATE_SECRET=a_secret_passcode to .env.
    config:
      path: app/.env
      assertions:
        - {{ key: UPDATE_SECRET, not_empty: true }}
        - {{ key: DB_PASSWORD, not_empty: true }}
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--format", "json", "--checks"])
        .arg(dir.path())
        .env_remove("HEALTHPROBE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &doc["checks"][0];
    assert_eq!(check["id"], "in/update_secret");
    assert_eq!(check["reason"], "assertion_failed");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .ends_with("app/.env: `UPDATE_SECRET` is empty"),
        "{check}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
