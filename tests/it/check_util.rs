//! Running a check from its YAML the way the agent does: deserialized with
//! positions, built, run by the runner under its hard timeout with debug on.
//! The prepared check is kept so that stateful kinds (`log`) can run again.

use std::sync::Arc;
use std::time::Duration;

use healthprobe::checks::{BuildContext, CheckSpec, FieldError, Outcome, Probe, runner};
use healthprobe::config::yaml;

fn spec(check_yaml: &str) -> CheckSpec {
    let node = yaml::parse(check_yaml)
        .expect("valid YAML")
        .expect("not empty");
    yaml::from_node(&node, "", &|s| Ok(s.to_string())).expect("a check spec")
}

fn build(check_yaml: &str) -> Result<Probe, Vec<FieldError>> {
    let ctx = BuildContext {
        timeout: Duration::from_secs(10),
        pack_dir: None,
    };
    Probe::build(&spec(check_yaml), &ctx)
}

/// Prepares a check (a whole check: `name`, `kind`, the block).
pub fn probe(check_yaml: &str) -> Arc<Probe> {
    Arc::new(build(check_yaml).unwrap_or_else(|e| panic!("the check does not build: {e:?}")))
}

/// The build errors of a check that must not build.
pub fn build_errors(check_yaml: &str) -> Vec<FieldError> {
    match build(check_yaml) {
        Ok(_) => panic!("the check built"),
        Err(e) => e,
    }
}

/// Runs a prepared check once (timeout 10 s, debug on).
pub async fn run(p: &Arc<Probe>) -> Outcome {
    runner::execute(p.clone(), Duration::from_secs(10), true)
        .await
        .outcome
}

/// Prepares and runs a check once.
pub async fn run_once(check_yaml: &str) -> Outcome {
    run(&probe(check_yaml)).await
}
