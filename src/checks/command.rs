//! The `command` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `command:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Placeholder.
    pub argv: Vec<String>,
}

/// A prepared `command` check.
pub struct CommandCheck {
    #[allow(dead_code)]
    spec: CommandSpec,
}

impl Check for CommandCheck {
    type Spec = CommandSpec;

    fn build(spec: &CommandSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(CommandCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
