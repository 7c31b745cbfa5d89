//! The `migrations` kind: the migrations recorded in the database against the
//! migration files of the code, on MySQL or PostgreSQL.
//!
//! A kind of its own rather than a mode of `mysql` and `postgres`: it serves
//! both servers with one set of fields (the engine comes from the URL), it
//! reads directories as well as a table, its value has one meaning (pending
//! migrations) and its message names them and the command that applies them.
//! As a mode it would add six fields to each database kind and split one
//! feature across two files.
//!
//! Flavours:
//! - `rails`: `schema_migrations.version` against the digit prefix of
//!   `db/migrate/*.rb` (14-digit timestamps) and, as post-deployment
//!   migrations, `db/post_migrate/*.rb` (Mastodon, GitLab).
//! - `laravel`: `migrations.migration` against the file names without `.php`
//!   of `database/migrations/*.php`.
//!
//! Versions in the table with no file are reported too ("the database is
//! newer than the code": a rolled-back release, or `root` pointing at an old
//! checkout) and fail the check unless `allow_unknown` is set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, Family, FieldError, Outcome, Reason, RunContext, Sample};
use crate::support::database::{
    Connection, DbError, Engine, Run, database_spec, quote_identifier, validate_identifier,
};

/// Migrations by state: `pending`, `pending_post_deploy` (the pending ones in
/// post-deployment directories), `unknown` (in the database, no file), `applied`.
pub static MIGRATIONS: Family = Family::gauge(
    "healthprobe_migrations",
    "Migrations by state (pending, pending_post_deploy, unknown: recorded in the database with no file, applied).",
);

/// How many pending or unknown migrations a message names.
const NAMED: usize = 5;

database_spec! { plain;
    /// The `migrations:` block: the database (as for `mysql`/`postgres`),
    /// the framework, and where the migration files are. The value is the
    /// number of pending migrations.
    pub struct MigrationsSpec {
        /// `mysql` or `postgres`; default: from the `url`'s scheme.
        #[serde(default)]
        pub engine: Option<Engine>,
        /// The framework that wrote the migrations: `rails` or `laravel`.
        pub flavor: Flavor,
        /// The app's directory (`/home/mastodon/live`); relative `dirs` and
        /// `post_deploy_dirs` are taken from here.
        #[serde(default)]
        pub root: Option<PathBuf>,
        /// Directories of migration files (default `db/migrate` for rails,
        /// `database/migrations` for laravel). Each must exist.
        #[serde(default)]
        pub dirs: Option<Vec<PathBuf>>,
        /// Directories of post-deployment migrations, named as such in the
        /// message (default for rails: `db/post_migrate` when it exists; none
        /// for laravel).
        #[serde(default)]
        pub post_deploy_dirs: Option<Vec<PathBuf>>,
        /// Table of applied migrations (default `schema_migrations` for rails,
        /// `migrations` for laravel); `schema.table` is accepted.
        #[serde(default)]
        pub table: Option<String>,
        /// Column of that table holding the version or name (default
        /// `version` for rails, `migration` for laravel).
        #[serde(default)]
        pub column: Option<String>,
        /// Pass even when the database records migrations that have no file
        /// (default `false`: they mean the database is newer than the code).
        #[serde(default)]
        pub allow_unknown: bool,
        /// The command that applies pending migrations, quoted in the message
        /// (default `RAILS_ENV=production bin/rails db:migrate` for rails,
        /// `php artisan migrate` for laravel).
        #[serde(default)]
        pub fix: Option<String>,
        /// Which pending migrations fail the check (and are its value): `all`
        /// (default), `regular` (those in `dirs`) or `post_deploy` (those in
        /// `post_deploy_dirs`). The others are only mentioned. Mastodon applies
        /// the two at different moments of an upgrade, so it watches them with
        /// two checks: regular ones pending mean the code runs on an old
        /// schema; post-deployment ones are expected until the new code runs.
        #[serde(default)]
        pub fail_on: FailOn,
    }
}

/// Which pending migrations a `migrations` check fails on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Every pending migration.
    #[default]
    All,
    /// Pending migrations of `dirs` only.
    Regular,
    /// Pending migrations of `post_deploy_dirs` only.
    PostDeploy,
}

/// Which framework's migrations these are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// Ruby on Rails: `schema_migrations.version`, `db/migrate/VERSION_name.rb`.
    Rails,
    /// Laravel: `migrations.migration`, `database/migrations/NAME.php`.
    Laravel,
}

impl Flavor {
    fn default_dirs(self) -> &'static [&'static str] {
        match self {
            Flavor::Rails => &["db/migrate"],
            Flavor::Laravel => &["database/migrations"],
        }
    }

    fn default_post_deploy_dirs(self) -> &'static [&'static str] {
        match self {
            Flavor::Rails => &["db/post_migrate"],
            Flavor::Laravel => &[],
        }
    }

    fn default_table(self) -> &'static str {
        match self {
            Flavor::Rails => "schema_migrations",
            Flavor::Laravel => "migrations",
        }
    }

    fn default_column(self) -> &'static str {
        match self {
            Flavor::Rails => "version",
            Flavor::Laravel => "migration",
        }
    }

    fn default_fix(self) -> &'static str {
        match self {
            Flavor::Rails => "RAILS_ENV=production bin/rails db:migrate",
            Flavor::Laravel => "php artisan migrate",
        }
    }

    /// The migration id a file stands for, or `None` if it is not a migration.
    fn id_of_file(self, file_name: &str) -> Option<String> {
        match self {
            Flavor::Rails => {
                let stem = file_name.strip_suffix(".rb")?;
                let (digits, rest) = stem.split_once('_')?;
                (!digits.is_empty()
                    && !rest.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| normalize_version(digits))
            }
            Flavor::Laravel => {
                let stem = file_name.strip_suffix(".php")?;
                (!stem.is_empty() && !stem.starts_with('.')).then(|| stem.to_string())
            }
        }
    }

    /// The id of a row of the table.
    fn id_of_row(self, value: &str) -> String {
        match self {
            Flavor::Rails => normalize_version(value.trim()),
            Flavor::Laravel => value.trim().to_string(),
        }
    }
}

/// Rails stores `001_x.rb` as version `1`: compare versions without leading zeros.
fn normalize_version(v: &str) -> String {
    let t = v.trim_start_matches('0');
    if t.is_empty() && !v.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// One directory to read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dir {
    path: PathBuf,
    /// As shown in messages (relative to `root` when under it).
    shown: String,
    post_deploy: bool,
    /// A default directory the app may not have (`db/post_migrate`).
    optional: bool,
}

/// A migration file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MigrationFile {
    id: String,
    /// File name without extension, as shown in messages.
    stem: String,
    dir: usize,
}

/// A prepared `migrations` check.
pub struct MigrationsCheck {
    conn: Connection,
    flavor: Flavor,
    dirs: Vec<Dir>,
    table: String,
    column: String,
    allow_unknown: bool,
    fix: String,
    fail_on: FailOn,
}

impl Check for MigrationsCheck {
    type Spec = MigrationsSpec;

    fn build(spec: &MigrationsSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let conn = Connection::build(&spec.connection_fields(), spec.engine, "engine", ctx)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let flavor = spec.flavor;
        if let Some(root) = &spec.root
            && !root.is_absolute()
        {
            errors.push(FieldError::new(
                "root",
                format!("`{}` must be an absolute path", root.display()),
            ));
        }
        let mut dirs = Vec::new();
        for post_deploy in [false, true] {
            let (field, given, defaults) = if post_deploy {
                (
                    "post_deploy_dirs",
                    spec.post_deploy_dirs.as_ref(),
                    flavor.default_post_deploy_dirs(),
                )
            } else {
                ("dirs", spec.dirs.as_ref(), flavor.default_dirs())
            };
            let (paths, optional): (Vec<PathBuf>, bool) = match given {
                Some(list) => (list.clone(), false),
                None => (defaults.iter().map(PathBuf::from).collect(), post_deploy),
            };
            for (i, p) in paths.into_iter().enumerate() {
                let at = if given.is_some() {
                    format!("{field}[{i}]")
                } else {
                    "root".to_string()
                };
                let path = match (&spec.root, p.is_absolute()) {
                    (_, true) => p.clone(),
                    (Some(root), false) => root.join(&p),
                    (None, false) => {
                        errors.push(FieldError::new(
                            at,
                            format!(
                                "`{}` is relative: set `root` to the app's directory, or give absolute paths",
                                p.display()
                            ),
                        ));
                        continue;
                    }
                };
                let shown = match &spec.root {
                    Some(root) => path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    None => path.display().to_string(),
                };
                dirs.push(Dir {
                    path,
                    shown,
                    post_deploy,
                    optional,
                });
            }
        }
        if spec.fail_on == FailOn::PostDeploy
            && spec.post_deploy_dirs.as_ref().is_some_and(Vec::is_empty)
        {
            errors.push(FieldError::new(
                "fail_on",
                "`post_deploy` judges the migrations of `post_deploy_dirs`, which is empty",
            ));
        }
        if spec.dirs.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new(
                "dirs",
                "list at least one directory of migration files",
            ));
        }
        let table = spec
            .table
            .clone()
            .unwrap_or_else(|| flavor.default_table().to_string());
        let column = spec
            .column
            .clone()
            .unwrap_or_else(|| flavor.default_column().to_string());
        if let Err(e) = validate_identifier("table", &table) {
            errors.push(e);
        }
        if let Err(e) = validate_identifier("column", &column) {
            errors.push(e);
        } else if column.contains('.') {
            errors.push(FieldError::new(
                "column",
                "give the column name alone, without a table",
            ));
        }
        let fix = spec
            .fix
            .clone()
            .unwrap_or_else(|| flavor.default_fix().to_string());
        match conn {
            Some(conn) if errors.is_empty() => Ok(MigrationsCheck {
                conn,
                flavor,
                dirs,
                table,
                column,
                allow_unknown: spec.allow_unknown,
                fix,
                fail_on: spec.fail_on,
            }),
            _ => Err(errors),
        }
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let dirs = self.dirs.clone();
        let flavor = self.flavor;
        let files = match tokio::task::spawn_blocking(move || read_dirs(flavor, &dirs)).await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => return e.into_outcome(),
            Err(e) => {
                return Outcome::fail(
                    Reason::InternalError,
                    format!("reading the migration files failed: {e}"),
                );
            }
        };
        let mut run = Run::new(&self.conn, ctx);
        run.observe(format!("{} migration files", files.len()));
        let outcome = match self.applied(&mut run).await {
            Ok(applied) => self.compare(&files, &applied),
            Err(e) => e.into_outcome(),
        };
        run.finish(outcome)
    }
}

impl MigrationsCheck {
    /// The ids recorded in the table.
    async fn applied(&self, run: &mut Run<'_>) -> Result<BTreeSet<String>, DbError> {
        let engine = self.conn.engine;
        let sql = format!(
            "SELECT {} FROM {}",
            quote_identifier(engine, &self.column),
            quote_identifier(engine, &self.table)
        );
        let mut session = run.connect().await?;
        let rows = run.query(&mut session, &sql).await.map_err(|mut e| {
            if e.reason == Reason::NotFound {
                e.message = format!(
                    "{}; the migrations table `{}` (column `{}`) is missing: was this database ever migrated? Run `{}`",
                    e.message, self.table, self.column, self.fix
                );
            }
            e
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .map(|v| self.flavor.id_of_row(&v))
            .collect())
    }

    fn compare(&self, files: &[MigrationFile], applied: &BTreeSet<String>) -> Outcome {
        let db = self.conn.database_name().unwrap_or("(default)");
        let known: BTreeSet<&str> = files.iter().map(|f| f.id.as_str()).collect();
        let mut pending: Vec<&MigrationFile> =
            files.iter().filter(|f| !applied.contains(&f.id)).collect();
        pending.sort_by(|a, b| order(&a.id, &b.id));
        let unknown: Vec<&String> = applied
            .iter()
            .filter(|v| !known.contains(v.as_str()))
            .collect();
        let post_pending = pending
            .iter()
            .filter(|f| self.dirs[f.dir].post_deploy)
            .count();
        let samples = vec![
            sample("pending", pending.len()),
            sample("pending_post_deploy", post_pending),
            sample("unknown", unknown.len()),
            sample("applied", applied.len() - unknown.len()),
        ];

        let judged: Vec<&MigrationFile> =
            pending.iter().copied().filter(|f| self.judges(f)).collect();
        let mut problems = Vec::new();
        if !judged.is_empty() {
            let names: Vec<String> = judged
                .iter()
                .take(NAMED)
                .map(|f| {
                    if self.dirs[f.dir].post_deploy {
                        format!("{} (post-deployment)", f.stem)
                    } else {
                        f.stem.clone()
                    }
                })
                .collect();
            let split = self.split(&judged);
            // Every pending migration, not only the judged ones, is post-deployment.
            let only_post = pending.iter().all(|f| self.dirs[f.dir].post_deploy);
            let fix = if only_post {
                format!(
                    "only post-deployment migrations are pending: run `{}` now that the new code is running",
                    self.fix
                )
            } else {
                format!("run `{}`", self.fix)
            };
            let kind = match self.fail_on {
                FailOn::All => "",
                FailOn::Regular => "regular ",
                FailOn::PostDeploy => "post-deployment ",
            };
            problems.push(format!(
                "{} pending in database `{db}`{split}: {}{}; {fix}",
                plural(
                    judged.len(),
                    &format!("{kind}migration is"),
                    &format!("{kind}migrations are")
                ),
                names.join(", "),
                more(judged.len())
            ));
        }
        if !unknown.is_empty() && !self.allow_unknown {
            problems.push(self.unknown_text(files, &unknown, db));
        }
        let value = judged.len() as f64;
        // Pending migrations this check does not judge, mentioned.
        let others = pending.len() - judged.len();
        let others_note = match (others, self.fail_on) {
            (0, _) | (_, FailOn::All) => String::new(),
            (n, FailOn::Regular) => format!(
                "; {} pending (not judged by this check)",
                plural(
                    n,
                    "post-deployment migration is",
                    "post-deployment migrations are"
                )
            ),
            (n, FailOn::PostDeploy) => format!(
                "; {} pending (not judged by this check)",
                plural(n, "regular migration is", "regular migrations are")
            ),
        };
        if !problems.is_empty() {
            return Outcome::fail(
                Reason::AssertionFailed,
                format!("{}{others_note}", problems.join("; also, ")),
            )
            .with_value(value)
            .with_samples(samples);
        }
        let mut message = if others == 0 {
            format!(
                "all {} are applied in database `{db}`{}",
                plural(files.len(), "migration", "migrations"),
                self.split(&files.iter().collect::<Vec<_>>())
            )
        } else {
            let judged_files: Vec<&MigrationFile> =
                files.iter().filter(|f| self.judges(f)).collect();
            let what = if self.fail_on == FailOn::Regular {
                "regular"
            } else {
                "post-deployment"
            };
            format!(
                "all {} {what} {} applied in database `{db}`{others_note}",
                judged_files.len(),
                if judged_files.len() == 1 {
                    "migration is"
                } else {
                    "migrations are"
                }
            )
        };
        if !unknown.is_empty() {
            message.push_str(&format!(
                " (allowed: {})",
                self.unknown_text(files, &unknown, db)
            ));
        }
        Outcome::ok(message).with_value(value).with_samples(samples)
    }

    /// Whether a pending `f` fails this check (see `fail_on`).
    fn judges(&self, f: &MigrationFile) -> bool {
        match self.fail_on {
            FailOn::All => true,
            FailOn::Regular => !self.dirs[f.dir].post_deploy,
            FailOn::PostDeploy => self.dirs[f.dir].post_deploy,
        }
    }

    fn unknown_text(&self, files: &[MigrationFile], unknown: &[&String], db: &str) -> String {
        let dirs: Vec<&str> = self
            .dirs
            .iter()
            .enumerate()
            .filter(|(i, d)| !d.optional || files.iter().any(|f| f.dir == *i))
            .map(|(_, d)| d.shown.as_str())
            .collect();
        format!(
            "database `{db}` records {} with no file in {}: {}{} — the database is newer than the code (was the code rolled back, or does `root` point at an old release?)",
            plural(unknown.len(), "migration", "migrations"),
            dirs.join(", "),
            unknown
                .iter()
                .take(NAMED)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            more(unknown.len())
        )
    }

    /// " (2 in db/migrate, 1 in db/post_migrate)" when several directories count.
    fn split(&self, files: &[&MigrationFile]) -> String {
        let counts: Vec<String> = self
            .dirs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let n = files.iter().filter(|f| f.dir == i).count();
                (n > 0).then(|| format!("{n} in {}", d.shown))
            })
            .collect();
        if counts.len() > 1 {
            format!(" ({})", counts.join(", "))
        } else {
            String::new()
        }
    }
}

fn sample(state: &str, n: usize) -> Sample {
    Sample {
        family: &MIGRATIONS,
        labels: vec![("state", state.to_string())],
        value: n as f64,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn more(n: usize) -> String {
    if n > NAMED {
        format!(" and {} more", n - NAMED)
    } else {
        String::new()
    }
}

/// Numeric versions in numeric order, names in name order.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if numeric(a) && numeric(b) {
        (a.len(), a).cmp(&(b.len(), b))
    } else {
        a.cmp(b)
    }
}

/// Reads the migration files of every directory.
fn read_dirs(flavor: Flavor, dirs: &[Dir]) -> Result<Vec<MigrationFile>, DbError> {
    let mut files = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let entries = match std::fs::read_dir(&d.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d.optional => continue,
            Err(e) => {
                let reason = match Reason::from_io(&e) {
                    Reason::InternalError => Reason::NotFound,
                    r => r,
                };
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    ": is `root` the app's directory?"
                } else {
                    ""
                };
                return Err(DbError::new(
                    reason,
                    format!(
                        "cannot read the migrations directory {}: {e}{hint}",
                        d.path.display()
                    ),
                ));
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = flavor.id_of_file(name) {
                let stem = Path::new(name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push(MigrationFile { id, stem, dir: i });
            }
        }
    }
    if files.is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.path.display().to_string()).collect();
        return Err(DbError::new(
            Reason::NotFound,
            format!(
                "no migration files in {}: is `root` the app's directory?",
                shown.join(", ")
            ),
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
