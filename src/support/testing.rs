//! For the kinds' unit tests: a block deserialized from YAML text the way the
//! loader does it (positions, plain scalars typed by the target field), then
//! built with a 5 s timeout and no pack directory unless given.

use std::path::PathBuf;
use std::time::Duration;

use crate::checks::{BuildContext, Check, FieldError};
use crate::config::yaml;

/// Deserializes `C::Spec` from `text` and builds it.
pub fn build<C: Check>(text: &str) -> Result<C, Vec<FieldError>> {
    build_in::<C>(text, None)
}

/// [`build`] with the pack file's directory, for relative paths.
pub fn build_in<C: Check>(text: &str, pack_dir: Option<PathBuf>) -> Result<C, Vec<FieldError>> {
    let node = yaml::parse(text)
        .expect("valid YAML")
        .expect("a non-empty document");
    let spec: C::Spec =
        yaml::from_node(&node, "", &|s| Ok(s.to_string())).expect("the block deserializes");
    C::build(
        &spec,
        &BuildContext {
            timeout: Duration::from_secs(5),
            pack_dir,
        },
    )
}

/// The errors of a block that must not build, and their field paths.
pub fn build_errors<C: Check>(text: &str) -> (Vec<FieldError>, Vec<String>) {
    match build::<C>(text) {
        Ok(_) => panic!("the block built: {text}"),
        Err(errors) => {
            let paths = errors.iter().map(|e| e.path.clone()).collect();
            (errors, paths)
        }
    }
}
