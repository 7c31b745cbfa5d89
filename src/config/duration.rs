//! Durations as people write them in YAML: `500ms`, `30s`, `5m`, `1h30m`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A duration written as a string with units (`30s`, `5m`, `1h30m`, `250ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Duration {
        d.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&humantime::format_duration(self.0).to_string())
    }
}

/// Parses `30s`, `5m`, `1h30m`, `250ms`. A bare number is rejected: `30` could
/// mean seconds or milliseconds, and a wrong guess makes a check silently wrong.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "`{t}` has no unit: write for example `{t}s`, `{t}m` or `{t}ms`"
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{t}` is not a duration ({e}); write for example `30s`, `5m` or `1h30m`")
    })
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration with units: `500ms`, `30s`, `5m`, `1h30m`.",
            "pattern": "^([0-9]+(\\.[0-9]+)?\\s*(ns|us|ms|s|sec|m|min|h|hr|d|days?)\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_bare_numbers_and_garbage() {
        assert!(parse("30").unwrap_err().contains("has no unit"));
        assert!(parse("soon").unwrap_err().contains("not a duration"));
    }
}
