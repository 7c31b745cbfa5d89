//! The `heartbeat` kind: cron freshness for any app. The job being watched
//! ends with one `curl -X POST -H "Authorization: Bearer $TOKEN"
//! http://127.0.0.1:9464/push/PACK/NAME`; the check fails when no beat came
//! within `period` plus `grace`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext};
use crate::config::duration::Dur;

/// The `heartbeat:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSpec {
    /// How often the job beats (its cron period).
    pub period: Dur,
    /// Extra time allowed past `period` before the check fails (default 1m).
    #[serde(default)]
    pub grace: Option<Dur>,
    /// The token a push must carry (`Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`), usually `${HP_PUSH_TOKEN}` or `${env.KEY}`. Required:
    /// anyone who can reach the agent could otherwise fake a beat.
    pub token: String,
}

/// A prepared `heartbeat` check, holding the time of the last beat.
pub struct HeartbeatCheck {
    period: Duration,
    grace: Duration,
    token: String,
    started: Instant,
    last: Mutex<Option<Instant>>,
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// Missing or wrong token.
    Unauthorized,
}

impl HeartbeatCheck {
    /// Records a beat if `token` is right.
    pub fn beat(&self, token: Option<&str>) -> Result<(), PushError> {
        match token {
            Some(t) if constant_time_eq(t.as_bytes(), self.token.as_bytes()) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                Ok(())
            }
            _ => Err(PushError::Unauthorized),
        }
    }
}

/// Compares without stopping at the first difference, so response time says
/// nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Check for HeartbeatCheck {
    type Spec = HeartbeatSpec;

    fn build(spec: &HeartbeatSpec, _ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if spec.token.len() < 8 {
            errors.push(FieldError::new("token", "the push token must be at least 8 characters (generate one with `openssl rand -hex 16`)"));
        }
        if spec.period.get() < Duration::from_secs(1) {
            errors.push(FieldError::new("period", "must be at least 1s"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        crate::redact::register(&spec.token);
        Ok(HeartbeatCheck {
            period: spec.period.get(),
            grace: spec.grace.map(Dur::get).unwrap_or(Duration::from_secs(60)),
            token: spec.token.clone(),
            started: Instant::now(),
            last: Mutex::new(None),
        })
    }

    async fn run(&self, _ctx: &RunContext) -> Outcome {
        let allowed = self.period + self.grace;
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        let fmt =
            |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
        let expected = format!(
            "expected every {} with {} grace",
            fmt(self.period),
            fmt(self.grace)
        );
        match last {
            Some(at) => {
                let age = at.elapsed();
                let out = if age <= allowed {
                    Outcome::ok(format!("last beat {} ago", fmt(age)))
                } else {
                    Outcome::fail(
                        Reason::AssertionFailed,
                        format!(
                            "no heartbeat for {} ({expected}): the job that pushes it has stopped or fails before its last step",
                            fmt(age)
                        ),
                    )
                };
                out.with_value(age.as_secs_f64())
            }
            None => {
                let waited = self.started.elapsed();
                if waited <= allowed {
                    Outcome::ok(format!(
                        "waiting for the first beat ({} since the agent started, {expected})",
                        fmt(waited)
                    ))
                } else {
                    Outcome::fail(
                        Reason::AssertionFailed,
                        format!(
                            "no heartbeat received since the agent started {} ago ({expected}): is the job scheduled, and does it end with the push?",
                            fmt(waited)
                        ),
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(period: u64, grace: u64) -> HeartbeatCheck {
        let spec = HeartbeatSpec {
            period: Dur(Duration::from_secs(period)),
            grace: Some(Dur(Duration::from_secs(grace))),
            token: "s3cret-token".into(),
        };
        HeartbeatCheck::build(
            &spec,
            &BuildContext {
                timeout: Duration::from_secs(1),
                pack_dir: None,
            },
        )
        .unwrap_or_else(|_| panic!("build"))
    }

    fn ctx() -> RunContext {
        RunContext {
            deadline: tokio::time::Instant::now() + Duration::from_secs(1),
            debug: false,
        }
    }

    #[tokio::test]
    async fn beats_need_the_token_and_keep_the_check_green() {
        let c = check(1, 0);
        assert_eq!(c.beat(None), Err(PushError::Unauthorized));
        assert_eq!(c.beat(Some("wrong-token!")), Err(PushError::Unauthorized));
        assert!(c.run(&ctx()).await.success(), "within the first period");
        c.beat(Some("s3cret-token")).unwrap();
        let out = c.run(&ctx()).await;
        assert!(out.success(), "{}", out.message);
        assert!(out.value.unwrap() < 1.0);
    }

    #[tokio::test]
    async fn a_missed_beat_fails_with_the_age() {
        let c = check(1, 0);
        c.beat(Some("s3cret-token")).unwrap();
        *c.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(5));
        let out = c.run(&ctx()).await;
        assert_eq!(out.reason, Reason::AssertionFailed);
        assert!(
            out.message
                .starts_with("no heartbeat for 5s (expected every 1s with 0s grace)"),
            "{}",
            out.message
        );
    }

    #[test]
    fn short_tokens_are_refused() {
        let spec = HeartbeatSpec {
            period: Dur(Duration::from_secs(60)),
            grace: None,
            token: "abc".into(),
        };
        let errs = HeartbeatCheck::build(
            &spec,
            &BuildContext {
                timeout: Duration::from_secs(1),
                pack_dir: None,
            },
        )
        .err()
        .unwrap();
        assert_eq!(errs[0].path, "token");
    }
}
