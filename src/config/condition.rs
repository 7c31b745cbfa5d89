//! `enabled_if`: switch a check on only where it applies (the `jobs` table
//! checks only with `QUEUE_CONNECTION=database`, snappdf only with
//! `PDF_GENERATOR=snappdf`). Evaluated when the config is loaded.

use schemars::JsonSchema;
use serde::Deserialize;

/// All the given tests must hold for the check to be enabled.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The value tested, usually an interpolation such as `${env.QUEUE_CONNECTION:-sync}`.
    #[serde(default)]
    pub value: Option<String>,
    /// `value` must equal this.
    #[serde(default)]
    pub equals: Option<String>,
    /// `value` must differ from this.
    #[serde(default)]
    pub not_equals: Option<String>,
    /// `value` must be one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// `value` must match this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// This path must exist.
    #[serde(default)]
    pub path_exists: Option<String>,
}

impl Condition {
    /// Whether the condition holds; `Err` for a bad regex. The `Ok(false)`
    /// case carries why, for `healthprobe list`.
    pub fn evaluate(&self) -> Result<Result<(), String>, String> {
        let value = self.value.as_deref().unwrap_or("");
        if let Some(eq) = &self.equals
            && value != eq
        {
            return Ok(Err(format!("`{value}` is not `{eq}`")));
        }
        if let Some(ne) = &self.not_equals
            && value == ne
        {
            return Ok(Err(if ne.is_empty() {
                "the value is empty".to_string()
            } else {
                format!("the value is `{ne}`")
            }));
        }
        if let Some(set) = &self.one_of
            && !set.iter().any(|s| s == value)
        {
            return Ok(Err(format!("`{value}` is not one of {}", set.join(", "))));
        }
        if let Some(re) = &self.matches {
            let re =
                regex::Regex::new(re).map_err(|e| format!("invalid regular expression: {e}"))?;
            if !re.is_match(value) {
                return Ok(Err(format!("`{value}` does not match `{}`", re.as_str())));
            }
        }
        if let Some(p) = &self.path_exists
            && std::fs::symlink_metadata(p).is_err()
        {
            return Ok(Err(format!("{p} does not exist")));
        }
        Ok(Ok(()))
    }
}
