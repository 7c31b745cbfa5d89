//! The MySQL/MariaDB side of [`Session`](super::Session): connecting with
//! `mysql_async`, text-protocol queries, and its errors in words.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, IoError, OptsBuilder, Row, SslOpts, Value};

use super::{Connection, DbError, Endpoint, Rows, Step, during, io_error, tls};
use crate::checks::Reason;
use crate::support::tls::{ensure_default_provider, find_rustls_error};

pub(super) async fn connect(
    conn: &Connection,
    password: Option<String>,
    ips: Vec<IpAddr>,
) -> Result<Conn, DbError> {
    let mut opts = OptsBuilder::default()
        .user(Some(conn.user.clone()))
        .pass(password)
        .db_name(conn.database.clone())
        // Never switch to the server's socket behind the check's back.
        .prefer_socket(false)
        .stmt_cache_size(0)
        .tcp_keepalive(None::<Duration>);
    match &conn.endpoint {
        Endpoint::Tcp { host, port } => {
            opts = opts
                .ip_or_hostname(host.clone())
                .tcp_port(*port)
                .resolved_ips(Some(ips));
        }
        Endpoint::Socket { path, .. } => {
            opts = opts.socket(Some(path.to_string_lossy().into_owned()));
        }
    }
    if let Some(t) = &conn.tls {
        ensure_default_provider();
        let roots = tls::trusted_roots(t).await?;
        let ssl = SslOpts::default()
            .with_root_certs(roots.into_iter().map(|c| c.to_vec().into()).collect())
            .with_disable_built_in_roots(true)
            .with_danger_accept_invalid_certs(!t.verify)
            .with_danger_skip_domain_validation(!t.verify);
        opts = opts.ssl_opts(Some(ssl));
    }
    Conn::new(opts)
        .await
        .map_err(|e| classify(&e, conn, Step::Connect))
}

pub(super) async fn query(c: &mut Conn, conn: &Connection, sql: &str) -> Result<Rows, DbError> {
    let rows: Vec<Row> = c
        .query(sql)
        .await
        .map_err(|e| classify(&e, conn, Step::Query))?;
    Ok(rows
        .into_iter()
        .map(|r| r.unwrap().into_iter().map(text_of).collect())
        .collect())
}

/// Closes politely (COM_QUIT), giving up after `grace`: a dropped `disconnect`
/// leaves the connection marked closed, so the driver spawns nothing more.
pub(super) async fn close(c: Conn, grace: Duration) {
    let _ = tokio::time::timeout(grace, c.disconnect()).await;
}

fn text_of(v: Value) -> Option<String> {
    Some(match v {
        Value::NULL => return None,
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, d, h, mi, s, us) => format!(
            "{}{}:{mi:02}:{s:02}.{us:06}",
            if neg { "-" } else { "" },
            u64::from(d) * 24 + u64::from(h)
        ),
    })
}

/// A driver error as a reason and a message that names the server, the user
/// and the database, never the password.
pub(super) fn classify(e: &mysql_async::Error, conn: &Connection, step: Step) -> DbError {
    let server = conn.describe();
    let user = &conn.user;
    let db = conn.database.as_deref().unwrap_or("(none)");
    let pw_hint = match &conn.password {
        Some(src) => format!("check the password (from {})", src.describe()),
        None => "no password is configured: set `password`, `password_env` or `password_file`"
            .to_string(),
    };
    match e {
        mysql_async::Error::Server(s) => {
            let said = format!("{} (MySQL error {})", s.message, s.code);
            let (reason, message) = match s.code {
                1045 | 1698 => (
                    Reason::AuthFailed,
                    format!("{server} refused the login of user `{user}`: {said}; {pw_hint}"),
                ),
                1044 => (
                    Reason::PermissionDenied,
                    format!(
                        "user `{user}` may not use database `{db}` on {server}: {said}; either the database does not exist or the user has no grant on it"
                    ),
                ),
                1130 => (
                    Reason::PermissionDenied,
                    format!("{server} does not let this host connect as `{user}`: {said}"),
                ),
                1049 => (
                    Reason::NotFound,
                    format!("database `{db}` does not exist on {server}: {said}"),
                ),
                1146 | 1054 | 1193 | 1305 => (
                    Reason::NotFound,
                    format!("the query failed on {server} (database `{db}`): {said}"),
                ),
                1040 | 1129 | 1203 | 1226 => (
                    Reason::ConnectionRefused,
                    format!("{server} refused the connection: {said}"),
                ),
                1142 | 1143 | 1227 | 1370 => (
                    Reason::PermissionDenied,
                    format!("user `{user}` lacks a privilege on {server}: {said}"),
                ),
                1792 => (
                    Reason::PermissionDenied,
                    format!(
                        "the query tried to write, but checks run in a read-only transaction: {said}"
                    ),
                ),
                1969 | 3024 => (
                    Reason::Timeout,
                    format!("{server} stopped the query at its time limit: {said}"),
                ),
                1053 | 1927 => (
                    Reason::ConnectionRefused,
                    format!("{server} is shutting down: {said}"),
                ),
                _ if step == Step::Connect => (
                    Reason::ProtocolError,
                    format!("{server} refused the connection: {said}"),
                ),
                _ => (
                    Reason::ProtocolError,
                    format!("{server} rejected the query: {said}"),
                ),
            };
            DbError::new(reason, message)
        }
        mysql_async::Error::Io(IoError::Tls(t)) => {
            let host = tls_host(conn);
            let text = match find_rustls_error(t) {
                Some(r) => tls::describe(r, &host),
                None => t.to_string(),
            };
            DbError::new(Reason::TlsError, format!("TLS to {server} failed: {text}"))
        }
        mysql_async::Error::Io(IoError::Io(io)) => {
            if let Some(r) = find_rustls_error(io) {
                return DbError::new(
                    Reason::TlsError,
                    format!(
                        "TLS to {server} failed: {}",
                        tls::describe(r, &tls_host(conn))
                    ),
                );
            }
            io_error(io, conn, step)
        }
        mysql_async::Error::Driver(d) => match d {
            DriverError::NoClientSslFlagFromServer => DbError::new(
                Reason::TlsError,
                format!("{server} does not offer TLS, but the check asks for it (tls.enabled)"),
            ),
            DriverError::ConnectionClosed => DbError::new(
                Reason::ProtocolError,
                format!("{server} closed the connection{}", during(step)),
            ),
            DriverError::CleartextPluginDisabled
            | DriverError::UnknownAuthPlugin { .. }
            | DriverError::MysqlOldPasswordDisabled => DbError::new(
                Reason::AuthFailed,
                format!(
                    "{server} asks user `{user}` for a login method healthprobe does not use: {d}"
                ),
            ),
            DriverError::PacketOutOfOrder | DriverError::UnexpectedPacket { .. } => DbError::new(
                Reason::ProtocolError,
                format!(
                    "{server} does not speak the MySQL protocol as expected{}: {d}",
                    during(step)
                ),
            ),
            other => DbError::new(
                Reason::ProtocolError,
                format!("{server}{}: {other}", during(step)),
            ),
        },
        other => {
            let mut text = other.to_string();
            if let Some(src) = other.source() {
                text = format!("{text}: {src}");
            }
            DbError::new(
                Reason::ProtocolError,
                format!("{server}{}: {text}", during(step)),
            )
        }
    }
}

fn tls_host(conn: &Connection) -> String {
    match &conn.endpoint {
        Endpoint::Tcp { host, .. } => host.clone(),
        Endpoint::Socket { .. } => String::new(),
    }
}
