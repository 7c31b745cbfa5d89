//! The `process` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `process:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Placeholder.
    pub name: String,
}

/// A prepared `process` check.
pub struct ProcessCheck {
    #[allow(dead_code)]
    spec: ProcessSpec,
}

impl Check for ProcessCheck {
    type Spec = ProcessSpec;

    fn build(spec: &ProcessSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(ProcessCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
