//! What the database kinds (`mysql`, `postgres`, `migrations`) share: the
//! connection fields of their blocks (`database_spec!`), the validated
//! [`Connection`], one run's steps under the check's deadline ([`Run`]: DNS,
//! connect, queries, each timed and each with its own timeout message), a
//! [`Session`] that hides which driver answers, and the query-to-value model
//! ([`single_number`], [`ValueJudge`]).
//!
//! Design choices worth knowing:
//! - Every run opens a fresh connection and closes it: a health check must see
//!   what a new client of the app sees (refused, auth, TLS), and no pool can
//!   hide a server that died and came back.
//! - Queries run in a read-only transaction (`START TRANSACTION READ ONLY` /
//!   `BEGIN READ ONLY`), never with session settings, so nothing leaks into a
//!   pooled server connection behind ProxySQL or PgBouncer.
//! - Host names are resolved here, not by the drivers, so a DNS failure is its
//!   own step with its own reason (`dns_error`) and timing.
//! - Results are read as text (MySQL's text protocol, PostgreSQL's simple query
//!   protocol) and a number is parsed from it, so any numeric, decimal or
//!   boolean column works the same on both servers.

mod mysql;
mod postgres;
mod tls;
mod url;

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use super::secret::{Secret, SecretSource};
use crate::checks::Family;
use crate::checks::bounds::{ValueBounds, fmt as fmt_number};
use crate::checks::{BuildContext, FieldError, Outcome, Reason, RunContext, Sample};
use crate::config::duration::Dur;

/// Time spent in each step of a database check (`dns`, `connect`, `query`).
pub static PHASE_DURATION: Family = Family::gauge(
    "healthprobe_database_phase_duration_seconds",
    "Time spent in each step of the last run of a database check (dns, connect, query).",
);

/// Which server a check talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// The name people know it by, for messages.
    pub fn display(self) -> &'static str {
        match self {
            Engine::Mysql => "MySQL",
            Engine::Postgres => "PostgreSQL",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Engine::Mysql => 3306,
            Engine::Postgres => 5432,
        }
    }

    fn url_example(self) -> &'static str {
        match self {
            Engine::Mysql => "mysql://USER@HOST:3306/DATABASE",
            Engine::Postgres => "postgres://USER@HOST:5432/DATABASE",
        }
    }
}

/// TLS to the database server.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbTlsSpec {
    /// Use TLS (default `true` once a `tls:` block is written). The connection
    /// fails with `tls_error` when the server does not offer it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Verify the server's certificate: signed by a trusted CA, not expired,
    /// valid for the host name (default `true`).
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM file of the CA certificate(s) to trust instead of the system's
    /// (absolute path).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// Bounds on the measured value.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueExpect {
    /// Limits for the value (`min`, `max`, `equals`); with none, the check
    /// passes whenever the value can be read.
    #[serde(default)]
    pub value: ValueBounds,
}

/// Declares the block of a database kind: the connection fields every database
/// kind shares (written flat in the block, since `serde(flatten)` would break
/// `deny_unknown_fields` and error positions), optionally the query-to-value
/// fields (`query;`), then the kind's own fields. It also gives the struct a
/// `connection_fields()` method for [`Connection::build`].
macro_rules! database_spec {
    (query; $(#[$meta:meta])* pub struct $name:ident { $($own:tt)* }) => {
        $crate::support::database::database_spec!(@query $(#[$meta])* pub struct $name { $($own)* });

        impl $name {
            /// The value model of the block: `query` checked for emptiness,
            /// and the judge built from `what`, `meaning` and `expect`.
            /// `default_what` names the value when `what` is not given.
            pub fn value_model(
                &self,
                default_what: Option<String>,
            ) -> (Option<String>, $crate::support::database::ValueJudge, Vec<$crate::checks::FieldError>) {
                $crate::support::database::value_model(
                    self.query.as_deref(),
                    self.what.as_deref(),
                    self.meaning.as_deref(),
                    &self.expect,
                    default_what,
                )
            }
        }
    };
    (@query $($rest:tt)*) => {
        $crate::support::database::database_spec!(@emit [
            /// SQL that returns one row whose first column is a number (or a
            /// boolean): it becomes the check's value. It runs in a read-only
            /// transaction.
            #[serde(default)]
            pub query: Option<String>,
            /// What the value is, for messages (`rows in jobs`): the message
            /// reads "rows in jobs is 12, expected exactly 0".
            #[serde(default)]
            pub what: Option<String>,
            /// What a failed expectation means, appended to the message (`the
            /// queue worker is not running`).
            #[serde(default)]
            pub meaning: Option<String>,
            /// What the value must be: `expect: { value: { min, max, equals } }`.
            #[serde(default)]
            pub expect: $crate::support::database::ValueExpect,
        ] $($rest)*);
    };
    (plain; $($rest:tt)*) => {
        $crate::support::database::database_spec!(@emit [] $($rest)*);
    };
    (@emit [$($extra:tt)*] $(#[$meta:meta])* pub struct $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The server as a URL: `mysql://USER@HOST:PORT/DATABASE` or
            /// `postgres://USER@HOST:PORT/DATABASE` (also `mariadb://`,
            /// `postgresql://`). Query parameters understood: `sslmode`,
            /// `sslrootcert`, `host` (a socket directory) for PostgreSQL;
            /// `ssl-mode`, `socket` for MySQL; others are ignored. Use either
            /// `url` or the fields `host`, `port`, `socket`, `user`, `database`.
            #[serde(default)]
            pub url: Option<String>,
            /// Server host name or IP address.
            #[serde(default)]
            pub host: Option<String>,
            /// Server port (default 3306 for MySQL, 5432 for PostgreSQL).
            #[serde(default)]
            pub port: Option<u16>,
            /// Unix socket instead of `host`: the socket file for MySQL
            /// (`/run/mysqld/mysqld.sock`); the socket directory or the
            /// `.s.PGSQL.5432` file for PostgreSQL.
            #[serde(default)]
            pub socket: Option<std::path::PathBuf>,
            /// User to log in as (required).
            #[serde(default)]
            pub user: Option<String>,
            /// Database to use (for PostgreSQL the default is the user name).
            #[serde(default)]
            pub database: Option<String>,
            /// The password, usually from the app's `.env`:
            /// `password: ${env.DB_PASSWORD}`. It is a secret: never shown.
            #[serde(default)]
            pub password: Option<$crate::support::secret::Secret>,
            /// Name of an environment variable of the agent that holds the
            /// password (`DB_PASSWORD`), read at each run.
            #[serde(default)]
            pub password_env: Option<String>,
            /// File that holds the password (a Docker or Kubernetes secret),
            /// read at each run; one trailing newline is ignored.
            #[serde(default)]
            pub password_file: Option<std::path::PathBuf>,
            /// TLS to the server; without this block the connection is plain.
            #[serde(default)]
            pub tls: Option<$crate::support::database::DbTlsSpec>,
            /// Limit for name resolution and for connecting (TCP, TLS and
            /// login), each; default: what is left of the check's timeout.
            #[serde(default)]
            pub connect_timeout: Option<$crate::config::duration::Dur>,
            /// Limit for each query; default: what is left of the check's timeout.
            #[serde(default)]
            pub query_timeout: Option<$crate::config::duration::Dur>,
            $($extra)*
            $($own)*
        }

        impl $name {
            /// The connection fields, for [`Connection::build`](crate::support::database::Connection::build).
            pub fn connection_fields(&self) -> $crate::support::database::ConnectionFields<'_> {
                $crate::support::database::ConnectionFields {
                    url: self.url.as_deref(),
                    host: self.host.as_deref(),
                    port: self.port,
                    socket: self.socket.as_deref(),
                    user: self.user.as_deref(),
                    database: self.database.as_deref(),
                    password: self.password.as_ref(),
                    password_env: self.password_env.as_deref(),
                    password_file: self.password_file.as_deref(),
                    tls: self.tls.as_ref(),
                    connect_timeout: self.connect_timeout,
                    query_timeout: self.query_timeout,
                }
            }
        }
    };
}
pub(crate) use database_spec;

/// The connection fields of a database block, borrowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionFields<'a> {
    pub url: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub socket: Option<&'a Path>,
    pub user: Option<&'a str>,
    pub database: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub password_env: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub tls: Option<&'a DbTlsSpec>,
    pub connect_timeout: Option<Dur>,
    pub query_timeout: Option<Dur>,
}

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// For PostgreSQL `path` is the socket directory and `port` names the
    /// socket file (`.s.PGSQL.PORT`).
    Socket {
        path: PathBuf,
        port: u16,
    },
}

/// TLS settings of a connection that uses TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
}

/// A validated connection: everything needed to log in, nothing read yet
/// (secrets from the environment or a file are read at each run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub engine: Engine,
    pub endpoint: Endpoint,
    pub user: String,
    pub database: Option<String>,
    pub password: Option<SecretSource>,
    pub tls: Option<TlsSettings>,
    pub connect_timeout: Option<Duration>,
    pub query_timeout: Option<Duration>,
}

impl Connection {
    /// Validates the connection fields for `engine`. With `engine` `None` the
    /// engine comes from the URL's scheme (for kinds that serve both); when
    /// neither says, `engine_field` is named in the error.
    pub fn build(
        f: &ConnectionFields<'_>,
        engine: Option<Engine>,
        engine_field: &str,
        ctx: &BuildContext,
    ) -> Result<Connection, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut parsed = None;
        if let Some(text) = f.url {
            match url::parse(text) {
                Ok(p) => parsed = Some(p),
                Err(m) => errors.push(FieldError::new("url", m)),
            }
            for (name, set) in [
                ("host", f.host.is_some()),
                ("port", f.port.is_some()),
                ("socket", f.socket.is_some()),
                ("user", f.user.is_some()),
                ("database", f.database.is_some()),
            ] {
                if set {
                    errors.push(FieldError::new(
                        name,
                        format!("give the server either as `url` or with fields, not both: put the {name} in the url"),
                    ));
                }
            }
        }
        let engine = match (engine, &parsed) {
            (Some(e), Some(p)) if e != p.engine => {
                errors.push(FieldError::new(
                    "url",
                    format!(
                        "this is a {} URL, but the check talks to {}: write {}",
                        p.engine.display(),
                        e.display(),
                        e.url_example()
                    ),
                ));
                e
            }
            (Some(e), _) => e,
            (None, Some(p)) => p.engine,
            (None, None) => {
                if f.url.is_none() {
                    errors.push(FieldError::new(
                        engine_field,
                        "say which server this is: `mysql` or `postgres` (or give a `url`)",
                    ));
                }
                return Err(errors);
            }
        };

        let url_password = parsed.as_mut().and_then(|p| p.password.take());
        let password = match url_password {
            Some(pw) => {
                if f.password.is_some() || f.password_env.is_some() || f.password_file.is_some() {
                    errors.push(FieldError::new(
                        "url",
                        "the url already holds a password: remove it from the url or drop the password field",
                    ));
                }
                let s = Secret::new(pw);
                crate::redact::register(s.expose());
                Some(SecretSource::Value(s))
            }
            None => match SecretSource::from_fields(
                f.password,
                f.password_env,
                f.password_file,
                ["password", "password_env", "password_file"],
            ) {
                Ok(p) => p,
                Err(mut e) => {
                    errors.append(&mut e);
                    None
                }
            },
        };

        let (host, port, socket, user, database, url_tls) = match parsed {
            Some(p) => (p.host, p.port, p.socket, p.user, p.database, p.tls),
            None => (
                f.host.map(str::to_string),
                f.port,
                f.socket.map(Path::to_path_buf),
                f.user.map(str::to_string),
                f.database.map(str::to_string),
                None,
            ),
        };
        let at = |field: &str| {
            if f.url.is_some() {
                "url".to_string()
            } else {
                field.to_string()
            }
        };

        let endpoint = match (host, socket) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    at("socket"),
                    "give either a host or a socket, not both",
                ));
                None
            }
            (Some(host), None) if host.is_empty() => {
                errors.push(FieldError::new(at("host"), "the host is empty"));
                None
            }
            (Some(host), None) => Some(Endpoint::Tcp {
                host,
                port: port.unwrap_or(engine.default_port()),
            }),
            (None, Some(path)) => {
                if !path.is_absolute() {
                    errors.push(FieldError::new(
                        at("socket"),
                        format!("the socket `{}` must be an absolute path", path.display()),
                    ));
                }
                Some(socket_endpoint(engine, path, port))
            }
            (None, None) => {
                errors.push(FieldError::new(
                    if f.url.is_some() { "url" } else { "host" },
                    format!(
                        "say where the server is: `url: {}`, or `host` (and `port`), or `socket`",
                        engine.url_example()
                    ),
                ));
                None
            }
        };
        let user = match user {
            Some(u) if !u.is_empty() => Some(u),
            _ => {
                errors.push(FieldError::new(
                    at("user"),
                    format!(
                        "the user to log in as is missing: `user: NAME` or `url: {}`",
                        engine.url_example()
                    ),
                ));
                None
            }
        };

        let tls_spec = f.tls.cloned().or(url_tls);
        let tls = match tls_spec {
            Some(t) if t.enabled => {
                if let Some(ca) = &t.ca_file
                    && !ca.is_absolute()
                {
                    errors.push(FieldError::new(
                        "tls.ca_file",
                        format!("`{}` must be an absolute path", ca.display()),
                    ));
                }
                if matches!(endpoint, Some(Endpoint::Socket { .. })) {
                    errors.push(FieldError::new(
                        "tls",
                        "TLS does not apply to a unix socket: connect by host, or remove the tls block",
                    ));
                }
                Some(TlsSettings {
                    verify: t.verify,
                    ca_file: t.ca_file,
                })
            }
            _ => None,
        };

        for (name, limit) in [
            ("connect_timeout", f.connect_timeout),
            ("query_timeout", f.query_timeout),
        ] {
            if let Some(d) = limit
                && d.get() > ctx.timeout
            {
                errors.push(FieldError::new(
                    name,
                    format!(
                        "{d} is longer than the check's timeout ({}): it could never apply; raise the check's `timeout` or lower this",
                        humantime::format_duration(ctx.timeout)
                    ),
                ));
            }
        }

        match (endpoint, user) {
            (Some(endpoint), Some(user)) if errors.is_empty() => Ok(Connection {
                engine,
                endpoint,
                user,
                database: database.filter(|d| !d.is_empty()),
                password,
                tls,
                connect_timeout: f.connect_timeout.map(Dur::get),
                query_timeout: f.query_timeout.map(Dur::get),
            }),
            _ => Err(errors),
        }
    }

    /// Where the server is, for messages: `127.0.0.1:3306` or `socket /run/mysqld/mysqld.sock`.
    pub fn place(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Socket { path, port } => match self.engine {
                Engine::Mysql => format!("socket {}", path.display()),
                Engine::Postgres => {
                    format!("socket {}", path.join(format!(".s.PGSQL.{port}")).display())
                }
            },
        }
    }

    /// "MySQL at 127.0.0.1:3306".
    pub fn describe(&self) -> String {
        format!("{} at {}", self.engine.display(), self.place())
    }

    /// The database the session uses (PostgreSQL defaults to the user's name).
    pub fn database_name(&self) -> Option<&str> {
        match (&self.database, self.engine) {
            (Some(d), _) => Some(d),
            (None, Engine::Postgres) => Some(&self.user),
            (None, Engine::Mysql) => None,
        }
    }
}

fn socket_endpoint(engine: Engine, path: PathBuf, port: Option<u16>) -> Endpoint {
    let port = port.unwrap_or(engine.default_port());
    if engine == Engine::Postgres
        && let Some(suffix) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(".s.PGSQL."))
        && let Ok(p) = suffix.parse::<u16>()
    {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Endpoint::Socket { path: dir, port: p };
    }
    Endpoint::Socket { path, port }
}

/// A failure of a database step: the reason and a message a person can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct DbError {
    pub reason: Reason,
    pub message: String,
}

impl DbError {
    pub fn new(reason: Reason, message: impl Into<String>) -> DbError {
        DbError {
            reason,
            message: message.into(),
        }
    }

    pub fn into_outcome(self) -> Outcome {
        Outcome::fail(self.reason, self.message)
    }
}

/// Rows read as text: `None` is SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// The step a driver error happened in, for its classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    Query,
}

/// An open connection to either server. Dropping it closes the connection in
/// the background, bounded in time, so a hung server cannot pile up tasks.
pub struct Session {
    inner: Option<SessionInner>,
}

enum SessionInner {
    Mysql(mysql_async::Conn),
    Postgres(postgres::PgSession),
}

impl Session {
    async fn query_text(&mut self, conn: &Connection, sql: &str) -> Result<Rows, DbError> {
        match &mut self.inner {
            Some(SessionInner::Mysql(c)) => mysql::query(c, conn, sql).await,
            Some(SessionInner::Postgres(c)) => postgres::query(c, conn, sql).await,
            None => Err(DbError::new(Reason::InternalError, "the session is closed")),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let grace = Duration::from_secs(5);
            match inner {
                SessionInner::Mysql(c) => mysql::close(c, grace).await,
                SessionInner::Postgres(c) => c.close(grace).await,
            }
        });
    }
}

/// One run of a database check: runs the steps under the check's deadline,
/// times them, and keeps what it saw.
pub struct Run<'a> {
    conn: &'a Connection,
    ctx: &'a RunContext,
    phases: Vec<(&'static str, Duration)>,
    observations: Vec<String>,
}

impl<'a> Run<'a> {
    pub fn new(conn: &'a Connection, ctx: &'a RunContext) -> Run<'a> {
        Run {
            conn,
            ctx,
            phases: Vec::new(),
            observations: Vec::new(),
        }
    }

    /// Notes what the probe saw (kept only for debug runs).
    pub fn observe(&mut self, what: impl Into<String>) {
        self.observations.push(what.into());
    }

    /// Adds the phase timings and observations to `outcome`.
    pub fn finish(self, outcome: Outcome) -> Outcome {
        // A phase met twice (the read-only BEGIN and the query) is summed.
        let mut totals: Vec<(&'static str, Duration)> = Vec::new();
        for (phase, d) in &self.phases {
            match totals.iter_mut().find(|(p, _)| p == phase) {
                Some((_, t)) => *t += *d,
                None => totals.push((phase, *d)),
            }
        }
        let samples = totals
            .into_iter()
            .map(|(phase, d)| Sample {
                family: &PHASE_DURATION,
                labels: vec![("phase", phase.to_string())],
                value: d.as_secs_f64(),
            })
            .collect();
        outcome
            .with_samples(samples)
            .with_observations(self.observations)
    }

    /// How long a step may take: its own limit if it is within the check's
    /// deadline, else what is left of the deadline minus a small margin (so
    /// this message, which names the step, wins over the runner's hard stop).
    fn budget(&self, limit: Option<Duration>, limit_name: &str) -> (Duration, String) {
        let remaining = self.ctx.remaining();
        let left = remaining.saturating_sub((remaining / 10).min(Duration::from_millis(200)));
        match limit {
            Some(l) if l <= left => (l, format!("{limit_name} {}", humantime::format_duration(l))),
            _ => (
                left,
                format!(
                    "what was left of the check's timeout, {}",
                    humantime::format_duration(Duration::from_millis(left.as_millis() as u64))
                ),
            ),
        }
    }

    async fn step<T>(
        &mut self,
        phase: &'static str,
        limit: Option<Duration>,
        limit_name: &str,
        doing: &str,
        work: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let (budget, which) = self.budget(limit, limit_name);
        let start = Instant::now();
        let result = tokio::time::timeout(budget, work).await;
        self.phases.push((phase, start.elapsed()));
        match result {
            Ok(r) => r,
            Err(_) => Err(DbError::new(
                Reason::Timeout,
                format!(
                    "{} did not answer in time while {doing}: gave up after {which}",
                    self.conn.describe()
                ),
            )),
        }
    }

    /// Reads the password, resolves the host and logs in.
    pub async fn connect(&mut self) -> Result<Session, DbError> {
        let conn = self.conn;
        let password = match &conn.password {
            None => None,
            Some(src) => Some(
                src.read()
                    .await
                    .map_err(|e| DbError::new(e.reason, e.message))?,
            ),
        };
        let ips = match &conn.endpoint {
            Endpoint::Tcp { host, .. } if let Ok(ip) = host.parse::<IpAddr>() => vec![ip],
            Endpoint::Tcp { host, port } => {
                let host = host.clone();
                let port = *port;
                let ips = self
                    .step(
                        "dns",
                        conn.connect_timeout,
                        "connect_timeout",
                        &format!("resolving the host name `{host}`"),
                        resolve(&host, port),
                    )
                    .await?;
                self.observe(format!(
                    "{host} resolves to {}",
                    ips.iter()
                        .map(IpAddr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                ips
            }
            Endpoint::Socket { .. } => Vec::new(),
        };
        let doing = format!(
            "connecting ({}login as `{}`)",
            match (&conn.endpoint, &conn.tls) {
                (Endpoint::Socket { .. }, _) => "socket, ",
                (_, Some(_)) => "TCP, TLS, ",
                (_, None) => "TCP, ",
            },
            conn.user
        );
        let session = self
            .step(
                "connect",
                conn.connect_timeout,
                "connect_timeout",
                &doing,
                open(conn, password, ips),
            )
            .await?;
        let server = match &session {
            SessionInner::Mysql(c) => {
                let (major, minor, patch) = c.server_version();
                format!(" (server {major}.{minor}.{patch})")
            }
            SessionInner::Postgres(_) => String::new(),
        };
        let tls = if conn.tls.is_some() { ", TLS" } else { "" };
        self.observe(format!("connected to {}{server}{tls}", conn.describe()));
        let mut session = Session {
            inner: Some(session),
        };
        // Transaction-scoped only: safe behind PgBouncer or ProxySQL. On
        // PostgreSQL the server also stops the query a second after the
        // client gives up on it.
        let begin = match conn.engine {
            Engine::Mysql => "START TRANSACTION READ ONLY".to_string(),
            Engine::Postgres => {
                let limit = conn.query_timeout.unwrap_or_else(|| self.ctx.remaining());
                format!(
                    "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
                    limit.as_millis() + 1000
                )
            }
        };
        self.query_in(&mut session, &begin, "starting a read-only transaction")
            .await?;
        Ok(session)
    }

    /// Runs one query (under `query_timeout`) and returns its rows as text.
    pub async fn query(&mut self, session: &mut Session, sql: &str) -> Result<Rows, DbError> {
        let doing = format!("running the query `{}`", shorten(sql, 80));
        let rows = self.query_in(session, sql, &doing).await?;
        self.observe(format!(
            "`{}` returned {} row(s){}",
            shorten(sql, 80),
            rows.len(),
            match rows.first().and_then(|r| r.first()) {
                Some(Some(v)) => format!(", first value `{}`", shorten(v, 40)),
                Some(None) => ", first value NULL".to_string(),
                None => String::new(),
            }
        ));
        Ok(rows)
    }

    async fn query_in(
        &mut self,
        session: &mut Session,
        sql: &str,
        doing: &str,
    ) -> Result<Rows, DbError> {
        let conn = self.conn;
        self.step(
            "query",
            conn.query_timeout,
            "query_timeout",
            doing,
            session.query_text(conn, sql),
        )
        .await
    }
}

/// Logs in with the driver of the connection's engine.
async fn open(
    conn: &Connection,
    password: Option<String>,
    ips: Vec<IpAddr>,
) -> Result<SessionInner, DbError> {
    Ok(match conn.engine {
        Engine::Mysql => SessionInner::Mysql(mysql::connect(conn, password, ips).await?),
        Engine::Postgres => SessionInner::Postgres(postgres::connect(conn, password, ips).await?),
    })
}

/// Resolves a host name (an IP address is used as it is).
async fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, DbError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        DbError::new(
            Reason::DnsError,
            format!("cannot resolve the database host name `{host}`: {e}"),
        )
    })?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    if ips.is_empty() {
        return Err(DbError::new(
            Reason::DnsError,
            format!("the database host name `{host}` has no address"),
        ));
    }
    Ok(ips)
}

/// The query-to-value fields validated: the trimmed query (`None` when absent
/// or empty, with an error for empty), the judge, and any field errors.
/// Without `default_what`, the value is named after the query.
pub fn value_model(
    query: Option<&str>,
    what: Option<&str>,
    meaning: Option<&str>,
    expect: &ValueExpect,
    default_what: Option<String>,
) -> (Option<String>, ValueJudge, Vec<FieldError>) {
    let mut errors = Vec::new();
    let sql = match query.map(str::trim) {
        Some("") => {
            errors.push(FieldError::new("query", "the query is empty"));
            None
        }
        q => q.map(str::to_string),
    };
    let default_what = default_what.unwrap_or_else(|| match &sql {
        Some(q) => format!("the result of `{}`", shorten(q, 60)),
        None => "the value".to_string(),
    });
    let judge = ValueJudge::new(what, meaning, expect, default_what);
    errors.extend(judge.validate());
    (sql, judge, errors)
}

/// One run of a query check: connect, query, judge the number; the outcome
/// carries the phase timings and what was seen.
pub async fn measure_query(
    conn: &Connection,
    ctx: &RunContext,
    sql: &str,
    judge: &ValueJudge,
) -> Outcome {
    let mut run = Run::new(conn, ctx);
    let outcome = query_number(&mut run, sql)
        .await
        .map(|v| judge.judge(v, None));
    run.finish(outcome.unwrap_or_else(DbError::into_outcome))
}

/// Connects, runs `sql` and reads its single number.
pub async fn query_number(run: &mut Run<'_>, sql: &str) -> Result<f64, DbError> {
    let mut session = run.connect().await?;
    let rows = run.query(&mut session, sql).await?;
    single_number(&rows, sql)
}

/// The number in the first column of the only row.
pub fn single_number(rows: &Rows, sql: &str) -> Result<f64, DbError> {
    let q = shorten(sql, 80);
    let Some(row) = rows.first() else {
        return Err(DbError::new(
            Reason::AssertionFailed,
            format!("the query `{q}` returned no row; it must return one row with one number"),
        ));
    };
    match row.first() {
        None => Err(DbError::new(
            Reason::AssertionFailed,
            format!("the query `{q}` returned a row with no column"),
        )),
        Some(None) => Err(DbError::new(
            Reason::AssertionFailed,
            format!("the query `{q}` returned NULL, not a number (wrap it in COALESCE(..., 0)?)"),
        )),
        Some(Some(text)) => parse_number(text).ok_or_else(|| {
            DbError::new(
                Reason::AssertionFailed,
                format!(
                    "the query `{q}` returned `{}`, which is not a number",
                    shorten(text, 40)
                ),
            )
        }),
    }
}

/// A number from a cell's text: integers, decimals, and booleans as 1/0
/// (`t`/`f` from PostgreSQL, `ON`/`OFF` from MySQL variables).
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "t" | "true" | "on" | "yes" => return Some(1.0),
        "f" | "false" | "off" | "no" => return Some(0.0),
        _ => {}
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Judges a measured value against bounds, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueJudge {
    /// Names the value in messages ("rows in jobs").
    pub what: String,
    /// Appended to a failure ("the queue worker is not running").
    pub meaning: Option<String>,
    pub bounds: ValueBounds,
}

impl ValueJudge {
    /// From the query-to-value fields; `default_what` names the value when
    /// the pack does not.
    pub fn new(
        what: Option<&str>,
        meaning: Option<&str>,
        expect: &ValueExpect,
        default_what: impl Into<String>,
    ) -> ValueJudge {
        ValueJudge {
            what: what
                .map(str::to_string)
                .unwrap_or_else(|| default_what.into()),
            meaning: meaning.map(str::to_string),
            bounds: expect.value.clone(),
        }
    }

    /// Field errors for contradictory bounds.
    pub fn validate(&self) -> Vec<FieldError> {
        self.bounds.validate("expect.value")
    }

    /// The outcome for `value`, always carrying it; `detail` is added to the
    /// message (e.g. "16 MiB against 64 MiB").
    pub fn judge(&self, value: f64, detail: Option<String>) -> Outcome {
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        match self.bounds.violation(&self.what, value) {
            Some(v) => {
                let meaning = self
                    .meaning
                    .as_ref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default();
                Outcome::fail(Reason::AssertionFailed, format!("{v}{detail}{meaning}"))
            }
            None => {
                let expected = expectation(&self.bounds)
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default();
                Outcome::ok(format!(
                    "{} is {}{expected}{detail}",
                    self.what,
                    fmt_number(value)
                ))
            }
        }
        .with_value(value)
    }
}

/// The bounds in words ("expected at most 0.8"), `None` when there are none.
pub fn expectation(b: &ValueBounds) -> Option<String> {
    if let Some(eq) = b.equals {
        return Some(format!("as expected (exactly {})", fmt_number(eq)));
    }
    match (b.min, b.max) {
        (Some(min), Some(max)) => Some(format!(
            "within the expected {}..{}",
            fmt_number(min),
            fmt_number(max)
        )),
        (Some(min), None) => Some(format!("at least the expected {}", fmt_number(min))),
        (None, Some(max)) => Some(format!("within the maximum {}", fmt_number(max))),
        (None, None) => None,
    }
}

/// `text` cut to `max` characters (with `…`), on one line.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A byte count for people: `64 MiB`, `1.5 GiB`, `512 B`.
pub fn human_bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let n = if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    };
    format!("{n} {}", UNITS[unit])
}

/// Checks that `name` is a plain SQL identifier (optionally `schema.table`),
/// so it can be put in a query without quoting games.
pub fn validate_identifier(path: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            path,
            format!(
                "`{name}` is not a plain SQL name (letters, digits and `_`, optionally `schema.name`)"
            ),
        ))
    }
}

/// Quotes a validated identifier for `engine` (`schema_migrations` →
/// `` `schema_migrations` `` or `"schema_migrations"`).
pub fn quote_identifier(engine: Engine, name: &str) -> String {
    let q = match engine {
        Engine::Mysql => '`',
        Engine::Postgres => '"',
    };
    name.split('.')
        .map(|p| format!("{q}{p}{q}"))
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn during(step: Step) -> &'static str {
    match step {
        Step::Connect => " while connecting",
        Step::Query => " during the query",
    }
}

/// An I/O error of either driver, in words.
pub(crate) fn io_error(io: &std::io::Error, conn: &Connection, step: Step) -> DbError {
    use std::io::ErrorKind as K;
    let server = conn.describe();
    let engine = conn.engine.display();
    match (io.kind(), &conn.endpoint) {
        (K::ConnectionRefused, Endpoint::Socket { .. }) => DbError::new(
            Reason::ConnectionRefused,
            format!(
                "nothing accepts connections on the {} (connection refused): is the {engine} server running?",
                conn.place()
            ),
        ),
        (K::ConnectionRefused, _) => DbError::new(
            Reason::ConnectionRefused,
            format!(
                "nothing accepts connections at {} (connection refused): is the {engine} server running and listening on that address and port?",
                conn.place()
            ),
        ),
        (K::NotFound, Endpoint::Socket { .. }) => DbError::new(
            Reason::NotFound,
            format!(
                "the {} does not exist: is the {engine} server running, and is this its socket?",
                conn.place()
            ),
        ),
        (K::PermissionDenied, Endpoint::Socket { .. }) => DbError::new(
            Reason::PermissionDenied,
            format!(
                "permission denied on the {}: the agent's user may not use it",
                conn.place()
            ),
        ),
        (K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable, _) => DbError::new(
            Reason::ConnectionRefused,
            format!("cannot reach {server}: {io}"),
        ),
        (K::TimedOut, _) => DbError::new(
            Reason::Timeout,
            format!("{server} did not answer{}: {io}", during(step)),
        ),
        (K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe, _) => {
            DbError::new(
                Reason::ProtocolError,
                format!(
                    "{server} closed the connection{} ({io}): did it stop or restart, or is it not a {engine} server?",
                    during(step)
                ),
            )
        }
        _ => {
            let reason = match Reason::from_io(io) {
                Reason::InternalError => Reason::ProtocolError,
                r => r,
            };
            DbError::new(reason, format!("{server}{}: {io}", during(step)))
        }
    }
}

#[cfg(test)]
mod tests;
