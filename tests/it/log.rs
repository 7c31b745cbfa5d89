//! The `log` kind on real files: following from the end, counting appended
//! signature lines, rotation by rename, truncation, Laravel's daily files and
//! the per-run read limit on a 50 MB log.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use healthprobe::checks::{Outcome, Reason};

use crate::probe_util::{assert_outcome, probe, run_probe as run};

/// `healthprobe_log_matches_total{signature=name}` in the outcome.
fn counter(o: &Outcome, name: &str) -> f64 {
    o.samples
        .iter()
        .find(|s| {
            s.family.name == "healthprobe_log_matches_total"
                && s.labels == [("signature", name.to_string())]
        })
        .unwrap_or_else(|| panic!("no sample for {name}: {:?}", o.samples))
        .value
}

fn append(path: &Path, text: &str) {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn laravel_check(locator: &str) -> String {
    format!(
        r#"
name: laravel_log
kind: log
log:
  {locator}
  signatures:
    - {{ name: signal_5, regex: 'signal "?5"?' }}
    - {{ name: max_allowed_packet, regex: "Got a packet bigger than 'max_allowed_packet'" }}
    - {{ name: flock, regex: 'flock\(\) expects parameter 1' }}
"#
    )
}

const SIGNAL5: &str = "[2024-05-02 10:00:00] production.ERROR: The process has been signaled with signal \"5\". {\"exception\":\"[object] (Symfony\\\\Component\\\\Process\\\\Exception\\\\ProcessSignaledException(code: 0)\"}\n";
const PACKET: &str = "[2024-05-02 10:00:01] production.ERROR: SQLSTATE[08S01]: Communication link failure: 1153 Got a packet bigger than 'max_allowed_packet' bytes\n";
const INFO: &str = "[2024-05-02 10:00:02] production.INFO: invoice 42 sent\n";

#[tokio::test]
async fn old_lines_are_not_news_and_new_ones_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    append(&log, SIGNAL5);
    append(&log, PACKET);
    let p = probe(&laravel_check(&format!("path: {}", log.display())));

    let first = run(&p).await;
    assert!(first.success(), "{}", first.message);
    assert!(
        first.message.contains("started at its end"),
        "{}",
        first.message
    );
    assert_eq!(first.value, Some(0.0));
    assert_eq!(counter(&first, "signal_5"), 0.0);

    let quiet = run(&p).await;
    assert!(quiet.success(), "{}", quiet.message);
    assert!(
        quiet.message.contains("no new matching line"),
        "{}",
        quiet.message
    );

    append(&log, INFO);
    append(&log, SIGNAL5);
    append(&log, INFO);
    append(&log, SIGNAL5);
    append(&log, PACKET);
    let o = run(&p).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert_eq!(o.value, Some(3.0));
    assert!(
        o.message
            .contains("2 new lines match `signal_5` (at most 0 allowed)"),
        "{}",
        o.message
    );
    assert!(
        o.message
            .contains("1 new line matches `max_allowed_packet`"),
        "{}",
        o.message
    );
    assert!(
        o.message.contains(
            "last (max_allowed_packet): \"[2024-05-02 10:00:01] production.ERROR: SQLSTATE[08S01]"
        ),
        "{}",
        o.message
    );
    assert_eq!(counter(&o, "signal_5"), 2.0);
    assert_eq!(counter(&o, "flock"), 0.0);

    // The counter is cumulative; the check's value is this run's news.
    append(&log, SIGNAL5);
    let o = run(&p).await;
    assert_eq!(o.value, Some(1.0));
    assert_eq!(counter(&o, "signal_5"), 3.0);
    assert_eq!(counter(&o, "max_allowed_packet"), 1.0);
    let o = run(&p).await;
    assert!(o.success(), "{}", o.message);
    assert_eq!(counter(&o, "signal_5"), 3.0);
}

#[tokio::test]
async fn bounds_per_signature_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "");
    let p = probe(&format!(
        r#"
name: errors
kind: log
log:
  path: {}
  max_new_matches: 3
  signatures:
    - {{ name: error, regex: ERROR }}
    - {{ name: fatal, regex: FATAL, max_new_matches: 0 }}
"#,
        log.display()
    ));
    run(&p).await;
    append(&log, "ERROR a\nERROR b\n");
    let o = run(&p).await;
    assert!(o.success(), "{}", o.message);
    assert!(
        o.message.contains("2 new `error` (within bounds)"),
        "{}",
        o.message
    );
    append(&log, "ERROR a\nERROR b\nERROR c\nERROR d\n");
    let o = run(&p).await;
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert!(
        o.message
            .contains("4 new matching lines in all (at most 3 allowed)"),
        "{}",
        o.message
    );
    append(&log, "FATAL x\n");
    let o = run(&p).await;
    assert!(
        o.message
            .contains("1 new line matches `fatal` (at most 0 allowed)"),
        "{}",
        o.message
    );
}

#[tokio::test]
async fn rotation_finishes_the_old_file_then_reads_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    append(&log, INFO);
    let p = probe(&laravel_check(&format!("path: {}", log.display())));
    run(&p).await;

    // logrotate renames the file; the app still holds it open and writes one
    // more line before it reopens the path, which is a new file.
    let mut writer = File::options().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("laravel.log.1")).unwrap();
    writer.write_all(SIGNAL5.as_bytes()).unwrap();
    drop(writer);
    append(&log, PACKET);

    let o = run(&p).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert_eq!(o.value, Some(2.0), "{}", o.message);
    assert!(o.message.contains("was rotated"), "{}", o.message);
    assert_eq!(counter(&o, "signal_5"), 1.0);
    assert_eq!(counter(&o, "max_allowed_packet"), 1.0);

    // Then the new file is followed incrementally.
    append(&log, SIGNAL5);
    let o = run(&p).await;
    assert_eq!(o.value, Some(1.0), "{}", o.message);
    assert!(!o.message.contains("rotated"), "{}", o.message);
}

#[tokio::test]
async fn truncation_reads_again_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    for _ in 0..20 {
        append(&log, INFO);
    }
    let p = probe(&laravel_check(&format!("path: {}", log.display())));
    run(&p).await;
    // copytruncate: same inode, emptied, then written again.
    File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, SIGNAL5);
    let o = run(&p).await;
    assert_eq!(o.value, Some(1.0), "{}", o.message);
    assert!(o.message.contains("truncated"), "{}", o.message);
}

#[tokio::test]
async fn laravel_daily_files_follow_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("storage/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let day = |d: u32| logs.join(format!("laravel-2024-05-{d:02}.log"));
    append(&day(1), SIGNAL5);
    std::thread::sleep(Duration::from_millis(20));
    append(&day(2), INFO);
    let p = probe(&laravel_check(&format!(
        "glob: {}/laravel-*.log",
        logs.display()
    )));
    let o = run(&p).await;
    assert!(
        o.message.contains("laravel-2024-05-02.log"),
        "{}",
        o.message
    );

    // A line in an older day is not followed; the newest one is.
    append(&day(2), PACKET);
    let o = run(&p).await;
    assert_eq!(o.value, Some(1.0), "{}", o.message);
    assert_eq!(counter(&o, "max_allowed_packet"), 1.0);

    // Midnight: a last line goes to day 2, then day 3 starts and is read whole.
    append(&day(2), SIGNAL5);
    std::thread::sleep(Duration::from_millis(20));
    append(&day(3), SIGNAL5);
    append(&day(3), INFO);
    let o = run(&p).await;
    assert_eq!(o.value, Some(2.0), "{}", o.message);
    assert!(
        o.message.contains("laravel-2024-05-03.log"),
        "{}",
        o.message
    );
    assert_eq!(counter(&o, "signal_5"), 2.0);
}

#[tokio::test]
async fn a_50_mb_burst_is_read_only_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    append(&log, INFO);
    let p = probe(&laravel_check(&format!("path: {}", log.display())));
    run(&p).await;

    // 50 MB written between two runs: a match at the start (skipped) and one
    // at the end (read).
    let mut f = File::options().append(true).open(&log).unwrap();
    f.write_all(SIGNAL5.as_bytes()).unwrap();
    let filler = INFO.repeat(1000);
    let mut written = SIGNAL5.len();
    while written < 50_000_000 {
        f.write_all(filler.as_bytes()).unwrap();
        written += filler.len();
    }
    f.write_all(PACKET.as_bytes()).unwrap();
    drop(f);

    let start = Instant::now();
    let o = run(&p).await;
    let took = start.elapsed();
    assert_eq!(o.value, Some(1.0), "{}", o.message);
    assert_eq!(counter(&o, "signal_5"), 0.0);
    assert_eq!(counter(&o, "max_allowed_packet"), 1.0);
    assert!(o.message.contains("skipped the oldest"), "{}", o.message);
    let read: u64 = o.observations[0]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(read <= 8 << 20, "read {read} bytes");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn missing_files_and_quoted_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    let p = probe(&laravel_check(&format!("path: {}", log.display())));
    let o = run(&p).await;
    assert_eq!(o.reason, Reason::NotFound);
    assert!(o.message.contains("does not exist"), "{}", o.message);

    let p = probe(&laravel_check(&format!(
        "path: {}\n  missing_ok: true",
        log.display()
    )));
    let o = run(&p).await;
    assert!(o.success(), "{}", o.message);
    // A log that appears after the first run is all news.
    let long = format!(
        "GET /update?secret=hunter2-in-a-log {} signal 5 {}\n",
        "x".repeat(150),
        "y".repeat(300)
    );
    append(&log, &long);
    let o = run(&p).await;
    assert_eq!(o.reason, Reason::AssertionFailed, "{}", o.message);
    assert!(!o.message.contains("hunter2"), "{}", o.message);
    assert!(o.message.contains("secret=<redacted>"), "{}", o.message);
    let quoted = o.message.split("\"").nth(1).unwrap();
    assert!(quoted.chars().count() <= 201, "{quoted}");
    assert!(quoted.ends_with('…'), "{quoted}");

    let glob = probe(&laravel_check(&format!(
        "glob: {}/nothing-*.log",
        dir.path().display()
    )));
    let o = run(&glob).await;
    assert_eq!(o.reason, Reason::NotFound);
    assert!(o.message.contains("no file matches"), "{}", o.message);
}

/// `healthprobe check` runs a check once: `initial_tail_bytes` lets that one
/// run look at the end of the log. Lines before the window, and the line the
/// window cuts, do not count.
#[tokio::test]
async fn initial_tail_reads_the_end_on_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("laravel.log");
    append(&log, SIGNAL5);
    append(&log, SIGNAL5);
    for _ in 0..50 {
        append(&log, INFO);
    }
    append(&log, PACKET);
    let window = INFO.len() * 2 + PACKET.len() + 10; // cuts an INFO line
    let p = probe(&laravel_check(&format!(
        "path: {}\n  initial_tail_bytes: {window}",
        log.display()
    )));
    let o = run(&p).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "1 new line matches `max_allowed_packet`",
            "first run: read the last",
        ],
    );
    assert_eq!(counter(&o, "signal_5"), 0.0);
    assert_eq!(o.value, Some(1.0));
    let o = run(&p).await;
    assert!(o.success(), "{}", o.message);
}
