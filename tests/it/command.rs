//! The `command` kind with real programs (run as root, switching users).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use healthprobe::checks::{Outcome, Reason};

use crate::probe_util::{assert_outcome, build_errors, hp_other, is_gone, run, wait_for};

/// Runs a command check; `block` is the inside of `command:` as a flow map body.
async fn cmd(block: &str) -> Outcome {
    run(&format!(
        "name: t\nkind: command\ntimeout: 10s\ncommand: {{ {block} }}\n"
    ))
    .await
}

#[tokio::test]
async fn exit_codes_are_the_value_and_the_verdict() {
    let o = cmd("argv: [sh, -c, 'exit 3'], expect: { exit_code: 3 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert_eq!(o.value, Some(3.0));

    let o = cmd("argv: [sh, -c, 'echo Could not open input file: artisan >&2; exit 1']").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "`sh -c 'echo Could not open input file: artisan >&2; exit 1'` exited with 1, expected 0",
            "stderr ends with \"Could not open input file: artisan\"",
        ],
    );
    assert_eq!(o.value, Some(1.0));

    let o = cmd("argv: ['true']").await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert_eq!(o.value, Some(0.0));
}

#[tokio::test]
async fn regexes_on_stdout_and_stderr() {
    let prog = "argv: [sh, -c, 'echo PHP 8.2.7 \\(cli\\); echo PHP Warning: deprecated >&2']";
    let o = cmd(&format!(
        "{prog}, expect: {{ stdout_matches: '^PHP 8\\.', stderr_matches: 'Warning' }}"
    ))
    .await;
    assert_outcome(&o, Reason::Ok, &[]);

    let o = cmd(&format!(
        "{prog}, expect: {{ stdout_matches: '^PHP 7\\.' }}"
    ))
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "stdout of `sh -c",
            "does not match `^PHP 7\\.`; it starts with \"PHP 8.2.7 (cli)\"",
        ],
    );

    let o = cmd(&format!(
        "{prog}, expect: {{ stdout_not_matches: '8\\.2' }}"
    ))
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["matches `8\\.2`, which it must not: \"PHP 8.2.7 (cli)\""],
    );

    let o = cmd(&format!(
        "{prog}, expect: {{ stderr_not_matches: 'Warning' }}"
    ))
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["stderr of `sh -c", "matches `Warning`"],
    );

    let o = cmd(&format!("{prog}, expect: {{ stderr_matches: 'Fatal' }}")).await;
    assert_outcome(&o, Reason::AssertionFailed, &["does not match `Fatal`"]);
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_group() {
    let d = tempfile::tempdir().unwrap();
    let (parent, child) = (d.path().join("parent"), d.path().join("child"));
    let script = format!(
        "echo $$ > {}; sleep 300 & echo $! > {}; wait",
        parent.display(),
        child.display()
    );
    let started = Instant::now();
    let o = run(&format!(
        "name: t\nkind: command\ntimeout: 5s\ncommand: {{ argv: [sh, -c, '{script}'], timeout: 1s }}\n"
    ))
    .await;
    let took = started.elapsed();
    assert_outcome(
        &o,
        Reason::Timeout,
        &["did not finish within 1s", "process group were killed"],
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    for f in [&parent, &child] {
        let pid: u32 = fs::read_to_string(f).unwrap().trim().parse().unwrap();
        assert!(
            wait_for(Duration::from_secs(2), || is_gone(pid)),
            "pid {pid} ({}) still runs",
            f.display()
        );
    }
}

#[tokio::test]
async fn ten_megabytes_of_output_are_drained_but_not_kept() {
    let started = Instant::now();
    let o = cmd(
        "argv: [sh, -c, 'head -c 10000000 /dev/zero | tr \"\\0\" a; echo done >&2'], \
         max_output_bytes: 1000, expect: { stdout_matches: '^a{1000}$', stderr_matches: done }",
    )
    .await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        o.observations
            .iter()
            .any(|s| s == "stdout: kept the first 1000 of 10000000 bytes (9.5 MiB)"),
        "{:?}",
        o.observations
    );
}

#[tokio::test]
async fn runs_as_another_user_with_its_groups_and_home() {
    let o = cmd("argv: [id, -un], user: www-data, expect: { stdout_matches: '^www-data$' }").await;
    assert_outcome(&o, Reason::Ok, &["as www-data"]);

    let other = hp_other();
    let o = cmd(&format!(
        "argv: [sh, -c, 'id -Gn; echo home=$HOME user=$USER'], user: {other}, \
         expect: {{ stdout_matches: '(?m)\\bhp-extra\\b', stdout_not_matches: '\\broot\\b' }}"
    ))
    .await;
    assert_outcome(&o, Reason::Ok, &[]);

    let o = cmd("argv: [sh, -c, 'echo $HOME $USER'], user: www-data, \
         expect: { stdout_matches: '^/var/www www-data' }")
    .await;
    assert_outcome(&o, Reason::Ok, &[]);

    let o = cmd("argv: ['true'], user: no-such-user-hp").await;
    assert_outcome(&o, Reason::NotFound, &["no user `no-such-user-hp`"]);
}

#[tokio::test]
async fn a_death_by_signal_is_named() {
    let o = cmd("argv: [sh, -c, 'kill -TRAP $$']").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["was killed by signal 5 (SIGTRAP)"],
    );
    assert_eq!(o.value, Some(133.0));
}

#[tokio::test]
async fn not_found_and_not_executable_are_told_apart() {
    let o = cmd("argv: [no-such-program-hp, -v], env: { PATH: '/usr/bin:/bin' }").await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &[
            "command not found: `no-such-program-hp` is in none of the directories of PATH (/usr/bin:/bin)",
        ],
    );

    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("check.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let o = cmd(&format!("argv: [{}]", script.display())).await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["is not executable (mode 0644)", "chmod +x"],
    );

    // Executable, but the interpreter on its #! line is missing.
    fs::write(&script, "#!/nonexistent/php\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let o = cmd(&format!("argv: [{}]", script.display())).await;
    assert_outcome(&o, Reason::NotFound, &["interpreter"]);

    // Not executable by the user it runs as.
    let private = d.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let tool = private.join("tool");
    fs::write(&tool, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    let o = cmd(&format!("argv: [{}], user: www-data", tool.display())).await;
    assert_outcome(&o, Reason::PermissionDenied, &["as www-data"]);
}

#[tokio::test]
async fn stdin_env_and_cwd() {
    let o = cmd("argv: [cat], stdin: \"hello\\n\", expect: { stdout_matches: '^hello$' }").await;
    assert_outcome(&o, Reason::Ok, &[]);

    // A child that never reads its input does not block anything.
    let o = cmd("argv: ['true'], stdin: 'ignored'").await;
    assert_outcome(&o, Reason::Ok, &[]);

    let o = cmd(
        "argv: [sh, -c, 'echo \"$FOO:$HOME:$(pwd)\"'], clear_env: true, env: { FOO: bar }, \
         cwd: /usr, expect: { stdout_matches: '^bar::/usr$' }",
    )
    .await;
    assert_outcome(&o, Reason::Ok, &[]);

    let o = cmd("argv: [pwd], cwd: /nonexistent-hp").await;
    assert_outcome(&o, Reason::NotFound, &["working directory /nonexistent-hp"]);
}

#[tokio::test]
async fn secret_env_values_never_reach_the_message() {
    let o = cmd(
        "argv: [sh, -c, 'echo connecting with $DB_PASSWORD >&2; exit 2'], \
         env: { DB_PASSWORD: hp-s3cret-value }",
    )
    .await;
    assert_outcome(&o, Reason::AssertionFailed, &["connecting with <redacted>"]);
    assert!(!o.message.contains("hp-s3cret-value"), "{}", o.message);
}

#[test]
fn a_timeout_longer_than_the_check_is_refused() {
    let errs = build_errors(
        "name: t\nkind: command\ntimeout: 2s\ncommand: { argv: [sleep, '1'], timeout: 30s }\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "command.timeout");
    assert!(
        errs[0].message.contains("check's timeout (2s)"),
        "{}",
        errs[0].message
    );
}
