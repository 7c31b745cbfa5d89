//! Loading: the agent config, the packs (built-in and from directories), vars
//! and `--var`, the apps' `.env` files, and every check prepared. All errors
//! of one load are collected and returned together, each located.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dotenv;
use super::error::{ConfigError, ConfigErrors, Pos};
use super::interp::{self, Scope};
use super::model::{AgentConfig, CheckMeta, PackHeader};
use super::yaml::{self, DeError, Node};
use crate::checks::{BuildContext, CheckSpec, Probe};
use crate::redact::{is_secret_key, redact};

/// The built-in packs, embedded at build time from `checks/*.yaml`.
pub static BUILTIN_PACKS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_packs.rs"));

/// Default address of the HTTP server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONCURRENCY: usize = 64;

/// What the command line says about the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--checks DIR` (repeatable): more pack directories, their packs enabled.
    pub checks_dirs: Vec<PathBuf>,
    /// `--pack NAME` (repeatable): packs to enable.
    pub packs: Vec<String>,
    /// `--var [PACK.]KEY=VALUE` (repeatable).
    pub vars: Vec<String>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// Leave out the built-in packs (tests).
    pub no_builtin: bool,
}

/// A loaded, validated configuration.
pub struct Loaded {
    pub listen: String,
    pub concurrency: usize,
    pub checks: Vec<LoadedCheck>,
    pub packs: Vec<PackInfo>,
    /// Checks of enabled packs that are switched off, and why.
    pub skipped: Vec<Skipped>,
    /// The checks directories named in the agent config (watched for changes).
    pub checks_dirs: Vec<PathBuf>,
    /// `/probe?module=M&target=T` modules, when configured.
    pub modules: Option<std::sync::Arc<crate::modules::Modules>>,
    /// The agent config's `web_config_file`.
    pub web_config_file: Option<PathBuf>,
}

/// One enabled check, ready to run.
pub struct LoadedCheck {
    pub meta: CheckMeta,
    pub spec: CheckSpec,
    pub probe: Probe,
}

/// A pack the agent knows of.
#[derive(Clone, Debug, PartialEq)]
pub struct PackInfo {
    pub name: String,
    pub title: String,
    pub guide: String,
    /// The file it came from (`<builtin>/host.yaml` for embedded packs).
    pub source: String,
    pub enabled: bool,
}

/// A check that is not run.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub pack: String,
    pub name: String,
    pub why: String,
}

struct Source {
    label: String,
    node: Node,
    header: PackHeader,
    dir: Option<PathBuf>,
    from_dir: bool,
}

/// Loads everything, reading the process environment for `${VAR}`.
pub fn load(opts: &Options) -> Result<Loaded, ConfigErrors> {
    load_with_env(opts, &|k| std::env::var(k).ok())
}

/// Loads everything with the given environment lookup.
pub fn load_with_env(
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let plain_env = |s: &str| {
        interp::expand(
            s,
            &Scope {
                vars: &BTreeMap::new(),
                env_file: None,
                process_env: env,
            },
        )
    };

    // The agent config.
    let mut agent = AgentConfig::default();
    let mut agent_node = None;
    let agent_label = opts
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(path) = &opts.config
        && let Some(node) = read_yaml(path, &agent_label, &mut errors)
    {
        match yaml::from_node::<AgentConfig>(&node, "", &plain_env) {
            Ok(a) => agent = a,
            Err(e) => errors.push(de_error(&agent_label, e)),
        }
        agent_node = Some(node);
    }

    // Pack sources: built-in first, then directories (later ones override).
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut all_sources = Vec::new();
    if !opts.no_builtin {
        for (file, text) in BUILTIN_PACKS {
            let label = format!("<builtin>/{file}");
            if let Some(s) = parse_pack(text, &label, None, false, &mut errors) {
                all_sources.push(s);
            }
        }
    }
    let dirs: Vec<PathBuf> = agent
        .checks_dirs
        .iter()
        .chain(&opts.checks_dirs)
        .cloned()
        .collect();
    for dir in &dirs {
        for path in pack_files(dir, &mut errors) {
            let label = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Some(s) = parse_pack(
                        &text,
                        &label,
                        path.parent().map(Path::to_path_buf),
                        true,
                        &mut errors,
                    ) {
                        all_sources.push(s);
                    }
                }
                Err(e) => errors.push(ConfigError::file(&label, format!("cannot read: {e}"))),
            }
        }
    }
    for s in all_sources {
        if let Some(prev) = sources.get(&s.header.pack)
            && prev.from_dir
            && s.from_dir
            && prev.dir == s.dir
        {
            errors.push(ConfigError::new(
                &s.label,
                Some(s.node.find("pack").pos),
                "pack",
                format!("pack `{}` is also defined in {}", s.header.pack, prev.label),
            ));
            continue;
        }
        sources.insert(s.header.pack.clone(), s);
    }

    // Which packs are enabled.
    let mut enabled: BTreeSet<String> = BTreeSet::new();
    for name in agent.packs.keys() {
        if sources.contains_key(name) {
            enabled.insert(name.clone());
        } else {
            let pos = agent_node
                .as_ref()
                .map(|n| n.find_key(&format!("packs.{name}")).pos);
            errors.push(ConfigError::new(
                &agent_label,
                pos,
                format!("packs.{name}"),
                unknown_pack(name, &sources),
            ));
        }
    }
    for name in &opts.packs {
        if sources.contains_key(name) {
            enabled.insert(name.clone());
        } else {
            errors.push(ConfigError::new(
                "--pack",
                None,
                "",
                unknown_pack(name, &sources),
            ));
        }
    }
    enabled.extend(
        sources
            .values()
            .filter(|s| s.from_dir)
            .map(|s| s.header.pack.clone()),
    );
    if opts.config.is_none()
        && opts.packs.is_empty()
        && dirs.is_empty()
        && sources.contains_key("host")
    {
        enabled.insert("host".into());
    }

    // `--var` overrides.
    let mut cli_vars: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for raw in &opts.vars {
        let Some((lhs, value)) = raw.split_once('=') else {
            errors.push(ConfigError::new(
                "--var",
                None,
                "",
                format!("`{raw}` is not KEY=VALUE or PACK.KEY=VALUE"),
            ));
            continue;
        };
        let targets: Vec<(String, String)> = match lhs.split_once('.') {
            Some((pack, key)) => {
                if !enabled.contains(pack) {
                    errors.push(ConfigError::new(
                        "--var",
                        None,
                        "",
                        format!("`{lhs}`: pack `{pack}` is not enabled"),
                    ));
                    continue;
                }
                if !sources[pack].header.vars.contains_key(key) {
                    errors.push(ConfigError::new(
                        "--var",
                        None,
                        "",
                        format!(
                            "`{lhs}`: pack `{pack}` has no var `{key}` (it has: {})",
                            names(sources[pack].header.vars.keys())
                        ),
                    ));
                    continue;
                }
                vec![(pack.to_string(), key.to_string())]
            }
            None => enabled
                .iter()
                .filter(|p| sources[*p].header.vars.contains_key(lhs))
                .map(|p| (p.clone(), lhs.to_string()))
                .collect(),
        };
        if targets.is_empty() {
            errors.push(ConfigError::new(
                "--var",
                None,
                "",
                format!("`{lhs}`: no enabled pack has a var of that name"),
            ));
        }
        for (pack, key) in targets {
            cli_vars
                .entry(pack)
                .or_default()
                .insert(key, value.to_string());
        }
    }

    let mut loaded = Loaded {
        listen: opts
            .listen
            .clone()
            .or(agent.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        concurrency: agent.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        checks: Vec::new(),
        packs: Vec::new(),
        skipped: Vec::new(),
        checks_dirs: agent.checks_dirs.clone(),
        modules: None,
        web_config_file: agent.web_config_file.clone(),
    };
    if let (Some(cfg), Some(node)) = (&agent.probe, &agent_node) {
        loaded.modules = crate::modules::Modules::load(cfg, node, &agent_label, &mut errors)
            .map(std::sync::Arc::new);
    }
    if loaded.concurrency == 0 {
        let pos = agent_node.as_ref().map(|n| n.find("concurrency").pos);
        errors.push(ConfigError::new(
            &agent_label,
            pos,
            "concurrency",
            "must be at least 1",
        ));
    }
    if loaded.listen.parse::<std::net::SocketAddr>().is_err() {
        let (file, pos) = if opts.listen.is_some() {
            ("--listen".to_string(), None)
        } else {
            (
                agent_label.clone(),
                agent_node.as_ref().map(|n| n.find("listen").pos),
            )
        };
        errors.push(ConfigError::new(
            file,
            pos,
            "listen",
            format!(
                "`{}` is not an address like 127.0.0.1:9464 or [::1]:9464",
                loaded.listen
            ),
        ));
    }

    for s in sources.values() {
        let on = enabled.contains(&s.header.pack);
        loaded.packs.push(PackInfo {
            name: s.header.pack.clone(),
            title: s.header.title.clone().unwrap_or_default(),
            guide: s.header.guide.clone().unwrap_or_default(),
            source: s.label.clone(),
            enabled: on,
        });
        if !on {
            continue;
        }
        let selection = agent.packs.get(&s.header.pack).cloned().unwrap_or_default();
        let mut vars = s.header.vars.clone();
        for (k, v) in &selection.vars {
            if vars.contains_key(k) {
                vars.insert(k.clone(), v.clone());
            } else {
                let path = format!("packs.{}.vars.{k}", s.header.pack);
                let pos = agent_node.as_ref().map(|n| n.find_key(&path).pos);
                errors.push(ConfigError::new(
                    &agent_label,
                    pos,
                    path,
                    format!(
                        "pack `{}` has no var `{k}` (it has: {})",
                        s.header.pack,
                        names(s.header.vars.keys())
                    ),
                ));
            }
        }
        if let Some(over) = cli_vars.get(&s.header.pack) {
            vars.extend(over.clone());
        }
        load_pack(s, vars, &selection.disable, env, &mut loaded, &mut errors);
    }

    errors.sort_by(|a, b| (a.file.as_str(), a.pos).cmp(&(b.file.as_str(), b.pos)));
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn load_pack(
    s: &Source,
    raw_vars: BTreeMap<String, String>,
    disable: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    loaded: &mut Loaded,
    errors: &mut Vec<ConfigError>,
) {
    let pack = &s.header.pack;
    // Vars may refer to the environment and to each other.
    let mut vars = BTreeMap::new();
    for (k, v) in &raw_vars {
        match expand_var(v, &raw_vars, env, 0) {
            Ok(x) => {
                // `db_password`, `api_token`...: masked wherever they end up.
                if is_secret_key(k) {
                    crate::redact::register(&x);
                }
                vars.insert(k.clone(), x);
            }
            Err(m) => errors.push(ConfigError::new(
                &s.label,
                Some(s.node.find(&format!("vars.{k}")).pos),
                format!("vars.{k}"),
                m,
            )),
        }
    }
    let env_file = match &s.header.env_file {
        None => None,
        Some(raw) => {
            let at = Some(s.node.find("env_file").pos);
            match interp::expand(
                raw,
                &Scope {
                    vars: &vars,
                    env_file: None,
                    process_env: env,
                },
            ) {
                Err(m) => {
                    errors.push(ConfigError::new(&s.label, at, "env_file", m));
                    return;
                }
                // A relative env_file is relative to the pack file, like every
                // other path in a pack.
                Ok(path) => match std::fs::read_to_string(
                    s.dir
                        .as_ref()
                        .map_or_else(|| PathBuf::from(&path), |d| d.join(&path)),
                ) {
                    Ok(text) => {
                        let parsed = dotenv::parse(&text);
                        for (k, v) in &parsed.vars {
                            if is_secret_key(k) {
                                crate::redact::register(v);
                            }
                        }
                        Some(parsed.vars)
                    }
                    Err(e) => {
                        errors.push(ConfigError::new(&s.label, at, "env_file", format!("cannot read the app's .env at {path}: {e} (set the pack's vars to where the app lives)")));
                        return;
                    }
                },
            }
        }
    };
    let scope = Scope {
        vars: &vars,
        env_file: env_file.as_ref(),
        process_env: env,
    };
    let interp = |text: &str| interp::expand(text, &scope);
    let defaults = &s.header.defaults;
    let Some(items) = (match &s.node.find("checks").value {
        yaml::Value::Seq(items) if s.node.find("checks") != &s.node => Some(items),
        _ => None,
    }) else {
        return;
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, node) in items.iter().enumerate() {
        let base = format!("checks[{i}]");
        let spec: CheckSpec = match yaml::from_node(node, &base, &interp) {
            Ok(spec) => spec,
            Err(e) => {
                errors.push(de_error(&s.label, e));
                continue;
            }
        };
        let at = |field: &str| Some(s.node.find(&format!("{base}.{field}")).pos);
        if !valid_name(&spec.name) {
            errors.push(ConfigError::new(
                &s.label,
                at("name"),
                format!("{base}.name"),
                "use only letters, digits, `_` and `-`",
            ));
        }
        if let Some(first) = seen.insert(spec.name.clone(), node.pos.line) {
            errors.push(ConfigError::new(
                &s.label,
                at("name"),
                format!("{base}.name"),
                format!("check `{}` is already defined at line {first}", spec.name),
            ));
            continue;
        }
        let interval = spec
            .interval
            .or(defaults.interval)
            .map(Into::into)
            .unwrap_or(DEFAULT_INTERVAL);
        let timeout = spec
            .timeout
            .or(defaults.timeout)
            .map(Into::into)
            .unwrap_or(DEFAULT_TIMEOUT);
        if interval < Duration::from_millis(100) {
            errors.push(ConfigError::new(
                &s.label,
                at("interval"),
                format!("{base}.interval"),
                "must be at least 100ms",
            ));
        }
        if timeout > interval {
            errors.push(ConfigError::new(
                &s.label,
                at("timeout"),
                format!("{base}.timeout"),
                format!(
                    "the timeout ({}) is longer than the interval ({})",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            ));
        }
        let skip = |why: String| Skipped {
            pack: pack.clone(),
            name: spec.name.clone(),
            why,
        };
        if spec.enabled == Some(false) {
            loaded.skipped.push(skip("enabled: false".into()));
            continue;
        }
        if disable.contains(&spec.name) {
            loaded
                .skipped
                .push(skip("disabled in the agent config".into()));
            continue;
        }
        if let Some(cond) = &spec.enabled_if {
            match cond.evaluate() {
                Err(m) => {
                    errors.push(ConfigError::new(
                        &s.label,
                        at("enabled_if.matches"),
                        format!("{base}.enabled_if.matches"),
                        m,
                    ));
                    continue;
                }
                Ok(Err(why)) => {
                    loaded.skipped.push(skip(format!("enabled_if: {why}")));
                    continue;
                }
                Ok(Ok(())) => {}
            }
        }
        let ctx = BuildContext {
            timeout,
            pack_dir: s.dir.clone(),
        };
        let probe = match Probe::build(&spec, &ctx) {
            Ok(p) => p,
            Err(field_errors) => {
                for fe in field_errors {
                    let path = format!("{base}.{}", fe.path);
                    let node = if fe.on_key {
                        s.node.find_key(&path)
                    } else {
                        s.node.find(&path)
                    };
                    errors.push(ConfigError::new(&s.label, Some(node.pos), path, fe.message));
                }
                continue;
            }
        };
        let doc = match (&spec.doc, &s.header.guide) {
            (Some(d), Some(g)) if d.starts_with('#') => {
                format!("{}{d}", g.split('#').next().unwrap_or(g))
            }
            (Some(d), _) => d.clone(),
            (None, Some(g)) => g.clone(),
            (None, None) => String::new(),
        };
        loaded.checks.push(LoadedCheck {
            meta: CheckMeta {
                pack: pack.clone(),
                name: spec.name.clone(),
                kind: spec.kind,
                severity: spec.severity,
                // Shown everywhere (metric labels too): masked once here.
                title: redact(spec.title.as_deref().unwrap_or(&spec.name)).into_owned(),
                doc: redact(&doc).into_owned(),
                remediation: redact(spec.remediation.as_deref().unwrap_or_default()).into_owned(),
                interval,
                timeout,
                source: format!("{}:{}", s.label, node.pos.line),
            },
            spec,
            probe,
        });
    }
}

fn expand_var(
    v: &str,
    raw: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, String> {
    let once = interp::expand(
        v,
        &Scope {
            vars: raw,
            env_file: None,
            process_env: env,
        },
    )?;
    if once.contains("${") && once != v && depth < 8 {
        expand_var(&once, raw, env, depth + 1)
    } else {
        Ok(once)
    }
}

fn read_yaml(path: &Path, label: &str, errors: &mut Vec<ConfigError>) -> Option<Node> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_yaml(&text, label, errors),
        Err(e) => {
            errors.push(ConfigError::file(label, format!("cannot read: {e}")));
            None
        }
    }
}

fn parse_yaml(text: &str, label: &str, errors: &mut Vec<ConfigError>) -> Option<Node> {
    match yaml::parse(text) {
        Ok(Some(node)) => Some(node),
        Ok(None) => {
            errors.push(ConfigError::file(label, "the file is empty"));
            None
        }
        Err((pos, m)) => {
            errors.push(ConfigError::new(
                label,
                Some(pos),
                "",
                format!("invalid YAML: {m}"),
            ));
            None
        }
    }
}

fn parse_pack(
    text: &str,
    label: &str,
    dir: Option<PathBuf>,
    from_dir: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<Source> {
    let node = parse_yaml(text, label, errors)?;
    let identity = |s: &str| Ok(s.to_string());
    match yaml::from_node::<PackHeader>(&node, "", &identity) {
        Ok(header) => {
            if !valid_name(&header.pack) {
                errors.push(ConfigError::new(
                    label,
                    Some(node.find("pack").pos),
                    "pack",
                    "use only letters, digits, `_` and `-`",
                ));
                return None;
            }
            if !matches!(node.find("checks").value, yaml::Value::Seq(_))
                && node.find("checks") != &node
                && !node.find("checks").is_null()
            {
                errors.push(ConfigError::new(
                    label,
                    Some(node.find("checks").pos),
                    "checks",
                    "must be a list of checks",
                ));
                return None;
            }
            Some(Source {
                label: label.to_string(),
                node,
                header,
                dir,
                from_dir,
            })
        }
        Err(e) => {
            errors.push(de_error(label, e));
            // The checks cannot be prepared without a valid header (vars,
            // env_file), but their structure can still be checked, so that
            // one load reports every error of the file.
            if let yaml::Value::Seq(items) = &node.find("checks").value {
                for (i, item) in items.iter().enumerate() {
                    if let Err(e) =
                        yaml::from_node::<CheckSpec>(item, &format!("checks[{i}]"), &identity)
                    {
                        errors.push(de_error(label, e));
                    }
                }
            }
            None
        }
    }
}

fn pack_files(dir: &Path, errors: &mut Vec<ConfigError>) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            files.sort();
            files
        }
        Err(e) => {
            errors.push(ConfigError::file(
                dir.display().to_string(),
                format!("cannot read the checks directory: {e}"),
            ));
            Vec::new()
        }
    }
}

fn de_error(label: &str, e: DeError) -> ConfigError {
    ConfigError::new(
        label,
        e.pos.or(Some(Pos { line: 1, col: 1 })),
        e.path,
        e.message,
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn unknown_pack(name: &str, sources: &BTreeMap<String, Source>) -> String {
    format!(
        "no pack named `{name}` (known packs: {})",
        names(sources.keys())
    )
}
