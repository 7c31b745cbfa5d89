//! Bad configuration: one fixture per validation rule under
//! `tests/fixtures/invalid/`, each starting with `# expect: LINE:COL: path: message`
//! (a prefix of the one error it must produce), plus the agent config, `--var`
//! and the rule that every error of a load is reported at once.

use std::path::{Path, PathBuf};

use healthprobe::config::{self, ConfigError, Options};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_dir(dir: &Path) -> Vec<ConfigError> {
    let opts = Options {
        checks_dirs: vec![dir.to_path_buf()],
        no_builtin: true,
        ..Default::default()
    };
    match config::load_with_env(&opts, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

/// The error without its file name: `LINE:COL: path: message`.
fn located(e: &ConfigError) -> String {
    let shown = e.to_string();
    shown
        .strip_prefix(&e.file)
        .unwrap_or(&shown)
        .trim_start_matches(':')
        .trim_start()
        .to_string()
}

#[test]
fn every_invalid_fixture_gives_its_exact_error() {
    let dir = fixtures().join("invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected a fixture per rule, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()))
            .to_string();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&file, tmp.path().join(file.file_name().unwrap())).unwrap();
        let errors = load_dir(tmp.path());
        let shown: Vec<String> = errors.iter().map(located).collect();
        if errors.len() != 1 || !shown[0].starts_with(&expect) {
            failures.push(format!(
                "{}:\n  expected: {expect}\n  got:      {shown:?}",
                file.display()
            ));
        }
        for e in &errors {
            assert!(
                e.file
                    .ends_with(&*file.file_name().unwrap().to_string_lossy()),
                "error names the file: {e}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let errors = load_dir(&fixtures().join("multi"));
    let shown: Vec<String> = errors.iter().map(located).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown[0].starts_with("6:5: checks[0].colour: unknown field `colour`"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("8:11: checks[1].kind: unknown variant `nope`"),
        "{shown:?}"
    );
    assert!(
        shown[2].starts_with("11:15: checks[2].interval: `5` has no unit"),
        "{shown:?}"
    );
}

fn agent_errors(yaml: &str, vars: &[&str]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("healthprobe.yaml");
    std::fs::write(&path, yaml).unwrap();
    let opts = Options {
        config: Some(path.clone()),
        vars: vars.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    match config::load_with_env(&opts, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| {
                    e.to_string()
                        .replace(&path.display().to_string(), "healthprobe.yaml")
                })
                .collect()
        }
    }
}

#[test]
fn agent_config_errors_are_located() {
    assert_eq!(
        agent_errors("packs:\n  hots: {}\n", &[]),
        vec![
            "healthprobe.yaml:2:3: packs.hots: no pack named `hots` (known packs: host, invoiceninja, mastodon, openhands)"
                .to_string()
        ]
    );
    assert_eq!(
        agent_errors("listen: nowhere\nconcurrency: 0\n", &[]),
        vec![
            "healthprobe.yaml:1:9: listen: `nowhere` is not an address like 127.0.0.1:9464 or [::1]:9464".to_string(),
            "healthprobe.yaml:2:14: concurrency: must be at least 1".to_string(),
        ]
    );
    assert_eq!(
        agent_errors("packs:\n  host:\n    vars: { rooot: /x }\n", &[]),
        vec!["healthprobe.yaml:3:13: packs.host.vars.rooot: pack `host` has no var `rooot` (it has: none)".to_string()]
    );
    assert_eq!(agent_errors("lisen: x\n", &[]), vec!["healthprobe.yaml:1:1: lisen: unknown field `lisen`, expected one of `listen`, `packs`, `checks_dirs`, `concurrency`, `probe`, `web_config_file`".to_string()]);
}

#[test]
fn var_flags_are_checked() {
    let errors = agent_errors(
        "packs: { host: {} }\n",
        &["novalue", "host.nope=1", "other.x=1", "nope=1"],
    );
    assert_eq!(
        errors,
        vec![
            "--var: `novalue` is not KEY=VALUE or PACK.KEY=VALUE".to_string(),
            "--var: `host.nope`: pack `host` has no var `nope` (it has: none)".to_string(),
            "--var: `other.x`: pack `other` is not enabled".to_string(),
            "--var: `nope`: no enabled pack has a var of that name".to_string(),
        ]
    );
}

/// Every check of every built-in pack loads: deserialized, interpolated and
/// validated like a user's pack, not just parsed. Checks switch themselves
/// off by the app's `.env` (a phantom PDF generator excludes snappdf, SMTP
/// with a login excludes the one without), so each pack is loaded with a
/// few `.env` files between which every check is on at least once.
#[test]
fn every_check_of_the_builtin_packs_loads() {
    let app = crate::support::tempdir("builtin-app");
    let docker_socket = app.path().join("docker.sock");
    std::fs::write(&docker_socket, "").unwrap();
    let root = app.path().to_str().unwrap();
    let invoiceninja_envs = [
        "QUEUE_CONNECTION=database\nINTERNAL_QUEUE_ENABLED=false\nPDF_GENERATOR=snappdf\n\
         MAIL_MAILER=smtp\nMAIL_USERNAME=ninja\nMAIL_PASSWORD=pw-3f9c1e-builtin-packs\nAPP_ENV=production\nAPP_DEBUG=false\n",
        "PDF_GENERATOR=phantom\nMAIL_MAILER=smtp\nMAIL_USERNAME=\n",
    ];
    let cases: [(&str, &str, &[&str], &[&str]); 4] = [
        ("host", "", &[""], &[]),
        (
            "invoiceninja",
            ".env",
            &invoiceninja_envs,
            &["pdf_url=http://127.0.0.1/x.pdf"],
        ),
        (
            "mastodon",
            ".env.production",
            &["RAILS_ENV=production\n"],
            &[],
        ),
        (
            "openhands",
            "",
            &[""],
            &["llm_base_url=http://127.0.0.1:8000/v1", "llm_model=m"],
        ),
    ];
    let sources: std::collections::HashMap<&str, &str> = healthprobe::config::load::BUILTIN_PACKS
        .iter()
        .copied()
        .collect();
    assert_eq!(sources.len(), cases.len(), "a case per built-in pack");
    for (pack, env_file, envs, vars) in cases {
        let text = sources[format!("{pack}.yaml").as_str()];
        let declared = text.lines().filter(|l| l.starts_with("  - name: ")).count();
        let mut loaded = std::collections::BTreeSet::new();
        for env in envs {
            if !env_file.is_empty() {
                std::fs::write(app.path().join(env_file), env).unwrap();
            }
            let mut all_vars: Vec<String> = vars.iter().map(|v| format!("{pack}.{v}")).collect();
            if pack != "host" {
                all_vars.push(format!("{pack}.root={root}"));
            }
            let opts = Options {
                packs: vec![pack.to_string()],
                vars: all_vars,
                ..Default::default()
            };
            let socket = docker_socket.to_str().unwrap().to_string();
            let env_lookup = move |k: &str| (k == "DOCKER_SOCKET").then(|| socket.clone());
            let got = match config::load_with_env(&opts, &env_lookup) {
                Ok(got) => got,
                Err(e) => panic!("{pack} with .env {env:?}: {e}"),
            };
            let ours = |p: &str| p == pack;
            let on = got.checks.iter().filter(|c| ours(&c.meta.pack)).count();
            let off = got.skipped.iter().filter(|s| ours(&s.pack)).count();
            assert_eq!(
                on + off,
                declared,
                "{pack}: every check is on or off, and says why"
            );
            loaded.extend(
                got.checks
                    .iter()
                    .filter(|c| ours(&c.meta.pack))
                    .map(|c| c.meta.name.clone()),
            );
        }
        assert_eq!(
            loaded.len(),
            declared,
            "{pack}: each check loaded at least once: {loaded:?}"
        );
    }
}

#[test]
fn a_bad_pack_header_does_not_hide_the_errors_of_its_checks() {
    let errors = load_dir(&fixtures().join("multi_header"));
    let shown: Vec<String> = errors.iter().map(located).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("2:23: defaults.interval: `30` has no unit"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("7:5: checks[0].severty: unknown field `severty`"),
        "{shown:?}"
    );
}
