//! The `http` kind (placeholder being written).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};

/// The `http:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Placeholder.
    pub url: String,
}

/// A prepared `http` check.
pub struct HttpCheck {
    #[allow(dead_code)]
    spec: HttpSpec,
}

impl Check for HttpCheck {
    type Spec = HttpSpec;

    fn build(spec: &HttpSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        Ok(HttpCheck { spec: spec.clone() })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        Outcome::fail(Reason::InternalError, "not implemented yet")
    }
}
