//! The `tcp` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `tcp:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Placeholder.
    pub address: String,
}

/// A prepared `tcp` check.
pub struct TcpCheck {
    #[allow(dead_code)]
    spec: TcpSpec,
}

impl Check for TcpCheck {
    type Spec = TcpSpec;

    fn build(spec: &TcpSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(TcpCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
