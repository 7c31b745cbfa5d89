//! The `host` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `host:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Placeholder.
    pub mount: String,
}

/// A prepared `host` check.
pub struct HostCheck {
    #[allow(dead_code)]
    spec: HostSpec,
}

impl Check for HostCheck {
    type Spec = HostSpec;

    fn build(spec: &HostSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(HostCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
