//! Blackbox-exporter-compatible probing: `/probe?module=M&target=T` runs the
//! check template `M` of the agent config's `probe.modules` against `T`.
//!
//! Off unless `probe:` is configured, and then only for targets that match
//! one of `allow_targets` entirely: an agent that probes whatever a request
//! names is a server-side request forgery tool. The target is substituted
//! for `${target}` in the template's scalars (never parsed as YAML), and the
//! prepared check is cached per (module, target) so a probe does not pay for
//! compiling the template's regexes again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;

use crate::checks::{BuildContext, CheckSpec, Probe};
use crate::config::CheckMeta;
use crate::config::error::ConfigError;
use crate::config::interp::{self, Scope};
use crate::config::model;
use crate::config::yaml::{self, Node, Value};
use crate::store::Slot;

/// Most prepared (module, target) pairs kept; the cache is emptied when full.
const CACHE_LIMIT: usize = 4096;
/// Timeout of a module that sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The target used to validate templates at load time.
const PLACEHOLDER: &str = "http://127.0.0.1:1/";

/// A module prepared for one target.
pub struct ModuleProbe {
    pub slot: Arc<Slot>,
    pub probe: Arc<Probe>,
}

/// Why a module probe was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ModuleError {
    UnknownModule(String),
    TargetNotAllowed(String),
    Invalid(String),
}

/// The configured modules.
pub struct Modules {
    allow: Vec<Regex>,
    templates: HashMap<String, Node>,
    cache: Mutex<HashMap<(String, String), Arc<ModuleProbe>>>,
}

impl Modules {
    /// Validates the `probe:` block of the agent config (node at `probe`).
    pub fn load(
        cfg: &model::ProbeModules,
        node: &Node,
        label: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Modules> {
        let mut ok = true;
        let mut allow = Vec::new();
        for (i, pattern) in cfg.allow_targets.iter().enumerate() {
            let path = format!("probe.allow_targets[{i}]");
            match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(re) => allow.push(re),
                Err(e) => {
                    ok = false;
                    errors.push(ConfigError::new(
                        label,
                        Some(node.find(&path).pos),
                        path,
                        format!("invalid regular expression: {e}"),
                    ));
                }
            }
        }
        if cfg.allow_targets.is_empty() {
            ok = false;
            errors.push(ConfigError::new(label, Some(node.find("probe").pos), "probe.allow_targets", "list the targets that may be probed (regular expressions); an empty list would allow none"));
        }
        let mut templates = HashMap::new();
        if let Value::Seq(items) = &node.find("probe.modules").value {
            for (i, item) in items.iter().enumerate() {
                let path = format!("probe.modules[{i}]");
                match build(item, &path, PLACEHOLDER) {
                    Ok((spec, _)) => {
                        if templates.insert(spec.name.clone(), item.clone()).is_some() {
                            ok = false;
                            errors.push(ConfigError::new(
                                label,
                                Some(item.find("name").pos),
                                format!("{path}.name"),
                                format!("module `{}` is defined twice", spec.name),
                            ));
                        }
                    }
                    Err(errs) => {
                        ok = false;
                        for (p, m) in errs {
                            errors.push(ConfigError::new(label, Some(node.find(&p).pos), p, m));
                        }
                    }
                }
            }
        }
        ok.then(|| Modules {
            allow,
            templates,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The module `module` prepared for `target`.
    pub fn resolve(&self, module: &str, target: &str) -> Result<Arc<ModuleProbe>, ModuleError> {
        let template = self
            .templates
            .get(module)
            .ok_or_else(|| ModuleError::UnknownModule(module.to_string()))?;
        if !self.allow.iter().any(|re| re.is_match(target)) {
            return Err(ModuleError::TargetNotAllowed(target.to_string()));
        }
        let key = (module.to_string(), target.to_string());
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let (spec, probe) = build(template, "", target).map_err(|errs| {
            ModuleError::Invalid(
                errs.into_iter()
                    .map(|(p, m)| format!("{p}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let timeout = spec.timeout.map(Into::into).unwrap_or(DEFAULT_TIMEOUT);
        let meta = CheckMeta {
            pack: "module".into(),
            name: spec.name.clone(),
            kind: spec.kind,
            severity: spec.severity,
            title: spec.title.clone().unwrap_or_else(|| spec.name.clone()),
            doc: spec.doc.clone().unwrap_or_default(),
            remediation: spec.remediation.clone().unwrap_or_default(),
            interval: timeout,
            timeout,
            source: String::new(),
        };
        let prepared = Arc::new(ModuleProbe {
            slot: Arc::new(Slot::new(meta)),
            probe: Arc::new(probe),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, prepared.clone());
        Ok(prepared)
    }
}

/// Deserializes and prepares a template with `${target}` set; errors carry
/// their field path.
fn build(
    node: &Node,
    base: &str,
    target: &str,
) -> Result<(CheckSpec, Probe), Vec<(String, String)>> {
    let vars = std::collections::BTreeMap::from([("target".to_string(), target.to_string())]);
    let env = |k: &str| std::env::var(k).ok();
    let scope = Scope {
        vars: &vars,
        env_file: None,
        process_env: &env,
    };
    let expand = |s: &str| interp::expand(s, &scope);
    let spec: CheckSpec =
        yaml::from_node(node, base, &expand).map_err(|e| vec![(e.path, e.message)])?;
    let timeout = spec.timeout.map(Into::into).unwrap_or(DEFAULT_TIMEOUT);
    let probe = Probe::build(
        &spec,
        &BuildContext {
            timeout,
            pack_dir: None,
        },
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                (
                    if base.is_empty() {
                        e.path
                    } else {
                        format!("{base}.{}", e.path)
                    },
                    e.message,
                )
            })
            .collect::<Vec<_>>()
    })?;
    Ok((spec, probe))
}
