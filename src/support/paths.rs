//! Paths in check blocks: relative paths resolved against the pack file's
//! directory, and shell-style globs (`storage/logs/laravel-*.log`) validated at
//! build time and expanded at run time.
//!
//! Globs use the `glob` crate's syntax (`*`, `?`, `[...]`, `**`); a leading dot
//! is not special, matching is case-sensitive, and matches come back sorted by
//! path, so "the first match" is stable from run to run.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::checks::{BuildContext, FieldError};

/// Resolves a path from field `field`: absolute as written, or relative to the
/// pack file's directory. Built-in packs (no directory) need absolute paths.
pub fn resolve(field: &str, text: &str, ctx: &BuildContext) -> Result<PathBuf, FieldError> {
    let path = PathBuf::from(text);
    if text.is_empty() {
        Err(FieldError::new(field, "the path is empty"))
    } else if path.is_absolute() {
        Ok(path)
    } else if let Some(dir) = &ctx.pack_dir {
        Ok(dir.join(path))
    } else {
        Err(FieldError::new(
            field,
            format!("`{text}` is relative: a built-in pack needs an absolute path"),
        ))
    }
}

/// A validated glob pattern, resolved like [`resolve`].
#[derive(Clone, Debug)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    /// Resolves and validates the pattern of field `field`.
    pub fn new(field: &str, text: &str, ctx: &BuildContext) -> Result<Glob, FieldError> {
        let path = resolve(field, text, ctx)?;
        let pattern = path
            .to_str()
            .ok_or_else(|| FieldError::new(field, "the pattern is not valid UTF-8"))?
            .to_string();
        glob::Pattern::new(&pattern)
            .map_err(|e| FieldError::new(field, format!("invalid glob pattern: {}", e.msg)))?;
        Ok(Glob { pattern })
    }

    /// The pattern as resolved (absolute).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Every existing path that matches, sorted. Directories that cannot be
    /// read are passed over (as a shell does).
    pub fn matches(&self) -> Vec<PathBuf> {
        match glob::glob(&self.pattern) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The match modified last (ties go to the greater path: `laravel-2024-05-02.log`
    /// after `laravel-2024-05-01.log`), for logs rotated into dated files.
    pub fn newest(&self) -> Option<PathBuf> {
        self.matches()
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                m.is_file()
                    .then(|| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), p))
            })
            .max()
            .map(|(_, p)| p)
    }
}

/// The last component of a path, for short messages (`chrome`, `libfoo.so`).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(dir: Option<&str>) -> BuildContext {
        BuildContext {
            timeout: Duration::from_secs(1),
            pack_dir: dir.map(PathBuf::from),
        }
    }

    #[test]
    fn relative_paths_need_a_pack_dir() {
        assert_eq!(
            resolve("path", "a/b", &ctx(Some("/etc/hp"))).unwrap(),
            PathBuf::from("/etc/hp/a/b")
        );
        assert_eq!(
            resolve("path", "/x", &ctx(None)).unwrap(),
            PathBuf::from("/x")
        );
        let e = resolve("path", "a/b", &ctx(None)).unwrap_err();
        assert!(e.message.contains("relative"), "{e:?}");
        assert_eq!(resolve("glob", "", &ctx(None)).unwrap_err().path, "glob");
    }

    #[test]
    fn globs_are_validated_and_expanded_sorted_and_newest_first() {
        assert!(Glob::new("glob", "/tmp/[x", &ctx(None)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "laravel-2024-05-02.log",
            "laravel-2024-05-01.log",
            "other.log",
        ] {
            std::fs::write(d.join(name), "x").unwrap();
        }
        let g = Glob::new(
            "glob",
            &format!("{}/laravel-*.log", d.display()),
            &ctx(None),
        )
        .unwrap();
        let names: Vec<String> = g.matches().iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["laravel-2024-05-01.log", "laravel-2024-05-02.log"]);
        // Same mtime second or not, the later name wins a tie; an older mtime loses.
        let old = std::fs::File::options()
            .write(true)
            .open(d.join("laravel-2024-05-02.log"))
            .unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
            .unwrap();
        assert_eq!(file_name(&g.newest().unwrap()), "laravel-2024-05-01.log");
    }
}
