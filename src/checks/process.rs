//! The `process` kind: how many running processes match a name, a command
//! line and a user (a queue worker, `sidekiq`, `php-fpm`), within bounds.
//!
//! Each run takes a fresh, minimal process list from sysinfo: only what the
//! filters need is read (`/proc/PID/cmdline` only when `cmdline_matches` is
//! given, owners only with `user`), threads are left out, and nothing is kept
//! between runs.
//!
//! `environ` reads `/proc/PID/environ` of each matching process: the
//! environment it was started with, which is where a service's settings
//! really live (`RAILS_ENV=production` from a systemd unit or a compose file,
//! OpenHands' fixed `JWT_SECRET`), whatever the unit files say.

use std::collections::BTreeMap;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::bounds::ValueBounds;
use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext, compile_regex};
use crate::support::{blocking, users};

/// How many matching pids a message lists.
const SHOWN_PIDS: usize = 10;

/// The `process:` block. At least one of `name`, `cmdline_matches` and `user`;
/// a process must match all that are given.
///
/// ```yaml
/// process:
///   cmdline_matches: "artisan queue:work"
///   user: www-data
///   expect: { min: 1, max: 4 }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The process name, exactly: the kernel's name (`comm`, cut to 15
    /// characters), or the file name of its program or of its first argument
    /// (so `mastodon-streaming` matches too).
    #[serde(default)]
    pub name: Option<String>,
    /// A regex on the whole command line, arguments joined by spaces
    /// (`"sidekiq .* \\[0 of 25 busy\\]"`, `"artisan queue:work"`).
    #[serde(default)]
    pub cmdline_matches: Option<String>,
    /// The user the process must run as (name or uid; the real uid).
    #[serde(default)]
    pub user: Option<String>,
    /// How many matching processes there must be: `min`, `max`, `equals`
    /// (default: at least 1, unless `max: 0` says none may run). The count is
    /// the check's value.
    #[serde(default)]
    pub expect: ValueBounds,
    /// Environment variables every matching process must have been started
    /// with, read from `/proc/PID/environ` (root, or the process's own user,
    /// may read it): the name and a regular expression its value must match
    /// (unanchored: `RAILS_ENV: ^production$`; `JWT_SECRET: .` for "set and
    /// not empty"). Values of secret-looking names (`*SECRET*`, `*TOKEN*`...)
    /// are never shown.
    #[serde(default)]
    pub environ: BTreeMap<String, String>,
}

/// A prepared `process` check.
#[derive(Clone)]
pub struct ProcessCheck {
    name: Option<String>,
    cmdline: Option<Regex>,
    user: Option<String>,
    bounds: ValueBounds,
    environ: Vec<(String, Regex)>,
}

impl Check for ProcessCheck {
    type Spec = ProcessSpec;

    fn build(spec: &ProcessSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if spec.name.is_none() && spec.cmdline_matches.is_none() && spec.user.is_none() {
            errors.push(FieldError::new(
                "",
                "give at least one of `name`, `cmdline_matches` and `user`",
            ));
        }
        for (field, v) in [("name", &spec.name), ("user", &spec.user)] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(FieldError::new(field, "empty"));
            }
        }
        let cmdline = spec.cmdline_matches.as_deref().and_then(|p| {
            compile_regex("cmdline_matches", p)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let mut bounds = spec.expect.clone();
        if bounds.min.is_none() && bounds.equals.is_none() && bounds.max.is_none_or(|m| m >= 1.0) {
            bounds.min = Some(1.0);
        }
        errors.extend(bounds.validate("expect"));
        let mut environ = Vec::new();
        for (k, v) in &spec.environ {
            if k.is_empty() || k.contains(['=', '\0']) {
                errors.push(FieldError::on_key(
                    format!("environ.{k}"),
                    format!("`{k}` is not an environment variable name"),
                ));
                continue;
            }
            match compile_regex(&format!("environ.{k}"), v) {
                Ok(re) => environ.push((k.clone(), re)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProcessCheck {
            name: spec.name.clone(),
            cmdline,
            user: spec.user.clone(),
            bounds,
            environ,
        })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        let job = self.clone();
        blocking::outcome("listing processes", move || job.evaluate()).await
    }
}

impl ProcessCheck {
    /// Counts the matching processes and judges the count.
    fn evaluate(&self) -> Outcome {
        let pids = match self.scan() {
            Ok(p) => p,
            Err((reason, msg)) => return Outcome::fail(reason, msg),
        };
        let what = self.describe();
        let count = pids.len() as f64;
        let listed = list_pids(&pids);
        let outcome = match self.bounds.violation("the number of processes", count) {
            None if pids.is_empty() => {
                Outcome::ok(format!("no process matches {what}, as expected"))
            }
            None if !self.environ.is_empty() => match self.environ_problems(&pids) {
                Ok(()) => Outcome::ok(format!(
                    "{} matching {what}: {listed}; environment: {}",
                    plural(pids.len()),
                    self.environ_names()
                )),
                Err((reason, problems)) => Outcome::fail(
                    reason,
                    format!(
                        "{} matching {what}: {}",
                        plural(pids.len()),
                        problems.join("; ")
                    ),
                ),
            },
            None => Outcome::ok(format!("{} matching {what}: {listed}", plural(pids.len()))),
            Some(v) if pids.is_empty() => Outcome::fail(
                Reason::AssertionFailed,
                format!("no process matches {what}; {v}"),
            ),
            Some(v) => Outcome::fail(
                Reason::AssertionFailed,
                format!("{} matching {what} ({listed}); {v}", plural(pids.len())),
            ),
        };
        outcome.with_value(count)
    }

    /// "RAILS_ENV as expected" for the success message.
    fn environ_names(&self) -> String {
        let names: Vec<String> = self.environ.iter().map(|(k, _)| k.clone()).collect();
        format!("{} as expected", names.join(", "))
    }

    /// What is wrong with the environment of each process, or `Ok`. The
    /// reason is `permission_denied` when an environment could not be read,
    /// else `assertion_failed`.
    fn environ_problems(&self, pids: &[u32]) -> Result<(), (Reason, Vec<String>)> {
        let mut problems = Vec::new();
        let mut reason = Reason::AssertionFailed;
        for &pid in pids.iter().take(SHOWN_PIDS) {
            let raw = match std::fs::read(format!("/proc/{pid}/environ")) {
                Ok(raw) => raw,
                // Gone since the scan: it no longer counts.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    reason = Reason::from_io(&e);
                    problems.push(format!(
                        "cannot read the environment of pid {pid}: {e} (the agent must run as root or as the process's user)"
                    ));
                    continue;
                }
            };
            let env = parse_environ(&raw);
            let mut wrong = Vec::new();
            for (k, re) in &self.environ {
                match env.get(k.as_str()) {
                    None => wrong.push(format!("{k} is not set")),
                    Some(v) if re.is_match(v) => {}
                    Some(&"") => wrong.push(format!("{k} is empty")),
                    Some(_) if crate::redact::is_secret_key(k) => wrong.push(format!(
                        "{k} does not match `{}` (a secret, not shown)",
                        re.as_str()
                    )),
                    Some(v) => wrong.push(format!(
                        "{k} is `{}`, expected to match `{}`",
                        crate::redact::redact(v),
                        re.as_str()
                    )),
                }
            }
            if !wrong.is_empty() {
                problems.push(format!("pid {pid}: {}", wrong.join(", ")));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err((reason, problems))
        }
    }

    /// `name sidekiq, command line matching `...`, user mastodon`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name `{n}`"));
        }
        if let Some(re) = &self.cmdline {
            parts.push(format!("command line `{}`", re.as_str()));
        }
        if let Some(u) = &self.user {
            parts.push(format!("user {u}"));
        }
        parts.join(", ")
    }
}

/// `KEY=value` entries of a `/proc/PID/environ` (NUL-separated); the first
/// of a repeated key wins, as `getenv` sees it.
fn parse_environ(raw: &[u8]) -> BTreeMap<&str, &str> {
    let mut env = BTreeMap::new();
    for entry in raw.split(|b| *b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue;
        };
        if let Some((k, v)) = entry.split_once('=') {
            env.entry(k).or_insert(v);
        }
    }
    env
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

fn list_pids(pids: &[u32]) -> String {
    let shown: Vec<String> = pids.iter().take(SHOWN_PIDS).map(u32::to_string).collect();
    let more = pids.len().saturating_sub(SHOWN_PIDS);
    let word = if pids.len() == 1 { "pid" } else { "pids" };
    if more > 0 {
        format!("{word} {} and {more} more", shown.join(", "))
    } else {
        format!("{word} {}", shown.join(", "))
    }
}

impl ProcessCheck {
    /// The pids of the matching processes (not threads, not the agent), sorted.
    fn scan(&self) -> Result<Vec<u32>, (Reason, String)> {
        let uid = match &self.user {
            Some(u) => Some(
                users::lookup_user(u)
                    .map_err(|m| (Reason::NotFound, m))?
                    .uid,
            ),
            None => None,
        };
        let mut kind = ProcessRefreshKind::nothing().without_tasks();
        if self.cmdline.is_some() || self.name.is_some() {
            kind = kind.with_cmd(UpdateKind::Always);
        }
        if self.name.is_some() {
            kind = kind.with_exe(UpdateKind::Always);
        }
        if uid.is_some() {
            kind = kind.with_user(UpdateKind::Always);
        }
        let mut sys = System::new().map_err(|e| {
            (
                Reason::InternalError,
                format!("cannot read the process list: {e}"),
            )
        })?;
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        let me = std::process::id();
        let mut pids: Vec<u32> = sys
            .processes()
            .values()
            .filter(|p| p.thread_kind().is_none() && p.pid().as_u32() != me)
            .filter(|p| uid.is_none_or(|want| p.user_id().is_some_and(|u| **u == want)))
            .filter(|p| {
                self.name.as_deref().is_none_or(|n| {
                    let base = |s: Option<&std::ffi::OsStr>| {
                        s.and_then(|s| std::path::Path::new(s).file_name())
                            .is_some_and(|f| f == n)
                    };
                    p.name() == n
                        || base(p.exe().map(|e| e.as_os_str()))
                        || base(p.cmd().first().map(|a| a.as_os_str()))
                })
            })
            .filter(|p| {
                self.cmdline.as_ref().is_none_or(|re| {
                    let line: Vec<String> = p
                        .cmd()
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect();
                    re.is_match(&line.join(" "))
                })
            })
            .map(|p| p.pid().as_u32())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::support::testing;

    fn build(text: &str) -> Result<ProcessCheck, Vec<FieldError>> {
        testing::build(text)
    }

    #[test]
    fn needs_a_filter_and_sane_bounds() {
        let (errs, paths) = testing::build_errors::<ProcessCheck>("expect: { min: 3, max: 1 }");
        assert_eq!(paths, ["", "expect"]);
        assert!(errs[0].message.contains("at least one"));
        let (_, paths) = testing::build_errors::<ProcessCheck>("cmdline_matches: '('");
        assert_eq!(paths, ["cmdline_matches"]);
    }

    #[test]
    fn at_least_one_by_default() {
        let c = build("name: x").ok().unwrap();
        assert_eq!(c.bounds.min, Some(1.0));
        let c = build("name: x\nexpect: { equals: 0 }").ok().unwrap();
        assert_eq!(c.bounds.min, None);
        let c = build("name: x\nexpect: { max: 0 }").ok().unwrap();
        assert_eq!(c.bounds.min, None);
        let c = build("name: x\nexpect: { max: 3 }").ok().unwrap();
        assert_eq!(c.bounds.min, Some(1.0));
    }

    #[test]
    fn environ_entries_and_names() {
        let env =
            parse_environ(b"RAILS_ENV=production\0EMPTY=\0A=b=c\0RAILS_ENV=dev\0junk\0\xff=1\0");
        assert_eq!(env.get("RAILS_ENV"), Some(&"production"));
        assert_eq!(env.get("EMPTY"), Some(&""));
        assert_eq!(env.get("A"), Some(&"b=c"));
        assert_eq!(env.len(), 3);
        let (errs, paths) =
            testing::build_errors::<ProcessCheck>("name: x\nenviron: { RAILS_ENV: '(' }");
        assert_eq!(paths, ["environ.RAILS_ENV"]);
        assert!(errs[0].message.contains("regular expression"));
    }

    #[test]
    fn environ_of_this_process() {
        // The test process itself is left out of scans, but its environment
        // is readable: judge it directly.
        let me = std::process::id();
        let c = build("name: x\nenviron: { PATH: '/', HP_SURELY_UNSET_VAR: . }")
            .ok()
            .unwrap();
        let (reason, problems) = c.environ_problems(&[me]).unwrap_err();
        assert_eq!(reason, Reason::AssertionFailed);
        assert_eq!(
            problems,
            [format!("pid {me}: HP_SURELY_UNSET_VAR is not set")]
        );
        let c = build("name: x\nenviron: { PATH: '^nope$' }").ok().unwrap();
        let (_, problems) = c.environ_problems(&[me]).unwrap_err();
        assert!(problems[0].contains("PATH is `"), "{problems:?}");
        assert!(
            problems[0].ends_with("expected to match `^nope$`"),
            "{problems:?}"
        );
    }

    #[test]
    fn pid_lists_are_bounded() {
        assert_eq!(list_pids(&[7]), "pid 7");
        let many: Vec<u32> = (1..=12).collect();
        assert_eq!(
            list_pids(&many),
            "pids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more"
        );
    }
}
