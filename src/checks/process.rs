//! The `process` kind: how many running processes match a name, a command
//! line and a user (a queue worker, `sidekiq`, `php-fpm`), within bounds.
//!
//! Each run takes a fresh, minimal process list from sysinfo: only what the
//! filters need is read (`/proc/PID/cmdline` only when `cmdline_matches` is
//! given, owners only with `user`), threads are left out, and nothing is kept
//! between runs.

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
}

/// A prepared `process` check.
#[derive(Clone)]
pub struct ProcessCheck {
    name: Option<String>,
    cmdline: Option<Regex>,
    user: Option<String>,
    bounds: ValueBounds,
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
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProcessCheck {
            name: spec.name.clone(),
            cmdline,
            user: spec.user.clone(),
            bounds,
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
    fn pid_lists_are_bounded() {
        assert_eq!(list_pids(&[7]), "pid 7");
        let many: Vec<u32> = (1..=12).collect();
        assert_eq!(
            list_pids(&many),
            "pids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more"
        );
    }
}
