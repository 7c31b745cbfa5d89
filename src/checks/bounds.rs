//! Bounds on a measured number (`expect: { value: { min, max, equals } }`),
//! shared by every kind that measures one so they all word failures alike.

use schemars::JsonSchema;
use serde::Deserialize;

/// Limits the measured value must respect. All given limits must hold.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBounds {
    /// The value must be at least this.
    #[serde(default)]
    pub min: Option<f64>,
    /// The value must be at most this.
    #[serde(default)]
    pub max: Option<f64>,
    /// The value must be exactly this.
    #[serde(default)]
    pub equals: Option<f64>,
}

impl ValueBounds {
    /// Describes the first limit `value` breaks, or `None` when all hold.
    /// `what` names the value in the message ("rows in jobs", "age").
    pub fn violation(&self, what: &str, value: f64) -> Option<String> {
        if let Some(eq) = self.equals
            && value != eq
        {
            return Some(format!(
                "{what} is {}, expected exactly {}",
                fmt(value),
                fmt(eq)
            ));
        }
        if let Some(min) = self.min
            && value < min
        {
            return Some(format!(
                "{what} is {}, below the minimum {}",
                fmt(value),
                fmt(min)
            ));
        }
        if let Some(max) = self.max
            && value > max
        {
            return Some(format!(
                "{what} is {}, above the maximum {}",
                fmt(value),
                fmt(max)
            ));
        }
        None
    }

    /// Errors for limits that cannot all hold (min above max).
    pub fn validate(&self, path: &str) -> Vec<super::FieldError> {
        match (self.min, self.max) {
            (Some(min), Some(max)) if min > max => vec![super::FieldError::new(
                path,
                format!("min ({}) is above max ({})", fmt(min), fmt(max)),
            )],
            _ => Vec::new(),
        }
    }
}

/// Formats a number without a trailing `.0` for integers.
pub fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_broken_limit() {
        let b = ValueBounds {
            min: Some(1.0),
            max: Some(10.0),
            equals: None,
        };
        assert_eq!(b.violation("rows", 5.0), None);
        assert_eq!(
            b.violation("rows", 0.0).unwrap(),
            "rows is 0, below the minimum 1"
        );
        assert_eq!(
            b.violation("rows", 11.5).unwrap(),
            "rows is 11.5, above the maximum 10"
        );
        let e = ValueBounds {
            equals: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            e.violation("jobs", 3.0).unwrap(),
            "jobs is 3, expected exactly 0"
        );
    }

    #[test]
    fn min_above_max_is_rejected() {
        let b = ValueBounds {
            min: Some(5.0),
            max: Some(1.0),
            equals: None,
        };
        assert_eq!(b.validate("expect.value").len(), 1);
    }
}
