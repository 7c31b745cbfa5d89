//! The `command` kind: run a program (never through a shell), optionally as
//! another user, and assert on its exit code and output.
//!
//! What it guarantees, whatever the program does:
//! - the program runs in its own process group, and on timeout the whole
//!   group is killed (a `php artisan` that forked a worker leaves nothing
//!   behind), also when the runner gives up on the check;
//! - stdout and stderr are read to the end but only the first
//!   `max_output_bytes` of each are kept, so a chatty child never blocks on a
//!   full pipe and never fills the agent's memory;
//! - a death by signal is reported by name (`killed by signal 5 (SIGTRAP)`,
//!   the Invoice Ninja guide's "signal 5");
//! - "not found" and "not executable" are told apart before spawning, with
//!   the PATH that was searched.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext, compile_regex};
use crate::config::duration::Dur;
use crate::support::runas::{self, RunAsError};
use crate::support::users::{self, Account};
use crate::support::{signals, units};

/// Default cap on each of stdout and stderr.
const DEFAULT_MAX_OUTPUT: u64 = 64 * 1024;
/// Largest cap allowed: the output is held in memory.
const MAX_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;
/// PATH searched when the command's environment has none (after `clear_env`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `command:` block.
///
/// ```yaml
/// command:
///   argv: [php, artisan, queue:monitor, default]
///   cwd: /var/www/invoiceninja
///   user: www-data
///   timeout: 10s
///   expect: { exit_code: 0, stdout_not_matches: "\\[ALERT\\]" }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments. Never run through a shell: to use shell
    /// syntax, say so (`[sh, -c, "..."]`). A program without a `/` is searched in
    /// the command's `PATH` (the agent's, or the one given in `env`).
    pub argv: Vec<String>,
    /// Environment variables to set (on top of the agent's, or alone with
    /// `clear_env`). Values of keys that look secret (`*PASSWORD*`, `*TOKEN*`...)
    /// are masked in every message.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment instead of the agent's (default false).
    /// `PATH` is then only used to find the program if `env` sets it, else a
    /// standard one is searched.
    #[serde(default)]
    pub clear_env: bool,
    /// The working directory (entered before switching user).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Run as this user (name or uid): its uid, primary group and supplementary
    /// groups, with `HOME`, `USER` and `LOGNAME` set to its own. Needs root, or
    /// `CAP_SETUID` and `CAP_SETGID`. Guides insist: run the app's commands as
    /// the web user (`www-data`).
    #[serde(default)]
    pub user: Option<String>,
    /// How long the program may run (default: the check's timeout, which it
    /// cannot exceed). On timeout it and its whole process group are killed.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Text written to the program's standard input (default: none, stdin is
    /// `/dev/null`).
    #[serde(default)]
    pub stdin: Option<String>,
    /// How much of each of stdout and stderr is kept for the assertions, in
    /// bytes (default 65536). The rest is read and thrown away.
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    /// What the run must look like.
    #[serde(default)]
    pub expect: CommandExpect,
}

/// Assertions on the program's run. Regexes use Rust syntax and are matched
/// against the kept output without its final newlines (so `^ok$` matches a
/// program that prints `ok`); `(?m)` makes `^` and `$` match at every line.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandExpect {
    /// The exit code the program must end with (default 0).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// stdout must match this regex.
    #[serde(default)]
    pub stdout_matches: Option<String>,
    /// stdout must not match this regex.
    #[serde(default)]
    pub stdout_not_matches: Option<String>,
    /// stderr must match this regex.
    #[serde(default)]
    pub stderr_matches: Option<String>,
    /// stderr must not match this regex.
    #[serde(default)]
    pub stderr_not_matches: Option<String>,
}

/// A prepared `command` check.
pub struct CommandCheck {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    clear_env: bool,
    cwd: Option<PathBuf>,
    user: Option<String>,
    timeout: Duration,
    stdin: Option<String>,
    max_output: usize,
    exit_code: i32,
    stdout_matches: Option<Regex>,
    stdout_not_matches: Option<Regex>,
    stderr_matches: Option<Regex>,
    stderr_not_matches: Option<Regex>,
}

impl Check for CommandCheck {
    type Spec = CommandSpec;

    fn build(spec: &CommandSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        match spec.argv.first() {
            None => errors.push(FieldError::new(
                "argv",
                "argv is empty: give the program to run",
            )),
            Some(p) if p.is_empty() => {
                errors.push(FieldError::new("argv[0]", "the program name is empty"))
            }
            Some(p) if spec.argv.len() == 1 && p.contains(char::is_whitespace) => {
                errors.push(FieldError::new(
                    "argv",
                    format!(
                        "`{p}` is one word with spaces: argv is not run through a shell, \
                         give each argument as its own item ([{}])",
                        p.split_whitespace().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
            _ => {}
        }
        for (i, a) in spec.argv.iter().enumerate() {
            if a.contains('\0') {
                errors.push(FieldError::new(format!("argv[{i}]"), "contains a NUL byte"));
            }
        }
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                errors.push(FieldError::new(
                    format!("env.{k}"),
                    "an environment variable name cannot be empty or contain `=` or NUL",
                ));
            }
            if crate::redact::is_secret_key(k) {
                crate::redact::register(v);
            }
        }
        let cwd = spec.cwd.as_ref().map(|c| {
            let p = PathBuf::from(c);
            match (&ctx.pack_dir, p.is_absolute()) {
                (Some(dir), false) => dir.join(p),
                _ => p,
            }
        });
        if let Some(c) = &cwd
            && !c.is_absolute()
        {
            errors.push(FieldError::new(
                "cwd",
                "a built-in pack needs an absolute working directory",
            ));
        }
        if spec.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
            errors.push(FieldError::new("user", "the user name is empty"));
        }
        let timeout = match spec.timeout {
            Some(t) if t.get() > ctx.timeout => {
                errors.push(FieldError::new(
                    "timeout",
                    format!(
                        "{t} is longer than the check's timeout ({}): raise the check's `timeout` too",
                        humantime::format_duration(ctx.timeout)
                    ),
                ));
                ctx.timeout
            }
            Some(t) if t.get().is_zero() => {
                errors.push(FieldError::new("timeout", "the timeout must be above zero"));
                ctx.timeout
            }
            Some(t) => t.get(),
            None => ctx.timeout,
        };
        let max_output = spec.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT);
        if max_output == 0 || max_output > MAX_OUTPUT_LIMIT {
            errors.push(FieldError::new(
                "max_output_bytes",
                format!("must be between 1 and {MAX_OUTPUT_LIMIT} (16 MiB)"),
            ));
        }
        let e = &spec.expect;
        let mut regex = |field: &str, pattern: &Option<String>| {
            pattern.as_deref().and_then(|p| {
                compile_regex(&format!("expect.{field}"), p)
                    .map_err(|err| errors.push(err))
                    .ok()
            })
        };
        let stdout_matches = regex("stdout_matches", &e.stdout_matches);
        let stdout_not_matches = regex("stdout_not_matches", &e.stdout_not_matches);
        let stderr_matches = regex("stderr_matches", &e.stderr_matches);
        let stderr_not_matches = regex("stderr_not_matches", &e.stderr_not_matches);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CommandCheck {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            clear_env: spec.clear_env,
            cwd,
            user: spec.user.clone(),
            timeout,
            stdin: spec.stdin.clone(),
            max_output: max_output as usize,
            exit_code: e.exit_code.unwrap_or(0),
            stdout_matches,
            stdout_not_matches,
            stderr_matches,
            stderr_not_matches,
        })
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        // Stop a little before the runner's hard limit, so the message is ours
        // ("killed after 5s") and the process group is killed by us.
        let remaining = ctx.remaining();
        let margin = (remaining / 20).min(Duration::from_millis(200));
        let limit = self.timeout.min(remaining.saturating_sub(margin));
        let deadline = tokio::time::Instant::now() + limit;
        let shown = show_argv(&self.argv);

        let prep = {
            let argv0 = self.argv[0].clone();
            let path_env = self.search_path();
            let cwd = self.cwd.clone();
            let user = self.user.clone();
            tokio::task::spawn_blocking(move || prepare(&argv0, &path_env, cwd.as_deref(), user))
                .await
        };
        let (program, account) = match prep {
            Ok(Ok(p)) => p,
            Ok(Err((reason, msg))) => return Outcome::fail(reason, msg),
            Err(e) => {
                return Outcome::fail(
                    Reason::InternalError,
                    format!("preparing `{shown}` crashed ({e})"),
                );
            }
        };

        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg0(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if self.clear_env {
            cmd.env_clear();
        }
        if let Some(a) = &account {
            cmd.env("HOME", &a.home)
                .env("USER", &a.name)
                .env("LOGNAME", &a.name);
            runas::command_as(&mut cmd, a);
        }
        cmd.envs(&self.env);
        if let Some(c) = &self.cwd {
            cmd.current_dir(c);
        }
        let as_user = account
            .as_ref()
            .map(|a| format!(" as {}", a.name))
            .unwrap_or_default();

        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return spawn_failed(&program, &as_user, &e),
        };
        let mut guard = GroupGuard {
            pgid: child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
            tasks: Vec::new(),
        };
        if let (Some(mut pipe), Some(text)) = (child.stdin.take(), self.stdin.clone()) {
            // A child that does not read its input must not block us: the
            // write runs on its own and a broken pipe is fine.
            let writer = tokio::spawn(async move {
                let _ = pipe.write_all(text.as_bytes()).await;
            });
            guard.tasks.push(writer.abort_handle());
        }
        let out = child
            .stdout
            .take()
            .map(|r| tokio::spawn(read_capped(r, self.max_output)));
        let err = child
            .stderr
            .take()
            .map(|r| tokio::spawn(read_capped(r, self.max_output)));
        guard
            .tasks
            .extend(out.iter().chain(&err).map(JoinHandle::abort_handle));

        let status = tokio::select! {
            s = child.wait() => Some(s),
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let status = match status {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                guard.kill();
                guard.disarm();
                return Outcome::fail(
                    Reason::InternalError,
                    format!("waiting for `{shown}` failed: {e}"),
                );
            }
            None => {
                // Not reaped yet: the group id cannot have been reused.
                guard.kill();
                let _ = child.wait().await;
                guard.disarm();
                return Outcome::fail(
                    Reason::Timeout,
                    format!(
                        "`{shown}`{as_user} did not finish within {}; it and its process group were killed",
                        humantime::format_duration(limit)
                    ),
                );
            }
        };

        // The child is gone; its output ends when every process that holds the
        // pipes has exited. Something it left running in the background may
        // hold them: wait a moment, then stop reading and kill what is left.
        let grace = ctx.remaining().min(Duration::from_millis(500));
        let stdout = collect(out, grace).await;
        let stderr = collect(err, grace).await;
        let mut seen = vec![format!(
            "ran {}{as_user}: {}",
            program.display(),
            describe_status(&status)
        )];
        if stdout.is_none() || stderr.is_none() {
            seen.push("a background process kept the output open; it was killed".into());
            guard.kill();
        }
        guard.disarm();
        let stdout = stdout.unwrap_or_default();
        let stderr = stderr.unwrap_or_default();
        for (name, c) in [("stdout", &stdout), ("stderr", &stderr)] {
            if c.total > c.kept.len() as u64 {
                seen.push(format!(
                    "{name}: kept the first {} of {} bytes ({})",
                    c.kept.len(),
                    c.total,
                    units::bytes(c.total)
                ));
            } else {
                seen.push(format!("{name}: {} bytes", c.total));
            }
        }
        self.judge(&shown, &as_user, status, &stdout, &stderr)
            .with_observations(seen)
    }
}

impl CommandCheck {
    /// The PATH that finds the program: the command's own, else the agent's
    /// (unless cleared), else a standard one.
    fn search_path(&self) -> String {
        self.env
            .get("PATH")
            .cloned()
            .or_else(|| {
                (!self.clear_env)
                    .then(|| std::env::var("PATH").ok())
                    .flatten()
            })
            .unwrap_or_else(|| DEFAULT_PATH.to_string())
    }

    fn judge(
        &self,
        shown: &str,
        as_user: &str,
        status: ExitStatus,
        stdout: &Capture,
        stderr: &Capture,
    ) -> Outcome {
        let (out, err) = (stdout.text(), stderr.text());
        let (out, err) = (trim_newlines(&out), trim_newlines(&err));
        let code = match (status.code(), status.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => {
                let core = if status.core_dumped() {
                    ", core dumped"
                } else {
                    ""
                };
                return Outcome::fail(
                    Reason::AssertionFailed,
                    format!(
                        "`{shown}`{as_user} was killed by {}{core}{}",
                        signals::describe(sig),
                        tail_of(err, out)
                    ),
                )
                .with_value(f64::from(128 + sig));
            }
            (None, None) => -1,
        };
        let fail =
            |msg: String| Outcome::fail(Reason::AssertionFailed, msg).with_value(f64::from(code));
        if code != self.exit_code {
            return fail(format!(
                "`{shown}`{as_user} exited with {code}, expected {}{}",
                self.exit_code,
                tail_of(err, out)
            ));
        }
        let streams = [
            (
                "stdout",
                out,
                &self.stdout_matches,
                &self.stdout_not_matches,
            ),
            (
                "stderr",
                err,
                &self.stderr_matches,
                &self.stderr_not_matches,
            ),
        ];
        for (name, text, must, must_not) in streams {
            if let Some(re) = must
                && !re.is_match(text)
            {
                return fail(format!(
                    "{name} of `{shown}` does not match `{}`; it {}",
                    re.as_str(),
                    excerpt(text)
                ));
            }
            if let Some(re) = must_not
                && let Some(m) = re.find(text)
            {
                return fail(format!(
                    "{name} of `{shown}` matches `{}`, which it must not: {}",
                    re.as_str(),
                    quote(line_around(text, m.start(), m.end()))
                ));
            }
        }
        Outcome::ok(format!("`{shown}`{as_user} exited with {code}")).with_value(f64::from(code))
    }
}

/// Finds the program and the user, before spawning, so that "not found" and
/// "not executable" get messages that say where we looked.
fn prepare(
    argv0: &str,
    path_env: &str,
    cwd: Option<&Path>,
    user: Option<String>,
) -> Result<(PathBuf, Option<Account>), (Reason, String)> {
    if let Some(c) = cwd {
        match std::fs::metadata(c) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err((
                    Reason::NotFound,
                    format!("the working directory {} is not a directory", c.display()),
                ));
            }
            Err(e) => {
                return Err((
                    Reason::from_io(&e),
                    format!("the working directory {}: {e}", c.display()),
                ));
            }
        }
    }
    let account = match user {
        None => None,
        Some(u) => {
            let a = users::lookup_user(&u).map_err(|m| (Reason::NotFound, m))?;
            runas::check_privilege(&a).map_err(|e| match e {
                RunAsError::NoPrivilege(m) => (Reason::PermissionDenied, m),
                other => (Reason::InternalError, other.to_string()),
            })?;
            Some(a)
        }
    };
    let program = find_program(argv0, path_env, cwd)?;
    Ok((program, account))
}

/// Resolves `argv[0]` the way `execvp` would, but with words for failures.
fn find_program(
    argv0: &str,
    path_env: &str,
    cwd: Option<&Path>,
) -> Result<PathBuf, (Reason, String)> {
    let not_executable = |p: &Path, mode: u32| {
        (
            Reason::PermissionDenied,
            format!(
                "{} is not executable (mode {:04o}); fix: `chmod +x {}`",
                p.display(),
                mode & 0o7777,
                p.display()
            ),
        )
    };
    if argv0.contains('/') {
        let p = match cwd {
            Some(c) if !argv0.starts_with('/') => c.join(argv0),
            _ => PathBuf::from(argv0),
        };
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err((
                Reason::PermissionDenied,
                format!("{} is a directory, not a program", p.display()),
            )),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(not_executable(&p, m.permissions().mode()))
            }
            Ok(_) => Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err((
                Reason::NotFound,
                format!("command not found: {} does not exist", p.display()),
            )),
            Err(e) => Err((Reason::from_io(&e), format!("{}: {e}", p.display()))),
        };
    }
    let mut found_not_exec = None;
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(argv0);
        if let Ok(m) = std::fs::metadata(&p)
            && m.is_file()
        {
            if m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
            found_not_exec.get_or_insert((p, m.permissions().mode()));
        }
    }
    match found_not_exec {
        Some((p, mode)) => Err(not_executable(&p, mode)),
        None => Err((
            Reason::NotFound,
            format!(
                "command not found: `{argv0}` is in none of the directories of PATH ({path_env})"
            ),
        )),
    }
}

fn spawn_failed(program: &Path, as_user: &str, e: &io::Error) -> Outcome {
    let p = program.display();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Outcome::fail(
            Reason::NotFound,
            format!(
                "cannot run {p}{as_user}: {e}; if it is a script, the interpreter on its `#!` line is missing"
            ),
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => Outcome::fail(
            Reason::PermissionDenied,
            format!(
                "cannot run {p}{as_user}: {e}; the program or a directory above it is not executable by that user"
            ),
        ),
        Some(libc::ENOEXEC) => Outcome::fail(
            Reason::PermissionDenied,
            format!("cannot run {p}: it is not a program this system can execute ({e})"),
        ),
        _ => Outcome::fail(Reason::from_io(e), format!("cannot run {p}{as_user}: {e}")),
    }
}

/// Kills the child's process group if the check ends early (timeout, the
/// runner aborting the task) and stops the output readers.
struct GroupGuard {
    pgid: Option<rustix::process::Pid>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One output stream: the bytes kept and how many were produced.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    total: u64,
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).into_owned()
    }
}

/// Reads to the end, keeping the first `cap` bytes and discarding the rest.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> Capture {
    let mut c = Capture::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                c.total += n as u64;
                let room = cap.saturating_sub(c.kept.len());
                c.kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    c
}

/// Waits up to `grace` for a reader; `None` when the pipe stayed open.
async fn collect(task: Option<JoinHandle<Capture>>, grace: Duration) -> Option<Capture> {
    let Some(mut task) = task else {
        return Some(Capture::default());
    };
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(_)) => Some(Capture::default()),
        Err(_) => {
            task.abort();
            None
        }
    }
}

fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by {}", signals::describe(sig)),
        _ => "unknown status".into(),
    }
}

/// The argv as a person would type it.
fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The output without its final line ends, so that `^ok$` matches `ok\n`.
fn trim_newlines(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r'])
}

/// `"text"` cut to a readable length, on one line.
fn quote(text: &str) -> String {
    const MAX: usize = 200;
    let one_line = text.trim().replace('\n', "\\n");
    if one_line.chars().count() > MAX {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("\"{cut}…\"")
    } else {
        format!("\"{one_line}\"")
    }
}

/// How a stream that did not match is described.
fn excerpt(text: &str) -> String {
    if text.trim().is_empty() {
        "is empty".into()
    } else {
        format!("starts with {}", quote(text))
    }
}

/// The line holding a match.
fn line_around(text: &str, start: usize, end: usize) -> &str {
    let from = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let to = text[end..]
        .find('\n')
        .map(|i| end + i)
        .unwrap_or(text.len());
    &text[from..to]
}

/// The end of stderr (or stdout when stderr is empty), which is where programs
/// say what went wrong.
fn tail_of(stderr: &str, stdout: &str) -> String {
    let (name, text) = if stderr.trim().is_empty() {
        ("stdout", stdout)
    } else {
        ("stderr", stderr)
    };
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let last = lines[lines.len().saturating_sub(3)..].join("\n");
    format!("; {name} ends with {}", quote(&last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<CommandCheck, Vec<FieldError>> {
        crate::support::testing::build(text)
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let (errs, paths) = crate::support::testing::build_errors::<CommandCheck>(
            "argv: ['php -v']\ntimeout: 1m\nmax_output_bytes: 0\nexpect: { stdout_matches: '(', stderr_not_matches: '[' }",
        );
        assert_eq!(
            paths,
            [
                "argv",
                "timeout",
                "max_output_bytes",
                "expect.stdout_matches",
                "expect.stderr_not_matches"
            ]
        );
        assert!(errs[0].message.contains("[php, -v]"), "{}", errs[0].message);
        assert!(
            errs[1].message.contains("check's timeout"),
            "{}",
            errs[1].message
        );
        assert!(build("argv: []").is_err());
    }

    #[test]
    fn argv_is_shown_as_typed() {
        assert_eq!(show_argv(&["php".into(), "-v".into()]), "php -v");
        assert_eq!(
            show_argv(&["sh".into(), "-c".into(), "echo it's".into()]),
            r"sh -c 'echo it'\''s'"
        );
    }

    #[test]
    fn match_line_is_extracted() {
        let t = "ok\nERROR: disk full\nmore";
        let m = Regex::new("ERROR").unwrap().find(t).unwrap();
        assert_eq!(line_around(t, m.start(), m.end()), "ERROR: disk full");
    }

    #[test]
    fn programs_are_found_or_explained() {
        assert_eq!(
            find_program("sh", "/nonexistent:/bin", None).unwrap(),
            Path::new("/bin/sh")
        );
        let (r, m) = find_program("no-such-program-hp", "/bin:/usr/bin", None).unwrap_err();
        assert_eq!(r, Reason::NotFound);
        assert!(m.contains("/bin:/usr/bin"), "{m}");
        let (r, _) = find_program("/etc", "", None).unwrap_err();
        assert_eq!(r, Reason::PermissionDenied);
        let (r, m) = find_program("/etc/passwd", "", None).unwrap_err();
        assert_eq!(r, Reason::PermissionDenied);
        assert!(m.contains("chmod +x"), "{m}");
    }
}
