//! The `file` kind on real files, modes, owners and users (run as root).

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use healthprobe::checks::Reason;
use healthprobe::support::users::lookup_user;

use crate::probe_util::{assert_outcome, hp_other, run};

/// A temporary directory others can enter (tempdir makes it 0700).
fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_to(p: &Path, user: &str) {
    let a = lookup_user(user).unwrap();
    chown(p, Some(a.uid), Some(a.gid)).unwrap();
}

fn entries(p: &Path) -> Vec<String> {
    fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn check(path: &Path, expect: &str) -> healthprobe::checks::Outcome {
    run(&format!(
        "name: t\nkind: file\nfile:\n  path: {}\n  expect: {expect}\n",
        path.display()
    ))
    .await
}

#[tokio::test]
async fn writable_by_the_owner_really_writes_and_leaves_nothing() {
    let d = open_tempdir();
    let storage = d.path().join("storage");
    fs::create_dir(&storage).unwrap();
    chmod(&storage, 0o755);
    chown_to(&storage, "www-data");
    let o = check(
        &storage,
        "{ type: dir, owner: www-data, writable_by: www-data }",
    )
    .await;
    assert_outcome(&o, Reason::Ok, &["writable by www-data"]);
    assert!(
        entries(&storage).is_empty(),
        "left behind: {:?}",
        entries(&storage)
    );
}

#[tokio::test]
async fn writable_by_another_user_on_a_root_0755_dir_is_denied_with_the_fix() {
    let other = hp_other();
    let d = open_tempdir();
    let storage = d.path().join("storage");
    fs::create_dir(&storage).unwrap();
    chmod(&storage, 0o755);
    let o = check(&storage, &format!("{{ writable_by: {other} }}")).await;
    assert_outcome(&o, Reason::PermissionDenied, &[]);
    let m = &o.message;
    assert!(m.contains(&format!("{other} cannot write to it")), "{m}");
    assert!(m.contains(&storage.display().to_string()), "{m}");
    assert!(m.contains("owned by root:root with mode 0755"), "{m}");
    assert!(
        m.contains(&format!("chown -R {other}:{other} {}/", storage.display())),
        "{m}"
    );
    assert!(
        entries(&storage).is_empty(),
        "left behind: {:?}",
        entries(&storage)
    );

    // With other broken expectations too, the denial gives the reason.
    let o = check(
        &storage,
        &format!("{{ mode: '0700', writable_by: {other} }}"),
    )
    .await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["its mode is 0755, expected 0700"],
    );
}

#[tokio::test]
async fn a_group_writable_dir_is_writable_through_a_supplementary_group() {
    let other = hp_other();
    let d = open_tempdir();
    let shared = d.path().join("shared");
    fs::create_dir(&shared).unwrap();
    let gid = healthprobe::support::users::lookup_group("hp-extra").unwrap();
    chown(&shared, Some(0), Some(gid)).unwrap();
    chmod(&shared, 0o775);
    let o = check(
        &shared,
        &format!("{{ writable_by: {other}, group: hp-extra }}"),
    )
    .await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert!(entries(&shared).is_empty());
}

#[tokio::test]
async fn a_parent_that_cannot_be_entered_is_blamed() {
    let d = open_tempdir();
    let locked = d.path().join("locked");
    let inner = locked.join("inner");
    fs::create_dir_all(&inner).unwrap();
    chmod(&locked, 0o700);
    chmod(&inner, 0o777);
    let o = check(&inner, "{ writable_by: www-data }").await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["its own mode allows www-data", "namei -l"],
    );
}

#[tokio::test]
async fn a_file_is_opened_for_writing_without_truncation() {
    let other = hp_other();
    let d = open_tempdir();
    let log = d.path().join("laravel.log");
    fs::write(&log, "keep me\n").unwrap();
    chmod(&log, 0o644);
    chown_to(&log, "www-data");
    let o = check(
        &log,
        "{ type: file, writable_by: www-data, readable_by: www-data }",
    )
    .await;
    assert_outcome(
        &o,
        Reason::Ok,
        &["readable by www-data, writable by www-data"],
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "keep me\n");

    let o = check(&log, &format!("{{ writable_by: {other} }}")).await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &[
            "opening it for writing failed",
            &format!("chown {other}:{other} {}", log.display()),
        ],
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "keep me\n");
}

#[tokio::test]
async fn readable_by_is_tried_as_the_user() {
    let d = open_tempdir();
    let secret = d.path().join("private");
    fs::create_dir(&secret).unwrap();
    chmod(&secret, 0o700);
    let o = check(&secret, "{ readable_by: www-data }").await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["www-data cannot read it: listing it failed"],
    );
    chmod(&secret, 0o755);
    let o = check(&secret, "{ readable_by: www-data }").await;
    assert_outcome(&o, Reason::Ok, &[]);

    let env = d.path().join(".env");
    fs::write(&env, "APP_KEY=x\n").unwrap();
    chmod(&env, 0o600);
    let o = check(&env, "{ readable_by: www-data }").await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["opening it for reading failed"],
    );
}

#[tokio::test]
async fn a_dangling_symlink_names_its_target() {
    let d = open_tempdir();
    let target = d.path().join("releases/42");
    let link = d.path().join("current");
    symlink(&target, &link).unwrap();
    let o = check(&link, "{ type: symlink }").await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &[
            &format!("is a symlink to {}, which does not exist", target.display()),
            "dangling",
        ],
    );

    fs::create_dir_all(&target).unwrap();
    let o = check(&link, "{ type: symlink }").await;
    assert_outcome(&o, Reason::Ok, &["symlink to a directory"]);
    assert!(
        o.observations
            .iter()
            .any(|s| s.contains(&target.display().to_string())),
        "{:?}",
        o.observations
    );
    // A directory is not a symlink.
    let o = check(&target, "{ type: symlink }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["it is a directory, not a symlink"],
    );
}

#[tokio::test]
async fn max_age_uses_the_mtime_and_reports_the_age() {
    let d = open_tempdir();
    let beat = d.path().join("cron.heartbeat");
    fs::write(&beat, "").unwrap();
    let touched = Command::new("touch")
        .args(["-d", "10 minutes ago"])
        .arg(&beat)
        .status()
        .unwrap();
    assert!(touched.success());

    let o = check(&beat, "{ max_age: 5m }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["last modified 10m", "longer than max_age 5m"],
    );
    let age = o.value.unwrap();
    assert!((595.0..700.0).contains(&age), "age {age}");

    let o = check(&beat, "{ max_age: 1h }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert!(o.value.unwrap() >= 595.0);
}

#[tokio::test]
async fn every_broken_expectation_is_reported_at_once() {
    let d = open_tempdir();
    let env = d.path().join(".env");
    fs::write(&env, "12345").unwrap();
    chmod(&env, 0o644);
    let o = check(
        &env,
        "{ type: symlink, mode_max: '0640', owner: www-data, group: www-data, min_size: 10 }",
    )
    .await;
    assert_outcome(&o, Reason::AssertionFailed, &[]);
    let m = &o.message;
    for part in [
        "it is a file, not a symlink",
        "it is 5 bytes (5 B), smaller than min_size 10",
        "its mode 0644 allows more than 0640 (extra bits 0004",
        "chmod 0640",
        "owned by user root (uid 0), expected www-data",
        "its group is root (gid 0), expected www-data",
    ] {
        assert!(m.contains(part), "missing {part:?} in {m}");
    }
    let o = check(&env, "{ mode: '0600' }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["its mode is 0644, expected 0600"],
    );
    let o = check(&env, "{ type: file, mode: 0644, max_size: 5, owner: root }").await;
    assert_outcome(&o, Reason::Ok, &[]);
}

#[tokio::test]
async fn missing_paths_and_paths_that_must_be_gone() {
    let d = open_tempdir();
    let missing = d.path().join("storage/framework/down");
    let o = check(&missing, "{}").await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &[&format!("does not exist ({} exists)", d.path().display())],
    );
    let o = check(&missing, "{ exists: false }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    let o = check(d.path(), "{ exists: false }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["exists (directory), but it must not"],
    );
    let o = check(d.path(), "{ writable_by: no-such-user-hp }").await;
    assert_outcome(&o, Reason::NotFound, &["no user `no-such-user-hp`"]);
}

#[test]
fn without_setuid_capabilities_the_agent_says_so() {
    // The real binary, started as an unprivileged user, checks access as
    // another user: it must say what it lacks instead of guessing.
    let other = lookup_user(hp_other()).unwrap();
    let d = open_tempdir();
    let storage = d.path().join("storage");
    fs::create_dir(&storage).unwrap();
    chmod(&storage, 0o777);
    let packs = d.path().join("packs");
    fs::create_dir(&packs).unwrap();
    fs::write(
        packs.join("t.yaml"),
        format!(
            "pack: t\nchecks:\n  - name: storage\n    kind: file\n    file:\n      path: {}\n      expect: {{ writable_by: www-data }}\n",
            storage.display()
        ),
    )
    .unwrap();
    chmod(&packs, 0o755);
    chmod(&packs.join("t.yaml"), 0o644);
    let out = Command::new(crate::support::agent::binary())
        .args(["check", "--format", "json", "--checks"])
        .arg(&packs)
        .uid(other.uid)
        .gid(other.gid)
        .env("HOME", "/")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "t/storage")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(check["reason"], "permission_denied", "{check:#}");
    let m = check["message"].as_str().unwrap();
    assert!(
        m.contains("healthprobe needs CAP_SETUID and CAP_SETGID to test access as another user"),
        "{m}"
    );
    assert!(m.contains("runs as hp-other"), "{m}");
}

/// `newer_than`: a build output against its source, by modification time
/// (Mastodon's compiled manifest against the release's version file).
#[tokio::test]
async fn newer_than_compares_modification_times() {
    let d = open_tempdir();
    let manifest = d.path().join("manifest.json");
    let version = d.path().join("version.rb");
    fs::write(&manifest, "{}").unwrap();
    fs::write(&version, "4.2.10").unwrap();
    let at = |p: &Path, secs_ago: u64| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let expect = format!("{{ newer_than: {} }}", version.display());
    at(&version, 3600);
    at(&manifest, 60);
    let o = check(&manifest, &expect).await;
    assert_outcome(&o, Reason::Ok, &[]);

    // The release was upgraded after the last build.
    at(&version, 30);
    let o = check(&manifest, &expect).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            &format!("it was last modified 30s before {}", version.display()),
            "it was not rebuilt since that changed",
        ],
    );

    fs::remove_file(&version).unwrap();
    let o = check(&manifest, &expect).await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &[&format!("cannot compare with {}", version.display())],
    );
}
