//! The `process` kind against processes the tests start.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::time::Duration;

use healthprobe::checks::{Outcome, Reason};
use healthprobe::support::users::lookup_user;

use crate::probe_util::{assert_outcome, build_errors, is_gone, run, wait_for};

/// Kills the sleeper when the test ends, whatever happens.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep N.UNIQUE`: a command line no other process has.
fn unique_duration() -> String {
    format!(
        "{}.{}{}",
        900 + std::process::id() % 97,
        std::process::id(),
        rand_digits()
    )
}

fn rand_digits() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn sleeper(arg: &str, user: Option<&str>) -> Sleeper {
    let mut c = Command::new("sleep");
    c.arg(arg);
    if let Some(u) = user {
        let a = lookup_user(u).unwrap();
        c.uid(a.uid).gid(a.gid);
    }
    Sleeper(c.spawn().unwrap())
}

async fn procs(block: &str) -> Outcome {
    run(&format!("name: t\nkind: process\nprocess: {{ {block} }}\n")).await
}

fn regex_of(arg: &str) -> String {
    format!("^sleep {}$", arg.replace('.', "\\."))
}

#[tokio::test]
async fn counts_processes_matched_by_command_line() {
    let arg = unique_duration();
    let re = regex_of(&arg);
    let a = sleeper(&arg, None);
    let o = procs(&format!("cmdline_matches: '{re}', name: sleep")).await;
    let seen = format!(
        "1 process matching name `sleep`, command line `{re}`: pid {}",
        a.0.id()
    );
    assert_outcome(&o, Reason::Ok, &[&seen]);
    assert_eq!(o.value, Some(1.0));

    let b = sleeper(&arg, None);
    let c = sleeper(&arg, None);
    let o = procs(&format!("cmdline_matches: '{re}', expect: {{ max: 2 }}")).await;
    let listed = format!(
        "3 processes matching command line `{re}` (pids {}, {}, {})",
        a.0.id(),
        b.0.id(),
        c.0.id()
    );
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[&listed, "the number of processes is 3, above the maximum 2"],
    );
    assert_eq!(o.value, Some(3.0));

    let o = procs(&format!(
        "cmdline_matches: '{re}', expect: {{ min: 2, max: 3 }}"
    ))
    .await;
    assert_outcome(&o, Reason::Ok, &[]);

    let pids = [a.0.id(), b.0.id(), c.0.id()];
    drop((a, b, c));
    assert!(wait_for(Duration::from_secs(2), || pids
        .iter()
        .all(|p| is_gone(*p))));
    let o = procs(&format!("cmdline_matches: '{re}'")).await;
    let none = format!(
        "no process matches command line `{re}`; the number of processes is 0, below the minimum 1"
    );
    assert_outcome(&o, Reason::AssertionFailed, &[&none]);
    assert_eq!(o.value, Some(0.0));
    let o = procs(&format!("cmdline_matches: '{re}', expect: {{ equals: 0 }}")).await;
    assert_outcome(&o, Reason::Ok, &["as expected"]);
}

#[tokio::test]
async fn the_user_filter_uses_the_process_owner() {
    let arg = unique_duration();
    let re = regex_of(&arg);
    let s = sleeper(&arg, Some("www-data"));
    let o = procs(&format!("cmdline_matches: '{re}', user: www-data")).await;
    assert_outcome(&o, Reason::Ok, &[&format!("pid {}", s.0.id())]);
    let o = procs(&format!("cmdline_matches: '{re}', user: root")).await;
    assert_outcome(&o, Reason::AssertionFailed, &["user root"]);
    let o = procs("name: sleep, user: no-such-user-hp").await;
    assert_outcome(&o, Reason::NotFound, &[]);
}

#[tokio::test]
async fn names_match_exactly() {
    let arg = unique_duration();
    let _s = sleeper(&arg, None);
    let o = procs("name: sleep").await;
    assert_outcome(&o, Reason::Ok, &[]);
    let o = procs("name: slee, expect: { equals: 0 }").await;
    assert_eq!(
        o.reason,
        Reason::Ok,
        "a prefix must not match: {}",
        o.message
    );
}

#[test]
fn a_check_without_filters_is_refused() {
    let errs = build_errors("name: t\nkind: process\nprocess: { expect: { min: 1 } }\n");
    assert_eq!(errs[0].path, "process");
    assert!(
        errs[0].message.contains("at least one of"),
        "{}",
        errs[0].message
    );
}

/// `environ`: the environment each matching process was started with, read
/// from /proc; a wrong value is shown, a secret one is not, a missing one is
/// named. (The tests run as root, who may read every environment; the
/// `permission_denied` wording for an agent that may not is in the kind.)
#[tokio::test]
async fn environ_is_read_from_each_matching_process() {
    let arg = unique_duration();
    let re = regex_of(&arg);
    let start = |env: &[(&str, &str)]| {
        let mut c = Command::new("sleep");
        c.arg(&arg).env_clear();
        for (k, v) in env {
            c.env(k, v);
        }
        Sleeper(c.spawn().unwrap())
    };
    let good = start(&[
        ("RAILS_ENV", "production"),
        ("JWT_SECRET", "jwt-canary-5150"),
    ]);
    let block = format!(
        "cmdline_matches: '{re}', environ: {{ RAILS_ENV: '^production$', JWT_SECRET: '.' }}"
    );
    let o = procs(&block).await;
    assert_outcome(
        &o,
        Reason::Ok,
        &["environment: JWT_SECRET, RAILS_ENV as expected"],
    );

    let bad = start(&[("RAILS_ENV", "development"), ("JWT_SECRET", "")]);
    let o = procs(&block).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "2 processes matching",
            &format!(
                "pid {}: JWT_SECRET is empty, RAILS_ENV is `development`, expected to match `^production$`",
                bad.0.id()
            ),
        ],
    );
    assert!(
        !o.message.contains(&format!("pid {}", good.0.id())),
        "{}",
        o.message
    );
    drop(bad);

    let block = format!("cmdline_matches: '{re}', environ: {{ JWT_SECRET: '^other$', HOME: . }}");
    let o = procs(&block).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "HOME is not set",
            "JWT_SECRET does not match `^other$` (a secret, not shown)",
        ],
    );
    assert!(!o.message.contains("jwt-canary-5150"), "{}", o.message);
    drop(good);
}
