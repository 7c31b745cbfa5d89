//! The `binary` kind on real ELF programs built here with `gcc`: libraries
//! found through `$ORIGIN` (RUNPATH and RPATH, whose rules differ) and then
//! deleted, snappdf's `revision.txt` layout, the owner, execute permission as
//! `www-data`, smoke runs that exit, trap (signal 5) or hang, and files that
//! are not programs. The tests run as root.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use healthprobe::checks::Reason;

use crate::probe_util::{assert_outcome, build_errors, hp_other, run};

const LIBBAR: &str = "int bar(void) { return 40; }\n";
const LIBFOO: &str = "extern int bar(void);\nint foo(void) { return bar() + 2; }\n";
const PROG: &str = r#"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern int foo(void);
int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "uid") == 0) return getuid() == (uid_t) atoi(argv[2]) ? 0 : 3;
    if (argc > 1 && strcmp(argv[1], "trap") == 0) raise(SIGTRAP);
    if (argc > 1 && strcmp(argv[1], "sleep") == 0) sleep(60);
    if (argc > 1 && strcmp(argv[1], "fail") == 0) { write(2, "cannot open display\n", 20); return 7; }
    return foo() == 42 ? 0 : 1;
}
"#;

/// `gcc ARGS` in `dir`, panicking with its output on failure.
fn gcc(dir: &Path, args: &[&str]) {
    let out = Command::new("gcc")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("gcc is installed");
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Built once per test run: `prog-runpath` and `prog-rpath` (linked with
/// `$ORIGIN/lib`, as DT_RUNPATH and DT_RPATH) and `lib/libfoo.so`, which
/// needs `lib/libbar.so` and has no search path of its own.
fn built() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("lib")).unwrap();
        std::fs::write(d.join("bar.c"), LIBBAR).unwrap();
        std::fs::write(d.join("foo.c"), LIBFOO).unwrap();
        std::fs::write(d.join("prog.c"), PROG).unwrap();
        gcc(d, &["-shared", "-fPIC", "-o", "lib/libbar.so", "bar.c"]);
        gcc(
            d,
            &[
                "-shared",
                "-fPIC",
                "-o",
                "lib/libfoo.so",
                "foo.c",
                "-Llib",
                "-lbar",
            ],
        );
        for (name, tags) in [
            ("prog-runpath", "-Wl,--enable-new-dtags"),
            ("prog-rpath", "-Wl,--disable-new-dtags"),
        ] {
            gcc(
                d,
                &[
                    "-o",
                    name,
                    "prog.c",
                    "-Llib",
                    "-lfoo",
                    "-Wl,-rpath-link,lib",
                    "-Wl,-rpath,$ORIGIN/lib",
                    tags,
                ],
            );
        }
        dir
    })
    .path()
}

/// A fresh copy of the built programs in a directory `www-data` can enter.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = built();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    for f in [
        "prog-runpath",
        "prog-rpath",
        "lib/libfoo.so",
        "lib/libbar.so",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

/// Runs a check of the binary at `path`, with more lines of its block.
async fn run_path(path: &Path, more: &str) -> healthprobe::checks::Outcome {
    run(&check(&format!("  path: {}\n{more}", path.display()))).await
}

fn check(block: &str) -> String {
    format!("name: chrome\nkind: binary\ntimeout: 10s\nbinary:\n{block}")
}

#[tokio::test]
async fn libraries_found_through_origin_then_deleted() {
    let dir = fixture();
    let prog = dir.path().join("prog-rpath");
    let c = check(&format!("  path: {}\n", prog.display()));
    let o = run(&c).await;
    assert!(o.success(), "{}", o.message);
    assert_eq!(o.value, Some(0.0));
    let lib = dir.path().join("lib");
    for expected in [
        format!("libfoo.so => {}/libfoo.so", lib.display()),
        // libfoo has no search path: the program's RPATH serves it too.
        format!("libbar.so => {}/libbar.so", lib.display()),
    ] {
        assert!(
            o.observations.contains(&expected),
            "{expected}: {:?}",
            o.observations
        );
    }
    assert!(
        o.observations
            .iter()
            .any(|s| s.starts_with("libc.so.6 => /")),
        "{:?}",
        o.observations
    );

    std::fs::remove_file(lib.join("libfoo.so")).unwrap();
    let o = run(&c).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["libfoo.so not found (needed by prog-rpath)"],
    );
    assert_eq!(o.value, Some(1.0));
}

/// DT_RUNPATH applies to the object that carries it only, so libfoo's own
/// need, libbar, is not found: the dynamic loader agrees (the smoke run
/// cannot start), and the message names the library and who needs it.
#[tokio::test]
async fn runpath_is_not_inherited_and_the_loader_agrees() {
    let dir = fixture();
    let prog = dir.path().join("prog-runpath");
    let o = run_path(
        &prog,
        "  expect: { libraries_resolve: false }\n  smoke: { timeout: 5s }\n",
    )
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["exited with 127, expected 0"],
    );
    assert!(o.message.contains("libbar.so"), "{}", o.message);

    let o = run_path(&prog, "").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["libbar.so not found (needed by libfoo.so)"],
    );
    assert_eq!(o.value, Some(1.0));
}

/// Our resolution matches the real loader's (`ldd`) on real programs.
#[tokio::test]
async fn agrees_with_ldd() {
    let dir = fixture();
    let mut programs = vec![dir.path().join("prog-rpath")];
    for p in [
        "/usr/lib/chromium/chromium",
        "/usr/sbin/mariadbd",
        "/usr/sbin/nginx",
        "/usr/bin/ssh",
        "/usr/bin/python3",
    ] {
        if Path::new(p).exists() {
            programs.push(PathBuf::from(p));
        }
    }
    for prog in programs {
        let ldd = Command::new("ldd")
            .arg(&prog)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        let mut expected: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.trim().split_once(" => ")?;
                let path = rest.split(" (").next()?;
                Some(format!("{name} => {path}"))
            })
            .collect();
        let started = std::time::Instant::now();
        let o = run_path(&prog, "").await;
        eprintln!(
            "{}: {} libraries in {:?}",
            prog.display(),
            expected.len(),
            started.elapsed()
        );
        assert!(o.success(), "{}: {}", prog.display(), o.message);
        let mut ours: Vec<String> = o
            .observations
            .iter()
            .filter(|s| s.contains(" => "))
            .cloned()
            .collect();
        expected.sort();
        ours.sort();
        assert_eq!(ours, expected, "{}", prog.display());
    }
}

#[tokio::test]
async fn snappdf_revision_file_layout() {
    let dir = fixture();
    let snappdf = dir.path().join("vendor/beganovich/snappdf");
    let chrome_dir = snappdf.join("versions/1045629/chrome-linux");
    std::fs::create_dir_all(chrome_dir.join("lib")).unwrap();
    std::fs::copy(dir.path().join("prog-rpath"), chrome_dir.join("chrome")).unwrap();
    for lib in ["libfoo.so", "libbar.so"] {
        std::fs::copy(
            dir.path().join("lib").join(lib),
            chrome_dir.join("lib").join(lib),
        )
        .unwrap();
    }
    let revision = snappdf.join("versions/revision.txt");
    std::fs::write(&revision, "1045629\n").unwrap();

    // Relative to the file's directory.
    let from_file = format!(
        "  path_from_file:\n    file: {}\n    template: \"{{content}}/chrome-linux/chrome\"\n",
        revision.display()
    );
    let o = run(&check(&from_file)).await;
    assert!(o.success(), "{}", o.message);
    assert!(
        o.message.contains("versions/1045629/chrome-linux/chrome"),
        "{}",
        o.message
    );

    // Relative to a root, as the snappdf package lays it out.
    let o = run(&check(&format!(
        "  path_from_file:\n    file: {}\n    root: {}\n    template: versions/{{content}}/chrome-linux/chrome\n",
        revision.display(),
        snappdf.display()
    )))
    .await;
    assert!(o.success(), "{}", o.message);

    // `path_from_env` empty (SNAPPDF_CHROMIUM_PATH unset): the file is used;
    // set: the app's own path wins.
    let o = run(&check(&format!("  path_from_env: \"\"\n{from_file}"))).await;
    assert!(o.success(), "{}", o.message);
    let o = run(&check(&format!(
        "  path_from_env: {}/nowhere/chrome\n{from_file}",
        dir.path().display()
    )))
    .await;
    assert_outcome(&o, Reason::NotFound, &["nowhere/chrome does not exist"]);

    // A revision that was never downloaded, and garbage in the file.
    std::fs::write(&revision, "1100000\n").unwrap();
    let o = run(&check(&from_file)).await;
    assert_outcome(
        &o,
        Reason::NotFound,
        &["versions/1100000/chrome-linux/chrome does not exist"],
    );
    assert!(o.message.contains("named by"), "{}", o.message);
    std::fs::write(&revision, "../../../../bin/sh").unwrap();
    let o = run(&check(&from_file)).await;
    assert_outcome(
        &o,
        Reason::ProtocolError,
        &["should hold one line naming a version"],
    );

    // Chrome's libraries missing on the host (the guide's libatk).
    std::fs::write(&revision, "1045629").unwrap();
    std::fs::remove_file(chrome_dir.join("lib/libfoo.so")).unwrap();
    let o = run(&check(&from_file)).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["libfoo.so not found (needed by chrome)"],
    );
}

#[tokio::test]
async fn owner_and_execute_permission_as_www_data() {
    let dir = fixture();
    let prog = dir.path().join("prog-rpath");
    let c = check(&format!(
        "  path: {}\n  expect: {{ owner: www-data, executable_by: www-data }}\n",
        prog.display()
    ));

    // Downloaded by another user: wrong owner (the guide's "signal 5").
    let other = healthprobe::support::users::lookup_user(hp_other()).unwrap();
    chown(&prog, Some(other.uid), None).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run(&c).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["is owned by hp-other, not www-data"],
    );
    assert!(o.message.contains("chown -R www-data:"), "{}", o.message);

    let www = healthprobe::support::users::lookup_user("www-data").unwrap();
    chown(&prog, Some(www.uid), None).unwrap();
    let o = run(&c).await;
    assert!(o.success(), "{}", o.message);
    assert!(
        o.observations
            .contains(&"access(X_OK) as www-data: allowed".to_string())
    );

    // Root's private binary: www-data may not execute it.
    chown(&prog, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = run_path(&prog, "  expect: { executable_by: www-data }\n").await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &["is not executable by www-data"],
    );
    assert!(
        o.message.contains("owned by root:root, mode 0700"),
        "{}",
        o.message
    );

    // Executable, but in a directory www-data cannot enter.
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = run_path(&prog, "  expect: { executable_by: www-data }\n").await;
    assert_outcome(
        &o,
        Reason::PermissionDenied,
        &[&format!(
            "{}: Permission denied (a directory owned by root:root, mode 0700)",
            dir.path().display()
        )],
    );
}

#[tokio::test]
async fn smoke_runs_as_the_user_and_names_signals() {
    let dir = fixture();
    let prog = dir.path().join("prog-rpath");
    let smoke = |args: &str, extra: &str| {
        check(&format!(
            "  path: {}\n  expect: {{ executable_by: www-data }}\n  smoke: {{ args: {args}, timeout: 2s{extra} }}\n",
            prog.display()
        ))
    };
    // It really runs as www-data (uid 33 makes it exit 0).
    let o = run(&smoke("[uid, \"33\"]", "")).await;
    assert!(o.success(), "{}", o.message);
    assert!(
        o.observations
            .iter()
            .any(|s| s.ends_with("uid 33` as www-data exited with 0")),
        "{:?}",
        o.observations
    );
    let o = run(&smoke("[uid, \"0\"]", "")).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["as www-data exited with 3, expected 0"],
    );

    let o = run(&smoke("[trap]", "")).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["was killed by signal 5 (SIGTRAP)"],
    );

    let o = run(&smoke("[fail]", "")).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["exited with 7, expected 0; stderr: \"cannot open display\""],
    );
    let o = run(&smoke("[fail]", ", expect_exit: 7")).await;
    assert!(o.success(), "{}", o.message);

    let started = std::time::Instant::now();
    let o = run(&smoke("[sleep]", "")).await;
    assert_outcome(&o, Reason::Timeout, &["did not finish within 2s"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn files_that_are_not_programs() {
    let dir = fixture();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\x13\x37 this is not a program at all\n").unwrap();
    let o = run_path(&garbage, "").await;
    assert_outcome(
        &o,
        Reason::ProtocolError,
        &["neither an ELF binary nor a `#!` script (it starts with bytes 13 37 20 74)"],
    );

    let elf = std::fs::read(dir.path().join("prog-rpath")).unwrap();
    for len in [3, 20, 63, 64, 200, 1000, elf.len() / 2] {
        let cut = dir.path().join(format!("cut-{len}"));
        std::fs::write(&cut, &elf[..len]).unwrap();
        let o = run_path(&cut, "").await;
        assert!(
            matches!(o.reason, Reason::ProtocolError | Reason::AssertionFailed),
            "{len}: {:?} {}",
            o.reason,
            o.message
        );
        assert!(
            o.message.contains("damaged ELF") || o.message.contains("not a program"),
            "{len}: {}",
            o.message
        );
    }

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let o = run_path(&empty, "").await;
    assert_outcome(&o, Reason::ProtocolError, &["it is empty"]);

    // A script: libraries do not apply; the smoke run still does.
    let script = dir.path().join("snappdf");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run_path(&script, "  smoke: {}\n").await;
    assert!(o.success(), "{}", o.message);
    assert!(
        o.observations
            .iter()
            .any(|s| s.contains("is a script (#!/bin/sh)")),
        "{:?}",
        o.observations
    );

    let o = run_path(dir.path(), "").await;
    assert_outcome(&o, Reason::AssertionFailed, &["is not a regular file"]);
}

#[tokio::test]
async fn globs_first_or_all_matches_and_absence() {
    let dir = fixture();
    let c = |extra: &str| check(&format!("  glob: {}/prog-*\n{extra}", dir.path().display()));
    // First match in path order: prog-rpath (prog-runpath would fail).
    let o = run(&c("")).await;
    assert!(o.success(), "{}", o.message);
    assert!(o.message.contains("prog-rpath"), "{}", o.message);
    let o = run(&c("  all: true\n")).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["libbar.so not found (needed by libfoo.so)"],
    );

    let o = run(&check(&format!(
        "  glob: {}/chrome-*\n",
        dir.path().display()
    )))
    .await;
    assert_outcome(&o, Reason::NotFound, &["no file matches"]);
    let o = run(&check(&format!(
        "  path: {}/old-chrome\n  expect: {{ exists: false }}\n",
        dir.path().display()
    )))
    .await;
    assert!(o.success(), "{}", o.message);
    let o = run(&check(&format!(
        "  path: {}/prog-rpath\n  expect: {{ exists: false }}\n",
        dir.path().display()
    )))
    .await;
    assert_outcome(&o, Reason::AssertionFailed, &["exists, but must not"]);
}

#[test]
fn build_errors_name_the_fields() {
    let errs = build_errors(&check(
        "  path: /a\n  glob: /b*\n  all: true\n  expect: { exists: false, owner: www-data }\n  smoke: { timeout: 30s }\n",
    ));
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "binary.glob",
            "binary.expect.owner",
            "binary.smoke",
            "binary.smoke.timeout"
        ],
        "{errs:?}"
    );
    let errs = build_errors(&check("  expect: { owner: www-data }\n"));
    assert!(
        errs[0].message.contains("say where the binary is"),
        "{errs:?}"
    );
    let errs = build_errors(&check(
        "  path_from_file: { file: /v/revision.txt, template: chrome }\n",
    ));
    assert_eq!(errs[0].path, "binary.path_from_file.template");
}
