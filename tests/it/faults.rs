//! Faults, through the real agent: things break on purpose while
//! `healthprobe run` schedules one check per fault every 500 ms with a 500 ms
//! timeout. The agent runs as a user who is not root (`hp-fault`, in the
//! Docker socket's group `hp-faultsock`), as it would in production, so that
//! a change of the socket's permissions is a fault it can see.
//!
//! For each fault the suite measures how long the agent takes to report the
//! expected reason in `/api/v1/checks` (time to detect, from the moment the
//! fault is set off, including the time it takes: dockerd's shutdown) and
//! to report success again once the fault is removed (time to recover, from
//! the moment the server is back and ready), and asserts both
//! within one interval plus the timeout, plus [`SLACK`] for polling and a
//! loaded machine. All along a monitor thread scrapes `/metrics`,
//! `/-/healthy` and `/api/v1/checks` every 100 ms and asserts that a scrape
//! is never held up by a probe, that no `healthprobe_check_duration_seconds`
//! ever exceeds its check's timeout, that no other check fails because of a
//! fault, and samples the agent's RSS (bounded while a target sends a
//! gigabyte or an endless body) and open descriptors.
//!
//! Every fault runs even when an earlier one failed; the test fails at the
//! end, after printing the matrix (`cargo test --test it faults --
//! --nocapture`), which is the `## Fault matrix` of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::agent::AgentProcess;
use crate::support::certs::{Certs, KeyPair};
use crate::support::dockerd::Dockerd;
use crate::support::http;
use crate::support::mariadb::Mariadb;
use crate::support::nginx::{Nginx, NginxOptions};
use crate::support::postgres::Postgres;
use crate::support::smtp::{Smtp, SmtpMode, SmtpOptions};
use crate::support::tempdir;

/// Every check's interval.
const INTERVAL: Duration = Duration::from_millis(500);
/// Every check's timeout.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Added to "one interval plus the timeout": API polling (20 ms), process
/// scheduling on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(500);
/// The agent's quiet time after a change to a watched file (watch.rs).
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How far a run's reported duration may exceed its timeout (the runner
/// stops it at the timeout; this is timer and scheduling latency).
const DURATION_MARGIN: Duration = Duration::from_millis(100);
/// The longest a scrape of `/metrics` or `/-/healthy` may take. A scrape
/// held up by a probe of the hanging or dripping target would take that
/// probe's whole timeout (500 ms). What is left below is CPU: in this debug
/// build a PostgreSQL login (SCRAM, computed on the runtime) takes 50 ms
/// idle and up to 450 ms on a loaded machine (5-15 ms in release), and the
/// slowest scrapes measured (100-320 ms) coincide with it.
const SCRAPE_BOUND: Duration = Duration::from_millis(400);
/// The most the agent's RSS may grow while a target sends a gigabyte.
const RSS_GROWTH_BOUND_KB: u64 = 64 << 10;
const PACK: &str = "f";

// ---------------------------------------------------------------------------
// Test servers that misbehave on demand.

/// What [`FaultyHttp`] does with the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum HttpMode {
    /// `200 OK`, body `ok\n`.
    Normal = 0,
    /// Reads the request, then says nothing until the client goes away.
    Hang = 1,
    /// Sends its response one byte a second.
    Drip = 2,
    /// `200 OK` with `Content-Length: 1 GiB`, sent as fast as it is read.
    Gigabyte = 3,
    /// `200 OK`, chunked, and the chunks never end.
    Endless = 4,
}

/// A TCP server on 127.0.0.1 that hands each connection to `handle` in a
/// thread of its own, until dropped.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(handle: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = Arc::new(handle);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (h, s) = (handle.clone(), s.clone());
                std::thread::spawn(move || h(conn, &s));
            }
        });
        Listener {
            port,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP/1.1 server whose behaviour is switched with [`FaultyHttp::set`].
struct FaultyHttp {
    listener: Listener,
    mode: Arc<AtomicU8>,
}

impl FaultyHttp {
    fn start() -> FaultyHttp {
        let mode = Arc::new(AtomicU8::new(HttpMode::Normal as u8));
        let m = mode.clone();
        FaultyHttp {
            listener: Listener::start(move |conn, stop| serve_http(conn, &m, stop)),
            mode,
        }
    }

    fn port(&self) -> u16 {
        self.listener.port
    }

    fn set(&self, mode: HttpMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

fn serve_http(mut conn: TcpStream, mode: &AtomicU8, stop: &AtomicBool) {
    let started = Instant::now();
    let mode = mode.load(Ordering::SeqCst);
    // Read the request head (the agent sends no body).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let give_up = |started: Instant| {
        stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60)
    };
    match mode {
        m if m == HttpMode::Hang as u8 => {
            // Hold the connection until the client closes it.
            let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
            while !give_up(started) {
                match conn.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }
        m if m == HttpMode::Drip as u8 => {
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n" {
                if give_up(started) || conn.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        m if m == HttpMode::Gigabyte as u8 => {
            let total: u64 = 1 << 30;
            let chunk = vec![b'x'; 1 << 16];
            if conn
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nContent-Type: text/plain\r\n\r\n").as_bytes())
                .is_err()
            {
                return;
            }
            let mut sent = 0u64;
            while sent < total && !give_up(started) {
                if conn.write_all(&chunk).is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
        }
        m if m == HttpMode::Endless as u8 => {
            let mut chunk = format!("{:x}\r\n", 1 << 16).into_bytes();
            chunk.extend(std::iter::repeat_n(b'x', 1 << 16));
            chunk.extend_from_slice(b"\r\n");
            if conn
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
                .is_err()
            {
                return;
            }
            while !give_up(started) {
                if conn.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        _ => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
            );
            let _ = conn.shutdown(Shutdown::Write);
            // Let the client read it all before the socket closes.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.read(&mut buf);
        }
    }
}

/// A TCP forwarder on 127.0.0.1 whose upstream port can be switched: new
/// connections go to the current upstream (the way a fault reaches a check
/// whose address does not change).
struct SwitchProxy {
    listener: Listener,
    upstream: Arc<AtomicU16>,
}

impl SwitchProxy {
    fn start(upstream: u16) -> SwitchProxy {
        let up = Arc::new(AtomicU16::new(upstream));
        let u = up.clone();
        SwitchProxy {
            listener: Listener::start(move |client, _| {
                if let Ok(server) = TcpStream::connect(("127.0.0.1", u.load(Ordering::SeqCst))) {
                    pipe(client, server);
                }
            }),
            upstream: up,
        }
    }

    fn switch_to(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
    }
}

/// Copies both ways; the end of one direction is passed on as a half-close.
fn pipe(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

// ---------------------------------------------------------------------------
// The monitor: scrapes all along.

#[derive(Default)]
struct Seen {
    /// (when, how long) of each scrape of `/metrics`.
    metrics: Vec<(Instant, Duration)>,
    /// Same for `/-/healthy`.
    healthy: Vec<(Instant, Duration)>,
    /// (when, VmRSS in KiB, open descriptors).
    process: Vec<(Instant, u64, usize)>,
    /// (when, check, reason) for every failing state seen.
    failing: Vec<(Instant, String, String)>,
    /// The longest duration reported per check.
    longest: BTreeMap<String, f64>,
    /// Runs past their timeout: (check, duration, timeout).
    overruns: Vec<(String, f64, f64)>,
    /// Scrapes that did not answer.
    errors: Vec<String>,
}

impl Seen {
    /// Notes a run's duration (from `/metrics` or `/api/v1/checks`).
    fn run_took(&mut self, check: String, took: f64, timeout: f64) {
        let longest = self.longest.entry(check.clone()).or_insert(0.0);
        *longest = longest.max(took);
        if took > timeout + DURATION_MARGIN.as_secs_f64()
            && !self
                .overruns
                .iter()
                .any(|(c, v, _)| *c == check && *v == took)
        {
            self.overruns.push((check, took, timeout));
        }
    }
}

struct Monitor {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    fn start(base: String, pid: u32) -> Monitor {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut timeouts: BTreeMap<String, f64> = BTreeMap::new();
            while !st.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let scrape = |path: &str| {
                    let t = Instant::now();
                    let r = http::get(&format!("{base}{path}"));
                    (t, t.elapsed(), r)
                };
                let (t, took, metrics) = scrape("/metrics");
                let (th, took_h, healthy) = scrape("/-/healthy");
                let (_, _, api) = scrape("/api/v1/checks");
                let rss = vm_rss_kb(pid);
                let fds = open_fds(pid);
                let mut seen = s.lock().unwrap();
                seen.metrics.push((t, took));
                seen.healthy.push((th, took_h));
                if let (Some(rss), Some(fds)) = (rss, fds) {
                    seen.process.push((t, rss, fds));
                }
                match api {
                    Ok(r) if r.status == 200 => {
                        for c in r.json()["checks"].as_array().into_iter().flatten() {
                            let name = c["name"].as_str().unwrap_or_default().to_string();
                            if let Some(to) = c["timeout_seconds"].as_f64() {
                                timeouts.insert(name.clone(), to);
                            }
                            if c["state"] == "failing" {
                                let reason = c["reason"].as_str().unwrap_or_default().to_string();
                                seen.failing.push((t, name, reason));
                            }
                        }
                    }
                    Ok(r) => seen
                        .errors
                        .push(format!("/api/v1/checks: status {}", r.status)),
                    Err(e) => seen.errors.push(format!("/api/v1/checks: {e}")),
                }
                match metrics {
                    Ok(r) if r.status == 200 => {
                        for (check, d) in durations(&r.text()) {
                            let to = timeouts
                                .get(&check)
                                .copied()
                                .unwrap_or(TIMEOUT.as_secs_f64());
                            seen.run_took(check, d, to);
                        }
                    }
                    Ok(r) => seen.errors.push(format!("/metrics: status {}", r.status)),
                    Err(e) => seen.errors.push(format!("/metrics: {e}")),
                }
                if !matches!(&healthy, Ok(r) if r.status == 200) {
                    seen.errors
                        .push(format!("/-/healthy: {:?}", healthy.map(|r| r.status)));
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
            }
        });
        Monitor {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `healthprobe_check_duration_seconds` of every check of [`PACK`].
fn durations(metrics: &str) -> Vec<(String, f64)> {
    let prefix = format!("healthprobe_check_duration_seconds{{pack=\"{PACK}\",check=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (check, rest) = rest.split_once('"')?;
            Some((check.to_string(), rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn max_in(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> Duration {
    samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default()
}

fn rss_max_in(samples: &[(Instant, u64, usize)], from: Instant, to: Instant) -> u64 {
    samples
        .iter()
        .filter(|(t, _, _)| *t >= from && *t <= to)
        .map(|(_, r, _)| *r)
        .max()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The suite.

/// One fault to measure.
struct Fault<'a> {
    /// What breaks, as the matrix shows it.
    what: &'a str,
    /// The check that must see it.
    check: &'a str,
    /// The reason it must report.
    reason: &'a str,
    /// Detection and recovery must each happen within this.
    bound: Duration,
    /// The target floods the agent: bound its RSS while it lasts.
    memory: bool,
}

/// One row of the matrix.
struct Row {
    what: String,
    check: String,
    reason: String,
    message: String,
    detect: Option<Duration>,
    recover: Option<Duration>,
    scrape_max: Duration,
    notes: Vec<String>,
    problems: Vec<String>,
}

impl Row {
    fn new(what: &str, check: &str) -> Row {
        Row {
            what: what.to_string(),
            check: check.to_string(),
            reason: String::new(),
            message: String::new(),
            detect: None,
            recover: None,
            scrape_max: Duration::ZERO,
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// What the monitor saw between `began` and `ended`: the slowest scrape
    /// (bounded), and checks other than `check` failing (none allowed).
    fn judge_window(&mut self, seen: &Seen, began: Instant, ended: Instant) {
        self.scrape_max =
            max_in(&seen.metrics, began, ended).max(max_in(&seen.healthy, began, ended));
        if self.scrape_max > SCRAPE_BOUND {
            self.problems.push(format!(
                "a scrape took {:?} during the fault",
                self.scrape_max
            ));
        }
        let mut others: Vec<String> = seen
            .failing
            .iter()
            .filter(|(t, name, _)| *t >= began && *t <= ended && *name != self.check)
            .map(|(_, name, reason)| format!("{name}: {reason}"))
            .collect();
        others.sort();
        others.dedup();
        if !others.is_empty() {
            self.problems.push(format!(
                "other checks failed during the fault: {}",
                others.join(", ")
            ));
        }
    }
}

struct Suite {
    agent: AgentProcess,
    monitor: Monitor,
    rows: Vec<Row>,
}

impl Suite {
    fn api_check(&self, name: &str) -> Value {
        let api = self.agent.get("/api/v1/checks").json();
        api["checks"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["pack"] == PACK && c["name"] == name))
            .cloned()
            .unwrap_or_default()
    }

    /// Polls until `pred` holds for the check; the time it took and the view.
    fn until(
        &self,
        name: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<(Duration, Value), Value> {
        let started = Instant::now();
        loop {
            let c = self.api_check(name);
            // The monitor scrapes every 100 ms; a run's duration shows until
            // the next run ends, which can be sooner: note it here too.
            if let (Some(d), Some(to)) = (
                c["duration_seconds"].as_f64(),
                c["timeout_seconds"].as_f64(),
            ) {
                self.monitor.seen().run_took(name.to_string(), d, to);
            }
            if pred(&c) {
                return Ok((started.elapsed(), c));
            }
            if started.elapsed() > within {
                return Err(c);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.agent
            .get("/metrics")
            .text()
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits until every check of the pack passes (before a fault).
    fn steady(&self, within: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let api = self.agent.get("/api/v1/checks").json();
            let not: Vec<String> = api["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["pack"] == PACK && c["state"] != "passing")
                .map(|c| format!("{} {} ({})", c["name"], c["state"], c["message"]))
                .collect();
            if not.is_empty() {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(format!(
                    "not every check passes before the fault: {}",
                    not.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Injects a fault, measures detection, removes it, measures recovery.
    fn measure(&mut self, f: Fault<'_>, inject: impl FnOnce(), remove: impl FnOnce()) -> &mut Row {
        let mut row = Row::new(f.what, f.check);
        if let Err(e) = self.steady(Duration::from_secs(20)) {
            row.problems.push(e);
        }
        let began = Instant::now();
        inject();
        let injected = began.elapsed();
        if injected > Duration::from_millis(100) {
            row.notes.push(format!(
                "injecting took {:.1} s, counted in the time to detect",
                injected.as_secs_f64()
            ));
        }
        // Poll for the expected reason; note any other failure seen first.
        let first_other = Mutex::new(None::<String>);
        let detected = self.until(f.check, f.bound + Duration::from_secs(10), |c| {
            if c["state"] == "failing" && c["reason"] != f.reason {
                first_other
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| c["reason"].as_str().unwrap_or("?").to_string());
            }
            c["state"] == "failing" && c["reason"] == f.reason
        });
        match detected {
            Ok((_, c)) => {
                let took = began.elapsed();
                row.reason = f.reason.to_string();
                row.message = c["message"].as_str().unwrap_or_default().to_string();
                row.detect = Some(took);
                if took > f.bound {
                    row.problems.push(format!(
                        "detected in {took:?}, over the bound of {:?}",
                        f.bound
                    ));
                }
            }
            Err(c) => {
                row.reason = format!(
                    "{} (not {})",
                    c["reason"].as_str().unwrap_or("none"),
                    f.reason
                );
                row.message = c["message"].as_str().unwrap_or_default().to_string();
                row.problems
                    .push(format!("never reported `{}`: last seen {c}", f.reason));
            }
        }
        if let Some(other) = first_other.into_inner().unwrap() {
            row.notes.push(format!("first reported `{other}`"));
        }
        let removing = Instant::now();
        remove();
        let removed = Instant::now();
        if removed - removing > Duration::from_millis(100) {
            row.notes.push(format!(
                "removing took {:.1} s (until the server was ready), not counted",
                (removed - removing).as_secs_f64()
            ));
        }
        match self.until(f.check, f.bound + Duration::from_secs(10), |c| {
            c["state"] == "passing"
        }) {
            Ok((took, _)) => {
                row.recover = Some(took);
                if took > f.bound {
                    row.problems.push(format!(
                        "recovered in {took:?}, over the bound of {:?}",
                        f.bound
                    ));
                }
            }
            Err(c) => row.problems.push(format!("did not recover: {c}")),
        }
        let ended = Instant::now();
        row.judge_window(&self.monitor.seen(), began, ended);
        self.rows.push(row);
        self.rows.last_mut().unwrap()
    }

    /// Like [`Suite::measure`] for a target that floods the agent: also
    /// bounds the agent's RSS growth while it lasts.
    fn measure_memory(&mut self, f: Fault<'_>, inject: impl FnOnce(), remove: impl FnOnce()) {
        let began = Instant::now();
        let before = rss_max_in(
            &self.monitor.seen().process,
            began - Duration::from_secs(3),
            began,
        );
        // Keep the flood on for a few more runs once it is detected.
        self.measure(f, inject, || {
            std::thread::sleep(Duration::from_secs(3));
            remove();
        });
        let ended = Instant::now();
        let (during, after) = {
            let seen = self.monitor.seen();
            (
                rss_max_in(&seen.process, began, ended),
                seen.process.last().map(|p| p.1).unwrap_or_default(),
            )
        };
        let row = self.rows.last_mut().unwrap();
        row.notes.push(format!(
            "RSS {} MiB before, {} MiB at most during, {} MiB after",
            before >> 10,
            during >> 10,
            after >> 10
        ));
        if during > before + RSS_GROWTH_BOUND_KB {
            row.problems.push(format!(
                "RSS grew from {before} KiB to {during} KiB (bound: +{RSS_GROWTH_BOUND_KB} KiB)"
            ));
        }
    }
}

fn sh(script: &str) -> bool {
    Command::new("sh")
        .args(["-c", script])
        .status()
        .is_ok_and(|s| s.success())
}

fn sh_out(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The user `hp-fault` and the group `hp-faultsock` (created if missing):
/// (uid, gid, socket group's gid). useradd/groupadd are retried: another
/// test may hold the lock on /etc/passwd.
fn fault_user() -> (u32, u32, u32) {
    let retry = |check: &str, make: &str| {
        for _ in 0..20 {
            if sh(check) || sh(make) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("cannot run `{make}`");
    };
    retry(
        "getent group hp-faultsock >/dev/null",
        "groupadd --system hp-faultsock",
    );
    retry(
        "id hp-fault >/dev/null 2>&1",
        "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin hp-fault",
    );
    let n = |s: &str| {
        s.parse::<u32>()
            .unwrap_or_else(|_| panic!("not a number: {s}"))
    };
    (
        n(&sh_out("id -u hp-fault")),
        n(&sh_out("id -g hp-fault")),
        n(&sh_out("getent group hp-faultsock | cut -d: -f3")),
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Replaces `path` with `text` in one step (a rename), as editors do.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    chmod(&tmp, 0o644);
    std::fs::rename(&tmp, path).unwrap();
}

fn append(path: &Path, line: &str) {
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
    chmod(path, 0o644);
}

/// Copies a key pair to `dir/NAME.{crt,key}` (the files nginx serves).
fn install_pair(pair: &KeyPair, dir: &Path) -> KeyPair {
    let served = KeyPair {
        cert: dir.join("served.crt"),
        key: dir.join("served.key"),
        chain: dir.join("served.crt"),
    };
    std::fs::copy(&pair.chain, &served.chain).unwrap();
    std::fs::copy(&pair.key, &served.key).unwrap();
    served
}

struct Servers {
    mariadb: Mariadb,
    postgres: Postgres,
    dockerd: Dockerd,
    smtp: Smtp,
    smtp_drop: Smtp,
    nginx: Nginx,
}

/// Starts every server at once (they take seconds each).
fn start_servers(tls_dir: &Path) -> Servers {
    let certs = Certs::shared();
    let served = install_pair(&certs.leaf, tls_dir);
    std::thread::scope(|s| {
        let mariadb = s.spawn(Mariadb::start);
        let postgres = s.spawn(Postgres::start);
        let dockerd = s.spawn(|| {
            let mut d = Dockerd::start();
            // The socket's group, set by dockerd itself at every start.
            std::fs::write(
                d.dir().join("daemon.json"),
                "{\"group\": \"hp-faultsock\"}\n",
            )
            .unwrap();
            d.start_again();
            d
        });
        let smtp = s.spawn(|| {
            Smtp::start(SmtpOptions {
                tls: Some(certs.leaf.clone()),
                ..Default::default()
            })
        });
        let smtp_drop = s.spawn(|| {
            Smtp::start(SmtpOptions {
                tls: Some(certs.leaf.clone()),
                mode: SmtpMode::DropAfterBanner,
                ..Default::default()
            })
        });
        let nginx = Nginx::start_with(NginxOptions {
            server: "location / { return 200 \"ok\\n\"; }".into(),
            tls: Some(served),
            ..Default::default()
        });
        Servers {
            mariadb: mariadb.join().unwrap(),
            postgres: postgres.join().unwrap(),
            dockerd: dockerd.join().unwrap(),
            smtp: smtp.join().unwrap(),
            smtp_drop: smtp_drop.join().unwrap(),
            nginx,
        }
    })
}

struct Pack<'a> {
    servers: &'a Servers,
    http: u16,
    dns_target: u16,
    smtp_proxy: u16,
    log: &'a Path,
    ca: &'a Path,
}

impl Pack<'_> {
    /// The pack file; `dns_host` is the host of the `resolve` check.
    fn yaml(&self, dns_host: &str) -> String {
        let s = self.servers;
        format!(
            r#"pack: {PACK}
title: Faults
vars: {{ dns_host: "{dns_host}" }}
defaults: {{ interval: {interval}ms, timeout: {timeout}ms }}
checks:
  - name: mariadb
    kind: mysql
    mysql: {{ url: "mysql://app@127.0.0.1:{mariadb}/app", password: "{pw}", query: SELECT 1 }}
  - name: postgres
    kind: postgres
    postgres: {{ url: "postgres://app@127.0.0.1:{postgres}/app", password: "{pw}", query: SELECT 1 }}
  - name: docker
    kind: docker
    docker: {{ host: "{docker}" }}
  - name: http
    kind: http
    http:
      url: http://127.0.0.1:{http}/
      expect: {{ status: [200], body_starts_with: "ok" }}
  - name: tls
    kind: http
    http:
      url: {tls_url}
      tls: {{ ca_file: {ca} }}
  - name: resolve
    kind: http
    http: {{ url: "http://${{dns_host}}:{dns_target}/" }}
  - name: smtp
    kind: smtp
    smtp: {{ host: 127.0.0.1, port: {smtp}, tls: {{ ca_file: {ca} }} }}
  - name: log
    kind: log
    log:
      path: {log}
      signatures: [ {{ name: fatal, regex: FATAL }} ]
"#,
            interval = INTERVAL.as_millis(),
            timeout = TIMEOUT.as_millis(),
            mariadb = s.mariadb.port(),
            postgres = s.postgres.port(),
            pw = crate::support::mariadb::PASSWORD,
            docker = s.dockerd.host(),
            http = self.http,
            tls_url = s.nginx.url("/"),
            ca = self.ca.display(),
            dns_target = self.dns_target,
            smtp = self.smtp_proxy,
            log = self.log.display(),
        )
    }
}

/// The fault matrix: every fault of issue 7 against one running agent.
#[test]
fn faults_are_detected_within_interval_plus_timeout_and_recovered_from() {
    let (uid, gid, sock_gid) = fault_user();
    let base = tempdir("faults");
    chmod(base.path(), 0o755);
    let checks = base.path().join("checks");
    let logs = base.path().join("logs");
    let tls_dir = base.path().join("tls");
    for d in [&checks, &logs, &tls_dir] {
        std::fs::create_dir(d).unwrap();
        chmod(d, 0o755);
    }
    let log = logs.join("app.log");
    for i in 0..64 {
        append(
            &log,
            &format!("INFO request {i} served in 12 ms, nothing to see here\n"),
        );
    }

    let servers = start_servers(&tls_dir);
    let certs = Certs::shared();
    let target = FaultyHttp::start();
    let dns_target = FaultyHttp::start();
    let proxy = SwitchProxy::start(servers.smtp.port());
    let pack = Pack {
        servers: &servers,
        http: target.port(),
        dns_target: dns_target.port(),
        smtp_proxy: proxy.listener.port,
        log: &log,
        ca: &certs.ca.cert,
    };
    let good = pack.yaml("127.0.0.1");
    let broken_dns = pack.yaml("db.invalid");
    let servers = std::cell::RefCell::new(servers);
    write_atomically(&checks.join("f.yaml"), &good);

    let agent = AgentProcess::start_as(
        uid,
        gid,
        &[sock_gid],
        &["--checks", checks.to_str().unwrap()],
    );
    let pid = agent.process().pid();
    let monitor = Monitor::start(agent.url(), pid);
    let mut suite = Suite {
        agent,
        monitor,
        rows: Vec::new(),
    };
    let bound = INTERVAL + TIMEOUT + SLACK;
    let fault = |what, check, reason| Fault {
        what,
        check,
        reason,
        bound,
        memory: false,
    };
    let suite_started = Instant::now();

    // Each fault: what breaks, the check that must see it, the reason, how
    // to break it and how to put it right.
    type Action<'a> = Box<dyn FnOnce() + 'a>;
    let sock = servers.borrow().dockerd.socket_path();
    let (smtp_port, drop_port) = (
        servers.borrow().smtp.port(),
        servers.borrow().smtp_drop.port(),
    );
    let target = &target;
    let http = |mode: HttpMode| -> [Action<'_>; 2] {
        [
            Box::new(move || target.set(mode)),
            Box::new(move || target.set(HttpMode::Normal)),
        ]
    };
    let servers = &servers;
    let on = |f: fn(&mut Servers)| -> Action<'_> { Box::new(move || f(&mut servers.borrow_mut())) };
    let cert = |pair: &'static KeyPair| -> Action<'_> {
        Box::new(|| {
            install_pair(pair, &tls_dir);
            servers.borrow_mut().nginx.start_again();
        })
    };
    let memory = |f: Fault<'static>| Fault { memory: true, ..f };
    let edited = |f: Fault<'static>| Fault {
        bound: DEBOUNCE + f.bound,
        ..f
    };
    let pack_file = checks.join("f.yaml");
    #[rustfmt::skip]
    let table: Vec<(Fault<'_>, [Action<'_>; 2])> = vec![
        (fault("MariaDB killed (SIGKILL), then restarted", "mariadb", "connection_refused"),
            [on(|s| s.mariadb.kill()), on(|s| s.mariadb.start_again())]),
        (fault("PostgreSQL killed (SIGKILL), then restarted", "postgres", "connection_refused"),
            [on(|s| s.postgres.kill()), on(|s| s.postgres.start_again())]),
        (fault("dockerd stopped (SIGTERM: socket removed), then started", "docker", "not_found"),
            [on(|s| s.dockerd.stop()), on(|s| s.dockerd.start_again())]),
        (fault("dockerd killed (SIGKILL: stale socket), then started", "docker", "connection_refused"),
            [on(|s| s.dockerd.kill()), on(|s| s.dockerd.start_again())]),
        (fault("Docker socket chmod 0600 (agent in its group, not owner), then 0660", "docker", "permission_denied"),
            [Box::new(|| chmod(&sock, 0o600)), Box::new(|| chmod(&sock, 0o660))]),
        (fault("HTTP target accepts, reads the request, never answers", "http", "timeout"),
            http(HttpMode::Hang)),
        (fault("HTTP target drips its response, a byte a second", "http", "timeout"),
            http(HttpMode::Drip)),
        (memory(fault("HTTP target sends a 1 GiB body (Content-Length)", "http", "assertion_failed")),
            http(HttpMode::Gigabyte)),
        (memory(fault("HTTP target sends an endless chunked body", "http", "assertion_failed")),
            http(HttpMode::Endless)),
        (fault("TLS certificate expired (nginx restarted with it), then renewed", "tls", "tls_error"),
            [cert(&certs.expired), cert(&certs.leaf)]),
        (edited(fault("host name unresolvable (`db.invalid`, pack file edited), then fixed", "resolve", "dns_error")),
            [Box::new(|| write_atomically(&pack_file, &broken_dns)), Box::new(|| write_atomically(&pack_file, &good))]),
        (fault("SMTP server drops the connection after its banner", "smtp", "protocol_error"),
            [Box::new(|| proxy.switch_to(drop_port)), Box::new(|| proxy.switch_to(smtp_port))]),
    ];
    for (f, [inject, remove]) in table {
        if f.memory {
            suite.measure_memory(f, inject, remove);
        } else {
            suite.measure(f, inject, remove);
        }
    }

    // --- Log files. ---
    let fatal_lines = 2.0;
    suite.measure(
        fault("log rotated by rename, no new file yet", "log", "not_found"),
        || std::fs::rename(&log, logs.join("app.log.1")).unwrap(),
        || append(&log, "INFO reopened\n"),
    );
    suite
        .measure(
            fault(
                "log rotated by rename, FATAL written to the new file",
                "log",
                "assertion_failed",
            ),
            || {
                std::fs::rename(&log, logs.join("app.log.2")).unwrap();
                append(&log, "FATAL after rotation\n");
            },
            || {},
        )
        .notes
        .push("recovered: the next run, with no new match".into());
    for i in 0..64 {
        append(
            &log,
            &format!("INFO request {i} served in 12 ms, nothing to see here\n"),
        );
    }
    std::thread::sleep(INTERVAL * 2);
    suite
        .measure(
            fault(
                "log truncated in place (copytruncate), FATAL written",
                "log",
                "assertion_failed",
            ),
            || {
                std::fs::File::options()
                    .write(true)
                    .truncate(true)
                    .open(&log)
                    .unwrap();
                append(&log, "FATAL after truncation\n");
            },
            || {},
        )
        .notes
        .push("recovered: the next run, with no new match".into());
    let counted = suite
        .metric(&format!(
            "healthprobe_log_matches_total{{pack=\"{PACK}\",check=\"log\",signature=\"fatal\"}}"
        ))
        .unwrap_or(0.0);
    if counted != fatal_lines {
        suite.rows.last_mut().unwrap().problems.push(format!(
            "healthprobe_log_matches_total counts {counted} FATAL lines, {fatal_lines} were written"
        ));
    }

    // --- The checks directory vanishes, then comes back. ---
    suite.rows.push(checks_dir_vanishes(&suite, &checks, &good));

    let total = suite_started.elapsed();
    suite.monitor.finish();
    let seen = suite.monitor.seen();
    let mut problems: Vec<String> = Vec::new();
    eprintln!(
        "\n## Fault matrix (interval {INTERVAL:?}, timeout {TIMEOUT:?}; bound: interval + timeout + {SLACK:?} slack)\n"
    );
    eprintln!(
        "| fault | check | reason reported | time to detect | time to recover | slowest scrape |"
    );
    eprintln!("|---|---|---|---|---|---|");
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "—".into())
    };
    for r in &suite.rows {
        eprintln!(
            "| {} | {} | `{}` | {} | {} | {:.0} ms |",
            r.what,
            r.check,
            r.reason,
            secs(r.detect),
            secs(r.recover),
            r.scrape_max.as_secs_f64() * 1000.0
        );
        for p in &r.problems {
            problems.push(format!("{}: {p}", r.what));
        }
    }
    eprintln!("\nMessages:");
    for r in &suite.rows {
        eprintln!(
            "- {} → `{}`: {}{}",
            r.what,
            r.reason,
            r.message,
            if r.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.notes.join("; "))
            }
        );
    }
    let pct = |v: &[(Instant, Duration)], p: f64| {
        let mut d: Vec<Duration> = v.iter().map(|x| x.1).collect();
        d.sort();
        d.get(((d.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "\nOver {:.0} s: {} scrapes of /metrics (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms), {} of /-/healthy (max {:.1} ms)",
        total.as_secs_f64(),
        seen.metrics.len(),
        ms(pct(&seen.metrics, 0.5)),
        ms(pct(&seen.metrics, 0.99)),
        ms(pct(&seen.metrics, 1.0)),
        seen.healthy.len(),
        ms(pct(&seen.healthy, 1.0)),
    );
    eprintln!(
        "Longest run per check (timeout {TIMEOUT:?}): {}",
        seen.longest
            .iter()
            .map(|(c, d)| format!("{c} {:.3} s", d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(first), Some(last)) = (seen.process.first(), seen.process.last()) {
        let peak = seen.process.iter().map(|p| p.1).max().unwrap_or_default();
        let fd_peak = seen.process.iter().map(|p| p.2).max().unwrap_or_default();
        eprintln!(
            "Agent RSS {} MiB at start, {} MiB at most, {} MiB at the end; open descriptors {} at start, {} at most, {} at the end",
            first.1 >> 10,
            peak >> 10,
            last.1 >> 10,
            first.2,
            fd_peak,
            last.2
        );
        if last.2 > first.2 + 10 {
            problems.push(format!(
                "open descriptors grew from {} to {}",
                first.2, last.2
            ));
        }
    }
    for (check, d, to) in &seen.overruns {
        problems.push(format!(
            "{check} reported a run of {d:.3} s, past its timeout of {to} s"
        ));
    }
    for e in seen.errors.iter().take(5) {
        problems.push(format!("a scrape failed: {e}"));
    }
    if !suite.agent.process().is_running() {
        problems.push("the agent is not running any more".into());
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\nagent log:\n{}",
        problems.len(),
        problems.join("\n"),
        suite.agent.log_tail(40)
    );
}

/// `--checks DIR` is removed while the agent runs: the reload fails and is
/// reported, the last good config keeps running; once the directory is back
/// (written elsewhere, renamed into place) the agent reloads it by itself.
fn checks_dir_vanishes(suite: &Suite, checks: &Path, good: &str) -> Row {
    let mut row = Row::new(
        "checks directory removed (`rm -rf`), then put back",
        "(config)",
    );
    let bound = DEBOUNCE + SLACK + Duration::from_millis(700);
    let reload_ok = "healthprobe_config_last_reload_successful";
    let wait_reload = |want: f64| {
        let started = Instant::now();
        while started.elapsed() < bound + Duration::from_secs(10) {
            if suite.metric(reload_ok) == Some(want) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    };
    let runs = || {
        let c = suite.api_check("mariadb");
        c["runs_success"].as_u64().unwrap_or(0) + c["runs_failure"].as_u64().unwrap_or(0)
    };
    let checks_before = suite.agent.get("/api/v1/checks").json()["checks"]
        .as_array()
        .map_or(0, Vec::len);
    let began = Instant::now();
    std::fs::remove_dir_all(checks).unwrap();
    row.detect = wait_reload(0.0);
    match row.detect {
        Some(d) => {
            row.reason = format!("{reload_ok} 0");
            if d > bound {
                row.problems.push(format!(
                    "the failed reload took {d:?} to show, over {bound:?}"
                ));
            }
        }
        None => {
            row.reason = format!("{reload_ok} {:?}", suite.metric(reload_ok));
            row.problems
                .push("the failed reload was never reported".into());
        }
    }
    // The last good config keeps running.
    let before = runs();
    std::thread::sleep(INTERVAL * 3);
    let after = runs();
    if after < before + 2 {
        row.problems.push(format!(
            "the checks stopped running without their directory ({before} runs, then {after})"
        ));
    }
    let now = suite.agent.get("/api/v1/checks").json()["checks"]
        .as_array()
        .map_or(0, Vec::len);
    if now != checks_before {
        row.problems.push(format!(
            "{checks_before} checks before, {now} without the directory"
        ));
    }
    row.message = suite
        .agent
        .log_tail(20)
        .lines()
        .rfind(|l| l.contains("configuration rejected"))
        .map(strip_ansi)
        .unwrap_or_else(|| "no `configuration rejected` in the log".into());
    // Put it back the way a deployment would: written aside, renamed in.
    let aside = checks.with_file_name("checks.new");
    std::fs::create_dir(&aside).unwrap();
    chmod(&aside, 0o755);
    write_atomically(&aside.join("f.yaml"), good);
    std::fs::rename(&aside, checks).unwrap();
    row.recover = wait_reload(1.0);
    match row.recover {
        Some(d) if d > bound => row.problems.push(format!(
            "the reload took {d:?} once the directory was back, over {bound:?}"
        )),
        Some(_) => {}
        None => row
            .problems
            .push("the agent did not reload the directory once it was back".into()),
    }
    row.judge_window(&suite.monitor.seen(), began, Instant::now());
    row
}

/// Regression (the "checks directory vanishes" fault): a checks directory
/// removed and put back is a new directory, which was never watched again:
/// the agent kept reporting the failed reload (and ignored every later
/// edit) until SIGHUP. Now its parent is watched for it and watches are set
/// again before each reload.
#[test]
fn checks_directory_vanishes_then_comes_back_and_is_watched_again() {
    let base = tempdir("faults-dir");
    let checks = base.path().join("checks");
    let pack = |names: &[&str]| {
        let mut s =
            format!("pack: {PACK}\ndefaults: {{ interval: 200ms, timeout: 100ms }}\nchecks:\n");
        for n in names {
            s.push_str(&format!(
                "  - name: {n}\n    kind: file\n    file: {{ path: / }}\n"
            ));
        }
        s
    };
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(checks.join("f.yaml"), pack(&["one"])).unwrap();
    let agent = AgentProcess::start(&["--checks", checks.to_str().unwrap()]);
    let reload_ok = |a: &AgentProcess| {
        a.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("healthprobe_config_last_reload_successful "))
            .map(str::to_string)
    };
    let names = |a: &AgentProcess| -> Vec<String> {
        a.get("/api/v1/checks").json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !f() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}\n{}",
                agent.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    std::fs::remove_dir_all(&checks).unwrap();
    wait("the failed reload", &|| {
        reload_ok(&agent).as_deref() == Some("0")
    });
    assert_eq!(names(&agent), ["one"], "the last good config keeps running");

    // Put back the plain way (mkdir, then write), with one more check.
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(checks.join("f.yaml"), pack(&["one", "two"])).unwrap();
    wait("the directory to be reloaded", &|| {
        reload_ok(&agent).as_deref() == Some("1") && names(&agent).len() == 2
    });
    // And it is watched again: a later edit is picked up too.
    std::fs::write(checks.join("f.yaml"), pack(&["one", "two", "three"])).unwrap();
    wait("an edit in the new directory", &|| names(&agent).len() == 3);
}
