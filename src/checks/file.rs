//! The `file` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `file:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Placeholder.
    pub path: String,
}

/// A prepared `file` check.
pub struct FileCheck {
    #[allow(dead_code)]
    spec: FileSpec,
}

impl Check for FileCheck {
    type Spec = FileSpec;

    fn build(spec: &FileSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(FileCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
