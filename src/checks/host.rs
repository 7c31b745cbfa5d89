//! The `host` kind: the machine's own resources, read with sysinfo. One kind
//! with a `resource` field (`disk`, `memory`, `swap`, `load`) rather than four
//! kinds, because they share everything but the numbers.
//!
//! - disk: free space of one mount point, or of every real file system
//!   (`all`: pseudo and image file systems such as tmpfs, overlay and squashfs
//!   are left out, and bind mounts of one device count once). The value is the
//!   free ratio of the worst one. Free means available to unprivileged users
//!   (`f_bavail`), which is what the application sees.
//! - memory: available memory (what can be had without swapping).
//! - swap: total swap (is there any) and how much is used.
//! - load: the 1, 5 or 15 minute load average divided by the number of CPUs.
//!
//! Each run reads only what its resource needs and keeps nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, System};

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};
use super::{Family, Sample};
use crate::support::blocking;
use crate::support::units::{bytes, percent};

/// Declares the kind's gauge families.
macro_rules! gauges {
    ($($id:ident = $name:literal, $help:literal;)*) => {
        $(pub static $id: Family = Family::gauge($name, $help);)*
    };
}

gauges! {
    DISK_FREE_BYTES = "healthprobe_host_disk_free_bytes",
        "Space available to unprivileged users on the file system, by mount point.";
    DISK_SIZE_BYTES = "healthprobe_host_disk_size_bytes", "Size of the file system, by mount point.";
    MEMORY_AVAILABLE_BYTES = "healthprobe_host_memory_available_bytes", "Memory available without swapping.";
    MEMORY_TOTAL_BYTES = "healthprobe_host_memory_total_bytes", "Total memory.";
    SWAP_TOTAL_BYTES = "healthprobe_host_swap_total_bytes", "Total swap space.";
    SWAP_USED_BYTES = "healthprobe_host_swap_used_bytes", "Swap space in use.";
    LOAD_AVERAGE = "healthprobe_host_load_average", "System load average, by window (1m, 5m, 15m).";
    CPUS = "healthprobe_host_cpus", "Number of CPUs the load average is divided by.";
}

/// File system types that hold no user data, or whose free space means
/// nothing (images, memory, kernel interfaces): left out of `mount: all`, but
/// checked when their mount point is named.
const PSEUDO_FS: &[&str] = &[
    "tmpfs",
    "devtmpfs",
    "ramfs",
    "overlay",
    "aufs",
    "squashfs",
    "iso9660",
    "udf",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "hugetlbfs",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "fuse.lxcfs",
    "fuse.snapfuse",
    "fuse.squashfuse",
];

/// The `host:` block.
///
/// ```yaml
/// host: { resource: disk, mount: all, expect: { min_free_percent: 5 } }
/// host: { resource: load, window: 5m, expect: { max_per_core: 2 } }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// What to measure: `disk`, `memory`, `swap` or `load`.
    pub resource: Resource,
    /// disk only: a mount point (`/`, `/var/lib/docker`) or `all` (default):
    /// every real file system. A path that is not itself a mount point is
    /// checked on the file system that holds it.
    #[serde(default)]
    pub mount: Option<String>,
    /// load only: the load average window, `1m`, `5m` (default) or `15m`.
    #[serde(default)]
    pub window: Option<LoadWindow>,
    /// The thresholds; only those of the chosen resource are allowed.
    #[serde(default)]
    pub expect: HostExpect,
}

/// A host resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Free space on file systems.
    Disk,
    /// Available memory.
    Memory,
    /// Swap space.
    Swap,
    /// Load average per CPU.
    Load,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Disk => "disk",
            Resource::Memory => "memory",
            Resource::Swap => "swap",
            Resource::Load => "load",
        }
    }
}

/// A load average window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum LoadWindow {
    /// The last minute.
    #[serde(rename = "1m")]
    One,
    /// The last 5 minutes.
    #[serde(rename = "5m")]
    #[default]
    Five,
    /// The last 15 minutes.
    #[serde(rename = "15m")]
    Fifteen,
}

impl LoadWindow {
    fn as_str(self) -> &'static str {
        match self {
            LoadWindow::One => "1m",
            LoadWindow::Five => "5m",
            LoadWindow::Fifteen => "15m",
        }
    }
}

/// Thresholds. Percentages are 0 to 100.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostExpect {
    /// disk: the least free space, as a percentage of the file system's size.
    #[serde(default)]
    pub min_free_percent: Option<f64>,
    /// disk: the least free space, in bytes.
    #[serde(default)]
    pub min_free_bytes: Option<u64>,
    /// memory: the least available memory, as a percentage of the total.
    #[serde(default)]
    pub min_available_percent: Option<f64>,
    /// memory: the least available memory, in bytes.
    #[serde(default)]
    pub min_available_bytes: Option<u64>,
    /// swap: the least total swap, in bytes (`1`: there is swap at all).
    #[serde(default)]
    pub min_total_bytes: Option<u64>,
    /// swap: the most swap in use, as a percentage of the total.
    #[serde(default)]
    pub max_used_percent: Option<f64>,
    /// load: the highest load average per CPU over the window.
    #[serde(default)]
    pub max_per_core: Option<f64>,
}

/// A prepared `host` check.
pub struct HostCheck {
    resource: Resource,
    /// `None` for all file systems.
    mount: Option<PathBuf>,
    window: LoadWindow,
    expect: HostExpect,
}

impl Check for HostCheck {
    type Spec = HostSpec;

    fn build(spec: &HostSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &spec.expect;
        let r = spec.resource;
        let fields: [(&str, bool, Resource); 7] = [
            (
                "min_free_percent",
                e.min_free_percent.is_some(),
                Resource::Disk,
            ),
            ("min_free_bytes", e.min_free_bytes.is_some(), Resource::Disk),
            (
                "min_available_percent",
                e.min_available_percent.is_some(),
                Resource::Memory,
            ),
            (
                "min_available_bytes",
                e.min_available_bytes.is_some(),
                Resource::Memory,
            ),
            (
                "min_total_bytes",
                e.min_total_bytes.is_some(),
                Resource::Swap,
            ),
            (
                "max_used_percent",
                e.max_used_percent.is_some(),
                Resource::Swap,
            ),
            ("max_per_core", e.max_per_core.is_some(), Resource::Load),
        ];
        for (field, set, owner) in fields {
            if set && owner != r {
                errors.push(FieldError::new(
                    format!("expect.{field}"),
                    format!(
                        "`{field}` is a threshold for `resource: {}`, not `{}`",
                        owner.as_str(),
                        r.as_str()
                    ),
                ));
            }
        }
        if !fields.iter().any(|(_, set, owner)| *set && *owner == r) {
            let names: Vec<&str> = fields
                .iter()
                .filter(|(_, _, o)| *o == r)
                .map(|(f, _, _)| *f)
                .collect();
            errors.push(FieldError::new(
                "expect",
                format!(
                    "give a threshold for `resource: {}`: {}",
                    r.as_str(),
                    names.join(" or ")
                ),
            ));
        }
        for (field, v) in [
            ("min_free_percent", e.min_free_percent),
            ("min_available_percent", e.min_available_percent),
            ("max_used_percent", e.max_used_percent),
        ] {
            if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                errors.push(FieldError::new(
                    format!("expect.{field}"),
                    "a percentage is between 0 and 100",
                ));
            }
        }
        if e.max_per_core.is_some_and(|v| v.is_nan() || v <= 0.0) {
            errors.push(FieldError::new("expect.max_per_core", "must be above 0"));
        }
        if spec.mount.is_some() && r != Resource::Disk {
            errors.push(FieldError::new("mount", "`mount` is for `resource: disk`"));
        }
        if spec.window.is_some() && r != Resource::Load {
            errors.push(FieldError::new(
                "window",
                "`window` is for `resource: load`",
            ));
        }
        let mount = match spec.mount.as_deref().map(str::trim) {
            None | Some("all") => None,
            Some(m) if m.starts_with('/') => Some(PathBuf::from(m)),
            Some(m) => {
                errors.push(FieldError::new(
                    "mount",
                    format!("`{m}` is neither `all` nor an absolute mount point"),
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HostCheck {
            resource: r,
            mount,
            window: spec.window.unwrap_or_default(),
            expect: e.clone(),
        })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        let job = Job {
            resource: self.resource,
            mount: self.mount.clone(),
            window: self.window,
            expect: self.expect.clone(),
        };
        blocking::outcome("reading host resources", move || job.measure()).await
    }
}

/// One run, owned for the blocking thread.
struct Job {
    resource: Resource,
    mount: Option<PathBuf>,
    window: LoadWindow,
    expect: HostExpect,
}

/// One file system's numbers.
#[derive(Clone, Debug, PartialEq)]
struct Fs {
    mount: String,
    device: String,
    fs_type: String,
    free: u64,
    size: u64,
}

impl Fs {
    fn ratio(&self) -> f64 {
        if self.size == 0 {
            1.0
        } else {
            self.free as f64 / self.size as f64
        }
    }
}

impl Job {
    fn measure(&self) -> Outcome {
        match self.resource {
            Resource::Disk => self.disk(),
            Resource::Memory => self.memory(),
            Resource::Swap => self.swap(),
            Resource::Load => self.load(),
        }
    }

    fn disk(&self) -> Outcome {
        let disks = match Disks::new_with_refreshed_list_specifics(
            DiskRefreshKind::nothing().with_storage(),
        ) {
            Ok(d) => d,
            Err(e) => {
                return Outcome::fail(
                    Reason::InternalError,
                    format!("cannot list file systems: {e}"),
                );
            }
        };
        let listed: Vec<Fs> = disks
            .iter()
            .map(|d| Fs {
                mount: d.mount_point().display().to_string(),
                device: d.name().to_string_lossy().into_owned(),
                fs_type: d.file_system().to_string_lossy().into_owned(),
                free: d.available_space(),
                size: d.total_space(),
            })
            .collect();
        let (checked, note) = match &self.mount {
            None => (real_filesystems(listed), String::new()),
            Some(m) => match named(&listed, m) {
                Ok(found) => found,
                Err(o) => return o,
            },
        };
        if checked.is_empty() {
            return Outcome::fail(
                Reason::NotFound,
                "no real file system found to check (only pseudo file systems are mounted)",
            );
        }
        let samples = checked
            .iter()
            .flat_map(|fs| {
                [
                    sample(
                        &DISK_FREE_BYTES,
                        vec![("mount", fs.mount.clone())],
                        fs.free as f64,
                    ),
                    sample(
                        &DISK_SIZE_BYTES,
                        vec![("mount", fs.mount.clone())],
                        fs.size as f64,
                    ),
                ]
            })
            .collect();
        let seen: Vec<String> = checked
            .iter()
            .map(|fs| {
                format!(
                    "{} ({} on {}): {} free of {}",
                    fs.mount,
                    fs.fs_type,
                    fs.device,
                    bytes(fs.free),
                    bytes(fs.size)
                )
            })
            .collect();
        let worst = checked
            .iter()
            .min_by(|a, b| a.ratio().total_cmp(&b.ratio()))
            .expect("not empty");
        let mut problems = Vec::new();
        for fs in &checked {
            let state = format!(
                "{}{note} has {} free ({} of {})",
                fs.mount,
                percent(fs.ratio()),
                bytes(fs.free),
                bytes(fs.size)
            );
            if let Some(min) = self.expect.min_free_percent
                && fs.ratio() * 100.0 < min
            {
                problems.push(format!("{state}, below the minimum {min}%"));
            } else if let Some(min) = self.expect.min_free_bytes
                && fs.free < min
            {
                problems.push(format!("{state}, below the minimum {}", bytes(min)));
            }
        }
        let outcome = if problems.is_empty() {
            Outcome::ok(if checked.len() == 1 {
                format!(
                    "{}{note} has {} free ({} of {})",
                    worst.mount,
                    percent(worst.ratio()),
                    bytes(worst.free),
                    bytes(worst.size)
                )
            } else {
                format!(
                    "{} file systems checked; the fullest, {}, has {} free ({} of {})",
                    checked.len(),
                    worst.mount,
                    percent(worst.ratio()),
                    bytes(worst.free),
                    bytes(worst.size)
                )
            })
        } else {
            Outcome::fail(Reason::AssertionFailed, problems.join("; "))
        };
        outcome
            .with_value(worst.ratio())
            .with_samples(samples)
            .with_observations(seen)
    }

    fn memory(&self) -> Outcome {
        let mut sys = match System::new() {
            Ok(s) => s,
            Err(e) => return unreadable("memory", &e),
        };
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = sys.total_memory();
        let avail = sys.available_memory();
        if total == 0 {
            return Outcome::fail(Reason::InternalError, "the total memory reads as 0");
        }
        let ratio = avail as f64 / total as f64;
        let state = format!(
            "{} of memory available ({} of {})",
            percent(ratio),
            bytes(avail),
            bytes(total)
        );
        let problem = if let Some(min) = self.expect.min_available_percent
            && ratio * 100.0 < min
        {
            Some(format!("{state}, below the minimum {min}%"))
        } else if let Some(min) = self.expect.min_available_bytes
            && avail < min
        {
            Some(format!("{state}, below the minimum {}", bytes(min)))
        } else {
            None
        };
        verdict(problem, state, ratio).with_samples(vec![
            sample(&MEMORY_AVAILABLE_BYTES, vec![], avail as f64),
            sample(&MEMORY_TOTAL_BYTES, vec![], total as f64),
        ])
    }

    fn swap(&self) -> Outcome {
        let mut sys = match System::new() {
            Ok(s) => s,
            Err(e) => return unreadable("swap", &e),
        };
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_swap());
        let total = sys.total_swap();
        let used = sys.used_swap();
        let ratio = if total == 0 {
            0.0
        } else {
            used as f64 / total as f64
        };
        let state = if total == 0 {
            "there is no swap".to_string()
        } else {
            format!(
                "{} of swap in use ({} of {})",
                percent(ratio),
                bytes(used),
                bytes(total)
            )
        };
        let problem = if let Some(min) = self.expect.min_total_bytes
            && total < min
        {
            Some(if total == 0 {
                "there is no swap at all".to_string()
            } else {
                format!(
                    "{state}: the swap is smaller than the minimum {}",
                    bytes(min)
                )
            })
        } else if let Some(max) = self.expect.max_used_percent
            && ratio * 100.0 > max
        {
            Some(format!("{state}, above the maximum {max}%"))
        } else {
            None
        };
        verdict(problem, state, ratio).with_samples(vec![
            sample(&SWAP_TOTAL_BYTES, vec![], total as f64),
            sample(&SWAP_USED_BYTES, vec![], used as f64),
        ])
    }

    fn load(&self) -> Outcome {
        let avg = match System::load_average() {
            Ok(a) => a,
            Err(e) => return unreadable("the load average", &e),
        };
        let mut sys = match System::new() {
            Ok(s) => s,
            Err(e) => return unreadable("the CPU list", &e),
        };
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        let cpus = sys.cpus().len().max(1);
        let load = match self.window {
            LoadWindow::One => avg.one,
            LoadWindow::Five => avg.five,
            LoadWindow::Fifteen => avg.fifteen,
        };
        let per_core = load / cpus as f64;
        let w = self.window.as_str();
        let state = format!(
            "the {w} load average is {load:.2} on {cpus} CPU{}, {per_core:.2} per CPU",
            if cpus == 1 { "" } else { "s" }
        );
        let problem = match self.expect.max_per_core {
            Some(max) if per_core > max => {
                Some(format!("{state}, above the maximum {max} per CPU"))
            }
            _ => None,
        };
        let windows = [("1m", avg.one), ("5m", avg.five), ("15m", avg.fifteen)];
        let mut samples: Vec<Sample> = windows
            .iter()
            .map(|(w, v)| sample(&LOAD_AVERAGE, vec![("window", w.to_string())], *v))
            .collect();
        samples.push(sample(&CPUS, vec![], cpus as f64));
        verdict(problem, state, per_core).with_samples(samples)
    }
}

/// Fails with the problem, or passes with the state; either way with the value.
fn verdict(problem: Option<String>, state: String, value: f64) -> Outcome {
    match problem {
        Some(p) => Outcome::fail(Reason::AssertionFailed, p),
        None => Outcome::ok(state),
    }
    .with_value(value)
}

fn sample(family: &'static Family, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample {
        family,
        labels,
        value,
    }
}

fn unreadable(what: &str, e: &dyn std::fmt::Display) -> Outcome {
    Outcome::fail(Reason::InternalError, format!("cannot read {what}: {e}"))
}

/// The file systems `mount: all` checks: no pseudo file systems, no empty
/// ones, and each device once (at its shortest mount point), since bind
/// mounts of one device share its free space.
fn real_filesystems(listed: Vec<Fs>) -> Vec<Fs> {
    let mut sorted: Vec<Fs> = listed
        .into_iter()
        .filter(|fs| fs.size > 0 && !is_pseudo(&fs.fs_type))
        .collect();
    sorted.sort_by(|a, b| {
        a.mount
            .len()
            .cmp(&b.mount.len())
            .then(a.mount.cmp(&b.mount))
    });
    let mut devices = HashSet::new();
    sorted
        .into_iter()
        .filter(|fs| devices.insert(fs.device.clone()))
        .collect()
}

fn is_pseudo(fs_type: &str) -> bool {
    PSEUDO_FS.contains(&fs_type)
}

/// The file system for a named mount point: listed by sysinfo, or read
/// directly (sysinfo leaves out tmpfs and the like, which a user may still
/// name), or the file system that holds the path. The note says which.
fn named(listed: &[Fs], mount: &Path) -> Result<(Vec<Fs>, String), Outcome> {
    let shown = mount.display().to_string();
    if let Some(fs) = listed.iter().find(|fs| Path::new(&fs.mount) == mount) {
        return Ok((vec![fs.clone()], String::new()));
    }
    let holder = holding_mount(mount);
    let stat = rustix::fs::statvfs(mount);
    match (holder, stat) {
        (Some((point, device, fs_type)), Ok(st)) => {
            let fs = Fs {
                mount: point.clone(),
                device,
                fs_type,
                free: st.f_bavail.saturating_mul(st.f_frsize),
                size: st.f_blocks.saturating_mul(st.f_frsize),
            };
            let note = if point == shown {
                String::new()
            } else {
                format!(" (which holds {shown}; {shown} is not a mount point of its own)")
            };
            Ok((vec![fs], note))
        }
        (_, Err(e)) => {
            let mounted: Vec<&str> = real_mounts(listed);
            Err(Outcome::fail(
                if e == rustix::io::Errno::NOENT {
                    Reason::NotFound
                } else {
                    Reason::from_io(&e.into())
                },
                format!(
                    "{shown}: {}; mounted file systems: {}",
                    std::io::Error::from(e),
                    mounted.join(", ")
                ),
            ))
        }
        (None, Ok(_)) => Err(Outcome::fail(
            Reason::NotFound,
            format!("cannot find which file system holds {shown} in /proc/self/mounts"),
        )),
    }
}

fn real_mounts(listed: &[Fs]) -> Vec<&str> {
    listed
        .iter()
        .filter(|fs| !is_pseudo(&fs.fs_type))
        .map(|fs| fs.mount.as_str())
        .collect()
}

/// The mount point (with device and type) whose path is the longest prefix of
/// `path`, from `/proc/self/mounts`.
fn holding_mount(path: &Path) -> Option<(String, String, String)> {
    let table = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    parse_mounts(&table)
        .into_iter()
        .filter(|(point, _, _)| path.starts_with(point))
        .max_by_key(|(point, _, _)| point.len())
}

/// `(mount point, device, type)` for each line of a mounts table; the octal
/// escapes of spaces and tabs are decoded.
fn parse_mounts(table: &str) -> Vec<(String, String, String)> {
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    table
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let device = f.next()?;
            let point = f.next()?;
            let fs_type = f.next()?;
            Some((unescape(point), unescape(device), fs_type.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::support::testing::build_errors;

    fn build(text: &str) -> Result<HostCheck, Vec<FieldError>> {
        crate::support::testing::build(text)
    }

    fn fs(mount: &str, device: &str, fs_type: &str) -> Fs {
        Fs {
            mount: mount.into(),
            device: device.into(),
            fs_type: fs_type.into(),
            free: 1,
            size: 2,
        }
    }

    #[test]
    fn thresholds_must_fit_the_resource() {
        let (errs, paths) = build_errors::<HostCheck>(
            "resource: memory\nmount: /\nexpect: { min_free_percent: 5 }",
        );
        assert_eq!(paths, ["expect.min_free_percent", "expect", "mount"]);
        assert!(errs[1].message.contains("min_available_percent"));
        let (_, paths) =
            build_errors::<HostCheck>("resource: disk\nexpect: { min_free_percent: 150 }");
        assert_eq!(paths, ["expect.min_free_percent"]);
        assert!(build("resource: disk\nmount: data\nexpect: { min_free_bytes: 1 }").is_err());
    }

    #[test]
    fn windows_parse() {
        let c = build("resource: load\nwindow: 15m\nexpect: { max_per_core: 2 }")
            .ok()
            .unwrap();
        assert_eq!(c.window, LoadWindow::Fifteen);
        let c = build("resource: load\nexpect: { max_per_core: 2 }")
            .ok()
            .unwrap();
        assert_eq!(c.window, LoadWindow::Five);
    }

    #[test]
    fn all_means_real_filesystems_once_each() {
        let got = real_filesystems(vec![
            fs("/etc/hosts", "/dev/vda", "ext4"),
            fs("/", "/dev/vda", "ext4"),
            fs("/dev/shm", "tmpfs", "tmpfs"),
            fs("/var/lib/docker/overlay2/x/merged", "overlay", "overlay"),
            fs("/snap/core/1", "/dev/loop0", "squashfs"),
            fs("/data", "/dev/vdb", "xfs"),
        ]);
        let mounts: Vec<&str> = got.iter().map(|f| f.mount.as_str()).collect();
        assert_eq!(mounts, ["/", "/data"]);
    }

    #[test]
    fn mount_table_is_parsed() {
        let t = "/dev/vda / ext4 rw 0 0\n/dev/vdb /mnt/my\\040disk xfs rw 0 0\n";
        let m = parse_mounts(t);
        assert_eq!(m[1].0, "/mnt/my disk");
        assert_eq!(m[1].2, "xfs");
    }
}
