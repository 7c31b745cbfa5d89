//! The PostgreSQL side of [`Session`](super::Session): connecting with
//! `tokio-postgres` (TLS by rustls), simple-protocol queries (text results),
//! and its errors in words.

use std::net::IpAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{Connection, DbError, Endpoint, Rows, Step, during, io_error, tls};
use crate::checks::Reason;
use crate::support::tls::find_rustls_error;

/// A client and the task that drives its connection.
pub(crate) struct PgSession {
    client: Client,
    task: JoinHandle<()>,
}

impl PgSession {
    /// Drops the client (the driver then sends Terminate) and waits for the
    /// connection task at most `grace` before aborting it.
    pub(super) async fn close(self, grace: Duration) {
        drop(self.client);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

pub(super) async fn connect(
    conn: &Connection,
    password: Option<String>,
    ips: Vec<IpAddr>,
) -> Result<PgSession, DbError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&conn.user).application_name("healthprobe");
    if let Some(pw) = password {
        cfg.password(pw);
    }
    if let Some(db) = &conn.database {
        cfg.dbname(db);
    }
    match &conn.endpoint {
        Endpoint::Tcp { host, port } => {
            // One host entry per resolved address: the driver tries each in
            // turn and verifies TLS against the name.
            for ip in &ips {
                cfg.host(host).hostaddr(*ip);
            }
            cfg.port(*port);
        }
        Endpoint::Socket { path, port } => {
            cfg.host_path(path).port(*port);
        }
    }
    let classify_connect = |e: tokio_postgres::Error| classify(&e, conn, Step::Connect);
    let (client, task) = match &conn.tls {
        None => {
            cfg.ssl_mode(SslMode::Disable);
            let (client, connection) = cfg.connect(NoTls).await.map_err(classify_connect)?;
            (
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            )
        }
        Some(t) => {
            cfg.ssl_mode(SslMode::Require);
            let roots = tls::trusted_roots(t).await?;
            let config = tls::client_config(t, roots)?;
            let maker = tokio_postgres_rustls::MakeRustlsConnect::new(config);
            let (client, connection) = cfg.connect(maker).await.map_err(classify_connect)?;
            (
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            )
        }
    };
    Ok(PgSession { client, task })
}

/// Runs `sql` with the simple query protocol; returns the rows of the first
/// statement that returns rows.
pub(super) async fn query(
    s: &mut PgSession,
    conn: &Connection,
    sql: &str,
) -> Result<Rows, DbError> {
    let messages = s
        .client
        .simple_query(sql)
        .await
        .map_err(|e| classify(&e, conn, Step::Query))?;
    let mut rows = Vec::new();
    let mut described = false;
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(_) if described => break,
            SimpleQueryMessage::RowDescription(_) => described = true,
            SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            SimpleQueryMessage::CommandComplete(_) if described => break,
            _ => {}
        }
    }
    Ok(rows)
}

/// A driver error as a reason and a message that names the server, the user
/// and the database, never the password.
fn classify(e: &tokio_postgres::Error, conn: &Connection, step: Step) -> DbError {
    let server = conn.describe();
    let user = &conn.user;
    let db = conn.database_name().unwrap_or_default();
    if let Some(d) = e.as_db_error() {
        let said = format!("{} (SQLSTATE {})", d.message(), d.code().code());
        let code = d.code();
        let (reason, message) = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            let hint = match &conn.password {
                Some(src) => format!(
                    "check the password (from {}) and pg_hba.conf",
                    src.describe()
                ),
                None => {
                    "no password is configured: set `password`, `password_env` or `password_file`"
                        .into()
                }
            };
            (
                Reason::AuthFailed,
                format!("{server} refused the login of user `{user}`: {said}; {hint}"),
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            (
                Reason::NotFound,
                format!("database `{db}` does not exist on {server}: {said}"),
            )
        } else if [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::INVALID_SCHEMA_NAME,
            SqlState::UNDEFINED_OBJECT,
        ]
        .contains(code)
        {
            (
                Reason::NotFound,
                format!("the query failed on {server} (database `{db}`): {said}"),
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                Reason::PermissionDenied,
                format!("user `{user}` lacks a privilege on {server}: {said}"),
            )
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            (
                Reason::PermissionDenied,
                format!(
                    "the query tried to write, but checks run in a read-only transaction: {said}"
                ),
            )
        } else if *code == SqlState::QUERY_CANCELED {
            (
                Reason::Timeout,
                format!("{server} cancelled the query at its time limit: {said}"),
            )
        } else if [
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
        ]
        .contains(code)
            || code.code().starts_with("08")
        {
            (
                Reason::ConnectionRefused,
                format!("{server} refused the connection: {said}"),
            )
        } else if step == Step::Connect {
            (
                Reason::ProtocolError,
                format!("{server} refused the connection: {said}"),
            )
        } else {
            (
                Reason::ProtocolError,
                format!("{server} rejected the query: {said}"),
            )
        };
        return DbError::new(reason, message);
    }
    let host = match &conn.endpoint {
        Endpoint::Tcp { host, .. } => host.as_str(),
        Endpoint::Socket { .. } => "",
    };
    if let Some(r) = find_rustls_error(e) {
        return DbError::new(
            Reason::TlsError,
            format!("TLS to {server} failed: {}", tls::describe(r, host)),
        );
    }
    let cause = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        let why = if cause.contains("does not support TLS") {
            "the server does not offer TLS, but the check asks for it (tls.enabled)".to_string()
        } else {
            cause
        };
        return DbError::new(Reason::TlsError, format!("TLS to {server} failed: {why}"));
    }
    if cause.contains("password missing") {
        return DbError::new(
            Reason::AuthFailed,
            format!(
                "{server} asks user `{user}` for a password and none is configured: set `password`, `password_env` or `password_file`"
            ),
        );
    }
    if text.starts_with("authentication error") {
        return DbError::new(
            Reason::AuthFailed,
            format!("{server} refused the login of user `{user}`: {cause}"),
        );
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_error(io, conn, step);
        }
        src = s.source();
    }
    if e.is_closed() {
        return DbError::new(
            Reason::ProtocolError,
            format!("{server} closed the connection{}", during(step)),
        );
    }
    let detail = if cause.is_empty() {
        text
    } else {
        format!("{text}: {cause}")
    };
    DbError::new(
        Reason::ProtocolError,
        format!("{server}{}: {detail}", during(step)),
    )
}
