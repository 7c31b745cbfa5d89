//! The config file types. They are the reference documentation: every field's
//! doc comment ends up in the JSON Schema (`healthprobe schema`) that editors
//! use for completion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::Dur;
use crate::checks::{CheckSpec, KindName, Severity};

/// The agent config (`healthprobe.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address of the HTTP server (default `127.0.0.1:9464`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Packs to enable (built-in or found in `checks_dirs`), with their vars.
    #[serde(default)]
    pub packs: BTreeMap<String, PackSelection>,
    /// Directories of pack files; every pack found there is enabled, and a pack
    /// with the name of a built-in one replaces it.
    #[serde(default)]
    pub checks_dirs: Vec<PathBuf>,
    /// How many checks may run at the same time (default 64).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Blackbox-exporter-style probing of arbitrary targets
    /// (`/probe?module=M&target=T`). Off unless this block is present, and
    /// then only for targets that match `allow_targets`.
    #[serde(default)]
    pub probe: Option<ProbeModules>,
    /// TLS and basic auth for the HTTP server: a web-config file in the
    /// format of Prometheus' exporters (`tls_server_config`,
    /// `basic_auth_users`). `--web.config.file` overrides it.
    #[serde(default)]
    pub web_config_file: Option<PathBuf>,
}

/// Check templates that `/probe?module=M&target=T` runs against a target.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeModules {
    /// Regular expressions; a target must match one of them entirely. This is
    /// what keeps the agent from being used to reach arbitrary hosts.
    pub allow_targets: Vec<String>,
    /// The modules: checks whose `name` is the module name and whose block
    /// uses `${target}` (for example `url: ${target}`).
    #[schemars(with = "Vec<CheckSpec>")]
    #[serde(default)]
    pub modules: serde::de::IgnoredAny,
}

/// One enabled pack in the agent config.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackSelection {
    /// Values for the pack's vars (where the app lives, its URL, its web user).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Names of checks of this pack to switch off.
    #[serde(default)]
    pub disable: Vec<String>,
}

/// Interval and timeout for the checks of a pack that do not set their own.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default `interval` (30s when unset).
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Default `timeout` (10s when unset).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// A pack file (`checks/*.yaml`): a named set of checks for one application.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// The pack's name: lowercase, digits and `_`; labels its metrics.
    pub pack: String,
    /// What the pack checks, for people.
    #[serde(default)]
    pub title: Option<String>,
    /// URL of the troubleshooting guide the checks come from; a check's `doc`
    /// anchor (`#section`) is resolved against it.
    #[serde(default)]
    pub guide: Option<String>,
    /// Defaults for `${var}` references; the agent config and `--var` override them.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The application's Laravel-style `.env` file; its keys are `${env.KEY}`.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Interval and timeout for checks that do not set their own.
    #[serde(default)]
    pub defaults: Defaults,
    /// The checks.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// A pack file's header: everything but `checks`, which are read one by one
/// so that every error is reported.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackHeader {
    pub pack: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub guide: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub env_file: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub checks: serde::de::IgnoredAny,
}

/// What the rest of the agent knows about a check: everything but how to run it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckMeta {
    pub pack: String,
    pub name: String,
    pub kind: KindName,
    pub severity: Severity,
    /// The title, or the name when the check has none.
    pub title: String,
    /// The guide link, resolved to a full URL when the pack has a `guide`.
    pub doc: String,
    pub remediation: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// `file:line` where the check is defined.
    pub source: String,
}

impl CheckMeta {
    /// `PACK/NAME`, the check's identity on the command line and in `/probe`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.pack, self.name)
    }
}
