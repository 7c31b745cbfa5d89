//! The `config` kind: assertions on an application's own configuration file,
//! a Laravel `.env`, a TOML file (OpenHands' `config.toml`) or a JSON file.
//!
//! The guides' fixes are often one line of configuration: `UPDATE_SECRET` must
//! be set, `MAIL_FROM_ADDRESS` must not be the shipped `hello@example.com`,
//! OpenHands needs `file_store="local"` with an absolute `file_store_path`.
//! Each assertion names a key and what must hold; every failing assertion is
//! reported in one message, so one run lists everything to fix.
//!
//! Values of secret-looking keys ([`crate::redact::is_secret_key`]) are never
//! quoted, in messages or observations: "`UPDATE_SECRET` is empty" is fine to
//! say, the value of a set secret is not.
//!
//! Keys: in a `.env` the variable's name; in TOML and JSON a dotted path
//! (`core.file_store`, `servers.0.url`) or a JSON pointer (`/core/file_store`).
//! Settings that may live in more than one place (OpenHands accepts
//! `file_store` at the top level or under `[core]`) list the other places in
//! `or_keys`: the first key present is the one asserted on.

use std::path::{Path, PathBuf};

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext, compile_regex};
use crate::config::dotenv;
use crate::redact::is_secret_key;
use crate::support::paths;

/// Configuration files larger than this are refused (none of the real ones
/// comes close; a huge file is a mistake in `path`).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The `config:` block.
///
/// ```yaml
/// config:
///   path: ${root}/.env
///   assertions:
///     - { key: UPDATE_SECRET, not_empty: true }
///     - { key: MAIL_FROM_ADDRESS, not_default: hello@example.com }
///     - { key: QUEUE_CONNECTION, one_of: [database, redis] }
/// ```
/// ```yaml
/// config:
///   path: ${root}/config.toml
///   assertions:
///     - { key: core.file_store, or_keys: [file_store], equals: local }
///     - { key: core.file_store_path, or_keys: [file_store_path], absolute_path: true }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// The file: absolute, or relative to the pack file's directory.
    pub path: String,
    /// How to read it: `env`, `toml` or `json`. Default from the name: `.env`,
    /// `*.env` and `.env.*` are `env`, `*.toml` is `toml`, `*.json` is `json`.
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// What must hold. All are evaluated; every failing one is reported.
    pub assertions: Vec<ConfigAssertion>,
}

/// A configuration file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigFormat {
    /// A Laravel-style `.env` (`KEY=value`, quotes, `#` comments).
    Env,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl ConfigFormat {
    fn as_str(self) -> &'static str {
        match self {
            ConfigFormat::Env => "env",
            ConfigFormat::Toml => "toml",
            ConfigFormat::Json => "json",
        }
    }

    /// The format a file name implies, if any.
    fn from_name(path: &Path) -> Option<ConfigFormat> {
        let name = path.file_name()?.to_str()?;
        if name == ".env" || name.ends_with(".env") || name.starts_with(".env.") {
            Some(ConfigFormat::Env)
        } else if name.ends_with(".toml") {
            Some(ConfigFormat::Toml)
        } else if name.ends_with(".json") {
            Some(ConfigFormat::Json)
        } else {
            None
        }
    }
}

/// One assertion on one key. With only `key`, the key must be present. When
/// the key is absent, every assertion but `present: false` fails.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigAssertion {
    /// The key: a variable name in a `.env`; a dotted path (`core.file_store`)
    /// or a JSON pointer (`/core/file_store`) in TOML and JSON.
    pub key: String,
    /// Other places the same setting may be written, tried in order when `key`
    /// is absent (OpenHands: `core.file_store`, else top-level `file_store`).
    #[serde(default)]
    pub or_keys: Vec<String>,
    /// `true`: the key must be set; `false`: it must not be (then no other
    /// assertion is allowed).
    #[serde(default)]
    pub present: Option<bool>,
    /// The value must be exactly this (numbers and booleans compare as written
    /// in JSON: `3306`, `true`).
    #[serde(default)]
    pub equals: Option<String>,
    /// The value must not be this.
    #[serde(default)]
    pub not_equals: Option<String>,
    /// The value must match this regular expression (unanchored: use `^...$`).
    #[serde(default)]
    pub matches: Option<String>,
    /// The value must be one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// The value the application ships with, which a real install must change
    /// (`MAIL_FROM_ADDRESS: hello@example.com`, PhantomJS's demo key).
    #[serde(default)]
    pub not_default: Option<String>,
    /// The value must be an absolute path (`file_store_path`).
    #[serde(default)]
    pub absolute_path: bool,
    /// The value must not be empty (blank strings, `null`, `[]` and `{}` are empty).
    #[serde(default)]
    pub not_empty: bool,
}

/// A prepared `config` check.
pub struct ConfigCheck {
    path: PathBuf,
    format: ConfigFormat,
    assertions: Vec<Prepared>,
}

struct Prepared {
    spec: ConfigAssertion,
    matches: Option<Regex>,
}

impl Check for ConfigCheck {
    type Spec = ConfigSpec;

    fn build(spec: &ConfigSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let path = paths::resolve("path", &spec.path, ctx)
            .map_err(|e| errors.push(e))
            .unwrap_or_default();
        let format = spec.format.or_else(|| ConfigFormat::from_name(&path));
        if format.is_none() && !spec.path.is_empty() {
            errors.push(FieldError::new(
                "path",
                format!(
                    "cannot tell the format of `{}` from its name: set `format` (env, toml or json)",
                    spec.path
                ),
            ));
        }
        if spec.assertions.is_empty() {
            errors.push(FieldError::new(
                "assertions",
                "give at least one assertion (`- { key: NAME, not_empty: true }`)",
            ));
        }
        let mut assertions = Vec::new();
        for (i, a) in spec.assertions.iter().enumerate() {
            let at = |field: &str| format!("assertions[{i}].{field}");
            for (j, key) in std::iter::once(&a.key).chain(&a.or_keys).enumerate() {
                let field = if j == 0 {
                    at("key")
                } else {
                    format!("assertions[{i}].or_keys[{}]", j - 1)
                };
                if let Err(m) = check_key(key, format) {
                    errors.push(FieldError::new(field, m));
                }
            }
            let valued = a.equals.is_some()
                || a.not_equals.is_some()
                || a.matches.is_some()
                || a.one_of.is_some()
                || a.not_default.is_some()
                || a.absolute_path
                || a.not_empty;
            if a.present == Some(false) && valued {
                errors.push(FieldError::new(
                    at("present"),
                    "`present: false` says the key must be absent: it cannot have other assertions",
                ));
            }
            if a.one_of.as_ref().is_some_and(Vec::is_empty) {
                errors.push(FieldError::new(at("one_of"), "the list is empty"));
            }
            let matches = a.matches.as_deref().and_then(|re| {
                compile_regex(&at("matches"), re)
                    .map_err(|e| errors.push(e))
                    .ok()
            });
            assertions.push(Prepared {
                spec: a.clone(),
                matches,
            });
        }
        match format {
            Some(format) if errors.is_empty() => Ok(ConfigCheck {
                path,
                format,
                assertions,
            }),
            _ => Err(errors),
        }
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        let shown = self.path.display();
        let text = match read_capped(&self.path).await {
            Ok(t) => t,
            Err(o) => return o,
        };
        let doc = match Document::parse(self.format, &text) {
            Ok(d) => d,
            Err(m) => {
                return Outcome::fail(
                    Reason::ProtocolError,
                    format!("{shown} is not valid {}: {m}", self.format.as_str()),
                );
            }
        };
        let mut seen = doc.problems.clone();
        let mut failures = Vec::new();
        for a in &self.assertions {
            let (name, value) = doc.find(&a.spec);
            seen.push(match &value {
                None => format!("`{name}` is not set"),
                Some(v) if is_empty(v) => format!("`{name}` is set but empty"),
                Some(_) if is_secret_key(&name) => format!("`{name}` is set (a secret, not shown)"),
                Some(v) => format!("`{name}` = {}", quote(&render(v))),
            });
            failures.extend(a.evaluate(&name, value.as_ref()));
        }
        let outcome = if failures.is_empty() {
            let n = self.assertions.len();
            let s = if n == 1 { "" } else { "s" };
            Outcome::ok(format!("{shown}: {n} assertion{s} hold"))
        } else {
            Outcome::fail(
                Reason::AssertionFailed,
                format!("{shown}: {}", failures.join("; ")),
            )
        };
        outcome
            .with_value(failures.len() as f64)
            .with_observations(seen)
    }
}

/// Rejects keys the format cannot have.
fn check_key(key: &str, format: Option<ConfigFormat>) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if format == Some(ConfigFormat::Env) && key.starts_with('/') {
        return Err(format!(
            "`{key}` is a JSON pointer, but a .env has plain keys (`APP_URL`)"
        ));
    }
    if key != "/" && key.starts_with('/') && key.ends_with('/') {
        return Err(format!("`{key}` ends with `/`"));
    }
    if !key.starts_with('/')
        && key.split('.').any(str::is_empty)
        && format != Some(ConfigFormat::Env)
    {
        return Err(format!("`{key}` has an empty part between dots"));
    }
    Ok(())
}

/// Reads the file, refusing huge ones; failures are outcomes.
async fn read_capped(path: &Path) -> Result<String, Outcome> {
    let shown = path.display();
    let fail = |e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => " (is the path right, is the app installed here?)",
            _ => "",
        };
        Outcome::fail(
            Reason::from_io(&e),
            format!("cannot read {shown}: {e}{hint}"),
        )
    };
    let meta = tokio::fs::metadata(path).await.map_err(fail)?;
    if !meta.is_file() {
        return Err(Outcome::fail(
            Reason::AssertionFailed,
            format!("{shown} is not a regular file"),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Outcome::fail(
            Reason::ProtocolError,
            format!(
                "{shown} is {} bytes, more than a configuration file should be ({} at most)",
                meta.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let bytes = tokio::fs::read(path).await.map_err(fail)?;
    String::from_utf8(bytes).map_err(|e| {
        Outcome::fail(
            Reason::ProtocolError,
            format!(
                "{shown} is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A parsed file: `.env` variables, or a TOML/JSON tree.
struct Document {
    root: Value,
    env: bool,
    /// Lines of a `.env` that could not be read, for the observations.
    problems: Vec<String>,
}

impl Document {
    /// Parses `text`. Errors give the position and the kind of problem but
    /// never quote the file (it may hold secrets).
    fn parse(format: ConfigFormat, text: &str) -> Result<Document, String> {
        match format {
            ConfigFormat::Env => {
                let env = dotenv::parse(text);
                let problems = env
                    .problems
                    .iter()
                    .map(|(line, m)| format!("line {line} skipped: {m}"))
                    .collect();
                let root = Value::Object(
                    env.vars
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                );
                Ok(Document {
                    root,
                    env: true,
                    problems,
                })
            }
            ConfigFormat::Toml => {
                let table: toml::Table = toml::from_str(text).map_err(|e| {
                    let at = e
                        .span()
                        .map(|s| {
                            let (line, col) = line_col(text, s.start);
                            format!(" at line {line} column {col}")
                        })
                        .unwrap_or_default();
                    format!("{}{at}", e.message())
                })?;
                Ok(Document {
                    root: toml_to_json(toml::Value::Table(table)),
                    env: false,
                    problems: Vec::new(),
                })
            }
            ConfigFormat::Json => {
                let root: Value = serde_json::from_str(text).map_err(|e| {
                    format!(
                        "{:?} error at line {} column {}",
                        e.classify(),
                        e.line(),
                        e.column()
                    )
                    .to_lowercase()
                })?;
                Ok(Document {
                    root,
                    env: false,
                    problems: Vec::new(),
                })
            }
        }
    }

    /// The first of the assertion's keys that is present, with its value; or
    /// the main key and `None`.
    fn find(&self, a: &ConfigAssertion) -> (String, Option<Value>) {
        for key in std::iter::once(&a.key).chain(&a.or_keys) {
            if let Some(v) = self.lookup(key) {
                return (key.clone(), Some(v.clone()));
            }
        }
        (a.key.clone(), None)
    }

    fn lookup(&self, key: &str) -> Option<&Value> {
        if self.env {
            return self.root.get(key);
        }
        if key.starts_with('/') {
            return self.root.pointer(key);
        }
        key.split('.')
            .try_fold(&self.root, |node, part| match node {
                Value::Object(map) => map.get(part),
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
    }
}

impl Prepared {
    /// What is wrong with `value` (the value of key `name`), one line each.
    fn evaluate(&self, name: &str, value: Option<&Value>) -> Vec<String> {
        let a = &self.spec;
        let others = if a.or_keys.is_empty() {
            String::new()
        } else {
            let alt: Vec<String> = a.or_keys.iter().map(|k| format!("`{k}`")).collect();
            format!(" (nor {})", alt.join(", "))
        };
        let Some(value) = value else {
            return if a.present == Some(false) {
                Vec::new()
            } else {
                vec![format!("`{name}`{others} is not set")]
            };
        };
        let secret = is_secret_key(name);
        let text = render(value);
        // `is X`, or nothing for a secret.
        let is = if secret {
            String::new()
        } else {
            format!(" is {}", quote(&text))
        };
        let mut out = Vec::new();
        if a.present == Some(false) {
            out.push(if secret {
                format!("`{name}` is set, but must not be")
            } else {
                format!("`{name}` is set (to {}), but must not be", quote(&text))
            });
        }
        if a.not_empty && is_empty(value) {
            out.push(format!("`{name}` is empty"));
        }
        if let Some(want) = &a.equals
            && &text != want
        {
            out.push(if secret {
                format!("`{name}` does not have the expected value")
            } else {
                format!("`{name}`{is}, expected {}", quote(want))
            });
        }
        if let Some(bad) = &a.not_equals
            && &text == bad
        {
            out.push(if secret {
                format!("`{name}` has a value it must not have")
            } else {
                format!("`{name}`{is}, which it must not be")
            });
        }
        if let Some(default) = &a.not_default
            && &text == default
        {
            out.push(if secret {
                format!("`{name}` is still the value the application ships with")
            } else {
                format!("`{name}` is still the shipped default {}", quote(default))
            });
        }
        if let Some(re) = &self.matches
            && !re.is_match(&text)
        {
            out.push(format!(
                "`{name}`{is}, which does not match `{}`",
                re.as_str()
            ));
        }
        if let Some(allowed) = &a.one_of
            && !allowed.contains(&text)
        {
            let list: Vec<String> = allowed.iter().map(|v| quote(v)).collect();
            out.push(format!("`{name}`{is}, expected one of {}", list.join(", ")));
        }
        if a.absolute_path && !text.starts_with('/') {
            out.push(if text.is_empty() {
                format!("`{name}` is empty, expected an absolute path")
            } else {
                format!("`{name}`{is}, which is not an absolute path")
            });
        }
        out
    }
}

/// A value as text: strings as they are, other scalars as JSON writes them,
/// `null` as empty, arrays and tables as compact JSON.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `value` in backquotes, cut at 100 characters.
fn quote(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("`{}…`", &text[..i]),
        None => format!("`{text}`"),
    }
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;
    use crate::support::testing;

    fn spec(text: &str) -> ConfigSpec {
        let node = yaml::parse(text).unwrap().unwrap();
        yaml::from_node(&node, "config", &|s| Ok(s.to_string())).unwrap()
    }

    fn build(text: &str) -> Result<ConfigCheck, Vec<FieldError>> {
        testing::build_in::<ConfigCheck>(text, Some("/srv/app".into()))
    }

    fn assertion(text: &str) -> Prepared {
        let check = build(&format!("path: x.json\nassertions:\n  - {text}\n")).unwrap();
        check.assertions.into_iter().next().unwrap()
    }

    #[test]
    fn format_comes_from_the_name() {
        let f = |n: &str| ConfigFormat::from_name(Path::new(n));
        assert_eq!(f("/a/.env"), Some(ConfigFormat::Env));
        assert_eq!(f("/a/.env.production"), Some(ConfigFormat::Env));
        assert_eq!(f("/a/app.env"), Some(ConfigFormat::Env));
        assert_eq!(f("/a/config.toml"), Some(ConfigFormat::Toml));
        assert_eq!(f("/a/settings.json"), Some(ConfigFormat::Json));
        assert_eq!(f("/a/settings.ini"), None);
    }

    #[test]
    fn build_reports_every_problem_with_its_path() {
        let errs = build(
            "path: settings.ini\nassertions:\n  - { key: a, present: false, equals: x }\n  - { key: 'a..b', matches: '(' }\n  - { key: c, one_of: [] }\n",
        )
        .err()
        .unwrap();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "path",
                "assertions[0].present",
                "assertions[1].key",
                "assertions[1].matches",
                "assertions[2].one_of"
            ],
            "{errs:?}"
        );
        let errs = build("path: .env\nformat: env\nassertions: []\n")
            .err()
            .unwrap();
        assert_eq!(errs[0].path, "assertions");
        let errs = build("path: .env\nassertions:\n  - { key: /a/b }\n")
            .err()
            .unwrap();
        assert!(errs[0].message.contains("JSON pointer"), "{errs:?}");
    }

    #[test]
    fn dotted_keys_pointers_and_alternatives() {
        let doc = Document::parse(
            ConfigFormat::Toml,
            "file_store = \"local\"\n[core]\nworkspace_base = \"/w\"\nports = [1, 2]\n",
        )
        .unwrap();
        assert_eq!(doc.lookup("core.workspace_base"), Some(&Value::from("/w")));
        assert_eq!(doc.lookup("/core/ports/1"), Some(&Value::from(2)));
        assert_eq!(doc.lookup("core.ports.0"), Some(&Value::from(1)));
        assert_eq!(doc.lookup("core.file_store"), None);
        let a = spec("path: c.toml\nassertions:\n  - { key: core.file_store, or_keys: [file_store], equals: local }\n")
            .assertions
            .remove(0);
        assert_eq!(
            doc.find(&a),
            ("file_store".to_string(), Some(Value::from("local")))
        );
    }

    #[test]
    fn each_assertion_words_its_failure() {
        let v = |s: &str| Value::from(s);
        assert_eq!(
            assertion("{ key: MAIL_FROM_ADDRESS, not_default: hello@example.com }")
                .evaluate("MAIL_FROM_ADDRESS", Some(&v("hello@example.com"))),
            ["`MAIL_FROM_ADDRESS` is still the shipped default `hello@example.com`"]
        );
        assert_eq!(
            assertion("{ key: Q, one_of: [database, redis] }").evaluate("Q", Some(&v("sync"))),
            ["`Q` is `sync`, expected one of `database`, `redis`"]
        );
        assert_eq!(
            assertion("{ key: p, absolute_path: true }").evaluate("p", Some(&v("cache/dir"))),
            ["`p` is `cache/dir`, which is not an absolute path"]
        );
        assert_eq!(
            assertion("{ key: n, equals: '3306' }").evaluate("n", Some(&Value::from(3306))),
            Vec::<String>::new()
        );
        assert_eq!(
            assertion("{ key: d, present: false }").evaluate("d", Some(&Value::Bool(true))),
            ["`d` is set (to `true`), but must not be"]
        );
        assert_eq!(
            assertion("{ key: a, or_keys: [b] }").evaluate("a", None),
            ["`a` (nor `b`) is not set"]
        );
        assert!(
            assertion("{ key: a, present: false }")
                .evaluate("a", None)
                .is_empty()
        );
        assert_eq!(
            assertion("{ key: x, not_empty: true }").evaluate("x", Some(&Value::Null)),
            ["`x` is empty"]
        );
    }

    #[test]
    fn secret_values_are_never_quoted() {
        let canary = "s3cr3t-canary-value";
        let all = "{ key: JWT_SECRET, equals: other, not_equals: s3cr3t-canary-value, not_default: s3cr3t-canary-value, matches: '^x', one_of: [a], absolute_path: true }";
        let msgs = assertion(all).evaluate("JWT_SECRET", Some(&Value::from(canary)));
        assert_eq!(msgs.len(), 6, "{msgs:?}");
        for m in &msgs {
            assert!(!m.contains(canary), "{m}");
        }
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        let e = Document::parse(ConfigFormat::Toml, "a = 1\nsecret = \"hunter2\n")
            .err()
            .unwrap();
        assert!(!e.contains("hunter2") && e.contains("line 2"), "{e}");
        let e = Document::parse(ConfigFormat::Json, "{\"k\": \"hunter2\" x}")
            .err()
            .unwrap();
        assert!(!e.contains("hunter2") && e.contains("line 1"), "{e}");
    }
}
