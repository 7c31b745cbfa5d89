//! The `docker` kind: is the Docker engine reachable, and are the containers
//! that matter in the state they should be?
//!
//! Reachability is a ping and a version request (exported as
//! `healthprobe_docker_info{version,api_version}`). The point of this kind is
//! to tell apart what "cannot connect to the Docker daemon" lumps together, so
//! before connecting to a unix socket it looks at the socket file itself:
//! missing (`not_found`), present but not usable by the agent's user
//! (`permission_denied`, naming the socket's group and the `usermod` that
//! fixes it), present but nobody listening (`connection_refused`: a stale
//! socket of a dead daemon), or a daemon that accepts connections and never
//! answers (`timeout`: hung, or stopped with SIGSTOP).
//!
//! The optional `containers:` block selects containers by name, name prefix
//! or label and asserts on each one (running, healthy, restart count and its
//! growth since the previous run, mounts, extra hosts). The restart counts of
//! the previous run are kept in the check, so growth is measured between two
//! runs of the same check (a reload keeps it for an unchanged check; a
//! changed one starts over).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};
use super::{Family, Sample};
use crate::support::{blocking, net, users};

/// `healthprobe_docker_info{version,api_version}`: 1 when the engine answered.
pub static DOCKER_INFO: Family = Family::gauge(
    "healthprobe_docker_info",
    "The Docker engine's version and API version (value 1) when it answered.",
);

/// Where Docker listens when neither `host` nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The `docker:` block.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerSpec {
    /// The engine's endpoint: `unix:///path/to/docker.sock` or
    /// `tcp://127.0.0.1:2375` (plain HTTP, no TLS). Default: `$DOCKER_HOST`,
    /// else `unix:///var/run/docker.sock`.
    #[serde(default)]
    pub host: Option<String>,
    /// Assertions on containers; without this block only the engine is checked.
    #[serde(default)]
    pub containers: Option<ContainersSpec>,
}

/// Which containers to look at and what must hold for them. Selectors combine
/// (a container must match all that are given); at least one is required.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainersSpec {
    /// The container's exact name (without the leading `/`).
    #[serde(default)]
    pub name: Option<String>,
    /// The start of the container names, e.g. `openhands-runtime-`.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// A label the containers carry: `key` (any value) or `key=value`, e.g.
    /// `com.docker.compose.project=invoiceninja`.
    #[serde(default)]
    pub label: Option<String>,
    /// What the check's value counts and `expect.min_count` applies to:
    /// `all` matching containers (default) or only the `running` ones.
    #[serde(default)]
    pub count: CountWhat,
    /// What must hold.
    #[serde(default)]
    pub expect: ContainerExpect,
}

/// What the value counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountWhat {
    /// Every matching container, whatever its state.
    #[default]
    All,
    /// Matching containers that are running.
    Running,
}

/// Assertions on the selected containers. Every given assertion applies to
/// every matching container.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerExpect {
    /// At least this many containers must be counted (see `count`). Default 1.
    #[serde(default = "one")]
    pub min_count: u64,
    /// `true`: every matching container must be running (not exited,
    /// restarting, paused or created); `false`: none may be running.
    #[serde(default)]
    pub running: Option<bool>,
    /// `true`: a container that has a HEALTHCHECK must report `healthy`
    /// (`starting` and `unhealthy` fail); containers without one pass.
    #[serde(default)]
    pub healthy: bool,
    /// The most restarts a container may have had in its life.
    #[serde(default)]
    pub max_restart_count: Option<u64>,
    /// The most restarts a container may have had since the previous run of
    /// this check (0: any restart between two runs fails). The first run
    /// only records the counts.
    #[serde(default)]
    pub max_restart_growth: Option<u64>,
    /// Paths inside the container that must be mount destinations, e.g.
    /// `/var/run/docker.sock`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Extra `/etc/hosts` entries the container must have been created with,
    /// as given to `--add-host`, e.g. `host.docker.internal:host-gateway`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

fn one() -> u64 {
    1
}

impl Default for ContainerExpect {
    fn default() -> Self {
        ContainerExpect {
            min_count: 1,
            running: None,
            healthy: false,
            max_restart_count: None,
            max_restart_growth: None,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
        }
    }
}

/// Where the engine is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Parses a Docker host string (`unix:///path`, `tcp://host:port`,
/// `http://host:port`, or a bare absolute socket path).
pub fn parse_endpoint(host: &str) -> Result<Endpoint, String> {
    let h = host.trim();
    if let Some(path) = h.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "`{h}`: the socket path must be absolute (`unix:///var/run/docker.sock`)"
            ));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if h.starts_with('/') {
        return Ok(Endpoint::Unix(PathBuf::from(h)));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = h.strip_prefix(scheme) {
            let addr = rest.trim_end_matches('/');
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok || addr.contains('/') {
                return Err(format!(
                    "`{h}`: expected `{scheme}HOST:PORT`, e.g. `tcp://127.0.0.1:2375`"
                ));
            }
            return Ok(Endpoint::Tcp(addr.to_string()));
        }
    }
    Err(format!(
        "`{h}` is not an endpoint healthprobe can use: write `unix:///path/to/docker.sock` or \
         `tcp://HOST:PORT` (ssh:// and TLS endpoints are not supported)"
    ))
}

/// How containers are selected, with a description for messages.
#[derive(Clone, Debug)]
struct Selector {
    name: Option<String>,
    prefix: Option<String>,
    label: Option<(String, Option<String>)>,
}

impl Selector {
    fn matches_name(&self, name: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.prefix.as_deref().is_none_or(|p| name.starts_with(p))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("named `{n}`"));
        }
        if let Some(p) = &self.prefix {
            parts.push(format!("named `{p}*`"));
        }
        match &self.label {
            Some((k, Some(v))) => parts.push(format!("with label `{k}={v}`")),
            Some((k, None)) => parts.push(format!("with label `{k}`")),
            None => {}
        }
        parts.join(" ")
    }
}

/// A prepared `docker` check.
pub struct DockerCheck {
    /// The endpoint, or why the one from `$DOCKER_HOST` cannot be used.
    endpoint: Result<Endpoint, String>,
    containers: Option<(Selector, ContainersSpec)>,
    /// Restart counts seen by the previous run, by container id.
    restarts: Mutex<HashMap<String, u64>>,
}

impl Check for DockerCheck {
    type Spec = DockerSpec;

    fn build(spec: &DockerSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let endpoint = match &spec.host {
            Some(h) => {
                parse_endpoint(h).inspect_err(|e| errors.push(FieldError::new("host", e.clone())))
            }
            // The environment is the agent's own: a DOCKER_HOST we cannot use
            // fails the runs (saying why), not the whole configuration.
            None => match std::env::var("DOCKER_HOST") {
                Ok(h) if !h.trim().is_empty() => parse_endpoint(&h)
                    .map_err(|e| format!("DOCKER_HOST={e}; set `docker.host` to override it")),
                _ => Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))),
            },
        };
        let mut containers = None;
        if let Some(c) = &spec.containers {
            if c.name.is_none() && c.name_prefix.is_none() && c.label.is_none() {
                errors.push(FieldError::new(
                    "containers",
                    "select the containers with `name`, `name_prefix` or `label`",
                ));
            }
            if c.name.is_some() && c.name_prefix.is_some() {
                errors.push(FieldError::new(
                    "containers.name_prefix",
                    "give either `name` or `name_prefix`, not both",
                ));
            }
            for (field, v) in [("name", &c.name), ("name_prefix", &c.name_prefix)] {
                if let Some(v) = v
                    && (v.is_empty() || v.starts_with('/'))
                {
                    errors.push(FieldError::new(
                        format!("containers.{field}"),
                        "write the container name without a leading `/`, and not empty",
                    ));
                }
            }
            let label = match c.label.as_deref().map(str::trim) {
                None => None,
                Some("") => {
                    errors.push(FieldError::new(
                        "containers.label",
                        "write `key` or `key=value`",
                    ));
                    None
                }
                Some(l) => Some(match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (l.to_string(), None),
                }),
            };
            for (i, m) in c.expect.mounts.iter().enumerate() {
                if !m.starts_with('/') {
                    errors.push(FieldError::new(
                        format!("containers.expect.mounts[{i}]"),
                        format!("`{m}` is not an absolute path inside the container"),
                    ));
                }
            }
            for (i, h) in c.expect.extra_hosts.iter().enumerate() {
                if split_host_entry(h).is_none() {
                    errors.push(FieldError::new(
                        format!("containers.expect.extra_hosts[{i}]"),
                        format!(
                            "`{h}` is not `NAME:ADDRESS` (e.g. `host.docker.internal:host-gateway`)"
                        ),
                    ));
                }
            }
            if c.count == CountWhat::Running && c.expect.running == Some(false) {
                errors.push(FieldError::new(
                    "containers.expect.running",
                    "`running: false` contradicts `count: running`",
                ));
            }
            containers = Some((
                Selector {
                    name: c.name.clone(),
                    prefix: c.name_prefix.clone(),
                    label,
                },
                c.clone(),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DockerCheck {
            endpoint,
            containers,
            restarts: Mutex::new(HashMap::new()),
        })
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let endpoint = match &self.endpoint {
            Ok(e) => e,
            Err(why) => return Outcome::fail(Reason::InternalError, why.clone()),
        };
        let mut obs = Vec::new();
        if let Endpoint::Unix(path) = endpoint {
            // stat, access(2) and user/group names (NSS) may block.
            let path = path.clone();
            let pre = blocking::outcome("the Docker socket check", move || {
                preflight_socket(&path)
                    .err()
                    .unwrap_or_else(|| Outcome::ok(""))
            })
            .await;
            if !pre.success() {
                return pre;
            }
        }
        let docker = match connect(endpoint) {
            Ok(d) => d,
            Err(e) => return classify(endpoint, "connect", &e),
        };
        match within(ctx, docker.ping()).await {
            Some(Ok(_)) => obs.push(format!("ping {endpoint}: OK")),
            Some(Err(e)) => return classify(endpoint, "ping", &e),
            None => return timed_out(endpoint, "ping"),
        }
        let version = match within(ctx, docker.version()).await {
            Some(Ok(v)) => v,
            Some(Err(e)) => return classify(endpoint, "version", &e),
            None => return timed_out(endpoint, "version"),
        };
        let ver = version.version.clone().unwrap_or_else(|| "unknown".into());
        let api = version
            .api_version
            .clone()
            .unwrap_or_else(|| "unknown".into());
        obs.push(format!("version: Docker {ver}, API {api}"));
        let info = vec![Sample {
            family: &DOCKER_INFO,
            labels: vec![("version", ver.clone()), ("api_version", api.clone())],
            value: 1.0,
        }];
        let engine = format!("Docker {ver} (API {api}) at {endpoint}");
        let Some((selector, spec)) = &self.containers else {
            return Outcome::ok(format!("{engine} answers"))
                .with_samples(info)
                .with_observations(obs);
        };
        let outcome = match self
            .check_containers(&docker, endpoint, selector, spec, ctx)
            .await
        {
            Ok(o) => o,
            Err(o) => o,
        };
        outcome.with_samples(info).with_observations(obs)
    }
}

impl DockerCheck {
    async fn check_containers(
        &self,
        docker: &Docker,
        endpoint: &Endpoint,
        selector: &Selector,
        spec: &ContainersSpec,
        ctx: &RunContext,
    ) -> Result<Outcome, Outcome> {
        let mut options = ListContainersOptionsBuilder::new().all(true);
        if let Some((k, v)) = &selector.label {
            let filter = match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            };
            options = options.filters(&HashMap::from([("label", vec![filter])]));
        }
        let list = match within(ctx, docker.list_containers(Some(options.build()))).await {
            Some(Ok(l)) => l,
            Some(Err(e)) => return Err(classify(endpoint, "list containers", &e)),
            None => return Err(timed_out(endpoint, "list containers")),
        };
        let mut matched: Vec<(String, String)> = list
            .iter()
            .filter_map(|c| {
                let id = c.id.clone()?;
                let name = c
                    .names
                    .iter()
                    .flatten()
                    .map(|n| n.trim_start_matches('/'))
                    .find(|n| selector.matches_name(n))?
                    .to_string();
                Some((id, name))
            })
            .collect();
        matched.sort_by(|a, b| a.1.cmp(&b.1));

        let mut seen = Vec::new();
        for (id, name) in &matched {
            match within(ctx, docker.inspect_container(id, None)).await {
                Some(Ok(c)) => seen.push(Seen::from_inspect(name, &c)),
                // Removed between the list and the inspect: it no longer matches.
                Some(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })) => {}
                Some(Err(e)) => return Err(classify(endpoint, "inspect container", &e)),
                None => return Err(timed_out(endpoint, &format!("inspect {name}"))),
            }
        }

        let previous = {
            let mut state = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
            let previous = std::mem::take(&mut *state);
            state.extend(seen.iter().map(|s| (s.id.clone(), s.restart_count)));
            previous
        };
        Ok(evaluate(&seen, &previous, selector, spec))
    }
}

/// What the check needs of one container.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    id: String,
    name: String,
    status: String,
    running: bool,
    exit_code: Option<i64>,
    error: Option<String>,
    /// `None`: no HEALTHCHECK.
    health: Option<String>,
    health_streak: i64,
    health_output: Option<String>,
    restart_count: u64,
    mounts: Vec<String>,
    extra_hosts: Vec<String>,
}

impl Seen {
    fn from_inspect(name: &str, c: &ContainerInspectResponse) -> Seen {
        let state = c.state.clone().unwrap_or_default();
        let status = match state.status {
            Some(ContainerStateStatusEnum::EMPTY) | None => "unknown".to_string(),
            Some(s) => s.to_string(),
        };
        let health = state.health.as_ref().and_then(|h| match h.status {
            None | Some(HealthStatusEnum::EMPTY) | Some(HealthStatusEnum::NONE) => None,
            Some(s) => Some(s.to_string()),
        });
        let health_output = state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.last())
            .map(|r| {
                let out = r.output.as_deref().unwrap_or("").trim();
                match r.exit_code {
                    Some(code) if out.is_empty() => format!("exit code {code}"),
                    Some(code) => format!("exit code {code}: {}", clip(out, 120)),
                    None => clip(out, 120),
                }
            });
        Seen {
            id: c.id.clone().unwrap_or_default(),
            name: name.to_string(),
            running: state.running.unwrap_or(false) && status == "running",
            status,
            exit_code: state.exit_code,
            error: state.error.filter(|e| !e.is_empty()),
            health,
            health_streak: state
                .health
                .as_ref()
                .and_then(|h| h.failing_streak)
                .unwrap_or(0),
            health_output,
            restart_count: c.restart_count.unwrap_or(0).max(0) as u64,
            mounts: c
                .mounts
                .iter()
                .flatten()
                .filter_map(|m| m.destination.clone())
                .collect(),
            extra_hosts: c
                .host_config
                .as_ref()
                .and_then(|h| h.extra_hosts.clone())
                .unwrap_or_default(),
        }
    }

    /// "exited (exit code 1)", "restarting (exit code 1)", "running".
    fn state_text(&self) -> String {
        match (self.status.as_str(), self.exit_code) {
            ("running", _) | ("created", _) => self.status.clone(),
            (s, Some(code)) => {
                let mut t = format!("{s} (exit code {code}");
                if let Some(e) = &self.error {
                    t.push_str(&format!(": {}", clip(e, 120)));
                }
                t.push(')');
                t
            }
            (s, None) => s.to_string(),
        }
    }
}

/// Splits an `--add-host` entry into name and address (`name:addr` or `name=addr`).
fn split_host_entry(entry: &str) -> Option<(&str, &str)> {
    let i = entry.find([':', '='])?;
    let (name, addr) = (&entry[..i], &entry[i + 1..]);
    (!name.is_empty() && !addr.is_empty()).then_some((name, addr))
}

fn normalize_mount(p: &str) -> &str {
    match p.trim_end_matches('/') {
        "" => "/",
        t => t,
    }
}

/// The problems of one container, in words.
fn problems(c: &Seen, previous: &HashMap<String, u64>, expect: &ContainerExpect) -> Vec<String> {
    let mut out = Vec::new();
    match expect.running {
        Some(true) if !c.running => {
            let mut t = format!("not running: {}", c.state_text());
            // Said once: the restart-count assertion below words it too.
            if c.restart_count > 0 && expect.max_restart_count.is_none() {
                t.push_str(&format!(", restarted {}", n(c.restart_count, "time")));
            }
            out.push(t);
        }
        Some(false) if c.running => out.push("running, expected stopped".into()),
        _ => {}
    }
    if expect.healthy
        && let Some(h) = &c.health
        && h != "healthy"
    {
        let mut t = format!("health is {h}");
        if h == "unhealthy" {
            t.push_str(&format!(
                " ({} in a row",
                n(c.health_streak.max(0) as u64, "failed check")
            ));
            if let Some(o) = &c.health_output {
                t.push_str(&format!("; last: {o}"));
            }
            t.push(')');
        }
        out.push(t);
    }
    if let Some(max) = expect.max_restart_count
        && c.restart_count > max
    {
        out.push(format!(
            "restarted {} (max {max})",
            n(c.restart_count, "time")
        ));
    }
    if let Some(max) = expect.max_restart_growth
        && let Some(before) = previous.get(&c.id)
    {
        let growth = c.restart_count.saturating_sub(*before);
        if growth > max {
            out.push(format!(
                "restarted {} since the last run (max {max}; {} in all)",
                n(growth, "time"),
                c.restart_count
            ));
        }
    }
    for want in &expect.mounts {
        let want = normalize_mount(want);
        if !c.mounts.iter().any(|m| normalize_mount(m) == want) {
            let has = if c.mounts.is_empty() {
                "none".to_string()
            } else {
                c.mounts.join(", ")
            };
            out.push(format!("{want} is not mounted (mounts: {has})"));
        }
    }
    for want in &expect.extra_hosts {
        let Some(w) = split_host_entry(want) else {
            continue;
        };
        if !c.extra_hosts.iter().any(|h| split_host_entry(h) == Some(w)) {
            let has = if c.extra_hosts.is_empty() {
                "none".to_string()
            } else {
                c.extra_hosts.join(", ")
            };
            out.push(format!(
                "no extra host {}:{} (--add-host; has: {has})",
                w.0, w.1
            ));
        }
    }
    out
}

/// Turns what was seen into the outcome.
fn evaluate(
    seen: &[Seen],
    previous: &HashMap<String, u64>,
    selector: &Selector,
    spec: &ContainersSpec,
) -> Outcome {
    let what = |count: usize| format!("{} {}", noun(count, "container"), selector.describe());
    let running = seen.iter().filter(|c| c.running).count();
    let counted = match spec.count {
        CountWhat::All => seen.len(),
        CountWhat::Running => running,
    };
    let mut failures = Vec::new();
    for c in seen {
        let p = problems(c, previous, &spec.expect);
        if !p.is_empty() {
            failures.push(format!("{}: {}", c.name, p.join(", ")));
        }
    }
    let listing = || {
        seen.iter()
            .map(|c| format!("{} {}", c.name, c.state_text()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let obs = seen
        .iter()
        .map(|c| {
            format!(
                "{} ({}): {}, health {}, restarts {}, mounts [{}], extra hosts [{}]",
                c.name,
                &c.id[..c.id.len().min(12)],
                c.state_text(),
                c.health.as_deref().unwrap_or("none"),
                c.restart_count,
                c.mounts.join(", "),
                c.extra_hosts.join(", ")
            )
        })
        .collect();
    let value = counted as f64;
    let min = spec.expect.min_count;
    if (counted as u64) < min {
        let (reason, msg) = if seen.is_empty() {
            (
                Reason::NotFound,
                format!("no {} (expected at least {min})", what(0)),
            )
        } else {
            let kind = match spec.count {
                CountWhat::All => "",
                CountWhat::Running => " running",
            };
            (
                Reason::AssertionFailed,
                format!(
                    "{counted}{kind} {}, expected at least {min}: {}",
                    what(counted),
                    listing()
                ),
            )
        };
        let msg = if failures.is_empty() {
            msg
        } else {
            format!("{msg}; {}", failures.join("; "))
        };
        return Outcome::fail(reason, msg)
            .with_value(value)
            .with_observations(obs);
    }
    if !failures.is_empty() {
        return Outcome::fail(
            Reason::AssertionFailed,
            format!(
                "{} of {} {} failing: {}",
                failures.len(),
                seen.len(),
                what(seen.len()),
                failures.join("; ")
            ),
        )
        .with_value(value)
        .with_observations(obs);
    }
    let msg = if seen.is_empty() {
        format!("no {}, as allowed (min_count 0)", what(0))
    } else {
        format!(
            "{} {} ({running} running): all as expected",
            seen.len(),
            what(seen.len())
        )
    };
    Outcome::ok(msg).with_value(value).with_observations(obs)
}

/// `1 time`, `2 times`.
fn n(count: u64, what: &str) -> String {
    format!("{count} {}", noun(count as usize, what))
}

/// `container` or `containers`.
fn noun(count: usize, what: &str) -> String {
    if count == 1 {
        what.to_string()
    } else {
        format!("{what}s")
    }
}

/// Looks at the socket file before connecting, to say which of "missing",
/// "not allowed" or "not a socket" it is.
fn preflight_socket(path: &Path) -> Result<(), Outcome> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Outcome::fail(
                Reason::NotFound,
                format!(
                    "the Docker socket {shown} does not exist: the Docker daemon is not running \
                     or not installed here (`sudo systemctl start docker`); if Docker listens \
                     elsewhere (rootless, Desktop), set `docker.host` or DOCKER_HOST"
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let user = agent_user();
            return Err(Outcome::fail(
                Reason::PermissionDenied,
                format!(
                    "cannot reach the Docker socket {shown}: a directory on its path is not \
                     searchable by the agent's user `{user}` ({e})"
                ),
            ));
        }
        Err(e) => {
            return Err(Outcome::fail(
                Reason::from_io(&e),
                format!("cannot look at the Docker socket {shown}: {e}"),
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Outcome::fail(
            Reason::NotFound,
            format!(
                "{shown} exists but is not a socket: a leftover file where the Docker daemon \
                 should listen (a bind mount of a missing socket creates a directory; remove \
                 it and restart Docker)"
            ),
        ));
    }
    let usable = rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS,
    );
    if usable.is_err() {
        return Err(Outcome::fail(
            Reason::PermissionDenied,
            permission_message(path, meta.uid(), meta.gid(), meta.mode()),
        ));
    }
    Ok(())
}

/// The name of the user the agent runs as.
fn agent_user() -> String {
    users::user_name(rustix::process::geteuid().as_raw())
}

/// Says who may use the socket, and the one command that lets the agent in.
fn permission_message(path: &Path, uid: u32, gid: u32, mode: u32) -> String {
    let user = agent_user();
    let group = users::group_name(gid);
    let owner = users::user_name(uid);
    let head = format!(
        "permission denied on the Docker socket {} (owner {owner}, group {group}, mode {:04o}): \
         the agent runs as `{user}`",
        path.display(),
        mode & 0o7777
    );
    if gid == 0 {
        return format!(
            "{head}, and the socket's group is root: have dockerd create it with group `docker` \
             (`sudo groupadd docker`, then restart Docker), then `sudo usermod -aG docker {user}` \
             and restart the agent"
        );
    }
    let in_group_now = rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups()
            .map(|g| g.iter().any(|g| g.as_raw() == gid))
            .unwrap_or(false);
    let listed = users::lookup_user(&user)
        .map(|a| a.groups.contains(&gid))
        .unwrap_or(false);
    if !in_group_now && listed {
        format!(
            "{head}, who was added to group `{group}` after the agent started: restart the \
             agent (or log in again) so the new group applies"
        )
    } else if mode & 0o060 != 0o060 {
        format!(
            "{head}; the socket's group `{group}` may not read and write it: \
             `sudo chmod 660 {}`",
            path.display()
        )
    } else {
        format!(
            "{head}, who is not in the socket's group `{group}`: \
             `sudo usermod -aG {group} {user}`, then restart the agent"
        )
    }
}

fn connect(endpoint: &Endpoint) -> Result<Docker, bollard::errors::Error> {
    // bollard's own timeout is in whole seconds and covers each request; every
    // call here also runs under the check's deadline, which is what counts.
    match endpoint {
        Endpoint::Unix(path) => {
            Docker::connect_with_unix(&path.to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
        }
        Endpoint::Tcp(addr) => {
            Docker::connect_with_http(&format!("http://{addr}"), 120, bollard::API_DEFAULT_VERSION)
        }
    }
}

/// Runs one request under the check's (soft) deadline.
async fn within<T>(ctx: &RunContext, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(net::soft_deadline(ctx.deadline), fut)
        .await
        .ok()
}

fn timed_out(endpoint: &Endpoint, step: &str) -> Outcome {
    Outcome::fail(
        Reason::Timeout,
        format!(
            "the Docker daemon at {endpoint} accepted the connection but did not answer \
             ({step}) before the check's timeout: it is hung or overloaded (`systemctl status \
             docker`, `journalctl -u docker`)"
        ),
    )
}

/// Maps a bollard error to a reason and a message that says what to do.
fn classify(endpoint: &Endpoint, step: &str, err: &bollard::errors::Error) -> Outcome {
    use bollard::errors::Error as E;
    match err {
        E::SocketNotFoundError(p) => {
            return Outcome::fail(
                Reason::NotFound,
                format!("the Docker socket {p} does not exist (it vanished while connecting)"),
            );
        }
        E::RequestTimeoutError => return timed_out(endpoint, step),
        E::DockerResponseServerError {
            status_code,
            message,
        } => {
            return Outcome::fail(
                Reason::ProtocolError,
                format!(
                    "the Docker daemon at {endpoint} answered {step} with HTTP {status_code}: {}",
                    clip(message, 200)
                ),
            );
        }
        E::JsonDataError { .. } | E::JsonSerdeError { .. } => {
            return Outcome::fail(
                Reason::ProtocolError,
                format!(
                    "{endpoint} did not answer {step} like a Docker engine ({err}): is it the \
                     Docker API?"
                ),
            );
        }
        _ => {}
    }
    let io = io_cause(err);
    match io.map(|e| e.kind()) {
        Some(std::io::ErrorKind::ConnectionRefused) => Outcome::fail(
            Reason::ConnectionRefused,
            match endpoint {
                Endpoint::Unix(p) => format!(
                    "nothing listens on the Docker socket {} (connection refused): the file is \
                     left over from a daemon that is not running any more \
                     (`sudo systemctl restart docker`)",
                    p.display()
                ),
                Endpoint::Tcp(a) => format!(
                    "nothing listens on {a} (connection refused): the Docker daemon is not \
                     running, or not listening on TCP (`-H tcp://{a}`)"
                ),
            },
        ),
        Some(std::io::ErrorKind::PermissionDenied) => Outcome::fail(
            Reason::PermissionDenied,
            match endpoint {
                // The file's permissions allowed it (see `preflight_socket`).
                Endpoint::Unix(p) => format!(
                    "permission denied connecting to the Docker socket {} although its file \
                     permissions allow the agent: a security module (SELinux, AppArmor) or a \
                     container runtime refuses it",
                    p.display()
                ),
                Endpoint::Tcp(a) => format!("permission denied connecting to {a}"),
            },
        ),
        Some(std::io::ErrorKind::NotFound) => Outcome::fail(
            Reason::NotFound,
            format!(
                "the Docker endpoint {endpoint} does not exist ({})",
                net::error_chain(err)
            ),
        ),
        Some(std::io::ErrorKind::TimedOut) => timed_out(endpoint, step),
        Some(_) => {
            let e = io.expect("matched Some");
            Outcome::fail(
                Reason::from_io(e),
                format!(
                    "talking to the Docker daemon at {endpoint} ({step}) failed: {}",
                    net::error_chain(err)
                ),
            )
        }
        None => Outcome::fail(
            Reason::ProtocolError,
            format!(
                "talking to the Docker daemon at {endpoint} ({step}) failed: {}",
                net::error_chain(err)
            ),
        ),
    }
}

/// The first I/O error in an error's cause chain.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// At most `max` bytes of what the daemon said, printable.
fn clip(s: &str, max: usize) -> String {
    net::excerpt(s.trim().as_bytes(), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn spec(text: &str) -> DockerSpec {
        let node = yaml::parse(text).unwrap().unwrap();
        yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap()
    }

    fn build_err(text: &str) -> Vec<FieldError> {
        crate::support::testing::build_errors::<DockerCheck>(text).0
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            parse_endpoint("/run/user/1000/docker.sock").unwrap(),
            Endpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            parse_endpoint("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert!(
            parse_endpoint("ssh://me@host")
                .unwrap_err()
                .contains("ssh:// and TLS endpoints are not supported")
        );
        assert!(
            parse_endpoint("tcp://127.0.0.1")
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(
            parse_endpoint("unix://docker.sock")
                .unwrap_err()
                .contains("absolute")
        );
    }

    #[test]
    fn build_collects_every_problem() {
        let errs = build_err(
            "host: ssh://x\ncontainers:\n  name: a\n  name_prefix: b\n  count: running\n  \
             expect:\n    running: false\n    mounts: [var/run/docker.sock]\n    extra_hosts: [nocolon]\n",
        );
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "host",
                "containers.name_prefix",
                "containers.expect.mounts[0]",
                "containers.expect.extra_hosts[0]",
                "containers.expect.running"
            ]
        );
        let errs = build_err("containers:\n  expect: { min_count: 2 }\n");
        assert_eq!(errs[0].path, "containers");
        assert!(errs[0].message.contains("name_prefix"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let node = yaml::parse("containers:\n  name: a\n  expect:\n    helthy: true\n")
            .unwrap()
            .unwrap();
        let e = yaml::from_node::<DockerSpec>(&node, "", &|s: &str| Ok(s.to_string())).unwrap_err();
        assert_eq!(e.path, "containers.expect.helthy");
    }

    fn seen(name: &str, status: &str) -> Seen {
        Seen {
            id: format!("id-{name}"),
            name: name.into(),
            status: status.into(),
            running: status == "running",
            exit_code: (status != "running").then_some(1),
            error: None,
            health: None,
            health_streak: 0,
            health_output: None,
            restart_count: 0,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
        }
    }

    fn selector() -> Selector {
        Selector {
            name: None,
            prefix: Some("rt-".into()),
            label: None,
        }
    }

    fn containers(text: &str) -> ContainersSpec {
        spec(&format!("containers:\n{text}")).containers.unwrap()
    }

    #[test]
    fn counts_and_states() {
        let spec = containers("  name_prefix: rt-\n  count: running\n  expect: { min_count: 2 }\n");
        let all = [seen("rt-a", "running"), seen("rt-b", "exited")];
        let o = evaluate(&all, &HashMap::new(), &selector(), &spec);
        assert_eq!(o.reason, Reason::AssertionFailed);
        assert_eq!(o.value, Some(1.0));
        assert_eq!(
            o.message,
            "1 running container named `rt-*`, expected at least 2: rt-a running, rt-b exited (exit code 1)"
        );
        let o = evaluate(&[], &HashMap::new(), &selector(), &spec);
        assert_eq!(o.reason, Reason::NotFound);
        assert_eq!(
            o.message,
            "no containers named `rt-*` (expected at least 2)"
        );

        let spec = containers("  name_prefix: rt-\n  expect: { running: true }\n");
        let mut restarting = seen("rt-c", "restarting");
        restarting.restart_count = 4;
        let o = evaluate(
            &[all[0].clone(), all[1].clone(), restarting],
            &HashMap::new(),
            &selector(),
            &spec,
        );
        assert_eq!(o.reason, Reason::AssertionFailed);
        assert_eq!(o.value, Some(3.0));
        assert_eq!(
            o.message,
            "2 of 3 containers named `rt-*` failing: rt-b: not running: exited (exit code 1); \
             rt-c: not running: restarting (exit code 1), restarted 4 times"
        );
    }

    #[test]
    fn health_restarts_mounts_hosts() {
        let spec = containers(
            "  name: rt-a\n  expect:\n    healthy: true\n    max_restart_count: 5\n    \
             max_restart_growth: 0\n    mounts: [/var/run/docker.sock]\n    \
             extra_hosts: [host.docker.internal:host-gateway]\n",
        );
        let mut c = seen("rt-a", "running");
        c.health = Some("unhealthy".into());
        c.health_streak = 3;
        c.health_output = Some("exit code 1".into());
        c.restart_count = 7;
        c.mounts = vec!["/data/".into()];
        c.extra_hosts = vec!["db:10.0.0.1".into()];
        let prev = HashMap::from([("id-rt-a".to_string(), 6u64)]);
        let o = evaluate(&[c.clone()], &prev, &selector(), &spec);
        assert_eq!(
            o.message,
            "1 of 1 container named `rt-*` failing: rt-a: health is unhealthy (3 failed checks \
             in a row; last: exit code 1), restarted 7 times (max 5), restarted 1 time since \
             the last run (max 0; 7 in all), /var/run/docker.sock is not mounted (mounts: \
             /data/), no extra host host.docker.internal:host-gateway (--add-host; has: \
             db:10.0.0.1)"
        );
        c.health = Some("healthy".into());
        c.restart_count = 2;
        c.mounts = vec!["/var/run/docker.sock".into()];
        c.extra_hosts = vec!["host.docker.internal=host-gateway".into()];
        let prev = HashMap::from([("id-rt-a".to_string(), 2u64)]);
        let o = evaluate(&[c.clone()], &prev, &selector(), &spec);
        assert!(o.success(), "{}", o.message);
        // No baseline on the first run: growth is not judged.
        c.restart_count = 4;
        let o = evaluate(&[c], &HashMap::new(), &selector(), &spec);
        assert!(o.success(), "{}", o.message);
    }
}
