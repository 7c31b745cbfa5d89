//! The `mysql` kind: one number from a MySQL or MariaDB server, against bounds.
//!
//! Three ways to get the number, one per check: `query` (any SQL that returns
//! one number: `SELECT COUNT(*) FROM jobs`), `variable` (a server variable such
//! as `max_allowed_packet`, in bytes for sizes), and `connection_headroom`
//! (connections in use over `max_connections`, as a ratio). The connection,
//! password, TLS and timeout handling is shared with the other database kinds
//! in [`crate::support::database`].

use schemars::JsonSchema;
use serde::Deserialize;

use super::{BuildContext, Check, Family, FieldError, Outcome, Reason, RunContext, Sample};
use crate::support::database::{
    Connection, DbError, Engine, Run, Session, ValueJudge, database_spec, human_bytes,
    measure_query, parse_number, shorten, validate_identifier,
};

/// Connections counted by `connection_headroom` (`Threads_connected` or `Max_used_connections`).
pub static CONNECTIONS: Family = Family::gauge(
    "healthprobe_mysql_connections",
    "Connections counted by a mysql connection_headroom check (label status: the status variable read).",
);

/// The server's `max_connections`, read by `connection_headroom`.
pub static MAX_CONNECTIONS: Family = Family::gauge(
    "healthprobe_mysql_max_connections",
    "The server's max_connections, read by a mysql connection_headroom check.",
);

database_spec! { query;
    /// The `mysql:` block: where the server is, how to log in, and one of
    /// `query`, `variable` or `connection_headroom`, whose number becomes the
    /// check's value (always exported) and is held to `expect.value`.
    pub struct MysqlSpec {
        /// A global server variable to read (`SHOW GLOBAL VARIABLES`), e.g.
        /// `max_allowed_packet`. Sizes are in bytes: 64 MiB is `67108864`;
        /// `ON`/`OFF` read as 1/0.
        #[serde(default)]
        pub variable: Option<String>,
        /// Connections in use over `max_connections`, as a ratio from 0 to 1:
        /// `threads_connected` (now) or `max_used_connections` (the peak since
        /// the server started). Bound it with `expect: { value: { max: 0.8 } }`.
        #[serde(default)]
        pub connection_headroom: Option<Headroom>,
    }
}

/// Which count `connection_headroom` compares with `max_connections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Headroom {
    /// `Threads_connected`: connections open now.
    ThreadsConnected,
    /// `Max_used_connections`: the most connections open at once since start.
    MaxUsedConnections,
}

impl Headroom {
    fn status_name(self) -> &'static str {
        match self {
            Headroom::ThreadsConnected => "Threads_connected",
            Headroom::MaxUsedConnections => "Max_used_connections",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Headroom::ThreadsConnected => "threads_connected",
            Headroom::MaxUsedConnections => "max_used_connections",
        }
    }
}

enum Mode {
    Query(String),
    Variable(String),
    Headroom(Headroom),
}

/// A prepared `mysql` check.
pub struct MysqlCheck {
    conn: Connection,
    mode: Mode,
    judge: ValueJudge,
}

impl Check for MysqlCheck {
    type Spec = MysqlSpec;

    fn build(spec: &MysqlSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let conn = Connection::build(&spec.connection_fields(), Some(Engine::Mysql), "", ctx)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let given: Vec<&str> = [
            ("query", spec.query.is_some()),
            ("variable", spec.variable.is_some()),
            ("connection_headroom", spec.connection_headroom.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        let default_what = match (&spec.variable, spec.connection_headroom) {
            (Some(name), _) => Some(name.clone()),
            (_, Some(h)) => Some(format!("{}/max_connections", h.status_name())),
            _ => None,
        };
        let (sql, judge, mut value_errors) = spec.value_model(default_what);
        let mode = match (given.len(), sql, &spec.variable, spec.connection_headroom) {
            (1, Some(sql), _, _) => Some(Mode::Query(sql)),
            (1, _, Some(name), _) => match validate_identifier("variable", name) {
                Ok(()) if !name.contains('.') => Some(Mode::Variable(name.clone())),
                Ok(()) => {
                    errors.push(FieldError::new(
                        "variable",
                        "a server variable name has no `.`",
                    ));
                    None
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (1, _, _, Some(h)) => Some(Mode::Headroom(h)),
            (0, ..) => {
                errors.push(FieldError::new(
                    "",
                    "say what to measure: `query` (SQL returning one number), `variable` (a server variable) or `connection_headroom`",
                ));
                None
            }
            (1, ..) => None, // an empty query, reported by value_model
            _ => {
                errors.push(FieldError::new(
                    given[1],
                    format!(
                        "measure one thing per check: `{}` and `{}` are both set",
                        given[0], given[1]
                    ),
                ));
                None
            }
        };
        errors.append(&mut value_errors);
        match (conn, mode) {
            (Some(conn), Some(mode)) if errors.is_empty() => Ok(MysqlCheck { conn, mode, judge }),
            _ => Err(errors),
        }
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let mut run = Run::new(&self.conn, ctx);
        let outcome = match &self.mode {
            Mode::Query(sql) => return measure_query(&self.conn, ctx, sql, &self.judge).await,
            Mode::Variable(name) => self.variable(&mut run, name).await,
            Mode::Headroom(h) => self.headroom(&mut run, *h).await,
        };
        run.finish(outcome.unwrap_or_else(DbError::into_outcome))
    }
}

impl MysqlCheck {
    async fn variable(&self, run: &mut Run<'_>, name: &str) -> Result<Outcome, DbError> {
        let mut session = run.connect().await?;
        let value = self.show(run, &mut session, "VARIABLES", name).await?;
        let detail = is_size(name).then(|| {
            let mut d = human_bytes(value);
            let b = &self.judge.bounds;
            for (word, bound) in [
                ("minimum", b.min),
                ("maximum", b.max),
                ("expected", b.equals),
            ] {
                if let Some(x) = bound {
                    d.push_str(&format!(", {word} {}", human_bytes(x)));
                }
            }
            d
        });
        Ok(self.judge.judge(value, detail))
    }

    async fn headroom(&self, run: &mut Run<'_>, h: Headroom) -> Result<Outcome, DbError> {
        let mut session = run.connect().await?;
        let used = self
            .show(run, &mut session, "STATUS", h.status_name())
            .await?;
        let max = self
            .show(run, &mut session, "VARIABLES", "max_connections")
            .await?;
        if max <= 0.0 {
            return Err(DbError::new(
                Reason::ProtocolError,
                format!("{} reports max_connections = {max}", self.conn.describe()),
            ));
        }
        let ratio = used / max;
        let detail = format!(
            "{} of {} connections",
            super::bounds::fmt(used),
            super::bounds::fmt(max)
        );
        Ok(self.judge.judge(ratio, Some(detail)).with_samples(vec![
            Sample {
                family: &CONNECTIONS,
                labels: vec![("status", h.label().to_string())],
                value: used,
            },
            Sample {
                family: &MAX_CONNECTIONS,
                labels: Vec::new(),
                value: max,
            },
        ]))
    }

    /// One global variable or status value, as a number.
    async fn show(
        &self,
        run: &mut Run<'_>,
        session: &mut Session,
        what: &str,
        name: &str,
    ) -> Result<f64, DbError> {
        let rows = run
            .query(
                session,
                &format!("SHOW GLOBAL {what} WHERE Variable_name = '{name}'"),
            )
            .await?;
        let Some(text) = rows.first().and_then(|r| r.get(1)) else {
            return Err(DbError::new(
                Reason::NotFound,
                format!(
                    "{} has no {} `{name}`",
                    self.conn.describe(),
                    if what == "STATUS" {
                        "status variable"
                    } else {
                        "server variable"
                    }
                ),
            ));
        };
        let text = text.as_deref().unwrap_or("NULL");
        parse_number(text).ok_or_else(|| {
            DbError::new(
                Reason::AssertionFailed,
                format!("{name} is `{}`, not a number", shorten(text, 40)),
            )
        })
    }
}

/// Whether a variable holds a size in bytes (shown as MiB in messages).
fn is_size(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["_size", "_packet", "_length", "_len"]
        .iter()
        .any(|s| n.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;
    use std::time::Duration;

    fn build(text: &str) -> Result<MysqlCheck, Vec<FieldError>> {
        let node = yaml::parse(text).unwrap().unwrap();
        let spec: MysqlSpec = yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
        MysqlCheck::build(
            &spec,
            &BuildContext {
                timeout: Duration::from_secs(10),
                pack_dir: None,
            },
        )
    }

    fn errors(text: &str) -> Vec<(String, String)> {
        match build(text) {
            Ok(_) => panic!("expected errors for {text}"),
            Err(e) => e.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn builds_the_three_modes() {
        let c = build("url: mysql://ninja@127.0.0.1:3306/ninja\nquery: SELECT COUNT(*) FROM jobs\nwhat: rows in jobs\nexpect: { value: { equals: 0 } }\n").unwrap();
        assert!(matches!(c.mode, Mode::Query(_)));
        assert_eq!(c.judge.what, "rows in jobs");
        let c = build("host: 127.0.0.1\nuser: root\nvariable: max_allowed_packet\nexpect: { value: { min: 67108864 } }\n").unwrap();
        assert!(matches!(c.mode, Mode::Variable(_)));
        let c = build(
            "socket: /run/mysqld/mysqld.sock\nuser: root\nconnection_headroom: threads_connected\n",
        )
        .unwrap();
        assert!(matches!(c.mode, Mode::Headroom(Headroom::ThreadsConnected)));
        assert_eq!(c.judge.what, "Threads_connected/max_connections");
    }

    #[test]
    fn one_mode_exactly() {
        let e = errors("host: h\nuser: u\n");
        assert!(e[0].1.contains("say what to measure"), "{e:?}");
        let e = errors("host: h\nuser: u\nquery: SELECT 1\nvariable: max_connections\n");
        assert_eq!(e[0].0, "variable");
        let e = errors("host: h\nuser: u\nvariable: \"max_allowed_packet; DROP TABLE x\"\n");
        assert_eq!(e[0].0, "variable");
    }

    #[test]
    fn connection_errors_name_their_fields() {
        let e = errors("url: postgres://u@h/db\nquery: SELECT 1\n");
        assert_eq!(e[0].0, "url");
        assert!(e[0].1.contains("PostgreSQL URL"), "{e:?}");
        let e = errors("url: mysql://u@h/db\nhost: other\nquery: SELECT 1\n");
        assert_eq!(e[0].0, "host");
        let e = errors("host: h\nquery: SELECT 1\n");
        assert_eq!(e[0].0, "user");
        let e = errors(
            "host: h\nuser: u\npassword: pw-x\npassword_env: DB_PASSWORD\nquery: SELECT 1\n",
        );
        assert_eq!(e[0].0, "password_env");
        let e = errors("socket: /s.sock\nuser: u\ntls: { ca_file: /ca.pem }\nquery: SELECT 1\n");
        assert_eq!(e[0].0, "tls");
        let e = errors("host: h\nuser: u\nconnect_timeout: 30s\nquery: SELECT 1\n");
        assert_eq!(e[0].0, "connect_timeout");
        let e =
            errors("host: h\nuser: u\nquery: SELECT 1\nexpect: { value: { min: 5, max: 1 } }\n");
        assert_eq!(e[0].0, "expect.value");
    }

    #[test]
    fn sizes_are_recognised() {
        assert!(is_size("max_allowed_packet"));
        assert!(is_size("innodb_buffer_pool_size"));
        assert!(!is_size("max_connections"));
    }
}
