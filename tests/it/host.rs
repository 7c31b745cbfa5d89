//! The `host` kind on this machine: plausible values and failing thresholds.

use healthprobe::checks::{Outcome, Reason};
use healthprobe::config::load::{Options, load_with_env};

use crate::probe_util::{assert_outcome, meminfo_bytes, run, sample};

async fn host(block: &str) -> Outcome {
    run(&format!("name: t\nkind: host\nhost: {{ {block} }}\n")).await
}

#[tokio::test]
async fn disk_values_are_plausible() {
    let o = host("resource: disk, mount: all, expect: { min_free_percent: 0 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    let free = o.value.unwrap();
    assert!((0.0..=1.0).contains(&free), "{free}");
    let bytes = sample(&o, "healthprobe_host_disk_free_bytes", Some(("mount", "/"))).unwrap();
    let size = sample(&o, "healthprobe_host_disk_size_bytes", Some(("mount", "/"))).unwrap();
    assert!(bytes > 0.0 && bytes <= size, "{bytes} of {size}");
    // Pseudo file systems are not part of `all`.
    assert!(
        o.samples.iter().all(|s| s
            .labels
            .iter()
            .all(|(_, v)| v != "/dev/shm" && v != "/proc")),
        "{:?}",
        o.samples
    );
}

#[tokio::test]
async fn an_impossible_disk_threshold_fails_naming_the_mount() {
    let o = host("resource: disk, mount: /, expect: { min_free_percent: 100 }").await;
    assert_outcome(&o, Reason::AssertionFailed, &["below the minimum 100%"]);
    assert!(o.message.starts_with("/ has "), "{}", o.message);

    let o = host("resource: disk, expect: { min_free_bytes: 18000000000000000000 }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["/ has ", "below the minimum 15.6 EiB"],
    );
}

#[tokio::test]
async fn named_mounts_pseudo_or_not_and_paths_inside_them() {
    // tmpfs is left out of `all`, but checked when named.
    let o = host("resource: disk, mount: /dev/shm, expect: { min_free_percent: 0 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert!(o.message.starts_with("/dev/shm has "), "{}", o.message);
    assert!((0.0..=1.0).contains(&o.value.unwrap()));

    let d = tempfile::tempdir().unwrap();
    let o = host(&format!(
        "resource: disk, mount: {}, expect: {{ min_free_percent: 0 }}",
        d.path().display()
    ))
    .await;
    assert_outcome(&o, Reason::Ok, &["is not a mount point of its own"]);

    let o = host("resource: disk, mount: /no-such-mount-hp, expect: { min_free_percent: 5 }").await;
    assert_outcome(&o, Reason::NotFound, &["mounted file systems: /"]);
    assert!(
        o.message.starts_with("/no-such-mount-hp: "),
        "{}",
        o.message
    );
}

#[tokio::test]
async fn memory_values_are_plausible() {
    let o = host("resource: memory, expect: { min_available_percent: 0.001 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    let ratio = o.value.unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    let total = sample(&o, "healthprobe_host_memory_total_bytes", None).unwrap();
    let mem_total = meminfo_bytes("MemTotal") as f64;
    assert!(
        (total - mem_total).abs() < 1024.0 * 1024.0,
        "{total} vs {mem_total}"
    );

    let o = host("resource: memory, expect: { min_available_percent: 100 }").await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["of memory available", "below the minimum 100%"],
    );
}

#[tokio::test]
async fn swap_presence_matches_proc_meminfo() {
    let swap_total = meminfo_bytes("SwapTotal");
    let o = host("resource: swap, expect: { min_total_bytes: 1 }").await;
    assert_eq!(
        sample(&o, "healthprobe_host_swap_total_bytes", None),
        Some(swap_total as f64)
    );
    if swap_total == 0 {
        assert_outcome(&o, Reason::AssertionFailed, &["there is no swap at all"]);
    } else {
        assert_outcome(&o, Reason::Ok, &[]);
        let o = host("resource: swap, expect: { min_total_bytes: 18000000000000000000 }").await;
        assert_outcome(&o, Reason::AssertionFailed, &[]);
    }
    let o = host("resource: swap, expect: { max_used_percent: 100 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    assert!((0.0..=1.0).contains(&o.value.unwrap()));
}

#[tokio::test]
async fn load_per_core_is_plausible() {
    let o = host("resource: load, window: 1m, expect: { max_per_core: 1000 }").await;
    assert_outcome(&o, Reason::Ok, &[]);
    let per_core = o.value.unwrap();
    let cpus = sample(&o, "healthprobe_host_cpus", None).unwrap();
    let one = sample(&o, "healthprobe_host_load_average", Some(("window", "1m"))).unwrap();
    assert!(cpus >= 1.0);
    assert!((per_core - one / cpus).abs() < 1e-9);
    assert_outcome(&o, Reason::Ok, &["the 1m load average is"]);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    let proc_one: f64 = loadavg.split_whitespace().next().unwrap().parse().unwrap();
    assert!((proc_one - one).abs() < 2.0, "{proc_one} vs {one}");
    if one > 0.0 {
        let o = host("resource: load, window: 1m, expect: { max_per_core: 0.000001 }").await;
        assert_outcome(
            &o,
            Reason::AssertionFailed,
            &["above the maximum 0.000001 per CPU"],
        );
    }
}

#[tokio::test]
async fn the_builtin_host_pack_loads_and_runs() {
    let loaded = load_with_env(&Options::default(), &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    let host: Vec<_> = loaded
        .checks
        .iter()
        .filter(|c| c.meta.pack == "host")
        .collect();
    let names: Vec<&str> = host.iter().map(|c| c.meta.name.as_str()).collect();
    assert_eq!(names, ["disk_free", "memory_available", "swap", "load"]);
    for c in host {
        let probe = healthprobe::checks::Probe::build(
            &c.spec,
            &healthprobe::checks::BuildContext {
                timeout: std::time::Duration::from_secs(5),
                pack_dir: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let rec = healthprobe::checks::runner::execute(
            std::sync::Arc::new(probe),
            std::time::Duration::from_secs(5),
            false,
        )
        .await;
        let o = rec.outcome;
        assert!(
            matches!(o.reason, Reason::Ok | Reason::AssertionFailed),
            "{}: {:?} {}",
            c.meta.name,
            o.reason,
            o.message
        );
        assert!(o.value.is_some(), "{}", c.meta.name);
    }
}
