//! Helpers shared by the fuzz targets: a runtime, a scratch directory, and
//! checks built from YAML the way the loader builds them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use healthprobe::checks::{BuildContext, Check, RunContext};
use healthprobe::config::yaml;

/// One current-thread runtime for the whole fuzzing process.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A directory of this process (under /dev/shm when there is one), removed
/// by `tests/fuzz/run` afterwards.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        };
        let dir = PathBuf::from(format!("{base}/hpfuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// A spec deserialized from YAML written by the target (never fuzzed).
pub fn spec<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let node = yaml::parse(text).expect("yaml").expect("a document");
    yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).expect("spec")
}

/// A prepared check of kind `C` from its YAML block.
pub fn build<C: Check>(block: &str) -> C {
    let ctx = BuildContext {
        timeout: Duration::from_secs(5),
        pack_dir: None,
    };
    match C::build(&spec(block), &ctx) {
        Ok(c) => c,
        Err(e) => panic!("the target's own check does not build: {e:?}"),
    }
}

/// A run context with a 5 s deadline, observations on.
pub fn ctx() -> RunContext {
    RunContext {
        deadline: tokio::time::Instant::now() + Duration::from_secs(5),
        debug: true,
    }
}

/// Fails when a run crashed: the runner and the blocking pool turn a panic
/// into an `internal_error` outcome, which would hide it from the fuzzer.
pub fn no_crash(o: &healthprobe::checks::Outcome) {
    assert!(
        !(o.reason == healthprobe::checks::Reason::InternalError && o.message.contains("crashed")),
        "{}",
        o.message
    );
}
