//! Secrets a check needs (a database password, SMTP credentials), given in one
//! of three ways: written in the pack (usually `${env.DB_PASSWORD}`, read from
//! the app's own `.env`), named by an environment variable of the agent, or
//! read from a file (a Docker or Kubernetes secret).
//!
//! Every value is registered with [`crate::redact`] as soon as it is known, so
//! that no message, log line or report can show it even by accident, and
//! [`Secret`]'s `Debug` never prints it.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::checks::{FieldError, Reason};

/// A secret written in a pack file. Its `Debug` output is masked.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself: pass it to the library that needs it, never to a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", crate::redact::MASK)
    }
}

/// The error for a `password_env` that is not a variable name; the text is
/// not repeated, since it is most likely the secret itself.
pub const NOT_AN_ENV_NAME: &str = "is not an environment variable name (upper-case letters, digits and `_`): write the name of the variable that holds the secret, e.g. `DB_PASSWORD`, not the secret";

/// Whether the text of a `password_env` field looks like the name of an
/// environment variable (upper case, as they are by convention), which a
/// password written there by mistake seldom does. Only such names are shown
/// in messages.
pub fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Where a secret comes from, once the config is validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the pack (after interpolation).
    Value(Secret),
    /// An environment variable of the agent, read at each run.
    Env(String),
    /// A file, read at each run (so a rotated secret is picked up); one
    /// trailing newline is dropped.
    File(PathBuf),
}

/// Why a secret could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretError {
    pub reason: Reason,
    pub message: String,
}

impl SecretSource {
    /// Builds the source from the three fields that can give it (named
    /// `fields[0..3]` in errors: value, env, file); at most one may be set.
    /// A value written in the pack is registered as a secret at once.
    pub fn from_fields(
        value: Option<&Secret>,
        env: Option<&str>,
        file: Option<&Path>,
        fields: [&str; 3],
    ) -> Result<Option<SecretSource>, Vec<FieldError>> {
        let given: Vec<&str> = [value.is_some(), env.is_some(), file.is_some()]
            .iter()
            .zip(fields)
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
        if given.len() > 1 {
            return Err(vec![FieldError::new(
                given[1],
                format!(
                    "give the secret one way only: `{}` or `{}`",
                    given[0], given[1]
                ),
            )]);
        }
        // These fields name where the secret is; the likely mistake is to
        // write the secret itself there, so their text is never repeated in
        // an error, and an environment variable name must look like one
        // (upper case), which a password seldom does.
        let mut errors = Vec::new();
        if let Some(name) = env
            && !is_env_name(name)
        {
            errors.push(FieldError::new(fields[1], NOT_AN_ENV_NAME));
        }
        if let Some(path) = file
            && !path.is_absolute()
        {
            errors.push(FieldError::new(
                fields[2],
                "must be the absolute path of the file that holds the secret",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(if let Some(v) = value {
            crate::redact::register(v.expose());
            Some(SecretSource::Value(v.clone()))
        } else if let Some(name) = env {
            Some(SecretSource::Env(name.to_string()))
        } else {
            file.map(|p| SecretSource::File(p.to_path_buf()))
        })
    }

    /// Where the secret comes from, for messages ("$DB_PASSWORD").
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Value(_) => "the value in the pack".into(),
            SecretSource::Env(name) => format!("${name}"),
            SecretSource::File(path) => path.display().to_string(),
        }
    }

    /// Reads the secret (and registers it so it is masked everywhere).
    pub async fn read(&self) -> Result<String, SecretError> {
        let value = match self {
            SecretSource::Value(v) => return Ok(v.expose().to_string()),
            SecretSource::Env(name) => std::env::var(name).map_err(|e| SecretError {
                reason: Reason::NotFound,
                message: match e {
                    std::env::VarError::NotPresent => format!(
                        "the environment variable {name} is not set in the agent's environment"
                    ),
                    std::env::VarError::NotUnicode(_) => {
                        format!("the environment variable {name} is not valid UTF-8")
                    }
                },
            })?,
            SecretSource::File(path) => {
                let mut text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    let reason = Reason::from_io(&e);
                    SecretError {
                        reason: if reason == Reason::InternalError {
                            Reason::NotFound
                        } else {
                            reason
                        },
                        message: format!("cannot read the secret file {}: {e}", path.display()),
                    }
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        crate::redact::register(&value);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: [&str; 3] = ["password", "password_env", "password_file"];

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("s3cret-canary");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let src = SecretSource::Value(s);
        assert!(!format!("{src:?}").contains("s3cret-canary"));
    }

    #[test]
    fn one_source_only() {
        let s = Secret::new("pw-value");
        let e = SecretSource::from_fields(Some(&s), Some("DB_PASSWORD"), None, F).unwrap_err();
        assert_eq!(e[0].path, "password_env");
        assert!(e[0].message.contains("one way only"), "{}", e[0].message);
        let e = SecretSource::from_fields(None, Some(""), None, F).unwrap_err();
        assert_eq!(e[0].path, "password_env");
        let e = SecretSource::from_fields(None, None, Some(Path::new("rel")), F).unwrap_err();
        assert_eq!(e[0].path, "password_file");
        // A secret written where its name or path goes is not repeated.
        for v in ["s3cretValue", "s3cret=x", "DB PASSWORD", "${X}"] {
            let e = SecretSource::from_fields(None, Some(v), None, F).unwrap_err();
            assert!(!e[0].message.contains(v), "{}", e[0].message);
        }
        let e =
            SecretSource::from_fields(None, None, Some(Path::new("s3cretValue")), F).unwrap_err();
        assert!(!e[0].message.contains("s3cretValue"), "{}", e[0].message);
        assert!(SecretSource::from_fields(None, Some("HP_DB_PASSWORD_2"), None, F).is_ok());
        assert_eq!(
            SecretSource::from_fields(None, None, None, F).unwrap(),
            None
        );
    }

    #[test]
    fn a_value_in_the_pack_is_registered() {
        let s = Secret::new("registered-canary-42");
        SecretSource::from_fields(Some(&s), None, None, F).unwrap();
        assert_eq!(
            crate::redact::redact("pw registered-canary-42"),
            "pw <redacted>"
        );
    }

    #[tokio::test]
    async fn reads_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "file-canary-77\n").unwrap();
        let src = SecretSource::File(path.clone());
        assert_eq!(src.read().await.unwrap(), "file-canary-77");
        assert_eq!(crate::redact::redact("file-canary-77"), "<redacted>");
        let missing = SecretSource::File(dir.path().join("nope"));
        let e = missing.read().await.unwrap_err();
        assert_eq!(e.reason, Reason::NotFound);
        assert!(e.message.contains("nope"), "{}", e.message);
        let e = SecretSource::Env("HP_SURELY_UNSET_VAR_XYZ".into())
            .read()
            .await
            .unwrap_err();
        assert_eq!(e.reason, Reason::NotFound);
        assert!(e.message.contains("HP_SURELY_UNSET_VAR_XYZ"));
    }
}
