//! The `log` kind: follow a log file and count new lines matching named
//! signatures (`signal 5`, `max_allowed_packet`, `flock()`...), failing when a
//! signature shows up more often than allowed.
//!
//! Following works like `tail -F`, one step per run:
//! - The first run starts at the end of the file: what was logged before the
//!   agent started is not news (a file that appears later is read whole).
//! - The open file and its identity (device and inode) are kept between runs.
//!   When the path names another file (rotation by rename, or with `glob` a
//!   newer dated file such as Laravel's `laravel-2024-05-02.log`), the rest
//!   of the old file is read through the kept descriptor, then the new file
//!   from its start. When the file shrinks below the offset (truncation,
//!   `copytruncate`), it is read again from its start.
//! - A run reads at most `max_read_bytes`; when more was written since the
//!   last run, the oldest part is skipped (the newest lines matter most) and
//!   the message says how much.
//! - A line longer than `max_line_bytes` is cut: only its start is matched.
//!   A last line without its newline is left for the next run (the writer may
//!   be in the middle of it), unless it is already over that length.
//!
//! The state lives in the prepared check, so a config reload (which prepares
//! checks anew) starts again from the end.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use super::outcome::{Family, Sample};
use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext, compile_regex};
use crate::support::paths::{self, Glob};
use crate::support::{blocking, units};

/// Lines matching each signature, counted since the agent started.
pub static LOG_MATCHES: Family = Family::counter(
    "healthprobe_log_matches_total",
    "New log lines matching each signature of a log check since the agent started (lines written before its first run are not counted).",
);

const DEFAULT_MAX_READ: u64 = 8 << 20;
const DEFAULT_MAX_LINE: u64 = 16 << 10;
/// How much of the last matching line the message quotes.
const QUOTE_CHARS: usize = 200;

/// The `log:` block.
///
/// ```yaml
/// log:
///   glob: ${root}/storage/logs/laravel*.log     # or path:
///   missing_ok: true
///   signatures:
///     - { name: signal_5, regex: 'signal "?5"?' }
///     - { name: max_allowed_packet, regex: "max_allowed_packet" }
///     - { name: flock, regex: 'flock\(\) expects parameter 1', max_new_matches: 2 }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// The log file: absolute, or relative to the pack file's directory.
    /// Give `path` or `glob`.
    #[serde(default)]
    pub path: Option<String>,
    /// A pattern for logs rotated into dated files (`laravel-*.log`): the match
    /// modified last is followed. Give `path` or `glob`.
    #[serde(default)]
    pub glob: Option<String>,
    /// The lines to count, each under a name (the `signature` label).
    pub signatures: Vec<LogSignature>,
    /// The most new matching lines allowed in one run, all signatures together.
    /// When neither this nor a signature's own bound is given, any new match of
    /// that signature fails the check.
    #[serde(default)]
    pub max_new_matches: Option<u64>,
    /// Pass when the file does not exist (an app logs nothing until something
    /// goes wrong). Default: a missing file is `not_found`.
    #[serde(default)]
    pub missing_ok: bool,
    /// The most bytes read in one run (default 8 MiB); past it the oldest new
    /// bytes are skipped.
    #[serde(default)]
    pub max_read_bytes: Option<u64>,
    /// On the first run, also read this many bytes before the end of the file
    /// (default 0: the first run only notes where the file ends). Useful for
    /// `healthprobe check`, which runs every check once: with `65536` it
    /// reports the signatures among the last 64 KiB of the log.
    #[serde(default)]
    pub initial_tail_bytes: Option<u64>,
    /// Lines longer than this many bytes are cut before matching (default 16 KiB).
    #[serde(default)]
    pub max_line_bytes: Option<u64>,
}

/// A named pattern to count.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSignature {
    /// The name, unique in the check: the `signature` label and the word the
    /// message uses.
    pub name: String,
    /// A regular expression matched against each new line (unanchored).
    pub regex: String,
    /// The most new matches of this signature allowed in one run.
    #[serde(default)]
    pub max_new_matches: Option<u64>,
}

/// A prepared `log` check.
pub struct LogCheck {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    signatures: Vec<(String, Regex, Option<u64>)>,
    max_total: Option<u64>,
    missing_ok: bool,
    max_read: u64,
    max_line: usize,
    initial_tail: u64,
    state: Mutex<State>,
}

enum Target {
    Path(PathBuf),
    Glob(Glob),
}

#[derive(Default)]
struct State {
    started: bool,
    current: Option<Followed>,
    /// Matches per signature since the agent started.
    totals: Vec<u64>,
}

/// The file being followed, kept open so that a rotated file can be finished.
struct Followed {
    file: File,
    path: PathBuf,
    id: (u64, u64),
    offset: u64,
    /// The offset is inside a line whose start was skipped or already
    /// counted: drop bytes up to the next newline.
    mid_line: bool,
}

impl Check for LogCheck {
    type Spec = LogSpec;

    fn build(spec: &LogSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let target = match (&spec.path, &spec.glob) {
            (Some(p), None) => paths::resolve("path", p, ctx).map(Target::Path),
            (None, Some(g)) => Glob::new("glob", g, ctx).map(Target::Glob),
            (Some(_), Some(_)) => Err(FieldError::on_key(
                "glob",
                "give `path` or `glob`, not both",
            )),
            (None, None) => Err(FieldError::new(
                "",
                "give the log file as `path`, or a pattern as `glob`",
            )),
        }
        .map_err(|e| errors.push(e))
        .ok();
        if spec.signatures.is_empty() {
            errors.push(FieldError::new(
                "signatures",
                "give at least one signature (`- { name: error, regex: ERROR }`)",
            ));
        }
        let mut names = HashSet::new();
        let mut signatures = Vec::new();
        for (i, s) in spec.signatures.iter().enumerate() {
            if s.name.is_empty() {
                errors.push(FieldError::new(
                    format!("signatures[{i}].name"),
                    "the name is empty",
                ));
            } else if !names.insert(s.name.as_str()) {
                errors.push(FieldError::new(
                    format!("signatures[{i}].name"),
                    format!("`{}` is the name of an earlier signature", s.name),
                ));
            }
            match compile_regex(&format!("signatures[{i}].regex"), &s.regex) {
                Ok(re) => signatures.push((s.name.clone(), re, s.max_new_matches)),
                Err(e) => errors.push(e),
            }
        }
        let max_read = spec.max_read_bytes.unwrap_or(DEFAULT_MAX_READ);
        if max_read < 4096 {
            errors.push(FieldError::new("max_read_bytes", "at least 4096 bytes"));
        }
        let max_line = spec.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE);
        if max_line == 0 || max_line > max_read {
            errors.push(FieldError::new(
                "max_line_bytes",
                "must be above 0 and at most max_read_bytes",
            ));
        }
        match target {
            Some(target) if errors.is_empty() => Ok(LogCheck {
                inner: Arc::new(Inner {
                    target,
                    state: Mutex::new(State {
                        totals: vec![0; signatures.len()],
                        ..State::default()
                    }),
                    signatures,
                    max_total: spec.max_new_matches,
                    missing_ok: spec.missing_ok,
                    max_read,
                    max_line: max_line as usize,
                    initial_tail: spec.initial_tail_bytes.unwrap_or(0).min(max_read),
                }),
            }),
            _ => Err(errors),
        }
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        // Bounded blocking reads (at most `max_read` bytes): off the runtime.
        let inner = self.inner.clone();
        blocking::outcome("the log reader", move || inner.step()).await
    }
}

/// What one run read.
#[derive(Default)]
struct Scan {
    bytes: u64,
    skipped: u64,
    counts: Vec<u64>,
    /// The last matching line, and the signatures it matched.
    last: Option<(String, Vec<usize>)>,
    /// What happened on the way (rotation, truncation), for the message.
    notes: Vec<String>,
}

impl Inner {
    /// One run: locate, follow, count, judge.
    fn step(&self) -> Outcome {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let target = match &self.target {
            Target::Path(p) => Some(p.clone()),
            Target::Glob(g) => g.newest(),
        };
        let shown = match (&target, &self.target) {
            (Some(p), _) => p.display().to_string(),
            (None, Target::Path(p)) => p.display().to_string(),
            (None, Target::Glob(g)) => g.as_str().to_string(),
        };
        let opened = target.as_ref().map(|p| (p, open(p)));
        if !state.started {
            state.started = true;
            return match opened {
                Some((path, Ok((file, id, size)))) => {
                    let start = size.saturating_sub(self.initial_tail);
                    let mut cur = Followed {
                        mid_line: inside_line(&file, start),
                        file,
                        path: path.clone(),
                        id,
                        offset: start,
                    };
                    let mut scan = Scan::empty(self);
                    if start < size {
                        let mut budget = self.max_read;
                        if let Err(e) = self.read(&mut cur, &mut budget, false, &mut scan) {
                            return Outcome::fail(
                                Reason::from_io(&e),
                                format!("cannot read {shown}: {e}"),
                            );
                        }
                    }
                    state.current = Some(cur);
                    let mut o = self.judge(&shown, scan, &mut state);
                    o.message = if start < size {
                        format!(
                            "{}; first run: read the last {} (initial_tail_bytes), then only new lines count",
                            o.message,
                            units::bytes(size - start)
                        )
                    } else {
                        format!(
                            "{}; started at its end (byte {size}): only lines written from now on count",
                            o.message
                        )
                    };
                    o
                }
                Some((_, Err(e))) if e.kind() != io::ErrorKind::NotFound => cannot_open(&shown, &e),
                _ => self.missing(&shown, &state),
            };
        }

        let mut scan = Scan::empty(self);
        let mut budget = self.max_read;
        let target_id = match &opened {
            Some((_, Ok((_, id, _)))) => Some(*id),
            _ => None,
        };
        // The followed file is no longer the one at the path: finish it.
        if let Some(cur) = &mut state.current
            && Some(cur.id) != target_id
        {
            let before = scan.bytes;
            if let Err(e) = self.read(cur, &mut budget, true, &mut scan) {
                scan.notes
                    .push(format!("could not finish {}: {e}", cur.path.display()));
            }
            scan.notes.push(format!(
                "{} was rotated: read its last {}, then the new file from its start",
                cur.path.display(),
                units::bytes(scan.bytes - before)
            ));
            state.current = None;
        }
        match opened {
            Some((path, Ok((file, id, _)))) => {
                let cur = state.current.get_or_insert(Followed {
                    file,
                    path: path.clone(),
                    id,
                    offset: 0,
                    mid_line: false,
                });
                if let Err(e) = self.read(cur, &mut budget, false, &mut scan) {
                    return Outcome::fail(Reason::from_io(&e), format!("cannot read {shown}: {e}"));
                }
                self.judge(&shown, scan, &mut state)
            }
            Some((_, Err(e))) if e.kind() != io::ErrorKind::NotFound => {
                self.add_totals(&scan, &mut state);
                cannot_open(&shown, &e)
            }
            _ => {
                self.add_totals(&scan, &mut state);
                self.missing(&shown, &state)
            }
        }
    }

    /// Reads `cur` from its offset to its current end (`drain`: also a last
    /// line without newline), within `budget`.
    fn read(
        &self,
        cur: &mut Followed,
        budget: &mut u64,
        drain: bool,
        scan: &mut Scan,
    ) -> io::Result<()> {
        let size = cur.file.metadata()?.len();
        if size < cur.offset {
            scan.notes.push(format!(
                "{} shrank from {} to {size} bytes (truncated): read again from its start",
                cur.path.display(),
                cur.offset
            ));
            cur.offset = 0;
            cur.mid_line = false;
        }
        let available = size - cur.offset;
        if available > *budget {
            let skip = available - *budget;
            scan.skipped += skip;
            cur.offset += skip;
            cur.mid_line = inside_line(&cur.file, cur.offset);
        }
        let want = size - cur.offset;
        *budget -= want;
        cur.file.seek(SeekFrom::Start(cur.offset))?;
        let mut reader = (&cur.file).take(want);
        let mut chunk = vec![0u8; 64 << 10];
        let mut line: Vec<u8> = Vec::new();
        // Bytes of the current line (kept or not), to rewind to its start.
        let mut line_len: u64 = 0;
        let mut consumed: u64 = 0;
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut rest = &chunk[..n];
            while !rest.is_empty() {
                let (part, ended) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], true),
                    None => (rest, false),
                };
                rest = &rest[(part.len() + usize::from(ended))..];
                line_len += (part.len() + usize::from(ended)) as u64;
                let room = self.max_line.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                if ended {
                    if !std::mem::take(&mut cur.mid_line) {
                        self.match_line(&line, scan);
                    }
                    consumed += line_len;
                    line.clear();
                    line_len = 0;
                }
            }
        }
        scan.bytes += consumed;
        if line_len > 0 {
            // A last line without its newline.
            if drain || line_len >= self.max_line as u64 {
                if !cur.mid_line {
                    self.match_line(&line, scan);
                }
                consumed += line_len;
                scan.bytes += line_len;
                cur.mid_line = !drain;
            }
        }
        cur.offset += consumed;
        Ok(())
    }

    fn match_line(&self, raw: &[u8], scan: &mut Scan) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        let hits: Vec<usize> = self
            .signatures
            .iter()
            .enumerate()
            .filter(|(_, (_, re, _))| re.is_match(text))
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            return;
        }
        for &i in &hits {
            scan.counts[i] += 1;
        }
        scan.last = Some((text.to_string(), hits));
    }

    fn add_totals(&self, scan: &Scan, state: &mut State) {
        for (t, c) in state.totals.iter_mut().zip(&scan.counts) {
            *t += c;
        }
    }

    /// The outcome of a run that read `scan`.
    fn judge(&self, shown: &str, scan: Scan, state: &mut State) -> Outcome {
        self.add_totals(&scan, state);
        let total: u64 = scan.counts.iter().sum();
        let mut over = Vec::new();
        let mut seen = Vec::new();
        for (i, (name, _, own)) in self.signatures.iter().enumerate() {
            let n = scan.counts[i];
            let bound = own.or(if self.max_total.is_none() {
                Some(0)
            } else {
                None
            });
            if n > 0 {
                seen.push(format!("{n} new `{name}`"));
            }
            if let Some(b) = bound
                && n > b
            {
                over.push(format!(
                    "{n} new {} `{name}` (at most {b} allowed)",
                    if n == 1 {
                        "line matches"
                    } else {
                        "lines match"
                    }
                ));
            }
        }
        if let Some(b) = self.max_total
            && total > b
        {
            over.push(format!(
                "{total} new matching line{} in all (at most {b} allowed)",
                plural(total)
            ));
        }
        let mut notes = scan.notes.clone();
        if scan.skipped > 0 {
            notes.push(format!(
                "skipped the oldest {}: more than the {} read per run (max_read_bytes) were written",
                units::bytes(scan.skipped),
                units::bytes(self.max_read)
            ));
        }
        let mut message = if over.is_empty() {
            if seen.is_empty() {
                format!(
                    "{shown}: no new matching line ({} new)",
                    units::bytes(scan.bytes)
                )
            } else {
                format!("{shown}: {} (within bounds)", seen.join(", "))
            }
        } else {
            let mut m = format!("{shown}: {}", over.join(", "));
            if let Some((line, hits)) = &scan.last {
                let names: Vec<&str> = hits
                    .iter()
                    .map(|&i| self.signatures[i].0.as_str())
                    .collect();
                m.push_str(&format!(
                    "; last ({}): \"{}\"",
                    names.join(", "),
                    cut(&crate::redact::redact(line), QUOTE_CHARS)
                ));
            }
            m
        };
        for n in &notes {
            message.push_str("; ");
            message.push_str(n);
        }
        let samples = self.samples(state);
        let mut observations = vec![format!("read {} bytes of {shown}", scan.bytes)];
        observations.extend(notes);
        let outcome = if over.is_empty() {
            Outcome::ok(message)
        } else {
            Outcome::fail(Reason::AssertionFailed, message)
        };
        outcome
            .with_value(total as f64)
            .with_samples(samples)
            .with_observations(observations)
    }

    /// `healthprobe_log_matches_total` for every signature.
    fn samples(&self, state: &State) -> Vec<Sample> {
        self.signatures
            .iter()
            .zip(&state.totals)
            .map(|((name, _, _), t)| Sample {
                family: &LOG_MATCHES,
                labels: vec![("signature", name.clone())],
                value: *t as f64,
            })
            .collect()
    }

    fn missing(&self, shown: &str, state: &State) -> Outcome {
        let what = match &self.target {
            Target::Path(_) => format!("{shown} does not exist"),
            Target::Glob(_) => format!("no file matches {shown}"),
        };
        let samples = self.samples(state);
        let outcome = if self.missing_ok {
            Outcome::ok(format!("{what} (yet): nothing logged")).with_value(0.0)
        } else {
            Outcome::fail(
                Reason::NotFound,
                format!(
                    "{what} (is the path right? set `missing_ok: true` if the app creates it on its first error)"
                ),
            )
        };
        outcome.with_samples(samples)
    }
}

impl Scan {
    fn empty(inner: &Inner) -> Scan {
        Scan {
            counts: vec![0; inner.signatures.len()],
            ..Scan::default()
        }
    }
}

/// Opens a file for following: the descriptor, its identity and size.
fn open(path: &PathBuf) -> io::Result<(File, (u64, u64), u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, (meta.dev(), meta.ino()), meta.len()))
}

/// Whether `offset` falls inside a line (the byte before it is not a
/// newline): reading from there starts with the tail of a cut line.
fn inside_line(file: &File, offset: u64) -> bool {
    let mut before = [0u8; 1];
    offset > 0 && (file.read_exact_at(&mut before, offset - 1).is_err() || before[0] != b'\n')
}

fn cannot_open(shown: &str, e: &io::Error) -> Outcome {
    let reason = match e.kind() {
        io::ErrorKind::InvalidInput => Reason::AssertionFailed,
        _ => Reason::from_io(e),
    };
    Outcome::fail(reason, format!("cannot read {shown}: {e}"))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The first `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testing;
    use std::io::Write;

    fn check(dir: &std::path::Path, extra: &str) -> LogCheck {
        testing::build::<LogCheck>(&format!(
            "path: {}/app.log\nsignatures:\n  - {{ name: boom, regex: BOOM }}\n  - {{ name: warn, regex: WARN, max_new_matches: 5 }}\n{extra}",
            dir.display()
        ))
        .ok()
        .unwrap()
    }

    fn append(path: &std::path::Path, text: &str) {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "old BOOM\n");
        let c = check(dir.path(), "");
        assert!(c.inner.step().success());
        append(&log, "a BO");
        let o = c.inner.step();
        assert!(o.success(), "{}", o.message);
        append(&log, "OM here\n");
        let o = c.inner.step();
        assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
        assert!(o.message.contains("\"a BOOM here\""), "{}", o.message);
        assert_eq!(o.value, Some(1.0));
    }

    #[test]
    fn long_lines_are_cut_and_matched_on_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "");
        let c = check(dir.path(), "max_line_bytes: 10\n");
        c.inner.step();
        // BOOM beyond the cut is not seen; the next line is read normally.
        append(&log, &format!("{}BOOM\nWARN ok\n", "x".repeat(40)));
        let o = c.inner.step();
        assert!(o.success(), "{}", o.message);
        assert_eq!(o.value, Some(1.0));
        // An unterminated line over the cap is consumed, its tail dropped.
        append(&log, &format!("WARN{}", "y".repeat(30)));
        assert_eq!(c.inner.step().value, Some(1.0));
        append(&log, "yyyy BOOM\nBOOM\n");
        let o = c.inner.step();
        assert_eq!(o.value, Some(1.0), "{}", o.message);
    }

    #[test]
    fn build_errors_name_their_fields() {
        let (_, paths) = testing::build_errors::<LogCheck>(
            "path: /x\nglob: /y*\nsignatures:\n  - { name: a, regex: '(' }\n  - { name: a, regex: x }\nmax_read_bytes: 10\n",
        );
        assert_eq!(
            paths,
            [
                "glob",
                "signatures[0].regex",
                "signatures[1].name",
                "max_read_bytes",
                "max_line_bytes"
            ]
        );
    }
}
