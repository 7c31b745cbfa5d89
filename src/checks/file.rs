//! The `file` kind: a path exists (or not), is the right type, is fresh, has
//! the right size, mode and owner, and can really be read or written by a
//! given user.
//!
//! The last point is the one the guides keep coming back to ("make sure the
//! directories are readable/writable by the web user, i.e. www-data"). Mode
//! bits alone cannot answer it (ACLs, read-only mounts, parent directories,
//! supplementary groups, SELinux), so `writable_by` does what the application
//! will do: as that user, it creates a file in the directory, locks it, writes
//! a byte and removes it. The switch of user happens on a thread of its own
//! (see [`crate::support::runas`]), never on the agent's other threads.
//!
//! Everything here is blocking file-system work: it runs in `spawn_blocking`.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};
use crate::config::duration::Dur;
use crate::support::runas::{self, RunAsError};
use crate::support::users::{self, Account};
use crate::support::{blocking, units};

/// The `file:` block.
///
/// ```yaml
/// file:
///   path: ${root}/storage
///   expect: { type: dir, owner: www-data, writable_by: www-data }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The path to check: absolute, or relative to the pack file's directory.
    pub path: String,
    /// What must hold. With no `expect`, the path must exist.
    #[serde(default)]
    pub expect: FileExpect,
}

/// What the `file` check asserts. Every given expectation must hold; all that
/// fail are reported together.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    /// Whether the path must exist (default `true`). With `false` (a stale lock
    /// or a `maintenance` flag that must be gone), no other expectation is allowed.
    #[serde(default)]
    pub exists: Option<bool>,
    /// What the path must be: `file`, `dir` or `symlink`. With `symlink` the
    /// link's target must exist too, and the other expectations apply to the
    /// target. Without it, a symlink is followed.
    #[serde(default, rename = "type")]
    pub file_type: Option<FileType>,
    /// The longest time since the last modification (mtime), e.g. `5m` for a
    /// heartbeat file that cron touches every minute. The age in seconds is
    /// the check's value.
    #[serde(default)]
    pub max_age: Option<Dur>,
    /// Another path this one must not be older than (by modification time):
    /// a build output and its source, e.g. Mastodon's compiled
    /// `public/packs/manifest.json` and the release's
    /// `lib/mastodon/version.rb` (a precompile forgotten after an upgrade).
    /// Absolute, or relative to the pack file's directory.
    #[serde(default)]
    pub newer_than: Option<String>,
    /// The smallest size in bytes (`1`: not empty).
    #[serde(default)]
    pub min_size: Option<u64>,
    /// The largest size in bytes (a log that must not grow without bound).
    #[serde(default)]
    pub max_size: Option<u64>,
    /// The exact permission bits, in octal as `chmod` takes them: `"0640"`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The most permissive mode allowed: no bit beyond these may be set
    /// (`"0640"` accepts 0640 and 0600, refuses 0644). For files holding secrets.
    #[serde(default)]
    pub mode_max: Option<String>,
    /// The user that must own the path (name or uid).
    #[serde(default)]
    pub owner: Option<String>,
    /// The group that must own the path (name or gid).
    #[serde(default)]
    pub group: Option<String>,
    /// A user who must be able to write here, tested for real as that user: for a
    /// directory, create, lock, write and remove a temporary file in it; for a
    /// file, open it for writing (without truncating it). Needs root, or
    /// `CAP_SETUID` and `CAP_SETGID`, for a user other than the agent's own.
    #[serde(default)]
    pub writable_by: Option<String>,
    /// A user who must be able to read here, tested for real as that user: for a
    /// directory, list and enter it; for a file, open it and read a byte.
    #[serde(default)]
    pub readable_by: Option<String>,
}

/// The type of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    #[serde(alias = "directory")]
    Dir,
    /// A symbolic link whose target exists.
    Symlink,
}

/// A prepared `file` check.
pub struct FileCheck {
    path: PathBuf,
    expect: FileExpect,
    /// `expect.newer_than`, resolved.
    newer_than: Option<PathBuf>,
    mode: Option<u32>,
    mode_max: Option<u32>,
}

/// Parses permission bits written in octal (`0640`, `640`, `2775`, `0o640`).
fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && digits.len() <= 4 && m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "`{t}` is not a mode: write it in octal as chmod takes it, e.g. \"0640\" (quote it)"
        )),
    }
}

impl Check for FileCheck {
    type Spec = FileSpec;

    fn build(spec: &FileSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &spec.expect;
        let path = PathBuf::from(&spec.path);
        let path = if spec.path.is_empty() {
            errors.push(FieldError::new("path", "the path is empty"));
            path
        } else if path.is_absolute() {
            path
        } else if let Some(dir) = &ctx.pack_dir {
            dir.join(path)
        } else {
            errors.push(FieldError::new(
                "path",
                format!(
                    "`{}` is relative: a built-in pack needs an absolute path",
                    spec.path
                ),
            ));
            path
        };
        let newer_than = e.newer_than.as_deref().and_then(|t| {
            let p = PathBuf::from(t);
            if t.is_empty() {
                errors.push(FieldError::new("expect.newer_than", "the path is empty"));
                None
            } else if p.is_absolute() {
                Some(p)
            } else if let Some(dir) = &ctx.pack_dir {
                Some(dir.join(p))
            } else {
                errors.push(FieldError::new(
                    "expect.newer_than",
                    format!("`{t}` is relative: a built-in pack needs an absolute path"),
                ));
                None
            }
        });
        let mut mode_of = |field: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| {
                parse_mode(t)
                    .map_err(|m| errors.push(FieldError::new(format!("expect.{field}"), m)))
                    .ok()
            })
        };
        let mode = mode_of("mode", &e.mode);
        let mode_max = mode_of("mode_max", &e.mode_max);
        if e.mode.is_some() && e.mode_max.is_some() {
            errors.push(FieldError::new(
                "expect.mode_max",
                "give either `mode` (exact) or `mode_max` (at most), not both",
            ));
        }
        if let (Some(min), Some(max)) = (e.min_size, e.max_size)
            && min > max
        {
            errors.push(FieldError::new(
                "expect.min_size",
                format!("min_size ({min}) is above max_size ({max})"),
            ));
        }
        if e.exists == Some(false) {
            let others = [
                ("type", e.file_type.is_some()),
                ("max_age", e.max_age.is_some()),
                ("newer_than", e.newer_than.is_some()),
                ("min_size", e.min_size.is_some()),
                ("max_size", e.max_size.is_some()),
                ("mode", e.mode.is_some()),
                ("mode_max", e.mode_max.is_some()),
                ("owner", e.owner.is_some()),
                ("group", e.group.is_some()),
                ("writable_by", e.writable_by.is_some()),
                ("readable_by", e.readable_by.is_some()),
            ];
            for (field, set) in others {
                if set {
                    errors.push(FieldError::new(
                        format!("expect.{field}"),
                        "the path must not exist (`exists: false`): nothing else can be expected of it",
                    ));
                }
            }
        }
        if e.file_type == Some(FileType::Dir) && (e.min_size.is_some() || e.max_size.is_some()) {
            errors.push(FieldError::new(
                "expect.min_size",
                "the size of a directory says nothing about its contents; drop min_size/max_size",
            ));
        }
        for (field, value) in [
            ("owner", &e.owner),
            ("group", &e.group),
            ("writable_by", &e.writable_by),
            ("readable_by", &e.readable_by),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(FieldError::new(
                    format!("expect.{field}"),
                    "the name is empty",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(FileCheck {
            path,
            expect: e.clone(),
            newer_than,
            mode,
            mode_max,
        })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        let job = Job {
            path: self.path.clone(),
            expect: self.expect.clone(),
            newer_than: self.newer_than.clone(),
            mode: self.mode,
            mode_max: self.mode_max,
        };
        blocking::outcome("the file check", move || job.evaluate()).await
    }
}

/// One run, owned so it can move to a blocking thread.
struct Job {
    path: PathBuf,
    expect: FileExpect,
    newer_than: Option<PathBuf>,
    mode: Option<u32>,
    mode_max: Option<u32>,
}

/// A failed expectation.
struct Problem {
    reason: Reason,
    text: String,
}

impl Problem {
    fn new(reason: Reason, text: impl Into<String>) -> Problem {
        Problem {
            reason,
            text: text.into(),
        }
    }
}

fn type_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    }
}

/// The closest existing ancestor of a missing path, to say where it stops.
fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors().skip(1).find(|p| p.exists())
}

impl Job {
    fn evaluate(&self) -> Outcome {
        let path = &self.path;
        let shown = path.display();
        let mut seen = Vec::new();
        let must_exist = self.expect.exists.unwrap_or(true);

        let link_meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !must_exist {
                    return Outcome::ok(format!("{shown} does not exist, as expected"));
                }
                let hint = match nearest_existing(path) {
                    Some(p) if p != Path::new("/") => format!(" ({} exists)", p.display()),
                    _ => String::new(),
                };
                return Outcome::fail(Reason::NotFound, format!("{shown} does not exist{hint}"));
            }
            Err(e) => return cannot_look(path, &e),
        };
        if !must_exist {
            return Outcome::fail(
                Reason::AssertionFailed,
                format!(
                    "{shown} exists ({}), but it must not",
                    type_name(&link_meta)
                ),
            );
        }

        let mut problems = Vec::new();
        let is_link = link_meta.file_type().is_symlink();
        let meta = if is_link {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|e| format!("<unreadable: {e}>"));
            seen.push(format!("symlink to {target}"));
            match std::fs::metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Outcome::fail(
                        Reason::NotFound,
                        format!(
                            "{shown} is a symlink to {target}, which does not exist (dangling link)"
                        ),
                    )
                    .with_observations(seen);
                }
                Err(e) => return cannot_look(path, &e).with_observations(seen),
            }
        } else {
            link_meta
        };

        match self.expect.file_type {
            Some(FileType::Symlink) if !is_link => problems.push(Problem::new(
                Reason::AssertionFailed,
                format!("it is a {}, not a symlink", type_name(&meta)),
            )),
            Some(FileType::File) if !meta.is_file() => problems.push(Problem::new(
                Reason::AssertionFailed,
                format!("it is a {}, not a file", type_name(&meta)),
            )),
            Some(FileType::Dir) if !meta.is_dir() => problems.push(Problem::new(
                Reason::AssertionFailed,
                format!("it is a {}, not a directory", type_name(&meta)),
            )),
            _ => {}
        }

        // Age: always measured (it is the value), asserted when asked.
        let age = meta
            .modified()
            .ok()
            .map(|mtime| (mtime, SystemTime::now().duration_since(mtime).ok()));
        let age_secs = age.and_then(|(_, a)| a).map(|a| a.as_secs_f64());
        if let Some((mtime, age)) = age {
            let when = humantime::format_rfc3339_seconds(mtime);
            match age {
                Some(a) => seen.push(format!("modified {} ago ({when})", round(a))),
                None => seen.push(format!("modified in the future ({when})")),
            }
            if let (Some(max), Some(a)) = (self.expect.max_age, age)
                && a > max.get()
            {
                problems.push(Problem::new(
                    Reason::AssertionFailed,
                    format!(
                        "it was last modified {} ago ({when}), longer than max_age {max}",
                        round(a)
                    ),
                ));
            }
        }

        if let (Some(reference), Some((mtime, _))) = (&self.newer_than, age) {
            match std::fs::metadata(reference).and_then(|m| m.modified()) {
                Ok(ref_mtime) if ref_mtime > mtime => problems.push(Problem::new(
                    Reason::AssertionFailed,
                    format!(
                        "it was last modified {} before {} ({} vs {}): it was not rebuilt since that changed",
                        round(ref_mtime.duration_since(mtime).unwrap_or_default()),
                        reference.display(),
                        humantime::format_rfc3339_seconds(mtime),
                        humantime::format_rfc3339_seconds(ref_mtime)
                    ),
                )),
                Ok(_) => seen.push(format!("not older than {}", reference.display())),
                Err(e) => problems.push(Problem::new(
                    match Reason::from_io(&e) {
                        Reason::InternalError => Reason::NotFound,
                        r => r,
                    },
                    format!("cannot compare with {}: {e}", reference.display()),
                )),
            }
        }

        let size = meta.len();
        seen.push(format!("size {size} bytes"));
        if let Some(min) = self.expect.min_size
            && size < min
        {
            problems.push(Problem::new(
                Reason::AssertionFailed,
                format!(
                    "it is {size} bytes ({}), smaller than min_size {min}",
                    units::bytes(size)
                ),
            ));
        }
        if let Some(max) = self.expect.max_size
            && size > max
        {
            problems.push(Problem::new(
                Reason::AssertionFailed,
                format!(
                    "it is {size} bytes ({}), larger than max_size {max} ({})",
                    units::bytes(size),
                    units::bytes(max)
                ),
            ));
        }

        let mode = meta.permissions().mode() & 0o7777;
        let owner = users::user_name(meta.uid());
        let group = users::group_name(meta.gid());
        seen.push(format!("mode {mode:04o}, owner {owner}:{group}"));
        if let Some(want) = self.mode
            && mode != want
        {
            problems.push(Problem::new(
                Reason::AssertionFailed,
                format!(
                    "its mode is {mode:04o}, expected {want:04o} (fix: `chmod {want:04o} {shown}`)"
                ),
            ));
        }
        if let Some(max) = self.mode_max {
            let extra = mode & !max;
            if extra != 0 {
                problems.push(Problem::new(
                    Reason::AssertionFailed,
                    format!(
                        "its mode {mode:04o} allows more than {max:04o} (extra bits {extra:04o}; fix: `chmod {:04o} {shown}`)",
                        mode & max
                    ),
                ));
            }
        }
        if let Some(name) = &self.expect.owner {
            match users::lookup_user(name) {
                Ok(want) if want.uid != meta.uid() => problems.push(Problem::new(
                    Reason::AssertionFailed,
                    format!(
                        "it is owned by user {owner} (uid {}), expected {} (fix: `chown {} {shown}`)",
                        meta.uid(),
                        want.name,
                        want.name
                    ),
                )),
                Ok(_) => {}
                Err(m) => problems.push(Problem::new(Reason::NotFound, m)),
            }
        }
        if let Some(name) = &self.expect.group {
            match users::lookup_group(name) {
                Ok(gid) if gid != meta.gid() => problems.push(Problem::new(
                    Reason::AssertionFailed,
                    format!(
                        "its group is {group} (gid {}), expected {name} (fix: `chgrp {name} {shown}`)",
                        meta.gid()
                    ),
                )),
                Ok(_) => {}
                Err(m) => problems.push(Problem::new(Reason::NotFound, m)),
            }
        }

        let facts = Facts {
            path,
            is_dir: meta.is_dir(),
            mode,
            uid: meta.uid(),
            gid: meta.gid(),
            owner: &owner,
            group: &group,
        };
        let mut granted = Vec::new();
        for (access, user) in [
            (Access::Read, &self.expect.readable_by),
            (Access::Write, &self.expect.writable_by),
        ] {
            if let Some(user) = user {
                match facts.try_access(access, user) {
                    Ok(()) => granted.push(format!("{} by {user}", access.adjective())),
                    Err(p) => problems.push(p),
                }
            }
        }

        let what = if is_link {
            format!("symlink to a {}", type_name(&meta))
        } else {
            type_name(&meta).to_string()
        };
        let outcome = if problems.is_empty() {
            let mut msg = format!("{shown}: {what}, mode {mode:04o}, owner {owner}:{group}");
            if let Some(a) = age_secs {
                msg.push_str(&format!(
                    ", modified {} ago",
                    round(Duration::from_secs_f64(a))
                ));
            }
            if !granted.is_empty() {
                msg.push_str("; ");
                msg.push_str(&granted.join(", "));
            }
            Outcome::ok(msg)
        } else {
            // The most telling reason wins: a denial or a missing user says more
            // than a mode that differs.
            let reason = problems
                .iter()
                .map(|p| p.reason)
                .find(|r| *r != Reason::AssertionFailed)
                .unwrap_or(Reason::AssertionFailed);
            let texts: Vec<String> = problems.into_iter().map(|p| p.text).collect();
            Outcome::fail(reason, format!("{shown}: {}", texts.join("; ")))
        };
        let outcome = outcome.with_observations(seen);
        match age_secs {
            Some(a) => outcome.with_value(a),
            None => outcome,
        }
    }
}

/// Whole seconds, for messages.
fn round(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

/// The agent itself cannot look at the path.
fn cannot_look(path: &Path, e: &io::Error) -> Outcome {
    let me = users::user_name(rustix::process::geteuid().as_raw());
    let reason = match Reason::from_io(e) {
        Reason::PermissionDenied => Reason::PermissionDenied,
        Reason::NotFound => Reason::NotFound,
        _ => Reason::AssertionFailed,
    };
    Outcome::fail(
        reason,
        format!(
            "healthprobe (running as {me}) cannot look at {}: {e}; a directory above it is not searchable by {me}",
            path.display()
        ),
    )
}

#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

impl Access {
    fn adjective(self) -> &'static str {
        match self {
            Access::Read => "readable",
            Access::Write => "writable",
        }
    }
}

/// What is known of the path, for the access tests and their messages.
struct Facts<'a> {
    path: &'a Path,
    is_dir: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    owner: &'a str,
    group: &'a str,
}

/// A step of an access test that failed: what was tried, and the error.
struct Failed {
    step: &'static str,
    err: io::Error,
}

fn step(step: &'static str) -> impl Fn(rustix::io::Errno) -> Failed {
    move |e| Failed {
        step,
        err: e.into(),
    }
}

impl Facts<'_> {
    /// Tries the access as `user`, for real.
    fn try_access(&self, access: Access, user: &str) -> Result<(), Problem> {
        let account = users::lookup_user(user).map_err(|m| Problem::new(Reason::NotFound, m))?;
        let path = self.path.to_path_buf();
        let is_dir = self.is_dir;
        let result = runas::run_as(&account, move || match (access, is_dir) {
            (Access::Write, true) => write_in_dir(&path),
            (Access::Write, false) => open_for_write(&path),
            (Access::Read, true) => read_dir(&path),
            (Access::Read, false) => read_file(&path),
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failed)) => Err(self.denied(access, &account, failed)),
            Err(RunAsError::NoPrivilege(m)) => Err(Problem::new(Reason::PermissionDenied, m)),
            Err(e) => Err(Problem::new(
                Reason::InternalError,
                format!("cannot test access as {}: {e}", account.name),
            )),
        }
    }

    /// Words a failed access test: who, what, the path's owner and mode, the fix.
    fn denied(&self, access: Access, account: &Account, failed: Failed) -> Problem {
        let errno = failed.err.raw_os_error();
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write to",
        };
        let head = format!(
            "{} cannot {verb} it: {} failed: {}",
            account.name, failed.step, failed.err
        );
        let (reason, tail) = match errno {
            Some(libc::EACCES) | Some(libc::EPERM) => {
                let target = if self.is_dir {
                    format!(
                        "-R {}:{} {}/",
                        account.name,
                        primary_group(account),
                        self.path.display()
                    )
                } else {
                    format!(
                        "{}:{} {}",
                        account.name,
                        primary_group(account),
                        self.path.display()
                    )
                };
                let kind = if self.is_dir { "directory" } else { "file" };
                let mut tail = format!(
                    "the {kind} is owned by {}:{} with mode {:04o}; fix: `chown {target}`",
                    self.owner, self.group, self.mode
                );
                if self.mode_allows(access, account) {
                    tail.push_str(&format!(
                        " (its own mode allows {}, so something else blocks it: a directory above \
                         it that {} cannot enter, an ACL or a security module; check `namei -l {}`)",
                        account.name,
                        account.name,
                        self.path.display()
                    ));
                }
                (Reason::PermissionDenied, tail)
            }
            Some(libc::EROFS) => (
                Reason::PermissionDenied,
                "the file system is mounted read-only".to_string(),
            ),
            Some(libc::ENOENT) => (
                Reason::NotFound,
                "it disappeared during the test".to_string(),
            ),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => (
                Reason::AssertionFailed,
                "the file system (or the user's quota) is full".to_string(),
            ),
            _ => (Reason::AssertionFailed, String::new()),
        };
        if tail.is_empty() {
            Problem::new(reason, head)
        } else {
            Problem::new(reason, format!("{head}; {tail}"))
        }
    }

    /// Whether the path's own permission bits grant the access to the user,
    /// by the class (owner, group, other) the kernel would use.
    fn mode_allows(&self, access: Access, account: &Account) -> bool {
        let class = if account.uid == self.uid {
            (self.mode >> 6) & 7
        } else if account.gid == self.gid || account.groups.contains(&self.gid) {
            (self.mode >> 3) & 7
        } else {
            self.mode & 7
        };
        let need = match (access, self.is_dir) {
            (Access::Write, true) => 0o3,
            (Access::Read, true) => 0o5,
            (Access::Write, false) => 0o2,
            (Access::Read, false) => 0o4,
        };
        class & need == need
    }
}

fn primary_group(account: &Account) -> String {
    users::group_name(account.gid)
}

/// As the user: create a fresh file in the directory, lock it, write a byte,
/// remove it. The file is removed whatever happens after it was created.
fn write_in_dir(dir: &Path) -> Result<(), Failed> {
    let name = format!(
        ".healthprobe-write-test.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let file = dir.join(name);
    let fd = rustix::fs::open(
        &file,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(step("creating a file in it"))?;
    let used = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)
        .map_err(step("locking the test file"))
        .and_then(|()| {
            rustix::io::write(&fd, b"h")
                .map_err(step("writing to the test file"))
                .map(|_| ())
        });
    drop(fd);
    let removed = rustix::fs::unlink(&file).map_err(step("removing the test file"));
    used.and(removed)
}

/// Opens an existing path (close-on-exec); `what` names the step if it fails.
fn open(path: &Path, flags: OFlags, what: &'static str) -> Result<rustix::fd::OwnedFd, Failed> {
    rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).map_err(step(what))
}

/// As the user: open the file for writing, without truncating or writing.
fn open_for_write(path: &Path) -> Result<(), Failed> {
    open(
        path,
        OFlags::WRONLY | OFlags::NONBLOCK,
        "opening it for writing",
    )
    .map(drop)
}

/// As the user: list the directory (read) and enter it (search).
fn read_dir(path: &Path) -> Result<(), Failed> {
    let fd = open(path, OFlags::RDONLY | OFlags::DIRECTORY, "listing it")?;
    rustix::fs::statat(&fd, ".", AtFlags::empty()).map_err(step("entering it"))?;
    Ok(())
}

/// As the user: open the file and read a byte.
fn read_file(path: &Path) -> Result<(), Failed> {
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK,
        "opening it for reading",
    )?;
    let mut byte = [0u8; 1];
    match rustix::io::read(&fd, &mut byte) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(step("reading it")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testing;

    fn build(text: &str) -> Result<FileCheck, Vec<FieldError>> {
        testing::build(text)
    }

    #[test]
    fn modes_parse_in_octal() {
        assert_eq!(parse_mode("0640").unwrap(), 0o640);
        assert_eq!(parse_mode("640").unwrap(), 0o640);
        assert_eq!(parse_mode("2775").unwrap(), 0o2775);
        assert_eq!(parse_mode("0o600").unwrap(), 0o600);
        assert!(parse_mode("0890").is_err());
        assert!(parse_mode("17777").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn unquoted_mode_stays_octal() {
        let c = build("path: /tmp\nexpect: { mode: 0640 }").ok().unwrap();
        assert_eq!(c.mode, Some(0o640));
    }

    #[test]
    fn contradictions_are_all_reported() {
        let (_, paths) = testing::build_errors::<FileCheck>(
            "path: rel/path\nexpect: { exists: false, mode: '0640', mode_max: '9', owner: root }",
        );
        assert_eq!(
            paths,
            [
                "path",
                "expect.mode_max",
                "expect.mode_max",
                "expect.mode",
                "expect.mode_max",
                "expect.owner"
            ]
        );
        let (_, paths) =
            testing::build_errors::<FileCheck>("path: /x\nexpect: { min_size: 10, max_size: 1 }");
        assert_eq!(paths, ["expect.min_size"]);
    }

    #[test]
    fn relative_paths_resolve_against_the_pack() {
        let c: FileCheck =
            testing::build_in("path: data/flag", Some("/etc/healthprobe/checks".into()))
                .ok()
                .unwrap();
        assert_eq!(c.path, Path::new("/etc/healthprobe/checks/data/flag"));
    }

    #[test]
    fn mode_classes() {
        let acct = Account {
            name: "www-data".into(),
            uid: 33,
            gid: 33,
            groups: vec![33, 100],
            home: "/var/www".into(),
        };
        let facts = |mode, uid, gid| Facts {
            path: Path::new("/x"),
            is_dir: true,
            mode,
            uid,
            gid,
            owner: "",
            group: "",
        };
        assert!(facts(0o755, 33, 0).mode_allows(Access::Write, &acct));
        assert!(!facts(0o755, 0, 0).mode_allows(Access::Write, &acct));
        assert!(facts(0o775, 0, 100).mode_allows(Access::Write, &acct));
        assert!(facts(0o757, 0, 0).mode_allows(Access::Write, &acct));
        assert!(!facts(0o750, 0, 0).mode_allows(Access::Read, &acct));
    }
}
