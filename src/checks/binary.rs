//! The `binary` kind: a program the application runs (snappdf's headless
//! Chrome, a PHP binary) is where it should be, belongs to the right user,
//! can be executed by the web user, finds every shared library it needs, and
//! optionally really starts.
//!
//! The Invoice Ninja guide has three faces of one problem: "signal 5" when
//! Chrome was downloaded by another user than the web user, `libatk-1.0.so.0`
//! not loading when the system lacks Chrome's libraries, and PDFs failing
//! when the binary is simply missing. Each expectation here answers one:
//!
//! - Locating: `path`, `glob` (first match, or every match with `all`),
//!   `path_from_file` (snappdf writes the Chromium revision it downloaded to
//!   `versions/revision.txt`; the binary is `versions/<rev>/chrome-linux/chrome`)
//!   and `path_from_env` (the app's own `SNAPPDF_CHROMIUM_PATH`, interpolated
//!   by the loader; empty means "use the other locator").
//! - `executable_by` is tried for real: on a fresh thread switched to the
//!   user's uid, gid and groups ([`crate::support::runas`]), `access(X_OK)` on
//!   every directory above the binary and on the binary itself. Mode bits
//!   alone miss ACLs, `noexec` mounts and supplementary groups.
//! - `libraries_resolve` reads the ELF's program headers with goblin (only the
//!   parts the dynamic loader reads: the header, `PT_INTERP`, `PT_DYNAMIC` and
//!   the strings it names, never the whole file: Chrome is 200 MB) and resolves
//!   each `DT_NEEDED` as glibc's `ld.so` does: `DT_RPATH` of the object and its
//!   loaders (when the object has no `DT_RUNPATH`), then `DT_RUNPATH`, then
//!   `/etc/ld.so.cache`, then the default directories; recursively, each
//!   soname once. `LD_LIBRARY_PATH` is not used: the agent's environment is
//!   not the web server's. A candidate of another class or machine (a 32-bit
//!   library) is passed over, as `ld.so` does.
//! - `smoke` runs the binary as the user with a timeout and reports the exit
//!   code, or the signal by name ("killed by signal 5 (SIGTRAP)").
//!
//! The check's value is the number of missing libraries (the interpreter
//! counts as one). Everything read is untrusted: a damaged ELF or
//! `ld.so.cache` gives `protocol_error`, never a panic.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use goblin::container::Ctx;
use goblin::elf::dynamic::{DT_NEEDED, DT_RPATH, DT_RUNPATH, Dynamic};
use goblin::elf::header::{self as eh, Header};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, ProgramHeader};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};
use crate::config::duration::Dur;
use crate::support::paths::{self, Glob};
use crate::support::runas::{self, RunAsError};
use crate::support::signals;
use crate::support::users::{self, Account};

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const DEFAULT_SMOKE_TIMEOUT: Duration = Duration::from_secs(10);
/// More shared objects than this in one closure is not a real program.
const MAX_OBJECTS: usize = 2048;

/// The `binary:` block.
///
/// ```yaml
/// binary:
///   path_from_env: ${env.SNAPPDF_CHROMIUM_PATH:-}
///   path_from_file:
///     file: ${root}/vendor/beganovich/snappdf/versions/revision.txt
///     template: "{content}/chrome-linux/chrome"
///   expect: { owner: www-data, executable_by: www-data }
///   smoke: { args: [--headless, --no-sandbox, --disable-gpu, --dump-dom, "about:blank"], user: www-data, timeout: 20s }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BinarySpec {
    /// The binary: absolute, or relative to the pack file's directory.
    #[serde(default)]
    pub path: Option<String>,
    /// A pattern (`/opt/chrome-*/chrome`); the first match in path order is
    /// checked, or every match with `all: true`.
    #[serde(default)]
    pub glob: Option<String>,
    /// With `glob`: check every match, not only the first.
    #[serde(default)]
    pub all: bool,
    /// Read the binary's location from a file (snappdf's `revision.txt`).
    #[serde(default)]
    pub path_from_file: Option<PathFromFile>,
    /// A path taken from the app's configuration, usually
    /// `${env.SNAPPDF_CHROMIUM_PATH:-}`. When it is empty after interpolation,
    /// the other locator (`path`, `glob` or `path_from_file`) is used.
    #[serde(default)]
    pub path_from_env: Option<String>,
    /// What must hold.
    #[serde(default)]
    pub expect: BinaryExpect,
    /// Run the binary once, as a user, and judge its exit.
    #[serde(default)]
    pub smoke: Option<Smoke>,
}

/// A binary whose location is written in a file.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathFromFile {
    /// The file holding one line (a revision, a version, a path).
    pub file: String,
    /// The binary's path, with `{content}` replaced by that line, e.g.
    /// `{content}/chrome-linux/chrome`. A relative result is taken from the
    /// file's directory, or from `root` when given.
    pub template: String,
    /// The directory a relative result is taken from (default: the file's).
    #[serde(default)]
    pub root: Option<String>,
}

/// What the `binary` check asserts. All failures are reported together.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BinaryExpect {
    /// Whether the binary must exist (default `true`). With `false`, no other
    /// expectation and no smoke run is allowed.
    #[serde(default)]
    pub exists: Option<bool>,
    /// A user who must be able to execute it, tried for real as that user
    /// (`access(X_OK)` on the binary and every directory above it). Needs
    /// root, or `CAP_SETUID` and `CAP_SETGID`, for a user other than the agent's.
    #[serde(default)]
    pub executable_by: Option<String>,
    /// The user that must own the binary (name or uid). The guide's "signal 5"
    /// comes from a Chrome downloaded by another user than the web user.
    #[serde(default)]
    pub owner: Option<String>,
    /// Every shared library the binary needs, and the libraries they need,
    /// must be found as the dynamic loader finds them (default `true`; scripts
    /// are passed over).
    #[serde(default)]
    pub libraries_resolve: Option<bool>,
}

/// A smoke run of the binary.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// The arguments (no shell).
    #[serde(default)]
    pub args: Vec<String>,
    /// Who runs it (default: `expect.executable_by`, else the agent's user).
    #[serde(default)]
    pub user: Option<String>,
    /// How long it may run (default 10s, and never past the check's timeout).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// The exit code that means success (default 0).
    #[serde(default)]
    pub expect_exit: i32,
}

/// A prepared `binary` check.
pub struct BinaryCheck {
    from_env: Option<PathBuf>,
    locator: Option<Locator>,
    exists: bool,
    owner: Option<String>,
    executable_by: Option<String>,
    libraries: Option<bool>,
    smoke: Option<PreparedSmoke>,
}

enum Locator {
    Path(PathBuf),
    Glob {
        glob: Glob,
        all: bool,
    },
    FromFile {
        file: PathBuf,
        template: String,
        root: Option<PathBuf>,
    },
}

struct PreparedSmoke {
    args: Vec<String>,
    user: Option<String>,
    timeout: Duration,
    expect_exit: i32,
}

impl Check for BinaryCheck {
    type Spec = BinarySpec;

    fn build(spec: &BinarySpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let from_env = match spec.path_from_env.as_deref() {
            None | Some("") => None,
            Some(p) => paths::resolve("path_from_env", p, ctx)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        let given: Vec<&str> = [
            spec.path.as_ref().map(|_| "path"),
            spec.glob.as_ref().map(|_| "glob"),
            spec.path_from_file.as_ref().map(|_| "path_from_file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            errors.push(FieldError::on_key(
                given[1],
                format!(
                    "give one of `path`, `glob` and `path_from_file`, not `{}` and `{}`",
                    given[0], given[1]
                ),
            ));
        }
        if given.is_empty() && spec.path_from_env.is_none() {
            errors.push(FieldError::new(
                "",
                "say where the binary is: `path`, `glob`, `path_from_file` or `path_from_env`",
            ));
        }
        if spec.all && spec.glob.is_none() {
            errors.push(FieldError::on_key("all", "`all` goes with `glob`"));
        }
        let locator = if let Some(p) = &spec.path {
            paths::resolve("path", p, ctx)
                .map(Locator::Path)
                .map_err(|e| errors.push(e))
                .ok()
        } else if let Some(g) = &spec.glob {
            Glob::new("glob", g, ctx)
                .map(|glob| Locator::Glob {
                    glob,
                    all: spec.all,
                })
                .map_err(|e| errors.push(e))
                .ok()
        } else if let Some(f) = &spec.path_from_file {
            if !f.template.contains("{content}") {
                errors.push(FieldError::new(
                    "path_from_file.template",
                    "the template must contain `{content}` (the file's line)",
                ));
            }
            let file = paths::resolve("path_from_file.file", &f.file, ctx)
                .map_err(|e| errors.push(e))
                .ok();
            let root = f.root.as_ref().and_then(|r| {
                paths::resolve("path_from_file.root", r, ctx)
                    .map_err(|e| errors.push(e))
                    .ok()
            });
            file.map(|file| Locator::FromFile {
                file,
                template: f.template.clone(),
                root,
            })
        } else {
            None
        };
        let e = &spec.expect;
        let exists = e.exists.unwrap_or(true);
        if !exists {
            for (field, set) in [
                ("expect.owner", e.owner.is_some()),
                ("expect.executable_by", e.executable_by.is_some()),
                ("expect.libraries_resolve", e.libraries_resolve.is_some()),
                ("smoke", spec.smoke.is_some()),
            ] {
                if set {
                    errors.push(FieldError::on_key(
                        field,
                        "`exists: false` says the binary must be absent: nothing else can be checked",
                    ));
                }
            }
        }
        let smoke = spec.smoke.as_ref().map(|s| {
            let timeout = s.timeout.map(Dur::get).unwrap_or(DEFAULT_SMOKE_TIMEOUT);
            if s.timeout.is_some() && timeout >= ctx.timeout {
                errors.push(FieldError::new(
                    "smoke.timeout",
                    format!(
                        "{} is not below the check's timeout ({}): give the check a longer `timeout`",
                        humantime::format_duration(timeout),
                        humantime::format_duration(ctx.timeout)
                    ),
                ));
            }
            PreparedSmoke {
                args: s.args.clone(),
                user: s.user.clone().or_else(|| e.executable_by.clone()),
                timeout,
                expect_exit: s.expect_exit,
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(BinaryCheck {
            from_env,
            locator,
            exists,
            owner: e.owner.clone(),
            executable_by: e.executable_by.clone(),
            libraries: e.libraries_resolve,
            smoke,
        })
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let found = match self.locate().await {
            Ok(found) => found,
            Err((reason, message)) if !self.exists && reason == Reason::NotFound => {
                return Outcome::ok(format!("{message}, as expected")).with_value(0.0);
            }
            Err((reason, message)) => return Outcome::fail(reason, message),
        };
        if !self.exists {
            let list: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            return Outcome::fail(
                Reason::AssertionFailed,
                format!("{} exists, but must not", list.join(", ")),
            );
        }
        let mut problems: Vec<(Reason, String)> = Vec::new();
        let mut seen = Vec::new();
        let mut missing = 0usize;
        let mut passed = Vec::new();
        for path in &found {
            let inspected = {
                let (path, owner, user, libs) = (
                    path.clone(),
                    self.owner.clone(),
                    self.executable_by.clone(),
                    self.libraries,
                );
                tokio::task::spawn_blocking(move || inspect(&path, owner, user, libs)).await
            };
            let report = match inspected {
                Ok(r) => r,
                Err(e) => {
                    return Outcome::fail(
                        Reason::InternalError,
                        format!("inspecting {} failed: {e}", path.display()),
                    );
                }
            };
            missing += report.missing;
            seen.extend(report.seen);
            if report.problems.is_empty() {
                passed.push(path.clone());
            }
            problems.extend(report.problems);
        }
        if problems.is_empty()
            && let Some(smoke) = &self.smoke
        {
            for path in &found {
                match smoke.run(path, ctx).await {
                    Ok(m) => seen.push(m),
                    Err(p) => problems.push(p),
                }
            }
        } else if self.smoke.is_some() {
            seen.push("smoke run skipped: the binary failed the checks above".into());
        }
        let outcome = if problems.is_empty() {
            let list: Vec<String> = passed.iter().map(|p| p.display().to_string()).collect();
            let what = describe_expectations(self);
            Outcome::ok(format!("{}: {what}", list.join(", ")))
        } else {
            // The most specific reason first: a failure to look is not a
            // finding about the binary.
            let reason = problems
                .iter()
                .map(|(r, _)| *r)
                .find(|r| *r != Reason::AssertionFailed)
                .unwrap_or(Reason::AssertionFailed);
            let text: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            Outcome::fail(reason, text.join("; "))
        };
        outcome.with_value(missing as f64).with_observations(seen)
    }
}

/// The ok message: what was verified.
fn describe_expectations(c: &BinaryCheck) -> String {
    let mut parts = vec!["exists".to_string()];
    if let Some(o) = &c.owner {
        parts.push(format!("owned by {o}"));
    }
    if let Some(u) = &c.executable_by {
        parts.push(format!("executable by {u}"));
    }
    if c.libraries != Some(false) {
        parts.push("every shared library found".into());
    }
    if let Some(s) = &c.smoke {
        parts.push(format!("smoke run exited with {}", s.expect_exit));
    }
    parts.join(", ")
}

impl BinaryCheck {
    /// The binaries to check, or why there are none.
    async fn locate(&self) -> Result<Vec<PathBuf>, (Reason, String)> {
        if let Some(p) = &self.from_env {
            return exists(p).map(|_| vec![p.clone()]);
        }
        match &self.locator {
            None => Err((
                Reason::NotFound,
                "`path_from_env` is empty (the app's setting is not set) and no other locator is given"
                    .to_string(),
            )),
            Some(Locator::Path(p)) => exists(p).map(|_| vec![p.clone()]),
            Some(Locator::Glob { glob, all }) => {
                let glob = glob.clone();
                let mut found = tokio::task::spawn_blocking(move || glob.matches())
                    .await
                    .unwrap_or_default();
                if found.is_empty() {
                    return Err((
                        Reason::NotFound,
                        format!("no file matches {}", self.glob_text()),
                    ));
                }
                if !all {
                    found.truncate(1);
                }
                Ok(found)
            }
            Some(Locator::FromFile {
                file,
                template,
                root,
            }) => {
                let content = read_pointer(file).await?;
                let rel = template.replace("{content}", &content);
                let base = root
                    .clone()
                    .unwrap_or_else(|| file.parent().unwrap_or(Path::new("/")).to_path_buf());
                let p = base.join(rel);
                exists(&p).map_err(|(r, m)| (r, format!("{m} (named by {})", file.display())))?;
                Ok(vec![p])
            }
        }
    }

    fn glob_text(&self) -> &str {
        match &self.locator {
            Some(Locator::Glob { glob, .. }) => glob.as_str(),
            _ => "",
        }
    }
}

/// Whether `p` exists, with a message when not.
fn exists(p: &Path) -> Result<(), (Reason, String)> {
    match std::fs::metadata(p) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err((Reason::NotFound, format!("{} does not exist", p.display())))
        }
        Err(e) => Err((
            Reason::from_io(&e),
            format!("cannot look at {}: {e}", p.display()),
        )),
    }
}

/// Reads the one line of a pointer file (snappdf's `revision.txt`). Its
/// content becomes part of a path, so it must be one plain path component.
async fn read_pointer(file: &Path) -> Result<String, (Reason, String)> {
    let shown = file.display();
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| (Reason::from_io(&e), format!("cannot read {shown}: {e}")))?;
    let mut buf = Vec::new();
    (&mut f)
        .take(4096)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| (Reason::from_io(&e), format!("cannot read {shown}: {e}")))?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.trim();
    let plain = !line.is_empty()
        && line.len() <= 255
        && !line.contains(['/', '\n', '\0'])
        && line != "."
        && line != ".."
        && !line.chars().any(char::is_control);
    if plain {
        Ok(line.to_string())
    } else {
        Err((
            Reason::ProtocolError,
            format!(
                "{shown} should hold one line naming a version (snappdf writes the Chromium revision there); it holds {} bytes that are not one",
                buf.len()
            ),
        ))
    }
}

/// What inspecting one binary found.
#[derive(Default)]
struct Report {
    problems: Vec<(Reason, String)>,
    seen: Vec<String>,
    missing: usize,
}

/// Owner, execute permission and libraries of one binary. Blocking.
fn inspect(path: &Path, owner: Option<String>, user: Option<String>, libs: Option<bool>) -> Report {
    let mut r = Report::default();
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.problems
                .push((Reason::from_io(&e), format!("cannot look at {shown}: {e}")));
            return r;
        }
    };
    if !meta.is_file() {
        r.problems.push((
            Reason::AssertionFailed,
            format!("{shown} is not a regular file (a directory?), not a program"),
        ));
        return r;
    }
    let mode = meta.permissions().mode() & 0o7777;
    r.seen.push(format!(
        "{shown}: owner {}, group {}, mode {mode:04o}, {} bytes",
        users::user_name(meta.uid()),
        users::group_name(meta.gid()),
        meta.len()
    ));
    if let Some(want) = &owner {
        match users::lookup_user(want) {
            Err(m) => r.problems.push((Reason::NotFound, m)),
            Ok(acc) if acc.uid != meta.uid() => r.problems.push((
                Reason::AssertionFailed,
                format!(
                    "{shown} is owned by {}, not {want}: it was installed by another user than the one that runs it; fix: `chown -R {want}: {}`",
                    users::user_name(meta.uid()),
                    path.parent().unwrap_or(path).display()
                ),
            )),
            Ok(_) => {}
        }
    }
    if let Some(user) = &user {
        match executable_as(path, user) {
            Ok(()) => r.seen.push(format!("access(X_OK) as {user}: allowed")),
            Err(p) => r.problems.push(p),
        }
    }
    if libs != Some(false) {
        match libraries(path, Path::new(LD_SO_CACHE)) {
            Ok(lib) => {
                r.missing = lib.missing.len();
                r.seen.extend(lib.seen);
                for (name, needed_by) in lib.missing {
                    r.problems.push((
                        Reason::AssertionFailed,
                        format!("{name} not found (needed by {})", needed_by.join(", ")),
                    ));
                }
            }
            Err(Inspect::Script(line)) => r.seen.push(format!(
                "{shown} is a script ({line}): no libraries to check"
            )),
            Err(Inspect::Damaged(m)) => r
                .problems
                .push((Reason::ProtocolError, format!("{shown}: {m}"))),
            Err(Inspect::Io(e)) => r
                .problems
                .push((Reason::from_io(&e), format!("cannot read {shown}: {e}"))),
        }
    }
    r
}

/// Tries `access(X_OK)` as `user` on every directory above `path` and on
/// `path`, on a thread switched to that user.
fn executable_as(path: &Path, user: &str) -> Result<(), (Reason, String)> {
    let account = users::lookup_user(user).map_err(|m| (Reason::NotFound, m))?;
    let target = path.to_path_buf();
    let denied = runas::run_as(&account, move || first_denied(&target)).map_err(|e| match e {
        RunAsError::NoPrivilege(m) => (Reason::PermissionDenied, m),
        other => (Reason::InternalError, other.to_string()),
    })?;
    match denied {
        None => Ok(()),
        Some((at, err)) => {
            let err = io::Error::from(err).to_string();
            let err = err.split(" (os error").next().unwrap_or_default();
            let how = std::fs::metadata(&at)
                .map(|m| {
                    format!(
                        " ({} owned by {}:{}, mode {:04o})",
                        if m.is_dir() {
                            "a directory"
                        } else {
                            "the file"
                        },
                        users::user_name(m.uid()),
                        users::group_name(m.gid()),
                        m.permissions().mode() & 0o7777
                    )
                })
                .unwrap_or_default();
            let fix = if at == path {
                format!(
                    "fix: `chown {user} {}` or `chmod o+x {}`",
                    at.display(),
                    at.display()
                )
            } else {
                format!("fix: `chmod o+x {}`", at.display())
            };
            Err((
                Reason::PermissionDenied,
                format!(
                    "{} is not executable by {user}: {}: {err}{how}; {fix}",
                    path.display(),
                    at.display()
                ),
            ))
        }
    }
}

/// The first of `path`'s directories (to search them) or `path` itself (to
/// execute it) that the calling thread may not use, with the error.
fn first_denied(path: &Path) -> Option<(PathBuf, rustix::io::Errno)> {
    use rustix::fs::{Access, access};
    let mut prefix = PathBuf::new();
    let parts: Vec<Component> = path.components().collect();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        if i + 1 == parts.len() || matches!(part, Component::RootDir) {
            continue;
        }
        if let Err(e) = access(&prefix, Access::EXEC_OK) {
            return Some((prefix, e));
        }
    }
    access(path, Access::EXEC_OK)
        .err()
        .map(|e| (path.to_path_buf(), e))
}

/// Why a file could not be read as an ELF program.
enum Inspect {
    /// A `#!` script: the first line.
    Script(String),
    /// Not a program, or a damaged ELF: what is wrong.
    Damaged(String),
    Io(io::Error),
}

impl From<io::Error> for Inspect {
    fn from(e: io::Error) -> Inspect {
        Inspect::Io(e)
    }
}

/// What the dynamic loader needs of one ELF object.
#[derive(Clone, Debug, Default, PartialEq)]
struct ElfDeps {
    class: u8,
    data: u8,
    machine: u16,
    interpreter: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

/// Reads `len` bytes at `offset`, failing on a short file.
fn read_at(file: &File, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, Inspect> {
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, offset) {
        Ok(()) => Ok(buf),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Inspect::Damaged(format!(
            "damaged ELF file: it ends before its {what} ({len} bytes at offset {offset})"
        ))),
        Err(e) => Err(Inspect::Io(e)),
    }
}

/// Reads the ELF header only (for compatibility checks of candidates).
fn read_header(file: &File) -> Result<Header, Inspect> {
    let mut buf = [0u8; 64];
    let n = read_up_to(file, &mut buf)?;
    if n >= 2 && &buf[..2] == b"#!" {
        let line = String::from_utf8_lossy(&buf[..n]);
        let line = line.lines().next().unwrap_or("").trim().to_string();
        return Err(Inspect::Script(line));
    }
    if n < 4 || &buf[..4] != eh::ELFMAG {
        let start: Vec<String> = buf[..n.min(4)].iter().map(|b| format!("{b:02x}")).collect();
        return Err(Inspect::Damaged(format!(
            "not a program: neither an ELF binary nor a `#!` script (it starts with bytes {})",
            if start.is_empty() {
                "none: it is empty".to_string()
            } else {
                start.join(" ")
            }
        )));
    }
    goblin::elf::Elf::parse_header(&buf[..n])
        .map_err(|e| Inspect::Damaged(format!("damaged ELF header: {e}")))
}

fn read_up_to(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the interpreter, needed libraries and search paths of an ELF file,
/// touching only the parts the loader reads.
fn read_deps(file: &File) -> Result<ElfDeps, Inspect> {
    let header = read_header(file)?;
    let damaged = |e: goblin::error::Error| Inspect::Damaged(format!("damaged ELF file: {e}"));
    let container = header.container().map_err(damaged)?;
    let le = header.endianness().map_err(damaged)?;
    let ctx = Ctx::new(container, le);
    let phsize = ProgramHeader::size(ctx);
    if header.e_phnum > 0 && usize::from(header.e_phentsize) != phsize {
        return Err(Inspect::Damaged(format!(
            "damaged ELF file: program header entries of {} bytes, expected {phsize}",
            header.e_phentsize
        )));
    }
    let count = usize::from(header.e_phnum);
    let table = read_at(file, header.e_phoff, count * phsize, "program headers")?;
    let phdrs = ProgramHeader::parse(&table, 0, count, ctx).map_err(damaged)?;
    let mut deps = ElfDeps {
        class: header.e_ident[eh::EI_CLASS],
        data: header.e_ident[eh::EI_DATA],
        machine: header.e_machine,
        ..ElfDeps::default()
    };
    if let Some(ph) = phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        let len = usize::try_from(ph.p_filesz.min(4096)).unwrap_or(4096);
        let bytes = read_at(file, ph.p_offset, len, "interpreter name")?;
        deps.interpreter = Some(c_string(&bytes).ok_or_else(|| {
            Inspect::Damaged("damaged ELF file: the interpreter name has no end".into())
        })?);
    }
    let Some(dyn_ph) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(deps); // statically linked
    };
    if dyn_ph.p_filesz > 1 << 20 {
        return Err(Inspect::Damaged(format!(
            "damaged ELF file: a dynamic section of {} bytes",
            dyn_ph.p_filesz
        )));
    }
    let bytes = read_at(
        file,
        dyn_ph.p_offset,
        dyn_ph.p_filesz as usize,
        "dynamic section",
    )?;
    // goblin reads PT_DYNAMIC at its file offset: point it at our buffer.
    let local: Vec<ProgramHeader> = phdrs
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if p.p_type == PT_DYNAMIC {
                p.p_offset = 0;
            }
            p
        })
        .collect();
    let Some(dynamic) = Dynamic::parse(&bytes, &local, ctx).map_err(damaged)? else {
        return Ok(deps);
    };
    let (strtab, strsz) = (dynamic.info.strtab as u64, dynamic.info.strsz as u64);
    for d in &dynamic.dyns {
        let list = match d.d_tag {
            DT_NEEDED => &mut deps.needed,
            DT_RPATH => &mut deps.rpath,
            DT_RUNPATH => &mut deps.runpath,
            _ => continue,
        };
        if strtab == 0 || d.d_val >= strsz {
            return Err(Inspect::Damaged(
                "damaged ELF file: a dynamic entry names a string outside the string table".into(),
            ));
        }
        let len = (strsz - d.d_val).min(4096) as usize;
        let raw = read_at(file, strtab + d.d_val, len, "string table")?;
        let s = c_string(&raw).ok_or_else(|| {
            Inspect::Damaged("damaged ELF file: a string in the string table has no end".into())
        })?;
        if d.d_tag == DT_NEEDED {
            list.push(s);
        } else {
            list.extend(s.split(':').map(str::to_string));
        }
    }
    Ok(deps)
}

/// The text before the first NUL, if there is one.
fn c_string(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// The outcome of resolving a program's libraries.
#[derive(Debug, Default)]
struct Libraries {
    /// Missing names, each with the objects that need it (file names).
    missing: Vec<(String, Vec<String>)>,
    seen: Vec<String>,
}

/// One loaded object on the way.
struct Object {
    name: String,
    path: PathBuf,
    deps: ElfDeps,
    /// Index of the object that loaded it (`None` for the program).
    loader: Option<usize>,
}

/// Resolves every library `program` needs, recursively, as `ld.so` would.
fn libraries(program: &Path, cache_path: &Path) -> Result<Libraries, Inspect> {
    let file = File::open(program)?;
    let deps = read_deps(&file)?;
    let mut out = Libraries::default();
    let name = paths::file_name(program);
    if deps.interpreter.is_none() && deps.needed.is_empty() {
        out.seen.push(format!("{name} is statically linked"));
        return Ok(out);
    }
    let cache = match std::fs::read(cache_path) {
        Ok(bytes) => match LdCache::parse(&bytes) {
            Ok(c) => Some(c),
            Err(m) => {
                out.seen.push(format!(
                    "{} is unreadable ({m}): not used",
                    cache_path.display()
                ));
                None
            }
        },
        Err(e) => {
            out.seen
                .push(format!("{}: {e}: not used", cache_path.display()));
            None
        }
    };
    let resolver = Resolver {
        cache,
        defaults: default_dirs(deps.class, deps.machine),
        class: deps.class,
        data: deps.data,
        machine: deps.machine,
    };
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    let mut note_missing = |lib: &str, by: &str| match missing.iter_mut().find(|(n, _)| n == lib) {
        Some((_, who)) => {
            if !who.iter().any(|w| w == by) {
                who.push(by.to_string());
            }
        }
        None => missing.push((lib.to_string(), vec![by.to_string()])),
    };
    let mut loaded: HashSet<String> = HashSet::new();
    if let Some(interp) = &deps.interpreter {
        if Path::new(interp).exists() {
            // Already in memory when the libraries load: libc's need of
            // `ld-linux-x86-64.so.2` is this file, whatever the search says.
            out.seen.push(format!("interpreter {interp}"));
            loaded.insert(paths::file_name(Path::new(interp)));
        } else {
            note_missing(&format!("the program interpreter {interp}"), &name);
        }
    }
    // The program's own directory, for $ORIGIN, is where it really lives.
    let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let mut objects = vec![Object {
        name: name.clone(),
        path: real,
        deps,
        loader: None,
    }];
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        for lib in objects[i].deps.needed.clone() {
            if !loaded.insert(lib.clone()) {
                continue;
            }
            if objects.len() >= MAX_OBJECTS {
                return Err(Inspect::Damaged(format!(
                    "more than {MAX_OBJECTS} shared objects: a dependency loop or a damaged file"
                )));
            }
            match resolver.find(&lib, &objects, i) {
                Some((path, deps)) => {
                    out.seen.push(format!("{lib} => {}", path.display()));
                    objects.push(Object {
                        name: lib.clone(),
                        path,
                        deps,
                        loader: Some(i),
                    });
                    queue.push_back(objects.len() - 1);
                }
                None => {
                    let by = objects[i].name.clone();
                    note_missing(&lib, &by);
                }
            }
        }
    }
    out.missing = missing;
    Ok(out)
}

/// The search rules of one program's closure.
struct Resolver {
    cache: Option<LdCache>,
    defaults: Vec<PathBuf>,
    class: u8,
    data: u8,
    machine: u16,
}

impl Resolver {
    /// Finds `lib` needed by `objects[by]`: its path and dependencies.
    fn find(&self, lib: &str, objects: &[Object], by: usize) -> Option<(PathBuf, ElfDeps)> {
        if lib.contains('/') {
            return self.candidate(Path::new(lib));
        }
        let loader = &objects[by];
        // DT_RPATH of the loader and of the objects that loaded it, unless the
        // loader has DT_RUNPATH.
        if loader.deps.runpath.is_empty() {
            let mut at = Some(by);
            while let Some(j) = at {
                let o = &objects[j];
                if o.deps.runpath.is_empty() {
                    for dir in &o.deps.rpath {
                        if let Some(found) = self.in_dir(dir, o, lib) {
                            return Some(found);
                        }
                    }
                }
                at = o.loader;
            }
        }
        for dir in &loader.deps.runpath {
            if let Some(found) = self.in_dir(dir, loader, lib) {
                return Some(found);
            }
        }
        if let Some(cache) = &self.cache {
            for path in cache.lookup(lib) {
                if let Some(found) = self.candidate(Path::new(path)) {
                    return Some(found);
                }
            }
        }
        self.defaults
            .iter()
            .find_map(|d| self.candidate(&d.join(lib)))
    }

    /// `lib` in a search-path entry of object `o` (with `$ORIGIN` expanded).
    fn in_dir(&self, dir: &str, o: &Object, lib: &str) -> Option<(PathBuf, ElfDeps)> {
        if dir.is_empty() {
            return None; // the loader's working directory: unknowable here
        }
        let origin = o
            .path
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let expanded = dir
            .replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin)
            .replace("${LIB}", &self.lib_token())
            .replace("$LIB", &self.lib_token())
            .replace("${PLATFORM}", &self.platform())
            .replace("$PLATFORM", &self.platform());
        self.candidate(&Path::new(&expanded).join(lib))
    }

    fn lib_token(&self) -> String {
        match multiarch(self.class, self.machine) {
            Some(triple) => format!("lib/{triple}"),
            None => "lib".into(),
        }
    }

    fn platform(&self) -> String {
        multiarch(self.class, self.machine)
            .and_then(|t| t.split('-').next())
            .unwrap_or("")
            .to_string()
    }

    /// `path` when it is an ELF object the program can load (same class, byte
    /// order and machine), with its dependencies.
    fn candidate(&self, path: &Path) -> Option<(PathBuf, ElfDeps)> {
        let file = File::open(path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let header = read_header(&file).ok()?;
        if header.e_ident[eh::EI_CLASS] != self.class
            || header.e_ident[eh::EI_DATA] != self.data
            || header.e_machine != self.machine
        {
            return None;
        }
        // A library that cannot be read fails to load: treated as missing.
        let deps = read_deps(&file).ok()?;
        Some((path.to_path_buf(), deps))
    }
}

/// Debian's multiarch triple for a class and machine.
fn multiarch(class: u8, machine: u16) -> Option<&'static str> {
    let is64 = class == eh::ELFCLASS64;
    Some(match (machine, is64) {
        (eh::EM_X86_64, true) => "x86_64-linux-gnu",
        (eh::EM_386, false) => "i386-linux-gnu",
        (eh::EM_AARCH64, true) => "aarch64-linux-gnu",
        (eh::EM_ARM, false) => "arm-linux-gnueabihf",
        (eh::EM_PPC64, true) => "powerpc64le-linux-gnu",
        (eh::EM_S390, true) => "s390x-linux-gnu",
        (eh::EM_RISCV, true) => "riscv64-linux-gnu",
        _ => return None,
    })
}

/// The loader's built-in directories, searched last.
fn default_dirs(class: u8, machine: u16) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(t) = multiarch(class, machine) {
        dirs.push(PathBuf::from(format!("/lib/{t}")));
        dirs.push(PathBuf::from(format!("/usr/lib/{t}")));
    }
    if class == eh::ELFCLASS64 {
        dirs.push("/lib64".into());
        dirs.push("/usr/lib64".into());
    }
    dirs.push("/lib".into());
    dirs.push("/usr/lib".into());
    dirs
}

/// `/etc/ld.so.cache` in glibc's format `glibc-ld.so.cache1.1` (optionally
/// behind the old `ld.so-1.7.0` table, which is skipped).
#[derive(Debug, Default)]
struct LdCache {
    /// `(soname, path)` in file order (the order the loader prefers).
    entries: Vec<(String, String)>,
}

impl LdCache {
    const OLD_MAGIC: &'static [u8] = b"ld.so-1.7.0";
    const NEW_MAGIC: &'static [u8] = b"glibc-ld.so.cache1.1";
    const HEADER: usize = 48;
    const ENTRY: usize = 24;

    fn parse(bytes: &[u8]) -> Result<LdCache, String> {
        let u32_at = |b: &[u8], at: usize| -> Result<u32, String> {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| "truncated".to_string())
        };
        let mut start = 0usize;
        if bytes.starts_with(Self::OLD_MAGIC) {
            let n = u32_at(bytes, 12)? as usize;
            let end = n
                .checked_mul(12)
                .and_then(|x| x.checked_add(16))
                .ok_or("damaged old header")?;
            start = end.div_ceil(8) * 8;
        }
        let new = bytes.get(start..).ok_or("truncated")?;
        if !new.starts_with(Self::NEW_MAGIC) {
            return Err("not in glibc's format glibc-ld.so.cache1.1".into());
        }
        if new.len() < Self::HEADER {
            return Err("truncated".into());
        }
        // flags: 0 unknown, 2 little-endian, 3 big-endian.
        if new[28] == 3 {
            return Err("written for a big-endian system".into());
        }
        let n = u32_at(new, 20)? as usize;
        let table_end = n
            .checked_mul(Self::ENTRY)
            .and_then(|x| x.checked_add(Self::HEADER))
            .filter(|&e| e <= new.len())
            .ok_or("truncated entry table")?;
        let string = |off: u32| -> Option<String> {
            let rest = new.get(off as usize..)?;
            c_string(&rest[..rest.len().min(4096)])
        };
        let mut entries = Vec::with_capacity(n);
        for at in (Self::HEADER..table_end).step_by(Self::ENTRY) {
            let flags = u32_at(new, at)?;
            // Type ELF (libc6); other types are a.out or libc5 leftovers.
            if flags & 0xff != 3 && flags & 0xff != 1 {
                continue;
            }
            let (key, value) = (u32_at(new, at + 4)?, u32_at(new, at + 8)?);
            match (string(key), string(value)) {
                (Some(k), Some(v)) => entries.push((k, v)),
                _ => return Err("an entry points outside the file".into()),
            }
        }
        Ok(LdCache { entries })
    }

    fn lookup<'a>(&'a self, soname: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == soname)
            .map(|(_, v)| v.as_str())
    }
}

impl PreparedSmoke {
    /// Runs the binary once; a description of the run, or the problem.
    async fn run(&self, path: &Path, ctx: &RunContext) -> Result<String, (Reason, String)> {
        let account: Option<Account> = match &self.user {
            None => None,
            Some(u) => {
                let a = users::lookup_user(u).map_err(|m| (Reason::NotFound, m))?;
                runas::check_privilege(&a).map_err(|e| match e {
                    RunAsError::NoPrivilege(m) => (Reason::PermissionDenied, m),
                    other => (Reason::InternalError, other.to_string()),
                })?;
                Some(a)
            }
        };
        let shown = std::iter::once(path.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let as_user = self
            .user
            .as_ref()
            .map(|u| format!(" as {u}"))
            .unwrap_or_default();
        // Leave a moment before the check's deadline to report.
        let limit = self
            .timeout
            .min(ctx.remaining().saturating_sub(Duration::from_millis(200)));
        let mut cmd = tokio::process::Command::new(path);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env(
                "HOME",
                account
                    .as_ref()
                    .map_or(Path::new("/"), |a| a.home.as_path()),
            )
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(a) = &account {
            runas::command_as(&mut cmd, a);
        }
        let mut child = cmd.spawn().map_err(|e| {
            (
                Reason::from_io(&e),
                format!("smoke run `{shown}`{as_user} could not start: {e}"),
            )
        })?;
        // The whole process group goes when this run ends, however it ends
        // (Chrome leaves helpers behind; the runner may abort us).
        let _group = KillGroup(child.id().map(|id| id as i32));
        let mut stderr = child.stderr.take();
        let tail = tokio::spawn(async move {
            let mut kept = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 8192 {
                        kept.drain(..kept.len() - 4096);
                    }
                }
            }
            kept
        });
        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err((Reason::InternalError, format!("smoke run `{shown}`: {e}")));
            }
            Err(_) => {
                return Err((
                    Reason::Timeout,
                    format!(
                        "smoke run `{shown}`{as_user} did not finish within {}",
                        humantime::format_duration(limit)
                    ),
                ));
            }
        };
        drop(_group);
        let stderr = tokio::time::timeout(Duration::from_millis(500), tail)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let last = String::from_utf8_lossy(&stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| {
                let l = l.trim();
                match l.char_indices().nth(200) {
                    Some((i, _)) => format!("; stderr: \"{}…\"", &l[..i]),
                    None => format!("; stderr: \"{l}\""),
                }
            })
            .unwrap_or_default();
        match (status.code(), status.signal()) {
            (Some(c), _) if c == self.expect_exit => {
                Ok(format!("smoke run `{shown}`{as_user} exited with {c}"))
            }
            (Some(c), _) => Err((
                Reason::AssertionFailed,
                format!(
                    "smoke run `{shown}`{as_user} exited with {c}, expected {}{last}",
                    self.expect_exit
                ),
            )),
            (None, Some(sig)) => Err((
                Reason::AssertionFailed,
                format!(
                    "smoke run `{shown}`{as_user} was killed by {}{last}",
                    signals::describe(sig)
                ),
            )),
            (None, None) => Err((
                Reason::InternalError,
                format!("smoke run `{shown}`{as_user} ended with an unknown status"),
            )),
        }
    }
}

/// Kills a process group when dropped.
struct KillGroup(Option<i32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machines_ld_so_cache() {
        let bytes = std::fs::read(LD_SO_CACHE).unwrap();
        let cache = LdCache::parse(&bytes).unwrap();
        let libc: Vec<&str> = cache.lookup("libc.so.6").collect();
        assert!(libc.iter().any(|p| p.ends_with("/libc.so.6")), "{libc:?}");
    }

    #[test]
    fn damaged_caches_are_errors_not_panics() {
        let good = std::fs::read(LD_SO_CACHE).unwrap();
        for len in [0, 5, 20, 47, 48, 100, good.len() / 2] {
            let _ = LdCache::parse(&good[..len.min(good.len())]);
        }
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&huge).is_err());
        let mut bad_key = good.clone();
        bad_key[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&bad_key).is_err());
        assert!(LdCache::parse(b"ld.so-1.7.0\0\xff\xff\xff\xff").is_err());
        assert!(
            LdCache::parse(b"garbage garbage garbage garbage garbage garbage garbage").is_err()
        );
    }

    #[test]
    fn resolves_the_agents_own_libraries() {
        // The test binary is a real dynamically linked program.
        let me = std::env::current_exe().unwrap();
        let libs = libraries(&me, Path::new(LD_SO_CACHE)).ok().unwrap();
        assert!(libs.missing.is_empty(), "{:?}", libs.missing);
        assert!(
            libs.seen.iter().any(|s| s.starts_with("libc.so.6 => ")),
            "{:?}",
            libs.seen
        );
        // Without the cache, the default directories still find them.
        let libs = libraries(&me, Path::new("/nonexistent/ld.so.cache"))
            .ok()
            .unwrap();
        assert!(libs.missing.is_empty(), "{:?}", libs.missing);
    }

    #[test]
    fn mutated_elf_headers_never_panic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let head = &me[..me.len().min(1 << 16)];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        // Flip bytes all over the header and program headers, and cut the
        // file at many lengths: every result is a value, never a panic.
        let mut seed = 0x9e3779b97f4a7c15u64;
        for round in 0..300 {
            let mut bytes = head.to_vec();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % 1024.min(bytes.len());
                bytes[at] = (seed >> 32) as u8;
            }
            bytes.truncate(if round % 3 == 0 {
                (seed as usize >> 8) % 4096
            } else {
                bytes.len()
            });
            std::fs::write(&path, &bytes).unwrap();
            let _ = libraries(&path, Path::new(LD_SO_CACHE));
        }
    }

    #[test]
    fn pointer_files_hold_one_plain_component() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("revision.txt");
        for (text, ok) in [
            ("1045629\n", true),
            ("", false),
            ("../../../bin", false),
            ("..", false),
            ("a\nb", false),
        ] {
            std::fs::write(&f, text).unwrap();
            let r = rt.block_on(read_pointer(&f));
            assert_eq!(r.is_ok(), ok, "{text:?}: {r:?}");
        }
    }
}
