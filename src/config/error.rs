//! Configuration errors: every one carries the file, line, column and the path
//! of the field, and loading collects them all instead of stopping at the first.

use std::fmt;

/// A position in a config file (1-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded>/host.yaml`, or `--var` for the command line).
    pub file: String,
    pub pos: Option<Pos>,
    /// The field path (`checks[2].http.expect.status[0]`), empty for the whole file.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<String>,
        pos: Option<Pos>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            pos,
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error about a whole file (it cannot be read, for example).
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::new(file, None, "", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one load, in file and position order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
